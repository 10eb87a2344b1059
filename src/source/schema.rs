//! What the decoder must know about a table at the time of an event, taken from its TABLE_MAP event.
//!
//! # Invariant: one [`TableSpec`] describes exactly the row image that follows
//!
//! A rows event carries no column names and no types: it is a bitmap plus packed values whose
//! widths depend on the column types and *metadata* of the TABLE_MAP event that precedes it. A
//! [`TableSpec`] is that table map, parsed once, with everything resolved that the hot decode loop
//! would otherwise have to look up per row:
//!
//! * `col_type` is the **real** type. MySQL writes CHAR, BINARY, ENUM and SET all as
//!   `MYSQL_TYPE_STRING` and hides the real type in the first metadata byte (together with two
//!   bits of the length of a long CHAR); we undo that here, so the decoder never sees
//!   `MYSQL_TYPE_STRING` for an ENUM.
//! * `meta` is normalised to one number per type (see [`ColumnSpec::meta`]).
//! * names, signedness, collations, ENUM/SET member names and the primary key come from the
//!   optional metadata that the source writes with `binlog_row_metadata=FULL`.
//!
//! # Which columns the optional-metadata lists cover
//!
//! The lists are positional and cover only some columns, so miscounting shifts every later entry
//! (MySQL `sql/log_event.cc`, `Table_map_log_event::init_*_field`):
//!
//! * SIGNEDNESS: one bit (most significant first) per *numeric* column: TINYINT, SMALLINT,
//!   MEDIUMINT, INT, BIGINT, DECIMAL, FLOAT, DOUBLE **and YEAR** (YEAR is an unsigned TINYINT
//!   inside the server; MySQL 9.7 and MariaDB 10.11 both give it a bit, observed on live
//!   servers). BIT gets none.
//! * DEFAULT_CHARSET / COLUMN_CHARSET: one collation per *character* column: CHAR/BINARY, VARCHAR/
//!   VARBINARY, every TEXT/BLOB, and (MySQL 9) VECTOR; MariaDB also counts GEOMETRY, MySQL does not
//!   (hence [`ServerFlavor`]). In DEFAULT_CHARSET the pair indexes count character columns only.
//! * ENUM_AND_SET_*_CHARSET and ENUM_STR_VALUE / SET_STR_VALUE: one entry per ENUM (resp. SET).
//!
//! A list whose length does not match the count above is refused with
//! [`SchemaError::MetadataMismatch`] rather than applied shifted: a shifted list would silently
//! mislabel data.
//!
//! # Names are never guessed
//!
//! Without COLUMN_NAME (`binlog_row_metadata=MINIMAL`) [`TableSpec::from_table_map`] fails with
//! [`SchemaError::NoColumnNames`]; the caller then builds the spec from `information_schema`
//! (start from [`TableSpec::types_from_table_map`], which fills types and metadata and leaves
//! names empty, or construct it by hand with [`ColumnSpec::new`]).

use mysql_common::binlog::events::TableMapEvent;
use mysql_common::constants::ColumnType;
use mysql_common::proto::MySerialize;

/// The binary collation (`binary`, id 63): a column with it holds bytes, not text.
pub const BINARY_COLLATION: u16 = 63;

pub use crate::encoding::spec::{ColumnSpec, TableSpec};

/// Which server wrote the table map: the two differ in which columns a charset list covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerFlavor {
    /// Oracle MySQL (charset lists cover CHAR/VARCHAR/TEXT/BLOB and VECTOR).
    #[default]
    MySql,
    /// MariaDB (charset lists cover CHAR/VARCHAR/TEXT/BLOB and GEOMETRY).
    MariaDb,
}

/// Why a table map could not be turned into a [`TableSpec`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The table map has no COLUMN_NAME metadata (the source runs `binlog_row_metadata=MINIMAL`).
    #[error(
        "table map of {schema}.{table} carries no column names (binlog_row_metadata is not FULL); \
         read them from information_schema or set binlog_row_metadata=FULL on the source"
    )]
    NoColumnNames {
        /// Database name.
        schema: String,
        /// Table name.
        table: String,
    },
    /// The table map bytes end early or contain an impossible value.
    #[error("table map of {schema}.{table} is malformed: {detail}")]
    Malformed {
        /// Database name.
        schema: String,
        /// Table name.
        table: String,
        /// What was expected and what was found.
        detail: String,
    },
    /// A column type byte that this version does not know.
    #[error("table map of {schema}.{table}: column #{index} has unknown type code {type_code}")]
    UnknownType {
        /// Database name.
        schema: String,
        /// Table name.
        table: String,
        /// Zero-based column position.
        index: usize,
        /// The raw type byte.
        type_code: u8,
    },
    /// An optional-metadata list does not have one entry per column it must cover.
    #[error(
        "table map of {schema}.{table}: optional metadata {field} has {found} entries, \
         expected {expected} (one per column it covers)"
    )]
    MetadataMismatch {
        /// Database name.
        schema: String,
        /// Table name.
        table: String,
        /// The optional-metadata field (e.g. `COLUMN_NAME`).
        field: &'static str,
        /// Entries expected from the column types.
        expected: usize,
        /// Entries found.
        found: usize,
    },
}

/// The `schema_version` stored with every change: FNV-1a over each column's name and binlog type
/// code, in table order. The stream computes it from the table map, `recover` from the live
/// table, so both must call this one function.
pub fn schema_version<'a>(columns: impl IntoIterator<Item = (&'a str, ColumnType)>) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    for (name, col_type) in columns {
        eat(name.as_bytes());
        eat(&[col_type as u8, 0]);
    }
    h
}

impl TableSpec {
    /// The spec of a MySQL table map with FULL row metadata; names are required.
    pub fn from_table_map(tme: &TableMapEvent<'_>) -> Result<TableSpec, SchemaError> {
        Self::from_table_map_as(tme, ServerFlavor::MySql)
    }

    /// Like [`TableSpec::from_table_map`], for the given server flavor.
    pub fn from_table_map_as(
        tme: &TableMapEvent<'_>,
        flavor: ServerFlavor,
    ) -> Result<TableSpec, SchemaError> {
        let (spec, has_names) = build(tme, flavor)?;
        if !has_names {
            return Err(SchemaError::NoColumnNames {
                schema: spec.schema,
                table: spec.table,
            });
        }
        Ok(spec)
    }

    /// Types, metadata and whatever optional metadata is present; column names are left empty
    /// when the table map has none. The starting point of the `information_schema` fallback:
    /// the caller must fill the names (and signedness, collations, ENUM/SET members and keys
    /// that MINIMAL metadata lacks) before decoding with it.
    pub fn types_from_table_map(
        tme: &TableMapEvent<'_>,
        flavor: ServerFlavor,
    ) -> Result<TableSpec, SchemaError> {
        build(tme, flavor).map(|(spec, _)| spec)
    }

    /// Index of the column with this exact name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

fn build(tme: &TableMapEvent<'_>, flavor: ServerFlavor) -> Result<(TableSpec, bool), SchemaError> {
    let mut raw = Vec::with_capacity(256);
    tme.serialize(&mut raw);
    let ctx = Ctx {
        schema: String::from_utf8_lossy(tme.database_name_raw()).into_owned(),
        table: String::from_utf8_lossy(tme.table_name_raw()).into_owned(),
        flavor,
    };
    let parts = split(&raw).map_err(|d| ctx.malformed(d))?;
    let mut spec = TableSpec {
        schema: ctx.schema.clone(),
        table: ctx.table.clone(),
        columns: column_shapes(&ctx, &parts)?,
        primary_key: Vec::new(),
        unique_key: Vec::new(),
        non_transactional: false,
    };
    let has_names = apply_optional(&ctx, &mut spec, parts.optional)?;
    Ok((spec, has_names))
}

/// Names for error messages plus the flavor rule.
struct Ctx {
    schema: String,
    table: String,
    flavor: ServerFlavor,
}

impl Ctx {
    fn malformed(&self, detail: String) -> SchemaError {
        SchemaError::Malformed {
            schema: self.schema.clone(),
            table: self.table.clone(),
            detail,
        }
    }

    fn mismatch(&self, field: &'static str, expected: usize, found: usize) -> SchemaError {
        SchemaError::MetadataMismatch {
            schema: self.schema.clone(),
            table: self.table.clone(),
            field,
            expected,
            found,
        }
    }
}

/// The pieces of a serialized table map body.
struct Parts<'a> {
    types: &'a [u8],
    meta: &'a [u8],
    nullable: &'a [u8],
    optional: &'a [u8],
}

/// A little-endian byte reader over metadata; errors are human-readable strings.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!("{what}: needs {n} bytes, {} remain", self.0.len()));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }

    /// A length-encoded integer (MySQL protocol `int<lenenc>`).
    fn lenenc(&mut self, what: &str) -> Result<u64, String> {
        let first = self.u8(what)?;
        let width = match first {
            0..=0xfa => return Ok(u64::from(first)),
            0xfc => 2,
            0xfd => 3,
            0xfe => 8,
            _ => {
                return Err(format!(
                    "{what}: invalid length-encoded integer prefix {first:#x}"
                ))
            }
        };
        let bytes = self.take(width, what)?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0, |acc, b| acc << 8 | u64::from(*b)))
    }

    fn lenenc_usize(&mut self, what: &str) -> Result<usize, String> {
        let v = self.lenenc(what)?;
        usize::try_from(v).map_err(|_| format!("{what}: {v} does not fit in memory"))
    }

    fn lenenc_bytes(&mut self, what: &str) -> Result<&'a [u8], String> {
        let n = self.lenenc_usize(what)?;
        self.take(n, what)
    }
}

/// Splits mysql_common's serialization of a TABLE_MAP body (6-byte table id, flags, names,
/// column count, types, metadata block, null bitmap, optional metadata).
fn split(raw: &[u8]) -> Result<Parts<'_>, String> {
    let mut r = Reader(raw);
    r.take(8, "table id and flags")?;
    for what in ["database name", "table name"] {
        let n = usize::from(r.u8(what)?);
        r.take(n + 1, what)?;
    }
    let count = r.lenenc_usize("column count")?;
    let types = r.take(count, "column types")?;
    let meta = r.lenenc_bytes("column metadata")?;
    let nullable = r.take(count.div_ceil(8), "null bitmap")?;
    Ok(Parts {
        types,
        meta,
        nullable,
        optional: r.0,
    })
}

/// Reads each column's type and metadata, resolving the real type of `MYSQL_TYPE_STRING`.
fn column_shapes(ctx: &Ctx, parts: &Parts<'_>) -> Result<Vec<ColumnSpec>, SchemaError> {
    use ColumnType::*;
    let mut meta = Reader(parts.meta);
    let mut columns = Vec::with_capacity(parts.types.len());
    for (index, &code) in parts.types.iter().enumerate() {
        let unknown = || SchemaError::UnknownType {
            schema: ctx.schema.clone(),
            table: ctx.table.clone(),
            index,
            type_code: code,
        };
        let raw_type = ColumnType::try_from(code).map_err(|_| unknown())?;
        let (col_type, m) = shape(raw_type, &mut meta)
            .map_err(|d| ctx.malformed(format!("column #{index}: {d}")))?
            .ok_or_else(unknown)?;
        let col_type = if col_type == MYSQL_TYPE_DATE {
            MYSQL_TYPE_NEWDATE
        } else {
            col_type
        };
        let mut col = ColumnSpec::new(String::new(), col_type, m);
        col.nullable = parts.nullable[index / 8] & (1 << (index % 8)) != 0;
        columns.push(col);
    }
    Ok(columns)
}

/// One column's real type and normalised metadata; `None` for a type with no known layout.
fn shape(raw_type: ColumnType, meta: &mut Reader<'_>) -> Result<Option<(ColumnType, u16)>, String> {
    use ColumnType::*;
    let m = match raw_type {
        MYSQL_TYPE_FLOAT
        | MYSQL_TYPE_DOUBLE
        | MYSQL_TYPE_BLOB
        | MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
        | MYSQL_TYPE_GEOMETRY
        | MYSQL_TYPE_JSON
        | MYSQL_TYPE_VECTOR
        | MYSQL_TYPE_TIME2
        | MYSQL_TYPE_DATETIME2
        | MYSQL_TYPE_TIMESTAMP2 => u16::from(meta.u8("metadata")?),
        MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING => {
            let b = meta.take(2, "varchar metadata")?;
            u16::from_le_bytes([b[0], b[1]])
        }
        MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_BIT => {
            let b = meta.take(2, "metadata")?;
            // DECIMAL: (precision, scale); BIT: (extra bits, whole bytes).
            if raw_type == MYSQL_TYPE_BIT {
                u16::from(b[1]) << 8 | u16::from(b[0])
            } else {
                u16::from(b[0]) << 8 | u16::from(b[1])
            }
        }
        MYSQL_TYPE_STRING | MYSQL_TYPE_ENUM | MYSQL_TYPE_SET => {
            let b = meta.take(2, "string metadata")?;
            return Ok(Some(string_shape(b[0], b[1])));
        }
        MYSQL_TYPE_TYPED_ARRAY => {
            let inner = ColumnType::try_from(meta.u8("typed array metadata")?)
                .map_err(|e| format!("typed array of {e}"))?;
            if inner == MYSQL_TYPE_VARCHAR {
                meta.take(3, "typed array varchar metadata")?;
            } else {
                shape(inner, meta)?;
            }
            0
        }
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_LONG
        | MYSQL_TYPE_NULL | MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_LONGLONG | MYSQL_TYPE_INT24
        | MYSQL_TYPE_DATE | MYSQL_TYPE_TIME | MYSQL_TYPE_DATETIME | MYSQL_TYPE_YEAR
        | MYSQL_TYPE_NEWDATE => 0,
        MYSQL_TYPE_UNKNOWN => return Ok(None),
    };
    Ok(Some((raw_type, m)))
}

/// Resolves `MYSQL_TYPE_STRING` metadata `(b0, b1)` (MySQL `Field_string::save_field_metadata`:
/// `b0 = real_type ^ ((length & 0x300) >> 4)`, `b1 = length & 0xff`).
fn string_shape(b0: u8, b1: u8) -> (ColumnType, u16) {
    if b0 == 0 {
        // Pre-5.1 layout: a plain little-endian length.
        return (ColumnType::MYSQL_TYPE_STRING, u16::from_le_bytes([b0, b1]));
    }
    let (real, length) = if b0 & 0x30 != 0x30 {
        (
            b0 | 0x30,
            u16::from(b1) | (u16::from((b0 & 0x30) ^ 0x30) << 4),
        )
    } else {
        (b0, u16::from(b1))
    };
    match real {
        0xf7 => (ColumnType::MYSQL_TYPE_ENUM, u16::from(b1)),
        0xf8 => (ColumnType::MYSQL_TYPE_SET, u16::from(b1)),
        _ => (ColumnType::MYSQL_TYPE_STRING, length),
    }
}

/// Columns covered by the SIGNEDNESS bitmap (YEAR included, BIT not).
fn is_numeric(t: ColumnType) -> bool {
    use ColumnType::*;
    matches!(
        t,
        MYSQL_TYPE_YEAR
            | MYSQL_TYPE_TINY
            | MYSQL_TYPE_SHORT
            | MYSQL_TYPE_INT24
            | MYSQL_TYPE_LONG
            | MYSQL_TYPE_LONGLONG
            | MYSQL_TYPE_NEWDECIMAL
            | MYSQL_TYPE_FLOAT
            | MYSQL_TYPE_DOUBLE
    )
}

/// Columns covered by DEFAULT_CHARSET / COLUMN_CHARSET.
fn is_character(t: ColumnType, flavor: ServerFlavor) -> bool {
    use ColumnType::*;
    match t {
        MYSQL_TYPE_STRING
        | MYSQL_TYPE_VAR_STRING
        | MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_BLOB
        | MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB => true,
        MYSQL_TYPE_VECTOR => flavor == ServerFlavor::MySql,
        MYSQL_TYPE_GEOMETRY => flavor == ServerFlavor::MariaDb,
        _ => false,
    }
}

fn is_enum_or_set(t: ColumnType) -> bool {
    matches!(t, ColumnType::MYSQL_TYPE_ENUM | ColumnType::MYSQL_TYPE_SET)
}

// Optional metadata field types (MySQL `Table_map_event::Optional_metadata_field_type`).
const SIGNEDNESS: u8 = 1;
const DEFAULT_CHARSET: u8 = 2;
const COLUMN_CHARSET: u8 = 3;
const COLUMN_NAME: u8 = 4;
const SET_STR_VALUE: u8 = 5;
const ENUM_STR_VALUE: u8 = 6;
const SIMPLE_PRIMARY_KEY: u8 = 8;
const PRIMARY_KEY_WITH_PREFIX: u8 = 9;
const ENUM_AND_SET_DEFAULT_CHARSET: u8 = 10;
const ENUM_AND_SET_COLUMN_CHARSET: u8 = 11;

/// Applies every known optional-metadata field (unknown ones are skipped: newer servers add
/// fields). Collations are applied first because ENUM/SET member names are written in the
/// column's character set and the server writes ENUM_AND_SET_*_CHARSET after them. Returns
/// whether COLUMN_NAME was present.
fn apply_optional(ctx: &Ctx, spec: &mut TableSpec, optional: &[u8]) -> Result<bool, SchemaError> {
    let mut r = Reader(optional);
    let mut fields = Vec::new();
    while !r.0.is_empty() {
        let kind = r.u8("field type");
        let value = kind.and_then(|k| Ok((k, r.lenenc_bytes("field")?)));
        fields.push(value.map_err(|d| ctx.malformed(format!("optional metadata: {d}")))?);
    }
    let charsets_first = |k: &(u8, &[u8])| {
        !matches!(
            k.0,
            DEFAULT_CHARSET
                | COLUMN_CHARSET
                | ENUM_AND_SET_DEFAULT_CHARSET
                | ENUM_AND_SET_COLUMN_CHARSET
        )
    };
    fields.sort_by_key(charsets_first);
    let flavor = ctx.flavor;
    let mut has_names = false;
    for (kind, value) in fields {
        match kind {
            SIGNEDNESS => apply_signedness(ctx, spec, value),
            DEFAULT_CHARSET => apply_default_charset(ctx, spec, value, |t| is_character(t, flavor)),
            COLUMN_CHARSET => apply_column_charset(ctx, spec, value, |t| is_character(t, flavor)),
            ENUM_AND_SET_DEFAULT_CHARSET => apply_default_charset(ctx, spec, value, is_enum_or_set),
            ENUM_AND_SET_COLUMN_CHARSET => apply_column_charset(ctx, spec, value, is_enum_or_set),
            COLUMN_NAME => {
                has_names = true;
                apply_names(ctx, spec, value)
            }
            ENUM_STR_VALUE => apply_members(ctx, spec, value, ColumnType::MYSQL_TYPE_ENUM),
            SET_STR_VALUE => apply_members(ctx, spec, value, ColumnType::MYSQL_TYPE_SET),
            SIMPLE_PRIMARY_KEY => apply_primary_key(ctx, spec, value, false),
            PRIMARY_KEY_WITH_PREFIX => apply_primary_key(ctx, spec, value, true),
            _ => Ok(()),
        }?;
    }
    Ok(has_names)
}

fn apply_signedness(ctx: &Ctx, spec: &mut TableSpec, bits: &[u8]) -> Result<(), SchemaError> {
    let numeric: Vec<usize> = (0..spec.columns.len())
        .filter(|&i| is_numeric(spec.columns[i].col_type))
        .collect();
    if bits.len() != numeric.len().div_ceil(8) {
        return Err(ctx.mismatch("SIGNEDNESS (bytes)", numeric.len().div_ceil(8), bits.len()));
    }
    for (k, &i) in numeric.iter().enumerate() {
        spec.columns[i].unsigned = bits[k / 8] & (0x80 >> (k % 8)) != 0;
    }
    Ok(())
}

fn apply_default_charset(
    ctx: &Ctx,
    spec: &mut TableSpec,
    value: &[u8],
    covered: impl Fn(ColumnType) -> bool,
) -> Result<(), SchemaError> {
    let mut r = Reader(value);
    let malformed = |d| ctx.malformed(format!("DEFAULT_CHARSET: {d}"));
    let default = r.lenenc("default collation").map_err(malformed)?;
    let targets: Vec<usize> = (0..spec.columns.len())
        .filter(|&i| covered(spec.columns[i].col_type))
        .collect();
    for &i in &targets {
        spec.columns[i].charset = Some(default as u16);
    }
    while !r.0.is_empty() {
        let k = r.lenenc_usize("column index").map_err(malformed)?;
        let collation = r.lenenc("collation").map_err(malformed)?;
        let &i = targets
            .get(k)
            .ok_or_else(|| ctx.mismatch("DEFAULT_CHARSET (column index)", targets.len(), k + 1))?;
        spec.columns[i].charset = Some(collation as u16);
    }
    Ok(())
}

fn apply_column_charset(
    ctx: &Ctx,
    spec: &mut TableSpec,
    value: &[u8],
    covered: impl Fn(ColumnType) -> bool,
) -> Result<(), SchemaError> {
    let mut r = Reader(value);
    let mut collations = Vec::new();
    while !r.0.is_empty() {
        let c = r
            .lenenc("collation")
            .map_err(|d| ctx.malformed(format!("COLUMN_CHARSET: {d}")))?;
        collations.push(c as u16);
    }
    let targets: Vec<usize> = (0..spec.columns.len())
        .filter(|&i| covered(spec.columns[i].col_type))
        .collect();
    if targets.len() != collations.len() {
        return Err(ctx.mismatch("COLUMN_CHARSET", targets.len(), collations.len()));
    }
    for (i, c) in targets.into_iter().zip(collations) {
        spec.columns[i].charset = Some(c);
    }
    Ok(())
}

fn apply_names(ctx: &Ctx, spec: &mut TableSpec, value: &[u8]) -> Result<(), SchemaError> {
    let mut r = Reader(value);
    let mut names = Vec::with_capacity(spec.columns.len());
    while !r.0.is_empty() {
        let name = r
            .lenenc_bytes("column name")
            .map_err(|d| ctx.malformed(format!("COLUMN_NAME: {d}")))?;
        names.push(String::from_utf8_lossy(name).into_owned());
    }
    if names.len() != spec.columns.len() {
        return Err(ctx.mismatch("COLUMN_NAME", spec.columns.len(), names.len()));
    }
    for (col, name) in spec.columns.iter_mut().zip(names) {
        col.name = name;
    }
    Ok(())
}

/// ENUM_STR_VALUE / SET_STR_VALUE: per column of that type, a count then the member names.
/// The server writes the names in the column's character set.
fn apply_members(
    ctx: &Ctx,
    spec: &mut TableSpec,
    value: &[u8],
    kind: ColumnType,
) -> Result<(), SchemaError> {
    let field = if kind == ColumnType::MYSQL_TYPE_ENUM {
        "ENUM_STR_VALUE"
    } else {
        "SET_STR_VALUE"
    };
    let mut r = Reader(value);
    let mut lists = Vec::new();
    let malformed = |d| ctx.malformed(format!("{field}: {d}"));
    while !r.0.is_empty() {
        let n = r.lenenc_usize("member count").map_err(malformed)?;
        let mut members = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let m = r.lenenc_bytes("member").map_err(malformed)?;
            members.push(m);
        }
        lists.push(members);
    }
    let targets: Vec<usize> = (0..spec.columns.len())
        .filter(|&i| spec.columns[i].col_type == kind)
        .collect();
    if targets.len() != lists.len() {
        return Err(ctx.mismatch(field, targets.len(), lists.len()));
    }
    for (i, members) in targets.into_iter().zip(lists) {
        let col = &mut spec.columns[i];
        let names = members.into_iter().map(|m| member_name(m, col.charset));
        if kind == ColumnType::MYSQL_TYPE_ENUM {
            col.enum_values = names.collect();
        } else {
            col.set_values = names.collect();
        }
    }
    Ok(())
}

/// A member name in the column's character set (latin1 is MySQL's cp1252; anything else is
/// read as UTF-8).
fn member_name(raw: &[u8], charset: Option<u16>) -> String {
    match charset {
        Some(c) if crate::encoding::is_latin1_collation(c) => {
            crate::encoding::latin1_to_string(raw)
        }
        _ => String::from_utf8_lossy(raw).into_owned(),
    }
}

fn apply_primary_key(
    ctx: &Ctx,
    spec: &mut TableSpec,
    value: &[u8],
    with_prefix: bool,
) -> Result<(), SchemaError> {
    let mut r = Reader(value);
    let field = if with_prefix {
        "PRIMARY_KEY_WITH_PREFIX"
    } else {
        "SIMPLE_PRIMARY_KEY"
    };
    let malformed = |d| ctx.malformed(format!("{field}: {d}"));
    let mut key = Vec::new();
    while !r.0.is_empty() {
        let i = r.lenenc_usize("column index").map_err(malformed)?;
        if with_prefix {
            r.lenenc("prefix length").map_err(malformed)?;
        }
        if i >= spec.columns.len() {
            return Err(ctx.mismatch(field, spec.columns.len(), i + 1));
        }
        key.push(i);
    }
    spec.primary_key = key;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::testkit::{image, lenenc, lenenc_str, rows_event, table_map, tlv, Kind};
    use mysql_common::binlog::value::BinlogValue;
    use mysql_common::value::Value as MyValue;
    use ColumnType::*;

    fn names(list: &[&str]) -> Vec<u8> {
        tlv(
            COLUMN_NAME,
            &list
                .iter()
                .flat_map(|n| lenenc_str(n.as_bytes()))
                .collect::<Vec<_>>(),
        )
    }

    fn members(lists: &[&[&[u8]]]) -> Vec<u8> {
        let mut out = Vec::new();
        for list in lists {
            out.extend(lenenc(list.len() as u64));
            for m in *list {
                out.extend(lenenc_str(m));
            }
        }
        out
    }

    /// A table exercising every metadata layout:
    /// id INT UNSIGNED, y YEAR, b BIT(10), price DECIMAL(10,2), name VARCHAR(20) utf8mb4,
    /// code CHAR(255) utf8mb4, raw BINARY(4), color ENUM latin1, tags SET, body TEXT latin1,
    /// at DATETIME(3), n BIGINT.
    fn wide_map(optional: &[u8]) -> TableMapEvent<'static> {
        let cols: [(u8, &[u8], bool); 12] = [
            (MYSQL_TYPE_LONG as u8, &[], false),
            (MYSQL_TYPE_YEAR as u8, &[], true),
            (MYSQL_TYPE_BIT as u8, &[2, 1], true),
            (MYSQL_TYPE_NEWDECIMAL as u8, &[10, 2], true),
            (MYSQL_TYPE_VARCHAR as u8, &[80, 0], true),
            (MYSQL_TYPE_STRING as u8, &[0xce, 0xfc], true),
            (MYSQL_TYPE_STRING as u8, &[0xfe, 4], true),
            (MYSQL_TYPE_STRING as u8, &[0xf7, 1], true),
            (MYSQL_TYPE_STRING as u8, &[0xf8, 1], true),
            (MYSQL_TYPE_BLOB as u8, &[2], true),
            (MYSQL_TYPE_DATETIME2 as u8, &[3], true),
            (MYSQL_TYPE_LONGLONG as u8, &[], true),
        ];
        table_map("shop", "items", &cols, optional)
    }

    /// Length-encoded integers, concatenated.
    fn ints(values: &[u64]) -> Vec<u8> {
        values.iter().flat_map(|&v| lenenc(v)).collect()
    }

    /// The optional-metadata fields of `wide_map`, one per element (tests replace some).
    fn full_fields() -> Vec<Vec<u8>> {
        vec![
            // numeric columns: id, y, price, n (BIT is not numeric): id and y unsigned.
            tlv(SIGNEDNESS, &[0b1100_0000]),
            // character columns: name, code, raw, body; default utf8mb4, raw binary, body latin1.
            tlv(DEFAULT_CHARSET, &ints(&[255, 2, 63, 3, 8])),
            names(&[
                "id", "y", "b", "price", "name", "code", "raw", "color", "tags", "body", "at", "n",
            ]),
            tlv(SET_STR_VALUE, &members(&[&[b"a", b"b", b"c"]])),
            tlv(ENUM_STR_VALUE, &members(&[&[b"red", b"gr\xfcn"]])),
            tlv(12, &[0xff, 0xf0]),
            tlv(PRIMARY_KEY_WITH_PREFIX, &ints(&[11, 0, 0, 0])),
            tlv(ENUM_AND_SET_COLUMN_CHARSET, &ints(&[8, 255])),
            tlv(99, b"future field"),
        ]
    }

    fn full_optional() -> Vec<u8> {
        full_fields().concat()
    }

    #[test]
    fn full_metadata_resolves_every_column() {
        let spec = TableSpec::from_table_map(&wide_map(&full_optional())).unwrap();
        assert_eq!(
            (spec.schema.as_str(), spec.table.as_str()),
            ("shop", "items")
        );
        type Row<'a> = (&'a str, ColumnType, u16, bool, Option<u16>, bool);
        let got: Vec<Row<'_>> = spec
            .columns
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.col_type,
                    c.meta,
                    c.unsigned,
                    c.charset,
                    c.nullable,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("id", MYSQL_TYPE_LONG, 0, true, None, false),
                ("y", MYSQL_TYPE_YEAR, 0, true, None, true),
                ("b", MYSQL_TYPE_BIT, 1 << 8 | 2, false, None, true),
                (
                    "price",
                    MYSQL_TYPE_NEWDECIMAL,
                    10 << 8 | 2,
                    false,
                    None,
                    true
                ),
                ("name", MYSQL_TYPE_VARCHAR, 80, false, Some(255), true),
                ("code", MYSQL_TYPE_STRING, 1020, false, Some(255), true),
                ("raw", MYSQL_TYPE_STRING, 4, false, Some(63), true),
                ("color", MYSQL_TYPE_ENUM, 1, false, Some(8), true),
                ("tags", MYSQL_TYPE_SET, 1, false, Some(255), true),
                ("body", MYSQL_TYPE_BLOB, 2, false, Some(8), true),
                ("at", MYSQL_TYPE_DATETIME2, 3, false, None, true),
                ("n", MYSQL_TYPE_LONGLONG, 0, false, None, true),
            ]
        );
        assert_eq!(spec.columns[7].enum_values, vec!["red", "grün"]);
        assert_eq!(spec.columns[8].set_values, vec!["a", "b", "c"]);
        assert_eq!(spec.primary_key, vec![11, 0], "key order, not table order");
        assert!(spec.unique_key.is_empty());
    }

    #[test]
    fn real_types_agree_with_mysql_common() {
        let tme = wide_map(&full_optional());
        let spec = TableSpec::from_table_map(&tme).unwrap();
        for (i, col) in spec.columns.iter().enumerate() {
            assert_eq!(
                tme.get_column_type(i).unwrap(),
                Some(col.col_type),
                "column {i}"
            );
        }
    }

    #[test]
    fn missing_names_are_a_distinct_error() {
        let minimal = [tlv(SIGNEDNESS, &[0]), tlv(DEFAULT_CHARSET, &ints(&[255]))].concat();
        let tme = wide_map(&minimal);
        assert_eq!(
            TableSpec::from_table_map(&tme),
            Err(SchemaError::NoColumnNames {
                schema: "shop".into(),
                table: "items".into()
            })
        );
        let spec = TableSpec::types_from_table_map(&tme, ServerFlavor::MySql).unwrap();
        assert!(spec.columns.iter().all(|c| c.name.is_empty()));
        assert_eq!(spec.columns[4].charset, Some(255));
        assert_eq!(spec.columns[3].meta, 10 << 8 | 2);
    }

    #[test]
    fn signedness_bits_cover_numeric_columns_and_year_most_significant_first() {
        let mut fields = full_fields();
        fields[0] = tlv(SIGNEDNESS, &[0b0011_0000]);
        let spec = TableSpec::from_table_map(&wide_map(&fields.concat())).unwrap();
        let unsigned: Vec<&str> = spec
            .columns
            .iter()
            .filter(|c| c.unsigned)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(unsigned, vec!["price", "n"]);
    }

    #[test]
    fn column_charset_lists_one_collation_per_character_column() {
        let mut fields = full_fields();
        fields[1] = tlv(COLUMN_CHARSET, &ints(&[45, 46, 63, 47]));
        let spec = TableSpec::from_table_map(&wide_map(&fields.concat())).unwrap();
        let charsets: Vec<Option<u16>> = [4, 5, 6, 9]
            .iter()
            .map(|&i| spec.columns[i].charset)
            .collect();
        assert_eq!(charsets, vec![Some(45), Some(46), Some(63), Some(47)]);
        fields[1] = tlv(COLUMN_CHARSET, &ints(&[45, 46, 63]));
        assert!(matches!(
            TableSpec::from_table_map(&wide_map(&fields.concat())),
            Err(SchemaError::MetadataMismatch {
                field: "COLUMN_CHARSET",
                expected: 4,
                found: 3,
                ..
            })
        ));
    }

    #[test]
    fn charset_lists_count_geometry_on_mariadb_and_vector_on_mysql() {
        let cols: [(u8, &[u8], bool); 3] = [
            (MYSQL_TYPE_GEOMETRY as u8, &[4], true),
            (MYSQL_TYPE_VECTOR as u8, &[4], true),
            (MYSQL_TYPE_VARCHAR as u8, &[40, 0], true),
        ];
        let opt = [names(&["g", "v", "s"]), tlv(COLUMN_CHARSET, &[63, 8])].concat();
        let tme = table_map("d", "t", &cols, &opt);
        let mysql = TableSpec::from_table_map(&tme).unwrap();
        assert_eq!(
            mysql.columns.iter().map(|c| c.charset).collect::<Vec<_>>(),
            vec![None, Some(63), Some(8)]
        );
        let maria = TableSpec::from_table_map_as(&tme, ServerFlavor::MariaDb).unwrap();
        assert_eq!(
            maria.columns.iter().map(|c| c.charset).collect::<Vec<_>>(),
            vec![Some(63), None, Some(8)]
        );
    }

    #[test]
    fn lists_of_the_wrong_length_are_refused_not_shifted() {
        let mut fields = full_fields();
        fields[2] = names(&["only", "three", "names"]);
        assert!(matches!(
            TableSpec::from_table_map(&wide_map(&fields.concat())),
            Err(SchemaError::MetadataMismatch {
                field: "COLUMN_NAME",
                expected: 12,
                found: 3,
                ..
            })
        ));
        let bad_signedness = [tlv(SIGNEDNESS, &[0, 0]), names(&["a"; 12])].concat();
        assert!(matches!(
            TableSpec::from_table_map(&wide_map(&bad_signedness)),
            Err(SchemaError::MetadataMismatch {
                expected: 1,
                found: 2,
                ..
            })
        ));
    }

    #[test]
    fn simple_primary_key_keeps_key_order() {
        let opt = [names(&["a", "b", "c"]), tlv(SIMPLE_PRIMARY_KEY, &[2, 0])].concat();
        let cols: [(u8, &[u8], bool); 3] = [(MYSQL_TYPE_LONG as u8, &[], false); 3];
        let spec = TableSpec::from_table_map(&table_map("d", "t", &cols, &opt)).unwrap();
        assert_eq!(spec.primary_key, vec![2, 0]);
    }

    #[test]
    fn truncated_optional_metadata_is_malformed() {
        let opt = [names(&["a"]), vec![SIMPLE_PRIMARY_KEY, 5, 0]].concat();
        let cols: [(u8, &[u8], bool); 1] = [(MYSQL_TYPE_LONG as u8, &[], false)];
        let err = TableSpec::from_table_map(&table_map("d", "t", &cols, &opt)).unwrap_err();
        assert!(matches!(err, SchemaError::Malformed { .. }), "{err}");
        assert!(
            err.to_string().starts_with("table map of d.t is malformed"),
            "{err}"
        );
    }

    /// Decodes a row with our spec and with mysql_common's generic decoder; they must agree.
    #[test]
    fn decoded_rows_agree_with_mysql_common() {
        let cols: [(u8, &[u8], bool); 6] = [
            (MYSQL_TYPE_LONG as u8, &[], false),
            (MYSQL_TYPE_LONGLONG as u8, &[], true),
            (MYSQL_TYPE_NEWDECIMAL as u8, &[4, 2], true),
            (MYSQL_TYPE_VARCHAR as u8, &[80, 0], true),
            (MYSQL_TYPE_DATETIME2 as u8, &[0], true),
            (MYSQL_TYPE_INT24 as u8, &[], true),
        ];
        let opt = [
            tlv(SIGNEDNESS, &[0b0100_0000]),
            tlv(DEFAULT_CHARSET, &ints(&[255])),
            names(&["id", "big", "d", "s", "at", "m"]),
        ]
        .concat();
        let tme = table_map("d", "t", &cols, &opt);
        let spec = TableSpec::from_table_map(&tme).unwrap();
        let dt = 0x80_0000_0000u64 + ((((2024 * 13 + 1) << 5 | 2) << 17) | 3 << 12 | 4 << 6 | 5);
        let row = image(&[
            Some(&(-5i32).to_le_bytes()),
            Some(&u64::MAX.to_le_bytes()),
            Some(&[0x73, 0xdd]),
            Some(b"\x02hi"),
            Some(&dt.to_be_bytes()[3..]),
            // Positive: mysql_common does not sign-extend MEDIUMINT (it reads -8388608 as
            // 8388608), which the encoding's own tests cover.
            Some(&[0xff, 0xff, 0x7f]),
        ]);
        let ev = rows_event(Kind::Write, 6, &row);
        let ours = crate::encoding::decode_rows(&spec, &ev).unwrap();
        let ours = ours[0].after.clone().unwrap();
        let (_, theirs) = ev.rows(&tme).next().unwrap().unwrap();
        let theirs = theirs.unwrap().unwrap();
        let as_text = |v: &BinlogValue<'_>| match v {
            BinlogValue::Value(MyValue::Int(i)) => i.to_string(),
            BinlogValue::Value(MyValue::UInt(u)) => u.to_string(),
            BinlogValue::Value(MyValue::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
            BinlogValue::Value(MyValue::Date(y, mo, d, h, mi, s, _)) => {
                format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
            }
            other => format!("{other:?}"),
        };
        for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
            let o = o.as_str().map_or_else(|| o.to_string(), str::to_owned);
            assert_eq!(o, as_text(t), "column {i}");
        }
    }
}

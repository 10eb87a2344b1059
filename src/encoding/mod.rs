//! The value encoding: row-image bytes of a rows event → the JSON stored in the change index.
//!
//! # Invariants
//!
//! * **One rule per column type**, listed below; nothing else in the crate knows how a type is
//!   stored. The stored JSON is what `SELECT` would print for the value, made exact: integers
//!   are JSON numbers without rounding, DECIMAL keeps every digit as a string, binary data is
//!   base64 of every byte.
//! * **Whole images or nothing.** A rows event whose column bitmap leaves any column out
//!   (`binlog_row_image=MINIMAL` or `NOBLOB` in the writing session) fails with
//!   [`DecodeError::PartialImage`]; a missing value is never filled with `null`. The one
//!   exception is MariaDB 11, which leaves *generated* columns out of UPDATE and DELETE images
//!   even with FULL: an image without them is accepted when the spec knows them as generated
//!   and the row's key does not need them, and the stored image simply lacks them
//!   ([`RowPair::absent`]); nothing computes or guesses their values.
//! * **Decoding is a single forward pass** over `rows_data()` with a bounds-checked cursor,
//!   driven by the already-resolved [`TableSpec`]: no table-map parsing and no intermediate
//!   value type per row, one `Vec` per image plus one `String` per text value.
//! * **Partial JSON updates are stored whole.** A PARTIAL_UPDATE_ROWS_EVENT
//!   (`binlog_row_value_options=PARTIAL_JSON`) may log a JSON column of its after image as a
//!   list of diffs against the before image; the decoder applies them ([`jsondiff`]), so the
//!   stored after image is the one the plain UPDATE_ROWS_EVENT would have carried.
//! * **Every row stays indexable, and JSON stays exact.** What the index's own JSON column
//!   would refuse or round (a document nested 100 deep, a MariaDB JSON number beyond a double)
//!   is kept as its text in the `json:` form of [`json_raw`], which `recover` turns back into
//!   the source's document.
//!
//! # Value encoding
//!
//! | Column type | Stored JSON | Example |
//! |---|---|---|
//! | any type, NULL | `null` | `null` |
//! | TINYINT, SMALLINT, MEDIUMINT, INT, BIGINT (signed or UNSIGNED, from the table metadata) | number, exact | `18446744073709551615`, `-9223372036854775808` |
//! | MEDIUMINT | number (3 bytes, sign-extended unless UNSIGNED) | `-8388608` |
//! | DECIMAL(p,s) | string with the exact digits and exactly s decimals | `"-12.50"`, `"0.000000000000000000000000000001"` |
//! | FLOAT | number: the f32's shortest decimal form, read as f64 (prints `3.4028235e+38`, not `3.4028234663852886e+38`) | `3.4028235e+38` |
//! | DOUBLE | number (f64) | `-2.5e-300` |
//! | BIT(n) | number (unsigned, from big-endian bytes) | `5` |
//! | YEAR | number; 0 stays 0 | `2024`, `0` |
//! | DATE | `"YYYY-MM-DD"`; zero and partly zero dates as MySQL prints them | `"0000-00-00"`, `"2024-00-00"` |
//! | DATETIME(n) | `"YYYY-MM-DD HH:MM:SS"`, then `.` and exactly n digits when n > 0 | `"2024-01-02 03:04:05.120"` |
//! | TIMESTAMP(n) | as DATETIME(n), in UTC; 0 is the zero datetime | `"0000-00-00 00:00:00.00"` |
//! | TIME(n) | `"[-]HH:MM:SS"` (hours 2 or 3 digits, up to 838), then `.` and n digits | `"-00:00:00.1"`, `"838:59:59"` |
//! | pre-5.6 DATETIME, TIMESTAMP, TIME | as above, no fraction | `"2024-01-02 03:04:05"` |
//! | CHAR, VARCHAR, TEXT | string in the column's character set: utf8mb3/utf8mb4/ascii as UTF-8; latin1 as MySQL's latin1 (cp1252, its 5 undefined bytes as U+0081/8D/8F/90/9D); any other character set only if the bytes are valid UTF-8, else an error | `"😀"`, `"café"` |
//! | BINARY(n) (also CHAR with the binary charset) | base64 (standard alphabet, padded) of the value padded with 0x00 to n bytes, as `SELECT` returns it | `"YWIAAA=="` |
//! | VARBINARY, TINYBLOB … LONGBLOB | base64 of the bytes | `"AAEC"` |
//! | ENUM | the member name; index 0 (the error value) is `""` | `"red"` |
//! | SET | member names in definition order joined by `,`; the empty set is `""`, never null | `"a,c"` |
//! | JSON (MySQL binary JSON) | the document itself, not a string; inside it DATE is `"YYYY-MM-DD"`, DATETIME/TIMESTAMP `"YYYY-MM-DD HH:MM:SS.ffffff"`, TIME `"HH:MM:SS.ffffff"` (MySQL's JSON text forms), DECIMAL a string of its exact digits (serde_json has no exact decimal numbers here), other opaque values `"base64:type<N>:<base64>"`; an empty value (0 bytes) is null | `{"d":"2024-01-02","n":"1.50"}` |
//! | JSON on MariaDB (a text column flagged `json_text`) | the parsed document; a number no JSON number keeps exactly (beyond 64-bit integers or a double's precision or range) is `"json:<its exact text>"`, an object with a key twice `"json:<its exact text>"`, an escape JSON lacks (`\x`) the character itself | `[1,2]`, `["json:1e400"]` |
//! | JSON, both flavors: the `json:` form ([`json_raw`]) | a container at level 100 of the document (MySQL's maximum; the row image adds a level the index refuses) is `"json:<its JSON text>"`; a source string that begins with `json:` is in that form too, so a stored string `"json:…"` always stands for the JSON text after the prefix | `[[…["json:[1,2]"]…]]`, `"json:\"json:x\""` |
//! | GEOMETRY | base64 of MySQL's internal form (4-byte SRID, then WKB) | `"AAAAAAEBAAAA…"` |
//! | VECTOR | array of numbers, each an f32 as for FLOAT | `[1.5,-2.0,0.1]` |
//! | generated columns (virtual or stored) | whatever the image carries, by their type; absent when the source left them out (MariaDB 11's UPDATE and DELETE images) | |
//!
//! Row identity ([`pk_values`]) and change detection ([`changed_columns`]) work on the decoded
//! values, so they follow the same rules.

mod cursor;
mod decimal;
mod json_raw;
mod json_text;
mod jsonb;
mod jsondiff;
mod mariadb_json;
mod temporal;
mod text;
mod value;

pub mod live_value;
pub mod spec;
mod sql_literal;
pub use json_raw::{unsealed, RAW_PREFIX};
pub use sql_literal::{
    base64_decode, literal, push_comparand, push_literal, LiteralError, SqlType,
};

#[cfg(test)]
pub(crate) mod testkit;

use mysql_common::binlog::events::RowsEventData;
use mysql_common::constants::ColumnType;
use serde_json::{Map, Value};

use cursor::{Cursor, Fault};
use spec::{ColumnSpec, TableSpec};

pub use text::base64;
pub(crate) use text::{is_latin1_collation, latin1_to_string};

/// One changed row: the image before and/or after the change.
#[derive(Debug, Clone, PartialEq)]
pub struct RowPair {
    /// Every column before the change (UPDATE, DELETE); `None` for WRITE.
    pub before: Option<Vec<Value>>,
    /// Every column after the change (WRITE, UPDATE); `None` for DELETE.
    pub after: Option<Vec<Value>>,
    /// The columns the images leave out (MariaDB 11's generated columns in UPDATE and DELETE
    /// images): empty when the images are whole, else one flag per column, `true` where the
    /// images hold a `null` placeholder that [`image_json`] leaves out of the stored image.
    pub absent: Vec<bool>,
}

/// Why a rows event could not be decoded. Every variant names the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The event kind or a feature of it is not decoded.
    #[error("rows event on {schema}.{table}: {what} is not supported")]
    Unsupported {
        /// Database name.
        schema: String,
        /// Table name.
        table: String,
        /// What is not supported, and what to do instead.
        what: String,
    },
    /// The rows event body itself does not parse (before any table is known).
    #[error("rows event does not parse: {detail}")]
    MalformedEvent {
        /// The parser's message.
        detail: String,
    },
    /// The rows event and the table spec disagree on the number of columns.
    #[error(
        "rows event on {schema}.{table} has {found} columns, the table map has {expected} \
         (the table definition changed without a new table map?)"
    )]
    ColumnCountMismatch {
        /// Database name.
        schema: String,
        /// Table name.
        table: String,
        /// Columns in the spec.
        expected: usize,
        /// Columns in the event.
        found: u64,
    },
    /// The image leaves columns out (`binlog_row_image` is not FULL in the writing session, or
    /// MariaDB 11 left the generated columns out of an UPDATE or DELETE image).
    #[error(
        "rows event on {schema}.{table} has a partial row image, missing columns {missing:?}: \
         the writing session has binlog_row_image MINIMAL or NOBLOB, bintrail needs FULL; \
         SET PERSIST binlog_row_image = 'FULL' on the source and reconnect every client, then \
         restart the stream from a later position with --reset (the changes of that session \
         cannot be indexed). MariaDB 11 leaves generated columns out of UPDATE and DELETE \
         images even with FULL; bintrail accepts that for the columns the source's \
         information_schema names as generated (index --files needs --source-dsn for it)"
    )]
    PartialImage {
        /// Database name.
        schema: String,
        /// Table name.
        table: String,
        /// Names of the columns the image leaves out.
        missing: Vec<String>,
    },
    /// MariaDB 11 left generated columns out of an UPDATE or DELETE image, and the row cannot
    /// be identified without them.
    #[error(
        "rows event on {schema}.{table} leaves out the generated columns {missing:?} (MariaDB 11 \
         does in UPDATE and DELETE images even with binlog_row_image=FULL), and {why}, so the \
         row cannot be identified without them; give the table a primary key of ordinary \
         columns, or exclude it (list the others in --tables)"
    )]
    GeneratedKey {
        /// Database name.
        schema: String,
        /// Table name.
        table: String,
        /// Names of the generated columns the image leaves out.
        missing: Vec<String>,
        /// Why the key needs them.
        why: String,
    },
    /// The row data ended inside a value.
    #[error(
        "rows event on {schema}.{table}: row {row} column {column}: value needs {needed} bytes, \
         only {remaining} remain"
    )]
    Truncated {
        /// Database name.
        schema: String,
        /// Table name.
        table: String,
        /// Column name (or `null bitmap`).
        column: String,
        /// Zero-based row within the event.
        row: usize,
        /// Bytes the value needs.
        needed: usize,
        /// Bytes left.
        remaining: usize,
    },
    /// A column type with no decoding rule.
    #[error("rows event on {schema}.{table}: column {column} has type code {type_code}, which has no decoding rule")]
    UnsupportedType {
        /// Database name.
        schema: String,
        /// Table name.
        table: String,
        /// Column name.
        column: String,
        /// Real column type code.
        type_code: u8,
    },
    /// Text in a character set that is neither utf8, latin1 nor ascii, and not valid UTF-8.
    #[error(
        "rows event on {schema}.{table}: column {column} has collation {collation}, whose bytes \
         are not valid utf-8 and which bintrail cannot convert (expected utf8mb4, utf8mb3, latin1 or ascii)"
    )]
    UnsupportedCharset {
        /// Database name.
        schema: String,
        /// Table name.
        table: String,
        /// Column name.
        column: String,
        /// Collation id.
        collation: u16,
    },
    /// Text in a UTF-8 character set that is not valid UTF-8.
    #[error("rows event on {schema}.{table}: column {column} (collation {collation}) holds invalid utf-8")]
    InvalidText {
        /// Database name.
        schema: String,
        /// Table name.
        table: String,
        /// Column name.
        column: String,
        /// Collation id.
        collation: u16,
    },
    /// A value contradicts the column definition.
    #[error("rows event on {schema}.{table}: row {row} column {column}: {detail}")]
    InvalidValue {
        /// Database name.
        schema: String,
        /// Table name.
        table: String,
        /// Column name.
        column: String,
        /// Zero-based row within the event.
        row: usize,
        /// What was expected and what was found.
        detail: String,
    },
}

impl DecodeError {
    /// A rows event whose body mysql_common could not parse.
    pub fn from_io(e: std::io::Error) -> Self {
        DecodeError::MalformedEvent {
            detail: e.to_string(),
        }
    }
}

/// Decodes every row of a rows event: WRITE yields `after` only, DELETE `before` only, UPDATE
/// both. v1 (MariaDB) and v2 (MySQL) events share the row format. A PARTIAL_UPDATE_ROWS_EVENT
/// (`binlog_row_value_options=PARTIAL_JSON`) yields the same pairs as the plain UPDATE would:
/// its partial JSON columns are rebuilt from the before image.
pub fn decode_rows(table: &TableSpec, ev: &RowsEventData<'_>) -> Result<Vec<RowPair>, DecodeError> {
    let partial = matches!(ev, RowsEventData::PartialUpdateRowsEvent(_));
    let n = table.columns.len();
    if ev.num_columns() != n as u64 {
        return Err(DecodeError::ColumnCountMismatch {
            schema: table.schema.clone(),
            table: table.table.clone(),
            expected: n,
            found: ev.num_columns(),
        });
    }
    let before_gaps = image_gaps(table, ev.columns_before_image().map(|b| b.iter_zeros()))?;
    let after_gaps = image_gaps(table, ev.columns_after_image().map(|b| b.iter_zeros()))?;
    let absent = absent_columns(
        table,
        before_gaps.as_deref(),
        after_gaps.as_deref(),
        partial,
    )?;
    let (has_before, has_after) = (before_gaps.is_some(), after_gaps.is_some());
    let has_json = table
        .columns
        .iter()
        .any(|c| c.col_type == ColumnType::MYSQL_TYPE_JSON);
    let mut cur = Cursor::new(ev.rows_data());
    let mut rows = Vec::new();
    while !cur.is_empty() {
        let row = rows.len();
        let mut before = has_before
            .then(|| decode_image(table, &mut cur, row, &absent))
            .transpose()?;
        let mut after = match (has_after, &before) {
            (true, Some(before)) if partial => {
                Some(decode_partial_after(table, &mut cur, row, before)?)
            }
            (true, _) => Some(decode_image(table, &mut cur, row, &absent)?),
            (false, _) => None,
        };
        if has_json {
            // After the diffs, which address the source's document, not its stored form.
            for image in [&mut before, &mut after].into_iter().flatten() {
                seal_json_columns(table, image);
            }
        }
        rows.push(RowPair {
            before,
            after,
            absent: absent.clone(),
        });
    }
    Ok(rows)
}

/// Puts the documents of MySQL JSON columns into their stored form ([`json_raw::seal`]).
/// MariaDB's JSON text columns are parsed straight into it.
fn seal_json_columns(table: &TableSpec, image: &mut [Value]) {
    for (col, v) in table.columns.iter().zip(image) {
        if col.col_type == ColumnType::MYSQL_TYPE_JSON {
            json_raw::seal(v);
        }
    }
}

/// The columns an image leaves out (`None`: the event has no such image; empty: it is whole).
/// Only generated columns may be missing, and only when the row's key does not need them:
/// anything else is [`DecodeError::PartialImage`] or [`DecodeError::GeneratedKey`].
fn image_gaps(
    table: &TableSpec,
    zeros: Option<impl Iterator<Item = usize>>,
) -> Result<Option<Vec<usize>>, DecodeError> {
    let Some(zeros) = zeros else {
        return Ok(None);
    };
    let gaps: Vec<usize> = zeros.collect();
    let names = |gaps: &[usize]| -> Vec<String> {
        gaps.iter()
            .map(|&i| table.columns[i].name.clone())
            .collect()
    };
    if gaps.iter().any(|&i| !table.columns[i].generated) {
        return Err(DecodeError::PartialImage {
            schema: table.schema.clone(),
            table: table.table.clone(),
            missing: names(&gaps),
        });
    }
    let key = if table.primary_key.is_empty() {
        &table.unique_key
    } else {
        &table.primary_key
    };
    let why = if gaps.is_empty() {
        None
    } else if key.is_empty() {
        // The digest key hashes the whole image: the INSERT's (with them) and the DELETE's
        // (without) would name one row differently.
        Some("the table has no primary key or NOT NULL unique key (its rows are keyed by a digest of the whole image)".to_string())
    } else {
        key.iter()
            .find(|i| gaps.contains(i))
            .map(|&i| format!("{} is part of the row's key", table.columns[i].name))
    };
    match why {
        Some(why) => Err(DecodeError::GeneratedKey {
            schema: table.schema.clone(),
            table: table.table.clone(),
            missing: names(&gaps),
            why,
        }),
        None => Ok(Some(gaps)),
    }
}

/// One flag per column for the columns the event's images leave out ([`RowPair::absent`]);
/// empty when they are whole. An UPDATE's two images must leave out the same columns (MariaDB
/// 11 does), and a PARTIAL_UPDATE_ROWS_EVENT (MySQL's) none.
fn absent_columns(
    table: &TableSpec,
    before: Option<&[usize]>,
    after: Option<&[usize]>,
    partial: bool,
) -> Result<Vec<bool>, DecodeError> {
    let gaps = match (before, after) {
        (Some(b), Some(a)) if b != a || (partial && !b.is_empty()) => {
            let mut missing: Vec<usize> = b.iter().chain(a).copied().collect();
            missing.sort_unstable();
            missing.dedup();
            return Err(DecodeError::PartialImage {
                schema: table.schema.clone(),
                table: table.table.clone(),
                missing: missing
                    .iter()
                    .map(|&i| table.columns[i].name.clone())
                    .collect(),
            });
        }
        (Some(g), _) | (None, Some(g)) => g,
        (None, None) => &[],
    };
    if gaps.is_empty() {
        return Ok(Vec::new());
    }
    let mut absent = vec![false; table.columns.len()];
    for &i in gaps {
        absent[i] = true;
    }
    Ok(absent)
}

/// One image: a null bitmap (one bit per column the image has, low bit first), then each
/// non-NULL value. A column in `absent` (empty: none) has neither; it gets a `null` placeholder.
fn decode_image(
    table: &TableSpec,
    cur: &mut Cursor<'_>,
    row: usize,
    absent: &[bool],
) -> Result<Vec<Value>, DecodeError> {
    let n = table.columns.len();
    let present = n - absent.iter().filter(|a| **a).count();
    let nulls = cur
        .take(present.div_ceil(8))
        .map_err(|f| locate(table, "null bitmap", row, f))?;
    let mut values = Vec::with_capacity(n);
    let mut bit = 0;
    for (i, col) in table.columns.iter().enumerate() {
        if absent.get(i).copied().unwrap_or(false) {
            values.push(Value::Null);
            continue;
        }
        let is_null = nulls[bit / 8] & (1 << (bit % 8)) != 0;
        bit += 1;
        if is_null {
            values.push(Value::Null);
            continue;
        }
        match value::decode_value(col, cur) {
            Ok(v) => values.push(v),
            Err(f) => return Err(locate(table, &col.name, row, f)),
        }
    }
    Ok(values)
}

/// The after image of a PARTIAL_UPDATE_ROWS_EVENT row (MySQL `pack_row`, image type
/// UPDATE_AI): a length-encoded `value_options`; when it has PARTIAL_JSON_UPDATES (bit 0), a
/// bitmap with one bit per JSON column of the table (in table order, whether in the image or
/// not) marking the columns logged as diffs; then a full image in which each marked, non-NULL
/// JSON column holds a diff list instead of a document. Marked columns are rebuilt by applying
/// their diffs to the before image's document.
fn decode_partial_after(
    table: &TableSpec,
    cur: &mut Cursor<'_>,
    row: usize,
    before: &[Value],
) -> Result<Vec<Value>, DecodeError> {
    const PARTIAL_JSON_UPDATES: u64 = 1;
    let shared = |f| locate(table, "partial json bitmap", row, f);
    let options = cur.lenenc().map_err(shared)?;
    let json_columns = table
        .columns
        .iter()
        .filter(|c| c.col_type == ColumnType::MYSQL_TYPE_JSON)
        .count();
    let partial_bits = if options & PARTIAL_JSON_UPDATES != 0 {
        cur.take(json_columns.div_ceil(8)).map_err(shared)?
    } else {
        &[]
    };
    let n = table.columns.len();
    let nulls = cur
        .take(n.div_ceil(8))
        .map_err(|f| locate(table, "null bitmap", row, f))?;
    let mut values = Vec::with_capacity(n);
    // One bit per JSON column in table order; none at all without PARTIAL_JSON_UPDATES.
    let mut json_is_partial = (0..json_columns).map(|bit| {
        partial_bits
            .get(bit / 8)
            .is_some_and(|b| b & (1 << (bit % 8)) != 0)
    });
    for (i, col) in table.columns.iter().enumerate() {
        let is_partial =
            col.col_type == ColumnType::MYSQL_TYPE_JSON && json_is_partial.next().unwrap_or(false);
        if nulls[i / 8] & (1 << (i % 8)) != 0 {
            values.push(Value::Null);
            continue;
        }
        let value = if is_partial {
            let mut doc = before[i].clone();
            jsondiff::apply_at(cur, &mut doc).map(|()| doc)
        } else {
            value::decode_value(col, cur)
        };
        values.push(value.map_err(|f| locate(table, &col.name, row, f))?);
    }
    Ok(values)
}

/// Adds table, column and row to a value fault.
fn locate(table: &TableSpec, column: &str, row: usize, fault: Fault) -> DecodeError {
    let (schema, tname, column) = (table.schema.clone(), table.table.clone(), column.to_owned());
    match fault {
        Fault::Truncated { needed, remaining } => DecodeError::Truncated {
            schema,
            table: tname,
            column,
            row,
            needed,
            remaining,
        },
        Fault::UnsupportedType(type_code) => DecodeError::UnsupportedType {
            schema,
            table: tname,
            column,
            type_code,
        },
        Fault::UnsupportedCharset(collation) => DecodeError::UnsupportedCharset {
            schema,
            table: tname,
            column,
            collation,
        },
        Fault::InvalidText(collation) => DecodeError::InvalidText {
            schema,
            table: tname,
            column,
            collation,
        },
        Fault::Invalid(detail) => DecodeError::InvalidValue {
            schema,
            table: tname,
            column,
            row,
            detail,
        },
    }
}

/// The image as a JSON object keyed by column name (serde_json's map: keys in sorted order).
pub fn row_object(table: &TableSpec, values: &[Value]) -> Map<String, Value> {
    table
        .columns
        .iter()
        .zip(values)
        .map(|(c, v)| (c.name.clone(), v.clone()))
        .collect()
}

/// The image as JSON object text with keys in table order, written without building a map or
/// cloning values (the same object as [`row_object`], cheaper and in column order).
pub fn row_json(table: &TableSpec, values: &[Value]) -> String {
    image_json(table, values, &[])
}

/// [`row_json`] of an image that leaves out the columns flagged in `absent` (empty: none, see
/// [`RowPair::absent`]): the stored image has no key for them, rather than a `null` that would
/// claim a value.
pub fn image_json(table: &TableSpec, values: &[Value], absent: &[bool]) -> String {
    let mut out = Vec::with_capacity(32 * values.len() + 2);
    out.push(b'{');
    let mut first = true;
    for (i, (c, v)) in table.columns.iter().zip(values).enumerate() {
        if absent.get(i).copied().unwrap_or(false) {
            continue;
        }
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        json_text::push_str(&mut out, &c.name);
        out.push(b':');
        json_text::push_value(&mut out, v);
    }
    out.push(b'}');
    json_text::into_string(out)
}

/// The row's identity as text: the key's values in key order, joined by `|`.
///
/// The key is the primary key in its own column order; without one, `unique_key` (the first
/// UNIQUE key whose columns are all NOT NULL, when the spec knows it). Each value is written in
/// its textual form without quotes: strings as they are, numbers as JSON prints them, NULL as
/// `NULL`, JSON documents as compact JSON text; a `|` or `\` inside a value is escaped with a
/// backslash (`\|`, `\\`), the established tool's format, so the text splits back into its
/// values unambiguously and saved queries keep working.
///
/// Without either key the row has no identity of its own, and every column's text (BLOBs,
/// megabytes) would make an unbounded key: the key is then [`ROW_DIGEST_PREFIX`] and the
/// SHA-256 of the image's JSON text (hex), 71 bytes whatever the row, and never a value itself.
pub fn pk_values(table: &TableSpec, values: &[Value]) -> String {
    let key: &[usize] = if !table.primary_key.is_empty() {
        &table.primary_key
    } else {
        &table.unique_key
    };
    if key.is_empty() {
        return row_digest(table, values);
    }
    key_text(key.iter().map(|&i| values.get(i).unwrap_or(&Value::Null)))
}

/// The `pk_values` text of a key's values, given in key order (the rules of [`pk_values`]).
pub fn key_text<'a>(values: impl IntoIterator<Item = &'a Value>) -> String {
    let mut out = String::new();
    for (n, v) in values.into_iter().enumerate() {
        if n > 0 {
            out.push('|');
        }
        push_key_text(&mut out, v);
    }
    out
}

/// The key of `before` when an update of a keyed table changed it (`None` when the key is
/// unchanged, the common case, which costs one comparison per key column, or when the table has
/// no key: its digest identity is followed by image instead).
pub fn changed_key(table: &TableSpec, before: &[Value], after: &[Value]) -> Option<String> {
    let key: &[usize] = if !table.primary_key.is_empty() {
        &table.primary_key
    } else {
        &table.unique_key
    };
    let moved = key.iter().any(|&i| before.get(i) != after.get(i));
    moved.then(|| pk_values(table, before))
}

/// What starts the `pk_values` of a row of a table without a usable key.
pub const ROW_DIGEST_PREFIX: &str = "sha256:";

/// [`ROW_DIGEST_PREFIX`] and the hex SHA-256 of the row image's JSON text.
pub fn row_digest(table: &TableSpec, values: &[Value]) -> String {
    image_digest(&row_json(table, values))
}

/// The `pk_values` of a keyless row whose image (as stored in `row_before`/`row_after`, keys
/// in table order) is `image_json`: [`ROW_DIGEST_PREFIX`] and its hex SHA-256.
pub fn image_digest(image_json: &str) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(image_json.as_bytes());
    let mut out = String::with_capacity(ROW_DIGEST_PREFIX.len() + 64);
    out.push_str(ROW_DIGEST_PREFIX);
    for b in hash {
        use std::fmt::Write;
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Appends the unquoted textual form of a key value, `|` and `\` escaped.
fn push_key_text(out: &mut String, v: &Value) {
    let escaped = |out: &mut String, s: &str| {
        for ch in s.chars() {
            if ch == '|' || ch == '\\' {
                out.push('\\');
            }
            out.push(ch);
        }
    };
    match v {
        Value::Null => out.push_str("NULL"),
        Value::String(s) => escaped(out, s),
        Value::Number(n) => {
            use std::fmt::Write;
            let _ = write!(out, "{n}");
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Array(_) | Value::Object(_) => escaped(out, &v.to_string()),
    }
}

/// Names of the columns whose value differs between the two images, in table order, as JSON
/// array text (written without building the list).
pub fn changed_columns_json(table: &TableSpec, before: &[Value], after: &[Value]) -> String {
    let mut out = Vec::with_capacity(64);
    out.push(b'[');
    for (i, c) in changed(table, before, after).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_text::push_str(&mut out, &c.name);
    }
    out.push(b']');
    json_text::into_string(out)
}

fn changed<'a>(
    table: &'a TableSpec,
    before: &'a [Value],
    after: &'a [Value],
) -> impl Iterator<Item = &'a ColumnSpec> {
    table
        .columns
        .iter()
        .zip(before.iter().zip(after))
        .filter(|(_, (b, a))| b != a)
        .map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::testkit::{full_bitmap, image, rows_event, rows_event_with, Kind};
    use super::*;
    use mysql_common::constants::ColumnType::*;
    use serde_json::json;

    /// `t(id INT PRIMARY KEY, name VARCHAR(20) utf8mb4, note TEXT NULL)`.
    fn people() -> TableSpec {
        TableSpec {
            schema: "app".into(),
            table: "people".into(),
            columns: vec![
                ColumnSpec::new("id", MYSQL_TYPE_LONG, 0),
                ColumnSpec {
                    charset: Some(255),
                    ..ColumnSpec::new("name", MYSQL_TYPE_VARCHAR, 80)
                },
                ColumnSpec {
                    charset: Some(255),
                    ..ColumnSpec::new("note", MYSQL_TYPE_BLOB, 2)
                },
            ],
            primary_key: vec![0],
            unique_key: vec![],
            non_transactional: false,
        }
    }

    fn person(id: i32, name: &str, note: Option<&str>) -> Vec<u8> {
        let name = [&[name.len() as u8][..], name.as_bytes()].concat();
        let note = note.map(|n| [&(n.len() as u16).to_le_bytes()[..], n.as_bytes()].concat());
        image(&[Some(&id.to_le_bytes()), Some(&name), note.as_deref()])
    }

    #[test]
    fn write_update_and_delete_yield_their_images() {
        let t = people();
        let (a, b) = (person(1, "ann", None), person(1, "anna", Some("hi")));
        let cases = [
            (Kind::Write, a.clone(), None, Some(json!([1, "ann", null]))),
            (Kind::Delete, a.clone(), Some(json!([1, "ann", null])), None),
            (
                Kind::Update,
                [a.clone(), b.clone()].concat(),
                Some(json!([1, "ann", null])),
                Some(json!([1, "anna", "hi"])),
            ),
            (
                Kind::WriteV1,
                a.clone(),
                None,
                Some(json!([1, "ann", null])),
            ),
            (
                Kind::DeleteV1,
                a.clone(),
                Some(json!([1, "ann", null])),
                None,
            ),
            (
                Kind::UpdateV1,
                [a, b].concat(),
                Some(json!([1, "ann", null])),
                Some(json!([1, "anna", "hi"])),
            ),
        ];
        for (kind, data, before, after) in cases {
            let rows = decode_rows(&t, &rows_event(kind, 3, &data)).unwrap();
            let as_json = |v: &Option<Vec<Value>>| v.clone().map(Value::Array);
            assert_eq!(rows.len(), 1, "{kind:?}");
            assert_eq!(as_json(&rows[0].before), before, "{kind:?}");
            assert_eq!(as_json(&rows[0].after), after, "{kind:?}");
        }
    }

    #[test]
    fn every_row_of_a_multi_row_event_is_decoded_in_order() {
        let t = people();
        let data: Vec<u8> = (0..100)
            .flat_map(|i| person(i, &format!("p{i}"), (i % 2 == 0).then_some("even")))
            .collect();
        let rows = decode_rows(&t, &rows_event(Kind::Write, 3, &data)).unwrap();
        assert_eq!(rows.len(), 100);
        assert_eq!(rows[99].after.as_ref().unwrap()[1], json!("p99"));
        assert_eq!(rows[98].after.as_ref().unwrap()[2], json!("even"));
        assert_eq!(rows[99].after.as_ref().unwrap()[2], Value::Null);
    }

    #[test]
    fn nulls_between_values_keep_the_cursor_aligned() {
        let mut t = people();
        t.columns
            .extend((0..7).map(|i| ColumnSpec::new(format!("n{i}"), MYSQL_TYPE_SHORT, 0)));
        let two = 2i16.to_le_bytes();
        let values: Vec<Option<&[u8]>> = vec![
            Some(&[9, 0, 0, 0]),
            None,
            None,
            Some(&two),
            None,
            Some(&two),
            None,
            None,
            None,
            Some(&two),
        ];
        let rows = decode_rows(&t, &rows_event(Kind::Write, 10, &image(&values))).unwrap();
        assert_eq!(
            Value::Array(rows[0].after.clone().unwrap()),
            json!([9, null, null, 2, null, 2, null, null, null, 2])
        );
    }

    #[test]
    fn partial_row_image_is_refused_naming_the_missing_columns() {
        let t = people();
        let minimal = [0b001u8];
        let ev = rows_event_with(Kind::Update, 3, &[&minimal, &full_bitmap(3)], &[]);
        assert_eq!(
            decode_rows(&t, &ev),
            Err(DecodeError::PartialImage {
                schema: "app".into(),
                table: "people".into(),
                missing: vec!["name".into(), "note".into()],
            })
        );
        let noblob = [0b011u8];
        let ev = rows_event_with(Kind::Write, 3, &[&noblob], &[]);
        let err = decode_rows(&t, &ev).unwrap_err();
        assert!(err.to_string().contains("binlog_row_image"), "{err}");
    }

    /// `g(id INT PRIMARY KEY, ii INT, gs INT AS (ii + 1) STORED, n INT)` as MariaDB 11 logs it.
    fn with_generated(key: Vec<usize>) -> TableSpec {
        let mut columns = vec![
            ColumnSpec::new("id", MYSQL_TYPE_LONG, 0),
            ColumnSpec::new("ii", MYSQL_TYPE_LONG, 0),
            ColumnSpec::new("gs", MYSQL_TYPE_LONG, 0),
            ColumnSpec::new("n", MYSQL_TYPE_LONG, 0),
        ];
        columns[2].generated = true;
        TableSpec {
            schema: "app".into(),
            table: "g".into(),
            columns,
            primary_key: key,
            unique_key: vec![],
            non_transactional: false,
        }
    }

    #[test]
    fn an_update_image_without_its_generated_columns_is_stored_without_them() {
        let t = with_generated(vec![0]);
        let int = |v: i32| v.to_le_bytes();
        // Bitmaps without column 2; each image's null bitmap covers its 3 columns (n is NULL).
        let without = [0b1011u8];
        let rows = [
            image(&[Some(&int(1)), Some(&int(1)), None]),
            image(&[Some(&int(1)), Some(&int(5)), None]),
        ]
        .concat();
        let ev = rows_event_with(Kind::UpdateV1, 4, &[&without, &without], &rows);
        let pairs = decode_rows(&t, &ev).unwrap();
        let pair = &pairs[0];
        assert_eq!(pair.absent, vec![false, false, true, false]);
        assert_eq!(
            image_json(&t, pair.before.as_ref().unwrap(), &pair.absent),
            r#"{"id":1,"ii":1,"n":null}"#
        );
        assert_eq!(
            image_json(&t, pair.after.as_ref().unwrap(), &pair.absent),
            r#"{"id":1,"ii":5,"n":null}"#
        );
        let (b, a) = (pair.before.as_ref().unwrap(), pair.after.as_ref().unwrap());
        assert_eq!(changed_columns_json(&t, b, a), r#"["ii"]"#);
        assert_eq!(pk_values(&t, a), "1");
    }

    #[test]
    fn a_missing_ordinary_column_is_still_a_partial_image_beside_generated_ones() {
        let t = with_generated(vec![0]);
        let without_gs_and_n = [0b0011u8];
        let ev = rows_event_with(Kind::DeleteV1, 4, &[&without_gs_and_n], &[]);
        assert_eq!(
            decode_rows(&t, &ev),
            Err(DecodeError::PartialImage {
                schema: "app".into(),
                table: "g".into(),
                missing: vec!["gs".into(), "n".into()],
            })
        );
    }

    #[test]
    fn a_missing_generated_column_the_key_needs_is_refused() {
        let without_gs = [0b1011u8];
        let in_key = with_generated(vec![0, 2]);
        let ev = rows_event_with(Kind::DeleteV1, 4, &[&without_gs], &[]);
        let err = decode_rows(&in_key, &ev).unwrap_err();
        assert!(
            matches!(&err, DecodeError::GeneratedKey { why, .. } if why.contains("gs is part of the row's key")),
            "{err}"
        );
        let keyless = with_generated(vec![]);
        let err = decode_rows(&keyless, &ev).unwrap_err();
        assert!(err.to_string().contains("no primary key"), "{err}");
    }

    /// `docs(id INT PRIMARY KEY, a JSON, n INT, b JSON)`.
    fn docs() -> TableSpec {
        TableSpec {
            schema: "app".into(),
            table: "docs".into(),
            columns: vec![
                ColumnSpec::new("id", MYSQL_TYPE_LONG, 0),
                ColumnSpec::new("a", MYSQL_TYPE_JSON, 4),
                ColumnSpec::new("n", MYSQL_TYPE_LONG, 0),
                ColumnSpec::new("b", MYSQL_TYPE_JSON, 4),
            ],
            primary_key: vec![0],
            unique_key: vec![],
            non_transactional: false,
        }
    }

    /// `{"a": <int16>}` in MySQL's binary JSON.
    fn doc_a(v: i16) -> Vec<u8> {
        let [lo, hi] = v.to_le_bytes();
        let doc = [
            0x00, 0x01, 0x00, 0x0c, 0x00, 0x0b, 0x00, 0x01, 0x00, 0x05, lo, hi, b'a',
        ];
        [&(doc.len() as u32).to_le_bytes()[..], &doc].concat()
    }

    /// A diff list (4-byte length, then diffs) replacing `$.a` by an int16.
    fn replace_a(v: i16) -> Vec<u8> {
        let [lo, hi] = v.to_le_bytes();
        let diff = [&[0u8, 3][..], b"$.a", &[3, 0x05, lo, hi]].concat();
        [&(diff.len() as u32).to_le_bytes()[..], &diff].concat()
    }

    #[test]
    fn partial_json_update_yields_the_same_pair_as_the_plain_update() {
        let t = docs();
        let int = |v: i32| v.to_le_bytes().to_vec();
        let before = image(&[
            Some(&int(1)),
            Some(&doc_a(1)),
            Some(&int(5)),
            Some(&doc_a(7)),
        ]);
        let plain_after = image(&[
            Some(&int(1)),
            Some(&doc_a(2)),
            Some(&int(6)),
            Some(&doc_a(7)),
        ]);
        let plain = rows_event(Kind::Update, 4, &[before.clone(), plain_after].concat());
        let expected = decode_rows(&t, &plain).unwrap();
        assert_eq!(
            Value::Array(expected[0].after.clone().unwrap()),
            json!([1, {"a": 2}, 6, {"a": 7}])
        );
        // value_options 1 (PARTIAL_JSON_UPDATES), partial bits: a yes, b no.
        let shared = [1u8, 0b01];
        let partial_after = image(&[
            Some(&int(1)),
            Some(&replace_a(2)),
            Some(&int(6)),
            Some(&doc_a(7)),
        ]);
        let rows = [before.clone(), shared.to_vec(), partial_after].concat();
        let ev = rows_event(Kind::PartialUpdate, 4, &[&rows[..], &rows[..]].concat());
        let got = decode_rows(&t, &ev).unwrap();
        assert_eq!(got, vec![expected[0].clone(), expected[0].clone()]);
        // value_options 0: no partial bits follow, every column is whole.
        let plain_after = image(&[
            Some(&int(1)),
            Some(&doc_a(2)),
            Some(&int(6)),
            Some(&doc_a(7)),
        ]);
        let rows = [before, vec![0], plain_after].concat();
        let got = decode_rows(&t, &rows_event(Kind::PartialUpdate, 4, &rows)).unwrap();
        assert_eq!(got, expected);
    }

    /// `levels` nested small arrays in MySQL's binary JSON (4-byte length first), the
    /// innermost one empty.
    fn nested_arrays(levels: usize) -> Vec<u8> {
        let mut payload = vec![0, 0, 4, 0];
        for _ in 1..levels {
            let size = (7 + payload.len()) as u16;
            payload = [&[1, 0][..], &size.to_le_bytes(), &[0x02, 7, 0], &payload].concat();
        }
        let doc = [vec![0x02], payload].concat();
        [&(doc.len() as u32).to_le_bytes()[..], &doc].concat()
    }

    #[test]
    fn json_at_mysqls_maximum_depth_keeps_its_deepest_level_as_text() {
        use super::json_raw::tests::nested;
        let t = docs();
        let int = |v: i32| v.to_le_bytes().to_vec();
        let row = |a: &[u8]| image(&[Some(&int(1)), Some(a), Some(&int(5)), None]);
        let stored = |doc: Value| Some(vec![json!(1), doc, json!(5), Value::Null]);
        let cases = [
            (100, nested(99, json!("json:[]"))),
            (99, nested(98, json!([]))),
        ];
        for (levels, doc) in cases {
            let ev = rows_event(Kind::Write, 4, &row(&nested_arrays(levels)));
            let rows = decode_rows(&t, &ev).unwrap();
            assert_eq!(rows[0].after, stored(doc), "{levels} levels");
        }
        // A partial update inside the deepest level applies to the source's document, and its
        // result is stored in the same form: INSERT at $[0]…[0][0] (the level-100 array's
        // first cell) of int16 5.
        let path = format!("${}", "[0]".repeat(100));
        let diff = [
            &[1u8][..],
            &super::testkit::lenenc_str(path.as_bytes()),
            &super::testkit::lenenc_str(&[0x05, 5, 0]),
        ]
        .concat();
        let diffs = [&(diff.len() as u32).to_le_bytes()[..], &diff].concat();
        let before = row(&nested_arrays(100));
        let after = image(&[Some(&int(1)), Some(&diffs), Some(&int(5)), None]);
        let data = [before, vec![1, 0b01], after].concat();
        let rows = decode_rows(&t, &rows_event(Kind::PartialUpdate, 4, &data)).unwrap();
        assert_eq!(rows[0].before, stored(nested(99, json!("json:[]"))));
        assert_eq!(rows[0].after, stored(nested(99, json!("json:[5]"))));
    }

    #[test]
    fn partial_json_update_that_cannot_apply_names_the_column() {
        let t = docs();
        let int = |v: i32| v.to_le_bytes().to_vec();
        let before = image(&[Some(&int(1)), Some(&doc_a(1)), Some(&int(5)), None]);
        // b is marked partial, but its before image is NULL: there is nothing to patch.
        let after = image(&[
            Some(&int(1)),
            Some(&doc_a(1)),
            Some(&int(5)),
            Some(&replace_a(2)),
        ]);
        let rows = [before, vec![1, 0b10], after].concat();
        let err = decode_rows(&t, &rows_event(Kind::PartialUpdate, 4, &rows)).unwrap_err();
        assert!(
            matches!(&err, DecodeError::InvalidValue { column, row: 0, .. } if column == "b"),
            "{err}"
        );
    }

    #[test]
    fn column_count_mismatch_is_refused() {
        let ev = rows_event(Kind::Write, 2, &[]);
        assert_eq!(
            decode_rows(&people(), &ev),
            Err(DecodeError::ColumnCountMismatch {
                schema: "app".into(),
                table: "people".into(),
                expected: 3,
                found: 2,
            })
        );
    }

    #[test]
    fn truncated_row_names_row_and_column() {
        let mut data = [person(1, "a", None), person(2, "bob", None)].concat();
        data.truncate(data.len() - 2);
        let err = decode_rows(&people(), &rows_event(Kind::Write, 3, &data)).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Truncated {
                schema: "app".into(),
                table: "people".into(),
                column: "name".into(),
                row: 1,
                needed: 3,
                remaining: 1,
            }
        );
        assert_eq!(
            err.to_string(),
            "rows event on app.people: row 1 column name: value needs 3 bytes, only 1 remain"
        );
    }

    #[test]
    fn value_errors_name_table_and_column() {
        let mut t = people();
        t.columns[1].charset = Some(28);
        let data = image(&[Some(&[1, 0, 0, 0]), Some(b"\x01\xa4"), None]);
        let err = decode_rows(&t, &rows_event(Kind::Write, 3, &data)).unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnsupportedCharset {
                schema: "app".into(),
                table: "people".into(),
                column: "name".into(),
                collation: 28,
            }
        );
    }

    fn keyed(primary_key: Vec<usize>, unique_key: Vec<usize>) -> TableSpec {
        TableSpec {
            primary_key,
            unique_key,
            ..people()
        }
    }

    #[test]
    fn pk_values_follow_the_keys_own_column_order() {
        let row = [json!(7), json!("ann"), json!("x|y")];
        let cases = [
            (keyed(vec![0], vec![]), "7"),
            (keyed(vec![1, 0], vec![]), "ann|7"),
            (keyed(vec![], vec![1]), "ann"),
            (keyed(vec![2], vec![1]), "x\\|y"),
            (keyed(vec![2, 1], vec![]), "x\\|y|ann"),
        ];
        for (t, expected) in cases {
            assert_eq!(pk_values(&t, &row), expected);
        }
    }

    #[test]
    fn pk_values_escape_bars_and_backslashes_and_spell_null_and_json() {
        let t = keyed(vec![0, 1, 2], vec![]);
        let row = [json!("a\\|b"), Value::Null, json!({"a": [1, "b|\\"]})];
        assert_eq!(pk_values(&t, &row), r#"a\\\|b|NULL|{"a":[1,"b\|\\\\"]}"#);
        // The two keys that were one text before escaping ("a|b" + "c" vs "a" + "b|c").
        let two = |a: &str, b: &str| pk_values(&keyed(vec![0, 1], vec![]), &[json!(a), json!(b)]);
        assert_ne!(two("a|b", "c"), two("a", "b|c"));
        let big = [json!(u64::MAX), json!("18446744073709551615"), json!(1.5)];
        assert_eq!(
            pk_values(&t, &big),
            "18446744073709551615|18446744073709551615|1.5"
        );
    }

    #[test]
    fn pk_values_without_a_key_is_a_bounded_digest_of_the_image() {
        let t = keyed(vec![], vec![]);
        let blob = "x".repeat(12 << 20);
        let row = [json!(1), json!(blob), Value::Null];
        let key = pk_values(&t, &row);
        assert!(key.starts_with(ROW_DIGEST_PREFIX), "{key}");
        assert_eq!(key.len(), ROW_DIGEST_PREFIX.len() + 64);
        assert_eq!(key, row_digest(&t, &row), "the same row, the same key");
        assert_ne!(key, pk_values(&t, &[json!(2), json!("x"), Value::Null]));
    }

    #[test]
    fn changed_key_names_the_old_key_only_when_a_keyed_update_moved_the_row() {
        let t = keyed(vec![0], vec![]);
        let (a, b) = (
            [json!(1), json!("x"), Value::Null],
            [json!(2), json!("x"), Value::Null],
        );
        assert_eq!(changed_key(&t, &a, &b).as_deref(), Some("1"));
        let same = [json!(1), json!("y"), Value::Null];
        assert_eq!(changed_key(&t, &a, &same), None);
        assert_eq!(changed_key(&keyed(vec![], vec![]), &a, &b), None, "keyless");
    }

    #[test]
    fn changed_columns_lists_only_differing_columns_in_table_order() {
        let t = people();
        let before = [json!(1), json!("ann"), Value::Null];
        let after = [json!(1), json!("anna"), json!("")];
        assert_eq!(
            changed_columns_json(&t, &before, &after),
            r#"["name","note"]"#
        );
        assert_eq!(changed_columns_json(&t, &before, &before), "[]");
    }

    #[test]
    fn row_json_is_the_row_object_in_column_order() {
        let t = people();
        let values = [json!(1), json!("a\"b"), Value::Null];
        let text = row_json(&t, &values);
        assert_eq!(text, r#"{"id":1,"name":"a\"b","note":null}"#);
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, Value::Object(row_object(&t, &values)));
    }

    #[test]
    fn row_object_keys_values_by_column_name() {
        let obj = row_object(&people(), &[json!(1), json!("ann"), Value::Null]);
        assert_eq!(
            Value::Object(obj),
            json!({"id": 1, "name": "ann", "note": null})
        );
    }
}

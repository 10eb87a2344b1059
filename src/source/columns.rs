//! Resolving a kept table's column layout when its first rows event arrives: from the table map
//! when it carries names (binlog_row_metadata=FULL), else from information_schema, checked
//! against the table map so that a table altered since the event is refused, never mislabelled.
//!
//! MariaDB's JSON is a LONGTEXT with a `json_valid` CHECK constraint that no table map mentions,
//! so on MariaDB the constraint is looked up once per table layout to store JSON as JSON.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use mysql_common::binlog::events::TableMapEvent;
use mysql_common::constants::ColumnType;

use super::schema::{SchemaError, ServerFlavor, TableSpec};
use super::{Flavor, SourceError};
use crate::position::BinlogPosition;

/// Why a table's columns cannot be known for sure.
#[derive(Debug, thiserror::Error)]
pub enum ColumnsError {
    /// The table map does not parse.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The live table differs from the one the binlog event was written for.
    #[error("cannot label the columns of {schema}.{table} for the rows event at {position}: the binlog has no column names (binlog_row_metadata=MINIMAL) and the live table may no longer match the event ({detail}); set binlog_row_metadata=FULL on the source, or restart from a later position with --reset")]
    Mismatch {
        /// Schema.
        schema: String,
        /// Table.
        table: String,
        /// The rows event's position.
        position: String,
        /// What differs.
        detail: String,
    },
}

/// Where and when the rows event that needs a layout was written.
#[derive(Clone, Debug)]
pub struct EventAt {
    /// The rows event's position.
    pub position: BinlogPosition,
    /// Its timestamp (seconds since the epoch).
    pub time: u32,
}

/// The layout of the table `tme` describes.
pub async fn resolve(
    conn: &mut Conn,
    flavor: Flavor,
    tme: &TableMapEvent<'_>,
    at: &EventAt,
) -> Result<TableSpec, SourceError> {
    let server_flavor = match flavor {
        Flavor::Mysql => ServerFlavor::MySql,
        Flavor::Mariadb => ServerFlavor::MariaDb,
    };
    let mut spec = match TableSpec::from_table_map_as(tme, server_flavor) {
        Ok(spec) => spec,
        Err(SchemaError::NoColumnNames { .. }) => {
            let mut spec =
                TableSpec::types_from_table_map(tme, server_flavor).map_err(ColumnsError::from)?;
            fill_from_information_schema(conn, &mut spec, at).await?;
            spec
        }
        Err(e) => return Err(ColumnsError::from(e).into()),
    };
    if flavor == Flavor::Mariadb {
        mark_json_columns(conn, &mut spec).await?;
        mark_generated_columns(conn, &mut spec).await?;
    }
    if spec.primary_key.is_empty() {
        spec.unique_key = unique_key(conn, &spec).await?;
    }
    let engine: Option<Option<String>> = conn
        .exec_first(
            "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&spec.schema, &spec.table),
        )
        .await?;
    spec.non_transactional = engine.flatten().is_some_and(|e| {
        NON_TRANSACTIONAL_ENGINES
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&e))
    });
    Ok(spec)
}

/// Engines whose changes a ROLLBACK cannot undo (a table dropped since, or of an engine not
/// listed, counts as transactional: its rows are dropped with a rolled-back group).
const NON_TRANSACTIONAL_ENGINES: [&str; 6] =
    ["MyISAM", "Aria", "MEMORY", "CSV", "ARCHIVE", "MRG_MyISAM"];

/// The row identity of a table without a primary key: the first (by name) UNIQUE key whose
/// parts are all NOT NULL columns the spec has (see [`first_identifying_key`]). Empty when no
/// key qualifies (`pk_values` is then a digest of the row).
async fn unique_key(conn: &mut Conn, spec: &TableSpec) -> Result<Vec<usize>, SourceError> {
    let parts: Vec<(String, Option<String>)> = conn
        .exec(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
               AND INDEX_NAME <> 'PRIMARY' ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (&spec.schema, &spec.table),
        )
        .await?;
    let column = |name: &str| {
        spec.column_index(name)
            .map(|i| (i, spec.columns[i].nullable))
    };
    Ok(first_identifying_key(&parts, column).map_or_else(Vec::new, |(_, key)| key))
}

/// The first key of `parts` (`information_schema.STATISTICS` rows of the table's unique keys:
/// index name and column, grouped by index, in key order) that identifies a row: `PRIMARY`, or
/// a key whose every part is a column `column` knows (its index, nullable) and NOT NULL. A
/// functional key part (no column name) or a nullable column disqualifies a key: NULLs do not
/// collide in a UNIQUE key. Returns the key's name and its column indexes in key order. The
/// one rule for the stream's `pk_values` and for `recover`'s live-row lookups.
pub fn first_identifying_key(
    parts: &[(String, Option<String>)],
    column: impl Fn(&str) -> Option<(usize, bool)>,
) -> Option<(String, Vec<usize>)> {
    let mut i = 0;
    while i < parts.len() {
        let name = &parts[i].0;
        let end = parts[i..]
            .iter()
            .position(|p| &p.0 != name)
            .map_or(parts.len(), |n| i + n);
        let key: Option<Vec<usize>> = parts[i..end]
            .iter()
            .map(|(_, part)| {
                let (index, nullable) = column(part.as_deref()?)?;
                (name == "PRIMARY" || !nullable).then_some(index)
            })
            .collect();
        if let Some(key) = key.filter(|k| !k.is_empty()) {
            return Some((name.clone(), key));
        }
        i = end;
    }
    None
}

type ColumnRow = (String, String, String, Option<String>, Option<u16>);

async fn fill_from_information_schema(
    conn: &mut Conn,
    spec: &mut TableSpec,
    at: &EventAt,
) -> Result<(), SourceError> {
    let mismatch = |detail: String| ColumnsError::Mismatch {
        schema: spec.schema.clone(),
        table: spec.table.clone(),
        position: at.position.to_string(),
        detail,
    };
    // A rename keeps the column count and types, so the check below cannot see it. MySQL and
    // MariaDB move CREATE_TIME on every ALTER: a table changed after the event is refused.
    // (One-second resolution: a change within the event's own second is not detected.)
    let changed: Option<Option<u64>> = conn
        .exec_first(
            "SELECT UNIX_TIMESTAMP(CREATE_TIME) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&spec.schema, &spec.table),
        )
        .await?;
    if let Some(Some(created)) = changed {
        if created > u64::from(at.time) {
            return Err(mismatch(format!(
                "the table was created or altered {} s after the event",
                created - u64::from(at.time)
            ))
            .into());
        }
    }
    let rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, c.COLLATION_NAME, co.ID \
             FROM information_schema.COLUMNS c \
             LEFT JOIN information_schema.COLLATIONS co ON co.COLLATION_NAME = c.COLLATION_NAME \
             WHERE c.TABLE_SCHEMA = ? AND c.TABLE_NAME = ? ORDER BY c.ORDINAL_POSITION",
            (&spec.schema, &spec.table),
        )
        .await?;
    if rows.len() != spec.columns.len() {
        return Err(mismatch(format!(
            "the event has {} columns, the live table {}",
            spec.columns.len(),
            rows.len()
        ))
        .into());
    }
    for (i, (name, data_type, column_type, _collation, collation_id)) in
        rows.into_iter().enumerate()
    {
        let col = &spec.columns[i];
        if !type_matches(col.col_type, &data_type) {
            return Err(mismatch(format!(
                "column #{} is {:?} in the event but {name} is {data_type} now",
                i + 1,
                col.col_type
            ))
            .into());
        }
        let col = &mut spec.columns[i];
        col.name = name;
        col.unsigned = column_type.to_ascii_lowercase().contains("unsigned");
        if collation_id.is_some() {
            col.charset = collation_id;
        }
        match data_type.as_str() {
            "enum" => col.enum_values = members(&column_type),
            "set" => col.set_values = members(&column_type),
            _ => {}
        }
    }
    let pk: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
             ORDER BY ORDINAL_POSITION",
            (&spec.schema, &spec.table),
        )
        .await?;
    spec.primary_key = pk.iter().filter_map(|n| spec.column_index(n)).collect();
    Ok(())
}

/// Whether information_schema's DATA_TYPE can be the binlog type `t`.
fn type_matches(t: ColumnType, data_type: &str) -> bool {
    use ColumnType::*;
    let d = data_type.to_ascii_lowercase();
    match t {
        MYSQL_TYPE_TINY => d == "tinyint" || d == "boolean",
        MYSQL_TYPE_SHORT => d == "smallint",
        MYSQL_TYPE_INT24 => d == "mediumint",
        MYSQL_TYPE_LONG => d == "int" || d == "integer",
        MYSQL_TYPE_LONGLONG => d == "bigint",
        MYSQL_TYPE_FLOAT => d == "float",
        MYSQL_TYPE_DOUBLE => d == "double" || d == "real",
        MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL => d == "decimal" || d == "numeric",
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => d == "date",
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => d == "datetime",
        MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => d == "timestamp",
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => d == "time",
        MYSQL_TYPE_YEAR => d == "year",
        MYSQL_TYPE_BIT => d == "bit",
        MYSQL_TYPE_ENUM => d == "enum",
        MYSQL_TYPE_SET => d == "set",
        MYSQL_TYPE_JSON => d == "json",
        MYSQL_TYPE_GEOMETRY => matches!(
            d.as_str(),
            "geometry"
                | "point"
                | "linestring"
                | "polygon"
                | "multipoint"
                | "multilinestring"
                | "multipolygon"
                | "geometrycollection"
                | "geomcollection"
        ),
        MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING => d == "varchar" || d == "varbinary",
        MYSQL_TYPE_STRING => d == "char" || d == "binary",
        MYSQL_TYPE_BLOB | MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB => {
            d.ends_with("text") || d.ends_with("blob") || d == "json"
        }
        _ => d == "vector",
    }
}

/// ENUM/SET members from COLUMN_TYPE text: `enum('a','b''c')`.
fn members(column_type: &str) -> Vec<String> {
    let Some(open) = column_type.find('(') else {
        return Vec::new();
    };
    let inner = column_type[open + 1..].trim_end_matches(')');
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = inner.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('\'', false) => quoted = true,
            ('\'', true) if chars.peek() == Some(&'\'') => {
                chars.next();
                cur.push('\'');
            }
            ('\'', true) => {
                quoted = false;
                out.push(std::mem::take(&mut cur));
            }
            (c, true) => cur.push(c),
            _ => {}
        }
    }
    out
}

/// Flags MariaDB text columns that carry a `json_valid` CHECK constraint.
async fn mark_json_columns(conn: &mut Conn, spec: &mut TableSpec) -> Result<(), SourceError> {
    let clauses: Vec<String> = conn
        .exec(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ? AND CHECK_CLAUSE LIKE 'json_valid(%'",
            (&spec.schema, &spec.table),
        )
        .await?;
    for clause in clauses {
        let name = clause
            .trim_start_matches("json_valid(")
            .trim_end_matches(')')
            .trim_matches('`');
        if let Some(i) = spec.column_index(name) {
            if spec.columns[i].col_type == ColumnType::MYSQL_TYPE_BLOB {
                spec.columns[i].json_text = true;
            }
        }
    }
    Ok(())
}

/// Marks the generated columns (VIRTUAL, STORED or PERSISTENT: MariaDB's `IS_GENERATED` is
/// `ALWAYS` for each), which MariaDB 11 leaves out of UPDATE and DELETE images. Read from the
/// live table like the JSON constraint above, so a column an ALTER after the event made
/// generated or ordinary is judged by what it is now.
async fn mark_generated_columns(conn: &mut Conn, spec: &mut TableSpec) -> Result<(), SourceError> {
    let names: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND IS_GENERATED = 'ALWAYS'",
            (&spec.schema, &spec.table),
        )
        .await?;
    for name in names {
        if let Some(i) = spec.column_index(&name) {
            spec.columns[i].generated = true;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_unique_key_of_not_null_columns_identifies_a_row() {
        // a: nullable, b and c: NOT NULL.
        let column = |name: &str| match name {
            "a" => Some((0, true)),
            "b" => Some((1, false)),
            "c" => Some((2, false)),
            _ => None,
        };
        let part = |k: &str, c: Option<&str>| (k.to_string(), c.map(str::to_string));
        let parts = vec![
            part("u1", Some("a")),
            part("u2", None),
            part("u3", Some("c")),
            part("u3", Some("b")),
            part("u4", Some("b")),
        ];
        assert_eq!(
            first_identifying_key(&parts, column),
            Some(("u3".to_string(), vec![2, 1]))
        );
        assert_eq!(first_identifying_key(&parts[..2], column), None);
        let primary = vec![part("PRIMARY", Some("a"))];
        assert_eq!(
            first_identifying_key(&primary, column),
            Some(("PRIMARY".to_string(), vec![0]))
        );
    }

    #[test]
    fn enum_members_unquote_doubled_quotes() {
        assert_eq!(members("enum('a','b''c','')"), vec!["a", "b'c", ""]);
        assert_eq!(members("set('x')"), vec!["x"]);
    }
}

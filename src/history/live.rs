//! The live shape of a source table, read from `information_schema`: what `recover` needs to
//! write literals (each column's [`SqlType`]), to key its statements (primary key, else a NOT
//! NULL unique key, else every column) and to compare with the shape a change was indexed under.
//!
//! # The schema fingerprint
//! A change's `schema_version` is the stream's FNV-1a fingerprint of the table's column names and
//! binlog type codes (`source::txn`), over the columns of its table map in order.
//! [`LiveTable::fingerprint`] computes the same fingerprint from `information_schema`, mapping
//! each `DATA_TYPE` to the code the table map carries once `source::schema` has normalised it
//! (CHAR/BINARY → STRING, all TEXT/BLOB → BLOB, DATE → NEWDATE, temporal types → their `2`
//! forms). A test streams a table of every type and checks that both agree.

use std::collections::BTreeSet;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use mysql_common::constants::ColumnType;

use crate::encoding::SqlType;
use crate::source::columns::first_identifying_key;
use crate::source::schema::schema_version;
use crate::source::Flavor;

/// One live column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveColumn {
    /// Column name.
    pub name: String,
    /// `information_schema.COLUMNS.DATA_TYPE`.
    pub data_type: String,
    /// How its values are written as SQL; `None` when no rule exists for the type.
    pub sql_type: Option<SqlType>,
    /// Accepts NULL.
    pub nullable: bool,
    /// A generated (virtual or stored) column: never assigned.
    pub generated: bool,
    /// `CHARACTER_SET_NAME` of a string column (`None` for other types).
    pub charset: Option<String>,
}

#[cfg(test)]
impl LiveColumn {
    /// A nullable, not generated column of `data_type` for unit tests.
    pub(crate) fn sample(name: &str, data_type: &str) -> LiveColumn {
        LiveColumn {
            name: name.into(),
            data_type: data_type.into(),
            sql_type: SqlType::from_column(data_type, false),
            nullable: true,
            generated: false,
            charset: None,
        }
    }
}

/// How statements find a row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// The primary key.
    Primary,
    /// A unique key whose columns are all NOT NULL.
    Unique,
    /// No usable key: every non-generated column, and `LIMIT 1`.
    AllColumns,
}

/// A live table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTable {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Columns in table order.
    pub columns: Vec<LiveColumn>,
    /// Indexes into `columns` of the key, in key order.
    pub key: Vec<usize>,
    /// What `key` is.
    pub key_kind: KeyKind,
}

/// `(COLUMN_NAME, DATA_TYPE, IS_NULLABLE, GENERATION_EXPRESSION or '', CHARACTER_SET_NAME)`.
type ColumnRow = (String, String, String, String, Option<String>);

impl LiveTable {
    /// Reads the table's shape; `None` when it does not exist.
    pub async fn load(
        conn: &mut Conn,
        flavor: Flavor,
        schema: &str,
        table: &str,
    ) -> Result<Option<LiveTable>, mysql_async::Error> {
        let rows: Vec<ColumnRow> = conn
            .exec(
                "SELECT COLUMN_NAME, DATA_TYPE, IS_NULLABLE, COALESCE(GENERATION_EXPRESSION, ''), \
                 CHARACTER_SET_NAME FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (schema, table),
            )
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let json_text = match flavor {
            Flavor::Mariadb => json_checked_columns(conn, schema, table).await?,
            Flavor::Mysql => BTreeSet::new(),
        };
        let columns: Vec<LiveColumn> = rows
            .into_iter()
            .map(
                |(name, data_type, nullable, generated, charset)| LiveColumn {
                    sql_type: SqlType::from_column(&data_type, json_text.contains(&name)),
                    nullable: nullable.eq_ignore_ascii_case("YES"),
                    generated: !generated.is_empty(),
                    charset,
                    name,
                    data_type,
                },
            )
            .collect();
        let (key, key_kind) = find_key(conn, schema, table, &columns).await?;
        Ok(Some(LiveTable {
            schema: schema.to_string(),
            table: table.to_string(),
            columns,
            key,
            key_kind,
        }))
    }

    /// Index of the column named `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The stream's fingerprint of this table, over the columns for which `keep` is true (in
    /// table order); `None` when a column's type has no binlog code here.
    pub fn fingerprint(&self, keep: impl Fn(&LiveColumn) -> bool) -> Option<u32> {
        let columns: Option<Vec<(&str, ColumnType)>> = self
            .columns
            .iter()
            .filter(|c| keep(c))
            .map(|c| Some((c.name.as_str(), binlog_type(&c.data_type)?)))
            .collect();
        Some(schema_version(columns?))
    }

    /// Names of the key columns, for messages: `PRIMARY KEY (id)`.
    pub fn key_description(&self) -> String {
        let names: Vec<&str> = self
            .key
            .iter()
            .map(|&i| self.columns[i].name.as_str())
            .collect();
        match self.key_kind {
            KeyKind::Primary => format!("PRIMARY KEY ({})", names.join(", ")),
            KeyKind::Unique => format!("UNIQUE KEY ({})", names.join(", ")),
            KeyKind::AllColumns => {
                "every column (the table has no primary or NOT NULL unique key)".to_string()
            }
        }
    }
}

/// The primary key, else the first unique key (by name) of NOT NULL columns, else every
/// non-generated column.
async fn find_key(
    conn: &mut Conn,
    schema: &str,
    table: &str,
    columns: &[LiveColumn],
) -> Result<(Vec<usize>, KeyKind), mysql_async::Error> {
    // COLUMN_NAME is NULL for a functional key part (`UNIQUE KEY ((lower(e)))`).
    let keys: Vec<(String, Option<String>)> = conn
        .exec(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
             ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX",
            (schema, table),
        )
        .await?;
    let column = |name: &str| {
        columns
            .iter()
            .position(|lc| lc.name == name)
            .map(|i| (i, columns[i].nullable))
    };
    if let Some((name, key)) = first_identifying_key(&keys, column) {
        let kind = if name == "PRIMARY" {
            KeyKind::Primary
        } else {
            KeyKind::Unique
        };
        return Ok((key, kind));
    }
    let all = (0..columns.len())
        .filter(|&i| !columns[i].generated)
        .collect();
    Ok((all, KeyKind::AllColumns))
}

/// MariaDB's JSON columns: text columns with a `json_valid(col)` CHECK constraint.
async fn json_checked_columns(
    conn: &mut Conn,
    schema: &str,
    table: &str,
) -> Result<BTreeSet<String>, mysql_async::Error> {
    let clauses: Vec<String> = conn
        .exec(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ? AND CHECK_CLAUSE LIKE 'json_valid(%'",
            (schema, table),
        )
        .await?;
    Ok(clauses
        .iter()
        .map(|c| {
            c.trim_start_matches("json_valid(")
                .trim_end_matches(')')
                .trim_matches('`')
                .to_string()
        })
        .collect())
}

/// The type code a table map carries for a column of this `DATA_TYPE`, as `source::schema`
/// normalises it.
pub fn binlog_type(data_type: &str) -> Option<ColumnType> {
    use ColumnType::*;
    Some(match data_type.to_ascii_lowercase().as_str() {
        "tinyint" => MYSQL_TYPE_TINY,
        "smallint" => MYSQL_TYPE_SHORT,
        "mediumint" => MYSQL_TYPE_INT24,
        "int" | "integer" => MYSQL_TYPE_LONG,
        "bigint" => MYSQL_TYPE_LONGLONG,
        "float" => MYSQL_TYPE_FLOAT,
        "double" | "real" => MYSQL_TYPE_DOUBLE,
        "decimal" | "numeric" => MYSQL_TYPE_NEWDECIMAL,
        "bit" => MYSQL_TYPE_BIT,
        "year" => MYSQL_TYPE_YEAR,
        "date" => MYSQL_TYPE_NEWDATE,
        "datetime" => MYSQL_TYPE_DATETIME2,
        "timestamp" => MYSQL_TYPE_TIMESTAMP2,
        "time" => MYSQL_TYPE_TIME2,
        "char" | "binary" => MYSQL_TYPE_STRING,
        "varchar" | "varbinary" => MYSQL_TYPE_VARCHAR,
        "tinytext" | "text" | "mediumtext" | "longtext" | "tinyblob" | "blob" | "mediumblob"
        | "longblob" => MYSQL_TYPE_BLOB,
        "enum" => MYSQL_TYPE_ENUM,
        "set" => MYSQL_TYPE_SET,
        "json" => MYSQL_TYPE_JSON,
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" | "geomcollection" => MYSQL_TYPE_GEOMETRY,
        "vector" => MYSQL_TYPE_VECTOR,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_fnv1a_over_names_and_binlog_type_codes() {
        let t = LiveTable {
            schema: "s".into(),
            table: "t".into(),
            columns: vec![
                LiveColumn::sample("id", "int"),
                LiveColumn::sample("note", "text"),
            ],
            key: vec![0],
            key_kind: KeyKind::Primary,
        };
        // FNV-1a of "id" [3, 0] "note" [252, 0], computed independently.
        let mut h: u32 = 0x811c_9dc5;
        for b in b"id\x03\x00note\xfc\x00" {
            h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
        }
        assert_eq!(t.fingerprint(|_| true), Some(h));
        assert_ne!(t.fingerprint(|c| c.name == "id"), Some(h));
        let mut odd = t.clone();
        odd.columns[1].data_type = "mystery".into();
        assert_eq!(odd.fingerprint(|_| true), None);
    }
}

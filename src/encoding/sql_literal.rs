//! The value encoding's second direction: a stored JSON value → the SQL literal that makes the
//! server store exactly the bytes the row image had (used by `bintrail recover`).
//!
//! # Invariants
//!
//! * **One rule per column type**, the inverse of the decode rule of the same type in
//!   [`super`] (README "Value encoding"). The stored JSON alone is ambiguous (a base64 string may
//!   be a BLOB or text that happens to look like base64), so the rule is chosen by the *live*
//!   column's type ([`SqlType::from_column`], from `information_schema`), never guessed from the
//!   value. A value that cannot belong to that type is an error, never a best effort.
//! * Literals assume the session that the recovery script sets up: `SET NAMES utf8mb4`,
//!   `time_zone = '+00:00'` (TIMESTAMP values are stored in UTC), backslash escapes on, and no
//!   `NO_ZERO_DATE`/`NO_ZERO_IN_DATE` (zero dates are kept as MySQL prints them).
//!
//! | Column type | Stored JSON | SQL literal |
//! |---|---|---|
//! | any, NULL | `null` | `NULL` (JSON column declared NOT NULL: the JSON null document) |
//! | integers | number | the number: `-9223372036854775808` |
//! | DECIMAL | string of exact digits | the digits unquoted, an exact DECIMAL literal: `-12.50` |
//! | FLOAT, DOUBLE | number | the number (`3.4028235e+38`); as a comparand, a FLOAT is written as the exact double of the f32 (`1.0000000149011612e-1`), since MySQL compares FLOAT columns as doubles |
//! | BIT | number | the number: `5` |
//! | YEAR | number | the number unquoted (a quoted `'0'` would be 2000): `0` |
//! | DATE, DATETIME, TIMESTAMP, TIME | string | quoted: `'2024-01-02 03:04:05.120'`, `'0000-00-00'` |
//! | CHAR, VARCHAR, TEXT, ENUM, SET | string | quoted and escaped: `'caf\'e'`, `'a,c'`, `''` |
//! | BINARY, VARBINARY, BLOB, GEOMETRY | base64 string | hex literal of the bytes: `X'616200'` |
//! | JSON (MySQL) | document | `CAST('{"a":1}' AS JSON)`, each `"json:…"` string replaced by the text it stands for |
//! | JSON (MariaDB, LONGTEXT + json_valid) | document | its compact text, quoted, `"json:…"` strings as for MySQL |
//! | VECTOR | array of numbers | `STRING_TO_VECTOR('[1.5,-2.0]')` |

use serde_json::Value;

use super::json_raw::unsealed;
use crate::sql::push_str_literal;

/// How the values of one live column are written as SQL literals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    /// TINYINT … BIGINT, signed or not.
    Integer,
    /// DECIMAL / NUMERIC.
    Decimal,
    /// FLOAT (single precision).
    Float,
    /// DOUBLE / REAL.
    Double,
    /// BIT(n).
    Bit,
    /// YEAR.
    Year,
    /// DATE, DATETIME, TIMESTAMP, TIME.
    Temporal,
    /// CHAR, VARCHAR and the TEXT types in a character set.
    Text,
    /// BINARY, VARBINARY and the BLOB types.
    Binary,
    /// ENUM.
    Enum,
    /// SET.
    Set,
    /// MySQL's binary JSON.
    Json,
    /// MariaDB's JSON: a LONGTEXT with a `json_valid` CHECK constraint.
    JsonText,
    /// GEOMETRY and its subtypes.
    Geometry,
    /// VECTOR (MySQL 9).
    Vector,
}

/// Why a stored value cannot be written as a literal of its column's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored value {value} cannot be a {sql_type:?} value: expected {expected}")]
pub struct LiteralError {
    /// The column's type.
    pub sql_type: SqlType,
    /// The stored value (cut to 80 characters).
    pub value: String,
    /// What the rule expects.
    pub expected: &'static str,
}

impl SqlType {
    /// The rule for a live column: its `information_schema.COLUMNS.DATA_TYPE`, and whether it is
    /// a MariaDB JSON text column (a `json_valid` CHECK constraint). `None` for a type with no
    /// rule.
    pub fn from_column(data_type: &str, json_text: bool) -> Option<SqlType> {
        use SqlType::*;
        let d = data_type.to_ascii_lowercase();
        Some(match d.as_str() {
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => Integer,
            "decimal" | "numeric" => Decimal,
            "float" => Float,
            "double" | "real" | "double precision" => Double,
            "bit" => Bit,
            "year" => Year,
            "date" | "datetime" | "timestamp" | "time" => Temporal,
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" if json_text => {
                JsonText
            }
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => Text,
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Binary,
            "enum" => Enum,
            "set" => Set,
            "json" => Json,
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
            | "multipolygon" | "geometrycollection" | "geomcollection" => Geometry,
            "vector" => Vector,
            _ => return None,
        })
    }
}

/// Appends the literal that stores `v` in a column of type `t`. `nullable` resolves the one
/// ambiguity of the stored form: a JSON column's `null` is SQL NULL when the column accepts it,
/// else the JSON null document.
pub fn push_literal(
    out: &mut String,
    t: SqlType,
    nullable: bool,
    v: &Value,
) -> Result<(), LiteralError> {
    use SqlType::*;
    let err = |expected| LiteralError {
        sql_type: t,
        value: v.to_string().chars().take(80).collect(),
        expected,
    };
    match (t, v) {
        (Json, Value::Null) if !nullable => out.push_str("CAST('null' AS JSON)"),
        (JsonText, Value::Null) if !nullable => out.push_str("'null'"),
        (_, Value::Null) => out.push_str("NULL"),
        (Integer | Bit | Year, Value::Number(n)) if n.is_i64() || n.is_u64() => {
            out.push_str(&n.to_string())
        }
        (Integer | Bit | Year, _) => return Err(err("an integer number")),
        (Decimal, Value::String(s)) if is_decimal(s) => out.push_str(s),
        (Decimal, _) => return Err(err("a string of decimal digits")),
        (Float | Double, Value::Number(n)) => out.push_str(&n.to_string()),
        (Float | Double, _) => return Err(err("a number")),
        (Temporal, Value::String(s)) if is_temporal(s) => push_str_literal(out, s),
        (Temporal, _) => return Err(err("a date or time string")),
        (Text | Enum | Set, Value::String(s)) => push_str_literal(out, s),
        (Text | Enum | Set, _) => return Err(err("a string")),
        (Binary | Geometry, Value::String(s)) => {
            let bytes = base64_decode(s).ok_or_else(|| err("base64 of the bytes"))?;
            push_hex(out, &bytes);
        }
        (Binary | Geometry, _) => return Err(err("a base64 string")),
        (Json, doc) => {
            out.push_str("CAST(");
            push_str_literal(out, &unsealed(doc));
            out.push_str(" AS JSON)");
        }
        (JsonText, doc) => push_str_literal(out, &unsealed(doc)),
        (Vector, Value::Array(items)) if items.iter().all(Value::is_number) => {
            out.push_str("STRING_TO_VECTOR(");
            push_str_literal(out, &v.to_string());
            out.push(')');
        }
        (Vector, _) => return Err(err("an array of numbers")),
    }
    Ok(())
}

/// The literal for `v` in a column of type `t` (see [`push_literal`]).
pub fn literal(t: SqlType, nullable: bool, v: &Value) -> Result<String, LiteralError> {
    let mut out = String::new();
    push_literal(&mut out, t, nullable, v)?;
    Ok(out)
}

/// Appends the value to compare a column of type `t` with (`col <=> value` in a WHERE clause):
/// the literal, except that a FLOAT is written as the exact double of its f32, because MySQL
/// compares a FLOAT column as a double (`f = 0.1` never matches the stored f32 0.1).
pub fn push_comparand(
    out: &mut String,
    t: SqlType,
    nullable: bool,
    v: &Value,
) -> Result<(), LiteralError> {
    match (t, v.as_f64()) {
        (SqlType::Float, Some(f)) => {
            out.push_str(&format!("{:e}", f as f32 as f64));
            Ok(())
        }
        _ => push_literal(out, t, nullable, v),
    }
}

/// `-?digits(.digits)?`: the only shape the DECIMAL rule stores.
fn is_decimal(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// Digits and the separators of MySQL's date and time forms, nothing else.
fn is_temporal(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b':' | b' ' | b'.'))
}

/// `X'…'`: a hex literal of the bytes (`X''` is the empty binary string).
fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(bytes.len() * 2 + 3);
    out.push_str("X'");
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out.push('\'');
}

/// Decodes standard, padded base64 (RFC 4648 section 4), the form the decode rule writes.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let sextet = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let quads = bytes.len() / 4;
    for (i, q) in bytes.chunks_exact(4).enumerate() {
        let pad = if i + 1 == quads {
            q.iter().rev().take_while(|&&c| c == b'=').count()
        } else {
            0
        };
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for &c in &q[..4 - pad] {
            n = n << 6 | sextet(c)?;
        }
        n <<= 6 * pad as u32;
        let group = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&group[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::cursor::Cursor;
    use super::super::text::base64;
    use super::super::value::decode_value;
    use super::*;
    use crate::encoding::spec::ColumnSpec;
    use mysql_common::constants::ColumnType::{self, *};
    use serde_json::json;

    fn col(t: ColumnType, meta: u16) -> ColumnSpec {
        ColumnSpec::new("c", t, meta)
    }

    fn with(c: ColumnSpec, f: impl FnOnce(&mut ColumnSpec)) -> ColumnSpec {
        let mut c = c;
        f(&mut c);
        c
    }

    fn utf8(t: ColumnType, meta: u16) -> ColumnSpec {
        with(col(t, meta), |c| c.charset = Some(255))
    }

    fn prefixed(len_bytes: usize, body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as u32).to_le_bytes()[..len_bytes].to_vec();
        v.extend_from_slice(body);
        v
    }

    /// (column as the binlog describes it, its row-image bytes, the live column's rule, the
    /// literal that stores the same value): decode rule ↔ literal, one row per type.
    fn cases() -> Vec<(ColumnSpec, Vec<u8>, SqlType, &'static str)> {
        use SqlType::*;
        let unsigned = |t| with(col(t, 0), |c| c.unsigned = true);
        let point = [
            &[0u8, 0, 0, 0, 1, 1, 0, 0, 0][..],
            &1f64.to_le_bytes(),
            &2f64.to_le_bytes(),
        ]
        .concat();
        vec![
            (col(MYSQL_TYPE_TINY, 0), vec![0x80], Integer, "-128"),
            (
                unsigned(MYSQL_TYPE_SHORT),
                vec![0xff, 0xff],
                Integer,
                "65535",
            ),
            (
                col(MYSQL_TYPE_INT24, 0),
                vec![0, 0, 0x80],
                Integer,
                "-8388608",
            ),
            (
                col(MYSQL_TYPE_LONG, 0),
                (-7i32).to_le_bytes().to_vec(),
                Integer,
                "-7",
            ),
            (
                unsigned(MYSQL_TYPE_LONGLONG),
                vec![0xff; 8],
                Integer,
                "18446744073709551615",
            ),
            (
                col(MYSQL_TYPE_LONGLONG, 0),
                i64::MIN.to_le_bytes().to_vec(),
                Integer,
                "-9223372036854775808",
            ),
            (
                col(MYSQL_TYPE_NEWDECIMAL, 4 << 8 | 2),
                vec![0x73, 0xdd],
                Decimal,
                "-12.34",
            ),
            (
                col(MYSQL_TYPE_FLOAT, 4),
                f32::MAX.to_le_bytes().to_vec(),
                Float,
                "3.4028235e+38",
            ),
            (
                col(MYSQL_TYPE_FLOAT, 4),
                0.1f32.to_le_bytes().to_vec(),
                Float,
                "0.1",
            ),
            (
                col(MYSQL_TYPE_DOUBLE, 8),
                (-2.5e-300f64).to_le_bytes().to_vec(),
                Double,
                "-2.5e-300",
            ),
            (
                col(MYSQL_TYPE_DOUBLE, 8),
                5f64.to_le_bytes().to_vec(),
                Double,
                "5.0",
            ),
            (
                col(MYSQL_TYPE_BIT, 1 << 8 | 5),
                vec![0x15, 0x01],
                Bit,
                "5377",
            ),
            (
                col(MYSQL_TYPE_BIT, 8 << 8),
                vec![0xff; 8],
                Bit,
                "18446744073709551615",
            ),
            (col(MYSQL_TYPE_YEAR, 0), vec![0], Year, "0"),
            (col(MYSQL_TYPE_YEAR, 0), vec![124], Year, "2024"),
            (
                col(MYSQL_TYPE_NEWDATE, 0),
                vec![0x22, 0xd0, 0x0f],
                Temporal,
                "'2024-01-02'",
            ),
            (
                col(MYSQL_TYPE_NEWDATE, 0),
                vec![0, 0, 0],
                Temporal,
                "'0000-00-00'",
            ),
            (
                col(MYSQL_TYPE_TIME2, 1),
                vec![0x7f, 0xff, 0xff, 0xf6],
                Temporal,
                "'-00:00:00.1'",
            ),
            (
                col(MYSQL_TYPE_TIMESTAMP2, 3),
                vec![0, 0, 0, 0, 0, 0],
                Temporal,
                "'0000-00-00 00:00:00.000'",
            ),
            (
                col(MYSQL_TYPE_DATETIME2, 0),
                vec![0x80, 0, 0, 0, 0],
                Temporal,
                "'0000-00-00 00:00:00'",
            ),
            (
                utf8(MYSQL_TYPE_VARCHAR, 200),
                prefixed(1, "it's a\\b\n😀".as_bytes()),
                Text,
                "'it\\'s a\\\\b\\n😀'",
            ),
            (
                with(col(MYSQL_TYPE_VARCHAR, 80), |c| c.charset = Some(8)),
                b"\x05caf\xe9\x80".to_vec(),
                Text,
                "'café€'",
            ),
            (
                col(MYSQL_TYPE_STRING, 4),
                b"\x02ab".to_vec(),
                Binary,
                "X'61620000'",
            ),
            (col(MYSQL_TYPE_VARCHAR, 10), b"\x00".to_vec(), Binary, "X''"),
            (
                col(MYSQL_TYPE_BLOB, 2),
                prefixed(2, &[0, 1, 0xfe]),
                Binary,
                "X'0001FE'",
            ),
            (
                with(utf8(MYSQL_TYPE_ENUM, 1), |c| {
                    c.enum_values = vec!["red".into(), "it's".into()]
                }),
                vec![2],
                Enum,
                "'it\\'s'",
            ),
            (
                with(utf8(MYSQL_TYPE_SET, 1), |c| {
                    c.set_values = vec!["a".into(), "b".into(), "c".into()]
                }),
                vec![0b101],
                Set,
                "'a,c'",
            ),
            (
                with(utf8(MYSQL_TYPE_SET, 1), |c| c.set_values = vec!["a".into()]),
                vec![0],
                Set,
                "''",
            ),
            (
                col(MYSQL_TYPE_JSON, 4),
                prefixed(
                    4,
                    &[
                        0x00, 0x01, 0x00, 0x0c, 0x00, 0x0b, 0x00, 0x01, 0x00, 0x05, 0x01, 0x00,
                        0x61,
                    ],
                ),
                Json,
                "CAST('{\"a\":1}' AS JSON)",
            ),
            (
                with(utf8(MYSQL_TYPE_BLOB, 4), |c| c.json_text = true),
                prefixed(4, br#"{"a":[1,2.5,"x'y"]}"#),
                JsonText,
                r#"'{"a":[1,2.5,"x\'y"]}'"#,
            ),
            (
                with(utf8(MYSQL_TYPE_BLOB, 4), |c| c.json_text = true),
                prefixed(4, br#"[1e400, 12345678901234567890123, "json:x"]"#),
                JsonText,
                r#"'[1e400,12345678901234567890123,"json:x"]'"#,
            ),
            (
                col(MYSQL_TYPE_GEOMETRY, 4),
                prefixed(4, &point),
                Geometry,
                "X'000000000101000000000000000000F03F0000000000000040'",
            ),
            (
                col(MYSQL_TYPE_VECTOR, 4),
                prefixed(
                    4,
                    &[1.5f32, -2.0]
                        .iter()
                        .flat_map(|f| f.to_le_bytes())
                        .collect::<Vec<_>>(),
                ),
                Vector,
                "STRING_TO_VECTOR('[1.5,-2.0]')",
            ),
        ]
    }

    #[test]
    fn every_decoded_type_becomes_the_literal_that_stores_it() {
        for (c, bytes, t, expected) in cases() {
            let mut cur = Cursor::new(&bytes);
            let stored = decode_value(&c, &mut cur).unwrap();
            assert!(cur.is_empty(), "{:?}: bytes left", c.col_type);
            // What the index gives back: the stored JSON text, parsed again.
            let reread: Value = serde_json::from_str(&stored.to_string()).unwrap();
            assert_eq!(
                literal(t, true, &reread).as_deref(),
                Ok(expected),
                "{:?}",
                c.col_type
            );
        }
    }

    #[test]
    fn json_form_strings_become_the_text_they_stand_for() {
        let mariadb = json!({
            "n": "json:12345678901234567890123",
            "s": "json:\"json:x\"",
            "x": "plain",
            "d": "json:{\"k\": 1, \"k\": 2}",
        });
        assert_eq!(
            literal(SqlType::JsonText, true, &mariadb).unwrap(),
            r#"'{"d":{"k": 1, "k": 2},"n":12345678901234567890123,"s":"json:x","x":"plain"}'"#
        );
        let deep = json!({"a": [["json:[1,\"x\"]"]]});
        assert_eq!(
            literal(SqlType::Json, true, &deep).unwrap(),
            r#"CAST('{"a":[[[1,"x"]]]}' AS JSON)"#
        );
    }

    #[test]
    fn null_is_null_except_in_a_not_null_json_column() {
        for t in [
            SqlType::Integer,
            SqlType::Text,
            SqlType::Binary,
            SqlType::Json,
        ] {
            assert_eq!(literal(t, true, &Value::Null).unwrap(), "NULL");
        }
        assert_eq!(
            literal(SqlType::Json, false, &Value::Null).unwrap(),
            "CAST('null' AS JSON)"
        );
        assert_eq!(
            literal(SqlType::JsonText, false, &Value::Null).unwrap(),
            "'null'"
        );
    }

    #[test]
    fn a_float_is_compared_as_the_exact_double_of_its_f32() {
        let mut out = String::new();
        push_comparand(&mut out, SqlType::Float, true, &json!(0.1)).unwrap();
        assert_eq!(out, "1.0000000149011612e-1");
        out.clear();
        push_comparand(&mut out, SqlType::Double, true, &json!(0.1)).unwrap();
        assert_eq!(out, "0.1");
    }

    #[test]
    fn values_that_cannot_belong_to_the_live_type_are_refused() {
        use SqlType::*;
        for (t, v) in [
            (Integer, json!("1")),
            (Integer, json!(1.5)),
            (Decimal, json!(1.5)),
            (Decimal, json!("1.5); DROP TABLE x; --")),
            (Decimal, json!("1.")),
            (Temporal, json!("2024-01-02'")),
            (Binary, json!("not base64!")),
            (Text, json!(1)),
            (Vector, json!(["a"])),
        ] {
            let e = literal(t, true, &v).unwrap_err();
            assert_eq!(e.sql_type, t, "{v}");
        }
    }

    #[test]
    fn base64_decoding_inverts_the_stored_form() {
        for len in 0..40u8 {
            let bytes: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(base64_decode(&base64(&bytes)), Some(bytes));
        }
        for bad in ["A", "AB=C", "A===", "A*AA"] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn live_column_types_map_to_one_rule_each() {
        use SqlType::*;
        for (data_type, json_text, rule) in [
            ("BIGINT", false, Some(Integer)),
            ("decimal", false, Some(Decimal)),
            ("longtext", true, Some(JsonText)),
            ("longtext", false, Some(Text)),
            ("varbinary", false, Some(Binary)),
            ("point", false, Some(Geometry)),
            ("timestamp", false, Some(Temporal)),
            ("vector", false, Some(Vector)),
            ("mystery", false, None),
        ] {
            assert_eq!(
                SqlType::from_column(data_type, json_text),
                rule,
                "{data_type}"
            );
        }
    }
}

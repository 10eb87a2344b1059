//! The value encoding from the other side: a value read from a live table with `SELECT` → the
//! JSON the stream stores for it, so that live rows and row images from the index can be
//! compared and merged (`bintrail reconstruct`).
//!
//! Each column is read through [`select_expr`], which asks the server for the one text form the
//! rule below parses exactly, over the text protocol, in a session with `time_zone = '+00:00'`
//! and `SET NAMES utf8mb4`:
//!
//! | Column type | Read as | Stored JSON |
//! |---|---|---|
//! | integers, YEAR | the column | the number |
//! | BIT | `col + 0` | the number |
//! | DECIMAL | the column (exactly s decimals) | the text, as a string |
//! | FLOAT | `col + 0e0` (the f32 widened exactly) | the f32's shortest form, as the stream |
//! | DOUBLE | the column (MySQL prints the shortest round-trip form) | the number |
//! | DATE, DATETIME, TIMESTAMP, TIME | the column, UTC | the text |
//! | CHAR … TEXT, ENUM, SET | the column | the text |
//! | BINARY … BLOB, GEOMETRY | the column | base64 of the bytes |
//! | JSON | the column | the document, sealed as the stream seals it |
//! | MariaDB JSON (LONGTEXT) | the column | the document, parsed as the stream parses it |
//! | VECTOR | `VECTOR_TO_STRING(col)` | each element as a FLOAT |
//!
//! One difference is known and not bridged: inside a MySQL JSON document, a DECIMAL scalar is
//! stored by the stream as a string of its digits (the binary form says it is a decimal), while
//! the document's text shows a number.

use serde_json::Value;

use super::sql_literal::SqlType;
use super::text::base64;
use super::{json_raw, mariadb_json, value};

/// Why a live value does not parse as its column's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("live value {value:?} of a {sql_type:?} column does not parse: {reason}")]
pub struct LiveValueError {
    /// The column's type.
    pub sql_type: SqlType,
    /// The text the server sent (cut to 80 characters).
    pub value: String,
    /// What is wrong.
    pub reason: String,
}

/// The select-list expression that reads the column `quoted` (an identifier already quoted,
/// possibly qualified) in the form [`stored`] parses.
pub fn select_expr(t: SqlType, quoted: &str) -> String {
    match t {
        SqlType::Bit => format!("{quoted} + 0"),
        SqlType::Float => format!("{quoted} + 0e0"),
        SqlType::Vector => format!("VECTOR_TO_STRING({quoted})"),
        _ => quoted.to_string(),
    }
}

/// The stored JSON of a value read through [`select_expr`] (`None`: SQL NULL).
pub fn stored(t: SqlType, raw: Option<&[u8]>) -> Result<Value, LiveValueError> {
    let Some(bytes) = raw else {
        return Ok(Value::Null);
    };
    let fail = |reason: &str| LiveValueError {
        sql_type: t,
        value: String::from_utf8_lossy(bytes).chars().take(80).collect(),
        reason: reason.to_string(),
    };
    if matches!(t, SqlType::Binary | SqlType::Geometry) {
        return Ok(Value::String(base64(bytes)));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| fail("not UTF-8"))?;
    match t {
        SqlType::Integer | SqlType::Year | SqlType::Bit => {
            if let Ok(n) = text.parse::<i64>() {
                Ok(Value::from(n))
            } else {
                text.parse::<u64>()
                    .map(Value::from)
                    .map_err(|_| fail("not an integer"))
            }
        }
        SqlType::Decimal | SqlType::Temporal | SqlType::Text | SqlType::Enum | SqlType::Set => {
            Ok(Value::String(text.to_string()))
        }
        SqlType::Float => {
            let wide: f64 = text.parse().map_err(|_| fail("not a number"))?;
            value::float(wide as f32).map_err(|_| fail("not finite"))
        }
        SqlType::Double => {
            let f: f64 = text.parse().map_err(|_| fail("not a number"))?;
            serde_json::Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| fail("not finite"))
        }
        SqlType::Json => {
            let mut doc: Value =
                serde_json::from_str(text).map_err(|e| fail(&format!("not JSON: {e}")))?;
            json_raw::seal(&mut doc);
            Ok(doc)
        }
        SqlType::JsonText => mariadb_json::parse(text).map_err(|_| fail("not JSON")),
        SqlType::Vector => {
            let items: Vec<f64> =
                serde_json::from_str(text).map_err(|e| fail(&format!("not a vector: {e}")))?;
            items
                .into_iter()
                .map(|f| value::float(f as f32).map_err(|_| fail("not finite")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        SqlType::Binary | SqlType::Geometry => unreachable!("handled above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(t: SqlType, text: &str) -> Value {
        stored(t, Some(text.as_bytes())).unwrap()
    }

    #[test]
    fn each_type_reads_back_in_the_stream_form() {
        assert_eq!(
            s(SqlType::Integer, "18446744073709551615"),
            json!(18446744073709551615u64)
        );
        assert_eq!(s(SqlType::Integer, "-9223372036854775808"), json!(i64::MIN));
        assert_eq!(s(SqlType::Decimal, "-12.50"), json!("-12.50"));
        // FLOAT 0.1 widened exactly is 0.10000000149011612; the stream stores 0.1.
        assert_eq!(s(SqlType::Float, "0.10000000149011612"), json!(0.1));
        assert_eq!(s(SqlType::Double, "-2.5e-300"), json!(-2.5e-300));
        assert_eq!(s(SqlType::Temporal, "-00:00:00.1"), json!("-00:00:00.1"));
        assert_eq!(s(SqlType::Binary, "ab\0\0"), json!("YWIAAA=="));
        assert_eq!(
            s(SqlType::Json, r#"{"a": [1, 2.5]}"#),
            json!({"a": [1, 2.5]})
        );
        assert_eq!(s(SqlType::Json, r#""json:x""#), json!("json:\"json:x\""));
        assert_eq!(
            s(SqlType::Vector, "[1.00000e+00,1.00000e-01]"),
            json!([1.0, 0.1])
        );
        assert_eq!(stored(SqlType::Text, None).unwrap(), Value::Null);
        assert!(stored(SqlType::Integer, Some(b"x")).is_err());
    }

    #[test]
    fn expressions_ask_for_the_parsed_forms() {
        assert_eq!(select_expr(SqlType::Bit, "`b`"), "`b` + 0");
        assert_eq!(select_expr(SqlType::Float, "`f`"), "`f` + 0e0");
        assert_eq!(select_expr(SqlType::Text, "`t`"), "`t`");
    }
}

//! Compact JSON text of decoded values, written straight into a byte buffer: exactly what
//! `serde_json::to_writer` writes (the tests compare the two), but with a fast path for what a
//! row image mostly holds. perf put serde_json's byte-by-byte string escaping at an eighth of a
//! catch-up's decode time; most strings need no escape at all, which one vectorisable pass
//! over the bytes proves.

use serde_json::Value;

/// Whether JSON needs `b` escaped inside a string.
#[inline]
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Appends `s` as a JSON string.
#[inline]
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    // No early exit: the fold compiles to a SIMD loop over the bytes.
    if s.bytes().fold(false, |any, b| any | needs_escape(b)) {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    } else {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// Appends `v` as compact JSON.
#[inline]
pub fn push_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::String(s) => push_str(out, s),
        Value::Number(n) => {
            use std::io::Write;
            let _ = write!(out, "{n}");
        }
        // JSON documents (JSON columns, VECTOR): rare, and nested.
        Value::Array(_) | Value::Object(_) => {
            let _ = serde_json::to_writer(&mut *out, v);
        }
    }
}

/// The bytes as a `String`: they were written as JSON from `&str`s, so they are UTF-8.
pub fn into_string(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_exactly_what_serde_json_writes() {
        for v in [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-9223372036854775808i64),
            json!(18446744073709551615u64),
            json!(1.5e300),
            json!(-0.0),
            json!("plain"),
            json!(""),
            json!(
                "quote \" backslash \\ slash / tab \t nl \n cr \r nul \u{0} bell \u{7} del \u{7f}"
            ),
            json!("ünïcödé 😀 \u{2028}"),
            json!({"b": [1, "x\"y", null], "a": {"c": 2.5}}),
            json!([]),
        ] {
            let mut fast = Vec::new();
            push_value(&mut fast, &v);
            assert_eq!(into_string(fast), serde_json::to_string(&v).unwrap(), "{v}");
        }
    }
}

//! MySQL's binary JSON (the JSON column's storage format, `sql-common/json_binary.cc`) to a
//! `serde_json::Value`.
//!
//! Layout: a type byte, then the value. Objects and arrays ("small" with 2-byte, "large" with
//! 4-byte counts and offsets) hold an element count, their byte size, key entries (offset,
//! 2-byte length) for objects, then value entries (type byte + inline value or offset); offsets
//! count from the start of the container. Literals and 16-bit integers are always inlined,
//! 32-bit integers only in large containers. Strings carry a variable-length size (7 bits per
//! byte, low first). An opaque value is a MySQL column type byte, a size and raw bytes.
//!
//! Invariant: the result is the document `SELECT` prints, with MySQL's text forms for the
//! scalars JSON itself lacks: DATE `"2024-01-02"`, DATETIME/TIMESTAMP
//! `"2024-01-02 03:04:05.000000"` and TIME `"03:04:05.000000"` (always six digits, as MySQL's
//! JSON printer does), DECIMAL as a string of its exact digits (serde_json here has no
//! arbitrary-precision numbers, and an f64 would round), any other opaque value as MySQL's
//! `"base64:type<N>:<base64>"`. An empty document (0 bytes) is `null`. The result is the
//! source's document; its containers at level 100 and strings beginning with `json:` are put in
//! the `json:` form afterwards ([`super::json_raw::seal`]), once any partial-update diffs, which
//! address the source's document, have applied.

use serde_json::{Map, Number, Value};

use super::cursor::{Cursor, Fault};
use super::temporal::{datetime_from_int_part, format_datetime, format_packed_time, push_date};
use super::{decimal, text};

/// MySQL caps document depth at 100; this bound only protects the stack from corrupt input.
const MAX_DEPTH: usize = 150;

/// Decodes one binary JSON document.
pub(crate) fn decode(bytes: &[u8]) -> Result<Value, Fault> {
    match bytes.split_first() {
        None => Ok(Value::Null),
        Some((&t, rest)) => value(t, rest, 0),
    }
}

fn bad(what: impl Into<String>) -> Fault {
    Fault::Invalid(format!("binary json: {}", what.into()))
}

fn value(t: u8, buf: &[u8], depth: usize) -> Result<Value, Fault> {
    if depth > MAX_DEPTH {
        return Err(bad("nested too deeply"));
    }
    let mut cur = Cursor::new(buf);
    let short = |_| bad(format!("value of type {t:#x} is truncated"));
    Ok(match t {
        0x00 => container(buf, false, true, depth)?,
        0x01 => container(buf, true, true, depth)?,
        0x02 => container(buf, false, false, depth)?,
        0x03 => container(buf, true, false, depth)?,
        0x04 => match cur.u8().map_err(short)? {
            0x00 => Value::Null,
            0x01 => Value::Bool(true),
            0x02 => Value::Bool(false),
            x => return Err(bad(format!("unknown literal {x:#x}"))),
        },
        0x05 => Value::from(cur.uint_le(2).map_err(short)? as u16 as i16),
        0x06 => Value::from(cur.uint_le(2).map_err(short)? as u16),
        0x07 => Value::from(cur.uint_le(4).map_err(short)? as u32 as i32),
        0x08 => Value::from(cur.uint_le(4).map_err(short)? as u32),
        0x09 => Value::from(cur.uint_le(8).map_err(short)? as i64),
        0x0a => Value::from(cur.uint_le(8).map_err(short)?),
        0x0b => {
            let f = f64::from_bits(cur.uint_le(8).map_err(short)?);
            Value::Number(Number::from_f64(f).ok_or_else(|| bad("double is not finite"))?)
        }
        0x0c => {
            let s = sized(&mut cur)?;
            Value::String(
                std::str::from_utf8(s)
                    .map_err(|_| bad("string is not utf-8"))?
                    .into(),
            )
        }
        0x0f => {
            let field_type = cur.u8().map_err(short)?;
            opaque(field_type, sized(&mut cur)?)?
        }
        x => return Err(bad(format!("unknown value type {x:#x}"))),
    })
}

/// A variable-length size followed by that many bytes.
fn sized<'a>(cur: &mut Cursor<'a>) -> Result<&'a [u8], Fault> {
    let mut len = 0u64;
    for i in 0..5 {
        let b = cur.u8().map_err(|_| bad("length is truncated"))?;
        len |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let n = usize::try_from(len).map_err(|_| bad("length overflows"))?;
            return cur
                .take(n)
                .map_err(|_| bad(format!("{n}-byte data is truncated")));
        }
    }
    Err(bad("length has more than 5 bytes"))
}

fn container(buf: &[u8], large: bool, object: bool, depth: usize) -> Result<Value, Fault> {
    let w = if large { 4 } else { 2 };
    let field = |at: usize, n: usize| -> Result<usize, Fault> {
        let bytes = buf
            .get(at..at + n)
            .ok_or_else(|| bad(format!("container header or entry at {at} is truncated")))?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0usize, |acc, b| acc << 8 | usize::from(*b)))
    };
    let count = field(0, w)?;
    let size = field(w, w)?;
    let buf = buf
        .get(..size)
        .ok_or_else(|| bad(format!("container of {size} bytes has only {}", buf.len())))?;
    let key_entries = 2 * w;
    let value_entries = key_entries + if object { count * (w + 2) } else { 0 };
    let entry = |i: usize| -> Result<Value, Fault> {
        let at = value_entries + i * (1 + w);
        let t = *buf.get(at).ok_or_else(|| bad("value entry is truncated"))?;
        let inlined = matches!(t, 0x04..=0x06) || (large && matches!(t, 0x07 | 0x08));
        if inlined {
            value(t, buf.get(at + 1..at + 1 + w).unwrap_or(&[]), depth + 1)
        } else {
            let offset = field(at + 1, w)?;
            let data = buf
                .get(offset..)
                .ok_or_else(|| bad("value offset is out of range"))?;
            value(t, data, depth + 1)
        }
    };
    if !object {
        return (0..count)
            .map(entry)
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    let mut map = Map::new();
    for i in 0..count {
        let at = key_entries + i * (w + 2);
        let (offset, len) = (field(at, w)?, field(at + w, 2)?);
        let key = buf
            .get(offset..offset + len)
            .ok_or_else(|| bad("key is out of range"))?;
        let key = std::str::from_utf8(key).map_err(|_| bad("key is not utf-8"))?;
        map.insert(key.to_owned(), entry(i)?);
    }
    Ok(Value::Object(map))
}

/// An opaque scalar: MySQL's text forms for temporal and decimal values.
fn opaque(field_type: u8, data: &[u8]) -> Result<Value, Fault> {
    let packed = || -> Result<i64, Fault> {
        let bytes: [u8; 8] = data
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("temporal value is shorter than 8 bytes"))?;
        Ok(i64::from_le_bytes(bytes))
    };
    Ok(Value::String(match field_type {
        // DATE, NEWDATE
        10 | 14 => {
            let dt = datetime_from_int_part(packed()?.unsigned_abs() >> 24);
            let mut out = String::with_capacity(10);
            push_date(&mut out, dt.year, dt.month, dt.day);
            out
        }
        // TIMESTAMP, DATETIME, TIMESTAMP2, DATETIME2
        7 | 12 | 17 | 18 => {
            let p = packed()?.unsigned_abs();
            let mut dt = datetime_from_int_part(p >> 24);
            dt.micros = (p % (1 << 24)) as u32;
            format_datetime(&dt, 6)
        }
        // TIME, TIME2
        11 | 19 => format_packed_time(packed()?, 6),
        // NEWDECIMAL: precision, scale, packed digits
        246 => {
            let (&p, rest) = data.split_first().ok_or_else(|| bad("decimal is empty"))?;
            let (&s, rest) = rest
                .split_first()
                .ok_or_else(|| bad("decimal has no scale"))?;
            decimal::decode(&mut Cursor::new(rest), p, s)?
        }
        _ => format!("base64:type{field_type}:{}", text::base64(data)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::temporal::tests::packed_time;
    use mysql_common::binlog::jsonb::Value as TheirValue;
    use mysql_common::io::ParseBuf;
    use serde_json::json;

    /// A test encoder of MySQL binary JSON (`json_binary::serialize_value`), small or large.
    fn encode(v: &Value, large: bool) -> Vec<u8> {
        let (t, payload) = encode_value(v, large);
        [vec![t], payload].concat()
    }

    fn varlen(mut n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    fn encode_value(v: &Value, large: bool) -> (u8, Vec<u8>) {
        match v {
            Value::Null => (0x04, vec![0x00]),
            Value::Bool(true) => (0x04, vec![0x01]),
            Value::Bool(false) => (0x04, vec![0x02]),
            Value::Number(n) if n.as_i64().is_some_and(|i| i16::try_from(i).is_ok()) => {
                (0x05, (n.as_i64().unwrap() as i16).to_le_bytes().to_vec())
            }
            Value::Number(n) if n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()) => {
                (0x07, (n.as_i64().unwrap() as i32).to_le_bytes().to_vec())
            }
            Value::Number(n) if n.is_i64() => (0x09, n.as_i64().unwrap().to_le_bytes().to_vec()),
            Value::Number(n) if n.is_u64() => (0x0a, n.as_u64().unwrap().to_le_bytes().to_vec()),
            Value::Number(n) => (0x0b, n.as_f64().unwrap().to_le_bytes().to_vec()),
            Value::String(s) => (0x0c, [varlen(s.len()), s.as_bytes().to_vec()].concat()),
            Value::Array(a) => {
                let items: Vec<(Option<&str>, &Value)> = a.iter().map(|v| (None, v)).collect();
                (
                    if large { 0x03 } else { 0x02 },
                    container_bytes(&items, large),
                )
            }
            Value::Object(o) => {
                let items: Vec<(Option<&str>, &Value)> =
                    o.iter().map(|(k, v)| (Some(k.as_str()), v)).collect();
                (
                    if large { 0x01 } else { 0x00 },
                    container_bytes(&items, large),
                )
            }
        }
    }

    fn container_bytes(items: &[(Option<&str>, &Value)], large: bool) -> Vec<u8> {
        let w = if large { 4 } else { 2 };
        let put = |out: &mut Vec<u8>, v: usize| out.extend_from_slice(&v.to_le_bytes()[..w]);
        let object = items.first().is_some_and(|i| i.0.is_some());
        let n = items.len();
        let mut offset = 2 * w + if object { n * (w + 2) } else { 0 } + n * (1 + w);
        let mut keys = Vec::new();
        let mut key_data = Vec::new();
        for (k, _) in items {
            if let Some(k) = k {
                put(&mut keys, offset + key_data.len());
                keys.extend_from_slice(&(k.len() as u16).to_le_bytes());
                key_data.extend_from_slice(k.as_bytes());
            }
        }
        offset += key_data.len();
        let mut entries = Vec::new();
        let mut data = Vec::new();
        for (_, v) in items {
            let (t, payload) = encode_value(v, large);
            entries.push(t);
            let inlined = matches!(t, 0x04..=0x06) || (large && matches!(t, 0x07 | 0x08));
            if inlined {
                let mut p = payload.clone();
                p.resize(w, 0);
                entries.extend_from_slice(&p);
            } else {
                put(&mut entries, offset + data.len());
                data.extend_from_slice(&payload);
            }
        }
        let size = offset + data.len();
        let mut out = Vec::new();
        put(&mut out, n);
        put(&mut out, size);
        [out, keys, entries, key_data, data].concat()
    }

    /// mysql_common's reading of the same bytes (no opaque values).
    fn theirs(bytes: &[u8]) -> Value {
        let v: TheirValue<'_> = ParseBuf(bytes).parse(()).unwrap();
        Value::try_from(v).unwrap()
    }

    #[test]
    fn json_documents_round_trip_in_small_and_large_layouts() {
        let docs = [
            json!(null),
            json!(true),
            json!({"a": 1}),
            json!({"a": [1, -2, 70000, -70000, 5_000_000_000i64, 18446744073709551615u64], "b": "x"}),
            json!([1.5, -0.0, 1e300, "😀", null, false, {"nested": {"deep": [[]]}}]),
            json!({"": "", "long key with spaces": {"k": "v"}}),
            json!("a string at the top"),
            json!(-9223372036854775808i64),
        ];
        for doc in docs {
            for large in [false, true] {
                let bytes = encode(&doc, large);
                assert_eq!(decode(&bytes).unwrap(), doc, "large={large}");
                assert_eq!(theirs(&bytes), doc, "mysql_common agrees (large={large})");
            }
        }
    }

    #[test]
    fn hand_encoded_small_object_decodes() {
        // {"a": 1}: count 1, size 12, key entry (offset 11, length 1), value entry int16 1, "a".
        let bytes = [
            0x00, 0x01, 0x00, 0x0c, 0x00, 0x0b, 0x00, 0x01, 0x00, 0x05, 0x01, 0x00, 0x61,
        ];
        assert_eq!(decode(&bytes).unwrap(), json!({"a": 1}));
    }

    #[test]
    fn empty_json_is_null() {
        assert_eq!(decode(&[]).unwrap(), Value::Null);
    }

    fn opaque_bytes(field_type: u8, data: &[u8]) -> Vec<u8> {
        [vec![0x0f, field_type], varlen(data.len()), data.to_vec()].concat()
    }

    fn packed_datetime(d: [i64; 6], us: i64) -> [u8; 8] {
        let ymd = ((d[0] * 13 + d[1]) << 5) | d[2];
        let int = ymd << 17 | d[3] << 12 | d[4] << 6 | d[5];
        ((int << 24) + us).to_le_bytes()
    }

    #[test]
    fn date_inside_json_stays_a_date() {
        let cases = [
            (
                opaque_bytes(10, &packed_datetime([2024, 1, 2, 0, 0, 0], 0)),
                "2024-01-02",
            ),
            (
                opaque_bytes(12, &packed_datetime([2024, 1, 2, 3, 4, 5], 120_000)),
                "2024-01-02 03:04:05.120000",
            ),
            (
                opaque_bytes(7, &packed_datetime([1970, 1, 1, 0, 0, 1], 0)),
                "1970-01-01 00:00:01.000000",
            ),
            (
                opaque_bytes(11, &packed_time(true, 1, 2, 3, 500_000).to_le_bytes()),
                "-01:02:03.500000",
            ),
            (
                opaque_bytes(11, &packed_time(false, 0, 0, 0, 0).to_le_bytes()),
                "00:00:00.000000",
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(decode(&bytes).unwrap(), json!(expected));
        }
    }

    #[test]
    fn decimal_inside_json_is_an_exact_string() {
        // DECIMAL(4,2) -12.34 packed: [0x73, 0xdd]; opaque data is precision, scale, packed.
        let bytes = opaque_bytes(246, &[4, 2, 0x73, 0xdd]);
        assert_eq!(decode(&bytes).unwrap(), json!("-12.34"));
    }

    #[test]
    fn other_opaque_values_use_mysqls_base64_form() {
        let bytes = opaque_bytes(15, b"\x00\x01");
        assert_eq!(decode(&bytes).unwrap(), json!("base64:type15:AAE="));
    }

    #[test]
    fn corrupt_json_is_an_error_not_a_panic() {
        let good = encode(&json!({"a": [1, 2, "three"]}), false);
        for cut in 1..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode(&[0x0e]).is_err());
        assert!(decode(&[0x04, 0x07]).is_err());
        assert!(decode(&[0x0c, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}

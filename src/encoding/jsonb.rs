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
//! `"base64:type<N>:<base64>"`. An empty document (0 bytes) is `null`.

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

//! One column value from the row image to JSON: the per-type dispatch.
//!
//! Invariant: each arm consumes exactly the bytes MySQL's `Field::pack` wrote for that type
//! (so the cursor stays aligned for the next column) and applies exactly one rule of the table
//! in the module documentation of [`super`].

use mysql_common::constants::ColumnType;
use serde_json::{Number, Value};

use super::cursor::{Cursor, Fault};
use super::text::{base64, base64_padded, codec, decode_text, Codec};
use super::{decimal, jsonb, temporal};
use crate::source::schema::ColumnSpec;

/// Decodes the (non-NULL) value of `col` at the cursor.
#[inline]
pub(crate) fn decode_value(col: &ColumnSpec, cur: &mut Cursor<'_>) -> Result<Value, Fault> {
    use ColumnType::*;
    let meta = col.meta;
    Ok(match col.col_type {
        MYSQL_TYPE_TINY => int(cur, 1, col.unsigned)?,
        MYSQL_TYPE_SHORT => int(cur, 2, col.unsigned)?,
        MYSQL_TYPE_INT24 => int(cur, 3, col.unsigned)?,
        MYSQL_TYPE_LONG => int(cur, 4, col.unsigned)?,
        MYSQL_TYPE_LONGLONG => int(cur, 8, col.unsigned)?,
        MYSQL_TYPE_FLOAT => float(f32::from_le_bytes(cur.array()?))?,
        MYSQL_TYPE_DOUBLE => double(f64::from_le_bytes(cur.array()?))?,
        MYSQL_TYPE_NEWDECIMAL => {
            Value::String(decimal::decode(cur, (meta >> 8) as u8, meta as u8)?)
        }
        MYSQL_TYPE_BIT => bit(cur, meta)?,
        MYSQL_TYPE_YEAR => match cur.u8()? {
            0 => Value::from(0u16),
            y => Value::from(1900 + u16::from(y)),
        },
        MYSQL_TYPE_NEWDATE | MYSQL_TYPE_DATE => Value::String(temporal::date(cur)?),
        MYSQL_TYPE_DATETIME2 => Value::String(temporal::datetime2(cur, meta)?),
        MYSQL_TYPE_TIMESTAMP2 => Value::String(temporal::timestamp2(cur, meta)?),
        MYSQL_TYPE_TIME2 => Value::String(temporal::time2(cur, meta)?),
        MYSQL_TYPE_DATETIME => Value::String(temporal::datetime(cur)?),
        MYSQL_TYPE_TIMESTAMP => Value::String(temporal::timestamp(cur)?),
        MYSQL_TYPE_TIME => Value::String(temporal::time(cur)?),
        MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING => {
            let bytes = length_prefixed(cur, if meta < 256 { 1 } else { 2 })?;
            string(col, bytes, 0)?
        }
        MYSQL_TYPE_STRING => {
            let bytes = length_prefixed(cur, if meta < 256 { 1 } else { 2 })?;
            string(col, bytes, usize::from(meta))?
        }
        MYSQL_TYPE_BLOB | MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB => {
            let bytes = length_prefixed(cur, pack_length(meta)?)?;
            string(col, bytes, 0)?
        }
        MYSQL_TYPE_ENUM => enum_member(col, cur)?,
        MYSQL_TYPE_SET => set_members(col, cur)?,
        MYSQL_TYPE_JSON => jsonb::decode(length_prefixed(cur, pack_length(meta)?)?)?,
        MYSQL_TYPE_GEOMETRY => Value::String(base64(length_prefixed(cur, pack_length(meta)?)?)),
        MYSQL_TYPE_VECTOR => vector(length_prefixed(cur, pack_length(meta)?)?)?,
        other => return Err(Fault::UnsupportedType(other as u8)),
    })
}

/// A little-endian integer of `n` bytes, sign-extended unless unsigned; always exact.
#[inline]
fn int(cur: &mut Cursor<'_>, n: usize, unsigned: bool) -> Result<Value, Fault> {
    let raw = cur.uint_le(n)?;
    Ok(if unsigned {
        Value::from(raw)
    } else {
        let shift = 64 - 8 * n as u32;
        Value::from(((raw << shift) as i64) >> shift)
    })
}

/// A FLOAT as the f64 nearest to the f32's shortest decimal form, so that it prints as the
/// float (3.4028235e38, not 3.4028234663852886e38).
fn float(f: f32) -> Result<Value, Fault> {
    let mut buf = [0u8; 32];
    let used = {
        use std::io::Write;
        let mut w = &mut buf[..];
        write!(w, "{f:e}").map_err(|_| Fault::Invalid("float does not format".into()))?;
        32 - w.len()
    };
    let text = std::str::from_utf8(&buf[..used]).unwrap_or("");
    let wide: f64 = text
        .parse()
        .map_err(|_| Fault::Invalid(format!("float {text} does not parse")))?;
    double(wide)
}

fn double(f: f64) -> Result<Value, Fault> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| Fault::Invalid(format!("floating-point value {f} is not finite")))
}

/// BIT(n): `(n + 7) / 8` big-endian bytes as an unsigned number.
fn bit(cur: &mut Cursor<'_>, meta: u16) -> Result<Value, Fault> {
    let bits = usize::from(meta >> 8) * 8 + usize::from(meta & 0xff);
    if bits == 0 || bits > 64 {
        return Err(Fault::Invalid(format!("bit width {bits}: expected 1..=64")));
    }
    Ok(Value::from(cur.uint_be(bits.div_ceil(8))?))
}

/// Bytes of the length prefix of BLOB-like types (1..=4).
fn pack_length(meta: u16) -> Result<usize, Fault> {
    match meta {
        1..=4 => Ok(usize::from(meta)),
        _ => Err(Fault::Invalid(format!(
            "length-prefix size {meta}: expected 1..=4"
        ))),
    }
}

/// A little-endian length of `prefix` bytes, then that many bytes.
#[inline]
fn length_prefixed<'a>(cur: &mut Cursor<'a>, prefix: usize) -> Result<&'a [u8], Fault> {
    let n = cur.uint_le(prefix)? as usize;
    cur.take(n)
}

/// A character or binary string; binary padded with 0x00 to `pad_to` bytes (BINARY(n)).
fn string(col: &ColumnSpec, bytes: &[u8], pad_to: usize) -> Result<Value, Fault> {
    let codec = codec(col.charset);
    if codec == Codec::Binary {
        return Ok(Value::String(base64_padded(bytes, pad_to)));
    }
    let text = decode_text(bytes, codec)?;
    if col.json_text {
        return serde_json::from_str(&text)
            .map_err(|e| Fault::Invalid(format!("json text does not parse: {e}")));
    }
    Ok(Value::String(text))
}

/// ENUM: 1 or 2 little-endian bytes, the 1-based member index; 0 is the error value "".
fn enum_member(col: &ColumnSpec, cur: &mut Cursor<'_>) -> Result<Value, Fault> {
    let index = cur.uint_le(enum_width(col.meta)?)? as usize;
    if index == 0 {
        return Ok(Value::String(String::new()));
    }
    col.enum_values
        .get(index - 1)
        .map(|m| Value::String(m.clone()))
        .ok_or_else(|| {
            Fault::Invalid(format!(
                "enum index {index}, but the column has {} members",
                col.enum_values.len()
            ))
        })
}

fn enum_width(meta: u16) -> Result<usize, Fault> {
    match meta {
        1 | 2 => Ok(usize::from(meta)),
        _ => Err(Fault::Invalid(format!("enum size {meta}: expected 1 or 2"))),
    }
}

/// SET: a little-endian bitmap of 1..=8 bytes; members joined by "," in definition order.
fn set_members(col: &ColumnSpec, cur: &mut Cursor<'_>) -> Result<Value, Fault> {
    let width = match col.meta {
        1..=8 => usize::from(col.meta),
        m => return Err(Fault::Invalid(format!("set size {m}: expected 1..=8"))),
    };
    let mut bits = cur.uint_le(width)?;
    let mut out = String::new();
    let mut i = 0;
    while bits != 0 {
        if bits & 1 == 1 {
            let member = col.set_values.get(i).ok_or_else(|| {
                Fault::Invalid(format!(
                    "set bit {i} is on, but the column has {} members",
                    col.set_values.len()
                ))
            })?;
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(member);
        }
        bits >>= 1;
        i += 1;
    }
    Ok(Value::String(out))
}

/// VECTOR: little-endian f32s, each as in [`float`].
fn vector(bytes: &[u8]) -> Result<Value, Fault> {
    if bytes.len() % 4 != 0 {
        return Err(Fault::Invalid(format!(
            "vector of {} bytes: expected a multiple of 4",
            bytes.len()
        )));
    }
    bytes
        .chunks_exact(4)
        .map(|c| float(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

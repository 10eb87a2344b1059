//! One column value from the row image to JSON: the per-type dispatch.
//!
//! Invariant: each arm consumes exactly the bytes MySQL's `Field::pack` wrote for that type
//! (so the cursor stays aligned for the next column) and applies exactly one rule of the table
//! in the module documentation of [`super`].

use mysql_common::constants::ColumnType;
use serde_json::{Number, Value};

use super::cursor::{Cursor, Fault};
use super::spec::ColumnSpec;
use super::text::{base64, base64_padded, codec, decode_text, Codec};
use super::{decimal, jsonb, mariadb_json, temporal};

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
pub(crate) fn float(f: f32) -> Result<Value, Fault> {
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
        return mariadb_json::parse(&text);
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use ColumnType::*;

    fn col(t: ColumnType, meta: u16) -> ColumnSpec {
        ColumnSpec::new("c", t, meta)
    }

    fn text_col(t: ColumnType, meta: u16, collation: u16) -> ColumnSpec {
        ColumnSpec {
            charset: Some(collation),
            ..col(t, meta)
        }
    }

    fn unsigned(t: ColumnType) -> ColumnSpec {
        ColumnSpec {
            unsigned: true,
            ..col(t, 0)
        }
    }

    /// Decodes `bytes` as one value of `c`, requiring every byte to be consumed.
    fn decode(c: &ColumnSpec, bytes: &[u8]) -> Result<Value, Fault> {
        let mut cur = Cursor::new(bytes);
        let v = decode_value(c, &mut cur)?;
        assert!(cur.is_empty(), "{} bytes left after {v}", cur.remaining());
        Ok(v)
    }

    fn check(cases: Vec<(ColumnSpec, Vec<u8>, Value)>) {
        for (c, bytes, expected) in cases {
            assert_eq!(
                decode(&c, &bytes),
                Ok(expected),
                "{:?} {bytes:02x?}",
                c.col_type
            );
        }
    }

    #[test]
    fn integers_are_exact_numbers_by_width_and_sign() {
        check(vec![
            (col(MYSQL_TYPE_TINY, 0), vec![0x80], json!(-128)),
            (unsigned(MYSQL_TYPE_TINY), vec![0xff], json!(255)),
            (col(MYSQL_TYPE_SHORT, 0), vec![0x00, 0x80], json!(-32768)),
            (unsigned(MYSQL_TYPE_SHORT), vec![0xff, 0xff], json!(65535)),
            (
                col(MYSQL_TYPE_LONG, 0),
                (-2_147_483_648i32).to_le_bytes().to_vec(),
                json!(-2_147_483_648i64),
            ),
            (
                unsigned(MYSQL_TYPE_LONG),
                vec![0xff; 4],
                json!(4_294_967_295u32),
            ),
            (
                col(MYSQL_TYPE_LONGLONG, 0),
                i64::MIN.to_le_bytes().to_vec(),
                json!(i64::MIN),
            ),
            (
                col(MYSQL_TYPE_LONGLONG, 0),
                (-1i64).to_le_bytes().to_vec(),
                json!(-1),
            ),
        ]);
    }

    #[test]
    fn mediumint_is_three_bytes_sign_extended() {
        check(vec![
            (
                col(MYSQL_TYPE_INT24, 0),
                vec![0x00, 0x00, 0x80],
                json!(-8_388_608),
            ),
            (col(MYSQL_TYPE_INT24, 0), vec![0xff, 0xff, 0xff], json!(-1)),
            (
                col(MYSQL_TYPE_INT24, 0),
                vec![0xff, 0xff, 0x7f],
                json!(8_388_607),
            ),
            (
                unsigned(MYSQL_TYPE_INT24),
                vec![0xff, 0xff, 0xff],
                json!(16_777_215),
            ),
        ]);
    }

    #[test]
    fn unsigned_bigint_max_stays_exact() {
        let v = decode(&unsigned(MYSQL_TYPE_LONGLONG), &[0xff; 8]).unwrap();
        assert_eq!(v.to_string(), "18446744073709551615");
        let v = decode(&col(MYSQL_TYPE_LONGLONG, 0), &i64::MIN.to_le_bytes()).unwrap();
        assert_eq!(v.to_string(), "-9223372036854775808");
    }

    #[test]
    fn float_prints_as_the_shortest_f32_and_double_as_f64() {
        let cases: [(ColumnSpec, Vec<u8>, &str); 6] = [
            (
                col(MYSQL_TYPE_FLOAT, 4),
                f32::MAX.to_le_bytes().to_vec(),
                "3.4028235e+38",
            ),
            (
                col(MYSQL_TYPE_FLOAT, 4),
                0.1f32.to_le_bytes().to_vec(),
                "0.1",
            ),
            (
                col(MYSQL_TYPE_FLOAT, 4),
                (-1.5f32).to_le_bytes().to_vec(),
                "-1.5",
            ),
            (
                col(MYSQL_TYPE_FLOAT, 4),
                1e-45f32.to_le_bytes().to_vec(),
                "1e-45",
            ),
            (
                col(MYSQL_TYPE_DOUBLE, 8),
                0.1f64.to_le_bytes().to_vec(),
                "0.1",
            ),
            (
                col(MYSQL_TYPE_DOUBLE, 8),
                f64::MIN_POSITIVE.to_le_bytes().to_vec(),
                "2.2250738585072014e-308",
            ),
        ];
        for (c, bytes, text) in cases {
            let v = decode(&c, &bytes).unwrap();
            assert_eq!(v.to_string(), text);
            if c.col_type == MYSQL_TYPE_FLOAT {
                let back = v.as_f64().unwrap() as f32;
                assert_eq!(back.to_le_bytes().to_vec(), bytes, "round-trips as f32");
            }
        }
    }

    #[test]
    fn bit_is_an_unsigned_big_endian_number() {
        check(vec![
            (col(MYSQL_TYPE_BIT, 1), vec![0x01], json!(1)),
            (
                col(MYSQL_TYPE_BIT, 1 << 8 | 2),
                vec![0x02, 0x01],
                json!(513),
            ),
            (col(MYSQL_TYPE_BIT, 8 << 8), vec![0xff; 8], json!(u64::MAX)),
            (col(MYSQL_TYPE_BIT, 5), vec![0x15], json!(21)),
        ]);
    }

    #[test]
    fn year_zero_stays_zero() {
        check(vec![
            (col(MYSQL_TYPE_YEAR, 0), vec![0], json!(0)),
            (col(MYSQL_TYPE_YEAR, 0), vec![1], json!(1901)),
            (col(MYSQL_TYPE_YEAR, 0), vec![124], json!(2024)),
            (col(MYSQL_TYPE_YEAR, 0), vec![255], json!(2155)),
        ]);
    }

    #[test]
    fn decimal_and_temporal_columns_are_strings() {
        check(vec![
            (
                col(MYSQL_TYPE_NEWDECIMAL, 4 << 8 | 2),
                vec![0x73, 0xdd],
                json!("-12.34"),
            ),
            (
                col(MYSQL_TYPE_NEWDATE, 0),
                vec![0x22, 0xd0, 0x0f],
                json!("2024-01-02"),
            ),
            (
                col(MYSQL_TYPE_TIME2, 1),
                vec![0x7f, 0xff, 0xff, 0xf6],
                json!("-00:00:00.1"),
            ),
            (
                col(MYSQL_TYPE_TIMESTAMP2, 0),
                vec![0, 0, 0, 1],
                json!("1970-01-01 00:00:01"),
            ),
            (
                col(MYSQL_TYPE_TIMESTAMP2, 3),
                vec![0, 0, 0, 0, 0, 0],
                json!("0000-00-00 00:00:00.000"),
            ),
            (
                col(MYSQL_TYPE_DATETIME2, 0),
                vec![0x80, 0, 0, 0, 0],
                json!("0000-00-00 00:00:00"),
            ),
        ]);
    }

    #[test]
    fn text_is_decoded_with_the_column_character_set() {
        let emoji = "héllo 😀".as_bytes();
        check(vec![
            (
                text_col(MYSQL_TYPE_VARCHAR, 200, 255),
                [&[emoji.len() as u8][..], emoji].concat(),
                json!("héllo 😀"),
            ),
            (
                text_col(MYSQL_TYPE_VARCHAR, 80, 8),
                b"\x05caf\xe9\x80".to_vec(),
                json!("café€"),
            ),
            (
                text_col(MYSQL_TYPE_STRING, 40, 45),
                b"\x02ab".to_vec(),
                json!("ab"),
            ),
            (
                text_col(MYSQL_TYPE_BLOB, 2, 33),
                b"\x03\x00abc".to_vec(),
                json!("abc"),
            ),
            (
                text_col(MYSQL_TYPE_STRING, 12, 11),
                b"\x03abc".to_vec(),
                json!("abc"),
            ),
        ]);
    }

    #[test]
    fn long_char_and_varchar_use_a_two_byte_length() {
        let long = "x".repeat(300);
        let mut bytes = 300u16.to_le_bytes().to_vec();
        bytes.extend_from_slice(long.as_bytes());
        check(vec![
            (
                text_col(MYSQL_TYPE_VARCHAR, 1200, 255),
                bytes.clone(),
                json!(long),
            ),
            (text_col(MYSQL_TYPE_STRING, 1020, 255), bytes, json!(long)),
            (
                text_col(MYSQL_TYPE_STRING, 1020, 255),
                vec![1, 0, b'y'],
                json!("y"),
            ),
        ]);
    }

    #[test]
    fn binary_is_padded_to_declared_length() {
        check(vec![
            (
                col(MYSQL_TYPE_STRING, 4),
                b"\x02ab".to_vec(),
                json!("YWIAAA=="),
            ),
            (
                text_col(MYSQL_TYPE_STRING, 4, 63),
                b"\x00".to_vec(),
                json!("AAAAAA=="),
            ),
            (
                col(MYSQL_TYPE_STRING, 2),
                b"\x02\xff\xfe".to_vec(),
                json!("//4="),
            ),
        ]);
    }

    #[test]
    fn varbinary_and_blobs_are_base64_of_their_bytes() {
        let big = vec![7u8; 70_000];
        let mut long_blob = (big.len() as u32).to_le_bytes().to_vec();
        long_blob.extend_from_slice(&big);
        check(vec![
            (
                text_col(MYSQL_TYPE_VARCHAR, 10, 63),
                b"\x03\x00\x01\x02".to_vec(),
                json!("AAEC"),
            ),
            (col(MYSQL_TYPE_VARCHAR, 10), b"\x00".to_vec(), json!("")),
            (
                col(MYSQL_TYPE_BLOB, 1),
                b"\x02\x00\x00".to_vec(),
                json!("AAA="),
            ),
            (col(MYSQL_TYPE_BLOB, 4), long_blob, json!(base64(&big))),
        ]);
    }

    #[test]
    fn text_in_other_character_sets_must_be_valid_utf8() {
        assert_eq!(
            decode(&text_col(MYSQL_TYPE_VARCHAR, 20, 28), b"\x02\xa4\xa4"),
            Err(Fault::UnsupportedCharset(28))
        );
        assert_eq!(
            decode(&text_col(MYSQL_TYPE_VARCHAR, 20, 28), b"\x02ok"),
            Ok(json!("ok"))
        );
        assert_eq!(
            decode(&text_col(MYSQL_TYPE_VARCHAR, 20, 255), b"\x01\xff"),
            Err(Fault::InvalidText(255))
        );
    }

    fn enum_col(meta: u16) -> ColumnSpec {
        ColumnSpec {
            enum_values: vec!["red".into(), "green".into(), "blue".into()],
            ..text_col(MYSQL_TYPE_ENUM, meta, 255)
        }
    }

    fn set_col(meta: u16, n: usize) -> ColumnSpec {
        ColumnSpec {
            set_values: (0..n).map(|i| format!("m{i}")).collect(),
            ..text_col(MYSQL_TYPE_SET, meta, 255)
        }
    }

    #[test]
    fn enum_is_its_member_name_and_index_zero_is_empty() {
        check(vec![
            (enum_col(1), vec![2], json!("green")),
            (enum_col(1), vec![0], json!("")),
            (enum_col(2), vec![3, 0], json!("blue")),
        ]);
        assert!(matches!(decode(&enum_col(1), &[4]), Err(Fault::Invalid(_))));
    }

    #[test]
    fn empty_set_is_empty_string() {
        check(vec![
            (set_col(1, 3), vec![0], json!("")),
            (set_col(1, 3), vec![0b101], json!("m0,m2")),
            (
                set_col(8, 64),
                vec![0, 0, 0, 0, 0, 0, 0, 0x80],
                json!("m63"),
            ),
            (set_col(2, 10), vec![0x01, 0x02], json!("m0,m9")),
        ]);
        assert!(matches!(
            decode(&set_col(1, 3), &[0b1000]),
            Err(Fault::Invalid(_))
        ));
    }

    #[test]
    fn json_column_is_the_document_and_empty_is_null() {
        let doc = [
            0x00, 0x01, 0x00, 0x0c, 0x00, 0x0b, 0x00, 0x01, 0x00, 0x05, 0x01, 0x00, 0x61,
        ];
        let mut bytes = (doc.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&doc);
        check(vec![
            (col(MYSQL_TYPE_JSON, 4), bytes, json!({"a": 1})),
            (col(MYSQL_TYPE_JSON, 4), vec![0, 0, 0, 0], Value::Null),
        ]);
    }

    #[test]
    fn mariadb_json_text_is_parsed() {
        let c = ColumnSpec {
            json_text: true,
            ..text_col(MYSQL_TYPE_BLOB, 4, 46)
        };
        let text = br#"{"a":[1,2.5,"x"]}"#;
        let mut bytes = (text.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(text);
        assert_eq!(decode(&c, &bytes), Ok(json!({"a": [1, 2.5, "x"]})));
        assert!(matches!(
            decode(&c, b"\x01\x00\x00\x00{"),
            Err(Fault::Invalid(_))
        ));
    }

    /// Decodes `text` as the value of a MariaDB JSON column (LONGTEXT, utf8mb4).
    fn mariadb_json(text: &str) -> Result<Value, Fault> {
        let c = ColumnSpec {
            json_text: true,
            ..text_col(MYSQL_TYPE_BLOB, 4, 46)
        };
        let mut bytes = (text.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(text.as_bytes());
        decode(&c, &bytes)
    }

    #[test]
    fn mariadb_json_numbers_beyond_a_double_keep_their_exact_text() {
        assert_eq!(
            mariadb_json(
                "[12345678901234567890123,0.1000000000000000055511151231257827,\
                 18446744073709551616,0.1,18446744073709551615]"
            ),
            Ok(json!([
                "json:12345678901234567890123",
                "json:0.1000000000000000055511151231257827",
                "json:18446744073709551616",
                0.1,
                18446744073709551615u64
            ]))
        );
    }

    #[test]
    fn mariadb_json_number_beyond_the_double_range_is_stored() {
        assert_eq!(
            mariadb_json(r#"{"big": 1e400, "tiny": -1e-400}"#),
            Ok(json!({"big": "json:1e400", "tiny": "json:-1e-400"}))
        );
    }

    #[test]
    fn geometry_is_base64_of_srid_and_wkb() {
        // POINT(1 2) with SRID 0: 4-byte SRID, then WKB (byte order, type 1, two doubles).
        let mut raw = vec![0, 0, 0, 0, 1, 1, 0, 0, 0];
        raw.extend_from_slice(&1f64.to_le_bytes());
        raw.extend_from_slice(&2f64.to_le_bytes());
        let mut bytes = (raw.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&raw);
        check(vec![(
            col(MYSQL_TYPE_GEOMETRY, 4),
            bytes,
            json!(base64(&raw)),
        )]);
    }

    #[test]
    fn vector_is_an_array_of_f32_numbers() {
        let raw: Vec<u8> = [1.5f32, -2.0, 0.1]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        let mut bytes = (raw.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&raw);
        let v = decode(&col(MYSQL_TYPE_VECTOR, 4), &bytes).unwrap();
        assert_eq!(v.to_string(), "[1.5,-2.0,0.1]");
        assert!(matches!(
            decode(&col(MYSQL_TYPE_VECTOR, 4), &[3, 0, 0, 0, 1, 2, 3]),
            Err(Fault::Invalid(_))
        ));
    }

    #[test]
    fn impossible_metadata_and_unknown_types_are_refused() {
        assert!(matches!(
            decode(&col(MYSQL_TYPE_BLOB, 0), &[0]),
            Err(Fault::Invalid(_))
        ));
        assert!(matches!(
            decode(&col(MYSQL_TYPE_BIT, 0), &[0]),
            Err(Fault::Invalid(_))
        ));
        assert!(matches!(
            decode(&col(MYSQL_TYPE_ENUM, 3), &[0]),
            Err(Fault::Invalid(_))
        ));
        assert_eq!(
            decode(&col(MYSQL_TYPE_TYPED_ARRAY, 0), &[]),
            Err(Fault::UnsupportedType(20))
        );
    }

    #[test]
    fn short_values_are_truncation_faults() {
        assert!(matches!(
            decode(&col(MYSQL_TYPE_LONG, 0), &[1, 2]),
            Err(Fault::Truncated {
                needed: 4,
                remaining: 2
            })
        ));
        assert!(matches!(
            decode(&text_col(MYSQL_TYPE_VARCHAR, 10, 255), &[5, b'a']),
            Err(Fault::Truncated {
                needed: 5,
                remaining: 1
            })
        ));
    }
}

//! DECIMAL(p,s) from MySQL's packed binary form to its exact text.
//!
//! The packed form (MySQL `strings/decimal.cc`, `decimal2bin`) stores the integer and the
//! fraction digits in big-endian groups of nine decimal digits per 4 bytes; a leading (integer)
//! or trailing (fraction) partial group of k digits takes `DIG2BYTES[k]` bytes. The sign is the
//! inverted top bit of the first byte, and a negative number has every byte inverted.
//!
//! Invariant: the text has no leading zeros, at least one integer digit, and exactly `s`
//! fraction digits (`-12.50` for DECIMAL(10,2)); zero is never negative.

use super::cursor::{be, Cursor, Fault};

const DIG_PER_GROUP: usize = 9;
const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
/// DECIMAL(65,0) packs into 30 bytes, the largest any column needs.
const MAX_BYTES: usize = 32;

/// Bytes of the packed form of DECIMAL(precision, scale).
pub(crate) fn packed_len(precision: usize, scale: usize) -> usize {
    let intg = precision - scale;
    (intg / DIG_PER_GROUP) * 4
        + DIG2BYTES[intg % DIG_PER_GROUP]
        + (scale / DIG_PER_GROUP) * 4
        + DIG2BYTES[scale % DIG_PER_GROUP]
}

/// Reads one DECIMAL(precision, scale) and returns its text.
pub(crate) fn decode(cur: &mut Cursor<'_>, precision: u8, scale: u8) -> Result<String, Fault> {
    let (p, s) = (usize::from(precision), usize::from(scale));
    if p == 0 || p > 65 || s > 30 || s > p {
        return Err(Fault::Invalid(format!(
            "decimal metadata ({p},{s}): expected precision 1..=65 and scale 0..=30, <= precision"
        )));
    }
    let len = packed_len(p, s);
    let mut buf = [0u8; MAX_BYTES];
    buf[..len].copy_from_slice(cur.take(len)?);
    let negative = buf[0] & 0x80 == 0;
    buf[0] ^= 0x80;
    if negative {
        buf[..len].iter_mut().for_each(|b| *b = !*b);
    }
    let groups = Groups::new(&buf[..len], p - s, s);
    let mut out = String::with_capacity(p + 3);
    if negative {
        out.push('-');
    }
    groups.write(&mut out)?;
    if negative && out[1..].bytes().all(|b| b == b'0' || b == b'.') {
        out.remove(0);
    }
    Ok(out)
}

/// The digit groups of an unsigned packed decimal.
struct Groups<'a> {
    bytes: &'a [u8],
    intg: usize,
    frac: usize,
}

impl<'a> Groups<'a> {
    fn new(bytes: &'a [u8], intg: usize, frac: usize) -> Self {
        Groups { bytes, intg, frac }
    }

    fn write(&self, out: &mut String) -> Result<(), Fault> {
        let mut pos = 0;
        let mut group = |digits: usize| -> Result<u32, Fault> {
            let n = if digits == DIG_PER_GROUP {
                4
            } else {
                DIG2BYTES[digits]
            };
            let v = be(&self.bytes[pos..pos + n]);
            pos += n;
            if v >= 10u64.pow(digits as u32) {
                return Err(Fault::Invalid(format!(
                    "decimal group {v} has more than {digits} digits"
                )));
            }
            Ok(v as u32)
        };
        let start = out.len();
        let lead = self.intg % DIG_PER_GROUP;
        if lead > 0 {
            push_group(out, group(lead)?, lead, start);
        }
        for _ in 0..self.intg / DIG_PER_GROUP {
            push_group(out, group(DIG_PER_GROUP)?, DIG_PER_GROUP, start);
        }
        if out.len() == start {
            out.push('0');
        }
        if self.frac > 0 {
            out.push('.');
            for _ in 0..self.frac / DIG_PER_GROUP {
                push_digits(out, group(DIG_PER_GROUP)?, DIG_PER_GROUP);
            }
            let tail = self.frac % DIG_PER_GROUP;
            if tail > 0 {
                push_digits(out, group(tail)?, tail);
            }
        }
        Ok(())
    }
}

/// Pushes an integer-part group: zero-padded unless no digit was written yet (leading zeros).
fn push_group(out: &mut String, v: u32, width: usize, start: usize) {
    if out.len() == start {
        if v != 0 {
            push_digits(out, v, 0);
        }
    } else {
        push_digits(out, v, width);
    }
}

/// Pushes `v` in decimal, zero-padded to `width` digits.
pub(crate) fn push_digits(out: &mut String, v: u32, width: usize) {
    let mut buf = [b'0'; 10];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for _ in (buf.len() - i)..width {
        out.push('0');
    }
    out.extend(buf[i..].iter().map(|&b| char::from(b)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::binlog::decimal::Decimal;
    use std::str::FromStr;

    /// MySQL's packed bytes of `text` as DECIMAL(p,s), produced by mysql_common's encoder.
    fn packed(text: &str, p: usize, s: usize) -> Vec<u8> {
        // An explicit sign keeps mysql_common's parser from trimming the zero padding.
        let (sign, digits) = text.strip_prefix('-').map_or(("+", text), |d| ("-", d));
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let int = int.trim_start_matches('0');
        let full = format!("{sign}{int:0>w$}.{frac:0<s$}", w = p - s);
        let full = full.trim_end_matches('.');
        let mut out = Vec::new();
        Decimal::from_str(full)
            .unwrap()
            .write_bin(&mut out)
            .unwrap();
        assert_eq!(out.len(), packed_len(p, s), "{text} as ({p},{s})");
        out
    }

    fn decode_all(bytes: &[u8], p: u8, s: u8) -> String {
        let mut cur = Cursor::new(bytes);
        let text = decode(&mut cur, p, s).unwrap();
        assert!(cur.is_empty());
        text
    }

    #[test]
    fn decimal_keeps_exact_digits_and_exactly_scale_decimals() {
        let cases = [
            ("-12.50", 10, 2, "-12.50"),
            ("12.5", 10, 2, "12.50"),
            ("0", 10, 2, "0.00"),
            (
                "0.000000000000000000000000000001",
                65,
                30,
                "0.000000000000000000000000000001",
            ),
            (
                "-99999999999999999999999999999999999.999999999999999999999999999999",
                65,
                30,
                "-99999999999999999999999999999999999.999999999999999999999999999999",
            ),
            ("12345678901234567890", 20, 0, "12345678901234567890"),
            ("-1", 1, 0, "-1"),
            ("0.5", 1, 1, "0.5"),
            ("-0.123456789", 9, 9, "-0.123456789"),
            ("1000000000.000000001", 19, 9, "1000000000.000000001"),
            ("-7", 3, 0, "-7"),
        ];
        for (value, p, s, expected) in cases {
            let bytes = packed(value, p, s);
            assert_eq!(
                decode_all(&bytes, p as u8, s as u8),
                expected,
                "{value} ({p},{s})"
            );
        }
    }

    #[test]
    fn decimal_agrees_with_mysql_common_reader() {
        for (value, p, s) in [
            ("-3.14", 5, 2),
            ("123456789012.345", 15, 3),
            ("-0.01", 4, 2),
        ] {
            let bytes = packed(value, p, s);
            let theirs = Decimal::read_bin(&bytes[..], p, s, false)
                .unwrap()
                .to_string();
            assert_eq!(decode_all(&bytes, p as u8, s as u8), theirs);
        }
    }

    #[test]
    fn decimal_with_impossible_metadata_is_refused() {
        let mut cur = Cursor::new(&[0x80]);
        assert!(matches!(decode(&mut cur, 10, 20), Err(Fault::Invalid(_))));
        assert!(matches!(decode(&mut cur, 66, 0), Err(Fault::Invalid(_))));
    }

    #[test]
    fn decimal_hand_computed_bytes_decode() {
        // DECIMAL(4,2) 12.34: one 1-byte group "12" (0x0c) and one 1-byte group "34" (0x22),
        // sign bit set for positive. Negated: every byte inverted.
        assert_eq!(decode_all(&[0x8c, 0x22], 4, 2), "12.34");
        assert_eq!(decode_all(&[0x73, 0xdd], 4, 2), "-12.34");
    }
}

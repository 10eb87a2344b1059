//! Bytes of CHAR/VARCHAR/TEXT/BINARY/BLOB columns to JSON strings: text through the column's
//! character set, binary as base64.
//!
//! Invariant: a string column never loses bytes silently. Text is either decoded exactly
//! (utf8mb3/utf8mb4/ascii as UTF-8, latin1 as MySQL's cp1252 variant) or refused with a
//! [`Fault`]; binary data is always base64 of every byte (BINARY(n) padded back to n bytes).

use super::cursor::Fault;

/// How a collation's bytes become a JSON string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    /// `binary` (63) or no collation at all: base64.
    Binary,
    /// MySQL latin1 (cp1252 with the five undefined bytes mapped to C1 controls).
    Latin1,
    /// utf8mb3, utf8mb4, ascii: must be valid UTF-8.
    Utf8(u16),
    /// UTF-16 big-endian (utf16, ucs2).
    Utf16Be(u16),
    /// UTF-16 little-endian (utf16le).
    Utf16Le(u16),
    /// UTF-32 big-endian (utf32).
    Utf32Be(u16),
    /// A known character set bintrail does not convert (cp1251, sjis, …): only pure ASCII text
    /// is certain to mean the same in it, anything else is refused.
    AsciiOnly(u16),
    /// A collation id this build does not know (e.g. newer MariaDB ids): accepted only when it
    /// is valid UTF-8, which every such id of MariaDB's utf8mb3/utf8mb4 families produces.
    Other(u16),
}

/// The codec for a column's collation id (`None` = binary, as information_schema reports it).
pub(crate) fn codec(charset: Option<u16>) -> Codec {
    match charset {
        None | Some(63) => Codec::Binary,
        Some(c) if is_latin1_collation(c) => Codec::Latin1,
        Some(c) if is_utf8_collation(c) => Codec::Utf8(c),
        Some(c) => by_charset_name(c),
    }
}

/// Classifies a collation by its character set's name (MySQL's ids; MariaDB's NO PAD variants
/// are its base id + 1024).
fn by_charset_name(id: u16) -> Codec {
    use mysql_common::collations::{Collation, CollationId};
    let base = if (1024..2048).contains(&id) {
        id - 1024
    } else {
        id
    };
    let collation_id = CollationId::from(base);
    if collation_id == CollationId::UNKNOWN_COLLATION_ID {
        return Codec::Other(id);
    }
    match Collation::from(collation_id).charset() {
        "utf8mb3" | "utf8mb4" | "utf8" | "ascii" => Codec::Utf8(id),
        "latin1" => Codec::Latin1,
        "utf16" | "ucs2" => Codec::Utf16Be(id),
        "utf16le" => Codec::Utf16Le(id),
        "utf32" => Codec::Utf32Be(id),
        "binary" => Codec::Binary,
        _ => Codec::AsciiOnly(id),
    }
}

/// latin1 collations: MySQL's eight plus MariaDB's NO PAD variants (id + 1024).
pub fn is_latin1_collation(id: u16) -> bool {
    matches!(id, 5 | 8 | 15 | 31 | 47 | 48 | 49 | 94 | 1032 | 1071)
}

/// utf8mb3, utf8mb4 and ascii collations of MySQL 8/9 (MariaDB's extra ids fall to `Other`,
/// which decodes the same valid UTF-8).
fn is_utf8_collation(id: u16) -> bool {
    matches!(id, 11 | 65 | 33 | 45 | 46 | 76 | 83 | 192..=215 | 223..=247 | 253 | 255..=323)
}

/// Decodes text bytes with the codec; `Binary` yields base64 (no padding to a length).
pub(crate) fn decode_text(bytes: &[u8], codec: Codec) -> Result<String, Fault> {
    match codec {
        Codec::Binary => Ok(base64(bytes)),
        Codec::Latin1 => Ok(latin1_to_string(bytes)),
        Codec::Utf8(c) => utf8(bytes).ok_or(Fault::InvalidText(c)),
        Codec::Other(c) => utf8(bytes).ok_or(Fault::UnsupportedCharset(c)),
        Codec::AsciiOnly(c) if bytes.is_ascii() => utf8(bytes).ok_or(Fault::UnsupportedCharset(c)),
        Codec::AsciiOnly(c) => Err(Fault::UnsupportedCharset(c)),
        Codec::Utf16Be(c) | Codec::Utf16Le(c) => {
            let little = matches!(codec, Codec::Utf16Le(_));
            if bytes.len() % 2 != 0 {
                return Err(Fault::InvalidText(c));
            }
            let units = bytes.chunks_exact(2).map(|p| {
                let pair = [p[0], p[1]];
                if little {
                    u16::from_le_bytes(pair)
                } else {
                    u16::from_be_bytes(pair)
                }
            });
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .map_err(|_| Fault::InvalidText(c))
        }
        Codec::Utf32Be(c) => {
            if bytes.len() % 4 != 0 {
                return Err(Fault::InvalidText(c));
            }
            bytes
                .chunks_exact(4)
                .map(|q| char::from_u32(u32::from_be_bytes([q[0], q[1], q[2], q[3]])))
                .collect::<Option<String>>()
                .ok_or(Fault::InvalidText(c))
        }
    }
}

fn utf8(bytes: &[u8]) -> Option<String> {
    std::str::from_utf8(bytes).ok().map(str::to_owned)
}

/// The characters of bytes 0x80..=0x9F in MySQL's latin1 (`ctype-latin1.c`, `cs_to_uni`):
/// Windows-1252, except that its five undefined bytes map to the C1 control of the same value.
const LATIN1_80_9F: [char; 32] = [
    '\u{20AC}', '\u{0081}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{008D}', '\u{017D}', '\u{008F}',
    '\u{0090}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}', '\u{0153}', '\u{009D}', '\u{017E}', '\u{0178}',
];

/// MySQL latin1 bytes as a string (every byte maps to exactly one character).
pub fn latin1_to_string(bytes: &[u8]) -> String {
    if bytes.is_ascii() {
        // SAFETY-free fast path: ASCII is valid UTF-8.
        return String::from_utf8(bytes.to_vec()).unwrap_or_default();
    }
    let mut out = String::with_capacity(bytes.len() + bytes.len() / 2);
    for &b in bytes {
        out.push(match b {
            0x80..=0x9f => LATIN1_80_9F[usize::from(b - 0x80)],
            _ => char::from(b),
        });
    }
    out
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard, padded base64 (RFC 4648 section 4).
pub fn base64(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    let mut chunks = bytes.chunks_exact(3);
    for c in &mut chunks {
        let n = u32::from(c[0]) << 16 | u32::from(c[1]) << 8 | u32::from(c[2]);
        out.extend_from_slice(&[
            ALPHABET[(n >> 18) as usize & 63],
            ALPHABET[(n >> 12) as usize & 63],
            ALPHABET[(n >> 6) as usize & 63],
            ALPHABET[n as usize & 63],
        ]);
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[
                ALPHABET[(n >> 18) as usize & 63],
                ALPHABET[(n >> 12) as usize & 63],
                b'=',
                b'=',
            ]);
        }
        [a, b] => {
            let n = u32::from(a) << 16 | u32::from(b) << 8;
            out.extend_from_slice(&[
                ALPHABET[(n >> 18) as usize & 63],
                ALPHABET[(n >> 12) as usize & 63],
                ALPHABET[(n >> 6) as usize & 63],
                b'=',
            ]);
        }
        _ => {}
    }
    // Every byte pushed comes from ALPHABET or is '=': ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// base64 of `bytes` followed by zero bytes up to `len` (BINARY(n): the binlog drops trailing
/// 0x00 that SELECT returns).
pub(crate) fn base64_padded(bytes: &[u8], len: usize) -> String {
    if bytes.len() >= len {
        return base64(bytes);
    }
    let mut padded = Vec::with_capacity(len);
    padded.extend_from_slice(bytes);
    padded.resize(len, 0);
    base64(&padded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_test_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd, 0x00]), "//79AA==");
    }

    #[test]
    fn binary_padding_restores_trailing_zero_bytes() {
        assert_eq!(base64_padded(b"ab", 4), base64(b"ab\0\0"));
        assert_eq!(base64_padded(b"", 3), "AAAA");
        assert_eq!(base64_padded(b"abcd", 4), base64(b"abcd"));
    }

    #[test]
    fn latin1_is_mysql_cp1252_with_c1_controls_for_undefined_bytes() {
        let cases: [(&[u8], &str); 6] = [
            (b"caf\xe9", "café"),
            (b"\x80", "€"),
            (b"\x9f", "Ÿ"),
            (b"\x81\x8d\x8f\x90\x9d", "\u{81}\u{8d}\u{8f}\u{90}\u{9d}"),
            (b"\xa0\xff", "\u{a0}ÿ"),
            (b"plain", "plain"),
        ];
        for (bytes, text) in cases {
            assert_eq!(latin1_to_string(bytes), text);
        }
    }

    #[test]
    fn collations_pick_their_codec() {
        let cases = [
            (None, Codec::Binary),
            (Some(63), Codec::Binary),
            (Some(8), Codec::Latin1),
            (Some(47), Codec::Latin1),
            (Some(255), Codec::Utf8(255)),
            (Some(45), Codec::Utf8(45)),
            (Some(33), Codec::Utf8(33)),
            (Some(11), Codec::Utf8(11)),
            (Some(28), Codec::AsciiOnly(28)),
            (Some(54), Codec::Utf16Be(54)),
            (Some(56), Codec::Utf16Le(56)),
            (Some(60), Codec::Utf32Be(60)),
            (Some(1070), Codec::Utf8(1070)),
            (Some(4000), Codec::Other(4000)),
        ];
        for (charset, expected) in cases {
            assert_eq!(codec(charset), expected, "{charset:?}");
        }
    }

    #[test]
    fn invalid_utf8_is_refused_naming_the_collation() {
        assert_eq!(
            decode_text(b"\xff", Codec::Utf8(255)),
            Err(Fault::InvalidText(255))
        );
        assert_eq!(
            decode_text(b"\xa4\xa4", Codec::AsciiOnly(28)),
            Err(Fault::UnsupportedCharset(28))
        );
        // cp1251 'РЇ' is D0 AF, which happens to be valid UTF-8 for 'Я': refused, not guessed.
        assert_eq!(
            decode_text(b"\xd0\xaf", Codec::AsciiOnly(51)),
            Err(Fault::UnsupportedCharset(51))
        );
        assert_eq!(
            decode_text(b"\x00a\x04\x2f", Codec::Utf16Be(54)),
            Ok("aЯ".into())
        );
        assert_eq!(decode_text(b"a\x00", Codec::Utf16Le(56)), Ok("a".into()));
        assert_eq!(
            decode_text(b"\x00\x00\x00a", Codec::Utf32Be(60)),
            Ok("a".into())
        );
        assert_eq!(
            decode_text("ok €".as_bytes(), Codec::Other(4000)),
            Ok("ok €".into())
        );
        assert_eq!(
            decode_text("😀".as_bytes(), Codec::Utf8(255)),
            Ok("😀".into())
        );
    }
}

//! Percent-encoding (RFC 3986), the one place bintrail writes or reads `%XX`: DSN user names
//! and databases (`dsn` reads them, `service` writes them into the unit's environment) and the
//! archive's Hive path segments (`archive::layout`).
//!
//! Every byte other than RFC 3986's unreserved characters (ASCII letters, digits, `-`, `.`,
//! `_`, `~`) is encoded, each byte of a multibyte character on its own, so the encoded text is
//! ASCII and holds no `/`, `%`, `=`, `@`, `:` or control character of its own.

use std::fmt::Write;

/// `text` with every byte but the unreserved characters as `%XX` (upper-case hex).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The inverse of [`encode`], also accepting lower-case hex and unencoded bytes; `None` for a
/// `%` without two hex digits or bytes that are not UTF-8.
pub fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_bytes_and_multibyte_characters_round_trip() {
        assert_eq!(encode("a/b\n%"), "a%2Fb%0A%25");
        assert_eq!(encode("naïve"), "na%C3%AFve");
        assert_eq!(encode("A-z_0.9~"), "A-z_0.9~");
        for text in ["a/b", "..", "x\ny", "50%", "a=b", "naïve", "u@h:p", ""] {
            assert_eq!(decode(&encode(text)).as_deref(), Some(text));
        }
    }

    #[test]
    fn malformed_escapes_are_refused() {
        assert_eq!(decode("%2f"), Some("/".into()));
        assert_eq!(decode("%2"), None);
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("%FF"), None);
    }
}

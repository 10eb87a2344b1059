//! MariaDB's JSON (a LONGTEXT with a `json_valid` CHECK constraint, flagged `json_text`) from
//! its text to the stored document.
//!
//! Invariant: every text MariaDB's `json_valid` accepts is stored, and nothing in it is
//! changed silently. The document is the parsed value, with these rules where a plain JSON
//! parser would round, refuse or drop:
//!
//! * A number is a JSON number when one keeps its value exactly: an integer that fits 64 bits,
//!   or a number whose double prints back as the same decimal value (`0.1`, `1.50`, `1E2`).
//!   Any other (`12345678901234567890123`, `0.1000000000000000055511151231257827`, `1e400`,
//!   `1e-400`) is stored in the `json:` form of [`super::json_raw`] with the source's exact text:
//!   `"json:1e400"`. `json_valid` also accepts a number ending in `.` (`1.`, `1.e5`).
//! * An object with a key twice (`json_valid` accepts it, a JSON object cannot hold it) is
//!   stored in the `json:` form with the source's exact text of that object.
//! * An escape JSON does not define (`\x`, `\'`; accepted by `json_valid`) is the character
//!   itself, as MariaDB's `JSON_UNQUOTE` reads it.
//! * Strings that begin with `json:` and containers deeper than
//!   [`super::json_raw::DEEPEST_KEPT`] are in the `json:` form, as for every JSON column.
//!
//! Written by hand (serde_json rounds numbers to f64 and refuses `1e400` and `1.`): one forward
//! pass over the bytes, objects into serde_json's map as its own parser builds them.

use serde_json::{Map, Number, Value};

use super::cursor::Fault;
use super::json_raw::{self, DEEPEST_KEPT};

/// Deeper than any document MariaDB accepts (32 levels): only protects the stack.
const MAX_LEVEL: usize = 150;

/// Parses one MariaDB JSON text into its stored form.
pub(crate) fn parse(text: &str) -> Result<Value, Fault> {
    let mut p = Parser { text, at: 0 };
    p.skip_ws();
    let v = p.value(1)?;
    p.skip_ws();
    if p.at < text.len() {
        return Err(p.bad("text continues after the document"));
    }
    Ok(v)
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn bad(&self, what: &str) -> Fault {
        Fault::Invalid(format!(
            "json text does not parse: {what} at byte {}",
            self.at
        ))
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), Fault> {
        if self.peek() == Some(b) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.bad(&format!("expected '{}'", b as char)))
        }
    }

    /// One value; `level` is the nesting level a container here would have.
    fn value(&mut self, level: usize) -> Result<Value, Fault> {
        match self.peek() {
            Some(b'{' | b'[') if level > MAX_LEVEL => Err(self.bad("nested too deeply")),
            Some(b'{') => self.container(level, true),
            Some(b'[') => self.container(level, false),
            Some(b'"') => self.string().map(json_raw::string),
            Some(b'-' | b'0'..=b'9') => Ok(self.number()),
            _ => self.literal(),
        }
    }

    fn literal(&mut self) -> Result<Value, Fault> {
        for (word, v) in [
            ("true", Value::Bool(true)),
            ("false", Value::Bool(false)),
            ("null", Value::Null),
        ] {
            if self.text[self.at..].starts_with(word) {
                self.at += word.len();
                return Ok(v);
            }
        }
        Err(self.bad("expected a value"))
    }

    /// An object or array; in the `json:` form (its exact text) when it is deeper than the
    /// index holds or, for an object, has a key twice.
    fn container(&mut self, level: usize, object: bool) -> Result<Value, Fault> {
        let start = self.at;
        let close = if object { b'}' } else { b']' };
        self.at += 1;
        self.skip_ws();
        let mut map = Map::new();
        let mut items = Vec::new();
        let mut duplicate = false;
        if self.peek() == Some(close) {
            self.at += 1;
        } else {
            loop {
                if object {
                    let key = self.string()?;
                    self.skip_ws();
                    self.expect(b':')?;
                    self.skip_ws();
                    let v = self.value(level + 1)?;
                    duplicate |= map.insert(key, v).is_some();
                } else {
                    items.push(self.value(level + 1)?);
                }
                self.skip_ws();
                match self.peek() {
                    Some(b',') => {
                        self.at += 1;
                        self.skip_ws();
                    }
                    Some(b) if b == close => {
                        self.at += 1;
                        break;
                    }
                    _ => return Err(self.bad("expected ',' or the container's end")),
                }
            }
        }
        Ok(if duplicate || level > DEEPEST_KEPT {
            json_raw::raw(&self.text[start..self.at])
        } else if object {
            Value::Object(map)
        } else {
            Value::Array(items)
        })
    }

    /// A string at the cursor (its opening quote), unescaped.
    fn string(&mut self) -> Result<String, Fault> {
        self.expect(b'"')?;
        let bytes = self.text.as_bytes();
        let start = self.at;
        while let Some(&b) = bytes.get(self.at) {
            match b {
                b'"' => {
                    self.at += 1;
                    return Ok(self.text[start..self.at - 1].to_owned());
                }
                b'\\' => return self.escaped_string(start),
                0x00..=0x1f => return Err(self.bad("control character in a string")),
                _ => self.at += 1,
            }
        }
        Err(self.bad("unterminated string"))
    }

    /// The rest of a string with escapes, from its first `\`; `start` is its first byte.
    fn escaped_string(&mut self, start: usize) -> Result<String, Fault> {
        let mut out = String::from(&self.text[start..self.at]);
        loop {
            let rest = &self.text[self.at..];
            let plain = rest
                .find(|c: char| c == '"' || c == '\\' || c < ' ')
                .ok_or_else(|| self.bad("unterminated string"))?;
            out.push_str(&rest[..plain]);
            self.at += plain;
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.at += 1;
                    self.escape(&mut out)?;
                }
                _ => return Err(self.bad("control character in a string")),
            }
        }
    }

    /// One escape after its `\`.
    fn escape(&mut self, out: &mut String) -> Result<(), Fault> {
        let c = self.text[self.at..]
            .chars()
            .next()
            .ok_or_else(|| self.bad("unterminated string"))?;
        self.at += c.len_utf8();
        match c {
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let unit = self.hex4()?;
                let ch = if (0xd800..0xdc00).contains(&unit) {
                    if !self.text[self.at..].starts_with("\\u") {
                        return Err(self.bad("lone surrogate"));
                    }
                    self.at += 2;
                    let low = self.hex4()?;
                    if !(0xdc00..0xe000).contains(&low) {
                        return Err(self.bad("lone surrogate"));
                    }
                    char::from_u32(0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00))
                } else {
                    char::from_u32(unit)
                };
                out.push(ch.ok_or_else(|| self.bad("lone surrogate"))?);
            }
            // '"', '\\', '/', and escapes JSON does not define: the character itself.
            other => out.push(other),
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, Fault> {
        let hex = self
            .text
            .get(self.at..self.at + 4)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.bad("\\u needs four hex digits"))?;
        self.at += 4;
        u32::from_str_radix(hex, 16).map_err(|_| self.bad("\\u needs four hex digits"))
    }

    /// A number token (`-?digits(.digits*)?([eE][+-]?digits)?`) in its stored form.
    fn number(&mut self) -> Value {
        let start = self.at;
        let bytes = self.text.as_bytes();
        let digits = |at: &mut usize| {
            while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
                *at += 1;
            }
        };
        let mut at = start + usize::from(bytes[start] == b'-');
        digits(&mut at);
        let mut integer = true;
        if bytes.get(at) == Some(&b'.') {
            integer = false;
            at += 1;
            digits(&mut at);
        }
        if matches!(bytes.get(at), Some(b'e' | b'E')) {
            let mut e = at + 1;
            if matches!(bytes.get(e), Some(b'+' | b'-')) {
                e += 1;
            }
            let first_digit = e;
            digits(&mut e);
            if e > first_digit {
                integer = false;
                at = e;
            }
        }
        self.at = at;
        number_value(&self.text[start..at], integer)
    }
}

/// A number token's stored form: a JSON number when one keeps its exact value, else the
/// `json:` form of the token.
fn number_value(token: &str, integer: bool) -> Value {
    if integer && token != "-0" {
        if let Ok(u) = token.parse::<u64>() {
            return Value::from(u);
        }
        if let Ok(i) = token.parse::<i64>() {
            return Value::from(i);
        }
    }
    // Rust's float syntax wants a digit after '.', MariaDB's does not (`1.`, `1.e5`).
    let parsed = match token.find('.') {
        Some(dot) if !token[dot + 1..].starts_with(|c: char| c.is_ascii_digit()) => {
            format!("{}.0{}", &token[..dot], &token[dot + 1..]).parse::<f64>()
        }
        _ => token.parse::<f64>(),
    };
    match parsed.ok().and_then(Number::from_f64) {
        Some(n) if surely_exact(token) || same_decimal(token, &n.to_string()) => Value::Number(n),
        _ => json_raw::raw(token),
    }
}

/// Whether a double surely holds the token's value exactly as it prints: at most 15
/// significant digits (DBL_DIG: two such decimals never round to the same double, so the
/// double's shortest form is the token's value) and well inside the normal range.
fn surely_exact(token: &str) -> bool {
    matches!(shape(token), Some((digits, exponent)) if digits <= 15 && (-290..=290).contains(&exponent))
}

/// Whether two decimal number texts denote the same value (`1.50` and `1.5`, `1E2` and
/// `100.0`); all zeros are one value.
fn same_decimal(a: &str, b: &str) -> bool {
    let digits = |s: &str| -> String {
        let mantissa = s.split(['e', 'E']).next().unwrap_or("");
        let all: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        all.trim_matches('0').to_owned()
    };
    let negative = |s: &str| s.starts_with('-') && shape(s).is_some_and(|(n, _)| n > 0);
    match (shape(a), shape(b)) {
        (Some(sa), Some(sb)) => sa == sb && negative(a) == negative(b) && digits(a) == digits(b),
        _ => false,
    }
}

/// A number text's significant digits and exponent, for the value `0.DIGITS × 10^exponent`
/// without leading or trailing zero digits; zero is `(0, 0)`. `None` if the exponent overflows.
fn shape(s: &str) -> Option<(usize, i64)> {
    let s = s.strip_prefix('-').unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(e) => (&s[..e], s[e + 1..].parse::<i64>().ok()?),
        None => (s, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = || int.bytes().chain(frac.bytes());
    let total = int.len() + frac.len();
    let lead = digits().take_while(|&b| b == b'0').count();
    if lead == total {
        return Some((0, 0));
    }
    let trail = digits().rev().take_while(|&b| b == b'0').count();
    let exponent = exponent
        .checked_add(i64::try_from(int.len()).ok()?)?
        .checked_sub(i64::try_from(lead).ok()?)?;
    Some((total - lead - trail, exponent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(text: &str) -> Value {
        parse(text).unwrap_or_else(|e| panic!("{text}: {e:?}"))
    }

    #[test]
    fn numbers_a_json_number_keeps_exactly_stay_numbers() {
        let cases = [
            ("0", json!(0)),
            ("-1", json!(-1)),
            ("18446744073709551615", json!(u64::MAX)),
            ("-9223372036854775808", json!(i64::MIN)),
            ("0.1", json!(0.1)),
            ("1.50", json!(1.5)),
            ("-2.5e-300", json!(-2.5e-300)),
            ("1E2", json!(100.0)),
            ("1e+2", json!(100.0)),
            ("1.", json!(1.0)),
            ("1.e5", json!(100000.0)),
            ("0.", json!(0.0)),
            ("-0", json!(-0.0)),
            ("-0.0e-0", json!(-0.0)),
            ("1.7976931348623157e308", json!(f64::MAX)),
            ("100000000000000000000", json!(1e20)),
            // More than 15 digits, or outside the normal range: checked against the double.
            ("0.30000000000000004", json!(0.30000000000000004)),
            ("1234567890123456.0", json!(1234567890123456.0)),
            ("2.2250738585072014e-308", json!(f64::MIN_POSITIVE)),
            ("5e-324", json!(5e-324)),
            ("1e-300", json!(1e-300)),
        ];
        for (text, expected) in cases {
            let v = stored(text);
            assert_eq!(v, expected, "{text}");
            assert_eq!(v.to_string(), expected.to_string(), "{text}");
        }
    }

    #[test]
    fn numbers_no_json_number_keeps_are_their_exact_text() {
        for text in [
            "12345678901234567890123",
            "-12345678901234567890123",
            "0.1000000000000000055511151231257827",
            "18446744073709551616",
            "-9223372036854775809",
            "1e400",
            "-1E400",
            "1e-400",
            "9e99999999999999999999",
            "1.7976931348623159e308",
            "3.141592653589793238462643383279",
            "4.9e-324",
            "0.30000000000000005",
        ] {
            assert_eq!(stored(text), json!(format!("json:{text}")), "{text}");
        }
        let doc = stored("{\"a\": [1e400, 2.5],\n \"b\": 18446744073709551616}");
        assert_eq!(
            doc,
            json!({"a": ["json:1e400", 2.5], "b": "json:18446744073709551616"})
        );
    }

    #[test]
    fn documents_parse_as_serde_json_parses_them() {
        for text in [
            r#"{"a":[1,2.5,"x"],"b":{"c":null,"d":true,"e":false},"":""}"#,
            r#" [ "tab\tnl\nquote\"back\\slash\/ \u00e9\u00E9 \ud83d\ude00 \u0000" ] "#,
            "\"😀 ü\"",
            "[]",
            "{}",
            "null",
            "[[[[{\"deep\":[[]]}]]]]",
        ] {
            let ours = stored(text);
            let theirs: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ours, theirs, "{text}");
        }
    }

    #[test]
    fn mariadb_only_spellings_are_read_as_mariadb_reads_them() {
        assert_eq!(stored(r#"["\x", "a\'b", "\é"]"#), json!(["x", "a'b", "é"]));
        assert_eq!(
            stored(r#"{"k": 1, "k" : 2, "o": {"k": [1], "k": [1]}}"#),
            json!("json:{\"k\": 1, \"k\" : 2, \"o\": {\"k\": [1], \"k\": [1]}}")
        );
        assert_eq!(
            stored(r#"{"a": {"k": 1, "k": 2}}"#),
            json!({"a": "json:{\"k\": 1, \"k\": 2}"})
        );
        assert_eq!(
            stored(r#"{"s": "json:x"}"#),
            json!({"s": "json:\"json:x\""})
        );
    }

    #[test]
    fn containers_deeper_than_the_index_holds_are_their_exact_text() {
        let text = format!("{}[1, 2]{}", "[".repeat(99), "]".repeat(99));
        let expected = json_raw::tests::nested(99, json!("json:[1, 2]"));
        assert_eq!(stored(&text), expected);
        let text = format!("{}{}", "[".repeat(99), "]".repeat(99));
        let v = stored(&text);
        assert_eq!(v.to_string(), text, "99 levels stay a document");
    }

    #[test]
    fn what_json_valid_refuses_is_an_error_not_a_guess() {
        for text in [
            "",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "[1 2]",
            "{\"a\" 1}",
            "\"\\ud800\"",
            "\"\\ud800\\u0041\"",
            "\"\\udc00\"",
            "\"\\u12\"",
            "\"a\tb\"",
            "\"unterminated",
            "\"esc\\",
            "nul",
            "NaN",
            "[1] x",
            "+1",
            ".5",
        ] {
            assert!(
                matches!(parse(text), Err(Fault::Invalid(_))),
                "{text:?}: {:?}",
                parse(text)
            );
        }
        let too_deep = format!("{}{}", "[".repeat(151), "]".repeat(151));
        assert!(parse(&too_deep).is_err());
    }
}

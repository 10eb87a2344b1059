//! Building SQL text safely: identifier and string-literal quoting, the only place it is done.
//!
//! Literals assume the session settings that [`SESSION_SETUP`] establishes on every index
//! connection (backslash escapes on, utf8mb4, UTC), so the same bytes always mean the same value.

/// Statements run on every index connection before anything else.
pub const SESSION_SETUP: &str = "SET NAMES utf8mb4 COLLATE utf8mb4_bin, \
     time_zone = '+00:00', \
     sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO'";

/// The index writer's session: [`SESSION_SETUP`] plus `NO_BACKSLASH_ESCAPES`, under which the
/// only special character of a string literal is the quote. Every statement the writer sends
/// quotes with [`push_plain_literal`]: escaping is then a search for one byte (memchr) instead
/// of a look at every byte of every row image, which perf showed as the catch-up's hottest loop.
pub const WRITER_SESSION_SETUP: &str = "SET NAMES utf8mb4 COLLATE utf8mb4_bin, \
     time_zone = '+00:00', \
     sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO,NO_BACKSLASH_ESCAPES'";

/// Appends `value` as a string literal for a `NO_BACKSLASH_ESCAPES` session
/// ([`WRITER_SESSION_SETUP`]): quotes doubled, every other byte as it is (backslashes, NUL and
/// line breaks are ordinary characters there).
pub fn push_plain_literal(out: &mut String, value: &str) {
    out.reserve(value.len() + 2);
    out.push('\'');
    let mut rest = value;
    while let Some(quote) = rest.find('\'') {
        out.push_str(&rest[..=quote]);
        out.push('\'');
        rest = &rest[quote + 1..];
    }
    out.push_str(rest);
    out.push('\'');
}

/// Quotes an identifier with backticks (`a``b` for a backtick inside).
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Appends `value` as a single-quoted string literal, escaping what MySQL requires.
///
/// Every change's images pass through here (the hottest loop of a catch-up, by perf): runs of
/// plain bytes are copied whole, and only the six bytes MySQL needs escaped are looked at.
pub fn push_str_literal(out: &mut String, value: &str) {
    out.reserve(value.len() + 2);
    out.push('\'');
    let mut plain = 0;
    for (i, b) in value.bytes().enumerate() {
        let escaped = match b {
            b'\'' => "\\'",
            b'\\' => "\\\\",
            0 => "\\0",
            b'\n' => "\\n",
            b'\r' => "\\r",
            0x1a => "\\Z",
            _ => continue,
        };
        // An escaped byte is ASCII, so `i` is a char boundary.
        out.push_str(&value[plain..i]);
        out.push_str(escaped);
        plain = i + 1;
    }
    out.push_str(&value[plain..]);
    out.push('\'');
}

/// `value` as a single-quoted string literal.
pub fn str_literal(value: &str) -> String {
    let mut out = String::new();
    push_str_literal(&mut out, value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_session_is_the_common_one_without_backslash_escapes() {
        let common = SESSION_SETUP.trim_end_matches('\'');
        assert_eq!(
            WRITER_SESSION_SETUP,
            format!("{common},NO_BACKSLASH_ESCAPES'")
        );
    }

    #[test]
    fn plain_literals_double_quotes_and_keep_every_other_byte() {
        let mut out = String::new();
        push_plain_literal(&mut out, "it's \\ \0 \n \r \u{1a} 'x''");
        assert_eq!(out, "'it''s \\ \0 \n \r \u{1a} ''x'''''");
        out.clear();
        push_plain_literal(&mut out, "");
        assert_eq!(out, "''");
    }

    #[test]
    fn identifiers_double_their_backticks() {
        assert_eq!(ident("a`b"), "`a``b`");
    }

    #[test]
    fn string_literals_escape_quotes_backslashes_and_controls() {
        assert_eq!(
            str_literal("it's \\ \0\n\r\u{1a}é"),
            "'it\\'s \\\\ \\0\\n\\r\\Zé'"
        );
    }
}

//! Building SQL text safely: identifier and string-literal quoting, the only place it is done.
//!
//! Literals assume the session settings that [`SESSION_SETUP`] establishes on every index
//! connection (backslash escapes on, utf8mb4, UTC), so the same bytes always mean the same value.

/// Statements run on every index connection before anything else.
pub const SESSION_SETUP: &str = "SET NAMES utf8mb4 COLLATE utf8mb4_bin, \
     time_zone = '+00:00', \
     sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO'";

/// Quotes an identifier with backticks (`a``b` for a backtick inside).
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Appends `value` as a single-quoted string literal, escaping what MySQL requires.
pub fn push_str_literal(out: &mut String, value: &str) {
    out.reserve(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1a}' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
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

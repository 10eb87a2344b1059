//! RFC 4180 fields, the one quoting rule of every command's `--format csv`: a field holding a
//! comma, a quote or a line break is quoted, its quotes doubled; any other is written as it is.

/// Appends `f` to `line` as one CSV field.
pub(super) fn push_field(line: &mut String, f: &str) {
    if f.contains([',', '"', '\r', '\n']) {
        line.push('"');
        line.push_str(&f.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(f);
    }
}

/// `f` as one CSV field.
pub(super) fn field(f: &str) -> String {
    let mut out = String::with_capacity(f.len());
    push_field(&mut out, f);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_they_hold_a_separator_quote_or_line_break() {
        assert_eq!(field("plain text"), "plain text");
        assert_eq!(field(""), "");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\r\nlines"), "\"two\r\nlines\"");
        let mut line = String::from("x,");
        push_field(&mut line, "y\nz");
        assert_eq!(line, "x,\"y\nz\"");
    }
}

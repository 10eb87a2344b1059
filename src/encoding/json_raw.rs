//! The `json:` form: a JSON value kept as its text inside a string, for the values of a JSON
//! column that the index's own JSON column cannot hold as they are.
//!
//! The index stores each row image as one JSON document (`row_before`, `row_after`), and the
//! index server's JSON column parses it. Two kinds of source value do not survive that parse:
//!
//! * **Documents nested as deep as MySQL allows.** MySQL refuses a JSON text whose containers
//!   nest more than 100 deep (`ER_JSON_DOCUMENT_TOO_DEEP`); a source column may hold exactly
//!   100, and the row image object adds one level. So containers at level
//!   [`DEEPEST_KEPT`] + 1 of a column's document (level 1 is the document's own outer container)
//!   are stored as strings of their JSON text: every row stays indexable, and everything above
//!   that level can still be queried as JSON.
//! * **Numbers no JSON number of the index holds exactly.** MySQL's JSON keeps a number as a
//!   64-bit integer or a double. MariaDB's JSON is text, and may hold
//!   `12345678901234567890123`, `0.1000000000000000055511151231257827` or `1e400` (rounded, or
//!   refused, by every double). Such a number is stored as a string of the source's exact text
//!   (decided in [`super::mariadb_json`]).
//!
//! Invariant: a string value inside a stored JSON column document that begins with
//! [`RAW_PREFIX`] stands for the JSON value whose text follows the prefix, and nothing else
//! does: a source string that itself begins with the prefix is stored in the `json:` form too
//! (`"json:x"` becomes `"json:\"json:x\""`). So the form is unambiguous, and [`push_unsealed`]
//! gives back exactly the source's document (recover writes it). The text after the prefix is
//! taken as it is, never itself read for the prefix.

use serde_json::Value;

use super::json_text;

/// What begins a string that stands for the JSON value whose text follows it.
pub const RAW_PREFIX: &str = "json:";

/// The deepest container level of a column's document the index holds as JSON: MySQL's
/// maximum nesting (100, `JSON_DOCUMENT_MAX_DEPTH`) less the row image object's own level.
pub const DEEPEST_KEPT: usize = 99;

/// The `json:` form of a value whose JSON text is `text`.
pub(crate) fn raw(text: &str) -> Value {
    let mut s = String::with_capacity(RAW_PREFIX.len() + text.len());
    s.push_str(RAW_PREFIX);
    s.push_str(text);
    Value::String(s)
}

/// A source string in the stored form: itself, or its `json:` form when it begins with the
/// prefix.
pub(crate) fn string(s: String) -> Value {
    if s.starts_with(RAW_PREFIX) {
        raw(&Value::String(s).to_string())
    } else {
        Value::String(s)
    }
}

/// Turns a decoded document (MySQL's binary JSON, after any partial-update diffs) into its
/// stored form: containers below [`DEEPEST_KEPT`] and strings that begin with the prefix in the
/// `json:` form. Untouched documents, the overwhelming case, are only walked.
pub(crate) fn seal(doc: &mut Value) {
    seal_at(doc, 1);
}

fn seal_at(v: &mut Value, level: usize) {
    match v {
        Value::Array(_) | Value::Object(_) if level > DEEPEST_KEPT => *v = raw(&v.to_string()),
        Value::Array(items) => items.iter_mut().for_each(|i| seal_at(i, level + 1)),
        Value::Object(map) => map.values_mut().for_each(|i| seal_at(i, level + 1)),
        Value::String(s) if s.starts_with(RAW_PREFIX) => *v = string(std::mem::take(s)),
        _ => {}
    }
}

/// Appends the compact JSON text of a stored document with every `json:` string replaced by
/// the text it stands for: the source's document (the inverse of [`seal`] and of the MariaDB
/// JSON rule).
pub fn push_unsealed(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::String(s) => match s.strip_prefix(RAW_PREFIX) {
            Some(text) => out.extend_from_slice(text.as_bytes()),
            None => json_text::push_str(out, s),
        },
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_unsealed(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json_text::push_str(out, k);
                out.push(b':');
                push_unsealed(out, item);
            }
            out.push(b'}');
        }
        other => json_text::push_value(out, other),
    }
}

/// [`push_unsealed`] as a `String`.
pub fn unsealed(v: &Value) -> String {
    let mut out = Vec::new();
    push_unsealed(&mut out, v);
    json_text::into_string(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// `levels` nested arrays around `innermost` (which sits at level `levels + 1`).
    pub(crate) fn nested(levels: usize, innermost: Value) -> Value {
        (0..levels).fold(innermost, |v, _| Value::Array(vec![v]))
    }

    #[test]
    fn containers_below_the_deepest_kept_level_become_their_text() {
        let cases = [
            // 100 levels: the level-100 containers are text.
            (
                nested(99, json!([1, "x"])),
                nested(99, json!("json:[1,\"x\"]")),
            ),
            (
                nested(99, json!({"b": {}})),
                nested(99, json!("json:{\"b\":{}}")),
            ),
            (nested(99, json!([])), nested(99, json!("json:[]"))),
            // 99 levels, and scalars at level 100: untouched.
            (nested(98, json!([1, "x"])), nested(98, json!([1, "x"]))),
            (nested(99, json!(5)), nested(99, json!(5))),
        ];
        for (mut doc, stored) in cases {
            seal(&mut doc);
            assert_eq!(doc, stored);
        }
        // Level 1 the object, 2..=98 arrays, 99 the object "k", 100 its array.
        let mut obj = json!({"a": nested(97, json!({"k": [2]}))});
        seal(&mut obj);
        assert_eq!(obj, json!({"a": nested(97, json!({"k": "json:[2]"}))}));
    }

    #[test]
    fn source_strings_that_look_like_the_form_are_put_in_it() {
        let mut doc = json!({"a": "json:x", "json:key": ["json:", "jso", "x json:"]});
        seal(&mut doc);
        assert_eq!(
            doc,
            json!({"a": "json:\"json:x\"", "json:key": ["json:\"json:\"", "jso", "x json:"]})
        );
        let mut top = json!("json:{}");
        seal(&mut top);
        assert_eq!(top, json!("json:\"json:{}\""));
        // Text inside the form is the document's own: not read for the prefix again.
        let mut deep = nested(99, json!(["json:x"]));
        seal(&mut deep);
        assert_eq!(deep, nested(99, json!("json:[\"json:x\"]")));
    }

    #[test]
    fn unsealed_gives_back_the_source_document() {
        let docs = [
            nested(99, json!([1, "x", {"y": null}])),
            json!({"a": "json:x", "b": [1.5, "plain", "json:"], "c": {"d": "ü\"😀"}}),
            json!("json:[1]"),
            json!([]),
            json!(null),
        ];
        for doc in docs {
            let mut stored = doc.clone();
            seal(&mut stored);
            assert_eq!(unsealed(&stored), doc.to_string(), "{doc}");
        }
        let numbers = json!(["json:12345678901234567890123", "json:1e400", 1.5]);
        assert_eq!(unsealed(&numbers), "[12345678901234567890123,1e400,1.5]");
    }
}

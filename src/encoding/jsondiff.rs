//! Partial JSON updates (`binlog_row_value_options=PARTIAL_JSON`): a JSON column of a
//! PARTIAL_UPDATE_ROWS_EVENT's after image may hold, instead of the document, the list of
//! changes that turn the before image's document into the after document. This module applies
//! that list, so the stored `row_after` is the document the plain UPDATE_ROWS_EVENT would carry.
//!
//! # Layout (MySQL `sql/json_diff.cc`, `Json_diff_vector::write_binary`)
//! A 4-byte little-endian length of what follows, then diffs until it is used up. Each diff is
//! an operation byte (0 REPLACE, 1 INSERT, 2 REMOVE), a length-encoded path in MySQL's path
//! syntax (`$.a."key with space"[3][last-1]`), and, except for REMOVE, a length-encoded binary
//! JSON value. Zero diffs mean the document is unchanged.
//!
//! # Semantics (MySQL `apply_json_diffs`, the code a replica runs)
//! Every leg but the last must name an existing member or an in-bounds array cell. REPLACE needs
//! the target to exist. INSERT adds a member that must not exist yet, or inserts into an array
//! at the cell's position (an index past the end appends). REMOVE needs the target to exist. A
//! diff of the root itself is never logged. `[last-N]` counts from the end of the array as it
//! is when that diff applies. Diffs apply in order. Any violation is an error, never a guess.

use serde_json::Value;

use super::cursor::{Cursor, Fault};
use super::jsonb;

/// Bytes of the length that precedes a diff list.
const LENGTH_BYTES: usize = 4;

/// Reads one diff list at the cursor (length included) and applies it to `doc`.
pub(crate) fn apply_at(cur: &mut Cursor<'_>, doc: &mut Value) -> Result<(), Fault> {
    let len = cur.uint_le(LENGTH_BYTES)? as usize;
    let bytes = cur.take(len)?;
    apply(doc, bytes)
}

/// Applies every diff of a diff list (without its 4-byte length) to `doc`, in order.
pub(crate) fn apply(doc: &mut Value, diffs: &[u8]) -> Result<(), Fault> {
    if doc.is_null() {
        return Err(bad(
            "the before image holds no document to apply the diffs to",
        ));
    }
    let mut cur = Cursor::new(diffs);
    while !cur.is_empty() {
        let op = Op::from_byte(cur.u8()?)?;
        let path =
            std::str::from_utf8(lenenc_bytes(&mut cur)?).map_err(|_| bad("path is not utf-8"))?;
        let legs = parse_path(path)?;
        let value = match op {
            Op::Remove => None,
            Op::Replace | Op::Insert => Some(jsonb::decode(lenenc_bytes(&mut cur)?)?),
        };
        apply_one(doc, op, &legs, value).map_err(|why| bad(format!("{op:?} at {path}: {why}")))?;
    }
    Ok(())
}

fn bad(what: impl Into<String>) -> Fault {
    Fault::Invalid(format!("partial json update: {}", what.into()))
}

/// A diff's operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Replace,
    Insert,
    Remove,
}

impl Op {
    fn from_byte(b: u8) -> Result<Op, Fault> {
        match b {
            0 => Ok(Op::Replace),
            1 => Ok(Op::Insert),
            2 => Ok(Op::Remove),
            x => Err(bad(format!("unknown operation {x}"))),
        }
    }
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Leg {
    /// `.name` or `."quoted name"`.
    Member(String),
    /// `[n]`, or `[last-n]` when `from_end`.
    Cell { index: usize, from_end: bool },
}

/// MySQL's `Json_array_index`: the position a cell leg names in an array of `len` elements
/// (clamped into `0..=len`) and whether the element exists.
fn position(index: usize, from_end: bool, len: usize) -> (usize, bool) {
    let within = index < len;
    if from_end {
        (if within { len - index - 1 } else { 0 }, within)
    } else {
        (index.min(len), within)
    }
}

/// A length-encoded integer (MySQL's `net_field_length`), then that many bytes.
fn lenenc_bytes<'a>(cur: &mut Cursor<'a>) -> Result<&'a [u8], Fault> {
    let n = usize::try_from(cur.lenenc()?).map_err(|_| bad("length overflows"))?;
    cur.take(n)
}

/// Parses a path as MySQL writes it in a diff: `$`, then `.member`, `."member"` or
/// `[index]` / `[last]` / `[last-N]` legs. Wildcards and ranges never occur in diffs and are
/// refused.
fn parse_path(path: &str) -> Result<Vec<Leg>, Fault> {
    let invalid = |why: &str| bad(format!("path {path:?}: {why}"));
    let mut rest = path
        .trim_start()
        .strip_prefix('$')
        .ok_or_else(|| invalid("does not start with $"))?;
    let mut legs = Vec::new();
    loop {
        rest = rest.trim_start();
        let Some(c) = rest.chars().next() else {
            return Ok(legs);
        };
        rest = &rest[c.len_utf8()..];
        match c {
            '.' => {
                rest = rest.trim_start();
                let (name, after) = if rest.starts_with('"') {
                    quoted(rest).ok_or_else(|| invalid("unterminated quoted member"))?
                } else {
                    let end = rest
                        .find(|c: char| c == '.' || c == '[' || c.is_whitespace())
                        .unwrap_or(rest.len());
                    (rest[..end].to_owned(), &rest[end..])
                };
                if name.is_empty() || (name == "*" && !rest.starts_with('"')) {
                    return Err(invalid("member wildcard or empty member"));
                }
                legs.push(Leg::Member(name));
                rest = after;
            }
            '[' => {
                let end = rest.find(']').ok_or_else(|| invalid("unterminated [ ]"))?;
                legs.push(cell(&rest[..end]).ok_or_else(|| invalid("array leg is not a cell"))?);
                rest = &rest[end + 1..];
            }
            _ => return Err(invalid("unexpected character")),
        }
    }
}

/// A double-quoted member name (JSON string escapes) at the start of `s`, and what follows.
fn quoted(s: &str) -> Option<(String, &str)> {
    let bytes = s.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => {
                let name = serde_json::from_str(&s[..=i]).ok()?;
                return Some((name, &s[i + 1..]));
            }
            _ => i += 1,
        }
    }
    None
}

/// The inside of `[ ]`: `n`, `last` or `last-n` (spaces allowed around the parts).
fn cell(inner: &str) -> Option<Leg> {
    let inner = inner.trim();
    let number = |s: &str| s.trim().parse::<usize>().ok();
    match inner.strip_prefix("last") {
        Some(rest) if rest.trim().is_empty() => Some(Leg::Cell {
            index: 0,
            from_end: true,
        }),
        Some(rest) => Some(Leg::Cell {
            index: number(rest.trim_start().strip_prefix('-')?)?,
            from_end: true,
        }),
        None => Some(Leg::Cell {
            index: number(inner)?,
            from_end: false,
        }),
    }
}

/// The value an exact path names (no auto-wrapping), for changing it.
fn seek<'a>(mut doc: &'a mut Value, legs: &[Leg]) -> Result<&'a mut Value, String> {
    for leg in legs {
        doc = match (doc, leg) {
            (Value::Object(map), Leg::Member(name)) => map
                .get_mut(name)
                .ok_or_else(|| format!("member {name:?} does not exist"))?,
            (Value::Array(items), &Leg::Cell { index, from_end }) => {
                let (at, within) = position(index, from_end, items.len());
                if !within {
                    return Err(format!("cell {index} is out of bounds"));
                }
                &mut items[at]
            }
            (other, leg) => return Err(format!("{leg:?} does not apply to {}", kind(other))),
        };
    }
    Ok(doc)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "an object",
        Value::Array(_) => "an array",
        _ => "a scalar",
    }
}

/// Applies one diff; the error says why MySQL would reject it.
fn apply_one(doc: &mut Value, op: Op, legs: &[Leg], value: Option<Value>) -> Result<(), String> {
    let (last, parents) = legs
        .split_last()
        .ok_or_else(|| "a diff of the whole document".to_owned())?;
    let parent = seek(doc, parents)?;
    let value = || value.ok_or_else(|| "no value".to_owned());
    match (parent, last, op) {
        (Value::Object(map), Leg::Member(name), Op::Replace) => {
            let slot = map
                .get_mut(name)
                .ok_or_else(|| format!("member {name:?} does not exist"))?;
            *slot = value()?;
        }
        (Value::Object(map), Leg::Member(name), Op::Insert) => {
            if map.contains_key(name) {
                return Err(format!("member {name:?} already exists"));
            }
            map.insert(name.clone(), value()?);
        }
        (Value::Object(map), Leg::Member(name), Op::Remove) => {
            map.remove(name)
                .ok_or_else(|| format!("member {name:?} does not exist"))?;
        }
        (Value::Array(items), &Leg::Cell { index, from_end }, op) => {
            let (at, within) = position(index, from_end, items.len());
            match op {
                Op::Insert => items.insert(at, value()?),
                _ if !within => return Err(format!("cell {index} is out of bounds")),
                Op::Replace => items[at] = value()?,
                Op::Remove => {
                    items.remove(at);
                }
            }
        }
        (other, leg, _) => return Err(format!("{leg:?} does not apply to {}", kind(other))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// One diff in MySQL's encoding; `value` is binary JSON bytes.
    fn diff(op: u8, path: &str, value: Option<&[u8]>) -> Vec<u8> {
        use crate::encoding::testkit::lenenc_str;
        let mut out = vec![op];
        out.extend(lenenc_str(path.as_bytes()));
        if let Some(v) = value {
            out.extend(lenenc_str(v));
        }
        out
    }

    /// Binary JSON of a small scalar: int16, string or literal.
    fn scalar(v: &Value) -> Vec<u8> {
        match v {
            Value::Number(n) => [
                vec![0x05],
                (n.as_i64().unwrap() as i16).to_le_bytes().to_vec(),
            ]
            .concat(),
            Value::String(s) => [vec![0x0c, s.len() as u8], s.as_bytes().to_vec()].concat(),
            Value::Null => vec![0x04, 0x00],
            Value::Bool(true) => vec![0x04, 0x01],
            _ => panic!("test helper encodes scalars only"),
        }
    }

    fn run(doc: Value, diffs: &[(u8, &str, Option<Value>)]) -> Result<Value, Fault> {
        let bytes: Vec<u8> = diffs
            .iter()
            .flat_map(|(op, path, v)| diff(*op, path, v.as_ref().map(scalar).as_deref()))
            .collect();
        let mut doc = doc;
        apply(&mut doc, &bytes)?;
        Ok(doc)
    }

    #[test]
    fn replace_insert_and_remove_rebuild_the_after_document() {
        let before = json!({"a": {"b": [1, 2, 3], "c": "hello"}, "k": 1});
        let after = run(
            before,
            &[
                (0, "$.a.c", Some(json!("world"))),
                (1, "$.new", Some(json!(5))),
                (0, "$.a.b[1]", Some(json!(20))),
                (0, "$.a.b[last]", Some(json!(30))),
                (1, "$.a.b[10]", Some(json!(99))),
                (2, "$.k", None),
            ],
        )
        .unwrap();
        assert_eq!(
            after,
            json!({"a": {"b": [1, 20, 30, 99], "c": "world"}, "new": 5})
        );
    }

    #[test]
    fn last_counts_from_the_end_when_the_diff_applies() {
        let after = run(
            json!([1, 2, 3, 4]),
            &[
                (0, "$[last-1]", Some(json!(7))),
                (2, "$[last]", None),
                (2, "$[0]", None),
            ],
        )
        .unwrap();
        assert_eq!(after, json!([2, 7]));
        // MySQL's Json_array_index: INSERT at [last] goes before the last element.
        let after = run(json!([1, 2]), &[(1, "$[last]", Some(json!(9)))]).unwrap();
        assert_eq!(after, json!([1, 9, 2]));
    }

    #[test]
    fn quoted_members_and_spaces_in_paths_parse() {
        assert_eq!(
            parse_path(r#"$."key with space"[ last - 2 ].x."é\"q""#).unwrap(),
            vec![
                Leg::Member("key with space".into()),
                Leg::Cell {
                    index: 2,
                    from_end: true
                },
                Leg::Member("x".into()),
                Leg::Member("é\"q".into()),
            ]
        );
        let after = run(
            json!({"a b": {"é\"q": 1}}),
            &[(0, r#"$."a b"."é\"q""#, Some(json!("x")))],
        )
        .unwrap();
        assert_eq!(after, json!({"a b": {"é\"q": "x"}}));
    }

    #[test]
    fn empty_diff_list_leaves_the_document_unchanged() {
        let doc = json!({"z": 1});
        assert_eq!(run(doc.clone(), &[]).unwrap(), doc);
    }

    #[test]
    fn diffs_mysql_would_reject_are_errors_not_guesses() {
        let doc = json!({"a": [1], "s": "x"});
        let cases: Vec<(u8, &str, Option<Value>)> = vec![
            (0, "$.missing", Some(json!(1))),
            (1, "$.a", Some(json!(1))),
            (2, "$.missing", None),
            (0, "$.a[5]", Some(json!(1))),
            (2, "$.a[last-3]", None),
            (0, "$.s.x", Some(json!(1))),
            (0, "$.a.x", Some(json!(1))),
            (0, "$", Some(json!(1))),
            (0, "$.*", Some(json!(1))),
            (0, "$.a[0 to 1]", Some(json!(1))),
            (0, "a", Some(json!(1))),
            (7, "$.a", Some(json!(1))),
        ];
        for (op, path, value) in cases {
            let r = run(doc.clone(), &[(op, path, value)]);
            assert!(matches!(r, Err(Fault::Invalid(_))), "{op} {path}: {r:?}");
        }
        assert!(run(Value::Null, &[]).is_err(), "no document to patch");
    }

    #[test]
    fn truncated_diff_lists_are_errors_not_panics() {
        let good = diff(0, "$.a.b", Some(&scalar(&json!("value"))));
        for cut in 1..good.len() {
            let mut doc = json!({"a": {"b": 1}});
            assert!(apply(&mut doc, &good[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn apply_at_reads_the_four_byte_length_first() {
        let d = diff(2, "$.k", None);
        let bytes = [&(d.len() as u32).to_le_bytes()[..], &d, &[0xaa]].concat();
        let mut cur = Cursor::new(&bytes);
        let mut doc = json!({"k": 1, "j": 2});
        apply_at(&mut cur, &mut doc).unwrap();
        assert_eq!(doc, json!({"j": 2}));
        assert_eq!(cur.remaining(), 1, "stops at the end of the list");
    }
}

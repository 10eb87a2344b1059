//! Privacy at capture: which columns are left out, masked or truncated before a value leaves the
//! decoder.
//!
//! # Invariant: the index, logs, metrics and errors only ever see the policed image
//!
//! A [`Policy`] is parsed once from `--exclude-columns`, `--mask-columns` and
//! `--truncate-columns`. When a table map arrives, [`Policy::for_table`] turns it into a
//! [`Policed`] table: the [`TableSpec`] as the rest of the pipeline sees it (excluded columns
//! removed, key positions remapped) and one action per source column. The decoder applies
//! [`Policed::apply`] to every decoded image before anything else (row identity, changed
//! columns, row JSON, byte counts, errors, dry-run) reads it, so nothing downstream can leak a
//! value it never received.
//!
//! # Rules
//!
//! * A pattern is `schema.table.column`; a part that is exactly `*` matches every name, any
//!   other part matches one name exactly (case-sensitive, as the table map spells it).
//! * One action per column, the strongest wins: exclude, then mask, then truncate.
//! * Exclude: the column is absent from both images and from `changed_columns`. A key column
//!   (primary key, or the unique key used as identity) cannot be excluded: the table is
//!   refused, naming the column, because its rows would lose their identity.
//! * Mask: a non-NULL value becomes the string `hmac:<64 hex digits>`, the HMAC-SHA-256 under
//!   the mask key of the value's *stored-form text*: the text `pk_values` would hold for it
//!   unmasked (strings as they are, numbers as JSON prints them, binary data as its base64,
//!   JSON documents as compact JSON text). Equal values stay equal; NULL stays NULL.
//! * Truncate N: text (CHAR, VARCHAR, TEXT, ENUM, SET) is cut to N characters, binary data
//!   (BINARY, VARBINARY, BLOB) to N bytes before base64. Other types (numbers, temporal
//!   values, BIT) are short by nature and stay as they are; a JSON column cannot be truncated
//!   into a valid document, so a truncate pattern that matches one refuses the table (mask or
//!   exclude it instead).
//!
//! The policy in force is stored with every change as [`Policy::fingerprint`], and its
//! [`Policy::canonical`] text (which never contains the key, only a key id) in the index's
//! `capture_policies` table.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use mysql_common::constants::ColumnType;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::encoding;
use crate::source::schema::{TableSpec, BINARY_COLLATION};

/// What starts every masked value.
pub const MASK_PREFIX: &str = "hmac:";

/// One name part of a pattern: `None` is `*`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Part(Option<String>);

impl Part {
    fn matches(&self, name: &str) -> bool {
        self.0.as_deref().is_none_or(|p| p == name)
    }
}

/// A `schema.table.column` pattern.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ColumnPattern {
    schema: Part,
    table: Part,
    column: Part,
}

impl ColumnPattern {
    /// Parses `schema.table.column` (each part a name or `*`).
    fn parse(flag: &'static str, text: &str) -> Result<ColumnPattern, PolicyError> {
        let bad = |problem: &'static str| PolicyError::Pattern {
            flag,
            pattern: text.to_string(),
            problem,
        };
        let parts: Vec<&str> = text.split('.').collect();
        if parts.len() != 3 {
            return Err(bad("expected schema.table.column, with * for a whole part"));
        }
        let part = |p: &str| -> Result<Part, PolicyError> {
            match p {
                "" => Err(bad("a name part is empty")),
                "*" => Ok(Part(None)),
                p if p.contains('*') => Err(bad(
                    "* stands for a whole name part only (no prefixes like user_*)",
                )),
                p => Ok(Part(Some(p.to_string()))),
            }
        };
        Ok(ColumnPattern {
            schema: part(parts[0])?,
            table: part(parts[1])?,
            column: part(parts[2])?,
        })
    }

    /// Whether the pattern matches this column.
    pub fn matches(&self, schema: &str, table: &str, column: &str) -> bool {
        self.schema.matches(schema) && self.table.matches(table) && self.column.matches(column)
    }
}

impl std::fmt::Display for ColumnPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = |p: &Part| p.0.clone().unwrap_or_else(|| "*".to_string());
        write!(
            f,
            "{}.{}.{}",
            p(&self.schema),
            p(&self.table),
            p(&self.column)
        )
    }
}

/// What happens to one column's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Left out of both images and of `changed_columns`.
    Exclude,
    /// Replaced by `hmac:<hex>`.
    Mask,
    /// Cut to this many characters (text) or bytes (binary).
    Truncate(usize),
}

/// The raw policy flags.
#[derive(Clone, Debug, Default)]
pub struct PolicyArgs {
    /// `--exclude-columns`.
    pub exclude: Option<String>,
    /// `--mask-columns`.
    pub mask: Option<String>,
    /// `--truncate-columns`.
    pub truncate: Option<String>,
    /// `BINTRAIL_MASK_KEY`.
    pub key: Option<String>,
    /// `--mask-key-file`.
    pub key_file: Option<PathBuf>,
}

/// The mask key: never printed.
#[derive(Clone)]
pub struct MaskKey(Arc<[u8]>);

impl std::fmt::Debug for MaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl MaskKey {
    /// The key id written into the canonical policy: the first 8 bytes of the HMAC of a fixed
    /// text, so a key change is visible in the policy history and the key is not.
    fn id(&self) -> String {
        hex(&hmac_sha256(&self.0, b"bintrail mask key id")[..8])
    }
}

/// The capture policy of a stream.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    rules: Vec<(ColumnPattern, Action)>,
    key: Option<MaskKey>,
}

/// Why the policy flags or a table under the policy are refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A pattern that does not parse.
    #[error("{flag} '{pattern}': {problem}")]
    Pattern {
        /// The flag.
        flag: &'static str,
        /// The pattern as given.
        pattern: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// Masking without a key.
    #[error("--mask-columns needs a key: set BINTRAIL_MASK_KEY or --mask-key-file FILE (at least 16 bytes; keep it: the same key is needed to look values up)")]
    NoKey,
    /// A key that is too short, or a key file that cannot be read.
    #[error("{flag}: {problem}")]
    Key {
        /// The flag or variable.
        flag: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// A key column matched by an exclude pattern.
    #[error("{schema}.{table}.{column} is a key column and --exclude-columns '{pattern}' matches it: rows would lose their identity; mask it instead (--mask-columns), or narrow the pattern")]
    KeyExcluded {
        /// Database name.
        schema: String,
        /// Table name.
        table: String,
        /// Column name.
        column: String,
        /// The pattern.
        pattern: String,
    },
    /// A JSON column matched by a truncate pattern.
    #[error("{schema}.{table}.{column} is a JSON column and --truncate-columns '{pattern}' matches it: a cut document is not JSON; mask or exclude it instead, or narrow the pattern")]
    TruncateJson {
        /// Database name.
        schema: String,
        /// Table name.
        table: String,
        /// Column name.
        column: String,
        /// The pattern.
        pattern: String,
    },
}

impl PolicyError {
    /// Whether the error is about the flags themselves (a usage error) rather than a table.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            PolicyError::Pattern { .. } | PolicyError::NoKey | PolicyError::Key { .. }
        )
    }
}

/// Shortest key accepted: 128 bits.
const MIN_KEY_BYTES: usize = 16;

impl Policy {
    /// Validates the flags: patterns, truncate lengths, and a key whenever masking.
    pub fn new(args: PolicyArgs) -> Result<Policy, PolicyError> {
        let mut rules = Vec::new();
        for p in list(args.exclude.as_deref()) {
            rules.push((
                ColumnPattern::parse("--exclude-columns", p)?,
                Action::Exclude,
            ));
        }
        for p in list(args.mask.as_deref()) {
            rules.push((ColumnPattern::parse("--mask-columns", p)?, Action::Mask));
        }
        rules.extend(truncate_rules(args.truncate.as_deref())?);
        rules.sort();
        rules.dedup();
        let masks = rules.iter().any(|(_, a)| *a == Action::Mask);
        let key = match (args.key, args.key_file) {
            (Some(_), Some(_)) => {
                return Err(PolicyError::Key {
                    flag: "--mask-key-file",
                    problem: "BINTRAIL_MASK_KEY is set too: give the key one way".into(),
                })
            }
            (Some(k), None) => Some(check_key("BINTRAIL_MASK_KEY", k.into_bytes())?),
            (None, Some(path)) => {
                let bytes = std::fs::read(&path).map_err(|e| PolicyError::Key {
                    flag: "--mask-key-file",
                    problem: format!("cannot read {}: {e}", path.display()),
                })?;
                // A trailing newline from `echo key > file` is not part of the key.
                let end = bytes.trim_ascii_end().len();
                Some(check_key("--mask-key-file", bytes[..end].to_vec())?)
            }
            (None, None) => None,
        };
        if masks && key.is_none() {
            return Err(PolicyError::NoKey);
        }
        Ok(Policy { rules, key })
    }

    /// A policy that only masks (for `bintrail mask` and lookups): the key alone.
    pub fn key_only(args: PolicyArgs) -> Result<Policy, PolicyError> {
        let policy = Policy::new(PolicyArgs {
            mask: Some("*.*.*".into()),
            ..args
        })?;
        Ok(Policy {
            rules: Vec::new(),
            key: policy.key,
        })
    }

    /// The rules of a [`Policy::canonical`] text as `capture_policies` holds it (without the
    /// key: such a policy can tell which columns were policed, not mask). Lines that do not
    /// parse are skipped.
    pub fn from_canonical(text: &str) -> Policy {
        let mut rules = Vec::new();
        for line in text.lines() {
            let rule = match line.split_once(' ') {
                Some(("exclude", p)) => ColumnPattern::parse("", p).map(|p| (p, Action::Exclude)),
                Some(("mask", p)) => ColumnPattern::parse("", p).map(|p| (p, Action::Mask)),
                Some(("truncate", p)) => truncate_rules(Some(p)).map(|mut r| r.remove(0)),
                _ => continue,
            };
            rules.extend(rule.ok());
        }
        Policy { rules, key: None }
    }

    /// What the policy does to a column: its strongest matching rule.
    pub fn action(&self, schema: &str, table: &str, column: &str) -> Option<Action> {
        self.rules
            .iter()
            .filter(|(p, _)| p.matches(schema, table, column))
            .map(|(_, a)| *a)
            .min()
    }

    /// No pattern given: every value is kept as it is.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The policy as text, one rule a line in a fixed order, the mask key as its id only:
    /// equal policies have equal text.
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        for (pattern, action) in &self.rules {
            let _ = match action {
                Action::Exclude => writeln!(out, "exclude {pattern}"),
                Action::Mask => writeln!(out, "mask {pattern}"),
                Action::Truncate(n) => writeln!(out, "truncate {pattern}:{n}"),
            };
        }
        if let (Some(key), true) = (&self.key, self.rules.iter().any(|r| r.1 == Action::Mask)) {
            let _ = writeln!(out, "key {}", key.id());
        }
        out
    }

    /// The `policy_version` stored with every change: the first 4 bytes of the SHA-256 of
    /// [`Policy::canonical`], never 0; 0 means no policy.
    pub fn fingerprint(&self) -> u32 {
        if self.is_empty() {
            return 0;
        }
        let hash = Sha256::digest(self.canonical().as_bytes());
        u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]]).max(1)
    }

    /// The patterns that match none of `columns` (schema, table, column), as given.
    pub fn unmatched<'a>(
        &self,
        columns: impl IntoIterator<Item = (&'a str, &'a str, &'a str)> + Clone,
    ) -> Vec<String> {
        self.rules
            .iter()
            .filter(|(p, _)| {
                !columns
                    .clone()
                    .into_iter()
                    .any(|(s, t, c)| p.matches(s, t, c))
            })
            .map(|(p, a)| match a {
                Action::Truncate(n) => format!("{p}:{n}"),
                _ => p.to_string(),
            })
            .collect()
    }

    /// The stored form of a masked value whose stored-form text is `text`.
    pub fn mask_text(&self, text: &str) -> Option<String> {
        let key = self.key.as_ref()?;
        Some(format!(
            "{MASK_PREFIX}{}",
            hex(&hmac_sha256(&key.0, text.as_bytes()))
        ))
    }

    /// The table as the pipeline sees it under this policy; `None` when no rule matches it.
    pub fn for_table(&self, spec: &TableSpec) -> Result<Option<Policed>, PolicyError> {
        let mut actions = Vec::with_capacity(spec.columns.len());
        let key: &[usize] = if spec.primary_key.is_empty() {
            &spec.unique_key
        } else {
            &spec.primary_key
        };
        for (i, c) in spec.columns.iter().enumerate() {
            let rule = self
                .rules
                .iter()
                .filter(|(p, _)| p.matches(&spec.schema, &spec.table, &c.name))
                .min_by_key(|(_, a)| *a);
            let json = c.col_type == ColumnType::MYSQL_TYPE_JSON || c.json_text;
            let action = match rule {
                None => ColumnAction::Keep,
                Some((p, Action::Exclude)) if key.contains(&i) => {
                    return Err(PolicyError::KeyExcluded {
                        schema: spec.schema.clone(),
                        table: spec.table.clone(),
                        column: c.name.clone(),
                        pattern: p.to_string(),
                    })
                }
                Some((_, Action::Exclude)) => ColumnAction::Drop,
                Some((_, Action::Mask)) => ColumnAction::Mask,
                Some((p, Action::Truncate(_))) if json => {
                    return Err(PolicyError::TruncateJson {
                        schema: spec.schema.clone(),
                        table: spec.table.clone(),
                        column: c.name.clone(),
                        pattern: p.to_string(),
                    })
                }
                Some((_, Action::Truncate(n))) => match truncation(c) {
                    Some(binary) => ColumnAction::Truncate { n: *n, binary },
                    None => ColumnAction::Keep,
                },
            };
            actions.push(action);
        }
        if actions.iter().all(|a| *a == ColumnAction::Keep) {
            return Ok(None);
        }
        Ok(Some(Policed {
            spec: Arc::new(policed_spec(spec, &actions)),
            actions,
            key: self.key.clone(),
        }))
    }
}

/// Whether a column's values are cut as text (`Some(false)`), as bytes (`Some(true)`), or not
/// at all (`None`: numbers, temporal values, BIT, GEOMETRY).
fn truncation(c: &crate::source::schema::ColumnSpec) -> Option<bool> {
    use ColumnType::*;
    let binary = c.charset.is_none_or(|cs| cs == BINARY_COLLATION);
    match c.col_type {
        MYSQL_TYPE_ENUM | MYSQL_TYPE_SET => Some(false),
        MYSQL_TYPE_STRING | MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING | MYSQL_TYPE_BLOB => {
            Some(binary)
        }
        _ => None,
    }
}

/// The spec without its excluded columns, key positions renumbered.
fn policed_spec(spec: &TableSpec, actions: &[ColumnAction]) -> TableSpec {
    let mut new_index = Vec::with_capacity(actions.len());
    let mut next = 0;
    for a in actions {
        new_index.push((*a != ColumnAction::Drop).then_some(next));
        if *a != ColumnAction::Drop {
            next += 1;
        }
    }
    let remap = |key: &[usize]| key.iter().filter_map(|&i| new_index[i]).collect();
    TableSpec {
        schema: spec.schema.clone(),
        table: spec.table.clone(),
        columns: spec
            .columns
            .iter()
            .zip(actions)
            .filter(|(_, a)| **a != ColumnAction::Drop)
            .map(|(c, _)| c.clone())
            .collect(),
        primary_key: remap(&spec.primary_key),
        unique_key: remap(&spec.unique_key),
        non_transactional: spec.non_transactional,
    }
}

/// What happens to one source column of one table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnAction {
    /// Kept as decoded.
    Keep,
    /// Removed from the image.
    Drop,
    /// Replaced by its HMAC.
    Mask,
    /// Cut to `n` characters, or `n` bytes when `binary`.
    Truncate {
        /// The length.
        n: usize,
        /// Bytes (the value is base64 of binary data) rather than characters.
        binary: bool,
    },
}

/// A table under a policy that touches at least one of its columns.
#[derive(Clone, Debug)]
pub struct Policed {
    /// The table as the pipeline sees it: excluded columns removed.
    pub spec: Arc<TableSpec>,
    /// One action per source column, in table order.
    pub actions: Vec<ColumnAction>,
    key: Option<MaskKey>,
}

impl Policed {
    /// The policed image of a decoded source image (one value per source column).
    pub fn apply(&self, values: Vec<Value>) -> Vec<Value> {
        let mut out = Vec::with_capacity(self.spec.columns.len());
        for (v, a) in values.into_iter().zip(&self.actions) {
            match a {
                ColumnAction::Keep => out.push(v),
                ColumnAction::Drop => {}
                ColumnAction::Mask => out.push(self.mask(v)),
                ColumnAction::Truncate { n, binary } => out.push(truncate(v, *n, *binary)),
            }
        }
        out
    }

    /// Per-column flags (such as [`crate::encoding::RowPair::absent`]) for the policed
    /// spec: the flags of dropped columns go with them. Empty stays empty.
    pub fn apply_flags(&self, flags: Vec<bool>) -> Vec<bool> {
        if flags.is_empty() {
            return flags;
        }
        flags
            .into_iter()
            .zip(&self.actions)
            .filter(|(_, a)| **a != ColumnAction::Drop)
            .map(|(f, _)| f)
            .collect()
    }

    fn mask(&self, v: Value) -> Value {
        if v.is_null() {
            return v;
        }
        let key = self.key.as_ref().expect("a masking policy has a key");
        let text = encoding::key_text([&v]);
        let text = unescape_key_text(&text);
        Value::String(format!(
            "{MASK_PREFIX}{}",
            hex(&hmac_sha256(&key.0, text.as_bytes()))
        ))
    }
}

/// [`encoding::key_text`] of one value without its `|`/`\` escapes: the value's stored-form text.
fn unescape_key_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn truncate(v: Value, n: usize, binary: bool) -> Value {
    let Value::String(s) = v else { return v };
    if binary {
        match encoding::base64_decode(&s) {
            Some(bytes) if bytes.len() > n => Value::String(encoding::base64(&bytes[..n])),
            _ => Value::String(s),
        }
    } else {
        match s.char_indices().nth(n) {
            Some((cut, _)) => Value::String(s[..cut].to_string()),
            None => Value::String(s),
        }
    }
}

/// Items of a comma-separated list, trimmed, empty ones skipped.
fn list(text: Option<&str>) -> impl Iterator<Item = &str> {
    text.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// `--truncate-columns`: items `pattern:N`; an item without `:N` takes the N of the next item
/// that has one, so `a.b.c,a.b.d:10` cuts both to 10.
fn truncate_rules(text: Option<&str>) -> Result<Vec<(ColumnPattern, Action)>, PolicyError> {
    const FLAG: &str = "--truncate-columns";
    let mut rules = Vec::new();
    let mut waiting = Vec::new();
    for item in list(text) {
        match item.rsplit_once(':') {
            Some((p, n)) => {
                let n: usize =
                    n.parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| PolicyError::Pattern {
                            flag: FLAG,
                            pattern: item.to_string(),
                            problem: "the length after : must be a whole number of at least 1",
                        })?;
                waiting.push(ColumnPattern::parse(FLAG, p)?);
                rules.extend(waiting.drain(..).map(|p| (p, Action::Truncate(n))));
            }
            None => waiting.push(ColumnPattern::parse(FLAG, item)?),
        }
    }
    if let Some(p) = waiting.first() {
        return Err(PolicyError::Pattern {
            flag: FLAG,
            pattern: p.to_string(),
            problem: "no length: expected schema.table.column:N (N characters or bytes)",
        });
    }
    Ok(rules)
}

fn check_key(flag: &'static str, key: Vec<u8>) -> Result<MaskKey, PolicyError> {
    if key.len() < MIN_KEY_BYTES {
        return Err(PolicyError::Key {
            flag,
            problem: format!(
                "the mask key has {} bytes, at least {MIN_KEY_BYTES} are needed (e.g. `head -c 32 /dev/urandom | base64`)",
                key.len()
            ),
        });
    }
    Ok(MaskKey(key.into()))
}

/// HMAC-SHA-256 (RFC 2104): `H((K ^ opad) || H((K ^ ipad) || m))`, the key hashed first when
/// longer than the 64-byte block. Twenty lines do not justify another dependency.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::schema::ColumnSpec;
    use mysql_common::constants::ColumnType::*;
    use serde_json::json;

    fn args(exclude: &str, mask: &str, truncate: &str) -> PolicyArgs {
        PolicyArgs {
            exclude: Some(exclude.into()),
            mask: Some(mask.into()),
            truncate: Some(truncate.into()),
            key: Some("0123456789abcdef-key".into()),
            key_file: None,
        }
    }

    fn users() -> TableSpec {
        let text = |n: &str| ColumnSpec {
            charset: Some(255),
            ..ColumnSpec::new(n, MYSQL_TYPE_VARCHAR, 400)
        };
        TableSpec {
            schema: "app".into(),
            table: "users".into(),
            columns: vec![
                text("email"),
                text("password"),
                text("bio"),
                ColumnSpec::new("avatar", MYSQL_TYPE_BLOB, 2),
                ColumnSpec::new("age", MYSQL_TYPE_LONG, 0),
            ],
            primary_key: vec![0],
            unique_key: vec![],
            non_transactional: false,
        }
    }

    #[test]
    fn hmac_matches_rfc4231_test_cases_2_and_6() {
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn excluded_columns_leave_the_image_and_the_key_follows_its_column() {
        let policy = Policy::new(args(
            "app.users.password",
            "app.*.email",
            "*.*.bio:3,app.users.avatar:2",
        ))
        .unwrap();
        let mut spec = users();
        spec.primary_key = vec![2];
        let policed = policy.for_table(&spec).unwrap().unwrap();
        assert_eq!(policed.spec.columns.len(), 4);
        assert_eq!(policed.spec.primary_key, vec![1]);
        let image = policed.apply(vec![
            json!("a@b.c"),
            json!("secret"),
            json!("héllo"),
            json!(encoding::base64(b"xyz")),
            json!(42),
        ]);
        assert_eq!(
            image,
            vec![
                json!(policy.mask_text("a@b.c").unwrap()),
                json!("hél"),
                json!(encoding::base64(b"xy")),
                json!(42)
            ]
        );
    }

    #[test]
    fn a_masked_number_hashes_its_stored_text_and_null_stays_null() {
        let policy = Policy::new(args("", "app.users.age", "")).unwrap();
        let policed = policy.for_table(&users()).unwrap().unwrap();
        let image = policed.apply(vec![
            json!("x|y"),
            Value::Null,
            Value::Null,
            Value::Null,
            json!(42),
        ]);
        assert_eq!(image[0], json!("x|y"));
        assert_eq!(image[4], json!(policy.mask_text("42").unwrap()));
        assert!(image[4].as_str().unwrap().starts_with("hmac:"));
        let policy = Policy::new(args("", "app.users.email", "")).unwrap();
        let policed = policy.for_table(&users()).unwrap().unwrap();
        let image = policed.apply(vec![json!("x|y"), json!(1), json!(1), json!(1), json!(1)]);
        assert_eq!(image[0], json!(policy.mask_text("x|y").unwrap()));
    }

    #[test]
    fn a_key_column_cannot_be_excluded() {
        let policy = Policy::new(args("app.users.*", "", "")).unwrap();
        let err = policy.for_table(&users()).unwrap_err();
        assert!(
            err.to_string().contains("app.users.email is a key column"),
            "{err}"
        );
    }

    #[test]
    fn the_strongest_action_wins_and_untouched_tables_are_not_policed() {
        let policy =
            Policy::new(args("app.users.bio", "app.users.bio", "app.users.bio:1")).unwrap();
        let policed = policy.for_table(&users()).unwrap().unwrap();
        assert_eq!(policed.actions[2], ColumnAction::Drop);
        let mut other = users();
        other.table = "orders".into();
        assert!(policy.for_table(&other).unwrap().is_none());
    }

    #[test]
    fn bad_flags_name_the_flag() {
        let bad = |a: PolicyArgs| Policy::new(a).unwrap_err().to_string();
        assert!(bad(args("app.users", "", "")).starts_with("--exclude-columns 'app.users'"));
        assert!(bad(args("", "a.b.c*", "")).starts_with("--mask-columns"));
        assert!(bad(args("", "", "a.b.c")).starts_with("--truncate-columns 'a.b.c'"));
        assert!(bad(args("", "", "a.b.c:0")).starts_with("--truncate-columns"));
        let no_key = PolicyArgs {
            key: None,
            ..args("", "a.b.c", "")
        };
        assert!(bad(no_key).starts_with("--mask-columns needs a key"));
        let short = PolicyArgs {
            key: Some("short".into()),
            ..args("", "a.b.c", "")
        };
        assert!(bad(short).contains("5 bytes, at least 16 are needed"));
    }

    #[test]
    fn a_truncate_item_without_length_takes_the_next_ones() {
        let p = Policy::new(args("", "", "a.b.c,a.b.d:10")).unwrap();
        assert_eq!(p.canonical(), "truncate a.b.c:10\ntruncate a.b.d:10\n");
    }

    #[test]
    fn the_fingerprint_follows_the_canonical_text_and_the_key_id_not_the_key() {
        let a = Policy::new(args("x.y.z", "a.b.c", "")).unwrap();
        let b = Policy::new(args(" x.y.z ", "a.b.c,a.b.c", "")).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert!(!a.canonical().contains("0123456789abcdef"));
        let other_key = Policy::new(PolicyArgs {
            key: Some("another-key-of-16-bytes".into()),
            ..args("x.y.z", "a.b.c", "")
        })
        .unwrap();
        assert_ne!(a.fingerprint(), other_key.fingerprint());
        assert_eq!(Policy::default().fingerprint(), 0);
    }

    #[test]
    fn the_canonical_text_parses_back_into_the_same_rules() {
        let p = Policy::new(args("a.*.c", "x.y.z", "*.t.u:7")).unwrap();
        let back = Policy::from_canonical(&p.canonical());
        assert_eq!(back.rules, p.rules);
        assert_eq!(back.action("a", "q", "c"), Some(Action::Exclude));
        assert_eq!(back.action("s", "t", "u"), Some(Action::Truncate(7)));
        assert_eq!(back.action("s", "t", "v"), None);
    }

    /// The figures of README's "Keeping personal data out".
    #[test]
    fn the_readme_example_is_what_the_code_computes() {
        let p = Policy::new(PolicyArgs {
            exclude: Some("shop.customers.password_hash,shop.*.national_id".into()),
            mask: Some("shop.customers.email,shop.payments.card".into()),
            truncate: Some("shop.customers.notes:20".into()),
            key: Some("k".repeat(32)),
            key_file: None,
        })
        .unwrap();
        assert_eq!(
            p.canonical(),
            "exclude shop.*.national_id\nmask shop.customers.email\n\
             truncate shop.customers.notes:20\nexclude shop.customers.password_hash\n\
             mask shop.payments.card\nkey c4797566e46e1713\n"
        );
        assert_eq!(p.fingerprint(), 2857494069);
        assert_eq!(
            p.mask_text("alice@example.com").unwrap(),
            "hmac:0d8b3da1ccc85d32dd2c1a1863a4bd48217a82e7eeab7033dd57fe32f560c133"
        );
    }

    #[test]
    fn unmatched_patterns_are_named() {
        let p = Policy::new(args("app.users.bio", "", "app.*.nope:4")).unwrap();
        let cols = [("app", "users", "bio"), ("app", "users", "email")];
        assert_eq!(p.unmatched(cols.iter().copied()), vec!["app.*.nope:4"]);
    }
}

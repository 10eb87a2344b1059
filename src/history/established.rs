//! The established tool's era of an adopted index (`index::adopt`: `stream_id` 0): its value
//! forms, and their conversion to bintrail's through the tool's own `schema_snapshots`.
//!
//! # Which forms differ, and when a conversion is exact
//! The established tool stored each image as a name → value map whose forms differ from
//! bintrail's (README, "Value encoding") for a few types, listed in
//! `reference/established-index.md`. A change's `schema_version` is the id of the snapshot
//! (one row per column: data type and full column type) the tool took when it indexed it, so
//! each value's column type is known, and:
//! * ENUM as the member's index → the member's name (index 0, the error value, is `""`);
//! * SET as its bitmask → the members' names in definition order joined by `,`;
//! * TEXT (TINYTEXT … LONGTEXT) as base64 of its bytes → the text, in the column's character
//!   set, which a snapshot does not record, so the live column's is taken ([`Reading`]):
//!   utf8/utf8mb3/utf8mb4/ascii when the bytes are UTF-8, latin1 as MySQL's latin1 (cp1252 with
//!   C1 controls, through `encoding`'s own decoder); any other character set is refused;
//! * BINARY/VARBINARY as a string of the raw bytes → base64 of those bytes (BINARY(n) padded
//!   with 0x00 to n, as bintrail stores it); a string holding U+FFFD is refused (the tool
//!   wrote that for any byte that is not UTF-8, so the bytes are lost);
//! * JSON as a string holding the document → the document; one holding a number is refused
//!   (the tool printed an integer and a double of the same value alike, `3`), and a string in
//!   it that begins with `json:` takes bintrail's `json:` form;
//! * BIGINT UNSIGNED above 2^63−1 as a negative number → + 2^64;
//! * DECIMAL as an exact string → the same digits with exactly the column's scale;
//! * TIMESTAMP in the indexing host's zone, which the index does not record: converted to UTC
//!   when the caller names the zone (`--established-time-zone`, `history::host_zone`), refused
//!   otherwise (a NULL converts: it has no zone).
//!
//! Every other type (integers, FLOAT, DOUBLE, BIT, YEAR, DATE, DATETIME, TIME, CHAR, VARCHAR,
//! BLOB as base64, GEOMETRY) has the same form in both eras and is kept as it is.
//!
//! # Invariant
//! A converted change is exactly what bintrail would have stored for the same row (its
//! `pk_values` aside, which follow the table's column order; callers that need bintrail's key
//! form compute it from the converted image), or the conversion is refused naming the change,
//! table, column, form and why. Nothing is guessed.

use std::collections::{BTreeMap, BTreeSet};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use serde_json::{Map, Number, Value};

use super::host_zone::HostZone;
use super::live::{KeyKind, LiveTable};
use super::query::{parse_row, QueryError, StoredChange, COLUMNS};
use crate::change::ChangeKind;
use crate::encoding::{base64, base64_decode, key_text, latin1_to_string, RAW_PREFIX};
use crate::index::adopt::{ValueForm, ESTABLISHED_STATE};

/// The established tool's snapshot table.
pub const SNAPSHOTS: &str = "schema_snapshots";

/// One column of a table in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotColumn {
    /// Column name.
    pub name: String,
    /// Position in the table, from 1.
    pub ordinal: u32,
    /// `DATA_TYPE` (`enum`, `bigint`, …).
    pub data_type: String,
    /// `COLUMN_TYPE` (`enum('x','y')`, `bigint unsigned`, `decimal(10,2)`, …).
    pub column_type: String,
}

/// A table's columns in one snapshot, in table order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// The columns.
    pub columns: Vec<SnapshotColumn>,
}

/// The snapshots the old-era changes of a selection refer to: (snapshot id, schema, table).
pub type Snapshots = BTreeMap<(u32, String, String), Snapshot>;

/// Why an old-era change cannot be converted exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EraError {
    /// The snapshot the change refers to is not in `schema_snapshots`.
    #[error("change #{event_id} to {table} was indexed by the established tool under schema snapshot {snapshot}, which {SNAPSHOTS} does not hold: without the table's columns of the time its value forms (ENUM as an index, SET as a bitmask, TEXT as base64, …) cannot be converted exactly")]
    NoSnapshot {
        /// The change.
        event_id: u64,
        /// `schema.table`.
        table: String,
        /// Its `schema_version`.
        snapshot: u32,
    },
    /// A value whose established form does not say the exact value.
    #[error(transparent)]
    Inexact(Box<Inexact>),
}

/// A value of an old-era change whose established form does not say the exact value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("change #{event_id} to {table} was indexed by the established tool: column {column} ({column_type}) holds {form}, which cannot be converted exactly: {why}")]
pub struct Inexact {
    /// The change.
    pub event_id: u64,
    /// `schema.table`.
    pub table: String,
    /// The column.
    pub column: String,
    /// Its type in the snapshot (`?` when the snapshot lacks the column).
    pub column_type: String,
    /// The established form (`a TIMESTAMP in the indexing host's time zone`).
    pub form: String,
    /// Why that is not exact.
    pub why: String,
}

/// Reads the snapshots that the old-era changes among `changes` refer to. An index without
/// `schema_snapshots` has none (each such change is then refused by [`convert`]).
pub async fn load(
    conn: &mut Conn,
    changes: &[StoredChange],
) -> Result<Snapshots, mysql_async::Error> {
    let mut out = Snapshots::new();
    for c in changes
        .iter()
        .filter(|c| c.value_form == ValueForm::Established)
    {
        let key = (c.schema_version, c.schema.clone(), c.table.clone());
        if out.contains_key(&key) {
            continue;
        }
        let rows: Vec<(String, u32, String, String)> = match conn
            .exec(
                format!(
                    "SELECT column_name, ordinal_position, data_type, CAST(column_type AS CHAR) \
                     FROM {SNAPSHOTS} WHERE snapshot_id = ? AND schema_name = ? \
                     AND table_name = ? ORDER BY ordinal_position"
                ),
                (c.schema_version, &c.schema, &c.table),
            )
            .await
        {
            Ok(rows) => rows,
            Err(mysql_async::Error::Server(e)) if e.code == 1146 => return Ok(Snapshots::new()),
            Err(e) => return Err(e),
        };
        let columns = rows
            .into_iter()
            .map(|(name, ordinal, data_type, column_type)| SnapshotColumn {
                name,
                ordinal,
                data_type: data_type.to_ascii_lowercase(),
                column_type: column_type.to_ascii_lowercase(),
            })
            .collect::<Vec<_>>();
        if !columns.is_empty() {
            out.insert(key, Snapshot { columns });
        }
    }
    Ok(out)
}

/// The server id of the stream that continues the established era: the one its checkpoint
/// was converted for (`index::adopt` keeps it in [`ESTABLISHED_STATE`]). `None` when the index
/// was not adopted or the established tool never checkpointed.
pub async fn successor(conn: &mut Conn) -> Result<Option<u32>, mysql_async::Error> {
    match conn
        .query_first(format!("SELECT server_id FROM {ESTABLISHED_STATE}"))
        .await
    {
        Ok(id) => Ok(id),
        Err(mysql_async::Error::Server(e)) if e.code == 1146 => Ok(None),
        Err(e) => Err(e),
    }
}

/// What the index does not record about the old era's values, supplied by the caller: the
/// indexing host's time zone (`--established-time-zone`) and each text column's character
/// set, taken from the live table (a snapshot records none).
#[derive(Debug, Clone, Default)]
pub struct Reading {
    /// The zone the old TIMESTAMPs were written in; `None`: they are refused.
    pub zone: Option<HostZone>,
    /// (schema, table, column) → the live column's `CHARACTER_SET_NAME`.
    charsets: BTreeMap<(String, String, String), String>,
}

impl Reading {
    /// The zone, and the character sets of `tables`' string columns.
    pub fn new(zone: Option<HostZone>, tables: &[LiveTable]) -> Reading {
        let charsets = tables
            .iter()
            .flat_map(|t| {
                t.columns.iter().filter_map(|c| {
                    let cs = c.charset.clone()?;
                    Some(((t.schema.clone(), t.table.clone(), c.name.clone()), cs))
                })
            })
            .collect();
        Reading { zone, charsets }
    }

    fn charset(&self, schema: &str, table: &str, column: &str) -> Option<&str> {
        self.charsets
            .get(&(schema.to_string(), table.to_string(), column.to_string()))
            .map(String::as_str)
    }
}

/// `c` with its images in bintrail's value forms (module docs), marked
/// [`ValueForm::Bintrail`]; a change of bintrail's own is returned as it is.
pub fn convert(
    c: &StoredChange,
    snapshots: &Snapshots,
    reading: &Reading,
) -> Result<StoredChange, EraError> {
    let p = convert_partly(c, snapshots, reading)?;
    match p.before.or(p.after) {
        Some(e) => Err(EraError::Inexact(e)),
        None => Ok(p.change),
    }
}

/// A change converted as far as its values are exact ([`convert_partly`]).
#[derive(Debug, Clone)]
pub struct Partly {
    /// The change, its images holding the values that converted (the others left out).
    pub change: StoredChange,
    /// The first value of the before image that does not convert exactly.
    pub before: Option<Box<Inexact>>,
    /// The first value of the after image that does not convert exactly.
    pub after: Option<Box<Inexact>>,
}

/// [`convert`] for a caller that uses only parts of a change (`reconstruct` takes one image of
/// some changes and only the key of others): a value that does not convert exactly is left out
/// of its image, and the image's first such value is reported, so the caller refuses exactly
/// when it needs one. A missing snapshot is an error: nothing converts without it.
pub fn convert_partly(
    c: &StoredChange,
    snapshots: &Snapshots,
    reading: &Reading,
) -> Result<Partly, EraError> {
    if c.value_form != ValueForm::Established {
        return Ok(Partly {
            change: c.clone(),
            before: None,
            after: None,
        });
    }
    let snap = snapshots
        .get(&(c.schema_version, c.schema.clone(), c.table.clone()))
        .ok_or_else(|| EraError::NoSnapshot {
            event_id: c.event_id,
            table: format!("{}.{}", c.schema, c.table),
            snapshot: c.schema_version,
        })?;
    let mut out = c.clone();
    let (row_before, before) = image(c, snap, reading, c.row_before.as_ref());
    let (row_after, after) = image(c, snap, reading, c.row_after.as_ref());
    out.row_before = row_before;
    out.row_after = row_after;
    out.value_form = ValueForm::Bintrail;
    Ok(Partly {
        change: out,
        before,
        after,
    })
}

/// One image of `c` converted: the values that convert, and the first that does not.
fn image(
    c: &StoredChange,
    snap: &Snapshot,
    reading: &Reading,
    m: Option<&Map<String, Value>>,
) -> (Option<Map<String, Value>>, Option<Box<Inexact>>) {
    let Some(m) = m else { return (None, None) };
    let mut out = Map::new();
    let mut first = None;
    for (name, v) in m {
        let col = snap.columns.iter().find(|col| col.name == *name);
        let converted = match col {
            Some(col) => value(
                col,
                v,
                reading.zone,
                reading.charset(&c.schema, &c.table, name),
            ),
            None => Err(Refusal::new(
                "a value",
                format!("the snapshot {} has no such column", c.schema_version),
            )),
        };
        match converted {
            Ok(v) => {
                out.insert(name.clone(), v);
            }
            Err(r) if first.is_none() => {
                first = Some(Box::new(Inexact {
                    event_id: c.event_id,
                    table: format!("{}.{}", c.schema, c.table),
                    column: name.clone(),
                    column_type: col.map_or("?".into(), |col| col.column_type.clone()),
                    form: r.form,
                    why: r.why,
                }))
            }
            Err(_) => {}
        }
    }
    (Some(out), first)
}

/// Why the later changes of old-era rows could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// Reading the index failed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// A change among them cannot be converted, so it cannot be told apart.
    #[error(transparent)]
    Era(#[from] EraError),
}

/// One table's changes of `streams` from `event_id` `from` on, through the `(schema_name,
/// table_name)` prefix of `k_table_pk` (what the EXPLAIN test may run).
pub fn table_scan_sql(
    schema: &str,
    table: &str,
    streams: &[u32],
    from: u64,
) -> (String, Vec<mysql_async::Value>) {
    let marks = vec!["?"; streams.len()].join(", ");
    let mut params: Vec<mysql_async::Value> = vec![schema.into(), table.into()];
    params.extend(streams.iter().map(|s| mysql_async::Value::from(*s)));
    params.push(from.into());
    (
        format!(
            "SELECT {COLUMNS} FROM binlog_events FORCE INDEX (k_table_pk) \
             WHERE schema_name = ? AND table_name = ? AND stream_id IN ({marks}) AND event_id >= ?"
        ),
        params,
    )
}

/// Changes to the selected rows (`changes`, converted) after the oldest selected change of
/// their table that the selection leaves out, across both eras (`streams`: 0 and the stream
/// that continues it), in commit order.
///
/// The eras key rows differently (the established tool joined a composite key in column order,
/// it recorded no key changes, its values have other forms), so rows are followed here by the
/// live table's key computed from converted images: one scan of each table's changes from the
/// oldest selected one on, converted, then [`later`].
pub async fn later_changes(
    conn: &mut Conn,
    changes: &[StoredChange],
    streams: &[u32],
    tables: &[LiveTable],
    reading: &Reading,
) -> Result<Vec<StoredChange>, ScanError> {
    let selected: BTreeSet<u64> = changes.iter().map(|c| c.event_id).collect();
    let mut oldest: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for c in changes {
        let o = oldest.entry((&c.schema, &c.table)).or_insert(c.event_id);
        *o = (*o).min(c.event_id);
    }
    let mut out = Vec::new();
    for ((schema, table), from) in oldest {
        let Some(live) = tables
            .iter()
            .find(|t| t.schema == schema && t.table == table)
        else {
            continue;
        };
        let (sql, params) = table_scan_sql(schema, table, streams, from);
        let rows: Vec<Row> = conn.exec(sql, params).await.map_err(QueryError::from)?;
        let stored = rows
            .into_iter()
            .map(parse_row)
            .collect::<Result<Vec<_>, _>>()?;
        let snapshots = load(conn, &stored).await.map_err(QueryError::from)?;
        let mut all = stored
            .iter()
            .map(|c| convert(c, &snapshots, reading))
            .collect::<Result<Vec<_>, _>>()?;
        all.sort_by_key(|c| c.event_id);
        let ids = later(&all, &selected, |image| identity(live, image));
        out.extend(all.into_iter().filter(|c| ids.contains(&c.event_id)));
    }
    out.sort_by_key(|c| c.event_id);
    Ok(out)
}

/// A row's identity in either era: the live key's values in bintrail's `pk_values` form, or,
/// for a table without a usable key, the whole image.
fn identity(live: &LiveTable, image: &Map<String, Value>) -> String {
    if live.key_kind == KeyKind::AllColumns {
        return Value::Object(image.clone()).to_string();
    }
    key_text(
        live.key
            .iter()
            .map(|&i| image.get(&live.columns[i].name).unwrap_or(&Value::Null)),
    )
}

/// The `event_id`s of the changes in `all` (one table's, in commit order, images in one form)
/// that are not `selected` but change a row a selected change left behind, or one such a change
/// left behind in turn: a row is the identity `key_of` gives its image, and an update that
/// changes it moves the row to its new identity.
pub fn later(
    all: &[StoredChange],
    selected: &BTreeSet<u64>,
    key_of: impl Fn(&Map<String, Value>) -> String,
) -> BTreeSet<u64> {
    let key = |m: &Option<Map<String, Value>>| m.as_ref().map(&key_of);
    let mut held: BTreeSet<String> = BTreeSet::new();
    let mut out = BTreeSet::new();
    for c in all {
        let (before, after) = (key(&c.row_before), key(&c.row_after));
        let found = match c.event_type {
            ChangeKind::Insert => after.clone(),
            _ => before.clone(),
        };
        if selected.contains(&c.event_id) {
            // Undone, the row holds its key before the change again; until then, after it.
            held.extend(before);
            held.extend(after);
        } else if found.is_some_and(|k| held.contains(&k)) {
            out.insert(c.event_id);
            held.extend(after);
        }
    }
    out
}

/// Why one value cannot be converted: its established form, and why that is not exact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The form (`a TIMESTAMP in the indexing host's time zone`).
    pub form: String,
    /// Why.
    pub why: String,
}

impl Refusal {
    fn new(form: &str, why: impl Into<String>) -> Refusal {
        Refusal {
            form: form.into(),
            why: why.into(),
        }
    }
}

/// One value of column `col` in bintrail's form (module docs): `zone` is the indexing host's
/// (for TIMESTAMP), `charset` the column's character set (for TEXT; `None`: unknown, taken as
/// UTF-8 when the bytes are).
pub fn value(
    col: &SnapshotColumn,
    v: &Value,
    zone: Option<HostZone>,
    charset: Option<&str>,
) -> Result<Value, Refusal> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let unsigned = col.column_type.contains("unsigned");
    match col.data_type.as_str() {
        "enum" => enum_label(col, v),
        "set" => set_labels(col, v),
        "tinytext" | "text" | "mediumtext" | "longtext" => text(v, charset),
        "binary" | "varbinary" => binary(col, v),
        "json" => json(v),
        "timestamp" => timestamp(col, v, zone),
        "decimal" | "numeric" => decimal(col, v),
        "bigint" if unsigned => match v.as_i64() {
            Some(n) if n < 0 => Ok(Value::Number(Number::from(n as u64))),
            _ => Ok(v.clone()),
        },
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" if unsigned => match v.as_i64() {
            Some(n) if n < 0 => Err(Refusal::new(
                "a negative number",
                "an UNSIGNED column of this width holds none, and the established forms wrap only BIGINT",
            )),
            _ => Ok(v.clone()),
        },
        _ => Ok(v.clone()),
    }
}

/// The members of an `enum('a','b')` or `set('a','b')` column type, unquoted.
pub fn members(column_type: &str) -> Vec<String> {
    let inner = column_type
        .split_once('(')
        .and_then(|(_, rest)| rest.rsplit_once(')'))
        .map_or("", |(inner, _)| inner);
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch != '\'' {
            continue;
        }
        let mut m = String::new();
        while let Some(ch) = chars.next() {
            match ch {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    m.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(next) = chars.next() {
                        m.push(next);
                    }
                }
                other => m.push(other),
            }
        }
        out.push(m);
    }
    out
}

fn enum_label(col: &SnapshotColumn, v: &Value) -> Result<Value, Refusal> {
    let labels = members(&col.column_type);
    match v.as_u64() {
        Some(0) => Ok(Value::String(String::new())),
        Some(i) if i as usize <= labels.len() => Ok(Value::String(labels[i as usize - 1].clone())),
        _ => Err(Refusal::new(
            "an ENUM index",
            format!(
                "{v} is not an index of the snapshot's {} members",
                labels.len()
            ),
        )),
    }
}

fn set_labels(col: &SnapshotColumn, v: &Value) -> Result<Value, Refusal> {
    let labels = members(&col.column_type);
    match v.as_u64() {
        Some(bits) if labels.len() >= 64 || bits >> labels.len() == 0 => {
            let names: Vec<&str> = labels
                .iter()
                .enumerate()
                .filter(|(i, _)| bits >> i & 1 == 1)
                .map(|(_, l)| l.as_str())
                .collect();
            Ok(Value::String(names.join(",")))
        }
        _ => Err(Refusal::new(
            "a SET bitmask",
            format!(
                "{v} is not a bitmask of the snapshot's {} members",
                labels.len()
            ),
        )),
    }
}

fn text(v: &Value, charset: Option<&str>) -> Result<Value, Refusal> {
    let bytes = v.as_str().and_then(base64_decode).ok_or_else(|| {
        Refusal::new(
            "a TEXT value",
            format!("{v} is not base64, the established form of TEXT"),
        )
    })?;
    match charset.map(str::to_ascii_lowercase).as_deref() {
        None | Some("utf8" | "utf8mb3" | "utf8mb4" | "ascii") => {}
        // The one decoder bintrail's own latin1 values go through.
        Some("latin1") => return Ok(Value::String(latin1_to_string(&bytes))),
        Some(other) => {
            return Err(Refusal::new(
                "TEXT as base64",
                format!(
                    "the column's character set is {other} (the live table's; the index records none for the old era), and only UTF-8 and latin1 bytes are converted"
                ),
            ))
        }
    }
    String::from_utf8(bytes).map(Value::String).map_err(|_| {
        Refusal::new(
            "TEXT as base64",
            "its bytes are not UTF-8, the column's character set",
        )
    })
}

/// A TIMESTAMP in the indexing host's zone, in UTC with the column's fraction digits.
fn timestamp(col: &SnapshotColumn, v: &Value, zone: Option<HostZone>) -> Result<Value, Refusal> {
    const FORM: &str = "a TIMESTAMP in the indexing host's time zone";
    let Some(zone) = zone else {
        return Err(Refusal::new(
            FORM,
            "the index does not record that zone; name it with --established-time-zone (a fixed offset such as +02:00, or UTC)",
        ));
    };
    let text = v
        .as_str()
        .ok_or_else(|| Refusal::new(FORM, format!("{v} is not a string")))?;
    let fsp = width(&col.column_type).unwrap_or(0);
    zone.to_utc(text, fsp)
        .map(Value::String)
        .map_err(|why| Refusal::new(FORM, why))
}

fn binary(col: &SnapshotColumn, v: &Value) -> Result<Value, Refusal> {
    let s = v
        .as_str()
        .ok_or_else(|| Refusal::new("a BINARY value", format!("{v} is not a string")))?;
    if s.contains('\u{FFFD}') {
        return Err(Refusal::new(
            "BINARY as raw bytes",
            "it holds U+FFFD, which the established tool wrote for every byte that is not UTF-8, so the bytes are lost",
        ));
    }
    let mut bytes = s.as_bytes().to_vec();
    if col.data_type == "binary" {
        let n = width(&col.column_type).unwrap_or(0);
        if bytes.len() > n {
            return Err(Refusal::new(
                "BINARY as raw bytes",
                format!("{} bytes do not fit {}", bytes.len(), col.column_type),
            ));
        }
        // The binlog drops BINARY(n)'s trailing zero bytes; bintrail stores the padded value.
        bytes.resize(n, 0);
    }
    Ok(Value::String(base64(&bytes)))
}

/// `n` of `binary(n)`, `(p, s)`'s first number.
fn width(column_type: &str) -> Option<usize> {
    let inner = column_type.split_once('(')?.1.split_once(')')?.0;
    inner.split(',').next()?.trim().parse().ok()
}

fn json(v: &Value) -> Result<Value, Refusal> {
    let s = v.as_str().ok_or_else(|| {
        Refusal::new(
            "a JSON value",
            format!("{v} is not a string holding a document"),
        )
    })?;
    let mut doc: Value = serde_json::from_str(s).map_err(|e| {
        Refusal::new(
            "a JSON value",
            format!("the string is not a JSON document: {e}"),
        )
    })?;
    if has_number(&doc) {
        return Err(Refusal::new(
            "JSON as a string holding the document",
            "the document holds a number, and the established tool printed an integer and a double of the same value alike (3)",
        ));
    }
    if depth(&doc) > 90 {
        return Err(Refusal::new(
            "JSON as a string holding the document",
            "the document nests deeper than 90 levels",
        ));
    }
    seal_strings(&mut doc);
    Ok(doc)
}

fn has_number(v: &Value) -> bool {
    match v {
        Value::Number(_) => true,
        Value::Array(items) => items.iter().any(has_number),
        Value::Object(m) => m.values().any(has_number),
        _ => false,
    }
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Strings that begin with `json:` in bintrail's `json:` form (`encoding`'s `json_raw`).
fn seal_strings(v: &mut Value) {
    match v {
        Value::String(s) if s.starts_with(RAW_PREFIX) => {
            *v = Value::String(format!("{RAW_PREFIX}{}", Value::String(std::mem::take(s))))
        }
        Value::Array(items) => items.iter_mut().for_each(seal_strings),
        Value::Object(m) => m.values_mut().for_each(seal_strings),
        _ => {}
    }
}

fn decimal(col: &SnapshotColumn, v: &Value) -> Result<Value, Refusal> {
    let s = match v {
        Value::String(s) => s.as_str(),
        _ => {
            return Err(Refusal::new(
                "a DECIMAL value",
                format!("{v} is not the exact string the established tool writes"),
            ))
        }
    };
    let scale = col
        .column_type
        .split_once(',')
        .and_then(|(_, r)| {
            r.trim_end_matches(|c: char| !c.is_ascii_digit())
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0usize);
    let (neg, digits) = s.strip_prefix('-').map_or((false, s), |d| (true, d));
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let ok = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit());
    let extra = frac.get(scale..).unwrap_or("");
    if !ok || extra.bytes().any(|b| b != b'0') {
        return Err(Refusal::new(
            "a DECIMAL value",
            format!("{s} is not a number with at most {scale} decimals"),
        ));
    }
    let mut out = String::with_capacity(s.len() + scale);
    if neg {
        out.push('-');
    }
    out.push_str(int);
    if scale > 0 {
        out.push('.');
        let kept = &frac[..frac.len().min(scale)];
        out.push_str(kept);
        out.extend(std::iter::repeat_n('0', scale - kept.len()));
    }
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plain(col: &SnapshotColumn, v: &Value) -> Result<Value, Refusal> {
        value(col, v, None, None)
    }

    fn col(data_type: &str, column_type: &str) -> SnapshotColumn {
        SnapshotColumn {
            name: "c".into(),
            ordinal: 1,
            data_type: data_type.into(),
            column_type: column_type.into(),
        }
    }

    #[test]
    fn enum_indexes_and_set_bitmasks_become_member_names() {
        let e = col("enum", "enum('x','it''s','a,b')");
        assert_eq!(members(&e.column_type), vec!["x", "it's", "a,b"]);
        assert_eq!(plain(&e, &json!(2)), Ok(json!("it's")));
        assert_eq!(plain(&e, &json!(0)), Ok(json!("")));
        assert!(plain(&e, &json!(4)).is_err());
        let s = col("set", "set('p','q','r')");
        assert_eq!(plain(&s, &json!(5)), Ok(json!("p,r")));
        assert_eq!(plain(&s, &json!(0)), Ok(json!("")));
        assert!(plain(&s, &json!(8)).is_err());
    }

    #[test]
    fn text_is_decoded_from_base64_and_binary_is_encoded_to_it() {
        let t = col("text", "text");
        assert_eq!(
            plain(&t, &json!(base64("héllo|".as_bytes()))),
            Ok(json!("héllo|"))
        );
        assert!(plain(&t, &json!(base64(&[0xff, 0xfe]))).is_err());
        let latin1 = value(
            &t,
            &json!(base64(&[b'a', 0xe9, 0x80])),
            None,
            Some("latin1"),
        );
        assert_eq!(latin1, Ok(json!("aé€")));
        let r = value(&t, &json!(base64(b"abc")), None, Some("cp1251")).unwrap_err();
        assert!(r.why.contains("cp1251"), "{r:?}");
        let b = col("binary", "binary(4)");
        assert_eq!(plain(&b, &json!("ab")), Ok(json!(base64(b"ab\0\0"))));
        assert!(plain(&b, &json!("a\u{FFFD}")).is_err());
        let vb = col("varbinary", "varbinary(8)");
        assert_eq!(plain(&vb, &json!("ab")), Ok(json!(base64(b"ab"))));
        let blob = col("blob", "blob");
        assert_eq!(plain(&blob, &json!("AAE=")), Ok(json!("AAE=")));
    }

    #[test]
    fn numbers_take_bintrails_forms_where_they_differ() {
        let u = col("bigint", "bigint unsigned");
        assert_eq!(plain(&u, &json!(-1)), Ok(json!(18446744073709551615u64)));
        assert_eq!(plain(&u, &json!(7)), Ok(json!(7)));
        assert!(plain(&col("int", "int unsigned"), &json!(-1)).is_err());
        let d = col("decimal", "decimal(10,2)");
        assert_eq!(plain(&d, &json!("-12.5")), Ok(json!("-12.50")));
        assert_eq!(plain(&d, &json!("3")), Ok(json!("3.00")));
        assert_eq!(plain(&d, &json!("3.100")), Ok(json!("3.10")));
        assert!(plain(&d, &json!("3.105")).is_err());
        assert_eq!(
            plain(&col("decimal", "decimal(5,0)"), &json!("7")),
            Ok(json!("7"))
        );
    }

    #[test]
    fn json_documents_convert_unless_a_number_makes_them_ambiguous() {
        let j = col("json", "json");
        assert_eq!(
            plain(&j, &json!(r#"{"a":["x",true,null],"b":"json:y"}"#)),
            Ok(json!({"a":["x",true,null],"b":"json:\"json:y\""}))
        );
        assert!(plain(&j, &json!(r#"{"a":3}"#)).is_err());
    }

    #[test]
    fn timestamps_are_refused_but_their_nulls_and_other_types_pass() {
        let ts = col("timestamp", "timestamp");
        let r = plain(&ts, &json!("2026-01-01 10:00:00")).unwrap_err();
        assert!(r.form.contains("time zone"), "{r:?}");
        assert!(r.why.contains("--established-time-zone"), "{r:?}");
        let east = Some("+02:00".parse().unwrap());
        assert_eq!(
            value(&ts, &json!("2026-01-01 10:00:00"), east, None),
            Ok(json!("2026-01-01 08:00:00"))
        );
        let ts3 = col("timestamp", "timestamp(3)");
        assert_eq!(
            value(&ts3, &json!("2026-01-01 00:30:00.25"), east, None),
            Ok(json!("2025-12-31 22:30:00.250"))
        );
        assert_eq!(plain(&ts, &Value::Null), Ok(Value::Null));
        let dt = col("datetime", "datetime");
        assert_eq!(
            plain(&dt, &json!("2026-01-01 10:00:00")),
            Ok(json!("2026-01-01 10:00:00"))
        );
    }

    #[test]
    fn later_changes_follow_a_row_through_key_changes_in_commit_order() {
        let change = |id: u64, kind: ChangeKind, before: Option<i64>, after: Option<i64>| {
            let img = |k: Option<i64>| k.and_then(|k| json!({ "id": k }).as_object().cloned());
            // `later` reads only the identity, the kind and the images.
            StoredChange {
                event_id: id,
                event_type: kind,
                row_before: img(before),
                row_after: img(after),
                ..StoredChange::sample()
            }
        };
        use ChangeKind::*;
        let all = [
            change(1, Insert, None, Some(1)),
            change(2, Insert, None, Some(2)),
            change(3, Update, Some(1), Some(5)),
            change(4, Update, Some(5), Some(6)),
            change(5, Delete, Some(2), None),
            change(6, Insert, None, Some(9)),
        ];
        let key = |m: &Map<String, Value>| m["id"].to_string();
        let selected = BTreeSet::from([1]);
        assert_eq!(later(&all, &selected, key), BTreeSet::from([3, 4]));
        let selected = BTreeSet::from([1, 2, 3, 4, 5]);
        assert!(later(&all, &selected, key).is_empty());
    }

    #[test]
    fn a_change_converts_through_its_snapshot_or_is_refused_naming_the_column() {
        let mut snaps = Snapshots::new();
        snaps.insert(
            (3, "s".into(), "t".into()),
            Snapshot {
                columns: vec![
                    SnapshotColumn {
                        name: "id".into(),
                        ordinal: 1,
                        data_type: "int".into(),
                        column_type: "int".into(),
                    },
                    SnapshotColumn {
                        name: "e".into(),
                        ordinal: 2,
                        data_type: "enum".into(),
                        column_type: "enum('x','y')".into(),
                    },
                    SnapshotColumn {
                        name: "ts".into(),
                        ordinal: 3,
                        data_type: "timestamp".into(),
                        column_type: "timestamp".into(),
                    },
                ],
            },
        );
        let mut c = StoredChange {
            value_form: ValueForm::Established,
            stream_id: 0,
            schema: "s".into(),
            table: "t".into(),
            pk_values: "1".into(),
            row_after: json!({"id": 1, "e": 2, "ts": null}).as_object().cloned(),
            schema_version: 3,
            ..StoredChange::sample()
        };
        let out = convert(&c, &snaps, &Reading::default()).unwrap();
        assert_eq!(
            out.row_after,
            json!({"id": 1, "e": "y", "ts": null}).as_object().cloned()
        );
        assert_eq!(out.value_form, ValueForm::Bintrail);
        c.row_after = json!({"id": 1, "e": 2, "ts": "2026-01-01 00:00:00"})
            .as_object()
            .cloned();
        let e = convert(&c, &snaps, &Reading::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("s.t") && e.contains("column ts (timestamp)") && e.contains("time zone"),
            "{e}"
        );
        let p = convert_partly(&c, &snaps, &Reading::default()).unwrap();
        assert_eq!(
            p.change.row_after,
            json!({"id": 1, "e": "y"}).as_object().cloned(),
            "the value that does not convert is left out, the others converted"
        );
        assert_eq!(p.after.as_ref().map(|f| f.column.as_str()), Some("ts"));
        assert!(p.before.is_none());
        let zoned = Reading::new(Some("+02:00".parse().unwrap()), &[]);
        assert_eq!(
            convert(&c, &snaps, &zoned).unwrap().row_after,
            json!({"id": 1, "e": "y", "ts": "2025-12-31 22:00:00"})
                .as_object()
                .cloned()
        );
        c.schema_version = 4;
        assert!(matches!(
            convert(&c, &snaps, &Reading::default()),
            Err(EraError::NoSnapshot { snapshot: 4, .. })
        ));
    }
}

//! Selecting changes from `binlog_events`: validated filters ([`Selection`]) → one indexed
//! SELECT ([`select_sql`]) → typed rows ([`StoredChange`]).
//!
//! # Invariants
//! * The SQL is built from fixed text and placeholders only; every value travels as a
//!   parameter. `--pk` is looked up as `pk_values = ?` under `schema_name`/`table_name`
//!   (the `k_table_pk` index), `--since`/`--until` bound `event_timestamp` (the `k_time` index and
//!   partition pruning), `--gtid` uses `k_gtid`.
//! * The newest `limit` matches in history order are fetched (`ORDER BY event_id DESC`, or with
//!   filled gaps [`Order::sql_key`]: changes `index --fill-gap` wrote count at their gap's
//!   place), one more to know whether there were more, and returned oldest first.
//! * Stored values are returned as the index holds them: the JSON images are parsed with
//!   serde_json, whose numbers keep every integer exactly and print every double as stored.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use serde::Serialize;
use serde_json::{Map, Value};

use super::follow::{follow_keys, Trail};
use super::order::{Order, Pos};
use super::selection::Selection;
use crate::archive::read::{Archive, KeyFrom, Scan};
use crate::archive::writer::ArchiveRow;
use crate::archive::ArchiveError;
use crate::change::ChangeKind;
use crate::index::adopt::ValueForm;
use crate::time::format_utc;

/// One stored change, as the index holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredChange {
    /// `event_id`: commit order within its stream.
    pub event_id: u64,
    /// The stream (`--server-id`) that indexed it.
    pub stream_id: u32,
    /// Binlog file of the rows event.
    pub binlog_file: String,
    /// Offset of the rows event.
    pub start_pos: u64,
    /// Offset of the event after it.
    pub end_pos: u64,
    /// Row index inside the rows event.
    pub row_in_event: u32,
    /// `YYYY-MM-DD HH:MM:SS`, UTC.
    pub event_timestamp: String,
    /// GTID of the transaction.
    pub gtid: Option<String>,
    /// Session that made the change.
    pub connection_id: Option<u32>,
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// insert, update or delete.
    #[serde(serialize_with = "kind_name")]
    pub event_type: ChangeKind,
    /// Key values joined by `|`.
    pub pk_values: String,
    /// Columns an update changed.
    pub changed_columns: Option<Vec<String>>,
    /// The row before (updates, deletes).
    pub row_before: Option<Map<String, Value>>,
    /// The row after (inserts, updates).
    pub row_after: Option<Map<String, Value>>,
    /// Fingerprint of the table's columns when the change was indexed (for a change the
    /// established tool indexed: the id of its `schema_snapshots` snapshot).
    pub schema_version: u32,
    /// For a change read from the archive: its `policy_version` (the file holds it; the index's
    /// own rows are looked up by `event_id` instead, `history::policed`). Not printed.
    #[serde(skip)]
    pub archived_policy: Option<u32>,
    /// The value forms of the images: the established tool's for its rows (`stream_id` 0,
    /// `index::adopt`); printed only then.
    #[serde(skip_serializing_if = "is_bintrail")]
    pub value_form: ValueForm,
}

fn is_bintrail(f: &ValueForm) -> bool {
    *f == ValueForm::Bintrail
}

#[cfg(test)]
impl StoredChange {
    /// A change for unit tests to build on with `..StoredChange::sample()`: an insert of key
    /// `12345` into `shop`.`orders`, event 7 of stream 42 at `binlog.000001:4`, without images.
    pub(crate) fn sample() -> StoredChange {
        StoredChange {
            archived_policy: None,
            value_form: ValueForm::Bintrail,
            event_id: 7,
            stream_id: 42,
            binlog_file: "binlog.000001".into(),
            start_pos: 4,
            end_pos: 100,
            row_in_event: 0,
            event_timestamp: "2026-11-25 14:00:00".into(),
            gtid: None,
            connection_id: None,
            schema: "shop".into(),
            table: "orders".into(),
            event_type: ChangeKind::Insert,
            pk_values: "12345".into(),
            changed_columns: None,
            row_before: None,
            row_after: None,
            schema_version: 0,
        }
    }
}

fn kind_name<S: serde::Serializer>(k: &ChangeKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(k.name())
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The index refused the query.
    #[error("querying the index: {0}")]
    Server(#[from] mysql_async::Error),
    /// The archive could not be read.
    #[error("reading the archive: {0}")]
    Archive(#[from] ArchiveError),
    /// A stored row does not have the shape bintrail writes.
    #[error("binlog_events row {event_id} is unreadable: {what}")]
    Corrupt {
        /// The row.
        event_id: u64,
        /// What is wrong.
        what: String,
    },
}

/// The selected changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Oldest first.
    pub changes: Vec<StoredChange>,
    /// More changes matched than `limit`; the oldest were left out.
    pub more: bool,
}

/// GTIDs per `gtid IN (…)` list.
const GTID_BATCH: usize = 1_000;

/// The selected columns, in [`StoredChange`] order.
pub(crate) const COLUMNS: &str =
    "event_id, stream_id, binlog_file, start_pos, end_pos, COALESCE(row_in_event, 0), \
     DATE_FORMAT(event_timestamp, '%Y-%m-%d %H:%i:%s'), gtid, connection_id, schema_name, \
     table_name, event_type, pk_values, changed_columns, row_before, row_after, schema_version";

/// The SELECT for a selection and its parameters (also what the EXPLAIN tests run).
pub fn select_sql(sel: &Selection) -> (String, Vec<mysql_async::Value>) {
    select_sql_following(sel, &Trail::new(), None, &Order::default())
}

/// The changes stamped at or after a time, up to a cap (`k_time`, covering): their smallest
/// `event_id` and how many were counted: (time, cap + 1).
pub const SINCE_BOUND_SQL: &str = "SELECT MIN(event_id), COUNT(*) FROM (SELECT event_id \
     FROM binlog_events WHERE event_timestamp >= ? LIMIT ?) AS since";

/// The smallest `event_id` of the changes stamped at or after `since`, when at most `cap` are:
/// every selected change then lies in the primary-key range from it, which the server can
/// read instead of a table's whole history through `k_table_pk`. `None`: too many to count
/// cheaply, or none.
async fn since_bound(conn: &mut Conn, since: i64, cap: u64) -> Result<Option<u64>, QueryError> {
    let row: Option<(Option<u64>, u64)> = conn
        .exec_first(SINCE_BOUND_SQL, (format_utc(since), cap.saturating_add(1)))
        .await?;
    Ok(match row {
        Some((first, n)) if n <= cap => first,
        _ => None,
    })
}

/// Changes stamped since a `--since` counted to find [`since_bound`], at least.
const SINCE_BOUND_MIN: u64 = 10_000;

/// [`select_sql`] where `--pk` also matches the keys the row moved to: each key of `trail`
/// from its place on (its `event_id` floor: a superset, which [`fetch`] does not narrow, as a
/// row's key is not another row's at once); with `first`, only changes from that `event_id`
/// on (a bound known to hold every selected change: [`since_bound`]); newest first in
/// `order`.
pub fn select_sql_following(
    sel: &Selection,
    trail: &Trail,
    first: Option<u64>,
    order: &Order,
) -> (String, Vec<mysql_async::Value>) {
    // The filter and the order run on the narrow (event_id, event_timestamp) pairs, then the
    // picked rows are read by primary key: sorting whole rows (their JSON images) made the
    // server read each row twice, and a table's history through `k_table_pk` is covering.
    // The join's order is not the inner one: [`fetch`] orders the rows.
    let mut sql = "SELECT event_id, event_timestamp FROM binlog_events WHERE TRUE".to_string();
    let mut params: Vec<mysql_async::Value> = Vec::new();
    let mut and = |cond: &str, v: Vec<mysql_async::Value>| {
        sql.push_str(" AND ");
        sql.push_str(cond);
        params.extend(v);
    };
    if let Some(s) = &sel.schema {
        and("schema_name = ?", vec![s.as_str().into()]);
    }
    if let Some(t) = &sel.table {
        and("table_name = ?", vec![t.as_str().into()]);
    }
    if let Some(pk) = &sel.pk {
        let moved: Vec<(&String, &Pos)> = trail.iter().filter(|(k, _)| *k != pk).collect();
        let orders = established_orders(pk);
        let (mut cond, mut values): (String, Vec<mysql_async::Value>) = if orders.is_empty() {
            ("pk_values = ?".into(), vec![pk.as_str().into()])
        } else {
            let marks = vec!["?"; orders.len()].join(", ");
            let mut values = vec![pk.as_str().into()];
            values.extend(orders.into_iter().map(mysql_async::Value::from));
            (
                format!("(pk_values = ? OR (stream_id = 0 AND pk_values IN ({marks})))"),
                values,
            )
        };
        if !moved.is_empty() {
            let alternatives = vec!["(pk_values = ? AND event_id >= ?)"; moved.len()].join(" OR ");
            for (k, from) in moved {
                values.push(k.as_str().into());
                values.push(from.id_floor().into());
            }
            cond = format!("({cond} OR {alternatives})");
        }
        and(&cond, values);
    }
    if let Some(id) = sel.server_id {
        and("stream_id = ?", vec![id.into()]);
    }
    if let Some(t) = sel.since {
        and("event_timestamp >= ?", vec![format_utc(t).into()]);
    }
    if let Some(id) = first {
        and("event_id >= ?", vec![id.into()]);
    }
    if let Some(t) = sel.until {
        and("event_timestamp <= ?", vec![format_utc(t).into()]);
    }
    if let Some(k) = sel.kind {
        and("event_type = ?", vec![k.code().into()]);
    }
    if !sel.gtids.is_empty() {
        let marks = vec!["?"; sel.gtids.len()].join(", ");
        let values = sel.gtids.iter().map(|g| g.as_str().into()).collect();
        and(&format!("gtid IN ({marks})"), values);
    } else if let Some(g) = &sel.gtid {
        and("gtid = ?", vec![g.as_str().into()]);
    }
    if let Some(c) = &sel.changed_column {
        and(
            "JSON_CONTAINS(changed_columns, JSON_QUOTE(?))",
            vec![c.as_str().into()],
        );
    }
    if order.is_plain() {
        sql.push_str(" ORDER BY event_id DESC LIMIT ?");
        params.push((sel.limit + 1).into());
    } else {
        // History order: a change's rank by `event_id` is at most its rank in history order
        // plus the number of filled changes (only those can move down past it), so the newest
        // `limit + 1` in history order are among the newest `limit + 1 + filled` by `event_id`:
        // those are read in index order (stopping early, as without a filled gap) and only
        // they are sorted by place.
        sql = sql.replacen(
            "SELECT event_id, event_timestamp FROM",
            "SELECT event_id, event_timestamp, stream_id FROM",
            1,
        );
        let keys: Vec<String> = order
            .sql_key()
            .into_iter()
            .map(|k| format!("{k} DESC"))
            .collect();
        sql = format!(
            "SELECT event_id, event_timestamp FROM ({sql} ORDER BY event_id DESC LIMIT ?) AS near \
             ORDER BY {}, event_id DESC LIMIT ?",
            keys.join(", ")
        );
        params.push((sel.limit + 1).saturating_add(order.filled_count()).into());
        params.push((sel.limit + 1).into());
    }
    (
        format!(
            "SELECT {COLUMNS} FROM binlog_events JOIN ({sql}) AS picked \
             USING (event_id, event_timestamp)"
        ),
        params,
    )
}

/// Key parts beyond which [`established_orders`] gives up (4! orders at most).
const MAX_REORDERED_PARTS: usize = 4;

/// The other orders of `pk`'s parts, for the rows the established tool indexed
/// (`stream_id = 0`): it joined a composite key in the table's column order, bintrail in the
/// key's own order, and the index does not know the columns of either. A key of one part, or
/// of more than [`MAX_REORDERED_PARTS`], has none. A row whose key holds the same values in
/// another order (`(a, b) = (1, 2)` and `(2, 1)`) is matched too; `query` marks old rows so
/// the reader can tell.
pub fn established_orders(pk: &str) -> Vec<String> {
    let parts = raw_parts(pk);
    if parts.len() < 2 || parts.len() > MAX_REORDERED_PARTS {
        return Vec::new();
    }
    let mut out = Vec::new();
    permute(
        &parts,
        &mut Vec::new(),
        &mut vec![false; parts.len()],
        &mut out,
    );
    out.retain(|o| o != pk);
    out.sort();
    out.dedup();
    out
}

/// `pk_values` split at unescaped `|`, escapes kept (each part is re-joined as stored).
fn raw_parts(pk: &str) -> Vec<&str> {
    let (mut parts, mut start, mut escaped) = (Vec::new(), 0, false);
    for (i, ch) in pk.char_indices() {
        match ch {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '|' => {
                parts.push(&pk[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&pk[start..]);
    parts
}

fn permute(parts: &[&str], chosen: &mut Vec<usize>, used: &mut [bool], out: &mut Vec<String>) {
    if chosen.len() == parts.len() {
        let joined: Vec<&str> = chosen.iter().map(|&i| parts[i]).collect();
        out.push(joined.join("|"));
        return;
    }
    for i in 0..parts.len() {
        if !used[i] {
            used[i] = true;
            chosen.push(i);
            permute(parts, chosen, used, out);
            chosen.pop();
            used[i] = false;
        }
    }
}

/// Runs the selection. `--pk K` also follows the row forward through updates that changed its
/// key (`history::follow`): the update away from K and the changes under each new key from that
/// update on are included. With `archive`, its changes count as if they were in the index.
pub async fn fetch(
    conn: &mut Conn,
    sel: &Selection,
    archive: Option<&Archive>,
) -> Result<Page, QueryError> {
    let order = Order::load(conn).await?;
    fetch_in(conn, sel, &order, archive).await
}

/// [`fetch`] with the index's [`Order`] already loaded.
pub async fn fetch_in(
    conn: &mut Conn,
    sel: &Selection,
    order: &Order,
    archive: Option<&Archive>,
) -> Result<Page, QueryError> {
    let mut trail = Trail::new();
    if let (Some(schema), Some(table), Some(pk)) = (&sel.schema, &sel.table, &sel.pk) {
        trail.insert(pk.clone(), Pos::START);
        follow_keys(conn, order, schema, table, sel.server_id, &mut trail).await?;
    }
    let first = match sel.since {
        Some(t) if sel.pk.is_none() && sel.gtids.is_empty() => {
            since_bound(conn, t, SINCE_BOUND_MIN.max(sel.limit.saturating_mul(2))).await?
        }
        _ => None,
    };
    let statements = if sel.gtids.len() <= GTID_BATCH {
        vec![select_sql_following(sel, &trail, first, order)]
    } else {
        // A large --gtid range: one IN list per batch, the newest `limit + 1` of all kept.
        sel.gtids
            .chunks(GTID_BATCH)
            .map(|chunk| {
                let part = Selection {
                    gtids: chunk.to_vec(),
                    ..sel.clone()
                };
                select_sql_following(&part, &trail, first, order)
            })
            .collect()
    };
    // Parsed as they arrive: the server produces rows while earlier ones are parsed, and the
    // raw rows are not all held at once.
    let mut changes = Vec::new();
    for (sql, params) in statements {
        let mut result = conn.exec_iter(sql, params).await?;
        while let Some(row) = result.next().await? {
            changes.push(parse_row(row)?);
        }
    }
    if let Some(archive) = archive {
        let newest = archived_newest(archive, &selection_scan(sel, &trail), sel, order)?;
        changes = merge(changes, newest);
    }
    changes.sort_unstable_by_key(|c: &StoredChange| {
        std::cmp::Reverse(order.pos(c.stream_id, c.event_id))
    });
    let more = changes.len() as u64 > sel.limit;
    changes.truncate(usize::try_from(sel.limit).unwrap_or(usize::MAX));
    changes.reverse();
    Ok(Page { changes, more })
}

/// The archive's part of a selection: the same filters, the keys of `trail` each from its
/// place on, and for the established era the other orders of `--pk`'s parts (as in
/// [`select_sql_following`]). `--changed-column` is checked on the rows.
pub fn selection_scan(sel: &Selection, trail: &Trail) -> Scan {
    let keys = sel.pk.as_ref().map(|pk| {
        let mut keys: Vec<KeyFrom> = trail
            .iter()
            .map(|(k, from)| KeyFrom {
                pk: k.clone(),
                from: if k == pk { 0 } else { from.id_floor() },
                stream: None,
            })
            .collect();
        if !trail.contains_key(pk) {
            keys.push(KeyFrom {
                pk: pk.clone(),
                from: 0,
                stream: None,
            });
        }
        keys.extend(established_orders(pk).into_iter().map(|o| KeyFrom {
            pk: o,
            from: 0,
            stream: Some(0),
        }));
        keys
    });
    let gtids = if !sel.gtids.is_empty() {
        Some(sel.gtids.iter().cloned().collect())
    } else {
        sel.gtid.clone().map(|g| std::iter::once(g).collect())
    };
    Scan {
        stream: sel.server_id,
        schema: sel.schema.clone(),
        table: sel.table.clone(),
        keys,
        since: sel.since,
        until: sel.until,
        gtids,
        kind: sel.kind.map(|k| k.code()),
        ..Scan::default()
    }
}

/// The newest `limit + 1` archived changes `scan` (and `--changed-column`) matches, in history
/// order; never more than twice that are held while reading.
fn archived_newest(
    archive: &Archive,
    scan: &Scan,
    sel: &Selection,
    order: &Order,
) -> Result<Vec<StoredChange>, QueryError> {
    let keep = usize::try_from(sel.limit.saturating_add(1)).unwrap_or(usize::MAX);
    let rows: std::cell::RefCell<Vec<ArchiveRow>> = std::cell::RefCell::new(Vec::new());
    let newest_first = |rows: &mut Vec<ArchiveRow>| {
        rows.sort_unstable_by_key(|r| std::cmp::Reverse(order.pos(r.stream_id, r.event_id)));
        rows.truncate(keep);
    };
    // In plain history order a file whose changes are all older than the `keep` newest found
    // so far has nothing to add (with filled gaps, ids do not bound places: every file is read).
    let enough = |largest: u64| {
        let rows = rows.borrow();
        order.is_plain()
            && rows.len() >= keep
            && rows
                .iter()
                .map(|r| r.event_id)
                .min()
                .is_some_and(|m| m > largest)
    };
    tokio::task::block_in_place(|| {
        archive.each_newest_first(scan, &enough, &mut |r| {
            let mut rows = rows.borrow_mut();
            if let Some(col) = &sel.changed_column {
                let changed: Option<Vec<String>> = r
                    .changed_columns
                    .as_deref()
                    .and_then(|t| serde_json::from_str(t).ok());
                // As `JSON_CONTAINS` in the index: no changed columns (an insert or a delete)
                // matches no column.
                if !changed.is_some_and(|c| c.contains(col)) {
                    return Ok(());
                }
            }
            rows.push(r);
            if rows.len() >= keep.saturating_mul(2) {
                newest_first(&mut rows);
            }
            Ok(())
        })
    })?;
    let mut rows = rows.into_inner();
    newest_first(&mut rows);
    rows.into_iter().map(from_archive).collect()
}

/// A change's identity: its primary key `event_id` (copied into the file with the row) and
/// what the index's unique key `uk_change` holds. A change recorded in an archive file and
/// still in its partition (a crash between the two) is one change.
type Identity = (u64, u32, String, u64, u32);

fn identity(c: &StoredChange) -> Identity {
    (
        c.event_id,
        c.stream_id,
        c.binlog_file.clone(),
        c.start_pos,
        c.row_in_event,
    )
}

/// The changes of the index and of the archive, each change once (the index's copy kept).
pub fn merge(index: Vec<StoredChange>, archived: Vec<StoredChange>) -> Vec<StoredChange> {
    let seen: std::collections::HashSet<Identity> = index.iter().map(identity).collect();
    let mut out = index;
    out.extend(
        archived
            .into_iter()
            .filter(|c| !seen.contains(&identity(c))),
    );
    out
}

/// Which of `ids` (of `stream`) the index holds (`PRIMARY`): archived changes that are also
/// still in their partition are counted once.
pub async fn in_index(
    conn: &mut Conn,
    stream: u32,
    ids: &[u64],
) -> Result<std::collections::HashSet<u64>, mysql_async::Error> {
    let mut out = std::collections::HashSet::new();
    for chunk in ids.chunks(GTID_BATCH) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let mut params: Vec<mysql_async::Value> = vec![stream.into()];
        params.extend(chunk.iter().map(|i| mysql_async::Value::from(*i)));
        let found: Vec<u64> = conn
            .exec(
                format!(
                    "SELECT event_id FROM binlog_events WHERE stream_id = ? AND event_id IN ({marks})"
                ),
                params,
            )
            .await?;
        out.extend(found);
    }
    Ok(out)
}

/// An archived change as a [`StoredChange`], exactly as [`parse_row`] reads it from the index.
pub fn from_archive(r: ArchiveRow) -> Result<StoredChange, QueryError> {
    let event_id = r.event_id;
    let corrupt = |what: String| QueryError::Corrupt { event_id, what };
    let event_type = match r.event_type {
        1 => ChangeKind::Insert,
        2 => ChangeKind::Update,
        3 => ChangeKind::Delete,
        n => return Err(corrupt(format!("event_type {n} is not 1, 2 or 3"))),
    };
    Ok(StoredChange {
        event_id,
        stream_id: r.stream_id,
        value_form: ValueForm::of_stream(r.stream_id),
        binlog_file: r.binlog_file,
        start_pos: r.start_pos,
        end_pos: r.end_pos,
        row_in_event: r.row_in_event,
        event_timestamp: format_utc(r.event_time),
        gtid: r.gtid,
        connection_id: r.connection_id,
        schema: r.schema,
        table: r.table,
        event_type,
        pk_values: r.pk_values,
        changed_columns: r
            .changed_columns
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| corrupt(format!("changed_columns: {e}")))?,
        row_before: parse_image(r.row_before).map_err(|e| corrupt(format!("row_before: {e}")))?,
        row_after: parse_image(r.row_after).map_err(|e| corrupt(format!("row_after: {e}")))?,
        schema_version: r.schema_version,
        archived_policy: Some(r.policy_version),
    })
}

/// A `binlog_events` row as a [`StoredChange`].
pub(crate) fn parse_row(mut row: Row) -> Result<StoredChange, QueryError> {
    let event_id: u64 = row.take(0).unwrap_or(0);
    let corrupt = |what: String| QueryError::Corrupt { event_id, what };
    macro_rules! col {
        ($i:expr, $what:expr) => {
            row.take_opt($i)
                .ok_or_else(|| corrupt(format!("{} is missing", $what)))?
                .map_err(|e| corrupt(format!("{}: {e}", $what)))?
        };
    }
    let event_type: u8 = col!(11, "event_type");
    let event_type = match event_type {
        1 => ChangeKind::Insert,
        2 => ChangeKind::Update,
        3 => ChangeKind::Delete,
        n => return Err(corrupt(format!("event_type {n} is not 1, 2 or 3"))),
    };
    let changed: Option<String> = col!(13, "changed_columns");
    let before: Option<String> = col!(14, "row_before");
    let after: Option<String> = col!(15, "row_after");
    let stream_id: u32 = col!(1, "stream_id");
    Ok(StoredChange {
        event_id,
        stream_id,
        value_form: ValueForm::of_stream(stream_id),
        binlog_file: col!(2, "binlog_file"),
        start_pos: col!(3, "start_pos"),
        end_pos: col!(4, "end_pos"),
        row_in_event: col!(5, "row_in_event"),
        event_timestamp: col!(6, "event_timestamp"),
        gtid: col!(7, "gtid"),
        connection_id: col!(8, "connection_id"),
        schema: col!(9, "schema_name"),
        table: col!(10, "table_name"),
        event_type,
        pk_values: col!(12, "pk_values"),
        changed_columns: changed
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| corrupt(format!("changed_columns: {e}")))?,
        row_before: parse_image(before).map_err(|e| corrupt(format!("row_before: {e}")))?,
        row_after: parse_image(after).map_err(|e| corrupt(format!("row_after: {e}")))?,
        schema_version: col!(16, "schema_version"),
        archived_policy: None,
    })
}

fn parse_image(text: Option<String>) -> Result<Option<Map<String, Value>>, String> {
    match text {
        None => Ok(None),
        Some(t) => match serde_json::from_str(&t) {
            Ok(Value::Object(m)) => Ok(Some(m)),
            Ok(Value::Null) => Ok(None),
            Ok(other) => Err(format!("expected a JSON object, found {other}")),
            Err(e) => Err(e.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn established_orders_are_the_other_orders_of_unescaped_parts() {
        assert!(established_orders("12345").is_empty());
        assert_eq!(established_orders("a\\|b|7"), vec!["7|a\\|b"]);
        assert_eq!(
            established_orders("1|2|3"),
            vec!["1|3|2", "2|1|3", "2|3|1", "3|1|2", "3|2|1"]
        );
        assert!(established_orders("1|2|3|4|5").is_empty());
    }
    use crate::change::ChangeKind;

    #[test]
    fn every_filter_becomes_a_placeholder_and_the_pk_a_hash_lookup() {
        let s = Selection {
            schema: Some("shop".into()),
            table: Some("orders".into()),
            pk: Some("12345".into()),
            since: Some(0),
            kind: Some(ChangeKind::Update),
            changed_column: Some("status".into()),
            limit: 10,
            ..Default::default()
        };
        let (sql, params) = select_sql(&s);
        assert!(
            sql.ends_with(
                "WHERE TRUE AND schema_name = ? AND table_name = ? AND pk_values = ? \
             AND event_timestamp >= ? AND event_type = ? \
             AND JSON_CONTAINS(changed_columns, JSON_QUOTE(?)) ORDER BY event_id DESC LIMIT ?) \
             AS picked USING (event_id, event_timestamp)"
            ),
            "{sql}"
        );
        assert_eq!(params.len(), 7);
        assert_eq!(params[3], mysql_async::Value::from("1970-01-01 00:00:00"));
        assert_eq!(params[6], mysql_async::Value::from(11u64));
    }
}

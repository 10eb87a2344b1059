//! Following a row forward through changes of its identity: an update that changed its key
//! (found through `key_changes`), or, for a keyless table, an update of any column (its
//! `pk_values` is a digest of the image, so the next change of the row is the one whose before
//! image is this one's after image).
//!
//! # Invariants
//! * **Every lookup uses an index**: `key_changes` by `k_before` (`pk_before IN (…)` under
//!   schema and table) or its primary key (stream, event_id); `binlog_events` by `k_table_pk`
//!   (`pk_values IN (…)`, or for a keyless table its (schema, table) prefix from the oldest
//!   selected `event_id` on: the one scan, of one table's changes, that following images needs).
//! * **A key is followed only forward in history order** ([`Order`]: `event_id` order, with the
//!   changes `index --fill-gap` wrote at their gap's place): a key-changing update counts for
//!   the row only when it comes at or after the point from which the row holds that key, so an
//!   unrelated row that held the same key earlier is never mistaken for this one. SQL bounds are
//!   the places' [`Pos::id_floor`]s; what they return is filtered and sorted by place.
//! * Keys changed before `key_changes` existed (an index upgraded since) are not found, nor
//!   keys changed in hours `rotate` dropped (their `key_changes` rows go with them, also when
//!   the hours were archived).
//! * With an archive, the changes under the followed keys (or of the keyless table) are looked
//!   for in it too, each change once.

use std::collections::{BTreeMap, BTreeSet};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use serde_json::{Map, Value};

use super::order::{Order, Pos};
use super::query::{from_archive, merge, parse_row, QueryError, StoredChange, COLUMNS};
use super::recent::Recent;
use crate::archive::read::{Archive, KeyFrom, Scan};
use crate::encoding::ROW_DIGEST_PREFIX;

/// Keys per `IN (…)` list.
const BATCH: usize = 500;
/// Rounds of key changes followed before giving up (a row whose key changed more often than
/// this after the selection is reported as far as it was followed).
const MAX_ROUNDS: usize = 1_000;

/// Where a row's identity lives: each key it held, from which place on (inclusive).
pub type Trail = BTreeMap<String, Pos>;

/// The SELECT of the key-changing updates away from `keys` (what the EXPLAIN test runs).
pub fn moves_sql(
    schema: &str,
    table: &str,
    stream: Option<u32>,
    keys: &[&str],
) -> (String, Vec<mysql_async::Value>) {
    let marks = vec!["?"; keys.len()].join(", ");
    let mut sql = format!(
        "SELECT event_id, stream_id, pk_before, pk_after FROM key_changes \
         WHERE schema_name = ? AND table_name = ? AND pk_before IN ({marks})"
    );
    let mut params: Vec<mysql_async::Value> = vec![schema.into(), table.into()];
    params.extend(keys.iter().map(|k| mysql_async::Value::from(*k)));
    if let Some(s) = stream {
        sql.push_str(" AND stream_id = ?");
        params.push(s.into());
    }
    sql.push_str(" ORDER BY event_id");
    (sql, params)
}

/// Follows the keys of `trail` forward through key-changing updates of `schema`.`table`
/// (of `stream`, when given): each update from a key K at or after the trail's place for K adds
/// its new key, from that update on.
pub async fn follow_keys(
    conn: &mut Conn,
    order: &Order,
    schema: &str,
    table: &str,
    stream: Option<u32>,
    trail: &mut Trail,
) -> Result<(), QueryError> {
    let mut frontier: Vec<String> = trail.keys().cloned().collect();
    for _ in 0..MAX_ROUNDS {
        if frontier.is_empty() {
            break;
        }
        let mut next = Vec::new();
        for chunk in frontier.chunks(BATCH) {
            let keys: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let (sql, params) = moves_sql(schema, table, stream, &keys);
            let moves: Vec<(u64, u32, String, String)> = conn.exec(sql, params).await?;
            let mut moves: Vec<(Pos, String, String)> = moves
                .into_iter()
                .map(|(id, s, before, after)| (order.pos(s, id), before, after))
                .collect();
            moves.sort_by_key(|m| m.0);
            for (at, before, after) in moves {
                if step(trail, at, &before, &after) {
                    next.push(after);
                }
            }
        }
        frontier = next;
    }
    Ok(())
}

/// One key-changing update from `before` to `after` at place `at`: whether it moved a row of
/// `trail` (it comes at or after the point from which the row holds `before`), and then the
/// row holds `after` from it on (the earliest such point kept).
fn step(trail: &mut Trail, at: Pos, before: &str, after: &str) -> bool {
    let from = trail.get(before).copied().unwrap_or(Pos::END);
    if at < from || trail.get(after).is_some_and(|f| *f <= at) {
        return false;
    }
    trail.insert(after.to_string(), at);
    true
}

/// Changes to the selected rows after the oldest selected change of each row, that the
/// selection leaves out: their count and the first of them, in history order. Rows are followed
/// through key changes (and, for keyless tables, through their images).
pub async fn later_changes(
    conn: &mut Conn,
    order: &Order,
    changes: &[StoredChange],
    recent: Option<&Recent>,
    archive: Option<&Archive>,
) -> Result<(usize, Vec<StoredChange>), QueryError> {
    let selected: BTreeSet<u64> = changes.iter().map(|c| c.event_id).collect();
    let mut tables: BTreeMap<(&str, &str), Vec<&StoredChange>> = BTreeMap::new();
    for c in changes {
        tables.entry((&c.schema, &c.table)).or_default().push(c);
    }
    let stream = changes.first().map_or(0, |c| c.stream_id);
    let oldest = changes
        .iter()
        .map(|c| order.pos(c.stream_id, c.event_id))
        .min()
        .unwrap_or(Pos::START);
    let since = recent.filter(|r| r.stream == stream && r.from <= oldest.id_floor());
    let mut later = Vec::new();
    for ((schema, table), mine) in tables {
        let lookup = Lookup {
            order,
            schema,
            table,
            stream,
            mine: &mine,
            selected: &selected,
            archive,
        };
        let found = if mine.iter().all(|c| is_digest(&c.pk_values)) {
            later_by_image(conn, lookup).await?
        } else if let Some(since) = &since {
            let ids = later_in_range(since, lookup);
            read_changes(conn, stream, &ids).await?
        } else {
            later_by_key(conn, lookup).await?
        };
        later.extend(found);
    }
    later.sort_by_key(|c| order.pos(c.stream_id, c.event_id));
    Ok((later.len(), later))
}

/// What the lookups of one table's later changes share.
#[derive(Clone, Copy)]
struct Lookup<'a> {
    /// The history order places are compared in.
    order: &'a Order,
    /// The table's schema.
    schema: &'a str,
    /// The table whose selected rows are followed.
    table: &'a str,
    /// The stream of the selection.
    stream: u32,
    /// The selected changes of this table.
    mine: &'a [&'a StoredChange],
    /// The `event_id`s of every selected change (of any table).
    selected: &'a BTreeSet<u64>,
    /// Where older changes are looked for too.
    archive: Option<&'a Archive>,
}

/// Whether `pk_values` is the digest of a keyless row's image.
fn is_digest(pk: &str) -> bool {
    pk.strip_prefix(ROW_DIGEST_PREFIX)
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Keyed rows: the trail of each selected row's keys (its key, and the key it had before a
/// selected key-changing update), followed forward; then the changes under those keys.
async fn later_by_key(
    conn: &mut Conn,
    lookup: Lookup<'_>,
) -> Result<Vec<StoredChange>, QueryError> {
    let Lookup { order, stream, .. } = lookup;
    let mut trail = selected_keys(order, lookup.mine);
    // A selected update that moved a row: its old key is the row's again once undone.
    let updates: Vec<u64> = lookup.mine.iter().map(|c| c.event_id).collect();
    for chunk in updates.chunks(BATCH) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let mut params: Vec<mysql_async::Value> = vec![stream.into()];
        params.extend(chunk.iter().map(|i| mysql_async::Value::from(*i)));
        let moved: Vec<(u64, String)> = conn
            .exec(
                format!(
                    "SELECT event_id, pk_before FROM key_changes \
                     WHERE stream_id = ? AND event_id IN ({marks})"
                ),
                params,
            )
            .await?;
        for (id, before) in moved {
            note(&mut trail, &before, order.pos(stream, id).next());
        }
    }
    follow_keys(
        conn,
        order,
        lookup.schema,
        lookup.table,
        Some(stream),
        &mut trail,
    )
    .await?;
    let keys: Vec<(&String, &Pos)> = trail.iter().collect();
    // Identities first (a row's whole history may be large: a bulk insert, images of every
    // change), then the full rows of only the later changes, which are few or none.
    let mut later_ids = Vec::new();
    for chunk in keys.chunks(BATCH) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let from = chunk.iter().map(|(_, f)| f.id_floor()).min().unwrap_or(0);
        let mut params: Vec<mysql_async::Value> =
            vec![lookup.schema.into(), lookup.table.into(), stream.into()];
        params.extend(
            chunk
                .iter()
                .map(|(k, _)| mysql_async::Value::from(k.as_str())),
        );
        params.push(from.into());
        let rows: Vec<(u64, String)> = conn
            .exec(
                format!(
                    "SELECT event_id, pk_values FROM binlog_events WHERE schema_name = ? \
                     AND table_name = ? AND stream_id = ? AND pk_values IN ({marks}) \
                     AND event_id >= ?"
                ),
                params,
            )
            .await?;
        for (event_id, pk) in rows {
            let from = trail.get(&pk).copied().unwrap_or(Pos::END);
            if order.pos(stream, event_id) >= from && !lookup.selected.contains(&event_id) {
                later_ids.push(event_id);
            }
        }
    }
    let found = read_changes(conn, stream, &later_ids).await?;
    let Some(archive) = lookup.archive else {
        return Ok(found);
    };
    let scan = Scan {
        stream: Some(stream),
        schema: Some(lookup.schema.to_string()),
        table: Some(lookup.table.to_string()),
        keys: Some(
            trail
                .iter()
                .map(|(k, from)| KeyFrom {
                    pk: k.clone(),
                    from: from.id_floor(),
                    stream: Some(stream),
                })
                .collect(),
        ),
        ..Scan::default()
    };
    let mut archived = Vec::new();
    for r in archive.read(&scan)? {
        let from = trail.get(&r.pk_values).copied().unwrap_or(Pos::END);
        if order.pos(stream, r.event_id) >= from && !lookup.selected.contains(&r.event_id) {
            archived.push(from_archive(r)?);
        }
    }
    Ok(merge(found, archived))
}

/// [`later_by_key`] on what was written since the oldest selected change, read whole
/// ([`Recent`]): the same trail, followed in memory; the `event_id`s of the later changes.
fn later_in_range(since: &Recent, lookup: Lookup<'_>) -> Vec<u64> {
    let Lookup { order, stream, .. } = lookup;
    let mut trail = selected_keys(order, lookup.mine);
    let of_table = |s: &str, t: &str| s == lookup.schema && t == lookup.table;
    let mut moves: Vec<_> = since
        .moves
        .iter()
        .filter(|m| of_table(&m.schema, &m.table))
        .map(|m| (order.pos(stream, m.event_id), m))
        .collect();
    moves.sort_by_key(|(at, _)| *at);
    for (at, m) in moves
        .iter()
        .filter(|(_, m)| lookup.selected.contains(&m.event_id))
    {
        note(&mut trail, &m.before, at.next());
    }
    // In history order one pass follows every chain: a move counts only from the point its old
    // key is held, which is an earlier move's own place.
    for (at, m) in &moves {
        step(&mut trail, *at, &m.before, &m.after);
    }
    since
        .changes
        .iter()
        .filter(|c| {
            c.stream == stream
                && of_table(&c.schema, &c.table)
                && !lookup.selected.contains(&c.event_id)
                && trail
                    .get(&c.pk)
                    .is_some_and(|from| order.pos(stream, c.event_id) >= *from)
        })
        .map(|c| c.event_id)
        .collect()
}

/// Each selected row's key, held from just after its selected change.
fn selected_keys(order: &Order, mine: &[&StoredChange]) -> Trail {
    let mut trail = Trail::new();
    for c in mine {
        note(
            &mut trail,
            &c.pk_values,
            order.pos(c.stream_id, c.event_id).next(),
        );
    }
    trail
}

/// Marks that the row holds `key` from `from` on (the earliest such point kept).
fn note(trail: &mut Trail, key: &str, from: Pos) {
    let f = trail.entry(key.to_string()).or_insert(from);
    *f = (*f).min(from);
}

/// The full rows of `ids` (of `stream`), in `event_id` order.
async fn read_changes(
    conn: &mut Conn,
    stream: u32,
    ids: &[u64],
) -> Result<Vec<StoredChange>, QueryError> {
    let mut later_ids = ids.to_vec();
    later_ids.sort_unstable();
    later_ids.dedup();
    let mut out = Vec::new();
    for chunk in later_ids.chunks(BATCH) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let mut params: Vec<mysql_async::Value> = vec![stream.into()];
        params.extend(chunk.iter().map(|i| mysql_async::Value::from(*i)));
        let rows: Vec<Row> = conn
            .exec(
                format!(
                    "SELECT {COLUMNS} FROM binlog_events WHERE stream_id = ? \
                     AND event_id IN ({marks}) ORDER BY event_id"
                ),
                params,
            )
            .await?;
        for row in rows {
            out.push(parse_row(row)?);
        }
    }
    Ok(out)
}

/// The scan of one keyless table's changes from the oldest selected one on (what the EXPLAIN
/// test runs).
pub fn table_scan_sql(
    schema: &str,
    table: &str,
    stream: u32,
    from: u64,
) -> (String, Vec<mysql_async::Value>) {
    (
        format!(
            "SELECT {COLUMNS} FROM binlog_events FORCE INDEX (k_table_pk) \
             WHERE schema_name = ? AND table_name = ? AND stream_id = ? AND event_id >= ?"
        ),
        vec![schema.into(), table.into(), stream.into(), from.into()],
    )
}

/// Keyless rows: walking the table's changes in history order, a change outside the selection
/// is a later change of a selected row when its before image is an image such a row had (the
/// after image of a selected change, or of a later change found so far), or when it has the
/// `pk_values` of a selected change (the same row inserted again after a delete).
async fn later_by_image(
    conn: &mut Conn,
    lookup: Lookup<'_>,
) -> Result<Vec<StoredChange>, QueryError> {
    let Lookup { order, stream, .. } = lookup;
    let oldest = lookup
        .mine
        .iter()
        .map(|c| order.pos(stream, c.event_id))
        .min()
        .unwrap_or(Pos::START);
    let (sql, params) = table_scan_sql(lookup.schema, lookup.table, stream, oldest.id_floor());
    let rows: Vec<Row> = conn.exec(sql, params).await?;
    let mut all = rows
        .into_iter()
        .map(parse_row)
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(archive) = lookup.archive {
        let scan = Scan {
            stream: Some(stream),
            schema: Some(lookup.schema.to_string()),
            table: Some(lookup.table.to_string()),
            min_event_id: Some(oldest.id_floor()),
            ..Scan::default()
        };
        let archived = archive
            .read(&scan)?
            .into_iter()
            .map(from_archive)
            .collect::<Result<Vec<_>, _>>()?;
        all = merge(all, archived);
    }
    all.sort_by_key(|c| order.pos(stream, c.event_id));
    let mut images: Vec<Map<String, Value>> = Vec::new();
    let mut digests: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for c in all {
        if lookup.selected.contains(&c.event_id) {
            digests.insert(c.pk_values.clone());
            images.extend(c.row_after.clone());
            continue;
        }
        let follows = c.row_before.as_ref().is_some_and(|b| images.contains(b))
            || digests.contains(&c.pk_values);
        if follows {
            images.extend(c.row_after.clone());
            out.push(c);
        }
    }
    Ok(out)
}

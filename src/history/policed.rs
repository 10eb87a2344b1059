//! What the read side must know about changes captured under a privacy policy (`policy`):
//! which of their columns the index does not hold as they were.
//!
//! # Invariant: a masked, truncated or excluded value is never written back as if it were real
//!
//! `recover` asks [`load`] for the policy of each selected change (its `policy_version`, looked
//! up in `capture_policies`) and [`Policed::columns`] for the columns of a table that policy
//! touched. Those columns are taken out of the images before any SQL is written, so an UPDATE
//! leaves them as the live row has them, and a restoring INSERT would leave them to their
//! defaults: it is refused unless the caller accepts that. A key column under the policy makes
//! the row unfindable by its stored key: refused outright. A change read from the archive
//! brings its `policy_version` from its file; a version the index does not know counts as a
//! policy that excluded every column.

use std::collections::{BTreeMap, BTreeSet};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::live::LiveTable;
use super::query::StoredChange;
use crate::index::ddl::{BINLOG_EVENTS, CAPTURE_POLICIES};
use crate::policy::{Action, Policy};

/// The policies of a set of changes, by event id (changes captured without one are absent).
#[derive(Debug, Default)]
pub struct Policed {
    by_event: BTreeMap<u64, Policy>,
}

impl Policed {
    /// The live columns of `t` that change `c`'s images do not hold as they were, with what
    /// was done to them, in table order.
    pub fn columns(&self, c: &StoredChange, t: &LiveTable) -> Vec<(String, Action)> {
        let Some(policy) = self.by_event.get(&c.event_id) else {
            return Vec::new();
        };
        t.columns
            .iter()
            .filter_map(|col| {
                policy
                    .action(&c.schema, &c.table, &col.name)
                    .map(|a| (col.name.clone(), a))
            })
            .collect()
    }
}

/// Reads the policy of each of `changes` from the index. An index written before policies
/// existed (no `policy_version` column, no `capture_policies` table) has none.
pub async fn load(
    index: &mut Conn,
    changes: &[StoredChange],
) -> Result<Policed, mysql_async::Error> {
    let mut by_event = BTreeMap::new();
    // Most streams never had a policy: one look at the policies spares a lookup per change.
    let streams: std::collections::BTreeSet<String> =
        changes.iter().map(|c| c.stream_id.to_string()).collect();
    if streams.is_empty() {
        return Ok(Policed { by_event });
    }
    let any: Result<Option<u64>, _> = index
        .query_first(format!(
            "SELECT 1 FROM {CAPTURE_POLICIES} WHERE stream_id IN ({}) LIMIT 1",
            streams.into_iter().collect::<Vec<_>>().join(",")
        ))
        .await;
    let none = match any {
        Ok(found) => found.is_none(),
        // 1146: no such table (an index from before policies).
        Err(mysql_async::Error::Server(e)) if e.code == 1146 => true,
        Err(e) => return Err(e),
    };
    if none {
        return Ok(Policed { by_event });
    }
    // An archived change's policy_version came with it from its file (its row is gone from
    // `binlog_events`, or the same as the file's).
    let archived: BTreeSet<(u32, u32)> = changes
        .iter()
        .filter_map(|c| c.archived_policy.map(|v| (c.stream_id, v)))
        .filter(|(_, v)| *v != 0)
        .collect();
    for (stream, version) in archived {
        let text: Option<String> = match index
            .exec_first(
                format!(
                    "SELECT policy FROM {CAPTURE_POLICIES} WHERE stream_id = ? AND policy_version = ?"
                ),
                (stream, version),
            )
            .await
        {
            Err(mysql_async::Error::Server(e)) if e.code == 1146 => None,
            other => other?,
        };
        // A policy version the index no longer knows: every column counts as policed, never
        // as captured as is.
        let policy = match text {
            Some(t) => Policy::from_canonical(&t),
            None => Policy::from_canonical("exclude *.*.*"),
        };
        for c in changes
            .iter()
            .filter(|c| c.stream_id == stream && c.archived_policy == Some(version))
        {
            by_event.insert(c.event_id, policy.clone());
        }
    }
    let indexed: Vec<&StoredChange> = changes
        .iter()
        .filter(|c| c.archived_policy.is_none())
        .collect();
    for chunk in indexed.chunks(1000) {
        let ids: Vec<String> = chunk.iter().map(|c| c.event_id.to_string()).collect();
        let rows: Result<Vec<(u64, String)>, _> = index
            .query(format!(
                "SELECT e.event_id, p.policy FROM {BINLOG_EVENTS} e JOIN {CAPTURE_POLICIES} p \
                 ON p.stream_id = e.stream_id AND p.policy_version = e.policy_version \
                 WHERE e.event_id IN ({}) AND e.policy_version <> 0",
                ids.join(",")
            ))
            .await;
        let rows = match rows {
            // 1146: no such table, 1054: no such column (an index from before policies).
            Err(mysql_async::Error::Server(e)) if e.code == 1146 || e.code == 1054 => Vec::new(),
            other => other?,
        };
        for (event_id, text) in rows {
            by_event.insert(event_id, Policy::from_canonical(&text));
        }
    }
    Ok(Policed { by_event })
}

/// `c` without the values of `columns` in its images (the stored ones are not the real ones).
pub fn strip(c: &mut StoredChange, columns: &[(String, Action)]) {
    for image in [c.row_before.as_mut(), c.row_after.as_mut()]
        .into_iter()
        .flatten()
    {
        for (name, _) in columns {
            image.remove(name);
        }
    }
}

/// `a (masked), b (excluded)`.
pub fn describe(columns: &[(String, Action)]) -> String {
    columns
        .iter()
        .map(|(name, a)| {
            let what = match a {
                Action::Exclude => "excluded",
                Action::Mask => "masked",
                Action::Truncate(_) => "truncated",
            };
            format!("{name} ({what})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

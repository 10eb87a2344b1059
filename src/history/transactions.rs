//! Whether a selection takes whole transactions: undoing some of a transaction's changes and
//! not the others restores a state that never existed.
//!
//! # Invariant
//! A transaction is known by its GTID; its changes are counted through `k_gtid`, within the
//! selection's stream. Changes indexed without a GTID (a source without GTIDs) cannot be
//! grouped into transactions here and are not checked.

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::query::StoredChange;

/// GTIDs per `IN (…)` list.
const BATCH: usize = 500;

/// A transaction the selection cuts in two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partial {
    /// Its GTID.
    pub gtid: String,
    /// Its changes in the selection.
    pub selected: u64,
    /// Its changes in the index.
    pub total: u64,
}

impl Partial {
    /// `transaction 3e11…:7 (2 of its 5 changes selected)`.
    pub fn describe(&self) -> String {
        format!(
            "transaction {} ({} of its {} changes selected)",
            self.gtid, self.selected, self.total
        )
    }
}

/// The transactions of `changes` (all of one stream) that have more changes in the index than
/// in `changes`, in GTID order.
pub async fn partial_transactions(
    conn: &mut Conn,
    changes: &[StoredChange],
) -> Result<Vec<Partial>, mysql_async::Error> {
    let mut selected: BTreeMap<&str, u64> = BTreeMap::new();
    for c in changes {
        if let Some(g) = &c.gtid {
            *selected.entry(g).or_default() += 1;
        }
    }
    let stream = changes.first().map_or(0, |c| c.stream_id);
    let gtids: Vec<&str> = selected.keys().copied().collect();
    let mut out = Vec::new();
    for chunk in gtids.chunks(BATCH) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let mut params: Vec<mysql_async::Value> = vec![stream.into()];
        params.extend(chunk.iter().map(|g| mysql_async::Value::from(*g)));
        let totals: Vec<(String, u64)> = conn
            .exec(
                format!(
                    "SELECT gtid, COUNT(*) FROM binlog_events WHERE stream_id = ? \
                     AND gtid IN ({marks}) GROUP BY gtid"
                ),
                params,
            )
            .await?;
        for (gtid, total) in totals {
            let n = selected.get(gtid.as_str()).copied().unwrap_or(0);
            if total > n {
                out.push(Partial {
                    gtid,
                    selected: n,
                    total,
                });
            }
        }
    }
    out.sort_by(|a, b| a.gtid.cmp(&b.gtid));
    Ok(out)
}

//! Whether a selection takes whole transactions: undoing some of a transaction's changes and
//! not the others restores a state that never existed.
//!
//! # Invariant
//! A transaction is known by its GTID; its changes are counted within the selection's stream,
//! from what was written since the oldest selected change when that was read ([`Recent`]: the
//! transaction in progress there may also have changes before it, counted through `k_gtid`),
//! else through `k_gtid`. Changes indexed without a GTID (a source without GTIDs) cannot be
//! grouped into transactions here and are not checked.

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::query::StoredChange;
use super::recent::Recent;

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
    recent: Option<&Recent>,
) -> Result<Vec<Partial>, mysql_async::Error> {
    let mut selected: BTreeMap<&str, u64> = BTreeMap::new();
    for c in changes {
        if let Some(g) = &c.gtid {
            *selected.entry(g).or_default() += 1;
        }
    }
    let stream = changes.first().map_or(0, |c| c.stream_id);
    let oldest = changes.iter().min_by_key(|c| c.event_id);
    if let (Some(recent), Some(oldest)) = (recent, oldest) {
        if recent.from <= oldest.event_id {
            return in_range(conn, &selected, stream, recent).await;
        }
    }
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
        out.extend(partials(&selected, totals));
    }
    out.sort_by(|a, b| a.gtid.cmp(&b.gtid));
    Ok(out)
}

/// The transactions whose `totals` (changes in the index) exceed their changes `selected`.
fn partials<'a>(
    selected: &'a BTreeMap<&str, u64>,
    totals: impl IntoIterator<Item = (impl Into<String>, u64)> + 'a,
) -> impl Iterator<Item = Partial> + 'a {
    totals.into_iter().filter_map(|(gtid, total)| {
        let gtid = gtid.into();
        let n = selected.get(gtid.as_str()).copied().unwrap_or(0);
        (total > n).then_some(Partial {
            gtid,
            selected: n,
            total,
        })
    })
}

/// [`partial_transactions`] from [`Recent`]: each transaction's changes counted in the range,
/// plus, for the one in progress at its start, those before it.
async fn in_range(
    conn: &mut Conn,
    selected: &BTreeMap<&str, u64>,
    stream: u32,
    recent: &Recent,
) -> Result<Vec<Partial>, mysql_async::Error> {
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    let mine = || recent.changes.iter().filter(|c| c.stream == stream);
    for c in mine() {
        if let Some(g) = c.gtid.as_deref().filter(|g| selected.contains_key(g)) {
            *totals.entry(g).or_default() += 1;
        }
    }
    if let Some(g) = mine().next().and_then(|c| c.gtid.as_deref()) {
        let before: Option<u64> = conn
            .exec_first(EARLIER_OF_TRANSACTION, (g, recent.from, stream))
            .await?;
        *totals.entry(g).or_default() += before.unwrap_or(0);
    }
    // A BTreeMap: already in GTID order.
    Ok(partials(selected, totals).collect())
}

/// A transaction's changes before an `event_id` (`k_gtid`, extended by the primary key, as a
/// range; forced, as the estimates for a huge transaction's GTID led elsewhere): (gtid,
/// event_id, stream_id). What the EXPLAIN test runs.
pub const EARLIER_OF_TRANSACTION: &str = "SELECT COUNT(*) FROM binlog_events FORCE INDEX (k_gtid) \
     WHERE gtid = ? AND event_id < ? AND stream_id = ?";

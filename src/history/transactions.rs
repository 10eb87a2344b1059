//! Whether a selection takes whole transactions: undoing some of a transaction's changes and
//! not the others restores a state that never existed.
//!
//! # Invariant
//! A transaction is known by its GTID; its changes are counted within the selection's stream,
//! from what was written since the oldest selected change when that was read ([`Recent`]: the
//! transaction in progress there may also have changes before it, counted through `k_gtid`),
//! else through `k_gtid`. Changes indexed without a GTID (a source without GTIDs) cannot be
//! grouped into transactions here and are not checked. With an archive, its changes of those
//! transactions count too, each once (one still in the index as well is counted there).

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::query::StoredChange;
use super::recent::Recent;
use crate::archive::read::{Archive, Scan};
use crate::archive::ArchiveError;

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

/// Why the transactions could not be counted.
#[derive(Debug, thiserror::Error)]
pub enum CountError {
    /// The index refused a lookup.
    #[error("reading the index: {0}")]
    Index(#[from] mysql_async::Error),
    /// The archive could not be read.
    #[error("reading the archive: {0}")]
    Archive(#[from] ArchiveError),
}

/// The transactions of `changes` (all of one stream) that have more changes in the index (and
/// `archive`) than in `changes`, in GTID order.
pub async fn partial_transactions(
    conn: &mut Conn,
    changes: &[StoredChange],
    recent: Option<&Recent>,
    archive: Option<&Archive>,
) -> Result<Vec<Partial>, CountError> {
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
            return in_range(conn, &selected, stream, recent, archive).await;
        }
    }
    let gtids: Vec<&str> = selected.keys().copied().collect();
    let mut all: BTreeMap<String, u64> = BTreeMap::new();
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
        all.extend(totals);
    }
    if let Some(archive) = archive {
        for (g, n) in archived_counts(conn, archive, stream, &gtids, None).await? {
            *all.entry(g).or_default() += n;
        }
    }
    // A BTreeMap: already in GTID order.
    Ok(partials(&selected, all).collect())
}

/// Per GTID of `gtids`, the archived changes of `stream` (below `below`) that the index does
/// not hold as well.
async fn archived_counts(
    conn: &mut Conn,
    archive: &Archive,
    stream: u32,
    gtids: &[&str],
    below: Option<u64>,
) -> Result<BTreeMap<String, u64>, CountError> {
    let scan = Scan {
        stream: Some(stream),
        gtids: Some(gtids.iter().map(|g| g.to_string()).collect()),
        max_event_id: below.map(|b| b.saturating_sub(1)),
        ..Scan::default()
    };
    let rows = if below == Some(0) {
        Vec::new()
    } else {
        archive.read(&scan)?
    };
    let ids: Vec<u64> = rows.iter().map(|r| r.event_id).collect();
    let also = super::query::in_index(conn, stream, &ids).await?;
    let mut out = BTreeMap::new();
    for r in rows.into_iter().filter(|r| !also.contains(&r.event_id)) {
        if let Some(g) = r.gtid {
            *out.entry(g).or_default() += 1;
        }
    }
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
    archive: Option<&Archive>,
) -> Result<Vec<Partial>, CountError> {
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
        if let Some(archive) = archive {
            let earlier = archived_counts(conn, archive, stream, &[g], Some(recent.from)).await?;
            *totals.entry(g).or_default() += earlier.values().sum::<u64>();
        }
    }
    // A BTreeMap: already in GTID order.
    Ok(partials(selected, totals).collect())
}

/// A transaction's changes before an `event_id` (`k_gtid`, extended by the primary key, as a
/// range; forced, as the estimates for a huge transaction's GTID led elsewhere): (gtid,
/// event_id, stream_id). What the EXPLAIN test runs.
pub const EARLIER_OF_TRANSACTION: &str = "SELECT COUNT(*) FROM binlog_events FORCE INDEX (k_gtid) \
     WHERE gtid = ? AND event_id < ? AND stream_id = ?";

//! What the index holds from one change on, read in primary-key ranges: for `recover`'s checks
//! (later changes of the selected rows, transactions cut in two) one range scan costs far less
//! than looking each selected key or GTID up, whenever the range is not much larger than the
//! selection.
//!
//! # Invariants
//! * **Whole or not at all**: [`read`] returns every row of the range, or `None` when the range
//!   holds more than the cap (the callers then look rows up by key or GTID).
//! * **A stream's transactions are contiguous**: one writer per stream commits a transaction's
//!   changes before the next transaction's, so within a stream only the transaction in progress
//!   at the range's first change can have changes before it (other streams' changes may
//!   interleave).

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// The range is read when it holds at most this many rows per selected change (and at least
/// [`MIN_CAP`]): a row scanned costs about a hundredth of a key looked up in an `IN (…)` list.
const PER_SELECTED: usize = 20;
/// See [`PER_SELECTED`].
const MIN_CAP: usize = 20_000;

/// A stream's key-changing updates from an `event_id` on, a primary-key range: (stream_id,
/// from, limit). What the EXPLAIN test runs.
pub const MOVES_SQL: &str = "SELECT event_id, schema_name, table_name, pk_before, pk_after \
     FROM key_changes WHERE stream_id = ? AND event_id >= ? ORDER BY event_id LIMIT ?";

/// Every stream's changes from an `event_id` on, identities only, a primary-key range: (from,
/// limit). What the EXPLAIN test runs.
pub const CHANGES_SQL: &str = "SELECT event_id, stream_id, schema_name, table_name, pk_values, \
     gtid FROM binlog_events WHERE event_id >= ? ORDER BY event_id LIMIT ?";

/// An update that changed a row's key.
#[derive(Debug, Clone)]
pub struct Move {
    /// The update's `event_id`.
    pub event_id: u64,
    /// Its table's schema.
    pub schema: String,
    /// Its table.
    pub table: String,
    /// The key before it (`pk_values` form).
    pub before: String,
    /// The key after it.
    pub after: String,
}

/// A change's identity.
#[derive(Debug, Clone)]
pub struct Ident {
    /// Its `event_id`.
    pub event_id: u64,
    /// The stream that indexed it.
    pub stream: u32,
    /// Its table's schema.
    pub schema: String,
    /// Its table.
    pub table: String,
    /// Its `pk_values`.
    pub pk: String,
    /// Its transaction, when the source has GTIDs.
    pub gtid: Option<String>,
}

/// Everything from one `event_id` on.
#[derive(Debug, Clone)]
pub struct Recent {
    /// The stream whose key changes are held.
    pub stream: u32,
    /// The first `event_id` of the range.
    pub from: u64,
    /// The stream's key-changing updates, in `event_id` order.
    pub moves: Vec<Move>,
    /// Every stream's changes, in `event_id` order.
    pub changes: Vec<Ident>,
}

/// The cap for a selection of `selected` changes.
pub fn cap(selected: usize) -> usize {
    MIN_CAP.max(selected.saturating_mul(PER_SELECTED))
}

/// Reads everything from `from` on (key changes: of `stream`), or `None` when either range
/// holds more than `cap` rows.
pub async fn read(
    conn: &mut Conn,
    stream: u32,
    from: u64,
    cap: usize,
) -> Result<Option<Recent>, mysql_async::Error> {
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    let moves: Vec<(u64, String, String, String, String)> =
        conn.exec(MOVES_SQL, (stream, from, limit)).await?;
    if moves.len() > cap {
        return Ok(None);
    }
    let changes: Vec<(u64, u32, String, String, String, Option<String>)> =
        conn.exec(CHANGES_SQL, (from, limit)).await?;
    if changes.len() > cap {
        return Ok(None);
    }
    Ok(Some(Recent {
        stream,
        from,
        moves: moves
            .into_iter()
            .map(|(event_id, schema, table, before, after)| Move {
                event_id,
                schema,
                table,
                before,
                after,
            })
            .collect(),
        changes: changes
            .into_iter()
            .map(|(event_id, stream, schema, table, pk, gtid)| Ident {
                event_id,
                stream,
                schema,
                table,
                pk,
                gtid,
            })
            .collect(),
    }))
}

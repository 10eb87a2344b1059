//! `bintrail reconstruct`: a table (or some of its rows) as it was at a moment, from the live
//! table and the change index alone: no dump, no lock on the source.
//!
//! # The moment
//! A moment is a point in the stream's commit order (`event_id` order), never a point inside a
//! transaction: `--as-of-gtid G` is the state right after G committed; `--as-of T` the state
//! after every transaction before the first one that has a change stamped later than T (event
//! times are statement start times, so a cut by time alone could split a transaction or put a
//! later commit before an earlier one). The moment is the *cut*: the place, in history order,
//! of the first change after it (`history::order`: `event_id` order, with the changes
//! `index --fill-gap` wrote at their gap's place).
//!
//! # The method
//! 1. The live rows are read in a consistent snapshot (`START TRANSACTION WITH CONSISTENT
//!    SNAPSHOT, READ ONLY`), and the source's binlog end is noted once the snapshot exists.
//! 2. The stream's checkpoint must reach that end (a bounded wait), so the index holds every
//!    change the snapshot contains.
//! 3. A table with a key (primary, or unique NOT NULL): every key that changed after the cut
//!    takes the before image of its first change after it (a first change that creates the key,
//!    an insert or an update to it, means the row did not exist); every other key keeps its
//!    live row. Changes after the snapshot change nothing here, so the snapshot's end only has
//!    to be an upper bound.
//! 4. A table without one: rows are their own identity and may repeat, so the live multiset is
//!    taken back through every change between the cut and the snapshot (delete and update
//!    before images added, insert and update after images removed). That needs the snapshot's
//!    exact binlog position: MariaDB reports it (`binlog_snapshot_file/position`); on MySQL the
//!    end is read before and after the snapshot starts, and the two must agree.
//!
//! # Refusals
//! A gap in the stream's history detected after the moment; a moment older than the oldest
//! change the index holds for the table (nothing proves the table was quiet before it); a shape
//! change since the moment that does not map by name; a TRUNCATE, DROP or RENAME of the table
//! after the moment.
//!
//! # The established era
//! In an adopted index (`index::adopt`) the stream whose checkpoint was converted from the
//! established tool's (`history::established::successor`) continues the old era (`stream_id`
//! 0): the two are one history, and a moment may lie in either. History order across them is
//! plain `event_id` order: the adopted rows kept their ids, every change the stream wrote since
//! got a larger one (auto-increment), and a gap the stream filled sits after the index's largest
//! id when the gap was recorded (`index::gaps`), so after every old change too. The cut, the
//! changes after it, "older than the oldest change" and the last change before the cut are
//! worked out over both; gaps and DDL markers are the stream's (the old tool recorded neither in
//! a form bintrail reads). Old changes are converted to bintrail's value forms
//! (`history::established::convert_partly`) and rows are matched by the live key computed from
//! the converted images (the old `pk_values` join a composite key in another order). A value
//! that does not convert exactly refuses the reconstruction only when the answer needs it: the
//! before image a row is restored from, a key column of any image, or, for a table without a
//! key, any value of a change after the cut. A missing snapshot refuses the whole request.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use serde_json::Value;

use super::ddl;
use super::established::{self, EraError, Inexact, Reading, Snapshots};
use super::host_zone::HostZone;
use super::live::{KeyKind, LiveColumn, LiveTable};
use super::order::{Order, Pos};
use super::query::{self, QueryError, StoredChange};
use crate::archive::read::{Archive, Scan};
use crate::change::ChangeKind;
use crate::encoding::live_value::{select_expr, stored, LiveValueError};
use crate::encoding::{key_text, literal, LiteralError, SqlType};
use crate::index::gaps;
use crate::position::{BinlogPosition, Gtid, ResumePoint};
use crate::source::{self, Flavor, SourceInfo};
use crate::sql::ident;
use crate::time::{format_utc, parse_utc};

/// The first change stamped after a time (`k_time`): (stream_id, time).
pub const FIRST_AFTER_TIME: &str =
    "SELECT MIN(event_id) FROM binlog_events WHERE stream_id = ? AND event_timestamp > ?";
/// The first change stamped after a time among a filled gap's changes (`k_time` or `PRIMARY`):
/// (stream_id, time, first, last).
pub const FIRST_AFTER_TIME_IN: &str = "SELECT MIN(event_id) FROM binlog_events \
     WHERE stream_id = ? AND event_timestamp > ? AND event_id BETWEEN ? AND ?";
/// A change's GTID (`PRIMARY`): (event_id, stream_id).
pub const GTID_OF_CHANGE: &str =
    "SELECT gtid FROM binlog_events WHERE event_id = ? AND stream_id = ?";
/// A transaction's first change (`k_gtid`, read in order: a transaction of a million rows
/// is not scanned): (gtid, stream_id). The hint is for MariaDB, whose optimizer otherwise
/// walks `PRIMARY` in `event_id` order for the `ORDER BY … LIMIT 1`, a scan of every change.
pub const TRANSACTION_START: &str = "SELECT event_id FROM binlog_events FORCE INDEX (k_gtid) \
     WHERE gtid = ? AND stream_id = ? ORDER BY event_id LIMIT 1";
/// A transaction's last change and its time (`k_gtid`, read backwards): (gtid, stream_id).
/// The hint as for [`TRANSACTION_START`].
pub const TRANSACTION_END: &str =
    "SELECT event_id, DATE_FORMAT(event_timestamp, '%Y-%m-%d %H:%i:%s') \
     FROM binlog_events FORCE INDEX (k_gtid) WHERE gtid = ? AND stream_id = ? \
     ORDER BY event_id DESC LIMIT 1";
/// Whether the index holds a change of the table before the cut (`k_table_pk` or `PRIMARY`):
/// (schema, table, stream_id, cut).
pub const ANY_BEFORE_CUT: &str =
    "SELECT event_id FROM binlog_events WHERE schema_name = ? AND table_name = ? \
     AND stream_id = ? AND event_id < ? LIMIT 1";
/// The stream's last change before the cut (`PRIMARY`, read backwards from the cut: `MAX()`
/// under a condition on another column scanned all the history before it): (stream_id, cut).
pub const LAST_BEFORE_CUT: &str = "SELECT event_id FROM binlog_events WHERE stream_id = ? \
     AND event_id < ? ORDER BY event_id DESC LIMIT 1";
/// [`LAST_BEFORE_CUT`] over the established era and the stream that continues it (a cut just
/// after the switch-over stops at the last old change instead of walking the whole old era):
/// (stream_id, cut).
pub const LAST_BEFORE_CUT_ERA: &str = "SELECT event_id FROM binlog_events \
     WHERE stream_id IN (0, ?) AND event_id < ? ORDER BY event_id DESC LIMIT 1";
/// The table's oldest change (`k_table_pk`): (schema, table, stream_id).
pub const OLDEST_OF_TABLE: &str =
    "SELECT DATE_FORMAT(MIN(event_timestamp), '%Y-%m-%d %H:%i:%s') FROM binlog_events \
     WHERE schema_name = ? AND table_name = ? AND stream_id = ?";

/// The table's changes from the cut's `event_id` floor on (`k_table_pk` or `PRIMARY`):
/// (schema, table, stream_id, floor).
pub fn changes_sql() -> String {
    format!(
        "SELECT {} FROM binlog_events WHERE schema_name = ? AND table_name = ? AND stream_id = ? \
         AND event_id >= ? ORDER BY event_id",
        query::COLUMNS
    )
}

/// [`changes_sql`] over the established era and the stream that continues it:
/// (schema, table, stream_id, floor).
pub fn era_changes_sql() -> String {
    format!(
        "SELECT {} FROM binlog_events WHERE schema_name = ? AND table_name = ? \
         AND stream_id IN (0, ?) AND event_id >= ? ORDER BY event_id",
        query::COLUMNS
    )
}

/// Which moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `--as-of`: Unix seconds, UTC.
    Time(i64),
    /// `--as-of-gtid`: right after this transaction committed.
    Gtid(Gtid),
}

/// What to reconstruct.
#[derive(Debug, Clone)]
pub struct Request {
    /// The stream whose history is used; `None`: the only stream of the index.
    pub server_id: Option<u32>,
    /// Schema of the table.
    pub schema: String,
    /// The table.
    pub table: String,
    /// The moment.
    pub target: Target,
    /// Only the row with this key (`pk_values` form).
    pub pk: Option<String>,
    /// Only rows for which this SQL condition on the table's columns holds.
    pub where_sql: Option<String>,
    /// How long to wait for the stream to index what the snapshot holds.
    pub wait: Duration,
    /// The zone the established tool's indexing host wrote TIMESTAMPs in
    /// (`--established-time-zone`); `None`: old-era TIMESTAMP values are refused.
    pub established_zone: Option<HostZone>,
}

/// The moment, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moment {
    /// The stream.
    pub stream_id: u32,
    /// The place of the first change after the moment ([`Pos::END`]: none).
    pub cut: Pos,
    /// What the moment is, for people: `2026-12-06 14:03:00 UTC (before change #812, GTID …)`.
    pub description: String,
    /// Its time (Unix seconds, UTC), for the gap check.
    pub time: i64,
    /// Whether the history read is the established era's and the stream's (the stream
    /// continues it, module docs), rather than the stream's alone.
    pub established: bool,
}

/// Counts for the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Rows written.
    pub rows: u64,
    /// Of those, taken from the live table unchanged.
    pub unchanged: u64,
    /// Of those, restored from before images.
    pub restored: u64,
    /// Live rows left out because they did not exist at the moment (or were different then).
    pub absent: u64,
    /// Changes after the moment that were read.
    pub changes: u64,
}

/// What a reconstruction found out beside the rows.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The live table (column order and types of the rows).
    pub table: LiveTable,
    /// The moment.
    pub moment: Moment,
    /// Counts.
    pub summary: Summary,
    /// What the reader should know (columns added or dropped since).
    pub notes: Vec<String>,
}

/// Why a reconstruction was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconstructError {
    /// Reading the index failed.
    #[error("reading the index: {0}")]
    Index(#[source] mysql_async::Error),
    /// Reading the source failed.
    #[error("reading the source: {0}")]
    Source(#[source] mysql_async::Error),
    /// A stored change does not parse.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The table does not exist.
    #[error("table {0} does not exist on the source (dropped or renamed?): there is no live table to start from")]
    TableMissing(String),
    /// A column type has no rule.
    #[error("column {column} of {table} has type {data_type}, which bintrail cannot read back into its stored form")]
    UnsupportedColumn {
        /// `schema.table`.
        table: String,
        /// The column.
        column: String,
        /// Its DATA_TYPE.
        data_type: String,
    },
    /// Which stream?
    #[error("{0}")]
    Stream(String),
    /// The moment is not in the index.
    #[error("{0}")]
    Moment(String),
    /// History is missing after the moment.
    #[error("stream {stream_id} skipped history after the moment (gap #{gap_id}, detected {detected_at}: from {from} to {to}); the changes in it are unknown, so the state cannot be proven. Index the missing binlogs, or pick a moment after {detected_at}")]
    Gap {
        /// The stream.
        stream_id: u32,
        /// `stream_gaps.gap_id`.
        gap_id: u64,
        /// When.
        detected_at: String,
        /// Where the gap starts.
        from: String,
        /// Where it ends.
        to: String,
    },
    /// A filled gap after the moment whose changes cannot be placed in history order.
    #[error("stream {stream_id}'s gap #{gap_id} (detected {detected_at}, after the moment) was filled by `index --fill-gap`, but it was recorded or filled by an older bintrail that did not note where the gap sits in the stream's order; the changes indexed for it cannot be ordered against those streamed after it, so the state cannot be proven. Pick a moment after {detected_at}")]
    UnorderedGap {
        /// The stream.
        stream_id: u32,
        /// `stream_gaps.gap_id`.
        gap_id: u64,
        /// When.
        detected_at: String,
    },
    /// The moment is before the index's history of the table.
    #[error("the moment is older than the oldest change the index holds for {table} ({oldest}): nothing proves the table was unchanged before that. Pick a moment at or after {oldest}")]
    TooOld {
        /// `schema.table`.
        table: String,
        /// The oldest change's time, or "no change at all".
        oldest: String,
    },
    /// The moment is before the stream's history of the table, and before it the index holds
    /// only the established tool's changes (`index::adopt`), which another stream (or none)
    /// continues.
    #[error("the moment is older than the oldest change stream {stream_id} indexed for {table} ({oldest}); the older changes of it were indexed by the established tool before the index was adopted, and its history continues in {successor}, not in stream {stream_id}. Pick a moment at or after {oldest}, or use that stream's history")]
    EstablishedEra {
        /// `schema.table`.
        table: String,
        /// The stream whose history is used.
        stream_id: u32,
        /// The stream's oldest change of the table.
        oldest: String,
        /// Which stream continues the established era, for people.
        successor: String,
    },
    /// A change of the established era that the answer needs cannot be converted exactly.
    #[error("{0}; reconstruct needs that value for the state as of the moment (pick a moment after the change, or restore from a backup)")]
    Era(#[from] EraError),
    /// The table's shape changed in a way that does not map by name.
    #[error("{table} changed shape since the moment: change #{event_id} was indexed under schema_version {stored}, and its columns do not map by name and type onto the live table ({detail}); reconstruct cannot write that state with today's columns")]
    SchemaChanged {
        /// `schema.table`.
        table: String,
        /// The change.
        event_id: u64,
        /// Its schema_version.
        stored: u32,
        /// What does not map.
        detail: String,
    },
    /// TRUNCATE, DROP or RENAME after the moment.
    #[error("{0}; rows it removed are not in the index as changes, so the state cannot be rebuilt from the live table. Restore from a backup taken before it, or pick a moment after it")]
    Ddl(String),
    /// The source's binlog end could not be read.
    #[error("reading the source's binlog position: {0}")]
    SourceEnd(String),
    /// The stream did not catch up in time.
    #[error("stream {stream_id} has not indexed up to the source's position {needed} within {waited}s (its checkpoint is at {at}); is it running? Retry later or raise --wait")]
    NotCaughtUp {
        /// The stream.
        stream_id: u32,
        /// The snapshot's binlog end.
        needed: String,
        /// The checkpoint.
        at: String,
        /// Seconds waited.
        waited: u64,
    },
    /// The source was too busy to take an exact snapshot (tables without a key).
    #[error("could not take a snapshot at an exact binlog position of the source in {0} attempts (every attempt raced a commit); a table without a key needs one. Retry at a quieter moment")]
    Busy(u32),
    /// A value does not parse.
    #[error("{table}.{column}: {source}")]
    Value {
        /// `schema.table`.
        table: String,
        /// The column.
        column: String,
        /// What failed.
        #[source]
        source: LiveValueError,
    },
    /// A stored value cannot be written back as a literal (for `--where`).
    #[error("{0}")]
    Literal(#[from] LiteralError),
    /// The live table and the index disagree.
    #[error("the live table and the index disagree: {0}. A change may be missing from the index (a gap, or a write with binlogging off); the state cannot be proven")]
    Inconsistent(String),
    /// Writing a row failed.
    #[error("writing the output: {0}")]
    Output(#[source] std::io::Error),
    /// `--pk` is not usable on this table.
    #[error("--pk {0}")]
    Pk(String),
    /// A change after the moment was captured under a privacy policy that touched the table.
    #[error("change #{event_id} of {table} after the moment was captured under a privacy policy: the index does not hold the real values of {columns}, so the state as of the moment cannot be written as it was (a masked or cut value is never output as if it were real). Pick a moment after the last change of the rows you need, or restore from a backup")]
    Policed {
        /// `schema.table`.
        table: String,
        /// The change.
        event_id: u64,
        /// The columns and what was done to them.
        columns: String,
    },
}

/// Refuses when a change whose images the output would use holds policed values (see
/// `history::policed`).
async fn refuse_policed(
    idx: &mut Conn,
    t: &LiveTable,
    changes: &[StoredChange],
) -> Result<(), ReconstructError> {
    let policed = super::policed::load(idx, changes)
        .await
        .map_err(ReconstructError::Index)?;
    for c in changes {
        let columns = policed.columns(c, t);
        if !columns.is_empty() {
            return Err(ReconstructError::Policed {
                table: format!("{}.{}", c.schema, c.table),
                event_id: c.event_id,
                columns: super::policed::describe(&columns),
            });
        }
    }
    Ok(())
}

/// Rows, in the live table's column order, as stored JSON values.
pub type Image = Vec<Value>;

/// Where the rows go, as they are found.
pub trait RowSink {
    /// Called once, after every refusal check and before the first row: the live table (the
    /// rows' columns), the moment, and the notes for the reader.
    fn begin(
        &mut self,
        table: &LiveTable,
        moment: &Moment,
        notes: &[String],
    ) -> std::io::Result<()>;
    /// One row of the state.
    fn row(&mut self, row: Image) -> std::io::Result<()>;
}

/// Reconstructs `req`, handing each row (in `Outcome::table` column order) to `sink`: first
/// the live rows that are unchanged since the moment, in the table's scan order, then the
/// restored ones. `progress` receives the wait messages. With `archive`, its changes count as
/// if they were in the index (the moment, the refusals and the changes since it).
pub async fn reconstruct(
    idx: &mut Conn,
    src: &mut Conn,
    info: &SourceInfo,
    req: &Request,
    sink: &mut dyn RowSink,
    progress: &mut dyn FnMut(String),
    archive: Option<&Archive>,
) -> Result<Outcome, ReconstructError> {
    let clock = std::time::Instant::now();
    let lap =
        |step: &str| tracing::debug!(step, ms = clock.elapsed().as_millis() as u64, "reconstruct");
    let name = format!("{}.{}", req.schema, req.table);
    let table = LiveTable::load(src, info.flavor, &req.schema, &req.table)
        .await
        .map_err(ReconstructError::Source)?
        .ok_or_else(|| ReconstructError::TableMissing(name.clone()))?;
    let types = column_types(&table, &name)?;
    let keyed = table.key_kind != KeyKind::AllColumns;
    if req.pk.is_some() && !keyed {
        return Err(ReconstructError::Pk(format!(
            "needs a table with a primary or NOT NULL unique key; {name} has none: select rows with --where"
        )));
    }
    let stream_id = pick_stream(idx, req.server_id).await?;
    let successor = established::successor(idx)
        .await
        .map_err(ReconstructError::Index)?;
    let era = successor == Some(stream_id);
    let order = Order::load(idx).await.map_err(ReconstructError::Index)?;
    lap("stream");

    let mut notes = Vec::new();
    let mut attempt = 0;
    let (snapshot, moment, early) = loop {
        let snapshot = begin_snapshot(src, info).await?;
        // The moment is placed only once the stream has indexed everything the snapshot holds:
        // before that, a transaction may be partly indexed, and its last indexed row is not its
        // end.
        let read = async {
            wait_for(idx, stream_id, &snapshot, req.wait, progress).await?;
            lap("caught up");
            let moment = resolve(idx, &order, (stream_id, era), &req.target, archive).await?;
            lap("moment");
            refuse_gaps(idx, &moment).await?;
            let table = (req.schema.as_str(), req.table.as_str());
            refuse_too_old(idx, &moment, table, successor, archive).await?;
            lap("too old");
            let target = (&req.target, req.schema.as_str(), req.table.as_str());
            refuse_ddl(idx, &order, &moment, target, archive).await?;
            // A keyed table's changes are read while the live rows arrive (below); a keyless
            // one's decide first whether this snapshot can be used.
            let changes = match keyed {
                true => None,
                false => Some(
                    changes_after(idx, &order, &moment, (&req.schema, &req.table), archive).await?,
                ),
            };
            Ok::<_, ReconstructError>((moment, changes))
        }
        .await;
        let (moment, changes) = match read {
            Ok(c) => c,
            Err(e) => {
                let _ = src.query_drop("COMMIT").await;
                return Err(e);
            }
        };
        if changes.as_ref().is_none_or(|c| !snapshot.ambiguous(c)) {
            break (snapshot, moment, changes);
        }
        let _ = src.query_drop("COMMIT").await;
        attempt += 1;
        if attempt >= SNAPSHOT_ATTEMPTS {
            return Err(ReconstructError::Busy(attempt));
        }
        tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
    };
    lap("snapshot and moment");
    let result = async {
        let live_sql = live_select(&table, &types, req)?;
        let (changes, live) =
            overlapped(idx, src, (&order, archive), &moment, req, early, live_sql).await?;
        let (mut live, buffered) = live;
        lap("changes read");
        let (changes, faults, snapshots) = convert_era(idx, &table, req, changes).await?;
        notes.extend(faults.note(req.established_zone));
        refuse_policed(idx, &table, &changes).await?;
        check_shapes(&table, &changes, &snapshots, &mut notes)?;
        let mut summary = Summary {
            changes: changes.len() as u64,
            ..Summary::default()
        };
        let images = Images::new(&table, &name);
        let mut undo = if keyed {
            let (touched, unknown) = first_touches(&images, &changes, &faults, req.pk.as_deref())?;
            notes.extend(unknown.note());
            Undo::Keyed(touched)
        } else {
            Undo::Keyless(net_changes(&images, &changes, &faults, &snapshot.lower)?)
        };
        lap("changes undone");
        sink.begin(&table, &moment, &notes)
            .map_err(ReconstructError::Output)?;
        let mut buffered = buffered.into_iter();
        loop {
            let row = match buffered.next() {
                Some(row) => row,
                None => match live.next().await.map_err(ReconstructError::Source)? {
                    Some(row) => row,
                    None => break,
                },
            };
            let values = live_row(&table, &types, &name, row)?;
            if req
                .pk
                .as_deref()
                .is_some_and(|pk| pk != images.pk_text(&values))
            {
                continue;
            }
            if !undo.keeps(&images, &values) {
                summary.absent += 1;
                continue;
            }
            sink.row(values).map_err(ReconstructError::Output)?;
            summary.unchanged += 1;
        }
        drop(live);
        lap("live rows");
        // With --where, rows the changes removed may simply not have matched it live.
        let restored = undo.restored(req.where_sql.is_none())?;
        let kept = filter_where(src, &table, req, &restored.iter().collect::<Vec<_>>()).await?;
        for (row, keep) in restored.into_iter().zip(kept) {
            if keep {
                sink.row(row).map_err(ReconstructError::Output)?;
                summary.restored += 1;
            }
        }
        summary.rows = summary.unchanged + summary.restored;
        Ok::<_, ReconstructError>(summary)
    }
    .await;
    let _ = src.query_drop("COMMIT").await;
    let summary = result?;
    Ok(Outcome {
        table,
        moment,
        summary,
        notes,
    })
}

/// Live rows read ahead while the index is read; a bound on the memory they take.
const READ_AHEAD: usize = 50_000;

/// The live rows' result, and the rows of it read ahead.
type Live<'a> = (
    mysql_async::QueryResult<'a, 'static, mysql_async::TextProtocol>,
    Vec<Row>,
);

/// The table's changes since the moment (`changes`, when already read), and the live rows'
/// query started in the snapshot, with the rows that arrived while the changes were read (at
/// most [`READ_AHEAD`]): both servers work at once instead of one after the other.
async fn overlapped<'a>(
    idx: &mut Conn,
    src: &'a mut Conn,
    (order, archive): (&Order, Option<&Archive>),
    moment: &Moment,
    req: &Request,
    changes: Option<Vec<StoredChange>>,
    live_sql: String,
) -> Result<(Vec<StoredChange>, Live<'a>), ReconstructError> {
    let done = std::cell::Cell::new(false);
    let read_changes = async {
        let changes = match changes {
            Some(c) => c,
            None => changes_after(idx, order, moment, (&req.schema, &req.table), archive).await?,
        };
        done.set(true);
        Ok::<_, ReconstructError>(changes)
    };
    let read_live = async {
        let mut live = src
            .query_iter(live_sql)
            .await
            .map_err(ReconstructError::Source)?;
        let mut ahead = Vec::new();
        while !done.get() && ahead.len() < READ_AHEAD {
            match live.next().await.map_err(ReconstructError::Source)? {
                Some(row) => ahead.push(row),
                None => break,
            }
        }
        Ok::<_, ReconstructError>((live, ahead))
    };
    let (changes, live) = tokio::join!(read_changes, read_live);
    Ok((changes?, live?))
}

/// An archive read's result as the index's errors are.
fn archived<T>(r: Result<T, crate::archive::ArchiveError>) -> Result<T, ReconstructError> {
    r.map_err(|e| ReconstructError::Query(QueryError::Archive(e)))
}

/// Every column's rule.
fn column_types(table: &LiveTable, name: &str) -> Result<Vec<SqlType>, ReconstructError> {
    table
        .columns
        .iter()
        .map(|c| {
            c.sql_type
                .ok_or_else(|| ReconstructError::UnsupportedColumn {
                    table: name.to_string(),
                    column: c.name.clone(),
                    data_type: c.data_type.clone(),
                })
        })
        .collect()
}

/// The stream to use: the one named, or the only one.
async fn pick_stream(idx: &mut Conn, wanted: Option<u32>) -> Result<u32, ReconstructError> {
    let ids: Vec<u32> = idx
        .query("SELECT server_id FROM stream_state ORDER BY server_id")
        .await
        .map_err(ReconstructError::Index)?;
    match wanted {
        Some(id) if ids.contains(&id) => Ok(id),
        Some(id) => Err(ReconstructError::Stream(format!(
            "no stream with --server-id {id} in this index (streams: {ids:?})"
        ))),
        None => match ids.as_slice() {
            [id] => Ok(*id),
            [] => Err(ReconstructError::Stream(
                "the index has no stream yet: start `bintrail stream` first".into(),
            )),
            _ => Err(ReconstructError::Stream(format!(
                "the index has several streams {ids:?}: pick the one that reads this source with --server-id"
            ))),
        },
    }
}

/// The first change of `stream_id` stamped after `t`, in history order: the smallest
/// `event_id` overall, or of a filled gap's changes, whichever comes first (a streamed change
/// with a larger id than the overall smallest comes after it).
async fn first_after_time(
    idx: &mut Conn,
    order: &Order,
    stream_id: u32,
    t: i64,
    archive: Option<&Archive>,
) -> Result<Option<u64>, ReconstructError> {
    let at = format_utc(t);
    let first: Option<(Option<u64>,)> = idx
        .exec_first(FIRST_AFTER_TIME, (stream_id, at.as_str()))
        .await
        .map_err(ReconstructError::Index)?;
    let mut best = first.and_then(|r| r.0);
    let pos = |id| order.pos(stream_id, id);
    let earlier = |best: Option<u64>, id: Option<u64>| match (best, id) {
        (Some(b), Some(id)) => Some(if pos(id) < pos(b) { id } else { b }),
        (b, id) => b.or(id),
    };
    let after_t = |range: Option<(u64, u64)>| Scan {
        stream: Some(stream_id),
        since: Some(t.saturating_add(1)),
        min_event_id: range.map(|r| r.0),
        max_event_id: range.map(|r| r.1),
        ..Scan::default()
    };
    if let Some(a) = archive {
        best = earlier(
            best,
            archived(a.first_match(&after_t(None)))?.map(|r| r.event_id),
        );
        for range in order.filled_of(stream_id) {
            let found = archived(a.first_match(&after_t(Some(range))))?;
            best = earlier(best, found.map(|r| r.event_id));
        }
    }
    for (from, to) in order.filled_of(stream_id) {
        let found: Option<(Option<u64>,)> = idx
            .exec_first(FIRST_AFTER_TIME_IN, (stream_id, at.as_str(), from, to))
            .await
            .map_err(ReconstructError::Index)?;
        best = earlier(best, found.and_then(|r| r.0));
    }
    Ok(best)
}

/// The first change stamped after `t` in the history read: the stream's, or, with
/// `established`, an old-era one when there is one (every old change precedes every change of
/// the stream in history order, module docs). (stream_id, event_id).
async fn first_in_history_after(
    idx: &mut Conn,
    order: &Order,
    (stream_id, established): (u32, bool),
    t: i64,
    archive: Option<&Archive>,
) -> Result<Option<(u32, u64)>, ReconstructError> {
    if established {
        let old: Option<(Option<u64>,)> = idx
            .exec_first(FIRST_AFTER_TIME, (0u32, format_utc(t)))
            .await
            .map_err(ReconstructError::Index)?;
        if let Some(id) = old.and_then(|r| r.0) {
            return Ok(Some((0, id)));
        }
    }
    let first = first_after_time(idx, order, stream_id, t, archive).await?;
    Ok(first.map(|id| (stream_id, id)))
}

/// The cut for the target; with `established`, over the established era and the stream
/// (module docs).
async fn resolve(
    idx: &mut Conn,
    order: &Order,
    (stream_id, established): (u32, bool),
    target: &Target,
    archive: Option<&Archive>,
) -> Result<Moment, ReconstructError> {
    let of_stream = |gtid: Option<&str>, id: Option<u64>| Scan {
        stream: Some(stream_id),
        gtids: gtid.map(|g| std::iter::once(g.to_string()).collect()),
        min_event_id: id,
        max_event_id: id,
        ..Scan::default()
    };
    match target {
        Target::Time(t) => {
            let first =
                first_in_history_after(idx, order, (stream_id, established), *t, archive).await?;
            let Some((stream, first)) = first else {
                return Ok(Moment {
                    stream_id,
                    cut: Pos::END,
                    description: format!("{} UTC (no change indexed after it)", format_utc(*t)),
                    time: *t,
                    established,
                });
            };
            let gtid: Option<(Option<String>,)> = idx
                .exec_first(GTID_OF_CHANGE, (first, stream))
                .await
                .map_err(ReconstructError::Index)?;
            let mut gtid = gtid.and_then(|r| r.0);
            if let (None, Some(a), true) = (&gtid, archive, stream == stream_id) {
                gtid = archived(a.first_match(&of_stream(None, Some(first))))?.and_then(|r| r.gtid);
            }
            let mut cut = order.pos(stream, first);
            let mut before = format!("change #{first}");
            if let Some(g) = gtid {
                let start: Option<(u64,)> = idx
                    .exec_first(TRANSACTION_START, (g.as_str(), stream))
                    .await
                    .map_err(ReconstructError::Index)?;
                if let Some((start,)) = start {
                    cut = cut.min(order.pos(stream, start));
                }
                if let Some(a) = archive {
                    if let Some(r) = archived(a.first_match(&of_stream(Some(&g), None)))? {
                        cut = cut.min(order.pos(stream_id, r.event_id));
                    }
                }
                before = format!("transaction {g}");
            }
            if stream == 0 {
                before.push_str(", indexed by the established tool");
            }
            Ok(Moment {
                stream_id,
                cut,
                description: format!(
                    "{} UTC (before {before}, the first stamped after it)",
                    format_utc(*t)
                ),
                time: *t,
                established,
            })
        }
        Target::Gtid(g) => {
            let text = g.to_string();
            // A transaction the stream is still writing has rows in the index, but not all.
            let state = crate::index::state::load(idx, stream_id)
                .await
                .map_err(|e| ReconstructError::Stream(e.to_string()))?;
            if let Some(ResumePoint::Gtid(done)) = state.map(|s| s.checkpoint.resume) {
                if !done.contains(g) {
                    return Err(ReconstructError::Moment(format!(
                        "--as-of-gtid {text}: stream {stream_id} has not finished indexing that transaction (it committed after the source's snapshot, or the stream is behind); retry once the stream has passed it"
                    )));
                }
            }
            let mut row: Option<(u64, String)> = idx
                .exec_first(TRANSACTION_END, (text.as_str(), stream_id))
                .await
                .map_err(ReconstructError::Index)?;
            if let Some(a) = archive {
                let last = archived(a.last_match(&of_stream(Some(&text), None)))?;
                if let Some(r) = last {
                    if row.as_ref().is_none_or(|(id, _)| {
                        order.pos(stream_id, r.event_id) > order.pos(stream_id, *id)
                    }) {
                        row = Some((r.event_id, format_utc(r.event_time)));
                    }
                }
            }
            let mut stream = stream_id;
            if row.is_none() && established {
                // The stream's checkpoint holds the old era's GTIDs too (`index::adopt`).
                row = idx
                    .exec_first(TRANSACTION_END, (text.as_str(), 0u32))
                    .await
                    .map_err(ReconstructError::Index)?;
                stream = 0;
            }
            match row {
                Some((last, ts)) => Ok(Moment {
                    stream_id,
                    cut: order.pos(stream, last).next(),
                    description: format!(
                        "right after transaction {text} (change #{last}, {ts} UTC{})",
                        if stream == 0 {
                            ", indexed by the established tool"
                        } else {
                            ""
                        }
                    ),
                    time: parse_utc(&ts).unwrap_or(0),
                    established,
                }),
                _ => after_rowless(idx, order, stream_id, established, g).await,
            }
        }
    }
}

/// Successors of a GTID probed per query, and at most this many queries.
const PROBE_BATCH: u64 = 1_000;
const PROBE_BATCHES: u64 = 100;

/// The moment right after a transaction that changed no indexed row (a filtered table, or no
/// row at all): right before the next transaction of the same origin that did. The stream must
/// have indexed it (its checkpoint's GTID set holds it). Transactions of one origin commit in
/// the order of their numbers, so the first later one found is the next in commit order.
async fn after_rowless(
    idx: &mut Conn,
    order: &Order,
    stream_id: u32,
    established: bool,
    g: &Gtid,
) -> Result<Moment, ReconstructError> {
    let text = g.to_string();
    let state = crate::index::state::load(idx, stream_id)
        .await
        .map_err(|e| ReconstructError::Stream(e.to_string()))?
        .ok_or_else(|| ReconstructError::Stream(format!("stream {stream_id} has no state")))?;
    let indexed = match &state.checkpoint.resume {
        ResumePoint::Gtid(set) if set.contains(g) => set.clone(),
        ResumePoint::Gtid(_) => {
            return Err(ReconstructError::Moment(format!(
                "--as-of-gtid {text}: stream {stream_id} has not indexed that transaction (not yet, or it is another source's); wait for the stream, or check the GTID"
            )))
        }
        ResumePoint::Position(_) => {
            return Err(ReconstructError::Moment(format!(
                "--as-of-gtid {text}: stream {stream_id} runs in position mode and indexed no change of that transaction; use --as-of TIME"
            )))
        }
    };
    for batch in 0..PROBE_BATCHES {
        let later: Vec<Gtid> = (1..=PROBE_BATCH)
            .map(|k| successor(g, batch * PROBE_BATCH + k))
            .take_while(|n| indexed.contains(n))
            .collect();
        if later.is_empty() {
            break;
        }
        let list = vec!["?"; later.len()].join(", ");
        let mut params: Vec<mysql_async::Value> = vec![stream_id.into()];
        params.extend(later.iter().map(|n| n.to_string().into()));
        let streams = match established {
            true => "IN (0, ?)",
            false => "= ?",
        };
        // Per transaction its first change; the first of those in history order. A
        // transaction is in one era: the stream resumed at a transaction boundary.
        let rows: Vec<(u64, String, u32)> = idx
            .exec(
                format!(
                    "SELECT MIN(event_id), DATE_FORMAT(MIN(event_timestamp), '%Y-%m-%d %H:%i:%s'), \
                     MIN(stream_id) FROM binlog_events WHERE stream_id {streams} \
                     AND gtid IN ({list}) GROUP BY gtid"
                ),
                params,
            )
            .await
            .map_err(ReconstructError::Index)?;
        if let Some((first, ts, stream)) = rows
            .into_iter()
            .min_by_key(|(id, _, stream)| order.pos(*stream, *id))
        {
            return Ok(Moment {
                stream_id,
                cut: order.pos(stream, first),
                description: format!(
                    "right after transaction {text}, which changed no indexed row (before change #{first}, {ts} UTC)"
                ),
                // When that transaction committed is unknown: any gap may lie after it.
                time: 0,
                established,
            });
        }
        if (later.len() as u64) < PROBE_BATCH {
            break;
        }
    }
    let origins = match &indexed {
        crate::position::GtidSet::Mysql(m) => m.len(),
        crate::position::GtidSet::Mariadb(m) => m.len(),
    };
    if origins > 1 {
        return Err(ReconstructError::Moment(format!(
            "--as-of-gtid {text}: that transaction changed no indexed row, and no later transaction of its origin did; with {origins} origins in the stream's history its place among the others is unknown. Name a transaction that changed indexed rows, or use --as-of TIME"
        )));
    }
    Ok(Moment {
        stream_id,
        cut: Pos::END,
        description: format!(
            "right after transaction {text}, which changed no indexed row (none has been changed since)"
        ),
        time: 0,
        established,
    })
}

/// The `k`-th transaction of the same origin after `g`.
fn successor(g: &Gtid, k: u64) -> Gtid {
    match g {
        Gtid::Mysql { uuid, tag, gno } => Gtid::Mysql {
            uuid: *uuid,
            tag: tag.clone(),
            gno: gno + k,
        },
        Gtid::Mariadb {
            domain,
            server,
            seq,
        } => Gtid::Mariadb {
            domain: *domain,
            server: *server,
            seq: seq + k,
        },
    }
}

/// Refuses when the stream recorded a gap after the moment that `index --fill-gap` has not
/// filled, or filled without its place in history order.
async fn refuse_gaps(idx: &mut Conn, m: &Moment) -> Result<(), ReconstructError> {
    let gap = gaps::first_unusable_since(idx, m.stream_id, &format_utc(m.time))
        .await
        .map_err(ReconstructError::Index)?;
    match gap {
        Some(g) if g.unordered() => Err(ReconstructError::UnorderedGap {
            stream_id: m.stream_id,
            gap_id: g.gap_id,
            detected_at: g.detected_at,
        }),
        Some(g) => Err(ReconstructError::Gap {
            stream_id: m.stream_id,
            gap_id: g.gap_id,
            detected_at: g.detected_at,
            from: g.from,
            to: g.to,
        }),
        None => Ok(()),
    }
}

/// Refuses a moment before the oldest change of the table in the history read (with
/// `established`, the old era's count); a moment before the stream's history whose older
/// changes are the established tool's, continued by another stream, says so.
async fn refuse_too_old(
    idx: &mut Conn,
    m: &Moment,
    (schema, table): (&str, &str),
    successor: Option<u32>,
    archive: Option<&Archive>,
) -> Result<(), ReconstructError> {
    let any_before = |stream: u32| (schema, table, stream, m.cut.id_floor());
    let before_cut = |stream: u32| Scan {
        stream: Some(stream),
        schema: Some(schema.to_string()),
        table: Some(table.to_string()),
        max_event_id: Some(m.cut.id_floor().saturating_sub(1)),
        ..Scan::default()
    };
    let in_archive = |stream: u32| -> Result<bool, ReconstructError> {
        match archive {
            Some(a) if m.cut.id_floor() > 0 => {
                Ok(archived(a.first_match(&before_cut(stream)))?.is_some())
            }
            _ => Ok(false),
        }
    };
    let before: Option<(u64,)> = idx
        .exec_first(ANY_BEFORE_CUT, any_before(m.stream_id))
        .await
        .map_err(ReconstructError::Index)?;
    if before.is_some() || in_archive(m.stream_id)? {
        return Ok(());
    }
    let established: Option<(u64,)> = idx
        .exec_first(ANY_BEFORE_CUT, any_before(0))
        .await
        .map_err(ReconstructError::Index)?;
    let established = established.is_some() || in_archive(0)?;
    if established && m.established {
        return Ok(());
    }
    let mut oldest = None;
    for stream in [m.stream_id, 0] {
        if stream == 0 && !m.established {
            continue;
        }
        let found: Option<(Option<String>,)> = idx
            .exec_first(OLDEST_OF_TABLE, (schema, table, stream))
            .await
            .map_err(ReconstructError::Index)?;
        // Old-era changes all precede the stream's: the earlier one found last wins.
        oldest = found.and_then(|r| r.0).or(oldest);
    }
    let of_table = Scan {
        max_event_id: None,
        ..before_cut(m.stream_id)
    };
    if let Some(t) = archive.and_then(|a| a.first_time(&of_table)) {
        let t = format_utc(t);
        oldest = Some(oldest.map_or(t.clone(), |o: String| o.min(t)));
    }
    let oldest = match oldest {
        Some(t) => format!("{t} UTC"),
        None => "it holds no change of it at all".into(),
    };
    if established {
        return Err(ReconstructError::EstablishedEra {
            table: format!("{schema}.{table}"),
            stream_id: m.stream_id,
            oldest,
            successor: match successor {
                Some(id) => format!("stream {id} (--server-id {id})"),
                None => "no stream (the established tool left no checkpoint to convert)".into(),
            },
        });
    }
    Err(ReconstructError::TooOld {
        table: format!("{schema}.{table}"),
        oldest,
    })
}

/// TRUNCATE, DROP or RENAME of the table recorded after the moment. A marker's
/// `last_event_id` places it among the stream's changes: at or past the cut it is after the
/// moment; between the last change before the cut and the cut, its own time decides for
/// `--as-of` (after when stamped later than the moment), and for `--as-of-gtid` it came after
/// the transaction's last change, so after the moment. An index without `ddl_events` (made
/// by an older `init`, no stream since) has recorded none.
async fn refuse_ddl(
    idx: &mut Conn,
    order: &Order,
    m: &Moment,
    (target, schema, table): (&Target, &str, &str),
    archive: Option<&Archive>,
) -> Result<(), ReconstructError> {
    // A marker's `last_event_id` is the index's largest id when it was recorded, so with the
    // established era the last change before the cut is either era's.
    let last_before = match m.established {
        true => LAST_BEFORE_CUT_ERA,
        false => LAST_BEFORE_CUT,
    };
    let prev: Option<(Option<u64>,)> = idx
        .exec_first(last_before, (m.stream_id, m.cut.id_floor()))
        .await
        .map_err(ReconstructError::Index)?;
    let mut prev = prev.and_then(|r| r.0).unwrap_or(0);
    if let (Some(a), 1..) = (archive, m.cut.id_floor()) {
        let below = Scan {
            stream: Some(m.stream_id),
            max_event_id: Some(m.cut.id_floor() - 1),
            ..Scan::default()
        };
        if let Some(r) = archived(a.last_match(&below))? {
            prev = prev.max(r.event_id);
        }
    }
    let markers = match ddl::markers_since(idx, m.stream_id, schema, table, prev).await {
        Ok(markers) => markers,
        Err(mysql_async::Error::Server(e)) if e.code == 1146 => return Ok(()),
        Err(e) => return Err(ReconstructError::Index(e)),
    };
    let after = |d: &ddl::DdlMarker| match target {
        _ if order.pos(m.stream_id, d.last_event_id) >= m.cut => true,
        Target::Gtid(_) => true,
        Target::Time(t) => parse_utc(&d.event_timestamp).is_some_and(|at| at > *t),
    };
    match markers
        .iter()
        .find(|d| d.kind.ends_table_history() && after(d))
    {
        Some(d) => Err(ReconstructError::Ddl(d.describe())),
        None => Ok(()),
    }
}

/// Attempts at a snapshot that no change of a keyless table straddles.
const SNAPSHOT_ATTEMPTS: u32 = 20;

/// Where the snapshot is, in the source's binlog.
struct Snapshot {
    /// The binlog end once the snapshot existed: it holds nothing after this.
    upper: BinlogPosition,
    /// The binlog end before it began: it holds everything before this. Equal to `upper` when
    /// the server says where its snapshot is (MariaDB).
    lower: BinlogPosition,
}

impl Snapshot {
    /// Whether one of `changes` lies between the two ends, where it is unknown whether the
    /// snapshot holds it.
    fn ambiguous(&self, changes: &[StoredChange]) -> bool {
        changes.iter().any(|c| {
            let at = BinlogPosition::new(c.binlog_file.clone(), c.start_pos);
            at.compare(&self.lower).is_none_or(|o| o.is_ge())
                && at.compare(&self.upper).is_none_or(|o| o.is_lt())
        })
    }
}

/// Starts the consistent snapshot on `src` (left open: the caller commits).
async fn begin_snapshot(src: &mut Conn, info: &SourceInfo) -> Result<Snapshot, ReconstructError> {
    src.query_drop("SET NAMES utf8mb4, time_zone = '+00:00'")
        .await
        .map_err(ReconstructError::Source)?;
    const START: &str = "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY";
    if info.flavor == Flavor::Mariadb {
        src.query_drop(START)
            .await
            .map_err(ReconstructError::Source)?;
        let rows: Vec<(String, String)> = src
            .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
            .await
            .map_err(ReconstructError::Source)?;
        let get = |n: &str| {
            rows.iter()
                .find(|r| r.0.eq_ignore_ascii_case(n))
                .map(|r| r.1.clone())
        };
        if let (Some(f), Some(p)) = (get("binlog_snapshot_file"), get("binlog_snapshot_position")) {
            if let (false, Ok(p)) = (f.is_empty(), p.parse()) {
                let at = BinlogPosition::new(f, p);
                return Ok(Snapshot {
                    upper: at.clone(),
                    lower: at,
                });
            }
        }
        let upper = binlog_end(src, info).await?;
        return Ok(Snapshot {
            lower: BinlogPosition::new(upper.file.clone(), 0),
            upper,
        });
    }
    // MySQL does not say where a snapshot is: bracket it. A transaction is in the binlog a
    // moment before its engine commit; the pause lets those before `lower` finish committing, so
    // that everything before `lower` is in the snapshot.
    let lower = binlog_end(src, info).await?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    src.query_drop(START)
        .await
        .map_err(ReconstructError::Source)?;
    let upper = binlog_end(src, info).await?;
    Ok(Snapshot { upper, lower })
}

/// The source's current end of binlog.
async fn binlog_end(src: &mut Conn, info: &SourceInfo) -> Result<BinlogPosition, ReconstructError> {
    source::current_end(src, info)
        .await
        .map(|c| c.position)
        .map_err(|e| ReconstructError::SourceEnd(e.to_string()))
}

/// Waits until the stream's checkpoint is at or past the snapshot's end.
async fn wait_for(
    idx: &mut Conn,
    stream_id: u32,
    snapshot: &Snapshot,
    wait: Duration,
    progress: &mut dyn FnMut(String),
) -> Result<(), ReconstructError> {
    let started = Instant::now();
    let mut told: Option<Instant> = None;
    loop {
        let state = crate::index::state::load(idx, stream_id)
            .await
            .map_err(|e| ReconstructError::Stream(e.to_string()))?
            .ok_or_else(|| ReconstructError::Stream(format!("stream {stream_id} has no state")))?;
        let at = state.checkpoint.position;
        match at.compare(&snapshot.upper) {
            Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal) => return Ok(()),
            Some(std::cmp::Ordering::Less) => {}
            None => {
                return Err(ReconstructError::Stream(format!(
                    "stream {stream_id} is at {at}, which cannot be compared with the source's {}: does the stream read this source?",
                    snapshot.upper
                )))
            }
        }
        if started.elapsed() >= wait {
            return Err(ReconstructError::NotCaughtUp {
                stream_id,
                needed: snapshot.upper.to_string(),
                at: at.to_string(),
                waited: wait.as_secs(),
            });
        }
        if told.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            progress(format!(
                "waiting for stream {stream_id} to index up to {} (its checkpoint is at {at})",
                snapshot.upper
            ));
            told = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// [`ReconstructError::SchemaChanged`] for change `c`: why its stored columns no longer
/// describe the live table.
fn schema_changed(c: &StoredChange, detail: impl Into<String>) -> ReconstructError {
    ReconstructError::SchemaChanged {
        table: format!("{}.{}", c.schema, c.table),
        event_id: c.event_id,
        stored: c.schema_version,
        detail: detail.into(),
    }
}

/// The table's changes from the cut on, oldest first in history order: read from the cut's
/// `event_id` floor, those before the cut dropped.
async fn changes_after(
    idx: &mut Conn,
    order: &Order,
    m: &Moment,
    (schema, table): (&str, &str),
    archive: Option<&Archive>,
) -> Result<Vec<StoredChange>, ReconstructError> {
    if m.cut == Pos::END {
        return Ok(Vec::new());
    }
    let sql = match m.established {
        true => era_changes_sql(),
        false => changes_sql(),
    };
    let rows: Vec<Row> = idx
        .exec(sql, (schema, table, m.stream_id, m.cut.id_floor()))
        .await
        .map_err(ReconstructError::Index)?;
    let mut changes = Vec::with_capacity(rows.len());
    for row in rows {
        changes.push(query::parse_row(row)?);
    }
    if let Some(a) = archive {
        let scan = Scan {
            stream: Some(m.stream_id),
            schema: Some(schema.to_string()),
            table: Some(table.to_string()),
            min_event_id: Some(m.cut.id_floor()),
            ..Scan::default()
        };
        let rows = archived(a.read(&scan))?;
        let found = rows
            .into_iter()
            .map(query::from_archive)
            .collect::<Result<Vec<_>, _>>()?;
        changes = query::merge(changes, found);
    }
    changes.retain(|c| order.is_plain() || order.pos(c.stream_id, c.event_id) >= m.cut);
    // The index's rows arrive in `event_id` order; the archive's are merged after them.
    changes.sort_by_key(|c| order.pos(c.stream_id, c.event_id));
    Ok(changes)
}

/// Refuses changes indexed under a shape that does not map onto the live table by name; notes
/// columns added or dropped since.
/// An old-era change's shape is its snapshot's (its `schema_version` is the snapshot's id, not
/// a fingerprint): its columns are the snapshot's, and those that still exist must have the
/// same data type now.
fn check_shapes(
    t: &LiveTable,
    changes: &[StoredChange],
    snapshots: &Snapshots,
    notes: &mut Vec<String>,
) -> Result<(), ReconstructError> {
    let live = t.fingerprint(|_| true).unwrap_or(0);
    let mut added = std::collections::BTreeSet::new();
    let mut dropped = std::collections::BTreeSet::new();
    for c in changes
        .iter()
        .filter(|c| c.stream_id == 0 || c.schema_version != live)
    {
        let snapshot = match c.stream_id {
            0 => snapshots.get(&(c.schema_version, c.schema.clone(), c.table.clone())),
            _ => None,
        };
        let names: std::collections::BTreeSet<&String> = match snapshot {
            Some(snap) => snap.columns.iter().map(|col| &col.name).collect(),
            None => c
                .row_before
                .iter()
                .chain(c.row_after.iter())
                .flat_map(|m| m.keys())
                .collect(),
        };
        let gone: Vec<&&String> = names
            .iter()
            .filter(|n| t.column_index(n).is_none())
            .collect();
        // MariaDB 11 leaves generated columns out of UPDATE and DELETE images: an image
        // without them still names every column of its moment when they are added back.
        let common = match snapshot {
            Some(snap) => {
                check_era_types(t, c, snap)?;
                Some(c.schema_version)
            }
            None => Some(t.fingerprint(|col| names.contains(&col.name)))
                .filter(|fp| *fp == Some(c.schema_version))
                .unwrap_or_else(|| t.fingerprint(|col| names.contains(&col.name) || col.generated)),
        };
        // The stored columns that still exist must keep their names and types: the fingerprint
        // of the live columns they name, in live order, equals the stored one only if nothing
        // else changed, and dropped columns make that comparison impossible.
        if gone.is_empty() && common != Some(c.schema_version) {
            return Err(schema_changed(
                c,
                "a column was renamed, retyped or reordered",
            ));
        }
        let new: Vec<&str> = t
            .columns
            .iter()
            .filter(|col| !names.contains(&col.name) && !col.generated)
            .map(|col| col.name.as_str())
            .collect();
        if !gone.is_empty() && !new.is_empty() {
            return Err(schema_changed(
                c,
                format!(
                    "column(s) {} are gone and {} are new: if that was a rename, the old values would be lost",
                    gone.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", "),
                    new.join(", ")
                ),
            ));
        }
        dropped.extend(gone.into_iter().map(|n| n.to_string()));
        added.extend(
            t.columns
                .iter()
                .filter(|col| !names.contains(&col.name))
                .filter(|col| !(col.generated && common == Some(c.schema_version)))
                .map(|col| col.name.clone()),
        );
    }
    if !added.is_empty() {
        notes.push(format!(
            "columns added since the moment have no value then and are written as NULL in restored rows: {}",
            added.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    if !dropped.is_empty() {
        notes.push(format!(
            "columns dropped since the moment are left out: {}",
            dropped.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(())
}

/// Refuses an old-era change whose snapshot columns have another data type in the live table
/// (an ENUM or SET is converted to names, so a changed member list is fine), or a MariaDB JSON
/// column (a LONGTEXT to the established tool, stored as base64 text, not bintrail's document).
fn check_era_types(
    t: &LiveTable,
    c: &StoredChange,
    snap: &established::Snapshot,
) -> Result<(), ReconstructError> {
    for col in &snap.columns {
        let Some(live) = t.columns.iter().find(|l| l.name == col.name) else {
            continue;
        };
        if live.sql_type == Some(SqlType::JsonText) {
            return Err(ReconstructError::Era(EraError::Inexact(Box::new(
                Inexact {
                    event_id: c.event_id,
                    table: format!("{}.{}", c.schema, c.table),
                    column: col.name.clone(),
                    column_type: col.column_type.clone(),
                    form: "MariaDB JSON as base64 text".into(),
                    why: "the text's numbers and key order are not bintrail's document form".into(),
                },
            ))));
        }
        if !live.data_type.eq_ignore_ascii_case(&col.data_type) {
            return Err(schema_changed(
                c,
                format!(
                    "the change was indexed by the established tool under its schema snapshot {}, where column {} is {}; it is {} now",
                    c.schema_version, col.name, col.column_type, live.data_type
                ),
            ));
        }
    }
    Ok(())
}

/// The old-era changes among a reconstruction's changes, converted ([`convert_era`]): per
/// change, the first value of each image that did not convert exactly (left out of it).
#[derive(Default)]
struct Faults {
    by_change: HashMap<u64, [Option<Box<Inexact>>; 2]>,
    /// How many changes were converted.
    converted: usize,
}

impl Faults {
    /// The fault of `c`'s before (`0`) or after (`1`) image, if any.
    fn of(&self, c: &StoredChange, side: usize) -> Option<&Inexact> {
        self.by_change.get(&c.event_id)?[side].as_deref()
    }

    /// Refuses when `c`'s image on `side` has a value that did not convert and `needed` says
    /// the answer needs it (given the column's name).
    fn check(
        &self,
        c: &StoredChange,
        side: usize,
        needed: impl Fn(&str) -> bool,
    ) -> Result<(), ReconstructError> {
        match self.of(c, side) {
            Some(f) if needed(&f.column) => Err(ReconstructError::Era(EraError::Inexact(
                Box::new(f.clone()),
            ))),
            _ => Ok(()),
        }
    }

    /// What the reader should know about the converted changes.
    fn note(&self, zone: Option<HostZone>) -> Option<String> {
        (self.converted > 0).then(|| {
            let zone = zone.map_or(String::new(), |z| {
                format!(
                    "; TIMESTAMP values were read as written in {z} (--established-time-zone)"
                )
            });
            format!(
                "{} change(s) after the moment were indexed by the established tool (stream_id 0) and converted to bintrail's value forms through its schema_snapshots{zone}",
                self.converted
            )
        })
    }
}

/// Converts the old-era changes among `changes` (`history::established::convert_partly`), the
/// live table giving the text columns' character sets; also returns their snapshots.
async fn convert_era(
    idx: &mut Conn,
    t: &LiveTable,
    req: &Request,
    changes: Vec<StoredChange>,
) -> Result<(Vec<StoredChange>, Faults, Snapshots), ReconstructError> {
    let mut faults = Faults::default();
    if changes.iter().all(|c| c.stream_id != 0) {
        return Ok((changes, faults, Snapshots::new()));
    }
    let snapshots = established::load(idx, &changes)
        .await
        .map_err(ReconstructError::Index)?;
    let reading = Reading::new(req.established_zone, std::slice::from_ref(t));
    let mut out = Vec::with_capacity(changes.len());
    for c in changes {
        if c.stream_id != 0 {
            out.push(c);
            continue;
        }
        let p = established::convert_partly(&c, &snapshots, &reading)?;
        faults.converted += 1;
        if p.before.is_some() || p.after.is_some() {
            faults.by_change.insert(c.event_id, [p.before, p.after]);
        }
        out.push(p.change);
    }
    Ok((out, faults, snapshots))
}

/// Row images in live column order, and their identities.
struct Images<'a> {
    table: &'a LiveTable,
    name: &'a str,
}

impl<'a> Images<'a> {
    fn new(table: &'a LiveTable, name: &'a str) -> Self {
        Images { table, name }
    }

    /// A stored image in live column order (columns it lacks are NULL).
    fn image(&self, m: &serde_json::Map<String, Value>) -> Image {
        self.table
            .columns
            .iter()
            .map(|c| m.get(&c.name).cloned().unwrap_or(Value::Null))
            .collect()
    }

    /// The identity: the key's values, or the whole row for a keyless table.
    fn key(&self, row: &[Value]) -> String {
        if self.table.key_kind == KeyKind::AllColumns {
            serde_json::to_string(row).unwrap_or_default()
        } else {
            let key: Vec<&Value> = self.table.key.iter().map(|&i| &row[i]).collect();
            serde_json::to_string(&key).unwrap_or_default()
        }
    }

    /// The `pk_values` text of a keyed row.
    fn pk_text(&self, row: &[Value]) -> String {
        key_text(self.table.key.iter().map(|&i| &row[i]))
    }

    fn before(&self, c: &StoredChange) -> Result<Option<Image>, ReconstructError> {
        self.side(c, c.row_before.as_ref(), c.event_type != ChangeKind::Insert)
    }

    fn after(&self, c: &StoredChange) -> Result<Option<Image>, ReconstructError> {
        self.side(c, c.row_after.as_ref(), c.event_type != ChangeKind::Delete)
    }

    fn side(
        &self,
        c: &StoredChange,
        m: Option<&serde_json::Map<String, Value>>,
        expected: bool,
    ) -> Result<Option<Image>, ReconstructError> {
        match (m, expected) {
            (Some(m), true) => Ok(Some(self.image(m))),
            (None, false) => Ok(None),
            _ => Err(ReconstructError::Inconsistent(format!(
                "change #{} of {} ({}) lacks an image it must have",
                c.event_id,
                self.name,
                c.event_type.name()
            ))),
        }
    }
}

/// What the changes since the moment say about the live rows.
enum Undo {
    /// A table with a key: per key changed since, its state at the moment (`None`: absent).
    Keyed(HashMap<String, Option<Image>>),
    /// A table without one: per row text, the row and how many more (or, negative, fewer)
    /// copies of it the moment had than the snapshot.
    Keyless(HashMap<String, (Image, i64)>),
}

impl Undo {
    /// Whether a live row is as it was at the moment (false: another state replaces it, or it
    /// did not exist then).
    fn keeps(&mut self, images: &Images<'_>, row: &[Value]) -> bool {
        match self {
            Undo::Keyed(touched) => !touched.contains_key(&images.key(row)),
            Undo::Keyless(delta) => match delta.get_mut(&images.key(row)) {
                Some((_, n)) if *n < 0 => {
                    *n += 1;
                    false
                }
                _ => true,
            },
        }
    }

    /// The rows the moment had that the live table lacks, in key order, each copy once. With
    /// `complete` (every live row was seen), a row the changes since removed that was not in
    /// the live table means the index and the table disagree.
    fn restored(self, complete: bool) -> Result<Vec<Image>, ReconstructError> {
        match self {
            Undo::Keyed(touched) => {
                let mut rows: Vec<(String, Image)> = touched
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| (k, v)))
                    .collect();
                rows.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(rows.into_iter().map(|(_, v)| v).collect())
            }
            Undo::Keyless(delta) => {
                let mut rows: Vec<(String, Image, i64)> =
                    delta.into_iter().map(|(k, (v, n))| (k, v, n)).collect();
                rows.sort_by(|a, b| a.0.cmp(&b.0));
                let mut out = Vec::new();
                for (_, row, n) in rows {
                    if n < 0 && complete {
                        return Err(ReconstructError::Inconsistent(format!(
                            "a row changed after the moment is not in the live table: {}",
                            short(&Value::Array(row))
                        )));
                    }
                    for _ in 0..n.max(0) {
                        out.push(row.clone());
                    }
                }
                Ok(out)
            }
        }
    }
}

/// For each key changed after the cut, its state at the moment: the before image of its first
/// change, or `None` when that change created the key.
/// Also says which restored rows lack generated columns ([`UnknownGenerated`]).
/// An old-era value that did not convert ([`Faults`]) refuses only when the answer needs it:
/// in a key column (the row's identity), or anywhere in a before image a row is restored from.
fn first_touches(
    images: &Images<'_>,
    changes: &[StoredChange],
    faults: &Faults,
    pk: Option<&str>,
) -> Result<(HashMap<String, Option<Image>>, UnknownGenerated), ReconstructError> {
    let t = images.table;
    let in_key = |name: &str| t.key.iter().any(|&i| t.columns[i].name == name);
    let mut touched: HashMap<String, Option<Image>> = HashMap::new();
    let mut unknown = UnknownGenerated::default();
    for c in changes {
        let before = images.before(c)?;
        let after = images.after(c)?;
        faults.check(c, 0, in_key)?;
        faults.check(c, 1, in_key)?;
        if let Some(b) = before {
            if pk.is_none_or(|pk| pk == images.pk_text(&b)) {
                if let std::collections::hash_map::Entry::Vacant(e) = touched.entry(images.key(&b))
                {
                    faults.check(c, 0, |_| true)?;
                    unknown.add(images.table, c.row_before.as_ref());
                    e.insert(Some(b));
                }
            }
        }
        if let Some(a) = after {
            if pk.is_none_or(|pk| pk == images.pk_text(&a)) {
                touched.entry(images.key(&a)).or_insert(None);
            }
        }
    }
    Ok((touched, unknown))
}

/// Restored rows whose before image lacks generated columns of the live table (MariaDB 11
/// leaves them out of UPDATE and DELETE images): their values at the moment are not in the
/// index, and the rows carry NULL there. Counted so the output says so instead of passing the
/// NULLs off as values.
#[derive(Default)]
struct UnknownGenerated {
    rows: u64,
    columns: std::collections::BTreeSet<String>,
}

impl UnknownGenerated {
    fn add(&mut self, t: &LiveTable, image: Option<&serde_json::Map<String, Value>>) {
        let Some(image) = image else { return };
        let lacking: Vec<&LiveColumn> = t
            .columns
            .iter()
            .filter(|c| c.generated && !image.contains_key(&c.name))
            .collect();
        if !lacking.is_empty() {
            self.rows += 1;
            self.columns
                .extend(lacking.into_iter().map(|c| c.name.clone()));
        }
    }

    /// The note for the reader, when any restored row is affected.
    fn note(&self) -> Option<String> {
        (self.rows > 0).then(|| {
            format!(
                "{} restored row(s) come from before images without the generated column(s) {} \
                 (MariaDB 11 leaves them out of UPDATE and DELETE images): their values at the \
                 moment are not known and are written as NULL, and --where sees NULL for them; \
                 the INSERTs of --format sql leave generated columns to the server, which \
                 computes them",
                self.rows,
                self.columns.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }
}

/// For a keyless table: per row text, the row and how many more (or fewer) copies the moment
/// had than the snapshot, from the changes between the cut and the snapshot's exact position.
/// Every value of these changes is a row's identity: an old-era value that did not convert
/// ([`Faults`]) refuses.
fn net_changes(
    images: &Images<'_>,
    changes: &[StoredChange],
    faults: &Faults,
    end: &BinlogPosition,
) -> Result<HashMap<String, (Image, i64)>, ReconstructError> {
    let mut delta: HashMap<String, (Image, i64)> = HashMap::new();
    for c in changes {
        let at = BinlogPosition::new(c.binlog_file.clone(), c.start_pos);
        if at.compare(end) != Some(std::cmp::Ordering::Less) {
            continue;
        }
        faults.check(c, 0, |_| true)?;
        faults.check(c, 1, |_| true)?;
        if let Some(b) = images.before(c)? {
            delta.entry(images.key(&b)).or_insert((b, 0)).1 += 1;
        }
        if let Some(a) = images.after(c)? {
            delta.entry(images.key(&a)).or_insert((a, 0)).1 -= 1;
        }
    }
    Ok(delta)
}

/// The SELECT of the live rows.
fn live_select(
    t: &LiveTable,
    types: &[SqlType],
    req: &Request,
) -> Result<String, ReconstructError> {
    let exprs: Vec<String> = t
        .columns
        .iter()
        .zip(types)
        .map(|(c, &ty)| select_expr(ty, &ident(&c.name)))
        .collect();
    let mut sql = format!(
        "SELECT {} FROM {}.{}",
        exprs.join(", "),
        ident(&t.schema),
        ident(&t.table)
    );
    let mut conds = Vec::new();
    if let Some(w) = &req.where_sql {
        conds.push(format!("({w})"));
    }
    if let Some(pk) = &req.pk {
        let parts = split_pk(pk);
        if parts.len() != t.key.len() {
            return Err(ReconstructError::Pk(format!(
                "{pk:?} has {} value(s); the key {} has {}",
                parts.len(),
                t.key_description(),
                t.key.len()
            )));
        }
        for (&i, part) in t.key.iter().zip(parts) {
            let col = ident(&t.columns[i].name);
            let lit = crate::sql::str_literal(&part);
            conds.push(match types[i] {
                SqlType::Binary | SqlType::Geometry => format!("{col} = FROM_BASE64({lit})"),
                _ => format!("{col} = {lit}"),
            });
        }
    }
    if !conds.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conds.join(" AND "));
    }
    Ok(sql)
}

/// `pk_values` text split at unescaped `|`, escapes removed.
fn split_pk(text: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => {
                if let Some(next) = chars.next() {
                    parts.last_mut().expect("one part").push(next);
                }
            }
            '|' => parts.push(String::new()),
            _ => parts.last_mut().expect("one part").push(ch),
        }
    }
    parts
}

/// One live row in stored form.
fn live_row(
    t: &LiveTable,
    types: &[SqlType],
    name: &str,
    row: Row,
) -> Result<Image, ReconstructError> {
    let values = row.unwrap();
    values
        .iter()
        .zip(types)
        .zip(&t.columns)
        .map(|((v, &ty), col)| {
            let text;
            let raw = match v {
                mysql_async::Value::NULL => None,
                mysql_async::Value::Bytes(b) => Some(b.as_slice()),
                other => {
                    text = other.as_sql(true);
                    Some(text.as_bytes())
                }
            };
            stored(ty, raw).map_err(|source| ReconstructError::Value {
                table: name.to_string(),
                column: col.name.clone(),
                source,
            })
        })
        .collect()
}

/// Which of `rows` satisfy `--where`, evaluated by the source on their values as literals of
/// the live column types (all of them without `--where`).
async fn filter_where(
    src: &mut Conn,
    t: &LiveTable,
    req: &Request,
    rows: &[&Image],
) -> Result<Vec<bool>, ReconstructError> {
    let Some(w) = &req.where_sql else {
        return Ok(vec![true; rows.len()]);
    };
    let mut keep = vec![false; rows.len()];
    for (chunk_no, chunk) in rows.chunks(200).enumerate() {
        let mut selects = Vec::with_capacity(chunk.len());
        for (i, row) in chunk.iter().enumerate() {
            let mut cols = vec![format!("{} AS `bintrail_n`", chunk_no * 200 + i)];
            for (c, v) in t.columns.iter().zip(row.iter()) {
                let ty = c.sql_type.unwrap_or(SqlType::Text);
                cols.push(format!(
                    "{} AS {}",
                    literal(ty, c.nullable, v)?,
                    ident(&c.name)
                ));
            }
            selects.push(format!("SELECT {}", cols.join(", ")));
        }
        let sql = format!(
            "SELECT `bintrail_n` FROM ({}) AS {} WHERE ({w})",
            selects.join(" UNION ALL "),
            ident(&t.table)
        );
        let hits: Vec<u64> = src.query(sql).await.map_err(ReconstructError::Source)?;
        for n in hits {
            if let Some(k) = keep.get_mut(n as usize) {
                *k = true;
            }
        }
    }
    Ok(keep)
}

fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 120 {
        format!("{}…", text.chars().take(120).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pk_text_splits_at_unescaped_bars() {
        assert_eq!(split_pk("1"), vec!["1"]);
        assert_eq!(split_pk(r"a\|b|c"), vec!["a|b", "c"]);
        assert_eq!(split_pk(r"x\\|y"), vec![r"x\", "y"]);
    }
}

//! `bintrail status`: every stream's checkpoint, progress, age and recorded gaps, the index's size
//! per table and, given the source, how far each stream is behind it.
//!
//! # Invariants
//! * Checkpoints are read through `index::state` (the one reader of `stream_state` rows) and
//!   formatted by `position` (the one formatter of positions and GTID sets).
//! * Ages are measured on the index server's clock, the clock that wrote `last_checkpoint`, so a
//!   skewed clock on the machine running `status` cannot make a healthy stream look stale.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use serde::Serialize;

use crate::index::ddl::{BINLOG_EVENTS, CAPTURE_POLICIES, STREAM_GAPS, STREAM_STATE};
use crate::index::state::{self, StateError, StreamState};
use crate::position::{BinlogPosition, GtidSet, ResumePoint};
use crate::source::{self, SourceError, SourceInfo};

/// Everything `status` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// The index database.
    pub database: String,
    /// The index server's clock, UTC.
    pub now: String,
    /// One entry per stream, by server id.
    pub streams: Vec<StreamStatus>,
    /// Size of each index table.
    pub tables: Vec<TableSize>,
    /// With `--archive`: the cold tier's extent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<crate::archive::read::Extent>,
}

/// One stream's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamStatus {
    /// Its `--server-id`.
    pub server_id: u32,
    /// `position` or `gtid`.
    pub mode: String,
    /// The resume point: a GTID set or `file:pos`.
    pub checkpoint: String,
    /// The binlog position of the checkpoint (informational in GTID mode).
    pub position: String,
    /// Rows of the transaction at the checkpoint already indexed.
    pub rows_done: u64,
    /// The source it reads (`server_uuid`, or `server-id:N` on MariaDB).
    pub source_uuid: Option<String>,
    /// Changes written so far.
    pub events_indexed: u64,
    /// Time of the newest indexed change, UTC.
    pub last_event_time: Option<String>,
    /// When the checkpoint was written, UTC.
    pub last_checkpoint: String,
    /// Seconds since the checkpoint was written.
    pub checkpoint_age_seconds: i64,
    /// Seconds since the newest indexed change (by the index's clock).
    pub last_event_age_seconds: Option<i64>,
    /// History this stream skipped.
    pub gaps: Vec<GapRecord>,
    /// The capture policies it ran under, oldest first (`capture_policies`).
    pub policies: Vec<PolicyRecord>,
    /// How far behind the source it is (only with a source, and only for its streams).
    pub lag: Option<Lag>,
    #[serde(skip)]
    resume: Option<ResumePoint>,
}

/// A row of `stream_gaps`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GapRecord {
    /// `gap_id`.
    pub gap_id: u64,
    /// The checkpoint that could not be resumed.
    pub from: String,
    /// Where streaming continued.
    pub to: String,
    /// When, UTC.
    pub detected_at: String,
    /// The source's own words.
    pub reason: String,
    /// When `index --fill-gap` indexed the skipped history, UTC; `null` while it is missing.
    pub filled_at: Option<String>,
    /// The binlog files it was indexed from.
    pub filled_from: Option<String>,
}

/// A row of `capture_policies`: a privacy policy a stream captured under.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyRecord {
    /// The `policy_version` of the changes captured under it (0: no policy).
    pub policy_version: u32,
    /// Its rules, one a line (`exclude`, `mask`, `truncate`, the mask key's id); empty: none.
    pub policy: String,
    /// When the stream first started under it, UTC.
    pub first_seen: String,
    /// When the stream last started under it, UTC.
    pub last_seen: String,
}

/// Distance between a stream's checkpoint and the source's current end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lag {
    /// The source's current binlog position.
    pub source_position: String,
    /// Binlog bytes between the checkpoint and the end; `None` when the checkpoint's file is no
    /// longer on the source.
    pub bytes: Option<u64>,
    /// Source transactions not yet covered (GTID mode).
    pub gtids: Option<u64>,
    /// 0 when caught up, else the age of the newest indexed change.
    pub seconds: i64,
}

/// Size of one index table (InnoDB's estimates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableSize {
    /// Table name.
    pub table: String,
    /// Estimated rows.
    pub rows: u64,
    /// Data bytes.
    pub data_bytes: u64,
    /// Index bytes.
    pub index_bytes: u64,
    /// Number of partitions (0 when not partitioned).
    pub partitions: u64,
}

/// Why the status could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The index refused a query.
    #[error("reading the index: {0}")]
    Index(#[source] mysql_async::Error),
    /// A `stream_state` row does not parse.
    #[error(transparent)]
    State(#[from] StateError),
    /// The source refused a query.
    #[error("reading the source's binlog status: {0}")]
    Source(#[from] SourceError),
}

type AgeRow = (u32, i64, Option<i64>);

/// Reads every stream's state, gaps and the table sizes.
pub async fn load(conn: &mut Conn, database: &str) -> Result<Status, StatusError> {
    let idx = StatusError::Index;
    let now: String = conn
        .query_first("SELECT DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-%d %H:%i:%s')")
        .await
        .map_err(idx)?
        .unwrap_or_default();
    let ages: Vec<AgeRow> = conn
        .query(format!(
            "SELECT server_id, TIMESTAMPDIFF(SECOND, last_checkpoint, UTC_TIMESTAMP(3)), \
             TIMESTAMPDIFF(SECOND, last_event_time, UTC_TIMESTAMP()) FROM {STREAM_STATE} \
             ORDER BY server_id"
        ))
        .await
        .map_err(idx)?;
    let mut streams = Vec::with_capacity(ages.len());
    for (server_id, age, event_age) in ages {
        let Some(st) = state::load(conn, server_id).await? else {
            continue;
        };
        let gaps = gaps(conn, server_id).await?;
        let mut stream = stream_status(server_id, st, age, event_age, gaps);
        stream.policies = policies(conn, server_id).await?;
        streams.push(stream);
    }
    let tables = table_sizes(conn, database).await?;
    Ok(Status {
        database: database.to_string(),
        now,
        streams,
        tables,
        archive: None,
    })
}

fn stream_status(
    server_id: u32,
    st: StreamState,
    age: i64,
    event_age: Option<i64>,
    gaps: Vec<GapRecord>,
) -> StreamStatus {
    let cp = st.checkpoint;
    let checkpoint = match &cp.resume {
        ResumePoint::Gtid(set) => set.to_string(),
        ResumePoint::Position(p) => p.to_string(),
    };
    StreamStatus {
        server_id,
        mode: cp.resume.mode().to_string(),
        checkpoint,
        position: cp.position.to_string(),
        rows_done: cp.rows_done,
        source_uuid: st.source_uuid,
        events_indexed: st.events_indexed,
        last_event_time: st.last_event_time,
        last_checkpoint: millis(&st.last_checkpoint),
        checkpoint_age_seconds: age,
        last_event_age_seconds: event_age,
        gaps,
        policies: Vec::new(),
        lag: None,
        resume: Some(cp.resume),
    }
}

/// `YYYY-MM-DD HH:MM:SS.fff`: the checkpoint time at the column's own precision.
fn millis(t: &str) -> String {
    match t.split_once('.') {
        Some((whole, frac)) => format!("{whole}.{}", &frac[..frac.len().min(3)]),
        None => t.to_string(),
    }
}

async fn gaps(conn: &mut Conn, server_id: u32) -> Result<Vec<GapRecord>, StatusError> {
    let rows = crate::index::gaps::of_stream(conn, server_id)
        .await
        .map_err(StatusError::Index)?;
    Ok(rows
        .into_iter()
        .map(|g| GapRecord {
            gap_id: g.gap_id,
            from: g.from,
            to: g.to,
            detected_at: g.detected_at,
            reason: g.reason,
            filled_at: g.filled_at,
            filled_from: g.filled_from,
        })
        .collect())
}

async fn policies(conn: &mut Conn, server_id: u32) -> Result<Vec<PolicyRecord>, StatusError> {
    let rows: Result<Vec<(u32, String, String, String)>, _> = conn
        .exec(
            format!(
                "SELECT policy_version, policy, DATE_FORMAT(first_seen, '%Y-%m-%d %H:%i:%s'), \
                 DATE_FORMAT(last_seen, '%Y-%m-%d %H:%i:%s') FROM {CAPTURE_POLICIES} \
                 WHERE stream_id = ? ORDER BY first_seen, policy_version"
            ),
            (server_id,),
        )
        .await;
    let rows = match rows {
        // An index no stream of this version has started on yet has no such table.
        Err(mysql_async::Error::Server(e)) if e.code == 1146 => Vec::new(),
        other => other.map_err(StatusError::Index)?,
    };
    Ok(rows
        .into_iter()
        .map(
            |(policy_version, policy, first_seen, last_seen)| PolicyRecord {
                policy_version,
                policy,
                first_seen,
                last_seen,
            },
        )
        .collect())
}

/// `(TABLE_NAME, TABLE_ROWS, DATA_LENGTH, INDEX_LENGTH, partitions)`.
type SizeRow = (String, Option<u64>, Option<u64>, Option<u64>, u64);

async fn table_sizes(conn: &mut Conn, database: &str) -> Result<Vec<TableSize>, StatusError> {
    // MySQL caches table statistics for a day by default; MariaDB has no such setting.
    let _ = conn
        .query_drop("SET SESSION information_schema_stats_expiry = 0")
        .await;
    let rows: Vec<SizeRow> = conn
        .exec(
            "SELECT t.TABLE_NAME, t.TABLE_ROWS, t.DATA_LENGTH, t.INDEX_LENGTH, \
             (SELECT COUNT(p.PARTITION_NAME) FROM information_schema.PARTITIONS p \
              WHERE p.TABLE_SCHEMA = t.TABLE_SCHEMA AND p.TABLE_NAME = t.TABLE_NAME) \
             FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = ? AND t.TABLE_NAME IN (?, ?, ?) \
             ORDER BY t.TABLE_NAME",
            (database, BINLOG_EVENTS, STREAM_STATE, STREAM_GAPS),
        )
        .await
        .map_err(StatusError::Index)?;
    Ok(rows
        .into_iter()
        .map(|(table, rows, data, index, partitions)| TableSize {
            table,
            rows: rows.unwrap_or(0),
            data_bytes: data.unwrap_or(0),
            index_bytes: index.unwrap_or(0),
            partitions,
        })
        .collect())
}

/// Fills in the lag of the streams that read this source (by its identity; a stream that never
/// recorded one is assumed to read it).
pub async fn add_lag(
    source: &mut Conn,
    info: &SourceInfo,
    status: &mut Status,
) -> Result<(), StatusError> {
    let end = source::current_end(source, info).await?;
    let logs = binary_logs(source).await?;
    for s in status
        .streams
        .iter_mut()
        .filter(|s| s.source_uuid.as_deref().is_none_or(|u| u == info.identity))
    {
        let Some(resume) = &s.resume else { continue };
        let cp_pos: Option<BinlogPosition> = s.position.parse().ok();
        let bytes = cp_pos.and_then(|p| bytes_behind(&p, &end.position, &logs));
        let gtids = match (resume, &end.resume) {
            (ResumePoint::Gtid(mine), ResumePoint::Gtid(theirs)) => Some(missing(theirs, mine)),
            _ => None,
        };
        let mut lag = Lag {
            source_position: end.position.to_string(),
            bytes,
            gtids,
            seconds: 0,
        };
        if !lag.caught_up() {
            lag.seconds = s
                .last_event_age_seconds
                .unwrap_or(s.checkpoint_age_seconds)
                .max(0);
        }
        s.lag = Some(lag);
    }
    Ok(())
}

/// `SHOW BINARY LOGS`: (file, size) in order.
async fn binary_logs(conn: &mut Conn) -> Result<Vec<(String, u64)>, StatusError> {
    let rows: Vec<Row> = conn
        .query("SHOW BINARY LOGS")
        .await
        .map_err(|e| StatusError::Source(SourceError::Server(e)))?;
    Ok(rows
        .into_iter()
        .filter_map(|r| Some((r.get::<String, _>(0)?, r.get::<u64, _>(1)?)))
        .collect())
}

/// Binlog bytes from `from` to `end`, given the source's files and sizes.
pub fn bytes_behind(
    from: &BinlogPosition,
    end: &BinlogPosition,
    logs: &[(String, u64)],
) -> Option<u64> {
    if from.file == end.file {
        return Some(end.pos.saturating_sub(from.pos));
    }
    if from.compare(end)?.is_gt() {
        return Some(0);
    }
    let start = logs.iter().position(|(f, _)| *f == from.file)?;
    let mut bytes = 0u64;
    for (file, size) in &logs[start..] {
        if *file == end.file {
            return Some(bytes + end.pos);
        }
        let offset = if *file == from.file { from.pos } else { 0 };
        bytes += size.saturating_sub(offset);
    }
    None
}

/// Transactions of `source` that `indexed` does not cover (MariaDB: sequence numbers per domain).
pub fn missing(source: &GtidSet, indexed: &GtidSet) -> u64 {
    match (source, indexed) {
        (GtidSet::Mysql(_), GtidSet::Mysql(_)) => match source.subtract(indexed) {
            GtidSet::Mysql(left) => left.values().flatten().map(|(a, b)| b - a + 1).sum(),
            GtidSet::Mariadb(_) => 0,
        },
        (GtidSet::Mariadb(s), GtidSet::Mariadb(i)) => s
            .iter()
            .map(|(d, (_, seq))| seq.saturating_sub(i.get(d).map_or(0, |(_, q)| *q)))
            .sum(),
        _ => 0,
    }
}

/// The streams whose checkpoint is older than `threshold` seconds, except those known (from the
/// source, see [`add_lag`]) to be caught up: a stream on an idle source has nothing to
/// checkpoint, so its checkpoint ages without anything being wrong.
pub fn stale(status: &Status, threshold: u64) -> Vec<&StreamStatus> {
    status
        .streams
        .iter()
        .filter(|s| s.checkpoint_age_seconds > threshold as i64)
        .filter(|s| !s.lag.as_ref().is_some_and(Lag::caught_up))
        .collect()
}

impl Lag {
    /// Nothing of the source is left to index.
    pub fn caught_up(&self) -> bool {
        self.gtids.map_or(self.bytes == Some(0), |g| g == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_behind_spans_files_in_order() {
        let logs = vec![
            ("binlog.000001".to_string(), 1000),
            ("binlog.000002".to_string(), 500),
            ("binlog.000003".to_string(), 300),
        ];
        let p = |f: &str, pos| BinlogPosition::new(f, pos);
        assert_eq!(
            bytes_behind(&p("binlog.000002", 100), &p("binlog.000002", 400), &logs),
            Some(300)
        );
        assert_eq!(
            bytes_behind(&p("binlog.000001", 900), &p("binlog.000003", 200), &logs),
            Some(100 + 500 + 200)
        );
        assert_eq!(
            bytes_behind(&p("binlog.000000", 4), &p("binlog.000003", 200), &logs),
            None,
            "purged file"
        );
    }

    #[test]
    fn missing_counts_transactions_not_yet_covered() {
        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let set = |t: String| t.parse::<GtidSet>().unwrap();
        assert_eq!(
            missing(&set(format!("{u}:1-10")), &set(format!("{u}:1-7"))),
            3
        );
        assert_eq!(
            missing(&set(format!("{u}:1-10")), &set(format!("{u}:1-10"))),
            0
        );
        assert_eq!(
            missing(&set("0-1-100,1-1-5".into()), &set("0-1-90".into())),
            15
        );
    }
}

//! `bintrail stream --dry-run`: the stream's read side alone. It reads and decodes the binlog
//! exactly as the stream does (same filter, same decoder, same JSON), from where the stream
//! would start up to the source's end of binlog at the time of the request, and counts what it
//! would have indexed instead of writing it.
//!
//! # Invariant
//! A dry run writes nothing anywhere: the index is only read (this stream's checkpoint), and
//! `--reset` only means "ignore the checkpoint".
//!
//! Without a checkpoint or start flags it starts at the oldest binlog the source still has (a
//! real stream would start at the end, where a dry run would have nothing to read).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use mysql_async::prelude::Queryable;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::change::{Change, ChangeKind};
use crate::config::StreamConfig;
use crate::connect::connect;
use crate::history::ddl::DdlMarker;
use crate::index::state;
use crate::position::{Checkpoint, ResumePoint};
use crate::source::{self, SourceError, Until};
use crate::sql::SESSION_SETUP;
use crate::stream::{StreamError, CHANNEL_BOUND};
use crate::telemetry::Telemetry;

/// Changes of one table that a dry run found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TableCounts {
    /// Inserted rows.
    pub inserts: u64,
    /// Updated rows.
    pub updates: u64,
    /// Deleted rows.
    pub deletes: u64,
}

/// What a dry run read and would have indexed.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Summary {
    /// Where it started (checkpoint, start flags or the oldest binlog).
    pub from: String,
    /// Where the stream would continue after these changes.
    pub to: String,
    /// Why it started at `from`.
    pub start: &'static str,
    /// Changes that pass the filter, all tables.
    pub changes: u64,
    /// Bytes of the JSON row images and changed-column lists they would store.
    pub json_bytes: u64,
    /// Binlog events received from the source.
    pub events: u64,
    /// Wall time from the request to the end of binlog, seconds.
    pub seconds: f64,
    /// Per `schema.table`.
    pub tables: BTreeMap<String, TableCounts>,
    /// The `ddl_events` markers a stream would record, described (oldest first).
    pub ddl: Vec<String>,
}

/// Per-table counts while reading, keyed by the change's shared names (no string per change).
type Tally = HashMap<(Arc<str>, Arc<str>), TableCounts>;

impl Summary {
    fn add(&mut self, tally: &mut Tally, change: &Change) {
        self.changes += 1;
        self.json_bytes += [
            &change.row_before,
            &change.row_after,
            &change.changed_columns,
        ]
        .iter()
        .map(|v| v.as_ref().map_or(0, |s| s.len() as u64))
        .sum::<u64>();
        let counts = tally
            .entry((change.schema.clone(), change.table.clone()))
            .or_default();
        match change.kind {
            ChangeKind::Insert => counts.inserts += 1,
            ChangeKind::Update => counts.updates += 1,
            ChangeKind::Delete => counts.deletes += 1,
        }
    }

    /// Decoded changes per second of wall time.
    pub fn changes_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.changes as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Reads and decodes from the stream's start point to the source's current end; `cancel` stops
/// it early (the summary then covers what was read).
pub async fn run(
    config: &StreamConfig,
    cancel: CancellationToken,
    telemetry: Arc<Telemetry>,
) -> Result<Summary, StreamError> {
    let (mut replica, info) = source::open(config).await?;
    let (from, start) = start_point(config, &mut replica.conn).await?;
    if let Some(gap) = source::find_gap(&mut replica.conn, &info, &from).await? {
        return Err(gap.refuse().into());
    }
    let mut lookup = connect("source", &config.source, None, &config.tls)
        .await
        .map_err(SourceError::from)?;
    source::warn_unmatched_policy(&mut lookup, &config.policy).await?;
    let started = Instant::now();
    let stream = source::request(replica, &info, config, &from, Until::End).await?;
    let (tx, mut rx) = mpsc::channel(CHANNEL_BOUND);
    let reader = source::Reader::new(config, &info, stream, lookup, &from, telemetry.clone());
    let reader = tokio::spawn(source::read(reader, tx, cancel));
    let mut summary = Summary {
        from: from.resume.to_string(),
        to: from.resume.to_string(),
        start,
        ..Summary::default()
    };
    let mut tally = Tally::new();
    while let Some(chunk) = rx.recv().await {
        chunk
            .changes
            .iter()
            .for_each(|c| summary.add(&mut tally, c));
        summary.ddl.extend(
            chunk
                .ddl
                .iter()
                .map(|d| DdlMarker::unwritten(config.server_id, d).describe()),
        );
        summary.to = chunk.checkpoint.resume.to_string();
    }
    summary.tables = tally
        .into_iter()
        .map(|((schema, table), counts)| (format!("{schema}.{table}"), counts))
        .collect();
    summary.seconds = started.elapsed().as_secs_f64();
    summary.events = telemetry
        .events_received
        .load(std::sync::atomic::Ordering::Relaxed);
    match reader.await.map_err(|e| StreamError::Task(e.to_string()))? {
        // The source closes a non-blocking dump at its end of binlog: that is the finish line.
        Ok(()) | Err(SourceError::Closed) => Ok(summary),
        Err(e) => Err(e.into()),
    }
}

/// The checkpoint (unless `--reset`), else the start flags, else the oldest binlog; the index is
/// only read, and an index without bintrail's tables simply has no checkpoint.
async fn start_point(
    config: &StreamConfig,
    source_conn: &mut mysql_async::Conn,
) -> Result<(Checkpoint, &'static str), StreamError> {
    if !config.reset {
        if let Some(saved) = read_checkpoint(config).await? {
            return Ok((saved.checkpoint, "this stream's checkpoint"));
        }
    }
    if let Some(start) = &config.start {
        return Ok((start.checkpoint(), "the start flags"));
    }
    let oldest = source::oldest(source_conn)
        .await?
        .ok_or(SourceError::Setting {
            name: "log_bin",
            actual: "no binary logs".into(),
            expected: "at least one binlog file",
            fix: "check that binary logging is on",
        })?;
    Ok((
        Checkpoint::at(ResumePoint::Position(oldest.clone()), oldest),
        "the oldest binlog on the source",
    ))
}

async fn read_checkpoint(config: &StreamConfig) -> Result<Option<state::StreamState>, StreamError> {
    let mut index = connect("index", &config.index.dsn, None, &config.index.tls)
        .await
        .map_err(SourceError::from)?;
    index.query_drop(SESSION_SETUP).await?;
    let used = index
        .query_drop(format!("USE {}", crate::sql::ident(&config.index.database)))
        .await;
    let saved = match used {
        Ok(()) => match state::load(&mut index, config.server_id).await {
            Ok(saved) => saved,
            Err(e) if e.is_missing_table() => None,
            Err(e) => return Err(e.into()),
        },
        // Unknown database: nothing was ever indexed there.
        Err(mysql_async::Error::Server(e)) if e.code == 1049 => None,
        Err(e) => return Err(e.into()),
    };
    let _ = index.disconnect().await;
    Ok(saved)
}

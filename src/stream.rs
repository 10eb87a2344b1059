//! The stream pipeline: reader task → bounded channel → writer task, and its lifecycle.
//!
//! # Invariants
//! - Only the writer makes a checkpoint durable, and only together with the rows it covers.
//! - The channel is bounded, so a slow index slows the reader instead of growing memory.
//! - Shutdown is cooperative: cancelling stops the reader; the writer drains what the channel
//!   holds, commits it with its checkpoint, and returns. A failing reader also lets the writer
//!   commit everything received before the failure.
//! - A batch closes on `batch_size` rows or on the `checkpoint_interval` timer, whichever comes
//!   first; the timer also records progress when every event was filtered out.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::change::Change;
use crate::config::{StartAt, StreamConfig};
use crate::connect::connect;
use crate::index::writer::{Writer, WriterError};
use crate::index::{ddl, state};
use crate::position::{BinlogPosition, Checkpoint, ResumePoint};
use crate::source::txn::{Assembler, Chunk};
use crate::source::{self, SourceError, SourceInfo};
use crate::sql::SESSION_SETUP;

/// Chunks in flight between reader and writer at most.
const CHANNEL_BOUND: usize = 16;

/// What the writer has made durable so far, published after every commit.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// The last committed checkpoint.
    pub checkpoint: Option<Checkpoint>,
    /// Rows committed by this process.
    pub rows_written: u64,
    /// Timestamp of the last event covered by the checkpoint.
    pub last_event_time: Option<u32>,
}

/// Why the stream stopped.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Source side.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Index writes.
    #[error(transparent)]
    Writer(#[from] WriterError),
    /// Index tables.
    #[error(transparent)]
    Ddl(#[from] ddl::DdlError),
    /// Checkpoint table.
    #[error(transparent)]
    State(#[from] state::StateError),
    /// The index connection failed outside a flush.
    #[error("index connection failed: {0}")]
    Index(#[from] mysql_async::Error),
    /// A task panicked or was aborted.
    #[error("internal error: {0}")]
    Task(String),
}

impl StreamError {
    /// Whether a restart (from the durable checkpoint) may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            StreamError::Source(e) => e.is_transient(),
            StreamError::Writer(e) => e.is_transient(),
            StreamError::Index(e) => matches!(e, mysql_async::Error::Io(_)),
            StreamError::Ddl(_) | StreamError::State(_) => false,
            StreamError::Task(_) => true,
        }
    }
}

/// Runs the stream until `cancel` fires (Ok) or an error stops it.
pub async fn run(
    config: &StreamConfig,
    cancel: CancellationToken,
    progress: watch::Sender<Progress>,
) -> Result<(), StreamError> {
    // Without selecting the database, so that a missing one is reported as "run init".
    let mut index = connect("index", &config.index.dsn, None, &config.tls)
        .await
        .map_err(SourceError::from)?;
    index.query_drop(SESSION_SETUP).await?;
    ddl::ensure_ready(&mut index, &config.index.database).await?;
    index
        .query_drop(format!("USE {}", crate::sql::ident(&config.index.database)))
        .await?;

    let (source_conn, info) = source::open(config).await?;
    let (source_conn, from) = resolve_start(config, &mut index, source_conn, &info).await?;
    let _ = index.disconnect().await;
    // information_schema lookups need a connection of their own: the first one becomes the
    // binlog stream.
    let lookup = connect("source", &config.source, None, &config.tls)
        .await
        .map_err(SourceError::from)?;

    let writer = Writer::open(
        &config.index,
        &config.tls,
        config.server_id,
        info.identity.clone(),
    )
    .await?;
    let stream = source::request(source_conn, &info, config.server_id, &from).await?;
    tracing::info!(
        server_id = config.server_id,
        source = %config.source,
        version = %info.version,
        mode = from.resume.mode(),
        filter = %config.filter.describe(),
        "streaming"
    );

    let (tx, rx) = mpsc::channel(CHANNEL_BOUND);
    let assembler = Assembler::new(config.filter.clone(), config.batch_size, &from);
    let reader_cancel = cancel.child_token();
    let reader = tokio::spawn(source::read(
        info.flavor,
        stream,
        assembler,
        lookup,
        tx,
        reader_cancel.clone(),
    ));
    let written = write_loop(writer, rx, config, progress).await;
    if written.is_err() {
        reader_cancel.cancel();
    }
    let read = reader.await.map_err(|e| StreamError::Task(e.to_string()))?;
    written?;
    read?;
    Ok(())
}

/// Chooses where to start: checkpoint (unless --reset), else start flags, else the current end.
async fn resolve_start(
    config: &StreamConfig,
    index: &mut mysql_async::Conn,
    mut source_conn: mysql_async::Conn,
    info: &SourceInfo,
) -> Result<(mysql_async::Conn, Checkpoint), StreamError> {
    if config.reset {
        match state::reset(index, config.server_id).await? {
            Some(old) => tracing::info!(
                server_id = config.server_id,
                cleared = %old.checkpoint.resume,
                binlog_file = %old.checkpoint.position.file,
                binlog_pos = old.checkpoint.position.pos,
                events_indexed = old.events_indexed,
                "--reset cleared this stream's checkpoint (other streams untouched)"
            ),
            None => tracing::info!(
                server_id = config.server_id,
                "--reset: this stream had no checkpoint"
            ),
        }
    } else if let Some(saved) = state::load(index, config.server_id).await? {
        tracing::info!(
            server_id = config.server_id,
            resume = %saved.checkpoint.resume,
            binlog_file = %saved.checkpoint.position.file,
            binlog_pos = saved.checkpoint.position.pos,
            rows_done = saved.checkpoint.rows_done,
            "resuming from this stream's checkpoint"
        );
        return Ok((source_conn, saved.checkpoint));
    }
    let from = match &config.start {
        Some(StartAt::Position(p)) => Checkpoint {
            resume: ResumePoint::Position(p.clone()),
            position: p.clone(),
            rows_done: 0,
            in_flight: None,
        },
        Some(StartAt::Gtid(set)) => Checkpoint {
            resume: ResumePoint::Gtid(set.clone()),
            position: BinlogPosition::new("", 4),
            rows_done: 0,
            in_flight: None,
        },
        None => source::current_end(&mut source_conn, info).await?,
    };
    let origin = if config.start.is_some() {
        "the start flags"
    } else {
        "the source's current end of binlog"
    };
    tracing::info!(
        server_id = config.server_id,
        start = %from.resume,
        binlog_file = %from.position.file,
        binlog_pos = from.position.pos,
        "no checkpoint: starting from {origin}"
    );
    Ok((source_conn, from))
}

/// Accumulates chunks and flushes them with their checkpoint on size or time.
async fn write_loop(
    mut writer: Writer,
    mut rx: mpsc::Receiver<Chunk>,
    config: &StreamConfig,
    progress: watch::Sender<Progress>,
) -> Result<(), WriterError> {
    let mut batch = Batch::default();
    let mut tick = tokio::time::interval(config.checkpoint_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            chunk = rx.recv() => match chunk {
                Some(chunk) => {
                    batch.add(chunk);
                    if batch.rows.len() >= config.batch_size {
                        batch.flush(&mut writer, &progress).await?;
                    }
                }
                None => {
                    batch.flush(&mut writer, &progress).await?;
                    writer.close().await;
                    return Ok(());
                }
            },
            _ = tick.tick() => {
                if batch.flush(&mut writer, &progress).await? {
                    let p = progress.borrow();
                    if let Some(cp) = &p.checkpoint {
                        tracing::info!(
                            checkpoint = %cp.resume,
                            binlog_file = %cp.position.file,
                            binlog_pos = cp.position.pos,
                            rows_written = p.rows_written,
                            "checkpoint"
                        );
                    }
                }
            }
        }
    }
}

/// Rows and the newest checkpoint waiting for the next flush.
#[derive(Default)]
struct Batch {
    rows: Vec<Change>,
    checkpoint: Option<Checkpoint>,
    last_event_time: Option<u32>,
}

impl Batch {
    fn add(&mut self, chunk: Chunk) {
        if self.rows.is_empty() {
            self.rows = chunk.changes;
        } else {
            self.rows.extend(chunk.changes);
        }
        self.checkpoint = Some(chunk.checkpoint);
        if chunk.last_event_time.is_some() {
            self.last_event_time = chunk.last_event_time;
        }
    }

    /// Writes what is pending; `Ok(false)` when there was nothing to write.
    async fn flush(
        &mut self,
        writer: &mut Writer,
        progress: &watch::Sender<Progress>,
    ) -> Result<bool, WriterError> {
        let Some(checkpoint) = self.checkpoint.take() else {
            return Ok(false);
        };
        let started = Instant::now();
        writer
            .flush(&self.rows, &checkpoint, self.last_event_time)
            .await?;
        let rows = self.rows.len() as u64;
        tracing::debug!(rows, elapsed_ms = started.elapsed().as_millis() as u64, checkpoint = %checkpoint.resume, "flushed");
        self.rows.clear();
        let last_event_time = self.last_event_time;
        progress.send_modify(|p| {
            p.checkpoint = Some(checkpoint);
            p.rows_written += rows;
            p.last_event_time = last_event_time;
        });
        Ok(true)
    }
}

/// How long a graceful stop may take before the process gives up on the drain.
pub const STOP_DEADLINE: Duration = Duration::from_secs(60);

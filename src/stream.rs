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
//! - A start point that did not come from a checkpoint (start flags, `--reset`, the source's
//!   current end) is made durable before the first event is read, so a crash before the first
//!   flush cannot move the stream past changes it never indexed.
//!
//! # Restarts
//! The supervisor ([`run`]) retries transient failures (network, a restarted or frozen server, a
//! stalled connection, a failed flush) with capped exponential backoff and jitter, each attempt
//! resuming from the durable checkpoint, so a failed flush's rows are read again, never dropped.
//! Definite failures stop the stream with their reason.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::change::Change;
use crate::config::{OnGap, StartAt, StreamConfig};
use crate::connect::connect;
use crate::index::writer::{Writer, WriterError};
use crate::index::{ddl, state};
use crate::position::{BinlogPosition, Checkpoint, ResumePoint};
use crate::source::txn::{Assembler, Chunk};
use crate::source::{self, SourceError, SourceInfo};
use crate::sql::SESSION_SETUP;
use crate::telemetry::{FlushReport, Phase, Telemetry};

/// Chunks in flight between reader and writer at most.
const CHANNEL_BOUND: usize = 16;
/// An index transaction that takes longer than this is abandoned and retried on a new connection.
pub const FLUSH_DEADLINE: Duration = Duration::from_secs(60);
/// First retry delay after a transient failure; doubles per attempt up to [`BACKOFF_CAP`].
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Longest retry delay.
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// A run that lasted this long counts as healthy: the next failure starts the backoff anew.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

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
    /// A purged range was recorded as a gap; the stream restarts past it.
    #[error("restarting after recording a gap in the source's history")]
    RestartAfterGap,
    /// An index transaction did not finish in time (a hung index server).
    #[error("an index transaction did not finish within {0:?}; the index server may be hung")]
    FlushTimeout(Duration),
}

impl StreamError {
    /// Whether a restart (from the durable checkpoint) may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            StreamError::Source(e) => e.is_transient(),
            StreamError::Writer(e) => e.is_transient(),
            StreamError::Index(e) => matches!(e, mysql_async::Error::Io(_)),
            StreamError::Ddl(_) | StreamError::State(_) => false,
            StreamError::Task(_) | StreamError::FlushTimeout(_) | StreamError::RestartAfterGap => {
                true
            }
        }
    }
}

/// Runs the stream until `cancel` fires (Ok) or a definite error stops it, retrying transient
/// failures from the durable checkpoint.
pub async fn run(
    config: &StreamConfig,
    cancel: CancellationToken,
    telemetry: Arc<Telemetry>,
) -> Result<(), StreamError> {
    let mut config = config.clone();
    let mut attempt: u32 = 0;
    loop {
        let started = Instant::now();
        let outcome = run_once(&config, &cancel, &telemetry).await;
        // --reset applies to the first run only; a reconnect resumes from the checkpoint.
        config.reset = false;
        match outcome {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() && !cancel.is_cancelled() => {
                attempt = if started.elapsed() >= HEALTHY_RUN {
                    1
                } else {
                    attempt + 1
                };
                telemetry
                    .transient_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                telemetry.set_phase(Phase::Reconnecting);
                let delay = backoff(attempt);
                tracing::warn!(
                    server_id = config.server_id,
                    attempt,
                    retry_in_ms = delay.as_millis() as u64,
                    error = %e,
                    "transient failure; reconnecting and resuming from the last checkpoint"
                );
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
                telemetry
                    .reconnects
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e) => {
                telemetry
                    .definite_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Err(e);
            }
        }
    }
}

/// Capped exponential backoff with ±25 % jitter, so that many streams do not retry in step.
fn backoff(attempt: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(BACKOFF_CAP);
    // Jitter from the clock's low bits: good enough to de-synchronise, no RNG dependency.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let factor = 0.75 + f64::from(nanos % 1000) / 2000.0;
    capped.mul_f64(factor)
}

/// One connection's worth of streaming: connect, resume, read and write until cancelled or failed.
async fn run_once(
    config: &StreamConfig,
    cancel: &CancellationToken,
    telemetry: &Arc<Telemetry>,
) -> Result<(), StreamError> {
    telemetry.set_phase(Phase::Starting);
    // Without selecting the database, so that a missing one is reported as "run init".
    let mut index = connect("index", &config.index.dsn, None, &config.tls)
        .await
        .map_err(SourceError::from)?;
    index.query_drop(SESSION_SETUP).await?;
    ddl::ensure_ready(&mut index, &config.index.database).await?;
    index
        .query_drop(format!("USE {}", crate::sql::ident(&config.index.database)))
        .await?;

    let (mut source_conn, info) = source::open(config).await?;
    let (from, durable) = resolve_start(config, &mut index, &mut source_conn, &info).await?;
    let _ = index.disconnect().await;
    // information_schema lookups need a connection of their own: the first one becomes the
    // binlog stream.
    let lookup = connect("source", &config.source, None, &config.tls)
        .await
        .map_err(SourceError::from)?;

    let mut writer = Writer::open(
        &config.index,
        &config.tls,
        config.server_id,
        info.identity.clone(),
    )
    .await?;
    if !durable {
        writer.flush(&[], &from, None).await?;
    }
    let from = match source::find_gap(&mut source_conn, &info, &from).await? {
        Some(gap) => skip_gap(config, &mut writer, gap).await?,
        None => from,
    };
    let stream = match source::request(source_conn, &info, config.server_id, &from).await {
        Ok(stream) => stream,
        Err(e) => match source::mariadb_gap(&e, &from) {
            Some(gap) => {
                skip_gap(config, &mut writer, gap).await?;
                return Err(StreamError::RestartAfterGap);
            }
            None => return Err(e.into()),
        },
    };
    telemetry.set_phase(Phase::Streaming);
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
        telemetry.clone(),
    ));
    let written = write_loop(writer, rx, config, telemetry).await;
    if written.is_err() {
        reader_cancel.cancel();
    }
    let read = reader.await.map_err(|e| StreamError::Task(e.to_string()))?;
    written?;
    read?;
    Ok(())
}

/// Refuses a purged gap (`--on-gap=fail`), or records it and returns where to continue.
async fn skip_gap(
    config: &StreamConfig,
    writer: &mut Writer,
    gap: source::Gap,
) -> Result<Checkpoint, StreamError> {
    if config.on_gap == OnGap::Fail {
        return Err(gap.refuse().into());
    }
    writer.record_gap(&gap.from, &gap.to, &gap.what).await?;
    tracing::error!(
        server_id = config.server_id,
        gap_from = %gap.from,
        gap_to = %gap.to.resume,
        reason = %gap.what,
        "GAP IN THE INDEX: binlogs were purged before they were indexed; skipping to the oldest available position (--on-gap=skip); recorded in stream_gaps"
    );
    Ok(gap.to)
}

/// Chooses where to start: checkpoint (unless --reset), else start flags, else the current end.
/// The flag says whether the start point is already durable (it came from the checkpoint).
async fn resolve_start(
    config: &StreamConfig,
    index: &mut mysql_async::Conn,
    source_conn: &mut mysql_async::Conn,
    info: &SourceInfo,
) -> Result<(Checkpoint, bool), StreamError> {
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
        return Ok((saved.checkpoint, true));
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
        None => source::current_end(source_conn, info).await?,
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
    Ok((from, false))
}

/// Accumulates chunks and flushes them with their checkpoint on size or time.
async fn write_loop(
    mut writer: Writer,
    mut rx: mpsc::Receiver<Chunk>,
    config: &StreamConfig,
    telemetry: &Telemetry,
) -> Result<(), StreamError> {
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
                        batch.flush(&mut writer, telemetry).await?;
                    }
                }
                None => {
                    batch.flush(&mut writer, telemetry).await?;
                    writer.close().await;
                    return Ok(());
                }
            },
            _ = tick.tick() => {
                if batch.flush(&mut writer, telemetry).await? {
                    tracing::info!(
                        checkpoint = %telemetry.checkpoint(),
                        rows_indexed = telemetry.rows_indexed.load(std::sync::atomic::Ordering::Relaxed),
                        "checkpoint"
                    );
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

    /// Writes what is pending; `Ok(false)` when there was nothing to write. On failure the rows
    /// are dropped from memory: the supervisor reconnects and reads them again from the source.
    async fn flush(
        &mut self,
        writer: &mut Writer,
        telemetry: &Telemetry,
    ) -> Result<bool, StreamError> {
        let Some(checkpoint) = self.checkpoint.take() else {
            return Ok(false);
        };
        let started = Instant::now();
        telemetry.flush_begins();
        let result = tokio::time::timeout(
            FLUSH_DEADLINE,
            writer.flush(&self.rows, &checkpoint, self.last_event_time),
        )
        .await;
        let rows = self.rows.len() as u64;
        let text = checkpoint.resume.to_string();
        let committed = matches!(result, Ok(Ok(())));
        telemetry.flush_ends(
            committed.then_some(FlushReport {
                rows,
                checkpoint: &text,
                last_event_time: self.last_event_time,
            }),
            started.elapsed(),
        );
        match result {
            Err(_) => return Err(StreamError::FlushTimeout(FLUSH_DEADLINE)),
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(())) => {}
        }
        tracing::debug!(rows, elapsed_ms = started.elapsed().as_millis() as u64, checkpoint = %text, "flushed");
        self.rows.clear();
        Ok(true)
    }
}

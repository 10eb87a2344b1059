//! The stream pipeline: reader task → bounded channel → writer task, and its lifecycle.
//!
//! # Invariants
//! - Only the writer makes a checkpoint durable, and only together with the rows it covers.
//! - The channel is bounded, so a slow index slows the reader instead of growing memory.
//! - Shutdown is cooperative: cancelling stops the reader; the writer drains what the channel
//!   holds, commits it with its checkpoint, and returns. A failing reader also lets the writer
//!   commit everything received before the failure.
//! - A batch closes on `batch_size` rows, on the `checkpoint_interval` timer, or when the reader
//!   has nothing more to give right now (channel empty, socket empty: see `source::idle`),
//!   whichever comes first; the timer also records progress when every event was filtered out.
//! - A start point that did not come from a checkpoint (start flags, `--reset`, the source's
//!   current end) is made durable before the first event is read, so a crash before the first
//!   flush cannot move the stream past changes it never indexed.
//!
//! # Restarts
//! The supervisor ([`run`]) retries transient failures (network, a restarted or frozen server, a
//! stalled connection, a failed flush) with capped exponential backoff and jitter, each attempt
//! resuming from the durable checkpoint, so a failed flush's rows are read again, never dropped.
//! Definite failures stop the stream with their reason.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::change::{Change, XaPart};
use crate::config::{OnGap, StreamConfig};
use crate::connect::connect;
use crate::index::writer::{DdlAt, Writer, WriterError};
use crate::index::{ddl, state};
use crate::position::{Checkpoint, ResumePoint};
use crate::source::idle::Idle;
use crate::source::txn::Chunk;
use crate::source::{self, SourceError, SourceInfo};
use crate::sql::SESSION_SETUP;
use crate::telemetry::{FlushReport, Phase, Telemetry};

/// Chunks in flight between reader and writer (or `--dry-run`'s counter) at most.
pub(crate) const CHANNEL_BOUND: usize = 16;
/// Bytes of row text at which the writer flushes before `--batch-size` rows (see
/// `source::txn::CHUNK_BYTES` for the memory bound this is part of).
pub(crate) const BATCH_BYTES: usize = 4 << 20;
/// An index transaction that takes longer than this is abandoned and retried on a new connection.
pub const FLUSH_DEADLINE: Duration = Duration::from_secs(60);
/// Start-up (connects, checks, binlog request) taking longer than this is retried.
const SETUP_DEADLINE: Duration = Duration::from_secs(30);
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
    /// A position-mode checkpoint taken on another server.
    #[error("the checkpoint of stream {server_id} was taken on source {recorded}, but --source-dsn now reaches {found}: in position mode a binlog offset only means something on the server that wrote it. If this server replaced the old one, restart with --reset and a --start-file/--start-pos (or --start-gtid) on this server")]
    OtherSource {
        /// The stream.
        server_id: u32,
        /// Identity stored with the checkpoint.
        recorded: String,
        /// Identity of the server reached now.
        found: String,
    },
    /// A purged range was recorded as a gap; the stream restarts past it.
    #[error("restarting after recording a gap in the source's history")]
    RestartAfterGap,
    /// Connecting and positioning did not finish in time (a half-open connection).
    #[error("connecting to the source and the index did not finish within {0:?}")]
    SetupTimeout(Duration),
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
            StreamError::Index(e) => crate::classify::is_transient(e),
            StreamError::Ddl(e) => e.is_transient(),
            StreamError::State(e) => e.is_transient(),
            StreamError::OtherSource { .. } => false,
            StreamError::Task(_)
            | StreamError::FlushTimeout(_)
            | StreamError::SetupTimeout(_)
            | StreamError::RestartAfterGap => true,
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

/// Everything a run needs, connected and positioned.
struct Started {
    info: SourceInfo,
    from: Checkpoint,
    stream: source::Binlog,
    writer: Writer,
    lookup: mysql_async::Conn,
    /// Which TLS the connections ended up with, for STATUS.
    tls: String,
}

/// Connects to both servers, checks them, resolves the start point and requests the binlog.
async fn start(config: &StreamConfig) -> Result<Started, StreamError> {
    // Without selecting the database, so that a missing one is reported as "run init".
    let mut index = connect("index", &config.index.dsn, None, &config.index.tls)
        .await
        .map_err(SourceError::from)?;
    index.query_drop(SESSION_SETUP).await?;
    ddl::ensure_ready(&mut index, &config.index.database).await?;
    index
        .query_drop(format!("USE {}", crate::sql::ident(&config.index.database)))
        .await?;

    let (mut replica, info) = source::open(config).await?;
    let (from, durable) = resolve_start(config, &mut index, &mut replica.conn, &info).await?;
    let index_used_tls = index.opts().ssl_opts().is_some();
    let index_tls = config.index.tls.outcome(index_used_tls);
    let _ = index.disconnect().await;
    // information_schema lookups need a connection of their own: the first one becomes the
    // binlog stream.
    let mut lookup = connect("source", &config.source, None, &config.tls)
        .await
        .map_err(SourceError::from)?;
    source::warn_unmatched_policy(&mut lookup, &config.policy).await?;
    // Which TLS each connection ended up with (preferred may have fallen back to plaintext).
    let source_used_tls = lookup.opts().ssl_opts().is_some();
    tracing::info!(
        source_tls = %config.tls.outcome(source_used_tls),
        index_tls = %index_tls,
        "connected"
    );
    let tls = format!(
        "source {}, index {}",
        config.tls.short_outcome(source_used_tls),
        config.index.tls.short_outcome(index_used_tls)
    );

    let mut writer = Writer::open(
        &config.index,
        &config.index.tls,
        config.server_id,
        info.identity.clone(),
    )
    .await?;
    if !durable {
        writer.flush(&[], &[], &[], &from, None).await?;
    }
    writer.record_policy(&config.policy).await?;
    let from = match source::find_gap(&mut replica.conn, &info, &from).await? {
        Some(gap) => skip_gap(config, &mut writer, gap).await?,
        None => from,
    };
    let stream = source::request(replica, &info, config, &from, source::Until::Forever).await?;
    Ok(Started {
        tls,
        info,
        from,
        stream,
        writer,
        lookup,
    })
}

/// One connection's worth of streaming: connect, resume, read and write until cancelled or failed.
async fn run_once(
    config: &StreamConfig,
    cancel: &CancellationToken,
    telemetry: &Arc<Telemetry>,
) -> Result<(), StreamError> {
    telemetry.set_phase(Phase::Starting);
    // Every connect and query of the start-up can hang on a half-open connection.
    let started = tokio::select! {
        _ = cancel.cancelled() => return Ok(()),
        r = tokio::time::timeout(SETUP_DEADLINE, start(config)) => r,
    };
    let Started {
        info,
        from,
        stream,
        writer,
        lookup,
        tls,
    } = started.map_err(|_| StreamError::SetupTimeout(SETUP_DEADLINE))??;
    telemetry.set_tls(tls);
    telemetry.set_phase(Phase::Streaming);
    tracing::info!(
        server_id = config.server_id,
        source = %config.source,
        version = %info.version,
        mode = from.resume.mode(),
        filter = %config.filter.describe(),
        policy_version = config.policy.fingerprint(),
        "streaming"
    );

    let (tx, rx) = mpsc::channel(CHANNEL_BOUND);
    let reader_cancel = cancel.child_token();
    let reader = source::Reader::new(config, &info, stream, lookup, &from, telemetry.clone());
    let idle = reader.idle.clone();
    // The reader's log lines carry the caller's span (its SERVER_ID field).
    let events_at_start = telemetry.events_received.load(Ordering::Relaxed);
    let reader = tokio::spawn(source::read(reader, tx, reader_cancel.clone()).in_current_span());
    let written = write_loop(writer, rx, config, telemetry, &from, &idle).await;
    if written.is_err() {
        reader_cancel.cancel();
    }
    let read = reader.await.map_err(|e| StreamError::Task(e.to_string()))?;
    written?;
    if let Err(e) = &read {
        // MariaDB answers a purged GTID state with an error instead of the first event.
        let nothing_read = telemetry.events_received.load(Ordering::Relaxed) == events_at_start;
        if nothing_read && source::is_mariadb_purged(e) {
            let mut conn = connect("source", &config.source, None, &config.tls)
                .await
                .map_err(SourceError::from)?;
            let gap = source::mariadb_gap(&mut conn, e, &from).await?;
            let _ = conn.disconnect().await;
            let mut writer = Writer::open(
                &config.index,
                &config.index.tls,
                config.server_id,
                info.identity.clone(),
            )
            .await?;
            skip_gap(config, &mut writer, gap).await?;
            return Err(StreamError::RestartAfterGap);
        }
    }
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

/// In position mode an offset only means something on the server that wrote it: refuse a
/// checkpoint taken on another source (GTIDs are global, so GTID mode may follow a failover).
fn ensure_same_source(
    config: &StreamConfig,
    saved: &state::StreamState,
    info: &SourceInfo,
) -> Result<(), StreamError> {
    let position_mode = matches!(saved.checkpoint.resume, ResumePoint::Position(_));
    match &saved.source_uuid {
        Some(recorded) if position_mode && !recorded.is_empty() && *recorded != info.identity => {
            Err(StreamError::OtherSource {
                server_id: config.server_id,
                recorded: recorded.clone(),
                found: info.identity.clone(),
            })
        }
        _ => Ok(()),
    }
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
        ensure_same_source(config, &saved, info)?;
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
        Some(start) => start.checkpoint(),
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

/// Accumulates chunks and flushes them with their checkpoint on size, on time, or as soon as
/// the reader has nothing more to give (so light traffic is indexed within milliseconds, while
/// under a backlog the channel is never empty and batches still fill to `batch_size`).
async fn write_loop(
    mut writer: Writer,
    mut rx: mpsc::Receiver<Chunk>,
    config: &StreamConfig,
    telemetry: &Telemetry,
    from: &Checkpoint,
    idle: &Idle,
) -> Result<(), StreamError> {
    let mut batch = Batch {
        rows: Vec::with_capacity(config.batch_size.min(10_000)),
        committed: Some(from.clone()),
        ..Batch::default()
    };
    let mut tick = tokio::time::interval(config.checkpoint_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            // The timer first, so that a channel that is never empty cannot starve it; then the
            // channel, so that the idle branch only runs when the channel is empty.
            biased;
            _ = tick.tick() => {
                if !batch.flush(&mut writer, telemetry).await? {
                    // Idle: rewrite the same checkpoint, so its age in stream_state shows a live
                    // stream and a hung index server is noticed even without traffic.
                    batch.touch(&mut writer, telemetry).await?;
                } else {
                    tracing::info!(
                        checkpoint = %telemetry.checkpoint(),
                        rows_indexed = telemetry.rows_indexed.load(std::sync::atomic::Ordering::Relaxed),
                        "checkpoint"
                    );
                }
            }
            chunk = rx.recv() => match chunk {
                Some(chunk) => {
                    batch.add(chunk);
                    if batch.len() >= config.batch_size || batch.bytes >= BATCH_BYTES {
                        batch.flush(&mut writer, telemetry).await?;
                    }
                }
                None => {
                    batch.flush(&mut writer, telemetry).await?;
                    writer.close().await;
                    return Ok(());
                }
            },
            // The channel is empty and the reader waits on the socket: nothing more is coming
            // right now, so waiting for a fuller batch only adds lag. Filtered-only progress
            // (no changes) is left to the timer, which records it without a commit per event;
            // so is a batch that ends inside a transaction.
            () = idle.woken() => {
                if idle.is_waiting() && batch.has_changes() && batch.ends_a_transaction() {
                    batch.flush(&mut writer, telemetry).await?;
                }
            }
        }
    }
}

/// Rows and the newest checkpoint waiting for the next flush (also `bintrail index`'s batch).
#[derive(Default)]
pub(crate) struct Batch {
    rows: Vec<Change>,
    /// Chunks of XA transactions, in binlog order, each after the number of `rows` before it
    /// (rare: no buffer reuse).
    xa: Vec<(usize, XaPart, Vec<Change>)>,
    /// Markers of DDL statements, each after the rows and XA parts before it.
    ddl: Vec<DdlAt>,
    /// Bytes of row text pending: a batch of BLOB rows flushes at [`BATCH_BYTES`], not only at
    /// --batch-size rows, so memory is bounded by bytes too.
    pub(crate) bytes: usize,
    checkpoint: Option<Checkpoint>,
    last_event_time: Option<u32>,
    /// The last checkpoint committed, rewritten by [`Batch::touch`] when idle.
    committed: Option<Checkpoint>,
}

impl Batch {
    /// Changes pending.
    pub(crate) fn len(&self) -> usize {
        self.rows.len() + self.xa.iter().map(|(_, _, c)| c.len()).sum::<usize>()
    }

    /// Whether anything besides the checkpoint is pending: changes, XA parts or DDL markers.
    pub(crate) fn has_changes(&self) -> bool {
        !self.rows.is_empty() || !self.xa.is_empty() || !self.ddl.is_empty()
    }

    /// Whether the pending checkpoint is a transaction boundary (no rows of an open transaction
    /// done): inside a huge transaction the socket running dry is the source's pace, not the
    /// end of traffic, so the batch keeps filling (the timer still bounds its wait).
    fn ends_a_transaction(&self) -> bool {
        self.checkpoint.as_ref().is_some_and(|c| c.rows_done == 0)
    }

    /// Adds a chunk and makes its checkpoint the one the next flush writes.
    pub(crate) fn add(&mut self, chunk: Chunk) {
        self.bytes += chunk.changes.iter().map(Change::text_len).sum::<usize>();
        if !chunk.ddl.is_empty() {
            self.ddl.push(DdlAt {
                rows: self.rows.len(),
                xa: self.xa.len(),
                records: chunk.ddl,
            });
        }
        match chunk.xa {
            Some(part) => self.xa.push((self.rows.len(), part, chunk.changes)),
            // Always into the kept vector: its capacity (a batch) is reused flush after flush
            // instead of growing a fresh one each time.
            None => self.rows.extend(chunk.changes),
        }
        self.checkpoint = Some(chunk.checkpoint);
        if chunk.last_event_time.is_some() {
            self.last_event_time = chunk.last_event_time;
        }
    }

    /// Writes what is pending; `Ok(false)` when there was nothing to write. On failure the rows
    /// are dropped from memory: the supervisor reconnects and reads them again from the source.
    /// Rewrites the last committed checkpoint (no rows), refreshing `last_checkpoint`.
    async fn touch(
        &mut self,
        writer: &mut Writer,
        telemetry: &Telemetry,
    ) -> Result<(), StreamError> {
        if self.checkpoint.is_none() {
            self.checkpoint = self.committed.clone();
        }
        self.flush(writer, telemetry).await.map(|_| ())
    }

    /// Writes what is pending with the newest checkpoint; `Ok(false)` when nothing was pending.
    pub(crate) async fn flush(
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
            writer.flush(
                &self.rows,
                &self.xa,
                &self.ddl,
                &checkpoint,
                self.last_event_time,
            ),
        )
        .await;
        let text = checkpoint.resume.to_string();
        // Only rows the index did not hold yet count: a replay after a restart adds none.
        let inserted = match &result {
            Ok(Ok(n)) => Some(*n),
            _ => None,
        };
        let rows = inserted.unwrap_or(0);
        telemetry.flush_ends(
            inserted.map(|rows| FlushReport {
                rows,
                checkpoint: &text,
                last_event_time: self.last_event_time,
            }),
            started.elapsed(),
        );
        match result {
            Err(_) => return Err(StreamError::FlushTimeout(FLUSH_DEADLINE)),
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(_)) => {}
        }
        tracing::debug!(rows, elapsed_ms = started.elapsed().as_millis() as u64, checkpoint = %text, "flushed");
        self.rows.clear();
        self.xa.clear();
        self.ddl.clear();
        self.bytes = 0;
        self.committed = Some(checkpoint);
        Ok(true)
    }
}

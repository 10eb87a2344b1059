//! What the pipeline reports about itself: one shared set of counters and timestamps, written by
//! the reader, the writer and the supervisor, read by the service layer (sd-notify STATUS and
//! WATCHDOG), the metrics endpoint and the logs.
//!
//! # Invariant
//! Every value here is written where the thing happens (an event arrived, a flush committed) and
//! never synthesised by a timer, so a reader of [`Telemetry`] can tell a live pipeline from a
//! wedged one: `last_source_activity` moves only when the source sends something, and
//! `flush_started` stays set for as long as an index transaction is in flight.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the stream is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Connecting, checking, resolving the start point.
    Starting = 0,
    /// The binlog has been requested; events flow.
    Streaming = 1,
    /// A transient failure; waiting to reconnect.
    Reconnecting = 2,
    /// Shutdown has begun: draining and final checkpoint.
    Stopping = 3,
}

/// Upper bounds (seconds) of the flush-duration histogram buckets; the last bucket is +Inf.
pub const FLUSH_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Shared pipeline state. All times are milliseconds since the Unix epoch; 0 means never.
#[derive(Debug, Default)]
pub struct Telemetry {
    phase: AtomicU8,
    /// Binlog events received from the source (including heartbeats).
    pub events_received: AtomicU64,
    /// Row changes committed to the index by this process.
    pub rows_indexed: AtomicU64,
    /// Index transactions committed.
    pub flushes: AtomicU64,
    /// Sum of flush durations, microseconds.
    pub flush_micros_total: AtomicU64,
    /// Flush-duration histogram: counts per bucket of [`FLUSH_BUCKETS`], plus +Inf last.
    pub flush_buckets: [AtomicU64; FLUSH_BUCKETS.len() + 1],
    /// Last time the source sent anything (event or heartbeat).
    pub last_source_activity: AtomicU64,
    /// Start of the index transaction in flight, 0 when none.
    pub flush_started: AtomicU64,
    /// When the last checkpoint was committed.
    pub last_checkpoint_at: AtomicU64,
    /// Binlog timestamp (seconds) of the last event covered by the checkpoint.
    pub last_event_time: AtomicU64,
    /// Source's clock (seconds) at its last heartbeat or event, for lag when idle.
    pub source_clock: AtomicU64,
    /// Reconnects after transient failures.
    pub reconnects: AtomicU64,
    /// Transient errors (retried).
    pub transient_errors: AtomicU64,
    /// Definite errors (the stream stopped).
    pub definite_errors: AtomicU64,
    checkpoint: Mutex<String>,
    tls: Mutex<String>,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Telemetry {
    /// A fresh set, in [`Phase::Starting`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            1 => Phase::Streaming,
            2 => Phase::Reconnecting,
            3 => Phase::Stopping,
            _ => Phase::Starting,
        }
    }

    /// Moves to `phase`.
    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    /// The source sent an event (or heartbeat) with binlog timestamp `event_time` (seconds).
    pub fn source_activity(&self, event_time: u32) {
        self.events_received.fetch_add(1, Ordering::Relaxed);
        self.last_source_activity.store(now_ms(), Ordering::Relaxed);
        if event_time > 0 {
            self.source_clock
                .fetch_max(u64::from(event_time), Ordering::Relaxed);
        }
    }

    /// An index transaction begins.
    pub fn flush_begins(&self) {
        self.flush_started.store(now_ms(), Ordering::Relaxed);
    }

    /// The index transaction ended (committed when `committed`).
    pub fn flush_ends(&self, committed: Option<FlushReport<'_>>, took: Duration) {
        self.flush_started.store(0, Ordering::Relaxed);
        let Some(report) = committed else {
            return;
        };
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.rows_indexed.fetch_add(report.rows, Ordering::Relaxed);
        self.flush_micros_total
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let bucket = FLUSH_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(FLUSH_BUCKETS.len());
        self.flush_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.last_checkpoint_at.store(now_ms(), Ordering::Relaxed);
        if let Some(t) = report.last_event_time {
            self.last_event_time.store(u64::from(t), Ordering::Relaxed);
        }
        if let Ok(mut c) = self.checkpoint.lock() {
            report.checkpoint.clone_into(&mut c);
        }
    }

    /// Records which TLS the connections ended up with (`source verify-ca, index plaintext`).
    pub fn set_tls(&self, summary: String) {
        if let Ok(mut t) = self.tls.lock() {
            *t = summary;
        }
    }

    /// What [`set_tls`](Self::set_tls) recorded (empty before the first connection).
    pub fn tls(&self) -> String {
        self.tls.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// The last committed checkpoint, as text (`binlog.000003:1234` or a GTID set).
    pub fn checkpoint(&self) -> String {
        self.checkpoint
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// Replication lag in seconds: the source's clock minus the last indexed event's time.
    pub fn lag_seconds(&self) -> Option<u64> {
        let indexed = self.last_event_time.load(Ordering::Relaxed);
        let source = self.source_clock.load(Ordering::Relaxed);
        (indexed > 0 && source > 0).then(|| source.saturating_sub(indexed))
    }
}

/// What a committed flush wrote.
#[derive(Debug, Clone, Copy)]
pub struct FlushReport<'a> {
    /// Rows written.
    pub rows: u64,
    /// The checkpoint committed with them, as text.
    pub checkpoint: &'a str,
    /// Binlog time of the last event covered.
    pub last_event_time: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_committed_flush_counts_rows_and_buckets_its_duration() {
        let t = Telemetry::new();
        t.flush_begins();
        assert!(t.flush_started.load(Ordering::Relaxed) > 0);
        let report = FlushReport {
            rows: 7,
            checkpoint: "binlog.000001:99",
            last_event_time: Some(100),
        };
        t.flush_ends(Some(report), Duration::from_millis(30));
        assert_eq!(t.flush_started.load(Ordering::Relaxed), 0);
        assert_eq!(t.rows_indexed.load(Ordering::Relaxed), 7);
        assert_eq!(t.flush_buckets[3].load(Ordering::Relaxed), 1);
        assert_eq!(t.checkpoint(), "binlog.000001:99");
        t.source_activity(160);
        assert_eq!(t.lag_seconds(), Some(60));
    }

    #[test]
    fn a_failed_flush_only_clears_the_in_flight_mark() {
        let t = Telemetry::new();
        t.flush_begins();
        t.flush_ends(None, Duration::from_secs(1));
        assert_eq!(t.flushes.load(Ordering::Relaxed), 0);
        assert_eq!(t.flush_started.load(Ordering::Relaxed), 0);
    }
}

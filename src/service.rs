//! Process-level integration: the tracing subscriber (journald, text or JSON lines), signals,
//! sd-notify (`READY`, `STATUS`, `WATCHDOG`, `STOPPING`), and the liveness rule that both the
//! systemd watchdog and the metrics endpoint's `/healthz` apply.
//!
//! # Invariants
//! - Best-effort and truthful (STYLE 11): a notify or journald failure is logged once and never
//!   stops the stream; without `NOTIFY_SOCKET` nothing is sent; the variable is never unset, so
//!   STATUS keeps flowing during the drain.
//! - `READY=1` is sent once, when the pipeline first reaches [`Phase::Streaming`]: both
//!   connections are up and the replica is registered and has requested the binlog.
//! - `WATCHDOG=1` is sent only while [`Health::check`] finds the pipeline alive, and that is
//!   decided from what the pipeline itself recorded in [`Telemetry`] (an event or heartbeat
//!   arrived, a flush committed), never from a timer of ours: a flush in flight for longer than
//!   half the watchdog period withholds the ping, so a hung index server or a wedged task makes
//!   systemd restart the service.
//! - `STOPPING=1` is sent when shutdown begins (first SIGTERM/SIGINT, or the stream ending by
//!   itself), the drain has a deadline ([`DRAIN_DEADLINE`], below the unit's `TimeoutStopSec`),
//!   and a second signal ends it at once. Either way the next start resumes from the last
//!   durable checkpoint, so giving up on a drain loses nothing.

use std::fmt;
use std::future::Future;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_subscriber::{fmt as tfmt, prelude::*, EnvFilter};

use crate::config::LogFormat;
use crate::telemetry::{now_ms, Phase, Telemetry};

/// Longest STATUS line sent: `systemctl status` shows it on one line.
pub const STATUS_MAX: usize = 160;
/// Without a watchdog (for `/healthz`), a flush in flight longer than this is "stuck".
const DEFAULT_FLUSH_STALL: Duration = Duration::from_secs(30);
/// How long connecting, checking and resolving the start point (or a backoff) may show no sign of
/// progress; each of those steps is bounded (connect timeout, backoff cap) well below this.
const START_STALL: Duration = Duration::from_secs(120);
/// How long the drain after the first signal may take; the unit's `TimeoutStopSec` is above it.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(100);

// ---------------------------------------------------------------------------------------------
// Logging

/// Installs the global tracing subscriber. `RUST_LOG` overrides the default `info` level.
///
/// `auto` logs to journald when `JOURNAL_STREAM` says stderr is the journal (as systemd sets it
/// for a service), with syslog identifier `bintrail` and unprefixed upper-case fields, so that
/// `journalctl -u bintrail-stream-42 SERVER_ID=42` filters; otherwise text (ANSI colours only on a
/// terminal). `json` writes one object per line with the enclosing span's fields.
pub fn init_logging(format: LogFormat) {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if format == LogFormat::Auto && stderr_is_journal() {
        match tracing_journald::layer() {
            Ok(layer) => {
                // syslog's meanings: INFO is "informational" (6), not tracing-journald's default
                // "notice" (5), so `journalctl -p notice` shows only what needs attention.
                use tracing_journald::{Priority, PriorityMappings};
                let priorities = PriorityMappings {
                    info: Priority::Informational,
                    debug: Priority::Debug,
                    ..PriorityMappings::new()
                };
                let layer = layer
                    .with_syslog_identifier("bintrail".into())
                    .with_field_prefix(None)
                    .with_priority_mappings(priorities);
                tracing_subscriber::registry()
                    .with(filter())
                    .with(layer)
                    .init();
                return;
            }
            Err(e) => eprintln!("bintrail: journald unavailable ({e}), logging to stderr"),
        }
    }
    let registry = tracing_subscriber::registry().with(filter());
    if format == LogFormat::Json {
        registry
            .with(
                tfmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .init();
    } else {
        registry
            .with(
                tfmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false)
                    .with_ansi(std::io::stderr().is_terminal()),
            )
            .init();
    }
}

/// Whether stderr is the journal stream systemd named in `JOURNAL_STREAM` (`device:inode`), per
/// systemd.exec(5); a child whose stderr was redirected elsewhere inherits the variable but not
/// the stream, and keeps logging text.
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(wanted) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(meta) = std::fs::File::from(fd).metadata() else {
        return false;
    };
    journal_stream_matches(&wanted.to_string_lossy(), meta.dev(), meta.ino())
}

fn journal_stream_matches(value: &str, dev: u64, ino: u64) -> bool {
    value
        .trim()
        .split_once(':')
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        == Some((dev, ino))
}

// ---------------------------------------------------------------------------------------------
// Liveness

/// Why the pipeline is not considered alive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unhealthy {
    /// An index transaction has been in flight too long: a hung index server or writer.
    FlushStuck {
        /// Seconds in flight.
        secs: u64,
    },
    /// Streaming, but nothing came from the source and nothing was committed for too long.
    SourceQuiet {
        /// Seconds without activity.
        secs: u64,
    },
    /// Connecting or reconnecting made no visible progress for too long.
    StartStuck {
        /// The phase it is stuck in.
        phase: &'static str,
        /// Seconds without progress.
        secs: u64,
    },
}

impl fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unhealthy::FlushStuck { secs } => write!(
                f,
                "an index transaction has been in flight for {secs} s (index server hung?)"
            ),
            Unhealthy::SourceQuiet { secs } => write!(
                f,
                "no event or heartbeat from the source and no commit for {secs} s"
            ),
            Unhealthy::StartStuck { phase, secs } => {
                write!(f, "{phase} without progress for {secs} s")
            }
        }
    }
}

/// The liveness rule shared by the watchdog and `/healthz`. It only reads what the pipeline
/// recorded; the one thing it keeps itself is when the phase (or the retry counters) last changed.
#[derive(Debug)]
pub struct Health {
    telemetry: Arc<Telemetry>,
    /// A flush in flight longer than this is stuck (half the watchdog period).
    flush_stall: Duration,
    /// While streaming, the source (events, heartbeats) or the writer (commits) must show life
    /// within this window: three heartbeat periods, and never less than `flush_stall`, because a
    /// reader blocked behind a slow but live flush receives nothing meanwhile.
    quiet_limit: Duration,
    /// While starting or reconnecting, something must change within this window.
    start_limit: Duration,
    stopping: AtomicBool,
    tracker: Mutex<Tracker>,
}

#[derive(Debug, Default)]
struct Tracker {
    phase: Option<Phase>,
    marks: (u64, u64),
    since_ms: u64,
}

impl Health {
    /// The rule for a watchdog period (`None`: no watchdog, defaults for `/healthz`) and the
    /// source's heartbeat interval.
    pub fn new(
        telemetry: Arc<Telemetry>,
        watchdog: Option<Duration>,
        heartbeat: Duration,
    ) -> Health {
        let flush_stall = watchdog.map_or(DEFAULT_FLUSH_STALL, |w| w / 2);
        Health {
            telemetry,
            flush_stall,
            quiet_limit: (heartbeat * 3).max(flush_stall),
            start_limit: START_STALL.max(watchdog.unwrap_or_default()),
            stopping: AtomicBool::new(false),
            tracker: Mutex::new(Tracker::default()),
        }
    }

    /// Shutdown has begun: the source is no longer read, only stuck flushes count.
    pub fn mark_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Whether the pipeline is alive now.
    pub fn check(&self) -> Result<(), Unhealthy> {
        self.check_at(now_ms())
    }

    fn check_at(&self, now: u64) -> Result<(), Unhealthy> {
        let t = &self.telemetry;
        let age = |since: u64| Duration::from_millis(now.saturating_sub(since));
        let flush = t.flush_started.load(Ordering::Relaxed);
        if flush > 0 && age(flush) > self.flush_stall {
            return Err(Unhealthy::FlushStuck {
                secs: age(flush).as_secs(),
            });
        }
        let phase = t.phase();
        let since = self.phase_since(phase, now);
        if self.stopping.load(Ordering::Relaxed) || phase == Phase::Stopping {
            return Ok(());
        }
        match phase {
            Phase::Streaming => {
                let last = since
                    .max(t.last_source_activity.load(Ordering::Relaxed))
                    .max(t.last_checkpoint_at.load(Ordering::Relaxed));
                if age(last) > self.quiet_limit {
                    return Err(Unhealthy::SourceQuiet {
                        secs: age(last).as_secs(),
                    });
                }
            }
            Phase::Starting | Phase::Reconnecting => {
                if age(since) > self.start_limit {
                    return Err(Unhealthy::StartStuck {
                        phase: phase_name(phase),
                        secs: age(since).as_secs(),
                    });
                }
            }
            Phase::Stopping => {}
        }
        Ok(())
    }

    /// When the phase, or the reconnect/error counters, last changed (as first observed).
    fn phase_since(&self, phase: Phase, now: u64) -> u64 {
        let t = &self.telemetry;
        let marks = (
            t.reconnects.load(Ordering::Relaxed),
            t.transient_errors.load(Ordering::Relaxed),
        );
        let Ok(mut tr) = self.tracker.lock() else {
            return now;
        };
        if tr.phase != Some(phase) || tr.marks != marks {
            *tr = Tracker {
                phase: Some(phase),
                marks,
                since_ms: now,
            };
        }
        tr.since_ms
    }
}

/// A phase's name as shown in STATUS and metrics.
pub fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Starting => "starting",
        Phase::Streaming => "streaming",
        Phase::Reconnecting => "reconnecting",
        Phase::Stopping => "stopping",
    }
}

// ---------------------------------------------------------------------------------------------
// sd-notify

/// The watchdog period systemd asks for, with sd_watchdog_enabled(3)'s meaning: `WATCHDOG_USEC`,
/// unless `WATCHDOG_PID` names another process.
pub fn watchdog_from_env() -> Option<Duration> {
    watchdog_period(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn watchdog_period(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok()?;
    if usec == 0 || pid.is_some_and(|p| p.trim().parse::<u32>().ok() != Some(me)) {
        return None;
    }
    Some(Duration::from_micros(usec))
}

/// Sends sd-notify messages; a failure is logged once, never returned.
#[derive(Debug)]
struct Notifier {
    enabled: bool,
    failed: AtomicBool,
}

impl Notifier {
    fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            failed: AtomicBool::new(false),
        }
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(false, states) {
            if !self.failed.swap(true, Ordering::Relaxed) {
                tracing::warn!(error = %e, "cannot notify systemd through NOTIFY_SOCKET; going on without it");
            }
        }
    }
}

/// One line for `STATUS=`: phase, position or GTID set, changes indexed, lag. Capped at
/// [`STATUS_MAX`] characters (a long GTID set is cut with `…`); it never holds a DSN.
pub fn status_line(t: &Telemetry, stopping: bool) -> String {
    let checkpoint = t.checkpoint();
    let at = if checkpoint.is_empty() {
        "no checkpoint yet".to_string()
    } else {
        format!("at {}", checkpoint.replace(['\n', '\r'], ""))
    };
    let rows = t.rows_indexed.load(Ordering::Relaxed);
    let phase = if stopping { Phase::Stopping } else { t.phase() };
    let line = match phase {
        Phase::Starting => {
            format!("starting: connecting and checking; {rows} changes indexed; {at}")
        }
        Phase::Reconnecting => format!(
            "reconnecting after {} transient failures; {rows} changes indexed; {at}",
            t.transient_errors.load(Ordering::Relaxed)
        ),
        Phase::Streaming => {
            let lag = t
                .lag_seconds()
                .map(|l| format!("; lag {l} s"))
                .unwrap_or_default();
            let tls = t.tls();
            let tls = if tls.is_empty() {
                tls
            } else {
                format!("; tls {tls}")
            };
            format!("streaming: {rows} changes indexed{lag}{tls}; {at}")
        }
        Phase::Stopping => format!("stopping: draining; {rows} changes indexed; {at}"),
    };
    cap(line)
}

fn cap(mut line: String) -> String {
    if line.chars().count() > STATUS_MAX {
        line = line.chars().take(STATUS_MAX - 1).collect();
        line.push('…');
    }
    line
}

// ---------------------------------------------------------------------------------------------
// The service around the pipeline

async fn next_signal(
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) -> &'static str {
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// How a run under [`Service::run`] ended.
#[derive(Debug)]
pub enum Ended<E> {
    /// The pipeline returned.
    Finished(Result<(), E>),
    /// The drain did not finish within [`DRAIN_DEADLINE`], or a second signal came.
    Abandoned,
}

/// Signals, notifications and liveness around one stream.
#[derive(Debug)]
pub struct Service {
    telemetry: Arc<Telemetry>,
    health: Arc<Health>,
    notifier: Notifier,
    watchdog: Option<Duration>,
    stopping_sent: AtomicBool,
}

impl Service {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`; `heartbeat` is the interval
    /// at which the source was asked to send heartbeats.
    pub fn from_env(telemetry: Arc<Telemetry>, heartbeat: Duration) -> Arc<Service> {
        let watchdog = watchdog_from_env();
        Arc::new(Service {
            health: Arc::new(Health::new(telemetry.clone(), watchdog, heartbeat)),
            telemetry,
            notifier: Notifier::from_env(),
            watchdog,
            stopping_sent: AtomicBool::new(false),
        })
    }

    /// The liveness rule in force (for `/healthz`).
    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// Runs `pipeline` until it returns, with SIGTERM/SIGINT cancelling `cancel`, sd-notify kept
    /// current, and the drain bounded by [`DRAIN_DEADLINE`].
    pub async fn run<E: fmt::Display>(
        self: &Arc<Self>,
        cancel: CancellationToken,
        pipeline: impl Future<Output = Result<(), E>>,
    ) -> Ended<E> {
        if let Some(period) = self.watchdog {
            tracing::info!(
                watchdog_ms = period.as_millis() as u64,
                flush_stall_ms = self.health.flush_stall.as_millis() as u64,
                "systemd watchdog enabled"
            );
        }
        let force = CancellationToken::new();
        // The tasks log inside the caller's span (the stream's server id).
        let signals = tokio::spawn(
            self.clone()
                .on_signals(cancel.clone(), force.clone())
                .in_current_span(),
        );
        let done = CancellationToken::new();
        let notify = tokio::spawn(
            self.clone()
                .notify_loop(cancel.clone(), done.clone())
                .in_current_span(),
        );
        let deadline = async {
            cancel.cancelled().await;
            tokio::select! {
                _ = tokio::time::sleep(DRAIN_DEADLINE) => {}
                _ = force.cancelled() => {}
            }
        };
        let ended = tokio::select! {
            r = pipeline => Ended::Finished(r),
            _ = deadline => Ended::Abandoned,
        };
        done.cancel();
        let _ = notify.await;
        signals.abort();
        self.finish(&ended);
        ended
    }

    /// Shutdown begins: STOPPING=1 with a STATUS line, once.
    fn begin_stopping(&self) {
        self.health.mark_stopping();
        self.telemetry.set_phase(Phase::Stopping);
        if !self.stopping_sent.swap(true, Ordering::Relaxed) {
            let line = status_line(&self.telemetry, true);
            self.notifier
                .send(&[NotifyState::Stopping, NotifyState::Status(&line)]);
        }
    }

    /// The first SIGTERM/SIGINT starts the drain; a second one abandons it.
    async fn on_signals(self: Arc<Self>, cancel: CancellationToken, force: CancellationToken) {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::warn!("cannot install signal handlers; stop with SIGKILL only");
            return;
        };
        let first = next_signal(&mut term, &mut int).await;
        tracing::info!(
            signal = first,
            "stopping: draining, flushing and checkpointing"
        );
        self.begin_stopping();
        cancel.cancel();
        let second = next_signal(&mut term, &mut int).await;
        tracing::warn!(
            signal = second,
            "second signal: exiting without the final checkpoint (the next start resumes from the last one)"
        );
        force.cancel();
    }

    /// Keeps READY, STATUS and WATCHDOG current until `done`.
    async fn notify_loop(self: Arc<Self>, cancel: CancellationToken, done: CancellationToken) {
        let tick = self
            .watchdog
            .map_or(Duration::from_secs(1), |w| {
                (w / 8).min(Duration::from_secs(1))
            })
            .max(Duration::from_millis(50));
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut ready, mut alive) = (false, true);
        let mut last_status = String::new();
        let mut next_ping = Instant::now();
        loop {
            tokio::select! {
                _ = done.cancelled() => return,
                _ = interval.tick() => {}
            }
            let stopping = cancel.is_cancelled();
            let line = status_line(&self.telemetry, stopping);
            if !ready && !stopping && self.telemetry.phase() == Phase::Streaming {
                ready = true;
                self.notifier
                    .send(&[NotifyState::Ready, NotifyState::Status(&line)]);
                last_status.clone_from(&line);
            } else if line != last_status {
                self.notifier.send(&[NotifyState::Status(&line)]);
                last_status = line;
            }
            let verdict = self.health.check();
            match (&verdict, alive) {
                (Err(why), true) => tracing::warn!(
                    reason = %why,
                    "pipeline not alive: withholding the watchdog ping (systemd restarts the service if this lasts)"
                ),
                (Ok(()), false) => tracing::info!("pipeline alive again"),
                _ => {}
            }
            alive = verdict.is_ok();
            if let Some(period) = self.watchdog {
                if alive && Instant::now() >= next_ping {
                    self.notifier.send(&[NotifyState::Watchdog]);
                    next_ping = Instant::now() + period / 2;
                }
            }
        }
    }

    /// The last word: STOPPING (if not yet said) and a final STATUS.
    fn finish<E: fmt::Display>(&self, ended: &Ended<E>) {
        self.begin_stopping();
        let t = &self.telemetry;
        let checkpoint = t.checkpoint();
        let at = if checkpoint.is_empty() {
            "no checkpoint".to_string()
        } else {
            checkpoint.replace(['\n', '\r'], "")
        };
        let rows = t.rows_indexed.load(Ordering::Relaxed);
        let line = match ended {
            Ended::Finished(Ok(())) => format!("stopped at {at}; {rows} changes indexed"),
            Ended::Finished(Err(e)) => format!("failed: {e}"),
            Ended::Abandoned => {
                format!("stopped without a final checkpoint; last one {at}; {rows} changes indexed")
            }
        };
        self.notifier.send(&[NotifyState::Status(&cap(line))]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::FlushReport;

    fn health(watchdog_secs: u64) -> (Arc<Telemetry>, Health) {
        let t = Arc::new(Telemetry::new());
        let h = Health::new(
            t.clone(),
            Some(Duration::from_secs(watchdog_secs)),
            Duration::from_secs(5),
        );
        (t, h)
    }

    #[test]
    fn a_flush_in_flight_past_half_the_watchdog_period_is_stuck() {
        let (t, h) = health(20);
        t.set_phase(Phase::Streaming);
        let now = now_ms();
        t.last_source_activity.store(now, Ordering::Relaxed);
        t.flush_started.store(now - 9_000, Ordering::Relaxed);
        assert_eq!(h.check_at(now), Ok(()));
        t.flush_started.store(now - 11_000, Ordering::Relaxed);
        assert_eq!(h.check_at(now), Err(Unhealthy::FlushStuck { secs: 11 }));
        t.flush_ends(None, Duration::ZERO);
        assert_eq!(h.check_at(now), Ok(()));
    }

    #[test]
    fn streaming_needs_source_activity_or_commits_within_three_heartbeats() {
        let (t, h) = health(10);
        let start = now_ms();
        t.set_phase(Phase::Streaming);
        assert_eq!(h.check_at(start), Ok(()), "just entered streaming");
        assert_eq!(
            h.check_at(start + 16_000),
            Err(Unhealthy::SourceQuiet { secs: 16 })
        );
        t.last_source_activity
            .store(start + 14_000, Ordering::Relaxed);
        assert_eq!(h.check_at(start + 16_000), Ok(()));
        let report = FlushReport {
            rows: 1,
            checkpoint: "binlog.000001:4",
            last_event_time: None,
        };
        t.flush_ends(Some(report), Duration::ZERO);
        let committed = t.last_checkpoint_at.load(Ordering::Relaxed);
        assert_eq!(h.check_at(committed + 14_000), Ok(()));
    }

    #[test]
    fn reconnecting_is_alive_while_attempts_move_and_stuck_when_they_do_not() {
        let (t, h) = health(10);
        let start = now_ms();
        t.set_phase(Phase::Reconnecting);
        assert_eq!(h.check_at(start), Ok(()));
        assert_eq!(h.check_at(start + 100_000), Ok(()));
        t.reconnects.fetch_add(1, Ordering::Relaxed);
        assert_eq!(h.check_at(start + 110_000), Ok(()), "an attempt moved");
        assert!(matches!(
            h.check_at(start + 240_000),
            Err(Unhealthy::StartStuck { secs: 130, .. })
        ));
    }

    #[test]
    fn stopping_only_fails_on_a_stuck_flush() {
        let (t, h) = health(10);
        let start = now_ms();
        t.set_phase(Phase::Streaming);
        h.check_at(start).unwrap();
        h.mark_stopping();
        assert_eq!(h.check_at(start + 60_000), Ok(()));
        t.flush_started.store(start, Ordering::Relaxed);
        assert!(h.check_at(start + 6_000).is_err());
    }

    #[test]
    fn watchdog_period_follows_sd_watchdog_enabled() {
        let d = Some(Duration::from_secs(4));
        assert_eq!(watchdog_period(Some("4000000"), None, 7), d);
        assert_eq!(watchdog_period(Some("4000000"), Some("7"), 7), d);
        assert_eq!(watchdog_period(Some("4000000"), Some("8"), 7), None);
        assert_eq!(watchdog_period(Some("0"), None, 7), None);
        assert_eq!(watchdog_period(Some("x"), None, 7), None);
        assert_eq!(watchdog_period(None, Some("7"), 7), None);
    }

    #[test]
    fn status_is_one_capped_line_with_position_count_and_lag() {
        let t = Telemetry::new();
        t.set_phase(Phase::Streaming);
        let long = format!("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-{}", "9".repeat(300));
        let report = FlushReport {
            rows: 12,
            checkpoint: &long,
            last_event_time: Some(100),
        };
        t.flush_ends(Some(report), Duration::ZERO);
        t.source_activity(103);
        let line = status_line(&t, false);
        assert!(
            line.starts_with("streaming: 12 changes indexed; lag 3 s; at 3E11"),
            "{line}"
        );
        assert_eq!(line.chars().count(), STATUS_MAX);
        assert!(line.ends_with('…'));
        assert!(status_line(&t, true).starts_with("stopping: draining"));
        t.set_tls("source verify-ca, index plaintext".into());
        let line = status_line(&t, false);
        assert!(
            line.starts_with(
                "streaming: 12 changes indexed; lag 3 s; tls source verify-ca, index plaintext; at 3E11"
            ),
            "{line}"
        );
    }

    #[test]
    fn journal_stream_must_name_this_stderr() {
        assert!(journal_stream_matches("8:12345", 8, 12345));
        assert!(!journal_stream_matches("8:12345", 8, 1));
        assert!(!journal_stream_matches("junk", 8, 12345));
    }
}

//! Prometheus metrics and `/healthz` on `--metrics-addr`.
//!
//! # Invariants
//! - Every value is read from [`Telemetry`] at scrape time by a collector: nothing here counts
//!   on its own, so the metrics can never disagree with STATUS or the logs.
//! - The exposition format is written by `prometheus-client` (Prometheus text format 0.0.4),
//!   never by hand; this module only carries bytes over a deliberately tiny HTTP/1.1 responder
//!   (GET, one request per connection, bounded request size and time).
//! - `/healthz` applies the same [`Health`] rule as the systemd watchdog: 200 when alive, 503
//!   with the reason otherwise.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::service::{phase_name, Health};
use crate::telemetry::{now_ms, Phase, Telemetry, FLUSH_BUCKETS};

/// Largest request head read; anything longer is refused.
const MAX_REQUEST: usize = 8 * 1024;
/// A client has this long to send its request and read the answer.
const IO_DEADLINE: Duration = Duration::from_secs(5);

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[error(
    "--metrics-addr {addr}: cannot listen: {source} (choose a free address, e.g. 127.0.0.1:9187)"
)]
pub struct MetricsError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

/// The metrics registry of one stream: every metric is prefixed `bintrail_` and labelled with
/// the stream's `server_id`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    health: Arc<Health>,
}

impl Metrics {
    /// The metrics of the pipeline behind `telemetry`.
    pub fn new(telemetry: Arc<Telemetry>, health: Arc<Health>, server_id: u32) -> Metrics {
        let labels = [("server_id".into(), server_id.to_string().into())];
        let mut registry = Registry::with_prefix_and_labels("bintrail", labels.into_iter());
        registry.register_collector(Box::new(Pipeline {
            telemetry,
            health: health.clone(),
        }));
        Metrics { registry, health }
    }

    /// The Prometheus text exposition of every metric, now.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; a collector error would be a bug, shown as such.
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            out = format!("# encoding failed: {e}\n");
        }
        out
    }
}

/// Reads the pipeline's [`Telemetry`] at scrape time.
#[derive(Debug)]
struct Pipeline {
    telemetry: Arc<Telemetry>,
    health: Arc<Health>,
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(enc.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, value: f64) -> fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(enc.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for Pipeline {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let t = &self.telemetry;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        counter(
            &mut enc,
            "events_received",
            "Binlog events received from the source, heartbeats included.",
            load(&t.events_received),
        )?;
        counter(
            &mut enc,
            "changes_indexed",
            "Row changes committed to the change index by this process.",
            load(&t.rows_indexed),
        )?;
        counter(
            &mut enc,
            "flushes",
            "Index transactions committed (rows and checkpoint together).",
            load(&t.flushes),
        )?;
        counter(
            &mut enc,
            "reconnects",
            "Reconnects after transient failures.",
            load(&t.reconnects),
        )?;

        let mut errors = enc.encode_descriptor(
            "errors",
            "Errors by kind: transient (retried from the checkpoint) or definite (the stream stopped).",
            None,
            MetricType::Counter,
        )?;
        for (kind, value) in [
            ("transient", load(&t.transient_errors)),
            ("definite", load(&t.definite_errors)),
        ] {
            ConstCounter::new(value).encode(errors.encode_family(&[("kind", kind)])?)?;
        }

        let buckets: Vec<(f64, u64)> = FLUSH_BUCKETS
            .iter()
            .zip(&t.flush_buckets)
            .map(|(bound, count)| (*bound, load(count)))
            .collect();
        let count = t.flush_buckets.iter().map(load).sum();
        let sum = load(&t.flush_micros_total) as f64 / 1e6;
        enc.encode_descriptor(
            "flush_duration_seconds",
            "Duration of committed index transactions.",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;

        let now = now_ms();
        let checkpoint_at = load(&t.last_checkpoint_at);
        if checkpoint_at > 0 {
            let age = now.saturating_sub(checkpoint_at) as f64 / 1e3;
            gauge(
                &mut enc,
                "checkpoint_age_seconds",
                "Seconds since this process last committed a checkpoint.",
                age,
            )?;
        }
        if let Some(lag) = t.lag_seconds() {
            gauge(
                &mut enc,
                "replication_lag_seconds",
                "The source's clock minus the binlog time of the last indexed event.",
                lag as f64,
            )?;
        }
        let alive = if self.health.check().is_ok() {
            1.0
        } else {
            0.0
        };
        gauge(
            &mut enc,
            "alive",
            "1 while the pipeline is alive by the watchdog's rule (as /healthz), else 0.",
            alive,
        )?;

        let current = t.phase();
        let mut phases = enc.encode_descriptor(
            "phase",
            "1 for the pipeline's current phase, 0 for the others.",
            None,
            MetricType::Gauge,
        )?;
        for phase in [
            Phase::Starting,
            Phase::Streaming,
            Phase::Reconnecting,
            Phase::Stopping,
        ] {
            let value = i64::from(phase == current);
            ConstGauge::new(value)
                .encode(phases.encode_family(&[("phase", phase_name(phase))])?)?;
        }
        Ok(())
    }
}

/// Binds `addr` (before the stream starts, so a taken port fails at once).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, MetricsError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError { addr, source })
}

/// Serves `/metrics` and `/healthz` until `cancel`.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, cancel: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(metrics_addr = %addr, "serving /metrics and /healthz");
    }
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(IO_DEADLINE, answer(stream, &metrics)).await;
                });
            }
            Err(e) => {
                tracing::debug!(error = %e, "metrics: accept failed");
                // Out of file descriptors and the like: do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one request head and writes one response.
async fn answer(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_REQUEST {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "request too large\n",
            )
            .await;
        }
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if method != "GET" {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n",
        )
        .await;
    }
    match path {
        "/metrics" => {
            let body = metrics.render();
            let content_type = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
            respond(&mut stream, "200 OK", content_type, &body).await
        }
        "/healthz" => match metrics.health.check() {
            Ok(()) => respond(&mut stream, "200 OK", "text/plain", "alive\n").await,
            Err(why) => {
                let body = format!("not alive: {why}\n");
                respond(&mut stream, "503 Service Unavailable", "text/plain", &body).await
            }
        },
        _ => {
            respond(
                &mut stream,
                "404 Not Found",
                "text/plain",
                "try /metrics or /healthz\n",
            )
            .await
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::FlushReport;

    #[test]
    fn exposition_has_every_metric_with_the_server_id_label() {
        let t = Arc::new(Telemetry::new());
        let health = Arc::new(Health::new(t.clone(), None, Duration::from_secs(5)));
        t.set_phase(Phase::Streaming);
        t.source_activity(110);
        let report = FlushReport {
            rows: 5,
            checkpoint: "binlog.000001:400",
            last_event_time: Some(100),
        };
        t.flush_ends(Some(report), Duration::from_millis(30));
        t.transient_errors.fetch_add(2, Ordering::Relaxed);
        let text = Metrics::new(t, health, 42).render();
        for line in [
            "bintrail_events_received_total{server_id=\"42\"} 1",
            "bintrail_changes_indexed_total{server_id=\"42\"} 5",
            "bintrail_flushes_total{server_id=\"42\"} 1",
            "bintrail_errors_total{server_id=\"42\",kind=\"transient\"} 2",
            "bintrail_errors_total{server_id=\"42\",kind=\"definite\"} 0",
            "bintrail_flush_duration_seconds_bucket{server_id=\"42\",le=\"0.025\"} 0",
            "bintrail_flush_duration_seconds_bucket{server_id=\"42\",le=\"0.05\"} 1",
            "bintrail_flush_duration_seconds_bucket{server_id=\"42\",le=\"+Inf\"} 1",
            "bintrail_flush_duration_seconds_count{server_id=\"42\"} 1",
            "bintrail_replication_lag_seconds{server_id=\"42\"} 10.0",
            "bintrail_alive{server_id=\"42\"} 1.0",
            "bintrail_phase{server_id=\"42\",phase=\"streaming\"} 1",
            "bintrail_phase{server_id=\"42\",phase=\"stopping\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(text.contains("bintrail_checkpoint_age_seconds{server_id=\"42\"}"));
    }
}

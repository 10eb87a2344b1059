//! `bintrail stream`: validate, run the pipeline under the service layer (signals, sd-notify,
//! optional metrics) until SIGTERM/SIGINT or an error, and exit with the status the outcome
//! deserves (0 stopped cleanly, 1 transient failure or abandoned drain, 3 definite error).

use std::sync::Arc;

use bintrail::config::StreamConfig;
use bintrail::dry_run::{self, Summary};
use bintrail::metrics::{self, Metrics};
use bintrail::service::{Ended, Service, DRAIN_DEADLINE};
use bintrail::stream::{self, StreamError};
use bintrail::telemetry::Telemetry;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{runtime, Failure, Kind};
use crate::cli::{StatusFormat, StreamCmd};

/// Validates the flags, then runs the stream until it is stopped (or, with `--dry-run`, reads to
/// the end of binlog and prints what it found).
pub fn run(cmd: StreamCmd) -> Result<(), Failure> {
    let metrics_addr = cmd.metrics_addr;
    let (dry_run, format) = (cmd.dry_run, cmd.format);
    let config = StreamConfig::new(cmd.into_args()).map_err(Failure::usage)?;
    if dry_run {
        return dry(&config, format);
    }
    runtime()?.block_on(async move {
        let cancel = CancellationToken::new();
        let telemetry = Arc::new(Telemetry::new());
        let service = Service::from_env(telemetry.clone(), config.heartbeat_interval);
        // Metrics keep answering during the drain; they stop with the process.
        let metrics_stop = CancellationToken::new();
        if let Some(addr) = metrics_addr {
            let listener = metrics::bind(addr)
                .await
                .map_err(|e| Failure::new(Kind::Runtime, e))?;
            let metrics = Arc::new(Metrics::new(
                telemetry.clone(),
                service.health(),
                config.server_id,
            ));
            tokio::spawn(metrics::serve(listener, metrics, metrics_stop.clone()));
        }
        // Every line the pipeline logs carries the stream's server id (SERVER_ID in journald).
        let span = tracing::info_span!("stream", server_id = config.server_id);
        let pipeline = stream::run(&config, cancel.clone(), telemetry);
        let ended = service.run(cancel, pipeline).instrument(span).await;
        metrics_stop.cancel();
        match ended {
            Ended::Finished(Ok(())) => {
                tracing::info!(server_id = config.server_id, "stopped");
                Ok(())
            }
            Ended::Finished(Err(e)) => Err(failure(e)),
            Ended::Abandoned => Err(Failure::new(
                Kind::Runtime,
                format!(
                    "the drain did not finish (within {} s, or a second signal came): stopped without the final checkpoint; the next start resumes from the last one",
                    DRAIN_DEADLINE.as_secs()
                ),
            )),
        }
    })
}

/// A stream error as the exit status it deserves: 1 when a restart may help, 3 when not.
fn failure(e: StreamError) -> Failure {
    let kind = if e.is_transient() {
        Kind::Runtime
    } else {
        Kind::Definite
    };
    Failure::new(kind, e)
}

/// `--dry-run`: read and decode to the end of binlog, print the summary; Ctrl-C stops early.
fn dry(config: &StreamConfig, format: StatusFormat) -> Result<(), Failure> {
    let summary = runtime()?.block_on(async {
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.cancel();
            }
        });
        dry_run::run(config, cancel, Arc::new(Telemetry::new())).await
    });
    let summary = summary.map_err(failure)?;
    let text = match format {
        StatusFormat::Json => {
            serde_json::to_string_pretty(&summary).map_err(|e| Failure::new(Kind::Runtime, e))?
        }
        StatusFormat::Table => render(&summary),
    };
    println!("{text}");
    Ok(())
}

fn render(s: &Summary) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "dry run (nothing written) from {} ({}) to {}\n{} changes from {} binlog events in {:.3} s: {:.0} changes/s, {} bytes of JSON\n",
        s.from,
        s.start,
        s.to,
        s.changes,
        s.events,
        s.seconds,
        s.changes_per_second(),
        s.json_bytes
    );
    let width = s.tables.keys().map(String::len).max().unwrap_or(0).max(5);
    let _ = writeln!(
        out,
        "{:<width$}  {:>10}  {:>10}  {:>10}",
        "TABLE", "INSERTS", "UPDATES", "DELETES"
    );
    for (table, c) in &s.tables {
        let _ = writeln!(
            out,
            "{table:<width$}  {:>10}  {:>10}  {:>10}",
            c.inserts, c.updates, c.deletes
        );
    }
    for ddl in &s.ddl {
        let _ = writeln!(out, "ddl marker: {ddl}");
    }
    out.trim_end().to_string()
}

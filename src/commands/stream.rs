//! `bintrail stream`: validate, run the pipeline under the service layer (signals, sd-notify,
//! optional metrics) until SIGTERM/SIGINT or an error, and exit with the status the outcome
//! deserves (0 stopped cleanly, 1 transient failure or abandoned drain, 3 definite error).

use std::sync::Arc;

use bintrail::config::StreamConfig;
use bintrail::metrics::{self, Metrics};
use bintrail::service::{Ended, Service, DRAIN_DEADLINE};
use bintrail::stream;
use bintrail::telemetry::Telemetry;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{runtime, Failure, Kind};
use crate::cli::StreamCmd;

/// Validates the flags, then runs the stream until it is stopped.
pub fn run(cmd: StreamCmd) -> Result<(), Failure> {
    let metrics_addr = cmd.metrics_addr;
    let config = StreamConfig::new(cmd.into_args()).map_err(Failure::usage)?;
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
            Ended::Finished(Err(e)) => {
                let kind = if e.is_transient() {
                    Kind::Runtime
                } else {
                    Kind::Definite
                };
                Err(Failure::new(kind, e))
            }
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

//! `bintrail stream`: validate, run the pipeline until SIGTERM/SIGINT or an error, exit with the
//! status the outcome deserves (0 stopped cleanly, 1 transient failure, 3 definite error).

use bintrail::config::StreamConfig;
use std::sync::Arc;

use bintrail::stream;
use bintrail::telemetry::{Phase, Telemetry};
use tokio_util::sync::CancellationToken;

use super::{runtime, Failure, Kind};
use crate::cli::StreamCmd;

/// Validates the flags, then runs the stream until it is stopped.
pub fn run(cmd: StreamCmd) -> Result<(), Failure> {
    let config = StreamConfig::new(cmd.into_args()).map_err(Failure::usage)?;
    runtime()?.block_on(async move {
        let cancel = CancellationToken::new();
        let telemetry = Arc::new(Telemetry::new());
        tokio::spawn(stop_on_signal(cancel.clone(), telemetry.clone()));
        let outcome = stream::run(&config, cancel, telemetry).await;
        match outcome {
            Ok(()) => {
                tracing::info!(server_id = config.server_id, "stopped");
                Ok(())
            }
            Err(e) => {
                let kind = if e.is_transient() {
                    Kind::Runtime
                } else {
                    Kind::Definite
                };
                Err(Failure::new(kind, e))
            }
        }
    })
}

/// Cancels the stream on the first SIGTERM or SIGINT.
async fn stop_on_signal(cancel: CancellationToken, telemetry: Arc<Telemetry>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop with SIGKILL only");
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(
        signal = name,
        "stopping: draining, flushing and checkpointing"
    );
    telemetry.set_phase(Phase::Stopping);
    cancel.cancel();
}

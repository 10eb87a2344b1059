//! `bintrail stream`.

use bintrail::config::StreamConfig;

use super::{Failure, Kind};
use crate::cli::StreamCmd;

/// Validates the flags, then runs the stream until it is stopped.
pub fn run(cmd: StreamCmd) -> Result<(), Failure> {
    let config = StreamConfig::new(cmd.into_args()).map_err(Failure::usage)?;
    tracing::info!(server_id = config.server_id, source = %config.source, "configuration valid");
    Err(Failure::new(
        Kind::Runtime,
        "streaming is not implemented yet",
    ))
}

//! Test support: throwaway servers started by the project's own scripts, the built binary, and
//! polling with a deadline. Nothing here mocks a database or the replication protocol.

#![allow(dead_code)]

pub mod proxy;
pub mod server;
pub mod stream;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use server::{Flavor, TestServer};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh, unique name for this process (schemas, temp dirs, server ids).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh temp directory (removed by its owner).
pub fn temp_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join("bintrail-tests")
        .join(unique(prefix));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Runs the built `bintrail` binary to completion with a clean BINTRAIL_* environment.
pub fn bintrail(args: &[&str]) -> Output {
    bintrail_cmd(args)
        .stdin(Stdio::null())
        .output()
        .expect("run bintrail")
}

/// A `bintrail` command with every inherited `BINTRAIL_*` variable removed.
pub fn bintrail_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bintrail"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("BINTRAIL_") {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("JOURNAL_STREAM").env_remove("NOTIFY_SOCKET");
    cmd.args(args);
    cmd
}

/// Polls `condition` until it returns `Some` or `deadline` passes; then panics with `what` and
/// the last state `describe` reports.
pub async fn wait_until<T, F, Fut>(deadline: Duration, what: &str, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        let last = match condition().await {
            Ok(v) => return v,
            Err(state) => state,
        };
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}; last state: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

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

/// A fresh temp directory (removed by its owner, or by the next run once this process is gone).
pub fn temp_dir(prefix: &str) -> PathBuf {
    let root = std::env::temp_dir().join("bintrail-tests");
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(|| sweep_dead_runs(&root));
    let dir = root.join(unique(prefix));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Removes what earlier test processes left under `root`: a test that fails (or an owner
/// that forgets) leaves its directory, and thousands of them piled up over a day of runs.
/// A directory is named `<prefix>_<pid>_<n>` by [`unique`]; it is removed only when no
/// process with that pid is running, so parallel test binaries keep theirs.
fn sweep_dead_runs(root: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name.rsplit('_').nth(1).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
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

/// Standard base64 with padding, as the index stores binary values; written here so that test
/// expectations never reuse the product's encoder.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn test_base64_matches_the_standard_alphabet_and_padding() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(&[0xff, 0xfe, 0x00, 0x01]), "//4AAQ==");
    assert_eq!(base64(&[0x00, 0xff, 0x80, 0xfe]), "AP+A/g==");
}

/// One test per MariaDB index server, 10.11 and 11.8, from one body: the index-side
/// capabilities are tested on both (README, "Supported index servers"). Expands to a module
/// `$name` with the tests `mariadb` (10.11) and `mariadb118`, each binding `$flavor` to its
/// index flavor before awaiting `$body`. Each flavor's index server is the shared
/// `TestServer::index_of` one, so a second version costs one server start, not one per test.
#[macro_export]
macro_rules! on_each_mariadb_index {
    ($(#[doc = $doc:literal])* $name:ident, |$flavor:ident| $body:expr) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mariadb() {
                let $flavor = $crate::support::Flavor::Mariadb;
                $body.await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mariadb118() {
                let $flavor = $crate::support::Flavor::Mariadb118;
                $body.await
            }
        }
    };
}

//! `bintrail index`: validate, index the files, show progress on a terminal, print a summary.
//!
//! The progress line is hand-written (a dozen lines, `\r` and a clear-to-end-of-line) rather than
//! a progress-bar crate: it needs bytes, changes/s and an ETA, nothing a new dependency tree pays
//! for. It is drawn only when stderr is a terminal; the summary line is printed either way.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bintrail::files::{self, FilesConfig, FilesError, Progress, Summary};
use bintrail::fill_gap::{self, FillConfig, FillError, Filled};
use bintrail::filter::Filter;
use bintrail::index::gaps::GapsError;
use bintrail::source::file::list_dir;

use super::{runtime, Failure, Kind};
use crate::cli::IndexCmd;

/// How often the progress line is redrawn.
const REFRESH: Duration = Duration::from_millis(250);

/// Validates the flags, lists the files and indexes them (or the gap of `--fill-gap`).
pub fn run(cmd: IndexCmd) -> Result<(), Failure> {
    let (server_id, gap_id) = (cmd.server_id, cmd.fill_gap);
    let config = config(cmd)?;
    let progress = Arc::new(Progress::default());
    let draw = std::io::stderr().is_terminal();
    runtime()?.block_on(async {
        let ticker = draw.then(|| tokio::spawn(draw_progress(progress.clone())));
        let outcome = match gap_id {
            Some(gap_id) => {
                let fill = FillConfig {
                    files: config.clone(),
                    server_id,
                    gap_id,
                };
                fill_gap::run(&fill, progress.clone())
                    .await
                    .map(|f| render_fill(&f, &config))
                    .map_err(|e| fill_failure(e, &progress))
            }
            None => files::run(&config, progress.clone())
                .await
                .map(|s| render(&s, &config, config.server_id))
                .map_err(|e| failure(e, &progress)),
        };
        if let Some(ticker) = ticker {
            ticker.abort();
            eprint!("\r\x1b[K");
        }
        println!("{}", outcome?);
        Ok(())
    })
}

/// The validated configuration: files listed, filter checked, DSNs parsed.
fn config(cmd: IndexCmd) -> Result<FilesConfig, Failure> {
    let (index, source_tls, source) = cmd
        .index
        .into_config(cmd.source_dsn.as_deref())
        .map_err(Failure::usage)?;
    let filter =
        Filter::new(cmd.schemas.as_deref(), cmd.tables.as_deref()).map_err(Failure::usage)?;
    if cmd.batch_size == 0 {
        return Err(Failure::usage("--batch-size must be at least 1"));
    }
    let policy = bintrail::policy::Policy::new(cmd.policy.into_args()).map_err(Failure::usage)?;
    let files: Vec<PathBuf> = match &cmd.binlog_dir {
        Some(dir) => list_dir(dir, cmd.from.as_deref(), cmd.to.as_deref())
            .map_err(|e| Failure::usage(format!("--binlog-dir: {e}")))?,
        None => cmd.files,
    };
    if files.is_empty() {
        let dir = cmd
            .binlog_dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        return Err(Failure::usage(format!(
            "--binlog-dir {dir}: no binlog files (NAME.NNNNNN) in it{}",
            if cmd.from.is_some() || cmd.to.is_some() {
                " between --from and --to"
            } else {
                ""
            }
        )));
    }
    Ok(FilesConfig {
        index,
        server_id: cmd.server_id.unwrap_or(0),
        filter,
        batch_size: cmd.batch_size as usize,
        files,
        source: source.map(|dsn| (dsn, source_tls)),
        policy,
        range: None,
        dry_run: cmd.dry_run,
    })
}

/// Redraws the progress line until aborted.
async fn draw_progress(progress: Arc<Progress>) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(REFRESH);
    loop {
        tick.tick().await;
        let line = progress_line(&progress, started.elapsed());
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}\x1b[K");
        let _ = err.flush();
    }
}

/// `123.4/500.0 MiB  24%  41230 changes/s  ETA 0:42`.
fn progress_line(progress: &Progress, elapsed: Duration) -> String {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let (done, total) = (
        progress.bytes.load(Ordering::Relaxed),
        progress.total_bytes.load(Ordering::Relaxed),
    );
    let secs = elapsed.as_secs_f64().max(0.001);
    let rate = progress.changes.load(Ordering::Relaxed) as f64 / secs;
    let percent = if total > 0 {
        done as f64 * 100.0 / total as f64
    } else {
        0.0
    };
    let eta = if done > 0 && total > done {
        let left = (total - done) as f64 * secs / done as f64;
        format!("{}:{:02}", left as u64 / 60, left as u64 % 60)
    } else {
        "-".to_string()
    };
    format!(
        "{:.1}/{:.1} MiB  {percent:.0}%  {rate:.0} changes/s  ETA {eta}",
        mib(done),
        mib(total)
    )
}

/// The summary line; with `--dry-run`, the changes per table and the range.
fn render(s: &Summary, config: &FilesConfig, server_id: u32) -> String {
    if s.dry_run {
        return render_dry_run(s, server_id);
    }
    let _ = config;
    format!(
        "indexed {} changes ({} new, {} already in the index) from {} binlog files ({} bytes) in {:.1} s under stream {}, through {}{}",
        s.changes,
        s.inserted,
        s.changes.saturating_sub(s.inserted),
        s.files,
        s.bytes,
        s.seconds,
        server_id,
        s.through,
        s.identity
            .as_deref()
            .map(|i| format!(" (source {i})"))
            .unwrap_or_default()
    )
}

/// A failure with the exit status it deserves: a broken file or a refusal is definite (3).
fn failure(e: FilesError, progress: &Progress) -> Failure {
    let kind = match &e {
        FilesError::Stream(s) if s.is_transient() => Kind::Runtime,
        FilesError::Source(s) if s.is_transient() => Kind::Runtime,
        FilesError::Task(_) => Kind::Runtime,
        _ => Kind::Definite,
    };
    let changes = progress.changes.load(Ordering::Relaxed);
    Failure::new(
        kind,
        format!("{e} (changes of complete transactions before this point are in the index; {changes} decoded)"),
    )
}

/// `--dry-run`: what would be indexed, per table, and where.
fn render_dry_run(s: &Summary, server_id: u32) -> String {
    let mut out = format!(
        "dry run, nothing written: would index {} changes from {} binlog files ({} bytes, decoded in {:.1} s) under stream {}",
        s.changes, s.files, s.bytes, s.seconds, server_id
    );
    match &s.first {
        Some(first) => out.push_str(&format!(", from {first} through {}", s.through)),
        None => out.push_str(&format!(", none kept (read through {})", s.through)),
    }
    for (table, [ins, upd, del]) in &s.tables {
        out.push_str(&format!(
            "\n  {table}: {ins} inserts, {upd} updates, {del} deletes"
        ));
    }
    out
}

/// The outcome of `--fill-gap`.
fn render_fill(f: &Filled, config: &FilesConfig) -> String {
    let files = f.files.join(", ");
    match (&f.already_filled, &f.summary) {
        (Some(at), _) => format!(
            "gap #{} of stream {} (from {} to {}) was already filled at {at} UTC from {files}; nothing to do",
            f.gap_id, f.server_id, f.from, f.to
        ),
        (None, Some(s)) if s.dry_run => format!(
            "gap #{} of stream {} (from {} to {}) is covered by {files}; {}",
            f.gap_id,
            f.server_id,
            f.from,
            f.to,
            render_dry_run(s, f.server_id)
        ),
        (None, Some(s)) => format!(
            "filled gap #{} of stream {} (from {} to {}) from {files}: {}",
            f.gap_id,
            f.server_id,
            f.from,
            f.to,
            render(s, config, f.server_id)
        ),
        (None, None) => format!("gap #{}: nothing was read", f.gap_id),
    }
}

/// A fill failure: a refusal (files that do not cover the gap, another stream, no such gap)
/// is definite; reading and writing fail as `index` does.
fn fill_failure(e: FillError, progress: &Progress) -> Failure {
    match e {
        FillError::Files(e) => failure(e, progress),
        FillError::Gap(GapsError::Index(e)) => Failure::new(Kind::Runtime, e),
        other => Failure::new(Kind::Definite, other),
    }
}

//! `bintrail rotate`: retention by hourly partitions, once or `--every` interval until
//! SIGTERM/SIGINT.

use std::time::Duration;

use bintrail::archive::store::Store;
use bintrail::history::open_index;
use bintrail::history::rotate::{self, Archived, Plan};
use bintrail::time::{format_duration, format_utc, now, parse_duration};
use tokio_util::sync::CancellationToken;

use super::{runtime, Failure, Kind};
use crate::cli::RotateCmd;

/// Rotates once, or every `--every` until stopped.
pub fn run(cmd: RotateCmd) -> Result<(), Failure> {
    let retain = cmd
        .retain
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| Failure::usage(format!("--retain: {e}")))?;
    if retain.is_some_and(|r| r < 3_600) {
        return Err(Failure::usage(
            "--retain must be at least 1h: retention drops whole hourly partitions",
        ));
    }
    let every = cmd
        .every
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| Failure::usage(format!("--every: {e}")))?;
    if every.is_some_and(|e| e < 60) {
        return Err(Failure::usage("--every must be at least 1m"));
    }
    if cmd.ahead > 8_000 {
        return Err(Failure::usage(
            "--ahead must be at most 8000 hours (MySQL allows 8192 partitions per table)",
        ));
    }
    let archive = match cmd.archive {
        Some(location) => Some(archive_store(&location, retain.is_some(), cmd.dry_run)?),
        None => None,
    };
    let (index, _, _) = cmd.index.into_config(None).map_err(Failure::usage)?;
    let (ahead, dry_run) = (cmd.ahead, cmd.dry_run);
    runtime()?.block_on(async move {
        let cancel = CancellationToken::new();
        if every.is_some() {
            tokio::spawn(cancel_on_signal(cancel.clone()));
        }
        loop {
            let mut conn = open_index(&index).await.map_err(super::open_failure)?;
            let at = now();
            let request = rotate::Request {
                now: at,
                retain,
                ahead,
                dry_run,
                archive: archive.as_ref(),
            };
            let result = rotate::rotate(&mut conn, &index.database, request).await;
            // Ended cleanly on failure too, so the server releases the rotate lock at once.
            let _ = conn.disconnect().await;
            let rotation = result.map_err(|e| {
                let kind = if e.is_transient() {
                    Kind::Runtime
                } else {
                    Kind::Definite
                };
                Failure::new(kind, e)
            })?;
            if let (Some(dir), Some(archived)) = (&archive, &rotation.archived) {
                report_archive(&index.database, dir, archived, dry_run);
            }
            report(&index.database, &rotation.plan, dry_run);
            let Some(every) = every else { return Ok(()) };
            tracing::info!(next_in = %format_duration(every), "rotated");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(every)) => {}
                _ = cancel.cancelled() => return Ok(()),
            }
        }
    })
}

/// The `--archive` store (a directory is created when missing, not on a dry run); refuses an
/// archive without a retention.
fn archive_store(location: &str, retain: bool, dry_run: bool) -> Result<Store, Failure> {
    if !retain {
        return Err(Failure::usage(
            "--archive needs --retain: it archives the hours that retention drops",
        ));
    }
    let store = Store::open(location).map_err(Failure::usage)?;
    if !dry_run {
        store.create_root().map_err(|e| {
            Failure::new(
                Kind::Runtime,
                format!("--archive {location}: cannot create the directory: {e}"),
            )
        })?;
    }
    Ok(store)
}

/// Prints what went (or would go) into the archive.
fn report_archive(database: &str, store: &Store, archived: &Archived, dry_run: bool) {
    let rows: u64 = archived.files.iter().map(|f| f.rows).sum();
    let n = archived.files.len();
    if dry_run {
        println!(
            "{database}.binlog_events: would archive {rows} change(s) into {n} file(s) under {}",
            store.location()
        );
        for f in &archived.files {
            println!("  {} ({} changes)", f.path, f.rows);
        }
    } else {
        println!(
            "{database}.binlog_events: archived {rows} change(s) into {n} file(s), {} bytes, under {}",
            archived.bytes,
            store.location()
        );
    }
    if let Some((name, held, recorded)) = &archived.kept {
        println!(
            "{database}.binlog_events: kept partition {name} and later ones: it holds {held} change(s), {recorded} are archived (changes arrived for its hours meanwhile); the next rotate archives the rest"
        );
    }
}

/// Prints what the plan added and dropped (or would).
fn report(database: &str, plan: &Plan, dry_run: bool) {
    let (add, drop) = if dry_run {
        ("would add", "would drop")
    } else {
        ("added", "dropped")
    };
    let names = plan.added_names();
    match names.as_slice() {
        [] => println!("{database}.binlog_events: partitions ahead are in place"),
        [one] => println!("{database}.binlog_events: {add} partition {one}"),
        [first, .., last] => println!(
            "{database}.binlog_events: {add} {} hourly partitions, {first} to {last}",
            names.len()
        ),
    }
    match (plan.cutoff, plan.drop.as_slice()) {
        (None, _) => {}
        (Some(cutoff), []) => println!(
            "{database}.binlog_events: no partition is wholly older than {} UTC",
            format_utc(cutoff)
        ),
        (Some(cutoff), parts) => {
            let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
            println!(
                "{database}.binlog_events: {drop} {} partition(s) wholly older than {} UTC: {}",
                parts.len(),
                format_utc(cutoff),
                names.join(", ")
            );
        }
    }
}

/// Cancels `--every` on the first SIGTERM or SIGINT (the current rotation finishes first).
async fn cancel_on_signal(cancel: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop with SIGKILL only");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stopping after the current rotation");
    cancel.cancel();
}

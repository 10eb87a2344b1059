//! `bintrail status`: every stream's checkpoint, progress, lag and gaps, and the index's size;
//! with `--stale-after`, a monitoring check (exit 1 when a checkpoint is too old).

use std::fmt::Write;

use bintrail::archive::read::Extent;
use bintrail::history::status::{self, Status, StreamStatus};
use bintrail::history::{open_index, open_source};
use bintrail::time::{format_age, format_duration, format_utc, parse_duration};

use super::{runtime, Failure, Kind};
use crate::cli::{StatusCmd, StatusFormat};

/// Reads the status, prints it, and fails when a stream is stale.
pub fn run(cmd: StatusCmd) -> Result<(), Failure> {
    let (index, tls, source) = cmd
        .index
        .into_config(cmd.source_dsn.as_deref())
        .map_err(Failure::usage)?;
    let stale_after = cmd
        .stale_after
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| Failure::usage(format!("--stale-after: {e}")))?;
    let status = runtime()?.block_on(async {
        let mut conn = open_index(&index).await.map_err(super::open_failure)?;
        let mut status = status::load(&mut conn, &index.database)
            .await
            .map_err(|e| Failure::new(Kind::Runtime, e))?;
        let archive =
            super::open_archive(cmd.archive.archive.as_deref(), &mut conn, &index.database).await?;
        status.archive = archive.map(|a| a.extent());
        let _ = conn.disconnect().await;
        if let Some(dsn) = &source {
            let (mut src, info) = open_source(dsn, &tls).await.map_err(super::open_failure)?;
            status::add_lag(&mut src, &info, &mut status)
                .await
                .map_err(|e| Failure::new(Kind::Runtime, e))?;
            let _ = src.disconnect().await;
        }
        Ok::<_, Failure>(status)
    })?;
    match cmd.format {
        StatusFormat::Table => print!("{}", render(&status)),
        StatusFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&status).unwrap_or_default()
        ),
    }
    match stale_after {
        Some(_) if status.streams.is_empty() => Err(Failure::new(
            Kind::Runtime,
            format!("stale: no stream has a checkpoint in {}", status.database),
        )),
        Some(limit) => {
            let stale: Vec<String> = status::stale(&status, limit)
                .iter()
                .map(|s| {
                    format!(
                        "stream {}'s checkpoint is {} old",
                        s.server_id,
                        format_age(s.checkpoint_age_seconds.max(0) as u64)
                    )
                })
                .collect();
            if stale.is_empty() {
                Ok(())
            } else {
                Err(Failure::new(
                    Kind::Runtime,
                    format!(
                        "stale: {} (--stale-after {})",
                        stale.join(", "),
                        format_duration(limit)
                    ),
                ))
            }
        }
        None => Ok(()),
    }
}

/// The human form: one block per stream, then the tables.
fn render(status: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "index {} at {} UTC", status.database, status.now);
    if status.streams.is_empty() {
        out.push_str("\nno stream has written a checkpoint yet\n");
    }
    for s in &status.streams {
        render_stream(&mut out, s);
    }
    let _ = writeln!(
        out,
        "\n{:<14} {:>12} {:>12} {:>12} {:>10}",
        "TABLE", "ROWS (EST.)", "DATA", "INDEXES", "PARTITIONS"
    );
    for t in &status.tables {
        let _ = writeln!(
            out,
            "{:<14} {:>12} {:>12} {:>12} {:>10}",
            t.table,
            t.rows,
            bytes(t.data_bytes),
            bytes(t.index_bytes),
            t.partitions
        );
    }
    if let Some(a) = &status.archive {
        render_archive(&mut out, a);
    }
    out
}

/// The archive's block: where, how much, which time range; then per table.
fn render_archive(out: &mut String, a: &Extent) {
    let when = |t: Option<i64>| t.map_or("-".to_string(), format_utc);
    let rows = |r: Option<u64>| r.map_or("?".to_string(), |r| r.to_string());
    let _ = writeln!(out, "\narchive {} (files from the {})", a.root, a.source);
    let _ = writeln!(
        out,
        "  {} file(s), {}, {} change(s), from {} to {} UTC",
        a.files,
        bytes(a.bytes),
        rows(a.rows),
        when(a.first_time),
        when(a.last_time)
    );
    if a.tables.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n{:<30} {:>6} {:>12} {:>10}  {:<19}  {:<19}",
        "ARCHIVED TABLE", "FILES", "SIZE", "CHANGES", "FROM (UTC)", "TO (UTC)"
    );
    for t in &a.tables {
        let _ = writeln!(
            out,
            "{:<30} {:>6} {:>12} {:>10}  {:<19}  {:<19}",
            format!("{}.{}", t.schema, t.table),
            t.files,
            bytes(t.bytes),
            rows(t.rows),
            format_utc(t.first_time),
            format_utc(t.last_time)
        );
    }
}

fn render_stream(out: &mut String, s: &StreamStatus) {
    let _ = writeln!(out, "\nstream {} ({} mode)", s.server_id, s.mode);
    let _ = writeln!(out, "  checkpoint       {}", s.checkpoint);
    if s.mode == "gtid" {
        let _ = writeln!(out, "  binlog position  {}", s.position);
    }
    if s.rows_done > 0 {
        let _ = writeln!(
            out,
            "  rows done        {} (inside the transaction at the checkpoint)",
            s.rows_done
        );
    }
    let _ = writeln!(out, "  events indexed   {}", s.events_indexed);
    let _ = writeln!(
        out,
        "  last event       {}",
        s.last_event_time
            .as_deref()
            .map_or("none".to_string(), |t| format!("{t} UTC"))
    );
    let _ = writeln!(
        out,
        "  last checkpoint  {} UTC ({} ago)",
        s.last_checkpoint,
        format_age(s.checkpoint_age_seconds.max(0) as u64)
    );
    if let Some(lag) = &s.lag {
        let amount = |v: Option<u64>, unit: &str| {
            v.map_or("? ".to_string() + unit, |n| format!("{n} {unit}"))
        };
        let _ = writeln!(
            out,
            "  lag              {}, {}, {} s behind {}",
            amount(lag.bytes, "bytes"),
            amount(lag.gtids, "GTIDs"),
            lag.seconds,
            lag.source_position
        );
    }
    if s.gaps.is_empty() {
        let _ = writeln!(out, "  gaps             none");
    }
    for g in &s.gaps {
        let filled = match (&g.filled_at, &g.filled_from) {
            (Some(at), from) => format!(
                "; filled {at} UTC from {}",
                from.as_deref().unwrap_or("binlog files")
            ),
            (None, _) => String::new(),
        };
        let _ = writeln!(
            out,
            "  gap #{}           detected {} UTC: skipped from {} to {} ({}){filled}",
            g.gap_id, g.detected_at, g.from, g.to, g.reason
        );
    }
    for p in &s.policies {
        let rules = if p.policy.is_empty() {
            "none (every column captured as is)".to_string()
        } else {
            p.policy.trim_end().replace('\n', "; ")
        };
        let _ = writeln!(
            out,
            "  policy {:<10} since {} UTC (last start {} UTC): {}",
            p.policy_version, p.first_seen, p.last_seen, rules
        );
    }
}

/// `1.5 MiB`.
fn bytes(n: u64) -> String {
    let mut v = n as f64;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if v < 1024.0 {
            return if unit == "B" {
                format!("{n} B")
            } else {
                format!("{v:.1} {unit}")
            };
        }
        v /= 1024.0;
    }
    format!("{v:.1} TiB")
}

//! The cold tier at scale: a synthetic archive of a year of hours, written with bintrail's own
//! archive writer and recorded in a fresh index's manifest as `rotate --archive` records them,
//! and timed one-key queries over it.
//!
//!   bench archive-synth --index-dsn DSN --dir DIR --changes K --expect FILE [--threads T]
//!       K changes of the backlog's mix (per 10: 5 inserts of new keys, 3 updates and 2 deletes
//!       of those) over the 8,760 hours of 2025: `bench.orders` 90 % in one file per hour, three
//!       more tables 10 % in one file per day. Row images as the index writer stores them (JSON
//!       text in MySQL's key order). Files are written in parallel (T threads, default 4 per
//!       core: small files wait on fsync) through `archive::store::Store` and `archive::writer::ParquetFile`, then
//!       recorded with `archive::manifest::record`. FILE gets the probe key's changes as
//!       `query --format json` prints them; the JSON names the probe key and its day.
//!   bench archive-query --bintrail BIN --index-dsn DSN --archive DIR --schema S --table T
//!                       --pk K --expect FILE [--since T --until T]
//!       times `bintrail query … --format json`, parses its `files read` line and checks the
//!       output against FILE's lines within the time range (full row images).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use bintrail::archive::layout::FileKey;
use bintrail::archive::manifest::{self, FileRecord};
use bintrail::archive::store::Store;
use bintrail::archive::writer::{ArchiveRow, ParquetFile};
use bintrail::history::query::from_archive;
use bintrail::time::format_utc;
use mysql_async::prelude::Queryable;
use serde_json::{json, Value as J};

use crate::{conn, get, Res};

/// 2025-01-01 00:00:00 UTC: the archived year.
const YEAR_START: i64 = 1_735_689_600;
const HOURS: u64 = 8_760;
const DAYS: u64 = 365;
/// The stream every synthetic change belongs to.
const STREAM: u32 = 4242;
const SOURCE_UUID: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
/// Rows per transaction (and binlog event) of the synthetic history.
const TXN_ROWS: u64 = 100;
/// The tables changed once a day, besides `orders` every hour.
const DAILY: [&str; 3] = ["customers", "payments", "shipments"];

/// One file to write: `count` changes of `table` from the table's change `first` on.
#[derive(Debug, Clone)]
struct Spec {
    table: &'static str,
    hour: u64,
    first: u64,
    count: u64,
    first_event_id: u64,
}

/// The first change index of slot `s` of `slots` when `n` changes are spread evenly.
fn slot_start(s: u64, slots: u64, n: u64) -> u64 {
    (u128::from(s) * u128::from(n)).div_ceil(u128::from(slots)) as u64
}

/// Every file of the archive, in time order, with `event_id`s assigned in that order (as the
/// index assigns them while streaming).
fn plan(changes: u64) -> Vec<Spec> {
    let daily = changes / 30;
    let orders = changes - daily * DAILY.len() as u64;
    let mut out = Vec::new();
    let mut next_id = 1;
    for h in 0..HOURS {
        let mut add = |table: &'static str, slot: u64, slots: u64, n: u64| {
            let (first, end) = (slot_start(slot, slots, n), slot_start(slot + 1, slots, n));
            if end > first {
                out.push(Spec {
                    table,
                    hour: h,
                    first,
                    count: end - first,
                    first_event_id: next_id,
                });
                next_id += end - first;
            }
        };
        add("orders", h, HOURS, orders);
        if h % 24 == 12 {
            for t in DAILY {
                add(t, h / 24, DAYS, daily);
            }
        }
    }
    out
}

/// The row of key `id` as inserted: the backlog's `bench.orders` columns.
fn inserted(id: u64) -> Vec<(&'static str, String)> {
    let status = ["new", "pending", "backorder"][(id % 3) as usize];
    let cents = id % 100_000;
    let micros = id * 1001;
    let placed = format_utc(1_795_665_600 + (micros / 1_000_000) as i64);
    let hash = format!("{:016x}", id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    vec![
        ("id", id.to_string()),
        ("customer_id", (id % 100_003).to_string()),
        ("status", format!("\"{status}\"")),
        ("amount", format!("\"{}.{:02}\"", cents / 100, cents % 100)),
        (
            "placed_at",
            format!("\"{placed}.{:06}\"", micros % 1_000_000),
        ),
        (
            "note",
            format!("\"order {id}: {}\"", hash.repeat(1 + (id % 8) as usize)),
        ),
    ]
}

/// The row of key `id` after the backlog's update (`status = 'paid'`, amount + 1.25, one
/// second later, `' +paid'` appended to the note).
fn updated(id: u64) -> Vec<(&'static str, String)> {
    let mut row = inserted(id);
    let cents = id % 100_000 + 125;
    let micros = id * 1001 + 1_000_000;
    let placed = format_utc(1_795_665_600 + (micros / 1_000_000) as i64);
    row[2].1 = "\"paid\"".into();
    row[3].1 = format!("\"{}.{:02}\"", cents / 100, cents % 100);
    row[4].1 = format!("\"{placed}.{:06}\"", micros % 1_000_000);
    let note = row[5].1.trim_end_matches('"').to_string();
    row[5].1 = format!("{note} +paid\"");
    row
}

/// A row image as MySQL prints a JSON column: keys by length, then bytes; `", "` and `": "`.
fn json_text(mut row: Vec<(&'static str, String)>) -> String {
    row.sort_by(|a, b| (a.0.len(), a.0).cmp(&(b.0.len(), b.0)));
    let fields: Vec<String> = row.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
    format!("{{{}}}", fields.join(", "))
}

/// Change `i` of `table`, in the backlog's mix: per 10 changes, 5 inserts of new keys, updates
/// of the first 3 of them, deletes of the other 2.
fn change(spec: &Spec, i: u64) -> ArchiveRow {
    let k = i - spec.first;
    let event_id = spec.first_event_id + k;
    let (block, j) = (i / 10, i % 10);
    let (kind, id) = match j {
        0..=4 => (1, block * 5 + j + 1),
        5..=7 => (2, block * 5 + j - 4),
        _ => (3, block * 5 + j - 4),
    };
    let (before, after, changed) = match kind {
        1 => (None, Some(json_text(inserted(id))), None),
        2 => (
            Some(json_text(inserted(id))),
            Some(json_text(updated(id))),
            Some(r#"["status", "amount", "placed_at", "note"]"#.to_string()),
        ),
        _ => (Some(json_text(inserted(id))), None, None),
    };
    let txn = event_id.div_ceil(TXN_ROWS);
    ArchiveRow {
        event_id,
        stream_id: STREAM,
        binlog_file: format!("binlog.{:06}", 1 + event_id / 1_000_000),
        start_pos: 4 + (txn % 10_000) * 65_536,
        end_pos: 4 + (txn % 10_000) * 65_536 + 60_000,
        row_in_event: ((event_id - 1) % TXN_ROWS) as u32,
        event_time: YEAR_START + (spec.hour * 3_600 + k * 3_600 / spec.count) as i64,
        gtid: Some(format!("{SOURCE_UUID}:{txn}")),
        connection_id: Some(8),
        schema: "bench".into(),
        table: spec.table.into(),
        event_type: kind,
        pk_values: id.to_string(),
        changed_columns: changed,
        row_before: before,
        row_after: after,
        schema_version: 1,
        policy_version: 0,
    }
}

/// Writes the file of `spec` through the store, as rotate does: staged, written, fsynced, put
/// in place. Returns its manifest row and hands the probe key's changes to `probe`.
fn write_file(
    store: &Store,
    rt: &tokio::runtime::Runtime,
    spec: &Spec,
    probe: &dyn Fn(&ArchiveRow),
) -> Res<FileRecord> {
    let hour_start = YEAR_START + (spec.hour * 3_600) as i64;
    let key = FileKey {
        stream_id: STREAM,
        schema: "bench".into(),
        table: spec.table.into(),
        hour_start,
        first_event_id: spec.first_event_id,
    };
    let path = key.path();
    let rows: Vec<ArchiveRow> = (spec.first..spec.first + spec.count)
        .map(|i| change(spec, i))
        .collect();
    rows.iter().for_each(probe);
    let staged = store.stage(&path)?;
    let mut file = ParquetFile::create_for(staged.path(), spec.count)?;
    file.write_group(&rows)?;
    let written = file.finish()?;
    rt.block_on(store.commit(staged, &path, written.bytes, &written.sha256))?;
    Ok(FileRecord::of(
        &key,
        bintrail::index::ddl::partition_name(hour_start),
        written,
    ))
}

/// `bench archive-synth`.
pub async fn synth(m: HashMap<String, String>) -> Res<J> {
    let changes: u64 = get(&m, "changes").parse()?;
    let threads: usize = match m.get("threads") {
        Some(t) => t.parse()?,
        // Four per core: with files of a few KiB, the fsyncs' latency bounds the rate, not CPU.
        None => 4 * std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let store = Store::open(get(&m, "dir"))?;
    store.create_root()?;
    let specs = plan(changes);
    // The probe: the first key inserted in the middle of the year (inserted, then updated).
    let mid = specs
        .iter()
        .find(|s| s.table == "orders" && s.hour == HOURS / 2)
        .ok_or("no file in the middle of the year (too few changes)")?;
    let probe_id = mid.first.div_ceil(10) * 5 + 1;
    let probe_key = probe_id.to_string();
    let expected: Mutex<Vec<ArchiveRow>> = Mutex::new(Vec::new());
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let records: Vec<Res<Vec<FileRecord>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| -> Res<Vec<FileRecord>> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    let probe = |r: &ArchiveRow| {
                        if r.table == "orders" && r.pk_values == probe_key {
                            expected.lock().unwrap().push(r.clone());
                        }
                    };
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(spec) = specs.get(i) else {
                            return Ok(out);
                        };
                        out.push(write_file(&store, &rt, spec, &probe)?);
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("a writer thread panicked".into()))
            })
            .collect()
    });
    let write_s = started.elapsed().as_secs_f64();
    let mut files = Vec::new();
    for r in records {
        files.extend(r?);
    }
    files.sort_by_key(|f| f.min_event_id);
    let recording = Instant::now();
    let database = mysql_async::Opts::from_url(get(&m, "index-dsn"))?
        .db_name()
        .ok_or("--index-dsn names no database")?
        .to_string();
    let mut c = conn(get(&m, "index-dsn")).await?;
    for batch in files.chunks(1_000) {
        c.query_drop("START TRANSACTION").await?;
        for f in batch {
            manifest::record(&mut c, &database, f).await?;
        }
        c.query_drop("COMMIT").await?;
    }
    c.disconnect().await?;
    let record_s = recording.elapsed().as_secs_f64();
    let seconds = started.elapsed().as_secs_f64();

    let mut expected = expected.into_inner()?;
    expected.sort_by_key(|r| r.event_id);
    let day = format_utc(expected.first().map_or(0, |r| r.event_time))[..10].to_string();
    let mut lines = String::new();
    for r in expected.iter().cloned() {
        lines.push_str(&serde_json::to_string(&from_archive(r)?)?);
        lines.push('\n');
    }
    std::fs::write(get(&m, "expect"), lines)?;
    let rows: u64 = files.iter().map(|f| f.rows).sum();
    let table_files = files.iter().filter(|f| f.table == "orders").count();
    Ok(json!({
        "changes": rows, "files": files.len(), "table_files": table_files,
        "bytes": files.iter().map(|f| f.bytes).sum::<u64>(),
        "tables": 1 + DAILY.len(), "hours": HOURS, "threads": threads,
        "seconds": seconds, "write_s": write_s, "record_s": record_s,
        "rows_per_s": rows as f64 / seconds,
        "probe": {"schema": "bench", "table": "orders", "pk": probe_key, "day": day,
                  "changes": expected.len()},
    }))
}

/// The figures of `files read: N of M (F footer(s) opened; row groups read: a of b; B byte(s);
/// K matching change(s))`.
fn read_stats(stderr: &str) -> Option<[u64; 7]> {
    let line = stderr.lines().find_map(|l| l.split_once("files read: "))?.1;
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    nums.get(..7)?.try_into().ok()
}

/// `bench archive-query`.
pub fn query(m: HashMap<String, String>) -> Res<J> {
    let mut args: Vec<String> = [
        "query",
        "--index-dsn",
        get(&m, "index-dsn"),
        "--ssl-mode",
        "disabled",
        "--archive",
        get(&m, "archive"),
        "--schema",
        get(&m, "schema"),
        "--table",
        get(&m, "table"),
        "--pk",
        get(&m, "pk"),
        "--format",
        "json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for flag in ["since", "until"] {
        if let Some(v) = m.get(flag) {
            args.extend([format!("--{flag}"), v.clone()]);
        }
    }
    let started = Instant::now();
    let out = std::process::Command::new(get(&m, "bintrail"))
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()?;
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let in_range = |line: &&str| {
        let v: J = serde_json::from_str(line).unwrap_or(J::Null);
        let t = v["event_timestamp"].as_str().unwrap_or("");
        m.get("since").is_none_or(|s| t >= s.as_str())
            && m.get("until").is_none_or(|u| t <= u.as_str())
    };
    let expected_text = std::fs::read_to_string(get(&m, "expect"))?;
    let expected: Vec<J> = expected_text
        .lines()
        .filter(in_range)
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let got: Vec<J> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let stats = read_stats(&stderr);
    if stats.is_none() || !out.status.success() {
        eprintln!("bench archive-query: bintrail said: {stderr}");
    }
    let s = |i: usize| stats.map(|s| s[i]);
    Ok(json!({
        "seconds": seconds, "exit_code": out.status.code(),
        "files_read": s(0), "files": s(1), "footers": s(2), "groups_read": s(3), "groups": s(4),
        "bytes_read": s(5), "matched": s(6),
        "returned": got.len(), "expected": expected.len(), "exact": got == expected && !expected.is_empty(),
        "since": m.get("since"), "until": m.get("until"),
    }))
}

//! bintrail benchmark helper, driven by `scripts/bench.sh`. Each subcommand prints ONE JSON
//! object on stdout; the script collects them and `report` renders the markdown table + JSON.
//!
//!   bench stream-until --bintrail BIN --source-dsn DSN --index-dsn DSN --server-id ID
//!                      --target-gtid SET [--start-gtid SET] [--log FILE] [--timeout S]
//!       runs `bintrail stream` from spawn until stream_state covers SET; wall time, CPU, VmHWM.
//!   bench limit --index-dsn DSN --from TABLE --to TABLE --columns a,b,c [--load-data 1]
//!       copies TABLE's rows (as read back) into another table with 1,000-row INSERTs (or LOAD
//!       DATA LOCAL INFILE of 1,000 rows), one transaction each, all SQL built before the clock
//!       starts; rows/s.
//!   bench lag --bintrail BIN --source-dsn DSN --index-dsn DSN --server-id ID --rate R --duration S
//!       steady source writes while the stream runs; lag percentiles (see README).
//!   bench init-at --index-dsn DSN --days-ago D
//!       a fresh index database whose hourly partitions begin D days ago (the archive stage).
//!   bench report --dir DIR --out FILE
//!       reads DIR/*.json pieces, prints the markdown table, writes FILE.
//!   bench summary --out FILE RUN.json...
//!       min/median/max of every figure over several reports (`bench.sh --runs N`).
//!   bench archive-synth …, bench archive-query …
//!       the cold tier at scale: a year of synthetic archive and one-key queries over it
//!       (`archive.rs`).

mod archive;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Row, Value};
use serde_json::{json, Value as J};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const SESSION_SETUP: &str = "SET NAMES utf8mb4 COLLATE utf8mb4_bin, time_zone = '+00:00', \
     sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO'";

fn args() -> (String, HashMap<String, String>) {
    let mut it = std::env::args().skip(1);
    let cmd = it.next().unwrap_or_default();
    let mut m = HashMap::new();
    let mut files = 0;
    while let Some(k) = it.next() {
        if !k.starts_with("--") {
            // A positional argument (summary's report files): keyed by its place.
            m.insert(format!("#{files}"), k);
            files += 1;
            continue;
        }
        let k = k.trim_start_matches("--").to_string();
        let v = it.next().unwrap_or_default();
        m.insert(k, v);
    }
    (cmd, m)
}

fn get<'a>(m: &'a HashMap<String, String>, k: &str) -> &'a str {
    m.get(k).map(String::as_str).unwrap_or_else(|| {
        eprintln!("bench: missing --{k}");
        std::process::exit(2)
    })
}

async fn conn(dsn: &str) -> Res<Conn> {
    let mut c = Conn::new(Opts::from_url(dsn)?).await?;
    c.query_drop(SESSION_SETUP).await?;
    Ok(c)
}

/// A running `bintrail stream`, observed through /proc.
struct Bintrail {
    child: std::process::Child,
    pid: u32,
    started: Instant,
}

impl Bintrail {
    fn spawn(m: &HashMap<String, String>, extra: &[String]) -> Res<Bintrail> {
        let log = std::fs::File::create(m.get("log").map(String::as_str).unwrap_or("/dev/null"))?;
        let mut cmd = std::process::Command::new(get(m, "bintrail"));
        cmd.arg("stream")
            .args(["--source-dsn", get(m, "source-dsn")])
            .args(["--index-dsn", get(m, "index-dsn")])
            .args(["--server-id", get(m, "server-id")])
            .args([
                "--checkpoint-interval",
                "1",
                "--log-format",
                "text",
                "--ssl-mode",
                "disabled",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let started = Instant::now();
        let child = cmd.spawn()?;
        let pid = child.id();
        Ok(Bintrail {
            child,
            pid,
            started,
        })
    }

    /// (user s, sys s) from /proc/<pid>/stat.
    fn cpu(&self) -> (f64, f64) {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        let rest = stat.rsplit_once(") ").map(|x| x.1).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let tck: f64 = std::env::var("CLK_TCK")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100.0);
        let p = |i: usize| {
            f.get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
                / tck
        };
        (p(11), p(12)) // fields 14 and 15, counted from field 3 (state) = index 0
    }

    fn status_kb(&self, key: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    async fn stop(mut self) -> Res<Option<i32>> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.code());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok(None)
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// Polls stream_state (every 20 ms) until its gtid_set covers `target`. Returns the time from
/// spawn to that, and the time from spawn until `events_indexed` had grown by `expect_rows`
/// (rows in the index, possibly before the checkpoint names their transaction as complete).
async fn wait_covered_rows(
    idx: &mut Conn,
    bt: &mut Bintrail,
    server_id: &str,
    target: &str,
    timeout: Duration,
    expect_rows: Option<u64>,
) -> Res<(Duration, Option<Duration>)> {
    let base: u64 = idx
        .exec_first(
            "SELECT events_indexed FROM stream_state WHERE server_id = ?",
            (server_id,),
        )
        .await
        .ok()
        .flatten()
        .unwrap_or(0);
    let mut rows_at = None;
    loop {
        let got: Option<(Option<i64>, u64)> = idx
            .exec_first(
                "SELECT GTID_SUBSET(?, gtid_set), events_indexed FROM stream_state WHERE server_id = ?",
                (target, server_id),
            )
            .await
            .ok()
            .flatten();
        if let (Some((_, n)), Some(e), None) = (got, expect_rows, rows_at) {
            if n >= base + e {
                rows_at = Some(bt.started.elapsed());
            }
        }
        if let Some((Some(1), _)) = got {
            let t = bt.started.elapsed();
            return Ok((t, rows_at.or(expect_rows.map(|_| t))));
        }
        if !bt.alive() {
            return Err("bintrail stream exited before reaching the target".into());
        }
        if bt.started.elapsed() > timeout {
            return Err(format!("stream_state did not reach {target} within {timeout:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_covered(
    idx: &mut Conn,
    bt: &mut Bintrail,
    server_id: &str,
    target: &str,
    timeout: Duration,
) -> Res<Duration> {
    Ok(wait_covered_rows(idx, bt, server_id, target, timeout, None)
        .await?
        .0)
}

async fn stream_until(m: HashMap<String, String>) -> Res<J> {
    let target = get(&m, "target-gtid").to_string();
    let timeout = Duration::from_secs(
        m.get("timeout")
            .and_then(|v| v.parse().ok())
            .unwrap_or(3600),
    );
    let mut extra = vec![];
    if let Some(g) = m.get("start-gtid") {
        extra.extend(["--start-gtid".to_string(), g.clone()]);
    }
    let mut idx = conn(get(&m, "index-dsn")).await?;
    let mut bt = Bintrail::spawn(&m, &extra)?;
    let expect = m.get("expect-rows").and_then(|v| v.parse().ok());
    let (elapsed, rows_at) = wait_covered_rows(
        &mut idx,
        &mut bt,
        get(&m, "server-id"),
        &target,
        timeout,
        expect,
    )
    .await?;
    let (user, sys) = bt.cpu();
    let hwm = bt.status_kb("VmHWM:");
    let code = bt.stop().await?;
    Ok(
        json!({"seconds": elapsed.as_secs_f64(), "rows_in_index_s": rows_at.map(|d| d.as_secs_f64()), "cpu_user_s": user, "cpu_sys_s": sys,
              "vmhwm_kb": hwm, "exit_code": code}),
    )
}

async fn limit(m: HashMap<String, String>) -> Res<J> {
    let mut c = conn(get(&m, "index-dsn")).await?;
    let (from, to) = (get(&m, "from"), get(&m, "to"));
    let cols = get(&m, "columns");
    let batch: usize = m.get("batch").and_then(|v| v.parse().ok()).unwrap_or(1000);
    // Text protocol: every value comes back as the server prints it and goes in as a quoted
    // literal of those exact bytes (JSON re-parsed, DATETIME/DECIMAL converted by the server).
    let rows: Vec<Row> = c
        .query(format!("SELECT {cols} FROM {from} ORDER BY event_id"))
        .await?;
    let load = m.contains_key("load-data");
    let head = format!("INSERT INTO {to} ({cols}) VALUES ");
    let load_sql = format!(
        "LOAD DATA LOCAL INFILE 'bench' INTO TABLE {to} CHARACTER SET utf8mb4 \
         FIELDS TERMINATED BY X'09' ESCAPED BY X'5C' LINES TERMINATED BY X'0A' ({cols})"
    );
    let mut stmts = Vec::new();
    let mut bytes = 0usize;
    for chunk in rows.chunks(batch) {
        let mut s = Vec::with_capacity(head.len() + chunk.len() * 700);
        if load {
            for r in chunk {
                for j in 0..r.len() {
                    if j > 0 {
                        s.push(b'\t');
                    }
                    match &r[j] {
                        Value::NULL => s.extend_from_slice(b"\\N"),
                        Value::Bytes(b) => {
                            for &c in b {
                                match c {
                                    b'\\' => s.extend_from_slice(b"\\\\"),
                                    b'\t' => s.extend_from_slice(b"\\t"),
                                    b'\n' => s.extend_from_slice(b"\\n"),
                                    0 => s.extend_from_slice(b"\\0"),
                                    c => s.push(c),
                                }
                            }
                        }
                        v => s.extend_from_slice(v.as_sql(true).as_bytes()),
                    }
                }
                s.push(b'\n');
            }
        } else {
            s.extend_from_slice(head.as_bytes());
            for (i, r) in chunk.iter().enumerate() {
                if i > 0 {
                    s.push(b',');
                }
                s.push(b'(');
                for j in 0..r.len() {
                    if j > 0 {
                        s.push(b',');
                    }
                    let v: &Value = &r[j];
                    s.extend_from_slice(v.as_sql(false).as_bytes());
                }
                s.push(b')');
            }
        }
        bytes += s.len();
        stmts.push(s);
    }
    let n = rows.len();
    drop(rows);
    let t = Instant::now();
    for s in stmts {
        c.query_drop("START TRANSACTION").await?;
        if load {
            use futures_util::StreamExt;
            // Vec<u8> into the driver's Bytes by inference (no direct dependency on `bytes`).
            c.set_infile_handler(
                async move { Ok(futures_util::stream::iter([Ok(s.into())]).boxed()) },
            );
            c.query_drop(&load_sql).await?;
        } else {
            c.query_drop(String::from_utf8(s)?).await?;
        }
        c.query_drop("COMMIT").await?;
    }
    let secs = t.elapsed().as_secs_f64();
    let (size, on_disk) = table_bytes(&mut c, to).await?;
    let per_row = |b: u64| b as f64 / n.max(1) as f64;
    Ok(
        json!({"rows": n, "seconds": secs, "rows_per_s": n as f64 / secs, "sql_bytes": bytes,
              "table_bytes": size, "bytes_per_row": per_row(size),
              "disk_bytes": on_disk, "disk_bytes_per_row": per_row(on_disk)}),
    )
}

/// (data_length + index_length, bytes the table's files hold on disk). The second is read after
/// FLUSH TABLES ... FOR EXPORT has written every dirty page, so page compression has happened.
async fn table_bytes(c: &mut Conn, table: &str) -> Res<(u64, u64)> {
    c.query_drop(format!("ANALYZE TABLE {table}")).await?;
    c.query_drop("SET SESSION information_schema_stats_expiry = 0")
        .await?;
    let b: Option<u64> = c
        .exec_first(
            "SELECT CAST(SUM(data_length + index_length) AS UNSIGNED) FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = ?",
            (table,),
        )
        .await?;
    c.query_drop(format!("FLUSH TABLES {table} FOR EXPORT"))
        .await?;
    c.query_drop("UNLOCK TABLES").await?;
    let on_disk: Option<u64> = c
        .exec_first(
            "SELECT CAST(SUM(allocated_size) AS UNSIGNED) FROM information_schema.innodb_tablespaces \
             WHERE name = CONCAT(DATABASE(), '/', ?) OR name LIKE CONCAT(DATABASE(), '/', ?, '#p#%')",
            (table, table),
        )
        .await?;
    Ok((b.unwrap_or(0), on_disk.unwrap_or(0)))
}

async fn bytes(m: HashMap<String, String>) -> Res<J> {
    let mut c = conn(get(&m, "index-dsn")).await?;
    let t = get(&m, "table");
    let n: u64 = c
        .query_first(format!("SELECT COUNT(*) FROM {t}"))
        .await?
        .unwrap_or(0);
    let (b, on_disk) = table_bytes(&mut c, t).await?;
    let per_row = |b: u64| b as f64 / n.max(1) as f64;
    Ok(
        json!({"rows": n, "table_bytes": b, "bytes_per_row": per_row(b),
              "disk_bytes": on_disk, "disk_bytes_per_row": per_row(on_disk)}),
    )
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i]
}

async fn lag(m: HashMap<String, String>) -> Res<J> {
    let rate: u64 = get(&m, "rate").parse()?;
    let duration: f64 = get(&m, "duration").parse()?;
    let server_id = get(&m, "server-id").to_string();
    let mut src = Conn::new(Opts::from_url(get(&m, "source-dsn"))?).await?;
    let mut idx = conn(get(&m, "index-dsn")).await?;
    src.query_drop(
        "CREATE TABLE IF NOT EXISTS bench.lag_src (id BIGINT PRIMARY KEY, v INT NOT NULL, \
         note VARCHAR(200) NOT NULL, committed_at DATETIME(6) NOT NULL)",
    )
    .await?;
    // The index side's clock: the server's own time when each change row is inserted.
    idx.query_drop("CREATE TABLE IF NOT EXISTS bench_lag_seen (event_id BIGINT UNSIGNED PRIMARY KEY, seen DATETIME(6) NOT NULL)").await?;
    idx.query_drop("DROP TRIGGER IF EXISTS bench_lag_seen_trg")
        .await?;
    idx.query_drop(
        "CREATE TRIGGER bench_lag_seen_trg AFTER INSERT ON binlog_events FOR EACH ROW \
         INSERT INTO bench_lag_seen VALUES (NEW.event_id, SYSDATE(6))",
    )
    .await?;
    let before: String = src
        .query_first("SELECT @@gtid_executed")
        .await?
        .unwrap_or_default();
    let mut bt = Bintrail::spawn(&m, &[])?;
    wait_covered(
        &mut idx,
        &mut bt,
        &server_id,
        &before,
        Duration::from_secs(600),
    )
    .await?;

    // Steady writer: every 10 ms one autocommit INSERT of rate/100 rows, NOW(6) = its start.
    let per_tick = (rate / 100).max(1);
    let ticks = (duration * 100.0).round() as u64;
    let mut iv = tokio::time::interval(Duration::from_millis(10));
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut id = 0u64;
    let t0 = Instant::now();
    for _ in 0..ticks {
        iv.tick().await;
        let mut s = String::from("INSERT INTO bench.lag_src VALUES ");
        for k in 0..per_tick {
            if k > 0 {
                s.push(',');
            }
            id += 1;
            s.push_str(&format!(
                "({id},{},'lag row {id} padding padding padding padding',NOW(6))",
                id % 1000
            ));
        }
        src.query_drop(&s).await?;
    }
    let write_secs = t0.elapsed().as_secs_f64();
    let after: String = src
        .query_first("SELECT @@gtid_executed")
        .await?
        .unwrap_or_default();
    let hwm_before_wait = bt.status_kb("VmHWM:");
    wait_covered(
        &mut idx,
        &mut bt,
        &server_id,
        &after,
        Duration::from_secs(600),
    )
    .await?;
    let _ = bt.stop().await?;
    idx.query_drop("DROP TRIGGER IF EXISTS bench_lag_seen_trg")
        .await?;

    let lags: Vec<Option<i64>> = idx
        .query(
            "SELECT TIMESTAMPDIFF(MICROSECOND, \
               CAST(JSON_UNQUOTE(JSON_EXTRACT(e.row_after, '$.committed_at')) AS DATETIME(6)), s.seen) \
             FROM binlog_events e JOIN bench_lag_seen s ON s.event_id = e.event_id \
             WHERE e.schema_name = 'bench' AND e.table_name = 'lag_src' AND e.event_type = 1",
        )
        .await?;
    let mut v: Vec<f64> = lags
        .into_iter()
        .flatten()
        .map(|x| x as f64 / 1000.0)
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Ok(
        json!({"rows_written": id, "rows_measured": v.len(), "write_seconds": write_secs,
              "achieved_rows_per_s": id as f64 / write_secs,
              "lag_ms_p50": pct(&v, 50.0), "lag_ms_p99": pct(&v, 99.0), "lag_ms_max": v.last().copied(),
              "lag_ms_min": v.first().copied(), "vmhwm_kb": hwm_before_wait}),
    )
}

fn load(dir: &str, name: &str) -> J {
    std::fs::read_to_string(format!("{dir}/{name}.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(J::Null)
}

fn f(v: &J) -> Option<f64> {
    v.as_f64()
}

fn fmt_num(x: Option<f64>, unit: &str) -> String {
    match x {
        Some(x) if x.is_finite() => {
            if x >= 100.0 {
                format!("{:.0}{unit}", x)
            } else {
                format!("{:.2}{unit}", x)
            }
        }
        _ => "n/a".into(),
    }
}

/// Bytes in B, KiB or MiB, whichever reads best.
fn fmt_bytes(b: Option<f64>) -> String {
    match b {
        Some(b) if b >= 1_048_576.0 => fmt_num(Some(b / 1_048_576.0), " MiB"),
        Some(b) if b >= 1_024.0 => fmt_num(Some(b / 1_024.0), " KiB"),
        b => fmt_num(b, " B"),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 && a.is_finite() && b.is_finite() => format!("{:.2}", a / b),
        _ => "".into(),
    }
}

fn report(m: HashMap<String, String>) -> Res<J> {
    let dir = get(&m, "dir");
    let meta = load(dir, "meta");
    let n = f(&meta["changes"]).unwrap_or(0.0);
    let e2e = load(dir, "e2e");
    let lim = load(dir, "limit");
    let est = load(dir, "established");
    let bytes = load(dir, "bytes");
    let mb = load(dir, "mysqlbinlog");
    let dry = load(dir, "dryrun");
    let py = load(dir, "pyrepl");
    let big = load(dir, "bigtxn");
    let lag = load(dir, "lag");
    let tt = load(dir, "timetravel");
    let files = load(dir, "files");
    let files_dry = load(dir, "files_dryrun");
    let mb_files = load(dir, "mysqlbinlog_files");
    let arch = load(dir, "archive");
    let huge = load(dir, "huge");
    let lim_load = load(dir, "limit_load");
    let est_load = load(dir, "established_load");
    let nouk = load(dir, "nouk");
    let nouk_load = load(dir, "nouk_load");
    let synth = load(dir, "archive_scale");
    let key_year = load(dir, "archive_query");
    let key_day = load(dir, "archive_query_day");
    let key_layout = load(dir, "archive_query_layout");

    let e2e_rate = f(&e2e["seconds"]).map(|s| n / s);
    let cpu = match (f(&e2e["cpu_user_s"]), f(&e2e["cpu_sys_s"])) {
        (Some(u), Some(s)) => Some(u + s),
        _ => None,
    };
    let mb_rate = f(&mb["seconds"]).map(|s| f(&mb["changes"]).unwrap_or(n) / s);
    let py_rate = f(&py["seconds"]).map(|s| f(&py["rows"]).unwrap_or(0.0) / s);
    let dry_rate = f(&dry["seconds"]).map(|s| f(&dry["changes"]).unwrap_or(0.0) / s);
    let mib = |v: &J| f(v).map(|k| k / 1024.0);
    let mut rows: Vec<(String, String, String, String)> = vec![];
    let mut push = |a: &str, b: String, c: String, d: String| rows.push((a.into(), b, c, d));
    push(
        "end-to-end changes/s (bintrail vs index-side limit)",
        fmt_num(e2e_rate, ""),
        fmt_num(
            f(&lim["rows_per_s"]),
            " (limit: 1,000-row INSERTs into a copy of binlog_events)",
        ),
        ratio(e2e_rate, f(&lim["rows_per_s"])),
    );
    push(
        "end-to-end changes/s vs established shape (4 sec. idx, pk_hash, 3 JSON)",
        fmt_num(e2e_rate, ""),
        fmt_num(f(&est["rows_per_s"]), " (established shape, same rows)"),
        ratio(e2e_rate, f(&est["rows_per_s"])),
    );
    push(
        "index-side limit rows/s: bintrail's table vs established shape",
        fmt_num(f(&lim["rows_per_s"]), ""),
        fmt_num(f(&est["rows_per_s"]), ""),
        ratio(f(&lim["rows_per_s"]), f(&est["rows_per_s"])),
    );
    push(
        "index-side limit by LOAD DATA LOCAL INFILE (1,000 rows/txn): bintrail's table vs established shape",
        fmt_num(f(&lim_load["rows_per_s"]), ""),
        fmt_num(f(&est_load["rows_per_s"]), ""),
        ratio(f(&lim_load["rows_per_s"]), f(&est_load["rows_per_s"])),
    );
    push(
        "end-to-end changes/s vs the LOAD DATA limit of its own table",
        fmt_num(e2e_rate, ""),
        fmt_num(f(&lim_load["rows_per_s"]), ""),
        ratio(e2e_rate, f(&lim_load["rows_per_s"])),
    );
    push(
        "potential: its table without uk_change (event_id given), INSERT / LOAD DATA rows/s vs with it",
        format!(
            "{} / {}",
            fmt_num(f(&nouk["rows_per_s"]), ""),
            fmt_num(f(&nouk_load["rows_per_s"]), "")
        ),
        format!(
            "{} / {}",
            fmt_num(f(&lim["rows_per_s"]), ""),
            fmt_num(f(&lim_load["rows_per_s"]), "")
        ),
        ratio(f(&nouk["rows_per_s"]), f(&lim["rows_per_s"])),
    );
    push(
        "end-to-end wall time (spawn → checkpoint covers the backlog)",
        fmt_num(f(&e2e["seconds"]), " s"),
        format!(
            "all {} rows counted in stream_state.events_indexed after {}",
            n,
            fmt_num(f(&e2e["rows_in_index_s"]), " s")
        ),
        "".into(),
    );
    push(
        "bintrail CPU (user+sys) during the backlog",
        fmt_num(cpu, " s"),
        format!(
            "user {} / sys {}",
            fmt_num(f(&e2e["cpu_user_s"]), " s"),
            fmt_num(f(&e2e["cpu_sys_s"]), " s")
        ),
        cpu.map(|c| format!("{:.1} µs/change", c * 1e6 / n))
            .unwrap_or_default(),
    );
    push(
        "read+decode only changes/s vs mysqlbinlog -v",
        fmt_num(dry_rate, " (bintrail stream --dry-run)"),
        fmt_num(
            mb_rate,
            " (mysqlbinlog -v --read-from-remote-server > /dev/null)",
        ),
        ratio(dry_rate, mb_rate),
    );
    push(
        "read+decode only changes/s vs python-mysql-replication",
        fmt_num(dry_rate, ""),
        fmt_num(
            py_rate,
            &format!(
                " (mysql-replication {})",
                py["version"].as_str().unwrap_or("?")
            ),
        ),
        ratio(dry_rate, py_rate),
    );
    let huge_rate = f(&huge["seconds"]).map(|s| n / s);
    push(
        "end-to-end changes/s, updates/deletes as ONE 30%/20%-of-N-row transaction each vs 1,000-row ones",
        fmt_num(huge_rate, ""),
        fmt_num(e2e_rate, " (the 1,000-row backlog, above)"),
        ratio(huge_rate, e2e_rate),
    );
    let files_rate = f(&files["rows_per_s"]);
    push(
        "index --files changes/s (binlog files → index) vs stream end-to-end",
        fmt_num(files_rate, " (bintrail index --files, fresh index)"),
        fmt_num(e2e_rate, " (bintrail stream, same backlog)"),
        ratio(files_rate, e2e_rate),
    );
    let files_dry_rate = f(&files_dry["rows_per_s"]);
    push(
        "read+decode files changes/s vs mysqlbinlog -v over the same files",
        fmt_num(files_dry_rate, " (bintrail index --dry-run)"),
        fmt_num(
            f(&mb_files["rows_per_s"]),
            " (mysqlbinlog -v FILES > /dev/null)",
        ),
        ratio(files_dry_rate, f(&mb_files["rows_per_s"])),
    );
    push(
        "index --files (writing) vs mysqlbinlog -v (decoding only), same files",
        fmt_num(files_rate, ""),
        fmt_num(f(&mb_files["rows_per_s"]), ""),
        ratio(files_rate, f(&mb_files["rows_per_s"])),
    );
    push(
        "peak RSS during the backlog (VmHWM)",
        fmt_num(mib(&e2e["vmhwm_kb"]), " MiB"),
        "".into(),
        "".into(),
    );
    push(
        "peak RSS during one N-row transaction (VmHWM)",
        fmt_num(mib(&big["vmhwm_kb"]), " MiB"),
        format!(
            "{} rows: checkpoint after {}, CPU {}",
            n,
            fmt_num(f(&big["seconds"]), " s"),
            fmt_num(
                f(&big["cpu_user_s"])
                    .zip(f(&big["cpu_sys_s"]))
                    .map(|(u, s)| u + s),
                " s"
            )
        ),
        "".into(),
    );
    push(
        "index bytes per change (information_schema data+index)",
        fmt_num(f(&bytes["bytes_per_row"]), " B"),
        fmt_num(f(&est["bytes_per_row"]), " B (established shape)"),
        ratio(f(&bytes["bytes_per_row"]), f(&est["bytes_per_row"])),
    );
    push(
        "index bytes per change on disk (tablespace files' allocated size)",
        fmt_num(f(&bytes["disk_bytes_per_row"]), " B"),
        fmt_num(f(&est["disk_bytes_per_row"]), " B (established shape)"),
        ratio(
            f(&bytes["disk_bytes_per_row"]),
            f(&est["disk_bytes_per_row"]),
        ),
    );
    let arch_rate = f(&arch["rows_per_s"]);
    let arch_read_rate =
        f(&arch["index_read_s"]).map(|s| f(&arch["index_read_rows"]).unwrap_or(0.0) / s);
    push(
        "archive write changes/s (rotate --archive) vs reading the same rows from the index",
        fmt_num(arch_rate, ""),
        fmt_num(arch_read_rate, " (SELECT * of them, mysql client)"),
        ratio(arch_rate, arch_read_rate),
    );
    let arch_per = f(&arch["bytes"]).map(|b| b / n);
    push(
        "archive bytes per change (Parquet, zstd) vs the backlog's binlog",
        fmt_num(arch_per, " B"),
        fmt_num(f(&arch["binlog_bytes"]).map(|b| b / n), " B (binlog files)"),
        ratio(arch_per, f(&arch["binlog_bytes"]).map(|b| b / n)),
    );
    push(
        "archive bytes per change vs the index on disk",
        fmt_num(arch_per, &format!(" B in {} file(s)", arch["files"])),
        fmt_num(
            f(&bytes["disk_bytes_per_row"]),
            " B (binlog_events on disk)",
        ),
        ratio(arch_per, f(&bytes["disk_bytes_per_row"])),
    );
    push(
        "archive at scale: synthetic year written (bintrail's writer, files in parallel), changes/s",
        fmt_num(f(&synth["rows_per_s"]), ""),
        format!(
            "{} changes, {} files ({} of one table), {} in {} (write {}, manifest {}), {} thread(s)",
            synth["changes"],
            synth["files"],
            synth["table_files"],
            fmt_num(f(&synth["bytes"]).map(|b| b / 1_048_576.0), " MiB"),
            fmt_num(f(&synth["seconds"]), " s"),
            fmt_num(f(&synth["write_s"]), " s"),
            fmt_num(f(&synth["record_s"]), " s"),
            synth["threads"]
        ),
        "".into(),
    );
    for (what, q) in [
        ("a year", &key_year),
        ("one day", &key_day),
        (
            "a year, by the layout alone (manifest emptied)",
            &key_layout,
        ),
    ] {
        push(
            &format!("one-key query over {what} of that archive: files read / footers opened / bytes read (ratio: of the archive's bytes)"),
            format!(
                "{} of {} files, {} footer(s), {} of {} group(s), {}",
                q["files_read"],
                q["files"],
                q["footers"],
                q["groups_read"],
                q["groups"],
                fmt_bytes(f(&q["bytes_read"]))
            ),
            format!(
                "{} wall; {} of {} expected change(s) returned{}",
                fmt_num(f(&q["seconds"]), " s"),
                q["returned"],
                q["expected"],
                if q["exact"] == json!(true) { ", exact" } else { ", NOT exact" }
            ),
            f(&q["bytes_read"])
                .zip(f(&synth["bytes"]))
                .filter(|(_, all)| *all > 0.0)
                .map_or(String::new(), |(read, all)| format!("{:.1e}", read / all)),
        );
    }
    push(
        "live lag p50 (index insert time − source NOW(6))",
        fmt_num(f(&lag["lag_ms_p50"]), " ms"),
        format!(
            "{} rows at {} rows/s for {} s",
            lag["rows_measured"],
            fmt_num(f(&lag["achieved_rows_per_s"]), ""),
            fmt_num(f(&lag["write_seconds"]), "")
        ),
        "".into(),
    );
    push(
        "live lag p99",
        fmt_num(f(&lag["lag_ms_p99"]), " ms"),
        format!("max {}", fmt_num(f(&lag["lag_ms_max"]), " ms")),
        "".into(),
    );

    let recon_rate = f(&tt["reconstruct_s"]).map(|s| f(&tt["reconstruct_rows"]).unwrap_or(0.0) / s);
    let select_rate = f(&tt["select_s"]).map(|s| f(&tt["table_rows"]).unwrap_or(0.0) / s);
    push(
        "reconstruct rows/s (N-row table, N/10 changes since) vs SELECT *",
        fmt_num(recon_rate, ""),
        fmt_num(select_rate, " (SELECT * of the same table, mysql client)"),
        ratio(recon_rate, select_rate),
    );
    push(
        "recover: writing the undo script of N/10 changes",
        fmt_num(f(&tt["undo_s"]), " s"),
        format!("{} changes undone", tt["undo_changes"]),
        "".into(),
    );

    let per = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    };
    let values: Vec<(&str, Option<f64>)> = vec![
        ("e2e_changes_per_s", e2e_rate),
        ("limit_rows_per_s", f(&lim["rows_per_s"])),
        ("established_rows_per_s", f(&est["rows_per_s"])),
        ("e2e_vs_limit", per(e2e_rate, f(&lim["rows_per_s"]))),
        ("e2e_vs_established", per(e2e_rate, f(&est["rows_per_s"]))),
        (
            "limit_vs_established",
            per(f(&lim["rows_per_s"]), f(&est["rows_per_s"])),
        ),
        ("limit_load_rows_per_s", f(&lim_load["rows_per_s"])),
        ("established_load_rows_per_s", f(&est_load["rows_per_s"])),
        (
            "e2e_vs_established_load",
            per(e2e_rate, f(&est_load["rows_per_s"])),
        ),
        (
            "e2e_vs_limit_load",
            per(e2e_rate, f(&lim_load["rows_per_s"])),
        ),
        ("nouk_rows_per_s", f(&nouk["rows_per_s"])),
        ("nouk_load_rows_per_s", f(&nouk_load["rows_per_s"])),
        ("huge_changes_per_s", huge_rate),
        ("huge_vs_e2e", per(huge_rate, e2e_rate)),
        ("cpu_us_per_change", cpu.map(|c| c * 1e6 / n)),
        ("dryrun_changes_per_s", dry_rate),
        ("mysqlbinlog_changes_per_s", mb_rate),
        ("dryrun_vs_mysqlbinlog", per(dry_rate, mb_rate)),
        ("lag_ms_p50", f(&lag["lag_ms_p50"])),
        ("lag_ms_p99", f(&lag["lag_ms_p99"])),
        (
            "bytes_vs_established",
            per(f(&bytes["bytes_per_row"]), f(&est["bytes_per_row"])),
        ),
        (
            "disk_bytes_vs_established",
            per(
                f(&bytes["disk_bytes_per_row"]),
                f(&est["disk_bytes_per_row"]),
            ),
        ),
        ("files_changes_per_s", files_rate),
        ("reconstruct_vs_select", per(recon_rate, select_rate)),
        ("undo_s", f(&tt["undo_s"])),
        ("vmhwm_backlog_mib", mib(&e2e["vmhwm_kb"])),
        ("archive_synth_changes_per_s", f(&synth["rows_per_s"])),
        ("archive_key_year_s", f(&key_year["seconds"])),
        ("archive_key_year_footers", f(&key_year["footers"])),
        ("archive_key_year_bytes_read", f(&key_year["bytes_read"])),
        ("archive_key_day_s", f(&key_day["seconds"])),
        ("archive_key_day_footers", f(&key_day["footers"])),
        ("archive_key_layout_s", f(&key_layout["seconds"])),
        ("archive_key_layout_footers", f(&key_layout["footers"])),
    ];
    let values: serde_json::Map<String, J> = values
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.map_or(J::Null, |v| json!(v))))
        .collect();

    let mut md = format!(
        "## bintrail benchmark, {} changes ({}), {}\n\n| figure | bintrail | reference | ratio |\n|---|---|---|---|\n",
        n, meta["mix"].as_str().unwrap_or(""), meta["date"].as_str().unwrap_or("")
    );
    for (a, b, c, d) in &rows {
        md.push_str(&format!("| {a} | {b} | {c} | {d} |\n"));
    }
    md.push_str(&format!(
        "\nbacklog: {} bytes of binlog ({}), built in {} s; bintrail {}: {}\nsource: {}\nindex: {}\n",
        meta["backlog_binlog_bytes"], meta["backlog_files"].as_str().unwrap_or(""), meta["backlog_build_s"],
        meta["bintrail"].as_str().unwrap_or(""), meta["bintrail_flags"].as_str().unwrap_or(""),
        meta["source_settings"].as_str().unwrap_or(""), meta["index_settings"].as_str().unwrap_or("")
    ));
    println!("{md}");
    let table: Vec<J> = rows
        .iter()
        .map(|(a, b, c, d)| json!({"figure": a, "bintrail": b, "reference": c, "ratio": d}))
        .collect();
    let out = json!({"meta": meta, "table": table, "values": values, "raw": {"huge": huge, "limit_load": lim_load, "established_load": est_load, "nouk": nouk, "nouk_load": nouk_load,"e2e": e2e, "limit": lim, "established": est,
        "bytes": bytes, "mysqlbinlog": mb, "dryrun": dry, "pyrepl": py, "bigtxn": big, "lag": lag, "timetravel": tt,
        "files": files, "files_dryrun": files_dry, "mysqlbinlog_files": mb_files, "archive": arch,
        "archive_scale": synth, "archive_query": key_year, "archive_query_day": key_day,
        "archive_query_layout": key_layout}});
    std::fs::write(get(&m, "out"), serde_json::to_string_pretty(&out)?)?;
    if m.contains_key("check") {
        check(n, &out)?;
    }
    Ok(J::Null)
}

/// The small variant's guard against a rotting harness: every figure was measured, and every
/// reader saw exactly the N changes of the backlog.
fn check(n: f64, out: &J) -> Res<()> {
    let raw = &out["raw"];
    let mut wrong = vec![];
    for (row, v) in out["table"].as_array().into_iter().flatten().enumerate() {
        let skipped = out["meta"]["index_local_infile"] == json!("off")
            && v["figure"]
                .as_str()
                .is_some_and(|f| f.contains("LOAD DATA"));
        if !skipped && v["bintrail"].as_str().is_some_and(|b| b.contains("n/a")) {
            wrong.push(format!("row {row} ({}) was not measured", v["figure"]));
        }
    }
    for (what, v) in [
        ("bytes.rows", &raw["bytes"]["rows"]),
        ("limit.rows", &raw["limit"]["rows"]),
        ("established.rows", &raw["established"]["rows"]),
        ("nouk.rows", &raw["nouk"]["rows"]),
        ("dryrun.changes", &raw["dryrun"]["changes"]),
        ("pyrepl.rows", &raw["pyrepl"]["rows"]),
        ("files.changes", &raw["files"]["changes"]),
        ("files_dryrun.changes", &raw["files_dryrun"]["changes"]),
        ("archive.changes", &raw["archive"]["changes"]),
        (
            "archive.index_read_rows",
            &raw["archive"]["index_read_rows"],
        ),
    ] {
        if f(v) != Some(n) {
            wrong.push(format!("{what} is {v}, expected {n}"));
        }
    }
    if f(&raw["huge"]["rows"]) != Some(n) {
        wrong.push(format!(
            "huge.rows is {}, expected {n}",
            raw["huge"]["rows"]
        ));
    }
    for what in ["e2e", "bigtxn", "huge"] {
        if raw[what]["exit_code"] != json!(0) {
            wrong.push(format!(
                "{what}: bintrail exited with {}",
                raw[what]["exit_code"]
            ));
        }
    }
    if raw["archive"]["verify_exit"] != json!(0) {
        wrong.push(format!(
            "archive: verify exited with {}",
            raw["archive"]["verify_exit"]
        ));
    }
    let synth = &raw["archive_scale"];
    let target = f(&out["meta"]["archive_changes"]);
    if target.is_none() || f(&synth["changes"]) != target {
        wrong.push(format!(
            "archive_scale.changes is {}, expected {}",
            synth["changes"], out["meta"]["archive_changes"]
        ));
    }
    for what in ["archive_query", "archive_query_day", "archive_query_layout"] {
        let q = &raw[what];
        if q["exit_code"] != json!(0) || q["exact"] != json!(true) {
            wrong.push(format!(
                "{what}: bintrail exited {} returning {} change(s), not exactly the {} expected",
                q["exit_code"], q["returned"], q["expected"]
            ));
        }
    }
    let tt = &raw["timetravel"];
    if f(&tt["reconstruct_rows"]) != Some(n) || tt["reconstruct_exit"] != json!(0) {
        wrong.push(format!(
            "timetravel: reconstruct exited {} with {} rows, expected {n}",
            tt["reconstruct_exit"], tt["reconstruct_rows"]
        ));
    }
    if f(&tt["undo_changes"]) != Some(n / 10.0) || tt["undo_exit"] != json!(0) {
        wrong.push(format!(
            "timetravel: recover exited {} undoing {} changes, expected {}",
            tt["undo_exit"],
            tt["undo_changes"],
            n / 10.0
        ));
    }
    if f(&raw["lag"]["rows_measured"]) != f(&raw["lag"]["rows_written"]) {
        wrong.push(format!(
            "lag: {} of {} rows measured",
            raw["lag"]["rows_measured"], raw["lag"]["rows_written"]
        ));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("the benchmark run is incomplete: {}", wrong.join("; ")).into())
    }
}

/// A fresh index database whose hourly partitions begin `--days-ago` days back, so rows
/// copied that far back sit in hours that `rotate --retain 1d` drops (and, with `--archive`,
/// archives first): the archive stage measures rotate on the backlog's own rows.
async fn init_at(m: HashMap<String, String>) -> Res<J> {
    let opts = Opts::from_url(get(&m, "index-dsn"))?;
    let db = opts
        .db_name()
        .ok_or("--index-dsn names no database")?
        .to_string();
    let days: i64 = get(&m, "days-ago").parse()?;
    let server = mysql_async::OptsBuilder::from_opts(opts).db_name(None::<String>);
    let mut c = Conn::new(server).await?;
    let now = bintrail::time::now();
    bintrail::index::ddl::init_at(
        &mut c,
        &db,
        now - days * 86_400,
        // Every hour up to rotate's default 48 ahead of now already there, so the timed
        // rotate archives and drops, and does not also split 70 hours off `p_future`.
        u32::try_from(days * 24 + 49)?,
        bintrail::index::ddl::Compression::Lz4,
    )
    .await?;
    c.disconnect().await?;
    Ok(J::Null)
}

/// min/median/max of each figure (`values`) over the reports named as positional arguments.
fn summary(m: HashMap<String, String>) -> Res<J> {
    let mut runs: Vec<J> = vec![];
    for i in 0.. {
        let Some(path) = m.get(&format!("#{i}")) else {
            break;
        };
        runs.push(serde_json::from_str(&std::fs::read_to_string(path)?)?);
    }
    let first = runs.first().ok_or("summary: no report files given")?;
    let keys: Vec<String> = first["values"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let mut md = format!(
        "## bintrail benchmark, {} runs of {} changes (index binlog {}), min / median / max\n\n| figure | min | median | max |\n|---|---|---|---|\n",
        runs.len(),
        first["meta"]["changes"],
        first["meta"]["index_log_bin"].as_str().unwrap_or("off"),
    );
    let mut out = serde_json::Map::new();
    for k in keys {
        let mut v: Vec<f64> = runs
            .iter()
            .filter_map(|r| r["values"][&k].as_f64())
            .collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let (lo, mid, hi) = match v.len() {
            0 => (None, None, None),
            len => (Some(v[0]), Some(v[len / 2]), Some(v[len - 1])),
        };
        md.push_str(&format!(
            "| {k} | {} | {} | {} |\n",
            fmt_num(lo, ""),
            fmt_num(mid, ""),
            fmt_num(hi, "")
        ));
        out.insert(k, json!({"min": lo, "median": mid, "max": hi, "all": v}));
    }
    println!("{md}");
    let metas: Vec<&J> = runs.iter().map(|r| &r["meta"]).collect();
    std::fs::write(
        get(&m, "out"),
        serde_json::to_string_pretty(&json!({"runs": metas, "summary": out}))?,
    )?;
    Ok(J::Null)
}

#[tokio::main]
async fn main() {
    let (cmd, m) = args();
    let r = match cmd.as_str() {
        "stream-until" => stream_until(m).await,
        "limit" => limit(m).await,
        "bytes" => bytes(m).await,
        "lag" => lag(m).await,
        "init-at" => init_at(m).await,
        "report" => report(m),
        "summary" => summary(m),
        "archive-synth" => archive::synth(m).await,
        "archive-query" => archive::query(m),
        _ => Err(format!("unknown command '{cmd}'").into()),
    };
    match r {
        Ok(J::Null) => {}
        Ok(j) => println!("{j}"),
        Err(e) => {
            eprintln!("bench {cmd}: {e}");
            std::process::exit(1);
        }
    }
}

//! The cold tier: `rotate --archive DIR` writes every expired hour as recorded Parquet files
//! before dropping it; the files hold exactly the changes `query` showed (read back by the
//! parquet crate, by pyarrow and by DuckDB); a crash at any step loses and doubles nothing;
//! `archive verify` passes on a sound archive and names a corrupted and a missing file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use mysql_async::prelude::Queryable;
use serde_json::{json, Value};

use bintrail::archive::writer::read_rows;
use bintrail::time::{format_utc, now};

use crate::stream_basic::server_id;
use crate::support::stream::{Index, Stream};
use crate::support::{bintrail, bintrail_cmd, repo_root, temp_dir, unique, Flavor, TestServer};

pub(crate) const H: i64 = 3_600;
pub(crate) const D: i64 = 86_400;

/// A table name no file system segment could hold as it is.
const AWKWARD: &str = "../we=ird/\nname %";

/// `sql` executed on the source with the binlog event time set to `t`.
async fn at(conn: &mut mysql_async::Conn, t: i64, sql: &str) {
    conn.query_drop(format!(
        "SET TIMESTAMP = {t}; {sql}; SET TIMESTAMP = DEFAULT"
    ))
    .await
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn hour(t: i64) -> i64 {
    t.div_euclid(H) * H
}

/// Changes in two hours of three days ago (the index's first and third hourly partitions), in
/// one expired hour of the catch-all, and two recent ones; two tables in each old hour but one.
pub(crate) async fn workload(source: &TestServer, schema: &str, n: i64) {
    let mut c = source.conn(None).await;
    let t = format!("`{schema}`.t");
    let w = format!("`{schema}`.`{}`", AWKWARD.replace('`', "``"));
    c.query_drop(format!(
        "CREATE DATABASE `{schema}`; \
         CREATE TABLE {t} (id INT PRIMARY KEY, v VARCHAR(40), d DECIMAL(20,4), j JSON); \
         CREATE TABLE {w} (k VARCHAR(20) PRIMARY KEY, n BIGINT)"
    ))
    .await
    .unwrap();
    let t1 = hour(n - 3 * D) + 60;
    let t3 = hour(n - 2 * D) - 5 * H + 10;
    at(&mut c, t1, &format!("INSERT INTO {t} VALUES (1, 'one\\nline', 12.5, '{{\"big\": 12345678901234567890, \"s\": \"naïve\"}}'), (2, NULL, NULL, NULL)")).await;
    at(
        &mut c,
        t1 + 5,
        &format!("INSERT INTO {w} VALUES ('a|b', -9007199254740993)"),
    )
    .await;
    at(
        &mut c,
        t1 + 120,
        &format!("UPDATE {t} SET v = 'ü', j = JSON_ARRAY(1.5, 'x') WHERE id = 1"),
    )
    .await;
    at(&mut c, t1 + 130, &format!("DELETE FROM {t} WHERE id = 2")).await;
    at(
        &mut c,
        t1 + 2 * H,
        &format!("INSERT INTO {t} VALUES (3, 'three', 3, '[]')"),
    )
    .await;
    at(
        &mut c,
        t3,
        &format!("INSERT INTO {t} VALUES (4, 'four', 4, 'null')"),
    )
    .await;
    at(
        &mut c,
        t3 + 1,
        &format!("UPDATE {w} SET n = 0 WHERE k = 'a|b'"),
    )
    .await;
    at(
        &mut c,
        n - H,
        &format!("INSERT INTO {t} VALUES (5, 'five', 5, '{{}}')"),
    )
    .await;
    at(&mut c, n, &format!("UPDATE {t} SET v = 'now' WHERE id = 1")).await;
    c.disconnect().await.ok();
}

/// `query --format json` of the schema: one JSON value per change, by event_id.
pub(crate) fn query(index: &Index, schema: &str) -> BTreeMap<u64, Value> {
    let out = bintrail(&[
        "query",
        "--index-dsn",
        &index.dsn(),
        "--schema",
        schema,
        "--limit",
        "100000",
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "query: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["event_id"].as_u64().unwrap(), v)
        })
        .collect()
}

/// A row of an archive file in `query`'s JSON shape (from its columns as text and numbers).
fn query_shape(c: &Value) -> Value {
    let parsed = |k: &str| match &c[k] {
        Value::String(s) => serde_json::from_str::<Value>(s).unwrap(),
        _ => Value::Null,
    };
    let kind = match c["event_type"].as_i64() {
        Some(1) => "insert",
        Some(2) => "update",
        _ => "delete",
    };
    json!({
        "event_id": c["event_id"], "stream_id": c["stream_id"], "binlog_file": c["binlog_file"],
        "start_pos": c["start_pos"], "end_pos": c["end_pos"], "row_in_event": c["row_in_event"],
        "event_timestamp": format_utc(c["event_time"].as_i64().unwrap()),
        "gtid": c["gtid"], "connection_id": c["connection_id"], "schema": c["schema_name"],
        "table": c["table_name"], "event_type": kind, "pk_values": c["pk_values"],
        "changed_columns": parsed("changed_columns"), "row_before": parsed("row_before"),
        "row_after": parsed("row_after"), "schema_version": c["schema_version"],
    })
}

/// Every row of every `.parquet` file under `dir`, read with the parquet crate, by event_id.
pub(crate) fn read_with_parquet_crate(dir: &Path) -> BTreeMap<u64, Value> {
    let mut out = BTreeMap::new();
    for file in parquet_files(dir) {
        read_rows(&file, |r| {
            let c = json!({
                "event_id": r.event_id, "stream_id": r.stream_id, "binlog_file": r.binlog_file,
                "start_pos": r.start_pos, "end_pos": r.end_pos, "row_in_event": r.row_in_event,
                "event_time": r.event_time, "gtid": r.gtid, "connection_id": r.connection_id,
                "schema_name": r.schema, "table_name": r.table, "event_type": r.event_type,
                "pk_values": r.pk_values, "changed_columns": r.changed_columns,
                "row_before": r.row_before, "row_after": r.row_after,
                "schema_version": r.schema_version,
            });
            assert!(
                out.insert(r.event_id, query_shape(&c)).is_none(),
                "{} twice",
                r.event_id
            );
            Ok(())
        })
        .unwrap();
    }
    out
}

/// The rows an engine (pyarrow or duckdb, in the tests' Python environment) reads.
fn read_with_engine(engine: &str, dir: &Path) -> BTreeMap<u64, Value> {
    let python = archive_python();
    let out = Command::new(python)
        .arg(repo_root().join("tests/it/support/read_archive.py"))
        .arg(engine)
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{engine}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rows = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let c: Value = serde_json::from_str(line).unwrap();
        // The engine decoded the Hive layout back into the names.
        assert_eq!(c["schema"], c["schema_name"], "{engine}: {line}");
        assert_eq!(c["table"], c["table_name"], "{engine}: {line}");
        let stamp = format_utc(c["event_time"].as_i64().unwrap());
        assert_eq!(c["date"].as_str(), Some(&stamp[..10]), "{engine}: {line}");
        let hour: i64 = c["hour"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            hour,
            stamp[11..13].parse::<i64>().unwrap(),
            "{engine}: {line}"
        );
        let id = c["event_id"].as_u64().unwrap();
        assert!(
            rows.insert(id, query_shape(&c)).is_none(),
            "{engine}: {id} twice"
        );
    }
    rows
}

/// The Python with pyarrow and duckdb (provisioned once by scripts/archive-venv.sh).
pub(crate) fn archive_python() -> PathBuf {
    let out = Command::new(repo_root().join("scripts/archive-venv.sh"))
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/archive-venv.sh");
    assert!(
        out.status.success(),
        "archive-venv.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The `.parquet` files under `dir` (not the hidden temporary ones), sorted.
pub(crate) fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `rotate --retain 2d --archive DIR`, with the failpoint `crash_at` when given.
fn rotate(index: &Index, dir: &Path, crash_at: Option<&str>, extra: &[&str]) -> Output {
    let dsn = index.dsn();
    let mut args = vec!["rotate", "--index-dsn", &dsn, "--retain", "2d"];
    let dir = dir.to_string_lossy().to_string();
    args.extend(["--archive", &dir]);
    args.extend_from_slice(extra);
    let mut cmd = bintrail_cmd(&args);
    if let Some(name) = crash_at {
        cmd.env("BINTRAIL_TEST_FAILPOINT", name);
    }
    cmd.stdin(Stdio::null()).output().expect("run rotate")
}

fn verify(index: &Index, dir: &Path) -> Output {
    let dir = dir.to_string_lossy().to_string();
    bintrail(&[
        "archive",
        "verify",
        "--index-dsn",
        &index.dsn(),
        "--archive",
        &dir,
    ])
}

/// (path, rows) of every manifest row.
pub(crate) async fn manifest(index: &Index) -> Vec<(String, u64)> {
    let mut conn = index.conn().await;
    let rows = conn
        .query("SELECT path, row_count FROM archive_files ORDER BY path")
        .await
        .unwrap();
    conn.disconnect().await.ok();
    rows
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_hours_hold_exactly_the_changes_and_survive_crashes_at_every_step() {
    archive_on(TestServer::index()).await;
}

/// The same on a MariaDB 11.8 index server (its LOCK TABLES and DROP PARTITION).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb118_index_archived_hours_hold_exactly_the_changes_and_survive_crashes() {
    archive_on(TestServer::index_of(Flavor::Mariadb118)).await;
}

async fn archive_on(index_server: &'static TestServer) {
    let schema = unique("arch");
    let Streamed {
        index,
        stream,
        before,
        ..
    } = streamed_workload(index_server, &schema, &[]).await;
    let dir = temp_dir("archive");

    let dry = rotate(&index, &dir, None, &["--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(
        text(&dry).contains("would archive 8 change(s) into 5 file(s)"),
        "{}",
        text(&dry)
    );
    assert!(parquet_files(&dir).is_empty(), "a dry run writes nothing");

    // Crash after the first file is in place, before it is recorded.
    let crashed = rotate(&index, &dir, Some("archive-written"), &[]);
    assert!(!crashed.status.success(), "{}", text(&crashed));
    assert_eq!(parquet_files(&dir).len(), 1, "{:?}", parquet_files(&dir));
    assert!(manifest(&index).await.is_empty());
    assert_eq!(query(&index, &schema), before, "nothing dropped");
    // Crash after the first partition's files are recorded, before it is dropped.
    let crashed = rotate(&index, &dir, Some("archive-recorded"), &[]);
    assert!(!crashed.status.success(), "{}", text(&crashed));
    let recorded = manifest(&index).await;
    assert!(!recorded.is_empty(), "{}", text(&crashed));
    assert_eq!(query(&index, &schema), before, "nothing dropped");
    // The rerun finishes the job.
    let done = rotate(&index, &dir, None, &[]);
    assert!(done.status.success(), "{}", text(&done));
    assert!(
        text(&done).contains("dropped 4 partition(s)"),
        "{}",
        text(&done)
    );

    let after = query(&index, &schema);
    let archived: BTreeMap<u64, Value> = before
        .iter()
        .filter(|(id, _)| !after.contains_key(id))
        .map(|(id, v)| (*id, v.clone()))
        .collect();
    assert_eq!(
        archived.len(),
        8,
        "the changes older than 2 days: {after:#?}"
    );
    assert!(after.keys().all(|id| before.contains_key(id)));

    // One recorded file per stream, table and hour, none twice, none unrecorded.
    let recorded = manifest(&index).await;
    let on_disk: Vec<String> = parquet_files(&dir)
        .iter()
        .map(|p| p.strip_prefix(&dir).unwrap().to_string_lossy().to_string())
        .collect();
    let paths: Vec<String> = recorded.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(
        on_disk, paths,
        "exactly the recorded files, no temporary leftover"
    );
    assert_eq!(recorded.len(), 5, "{recorded:?}");
    assert_eq!(recorded.iter().map(|(_, r)| r).sum::<u64>(), 8);
    assert!(
        paths
            .iter()
            .all(|p| p.split('/').count() == 5 && !p.contains("/../")),
        "{paths:?}"
    );

    assert_eq!(read_with_parquet_crate(&dir), archived, "parquet crate");
    assert_eq!(read_with_engine("pyarrow", &dir), archived, "pyarrow");
    assert_eq!(read_with_engine("duckdb", &dir), archived, "duckdb");

    // A second rotation archives nothing more and writes no file again.
    let again = rotate(&index, &dir, None, &[]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("archived 0 change(s) into 0 file(s)"),
        "{}",
        text(&again)
    );
    assert_eq!(manifest(&index).await, recorded);

    // verify: sound, then a flipped byte and a missing file, each named.
    let ok = verify(&index, &dir);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        text(&ok).contains("5 file(s), 8 change(s)"),
        "{}",
        text(&ok)
    );
    let corrupt = dir.join(&paths[0]);
    let mut bytes = std::fs::read(&corrupt).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&corrupt, bytes).unwrap();
    std::fs::remove_file(dir.join(&paths[1])).unwrap();
    let bad = verify(&index, &dir);
    assert_eq!(bad.status.code(), Some(3), "{}", text(&bad));
    let said = text(&bad);
    assert!(said.contains(&format!("{}: SHA-256", paths[0])), "{said}");
    assert!(said.contains(&format!("{}: missing", paths[1])), "{said}");
    assert!(!said.contains(&format!("{}:", paths[2])), "{said}");

    assert_eq!(stream.stop().await, 0);
    std::fs::remove_dir_all(&dir).ok();
}

/// What the cold tier's tests start from ([`streamed_workload`]).
pub(crate) struct Streamed {
    /// Made three days ago (three hourly partitions), never rotated since.
    pub index: Index,
    /// Of the workload's schema, still running.
    pub stream: Stream,
    /// The time the workload's hours count back from.
    pub now: i64,
    /// What `query` showed of the workload once indexed: its ten changes.
    pub before: BTreeMap<u64, Value>,
}

/// An index on `index_server` created three days ago, a stream of `schema` on it (with `extra`
/// flags), and [`workload`] indexed.
pub(crate) async fn streamed_workload(
    index_server: &'static TestServer,
    schema: &str,
    extra: &[String],
) -> Streamed {
    let source = TestServer::shared(Flavor::Mysql);
    let n = now();
    let index = Index::made_at(index_server, n - 3 * D, 2).await;
    let stream = Stream::of_schema(source, &index, server_id(), schema, extra).await;
    workload(source, schema, n).await;
    index.wait_caught_up(source, stream.server_id).await;
    let before = query(&index, schema);
    assert_eq!(before.len(), 10, "{before:#?}");
    Streamed {
        index,
        stream,
        now: n,
        before,
    }
}

/// `bintrail ARGS`, with `--archive DIR` appended when given: (success, stdout, stderr).
fn run(args: &[&str], archive: Option<&Path>) -> (bool, String, String) {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    if let Some(dir) = archive {
        all.extend(["--archive".to_string(), dir.to_string_lossy().to_string()]);
    }
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let out = bintrail(&refs);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// What a reading command answered: whether it succeeded and its output (stdout; for a
/// refusal, the refusal), with the archive's `files read` line and the notes on the stream's
/// checkpoint left out: recover's, and reconstruct's wait for it, which the shared source's
/// traffic from other tests can make either run print.
fn answer(args: &[&str], archive: Option<&Path>) -> (bool, String) {
    let (ok, out, err) = run(args, archive);
    answer_of(ok, &out, &err)
}

/// [`answer`] from a command's success, stdout and stderr.
pub(crate) fn answer_of(ok: bool, out: &str, err: &str) -> (bool, String) {
    let out: String = out
        .lines()
        .filter(|l| !l.contains("up to its checkpoint of"))
        .map(|l| format!("{l}\n"))
        .collect();
    let err: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("bintrail: archive: files read"))
        .filter(|l| !l.starts_with("bintrail: waiting for stream"))
        .collect();
    if ok {
        (ok, out)
    } else {
        (ok, err.join("\n"))
    }
}

/// `bintrail recover --index-dsn DSN --source-dsn SRC EXTRA…`.
pub(crate) fn recover_args(dsn: &str, src: &str, extra: &[&str]) -> Vec<String> {
    let mut a = vec!["recover", "--index-dsn", dsn, "--source-dsn", src];
    a.extend_from_slice(extra);
    a.iter().map(|s| s.to_string()).collect()
}

/// `bintrail reconstruct` of `table` as JSON: `--index-dsn DSN --source-dsn SRC EXTRA…`.
pub(crate) fn reconstruct_args(dsn: &str, src: &str, table: &str, extra: &[&str]) -> Vec<String> {
    let mut a = vec![
        "reconstruct",
        "--index-dsn",
        dsn,
        "--source-dsn",
        src,
        "--table",
        table,
        "--format",
        "json",
    ];
    a.extend_from_slice(extra);
    a.iter().map(|s| s.to_string()).collect()
}

/// Each command's [`answer_of`] by `answer`, a reconstruction's rows sorted (see
/// [`sorted_lines`]), so that answers before and after a rotation compare whole.
pub(crate) fn ask_all(
    commands: &[Vec<String>],
    answer: impl Fn(&[&str]) -> (bool, String),
) -> Vec<(bool, String)> {
    commands
        .iter()
        .map(|c| {
            let args: Vec<&str> = c.iter().map(String::as_str).collect();
            let (ok, out) = answer(&args);
            match args[0] {
                "reconstruct" => (ok, sorted_lines(&out)),
                _ => (ok, out),
            }
        })
        .collect()
}

/// Reconstructed rows, as a sorted list (restored rows follow the live ones in no set order).
pub(crate) fn sorted_lines(text: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines.join("\n")
}

/// `query`, `recover` and `reconstruct` with `--archive DIR` answer after a rotation exactly
/// what they answered before it, also while a partition is archived but not yet dropped (each
/// change once); `status --archive` shows the archive; a one-key query opens one file of five;
/// and the layout alone (no manifest) gives the same answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_changes_read_as_if_they_were_in_the_index() {
    let source = TestServer::shared(Flavor::Mysql);
    let schema = unique("aread");
    let Streamed {
        index,
        stream,
        now: n,
        before,
    } = streamed_workload(TestServer::index(), &schema, &[]).await;

    let t1 = hour(n - 3 * D) + 60;
    let t3 = hour(n - 2 * D) - 5 * H + 10;
    let archived_update = before
        .values()
        .find(|c| c["event_timestamp"] == format_utc(t1 + 120))
        .expect("the archived update");
    let gtid = archived_update["gtid"].as_str().unwrap().to_string();
    let (dsn, src) = (index.dsn(), source.dsn(None));
    let table = format!("{schema}.t");
    let (since, until) = (format_utc(t1 + 100), format_utc(t3 + 5));
    let q = |extra: &[&str]| {
        let mut a = vec!["query", "--index-dsn", &dsn, "--format", "json"];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<String>>()
    };
    let recover = |extra: &[&str]| recover_args(&dsn, &src, extra);
    let reconstruct = |extra: &[&str]| reconstruct_args(&dsn, &src, &table, extra);
    let (t1_after_update, t3_before) = (format_utc(t1 + 125), format_utc(t3 - 1));
    let commands: Vec<Vec<String>> = vec![
        q(&["--schema", &schema, "--limit", "1000"]),
        q(&["--table", &table]),
        q(&["--table", &table, "--pk", "1"]),
        q(&["--schema", &schema, "--since", &since, "--until", &until]),
        q(&["--schema", &schema, "--event-type", "update"]),
        q(&["--gtid", &gtid]),
        q(&["--schema", &schema, "--limit", "3"]),
        q(&["--table", &table, "--changed-column", "v"]),
        recover(&[
            "--table",
            &table,
            "--pk",
            "1",
            "--allow-partial-transactions",
        ]),
        recover(&["--table", &table, "--pk", "1"]),
        recover(&[
            "--table",
            &table,
            "--pk",
            "1",
            "--until",
            &until,
            "--allow-partial-transactions",
        ]),
        recover(&["--table", &table, "--since", &t3_before]),
        reconstruct(&["--as-of", &t1_after_update]),
        reconstruct(&["--as-of-gtid", &gtid]),
        reconstruct(&["--as-of", &t3_before, "--pk", "4"]),
    ];
    let ask = |archive: Option<&Path>| ask_all(&commands, |args| answer(args, archive));
    let expected = ask(None);
    // Each answer says something: the reconstructions and most queries and recoveries succeed.
    assert!(
        expected.iter().filter(|(ok, _)| *ok).count() >= 12,
        "{expected:#?}"
    );
    assert!(
        expected[9].1.contains("partial"),
        "the refusal for half a transaction: {}",
        expected[9].1
    );
    let dir = temp_dir("aread");

    // A partition archived and recorded but not dropped: its changes are in both places.
    let crashed = rotate(&index, &dir, Some("archive-recorded"), &[]);
    assert!(!crashed.status.success(), "{}", text(&crashed));
    assert!(!manifest(&index).await.is_empty());
    let both = ask(Some(&dir));
    for (i, (want, got)) in expected.iter().zip(&both).enumerate() {
        assert_eq!(want, got, "partly archived, not dropped: {:?}", commands[i]);
    }

    let done = rotate(&index, &dir, None, &[]);
    assert!(done.status.success(), "{}", text(&done));
    assert_eq!(
        query(&index, &schema).len(),
        2,
        "8 changes moved to the archive"
    );
    let without = ask(None);
    assert_ne!(
        without, expected,
        "without --archive the archived changes are not seen"
    );
    let with = ask(Some(&dir));
    for (i, (want, got)) in expected.iter().zip(&with).enumerate() {
        assert_eq!(want, got, "after rotation: {:?}", commands[i]);
    }

    // A one-key read opens only the file whose integer key range (in the manifest) holds it.
    let key = [
        "query",
        "--index-dsn",
        &dsn,
        "--table",
        &table,
        "--pk",
        "3",
        "--format",
        "json",
    ];
    let (ok, out, err) = run(&key, Some(&dir));
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        err.contains("files read: 1 of 5 (1 footer(s) opened"),
        "{err}"
    );

    // status shows the archive's extent, per table too.
    let (ok, out, err) = run(
        &["status", "--index-dsn", &dsn, "--format", "json"],
        Some(&dir),
    );
    assert!(ok, "{err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    let a = &status["archive"];
    assert_eq!(
        (a["files"].as_u64(), a["rows"].as_u64()),
        (Some(5), Some(8)),
        "{a:#}"
    );
    assert_eq!(a["source"], "manifest");
    let on_disk: u64 = parquet_files(&dir)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(a["bytes"].as_u64(), Some(on_disk));
    assert_eq!(a["first_time"].as_i64(), Some(t1));
    assert_eq!(a["last_time"].as_i64(), Some(t3 + 1));
    let tables: Vec<(String, u64)> = a["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap().to_string(),
                t["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(tables, vec![(AWKWARD.to_string(), 2), ("t".to_string(), 6)]);
    let (ok, out, _) = run(&["status", "--index-dsn", &dsn], Some(&dir));
    assert!(
        ok && out.contains("5 file(s)") && out.contains("8 change(s)"),
        "{out}"
    );

    // A manifest from before the key range (its columns gone): the same answers, and a
    // one-key read opens the table's files' footers again.
    let mut conn = index.conn().await;
    conn.query_drop("ALTER TABLE archive_files DROP COLUMN min_pk_int, DROP COLUMN max_pk_int")
        .await
        .unwrap();
    conn.disconnect().await.ok();
    let older = ask(Some(&dir));
    for (i, (want, got)) in expected.iter().zip(&older).enumerate() {
        assert_eq!(
            want, got,
            "a manifest without key ranges: {:?}",
            commands[i]
        );
    }
    let (ok, _, err) = run(&key, Some(&dir));
    assert!(
        ok && err.contains("files read: 1 of 5 (3 footer(s) opened"),
        "{err}"
    );

    // The layout alone: with the manifest gone, the directory's paths are the file list.
    let mut conn = index.conn().await;
    conn.query_drop("DELETE FROM archive_files").await.unwrap();
    conn.disconnect().await.ok();
    let layout = ask(Some(&dir));
    for (i, (want, got)) in expected.iter().zip(&layout).enumerate() {
        assert_eq!(want, got, "from the layout alone: {:?}", commands[i]);
    }
    let (_, out, _) = run(
        &["status", "--index-dsn", &dsn, "--format", "json"],
        Some(&dir),
    );
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["archive"]["source"], "layout");
    assert_eq!(status["archive"]["files"].as_u64(), Some(5));

    assert_eq!(stream.stop().await, 0);
    std::fs::remove_dir_all(&dir).ok();
}

/// An archived change keeps the capture policy it was indexed under: `recover` leaves an
/// excluded column alone and `reconstruct` refuses as before the rotation (the policy is found
/// through the file's `policy_version`, the change's row being gone from `binlog_events`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_changes_keep_their_capture_policy() {
    let source = TestServer::shared(Flavor::Mysql);
    let schema = unique("apol");
    let exclude = vec!["--exclude-columns".to_string(), format!("{schema}.t.d")];
    let Streamed {
        index,
        stream,
        now: n,
        ..
    } = streamed_workload(TestServer::index(), &schema, &exclude).await;
    let (dsn, src) = (index.dsn(), source.dsn(None));
    let table = format!("{schema}.t");
    let at = format_utc(hour(n - 3 * D) + 60 + 125);
    let recover = [
        "recover",
        "--index-dsn",
        &dsn,
        "--source-dsn",
        &src,
        "--table",
        &table,
        "--pk",
        "1",
        "--allow-partial-transactions",
    ];
    let reconstruct = [
        "reconstruct",
        "--index-dsn",
        &dsn,
        "--source-dsn",
        &src,
        "--table",
        &table,
        "--as-of",
        &at,
    ];
    let (recovered, refused) = (answer(&recover, None), answer(&reconstruct, None));
    assert!(recovered.0, "{}", recovered.1);
    assert!(
        recovered.1.contains("leave d (excluded)"),
        "{}",
        recovered.1
    );
    assert!(
        !refused.0 && refused.1.contains("privacy policy"),
        "{}",
        refused.1
    );
    let dir = temp_dir("apol");
    let done = rotate(&index, &dir, None, &[]);
    assert!(done.status.success(), "{}", text(&done));
    assert_eq!(answer(&recover, Some(&dir)), recovered);
    assert_eq!(answer(&reconstruct, Some(&dir)), refused);
    assert_eq!(stream.stop().await, 0);
    std::fs::remove_dir_all(&dir).ok();
}

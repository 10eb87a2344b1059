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
use bintrail::history::time::{format_utc, now};
use bintrail::index::ddl;

use crate::stream_basic::server_id;
use crate::support::stream::{start_here, Index, Stream};
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
    let source = TestServer::shared(Flavor::Mysql);
    let schema = unique("arch");
    let n = now();
    // An index created three days ago with three hourly partitions, never rotated since.
    let index = Index::uninitialised(index_server);
    let mut conn = index_server.conn(None).await;
    ddl::init_at(&mut conn, &index.db, n - 3 * D, 2, ddl::Compression::Lz4)
        .await
        .unwrap();
    conn.disconnect().await.ok();
    let id = server_id();
    let mut flags = start_here(source, true).await.flags();
    flags.extend(["--schemas".to_string(), schema.clone()]);
    let stream = Stream::start(source, &index, id, &flags);
    workload(source, &schema, n).await;
    index.wait_caught_up(source, id).await;
    let before = query(&index, &schema);
    assert_eq!(before.len(), 10, "{before:#?}");
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

//! `bintrail index --fill-gap`: a stream skips purged binlogs (`--on-gap=skip`) and records the
//! gap; `recover` across it is refused; the purged files, copied aside before the purge, fill
//! it (a copy that lacks one of them is refused, writing nothing); then `recover` across the
//! range succeeds and its SQL restores the table, and the index holds each change once.
//!
//! Then history order: changes a fill wrote (with ids after everything streamed since the gap)
//! are listed, undone and reconstructed at the gap's place; a fill whose ids the stream
//! interleaved is taken back and refused, and succeeds when run again.

use std::path::{Path, PathBuf};

use mysql_async::prelude::Queryable;
use serde_json::json;

use crate::gaps::purge_to;
use crate::recover::{apply_sql, recover_since, snapshot, source_clock, utc, wait_for_next_second};
use crate::stream_basic::server_id;
use crate::support::stream::{
    assert_changes, del, ins, source_end, start_here, upd, Index, Row, Stream,
};
use crate::support::{bintrail, temp_dir, unique, Flavor, TestServer};

/// Copies every binlog file of the source's data directory into a new directory.
fn copy_binlogs(source: &TestServer) -> PathBuf {
    let dir = temp_dir("gapfiles");
    for entry in std::fs::read_dir(source.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let numbered = name
            .rsplit_once('.')
            .is_some_and(|(_, ext)| !ext.is_empty() && ext.bytes().all(|b| b.is_ascii_digit()));
        if numbered {
            std::fs::copy(&path, dir.join(&name)).unwrap();
        }
    }
    dir
}

/// A copy of `dir` without the file `missing`.
fn copy_without(dir: &Path, missing: &str) -> PathBuf {
    let out = temp_dir("gapfiles-partial");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != missing {
            std::fs::copy(&path, out.join(path.file_name().unwrap())).unwrap();
        }
    }
    out
}

fn fill(
    index: &Index,
    source: &TestServer,
    gap: u64,
    dir: &Path,
    db: &str,
) -> (i32, String, String) {
    let (dsn, gap, dir) = (index.dsn(), gap.to_string(), dir.display().to_string());
    let src = source.dsn(None);
    let mut args = vec![
        "index",
        "--index-dsn",
        &dsn,
        "--fill-gap",
        &gap,
        "--binlog-dir",
        &dir,
        "--schemas",
        db,
    ];
    if source.flavor == Flavor::Mariadb {
        args.extend(["--source-dsn", &src]);
    }
    let out = bintrail(&args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// (gap_id, filled_at) of the stream's only gap.
async fn the_gap(index: &Index, id: u32) -> (u64, Option<String>) {
    let mut conn = index.conn().await;
    let rows: Vec<(u64, Option<String>)> = conn
        .exec(
            "SELECT gap_id, CAST(filled_at AS CHAR) FROM stream_gaps WHERE server_id = ?",
            (id,),
        )
        .await
        .unwrap();
    conn.disconnect().await.ok();
    assert_eq!(rows.len(), 1, "one gap: {rows:?}");
    rows[0].clone()
}

fn row(id: u32, v: &str) -> serde_json::Value {
    json!({"id": id, "v": v})
}

async fn fills_a_gap(flavor: Flavor, gtid_mode: bool) {
    let source = TestServer::start(flavor, &[]);
    let db = unique("fill");
    let table = format!("{db}.t");
    source
        .exec(&format!(
            "CREATE DATABASE {db}; CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR(20))"
        ))
        .await;
    let index = Index::new();
    let id = server_id();
    let mut flags = start_here(&source, gtid_mode).await.flags();
    flags.extend([
        "--schemas".into(),
        db.clone(),
        "--on-gap".into(),
        "skip".into(),
    ]);

    // Streamed: three rows.
    let stream = Stream::start(&source, &index, id, &flags);
    source
        .exec(&format!(
            "INSERT INTO {table} VALUES (1, 'a'), (2, 'b'), (3, 'c')"
        ))
        .await;
    let streamed: Vec<Row> = (1..=3)
        .map(|i| {
            ins(
                &table,
                &i.to_string(),
                row(i, ["a", "b", "c"][i as usize - 1]),
            )
        })
        .collect();
    index.wait_caught_up(&source, id).await;
    assert_eq!(stream.stop().await, 0);

    // While the stream is down: changes over two binlogs, copied aside, then purged.
    let before = snapshot(&source, &table).await;
    let since = wait_for_next_second(&source, source_clock(&source).await).await;
    source
        .exec(&format!(
            "UPDATE {table} SET v = 'a2' WHERE id = 1; DELETE FROM {table} WHERE id = 2;
             INSERT INTO {table} VALUES (10, 'x'), (11, 'y'); FLUSH BINARY LOGS;
             INSERT INTO {table} VALUES (12, 'z'); UPDATE {table} SET v = 'y2' WHERE id = 11"
        ))
        .await;
    let (second, _) = source_end(&source).await;
    let in_gap = vec![
        upd(&table, "1", &["v"], row(1, "a"), row(1, "a2")),
        del(&table, "2", row(2, "b")),
        ins(&table, "10", row(10, "x")),
        ins(&table, "11", row(11, "y")),
        ins(&table, "12", row(12, "z")),
        upd(&table, "11", &["v"], row(11, "y"), row(11, "y2")),
    ];
    source.exec("FLUSH BINARY LOGS").await;
    let (newest, _) = source_end(&source).await;
    let copy = copy_binlogs(&source);
    purge_to(&source, &newest.file).await;

    // The stream skips the purged range and records it; later changes are streamed.
    let stream = Stream::start(&source, &index, id, &flags);
    source
        .exec(&format!(
            "INSERT INTO {table} VALUES (20, 'p'); INSERT INTO {table} VALUES (21, 'q')"
        ))
        .await;
    index.wait_caught_up(&source, id).await;
    let (gap, filled) = the_gap(&index, id).await;
    assert_eq!(filled, None);
    let mut expected = streamed.clone();
    expected.extend([
        ins(&table, "20", row(20, "p")),
        ins(&table, "21", row(21, "q")),
    ]);
    assert_changes(&index.changes_of(id).await, &expected);

    let recover_args = |out: &Path| {
        vec![
            "recover".to_string(),
            "--index-dsn".into(),
            index.dsn(),
            "--source-dsn".into(),
            source.dsn(None),
            "--schema".into(),
            db.clone(),
            "--table".into(),
            "t".into(),
            "--since".into(),
            utc(since),
            "--output".into(),
            out.display().to_string(),
        ]
    };
    let refused_sql = temp_dir("fill-refused").join("undo.sql");
    let args = recover_args(&refused_sql);
    let out = bintrail(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("skipped part of the source's history"),
        "{stderr}"
    );
    eprintln!("refused recover:\n{stderr}");

    // A copy without the gap's second binlog: refused, naming what is missing; nothing written.
    let partial = copy_without(&copy, &second.file);
    let (code, stdout, stderr) = fill(&index, &source, gap, &partial, &db);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("do not cover gap #{gap}")),
        "{stderr}"
    );
    let missing = if gtid_mode {
        "still missing transactions ".to_string()
    } else {
        format!("still missing binlog {} (all of it)", second.file)
    };
    assert!(stderr.contains(&missing), "{stderr}");
    eprintln!("refused fill:\n{stderr}");
    assert_changes(&index.changes_of(id).await, &expected);
    assert_eq!(the_gap(&index, id).await.1, None, "the gap stays open");

    // The whole copy fills it, once.
    let (code, stdout, stderr) = fill(&index, &source, gap, &copy, &db);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("filled gap #{gap} of stream {id}")),
        "{stdout}"
    );
    assert!(stdout.contains("indexed 6 changes (6 new"), "{stdout}");
    eprintln!("fill:\n{stdout}");
    assert!(the_gap(&index, id).await.1.is_some(), "the gap is filled");
    // Filled changes get event ids after what the stream wrote meanwhile.
    expected.extend(in_gap);
    assert_changes(&index.changes_of(id).await, &expected);
    let (code, stdout, stderr) = fill(&index, &source, gap, &copy, &db);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("was already filled at"), "{stdout}");
    assert_changes(&index.changes_of(id).await, &expected);

    let status = bintrail(&["status", "--index-dsn", &index.dsn(), "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let gaps = &json["streams"][0]["gaps"];
    assert!(gaps[0]["filled_at"].is_string(), "{gaps}");
    assert!(
        gaps[0]["filled_from"]
            .as_str()
            .unwrap()
            .contains(&second.file),
        "{gaps}"
    );
    let status = bintrail(&["status", "--index-dsn", &index.dsn()]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("; filled "), "{text}");
    eprintln!("status:\n{text}");

    // Recover across the filled range: its SQL puts the table back as it was before the gap.
    let (sql, stderr) = recover_since(&index, &source, &db, "t", since);
    let (ok, err) = apply_sql(&source, &sql);
    let script = std::fs::read_to_string(&sql).unwrap();
    assert!(ok, "applying failed: {err}\n{script}\n{stderr}");
    assert_eq!(
        snapshot(&source, &table).await.1,
        before.1,
        "rows after recovery\n{script}"
    );
    assert_eq!(stream.stop().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_gtid_mode_gap_is_filled_from_copied_binlogs_and_recover_crosses_it() {
    fills_a_gap(Flavor::Mysql, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_position_mode_gap_is_filled_from_copied_binlogs_and_recover_crosses_it() {
    fills_a_gap(Flavor::Mysql, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_gtid_mode_gap_is_filled_from_copied_binlogs_and_recover_crosses_it() {
    fills_a_gap(Flavor::Mariadb, true).await;
}

/// `db.t`'s rows as JSON documents, by id.
async fn rows_of(source: &TestServer, table: &str) -> Vec<serde_json::Value> {
    let mut conn = source.conn(None).await;
    let rows: Vec<(u32, String)> = conn
        .query(format!("SELECT id, v FROM {table} ORDER BY id"))
        .await
        .unwrap();
    conn.disconnect().await.ok();
    rows.into_iter().map(|(id, v)| row(id, &v)).collect()
}

/// `reconstruct --as-of TIME --format json` of `table`, by id.
fn reconstructed(
    index: &Index,
    source: &TestServer,
    table: &str,
    at: i64,
) -> Vec<serde_json::Value> {
    let out = bintrail(&[
        "reconstruct",
        "--index-dsn",
        &index.dsn(),
        "--source-dsn",
        &source.dsn(None),
        "--table",
        table,
        "--as-of",
        &utc(at),
        "--format",
        "json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "reconstruct --as-of {}: {stderr}",
        utc(at)
    );
    let mut rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    rows.sort_by_key(|r| r["id"].as_i64());
    rows
}

/// `query --format json` of `db.t`: (event_type, pk_values, row_after) per change, as printed.
fn queried(index: &Index, db: &str) -> Vec<(String, String, serde_json::Value)> {
    let out = bintrail(&[
        "query",
        "--index-dsn",
        &index.dsn(),
        "--schema",
        db,
        "--table",
        "t",
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["event_type"].as_str().unwrap().to_string(),
                v["pk_values"].as_str().unwrap().to_string(),
                v["row_after"].clone(),
            )
        })
        .collect()
}

/// A row inserted before a gap, updated inside it, updated and deleted after it: once the gap
/// is filled (its changes indexed after the later ones), `query` lists the changes in the order
/// they happened, `reconstruct` gives the exact rows of a moment inside the gap and of one
/// between the gap and the later changes, and `recover` across everything, applied, gives back
/// the rows from before the gap. A gap whose place an older bintrail did not record is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_filled_changes_take_their_place_in_history_order() {
    let source = TestServer::start(Flavor::Mysql, &[]);
    let db = unique("order");
    let table = format!("{db}.t");
    source
        .exec(&format!(
            "CREATE DATABASE {db}; CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR(20))"
        ))
        .await;
    let index = Index::new();
    let id = server_id();
    let mut flags = start_here(&source, true).await.flags();
    flags.extend([
        "--schemas".into(),
        db.clone(),
        "--on-gap".into(),
        "skip".into(),
    ]);
    let stream = Stream::start(&source, &index, id, &flags);
    source
        .exec(&format!("INSERT INTO {table} VALUES (1, 'a'), (2, 'b')"))
        .await;
    index.wait_caught_up(&source, id).await;
    assert_eq!(stream.stop().await, 0);

    // The gap: row 1 updated twice, row 2 once, a second apart; then purged.
    let before = rows_of(&source, &table).await;
    let since = wait_for_next_second(&source, source_clock(&source).await).await;
    source
        .exec(&format!("UPDATE {table} SET v = 'a1' WHERE id = 1"))
        .await;
    let inside = rows_of(&source, &table).await;
    let inside_at = source_clock(&source).await;
    wait_for_next_second(&source, inside_at).await;
    source
        .exec(&format!(
            "UPDATE {table} SET v = 'a2' WHERE id = 1; UPDATE {table} SET v = 'b1' WHERE id = 2"
        ))
        .await;
    source.exec("FLUSH BINARY LOGS").await;
    let (newest, _) = source_end(&source).await;
    let copy = copy_binlogs(&source);
    purge_to(&source, &newest.file).await;

    // The stream skips it; then both rows change again.
    let stream = Stream::start(&source, &index, id, &flags);
    index.wait_caught_up(&source, id).await;
    let between = rows_of(&source, &table).await;
    let between_at = source_clock(&source).await;
    wait_for_next_second(&source, between_at).await;
    source
        .exec(&format!(
            "UPDATE {table} SET v = 'a3' WHERE id = 1; DELETE FROM {table} WHERE id = 2;
             UPDATE {table} SET v = 'a4' WHERE id = 1"
        ))
        .await;
    index.wait_caught_up(&source, id).await;
    let (gap, _) = the_gap(&index, id).await;
    let (code, stdout, stderr) = fill(&index, &source, gap, &copy, &db);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("indexed 3 changes (3 new"), "{stdout}");

    // The filled changes were written last, and are listed where they happened.
    let one = |v: &str| row(1, v);
    let expected = vec![
        ("insert", "1", one("a")),
        ("insert", "2", row(2, "b")),
        ("update", "1", one("a1")),
        ("update", "1", one("a2")),
        ("update", "2", row(2, "b1")),
        ("update", "1", one("a3")),
        ("delete", "2", serde_json::Value::Null),
        ("update", "1", one("a4")),
    ];
    let expected: Vec<(String, String, serde_json::Value)> = expected
        .into_iter()
        .map(|(k, pk, r)| (k.to_string(), pk.to_string(), r))
        .collect();
    assert_eq!(queried(&index, &db), expected, "query's order");

    assert_eq!(
        reconstructed(&index, &source, &table, inside_at),
        inside,
        "reconstruct inside the gap"
    );
    assert_eq!(
        reconstructed(&index, &source, &table, between_at),
        between,
        "reconstruct between the gap and the later changes"
    );

    let (sql, stderr) = recover_since(&index, &source, &db, "t", since);
    let script = std::fs::read_to_string(&sql).unwrap();
    eprintln!("recover across the filled gap:\n{script}");
    let (ok, err) = apply_sql(&source, &sql);
    assert!(ok, "applying failed: {err}\n{script}\n{stderr}");
    assert_eq!(
        rows_of(&source, &table).await,
        before,
        "rows after recovery\n{script}"
    );

    // A gap an older bintrail recorded has no place: crossing it is refused.
    let mut conn = index.conn().await;
    conn.exec_drop(
        "UPDATE stream_gaps SET before_event_id = NULL WHERE gap_id = ?",
        (gap,),
    )
    .await
    .unwrap();
    conn.disconnect().await.ok();
    let out = bintrail(&[
        "recover",
        "--index-dsn",
        &index.dsn(),
        "--source-dsn",
        &source.dsn(None),
        "--schema",
        &db,
        "--table",
        "t",
        "--since",
        &utc(since),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("did not note where the gap sits"),
        "{stderr}"
    );
    assert_eq!(stream.stop().await, 0);
}

/// A gap's first binlog indexed by hand (`index --files`), then a change streamed, then the
/// fill: the stream's change lies among the ids of the gap's changes, which therefore cannot be
/// placed. The fill takes them out again and leaves the gap open; run again, it writes them
/// afresh, in one block, and `query` lists them in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_a_fill_the_stream_interleaved_is_taken_back_and_run_again() {
    let source = TestServer::start(Flavor::Mysql, &[]);
    let db = unique("weave");
    let table = format!("{db}.t");
    source
        .exec(&format!(
            "CREATE DATABASE {db}; CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR(20))"
        ))
        .await;
    let index = Index::new();
    let id = server_id();
    let mut flags = start_here(&source, true).await.flags();
    flags.extend([
        "--schemas".into(),
        db.clone(),
        "--on-gap".into(),
        "skip".into(),
    ]);
    let stream = Stream::start(&source, &index, id, &flags);
    source
        .exec(&format!("INSERT INTO {table} VALUES (1, 'a')"))
        .await;
    index.wait_caught_up(&source, id).await;
    assert_eq!(stream.stop().await, 0);

    // The gap spans two binlogs.
    let (first_file, _) = source_end(&source).await;
    source
        .exec(&format!(
            "UPDATE {table} SET v = 'a1' WHERE id = 1; FLUSH BINARY LOGS;
             UPDATE {table} SET v = 'a2' WHERE id = 1; FLUSH BINARY LOGS"
        ))
        .await;
    let (newest, _) = source_end(&source).await;
    let copy = copy_binlogs(&source);
    purge_to(&source, &newest.file).await;
    let stream = Stream::start(&source, &index, id, &flags);
    index.wait_caught_up(&source, id).await;
    let (gap, _) = the_gap(&index, id).await;

    // The gap's first binlog by hand, then a streamed change, then the fill.
    let (dsn, id_text) = (index.dsn(), id.to_string());
    let first_path = copy.join(&first_file.file).display().to_string();
    let out = bintrail(&[
        "index",
        "--index-dsn",
        &dsn,
        "--server-id",
        &id_text,
        "--schemas",
        &db,
        "--files",
        &first_path,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    source
        .exec(&format!("UPDATE {table} SET v = 'a3' WHERE id = 1"))
        .await;
    index.wait_caught_up(&source, id).await;
    let (code, stdout, stderr) = fill(&index, &source, gap, &copy, &db);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(
        stderr.contains("whose event_ids lie among those of the range's changes")
            && stderr.contains("taken out of the index again"),
        "{stderr}"
    );
    eprintln!("refused fill:\n{stderr}");
    assert_eq!(the_gap(&index, id).await.1, None, "the gap stays open");
    let streamed = vec![
        ins(&table, "1", row(1, "a")),
        upd(&table, "1", &["v"], row(1, "a2"), row(1, "a3")),
    ];
    assert_changes(&index.changes_of(id).await, &streamed);

    let (code, stdout, stderr) = fill(&index, &source, gap, &copy, &db);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("indexed 2 changes (2 new"), "{stdout}");
    let listed: Vec<serde_json::Value> = queried(&index, &db).into_iter().map(|c| c.2).collect();
    assert_eq!(
        listed,
        vec![row(1, "a"), row(1, "a1"), row(1, "a2"), row(1, "a3")],
        "query's order"
    );
    assert_eq!(stream.stop().await, 0);
}

//! `bintrail index`: binlog files copied from the source's data directory are indexed with the
//! same rows and the same change identity as `stream` indexed from the same source, and a
//! second pass over them (or a pass after the stream) writes nothing; a corrupted byte and a
//! truncated file stop the run there with the file and offset, nothing after it indexed.

use std::path::{Path, PathBuf};

use bintrail::position::BinlogPosition;
use mysql_async::prelude::Queryable;

use crate::stream_basic::server_id;
use crate::support::stream::{assert_changes, source_end, Index, Stream};
use crate::support::{bintrail, temp_dir, unique, Flavor, TestServer};

/// A stream's `stream_state` row as text.
async fn stream_state(index: &Index, id: u32) -> Option<(String, u64, u64)> {
    let mut conn = index.conn().await;
    let row = conn
        .query_first(format!(
            "SELECT binlog_file, binlog_position, events_indexed FROM stream_state WHERE server_id = {id}"
        ))
        .await
        .unwrap();
    conn.disconnect().await.ok();
    row
}

/// Identity columns of a stream's rows, in event_id order.
async fn identities(index: &Index, id: u32) -> Vec<(String, u64, u64, u64, String)> {
    let mut conn = index.conn().await;
    let rows = conn
        .query(format!(
            "SELECT binlog_file, start_pos, end_pos, row_in_event, CAST(event_timestamp AS CHAR) \
             FROM binlog_events WHERE stream_id = {id} ORDER BY event_id"
        ))
        .await
        .unwrap();
    conn.disconnect().await.ok();
    rows
}

/// Runs the workload (inserts, updates, deletes, a compressed transaction on MySQL, a rotate)
/// under a stream; returns the stream's id, its index, and copies of the binlog files that hold
/// the workload (all closed: the last one was rotated away from).
async fn streamed_workload(source: &TestServer, db: &str) -> (u32, Index, Vec<PathBuf>) {
    source
        .exec(&format!(
            "CREATE DATABASE {db};
             CREATE TABLE {db}.t (id INT PRIMARY KEY, s VARCHAR(200), n DECIMAL(10,2), j JSON)"
        ))
        .await;
    let (start, _) = source_end(source).await;
    let index = Index::new();
    let id = server_id();
    let flags: Vec<String> = vec![
        "--start-file".into(),
        start.file.clone(),
        "--start-pos".into(),
        start.pos.to_string(),
        "--schemas".into(),
        db.to_string(),
    ];
    let stream = Stream::start(source, &index, id, &flags);
    let mut conn = source.conn(None).await;
    conn.query_drop(format!(
        "INSERT INTO {db}.t VALUES (1, 'a', 1.50, '{{\"k\": [1, 2]}}'), (2, 'b', NULL, NULL), (3, 'c', -2.25, '[]');
         UPDATE {db}.t SET s = 'aa', n = 9.99 WHERE id = 1;
         DELETE FROM {db}.t WHERE id = 2"
    ))
    .await
    .unwrap();
    if source.flavor == Flavor::Mysql {
        conn.query_drop("SET SESSION binlog_transaction_compression = ON")
            .await
            .unwrap();
    }
    conn.query_drop(format!(
        "BEGIN; INSERT INTO {db}.t VALUES (4, REPEAT('z', 150), 4.00, NULL), (5, 'e', 5.00, '{{}}');
         UPDATE {db}.t SET s = 'cc' WHERE id = 3; COMMIT"
    ))
    .await
    .unwrap();
    if source.flavor == Flavor::Mysql {
        conn.query_drop("SET SESSION binlog_transaction_compression = OFF")
            .await
            .unwrap();
    }
    conn.query_drop("FLUSH BINARY LOGS").await.unwrap();
    if source.flavor != Flavor::Mysql {
        settled_binlog_checkpoint(&mut conn).await;
    }
    conn.query_drop(format!(
        "INSERT INTO {db}.t VALUES (6, 'f', 6.00, NULL);
         DELETE FROM {db}.t WHERE id = 4;
         UPDATE {db}.t SET j = JSON_OBJECT('x', 1) WHERE id = 5"
    ))
    .await
    .unwrap();
    conn.disconnect().await.ok();
    index.wait_caught_up(source, id).await;
    assert_eq!(stream.stop().await, 0, "{}", stream_log_hint());
    let (end, _) = source_end(source).await;
    source.exec("FLUSH BINARY LOGS").await;
    (id, index, copy_binlogs(source, &start, &end))
}

fn stream_log_hint() -> &'static str {
    "the stream did not stop cleanly"
}

/// Copies `start.file` … `end.file` from the source's data directory.
fn copy_binlogs(source: &TestServer, start: &BinlogPosition, end: &BinlogPosition) -> Vec<PathBuf> {
    let seq = |name: &str| -> u64 { name.rsplit('.').next().unwrap().parse().unwrap() };
    let dir = temp_dir("binlogs");
    let mut out = Vec::new();
    for n in seq(&start.file)..=seq(&end.file) {
        let name = format!("binlog.{n:06}");
        let to = dir.join(&name);
        std::fs::copy(source.data_dir().join(&name), &to).unwrap();
        out.push(to);
    }
    out
}

/// `bintrail index` of `files`; MariaDB with --source-dsn (its JSON columns are LONGTEXT, which
/// only the live schema tells apart).
fn index_files(
    source: &TestServer,
    index: &Index,
    id: u32,
    db: &str,
    files: &[PathBuf],
) -> std::process::Output {
    let id = id.to_string();
    let source_dsn = source.dsn(None);
    let mut args = vec![
        "index",
        "--index-dsn",
        &index.dsn(),
        "--server-id",
        &id,
        "--schemas",
        db,
        "--files",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    if source.flavor.is_mariadb() {
        args.splice(1..1, ["--source-dsn".to_string(), source_dsn]);
    }
    args.extend(files.iter().map(|p| p.display().to_string()));
    bintrail(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn text(out: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn files_match_the_stream(flavor: Flavor) {
    let source = TestServer::shared(flavor);
    let db = unique("files");
    let (id, streamed_index, files) = streamed_workload(source, &db).await;
    let streamed = streamed_index.changes_of(id).await;
    assert_eq!(streamed.len(), 11, "the workload's changes");

    // --dry-run: what would be indexed, per table, and nothing written.
    let dry = Index::new();
    let (dry_dsn, id_text, source_dsn) = (dry.dsn(), id.to_string(), source.dsn(None));
    let mut args = vec!["index", "--dry-run", "--index-dsn", &dry_dsn];
    args.extend(["--server-id", &id_text, "--schemas", &db]);
    if flavor == Flavor::Mariadb {
        args.extend(["--source-dsn", &source_dsn]);
    }
    let paths: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    args.push("--files");
    args.extend(paths.iter().map(String::as_str));
    let out = bintrail(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout.starts_with("dry run, nothing written: would index 11 changes from"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("\n  {db}.t: 6 inserts, 3 updates, 2 deletes")),
        "{stdout}"
    );
    assert_eq!(dry.changes().await, vec![], "a dry run writes nothing");

    let fresh = Index::new();
    let out = index_files(source, &fresh, id, &db, &files);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("indexed 11 changes (11 new"),
        "{}",
        text(&out)
    );
    assert_changes(&fresh.changes_of(id).await, &streamed);
    assert_eq!(
        identities(&fresh, id).await,
        identities(&streamed_index, id).await
    );

    let state_before = stream_state(&streamed_index, id).await;
    // Indexed again, and over what the stream indexed: nothing new, no duplicate.
    for index in [&fresh, &streamed_index] {
        let out = index_files(source, index, id, &db, &files);
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("(0 new, 11 already in the index)"),
            "{}",
            text(&out)
        );
        assert_changes(&index.changes_of(id).await, &streamed);
    }
    assert_eq!(
        stream_state(&streamed_index, id).await,
        state_before,
        "index moved the stream's checkpoint"
    );
    // The same files by --binlog-dir with --from/--to: nothing new either.
    let dir = files[0].parent().unwrap().display().to_string();
    let name = |p: &PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
    let (from, to) = (name(&files[0]), name(files.last().unwrap()));
    let mut args = vec![
        "index",
        "--index-dsn",
        &fresh.dsn(),
        "--server-id",
        &id.to_string(),
        "--schemas",
        &db,
        "--binlog-dir",
        &dir,
        "--from",
        &from,
        "--to",
        &to,
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    if flavor.is_mariadb() {
        args.extend(["--source-dsn".to_string(), source.dsn(None)]);
    }
    let out = bintrail(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("indexed 11 changes (0 new"),
        "{}",
        text(&out)
    );
    if flavor.is_mariadb() {
        // Without the source, a LONGTEXT that may be JSON is refused, never guessed.
        args.truncate(args.len() - 2);
        let out = bintrail(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("pass --source-dsn"),
            "{}",
            text(&out)
        );
    }
    // The stream's checkpoint was not moved by `index` (it only exists in the stream's index).
    let mut conn = fresh.conn().await;
    let states: Option<u64> = conn
        .query_first(format!(
            "SELECT COUNT(*) FROM stream_state WHERE server_id = {id}"
        ))
        .await
        .unwrap();
    assert_eq!(states, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_files_index_the_same_changes_as_the_stream() {
    files_match_the_stream(Flavor::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_files_index_the_same_changes_as_the_stream() {
    files_match_the_stream(Flavor::Mariadb).await;
}

/// Waits until MariaDB's new binlog file holds the BINLOG_CHECKPOINT naming itself: after a
/// rotation MariaDB writes it once the old file's transactions are committed, which under load
/// can be after the next transactions. The stream's checkpoint stays at the last commit before
/// such an inert event (no change follows it to prove it read), so the source's end would be
/// 40 bytes past a stream that has indexed everything.
async fn settled_binlog_checkpoint(conn: &mut mysql_async::Conn) {
    let file: String = conn
        .query_first("SHOW MASTER STATUS")
        .await
        .unwrap()
        .map(|row: mysql_async::Row| row.get(0).unwrap())
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let rows: Vec<mysql_async::Row> = conn
            .query(format!("SHOW BINLOG EVENTS IN '{file}'"))
            .await
            .unwrap();
        let settled = rows.iter().any(|r| {
            r.get::<String, _>("Event_type").as_deref() == Some("Binlog_checkpoint")
                && r.get::<String, _>("Info").as_deref() == Some(file.as_str())
        });
        if settled {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no BINLOG_CHECKPOINT naming {file} in it after 30 s ({} events)",
            rows.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Offset of the first event at or after `at` in `file` (walking the event sizes).
fn event_at_or_after(file: &Path, at: u64) -> u64 {
    let bytes = std::fs::read(file).unwrap();
    let mut pos = 4u64;
    while pos < at {
        let p = pos as usize;
        pos += u64::from(u32::from_le_bytes(bytes[p + 9..p + 13].try_into().unwrap()));
    }
    pos
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_byte_stops_at_its_event_and_a_truncated_file_at_its_last_whole_transaction() {
    let source = TestServer::shared(Flavor::Mysql);
    let db = unique("badfiles");
    let (id, streamed_index, files) = streamed_workload(source, &db).await;
    let identities_streamed = identities(&streamed_index, id).await;
    // The first file's second half holds some of the workload's rows events: corrupt the rows
    // event of the change after the first three.
    let first = files[0].file_name().unwrap().to_string_lossy().into_owned();
    let target = identities_streamed
        .iter()
        .filter(|r| r.0 == first)
        .nth(3)
        .expect("a fourth change in the first file")
        .clone();
    let event = event_at_or_after(&files[0], target.1);
    let mut bytes = std::fs::read(&files[0]).unwrap();
    bytes[event as usize + 25] ^= 0xff;
    std::fs::write(&files[0], &bytes).unwrap();

    let corrupt = Index::new();
    let out = index_files(source, &corrupt, id, &db, &files);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let expected = format!("checksum mismatch in {first} at offset {event}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&expected),
        "{}",
        text(&out)
    );
    let got = identities(&corrupt, id).await;
    assert!(
        got.iter().all(|r| r.0 == first && r.2 <= event),
        "nothing at or after the corrupt event: {got:?}"
    );
    assert_eq!(got[..], identities_streamed[..got.len()]);

    // A copy of the last file cut inside its last event.
    let last = files.last().unwrap();
    let len = std::fs::metadata(last).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(last).unwrap();
    file.set_len(len - 10).unwrap();
    let truncated = Index::new();
    let out = index_files(source, &truncated, id, &db, &files[1..]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let name = last.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("{name} ends inside the event at offset")),
        "{}",
        text(&out)
    );
}

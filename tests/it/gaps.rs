//! Purged binlogs are never silent: by default the stream refuses to resume over a purged range,
//! saying exactly what is gone; with `--on-gap=skip` it continues from the oldest binlog the
//! source still has and records the gap in `stream_gaps`. In position mode a binlog the stream
//! read to its end (ROTATE, or STOP) is no gap once purged; unread rows in one still are.

use std::time::Duration;

use bintrail::position::BinlogPosition;
use mysql_async::prelude::Queryable;

use crate::stream_basic::server_id;
use crate::support::stream::{assert_changes, ins, source_end, start_here, Index, Row, Stream};
use crate::support::{unique, wait_until, Flavor, TestServer};

async fn insert_rows(source: &TestServer, table: &str, ids: std::ops::Range<u32>) -> Vec<Row> {
    let mut conn = source.conn(None).await;
    let mut out = Vec::new();
    for i in ids {
        conn.query_drop(format!("INSERT INTO {table} VALUES ({i})"))
            .await
            .unwrap();
        out.push(ins(table, &i.to_string(), serde_json::json!({"id": i})));
    }
    conn.disconnect().await.ok();
    out
}

/// Rotates the binlog and purges every file before the new one.
async fn rotate_and_purge(source: &TestServer) {
    source.exec("FLUSH BINARY LOGS").await;
    let (end, _) = source_end(source).await;
    purge_to(source, &end.file).await;
}

/// Purges every binlog before `file`. MariaDB keeps the previous file until InnoDB has
/// checkpointed past it, so the purge is repeated until it took effect.
pub(crate) async fn purge_to(source: &TestServer, file: &str) {
    wait_until(
        Duration::from_secs(30),
        "the old binlogs to be purged",
        || async {
            source.exec(&format!("PURGE BINARY LOGS TO '{file}'")).await;
            let mut conn = source.conn(None).await;
            let logs: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await.unwrap();
            conn.disconnect().await.ok();
            if logs.len() == 1 {
                Ok(())
            } else {
                Err(format!("{} binlogs left", logs.len()))
            }
        },
    )
    .await;
}

async fn gap_count(index: &Index) -> (u64, Option<(String, String)>) {
    let mut conn = index.conn().await;
    let n: u64 = conn
        .query_first("SELECT COUNT(*) FROM stream_gaps")
        .await
        .unwrap()
        .unwrap();
    let last: Option<(String, String)> = conn
        .query_first("SELECT gap_from, gap_to FROM stream_gaps ORDER BY gap_id DESC LIMIT 1")
        .await
        .unwrap();
    conn.disconnect().await.ok();
    (n, last)
}

async fn purged(flavor: Flavor, gtid_mode: bool) {
    let source = TestServer::start(flavor, &[]);
    let schema = unique("gap");
    let table = format!("{schema}.t");
    source
        .exec(&format!(
            "CREATE DATABASE {schema}; CREATE TABLE {table} (id INT PRIMARY KEY)"
        ))
        .await;
    let index = Index::new();
    let id = server_id();
    let mut flags = start_here(&source, gtid_mode).await.flags();
    flags.extend(["--schemas".into(), schema.clone()]);

    let stream = Stream::start(&source, &index, id, &flags);
    let mut expected = insert_rows(&source, &table, 1..6).await;
    index.wait_caught_up(&source, id).await;
    assert_eq!(stream.stop().await, 0);
    let checkpoint = index.checkpoint(id).await;

    // Changes made while the stream is down, then purged before it comes back.
    insert_rows(&source, &table, 100..105).await;
    rotate_and_purge(&source).await;
    let (oldest, _) = source_end(&source).await;
    expected.extend(insert_rows(&source, &table, 200..203).await);

    let refused = Stream::start(&source, &index, id, &flags);
    let log_path = refused.log_path();
    assert_eq!(
        refused.exit_code().await,
        3,
        "a purged gap is a definite error"
    );
    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(log.contains("were purged from the source"), "{log}");
    assert!(log.contains("--on-gap=skip"), "{log}");
    if !gtid_mode {
        assert!(
            log.contains(&checkpoint.as_ref().unwrap().0.file),
            "names the purged file: {log}"
        );
        assert!(log.contains(&oldest.file), "names the oldest file: {log}");
    }
    assert_eq!(gap_count(&index).await.0, 0, "refusing records nothing");
    assert_eq!(
        index.checkpoint(id).await,
        checkpoint,
        "refusing moves nothing"
    );

    flags.extend(["--on-gap".into(), "skip".into()]);
    let skipping = Stream::start(&source, &index, id, &flags);
    expected.extend(insert_rows(&source, &table, 300..302).await);
    index.wait_caught_up(&source, id).await;
    assert_changes(&index.changes().await, &expected);
    let (gaps, last) = gap_count(&index).await;
    assert_eq!(gaps, 1, "one gap recorded");
    let (from, to) = last.unwrap();
    assert!(
        !from.is_empty() && !to.is_empty() && from != to,
        "{from} -> {to}"
    );
    wait_until(Duration::from_secs(10), "the skip to be logged", || async {
        let log = skipping.log();
        if log.contains("GAP IN THE INDEX") {
            Ok(())
        } else {
            Err(log)
        }
    })
    .await;
    assert_eq!(skipping.stop().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_position_mode_refuses_a_purged_gap_unless_told_to_skip() {
    purged(Flavor::Mysql, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_gtid_mode_refuses_a_purged_gap_unless_told_to_skip() {
    purged(Flavor::Mysql, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_gtid_mode_refuses_a_purged_gap_unless_told_to_skip() {
    purged(Flavor::Mariadb, true).await;
}

/// Waits until the stream's checkpoint is `at` with no rows of a transaction pending.
async fn wait_checkpoint(index: &Index, id: u32, at: &BinlogPosition, what: &str) {
    wait_until(Duration::from_secs(30), what, || async {
        match index.checkpoint(id).await {
            Some((p, _, 0)) if p == *at => Ok(()),
            other => Err(format!("checkpoint {other:?}, waiting for {at}")),
        }
    })
    .await;
}

/// Inserts rows and waits until the stream has indexed up to the source's end; fails at once,
/// with the stream's log, if the stream stopped instead.
async fn stream_more(
    source: &TestServer,
    index: &Index,
    stream: &Stream,
    table: &str,
    ids: std::ops::Range<u32>,
) -> Vec<Row> {
    let rows = insert_rows(source, table, ids).await;
    let (end, _) = source_end(source).await;
    wait_until(
        Duration::from_secs(60),
        "the new rows to be indexed",
        || async {
            let log = stream.log();
            assert!(
                !log.contains("were purged from the source"),
                "the stream refused: {log}"
            );
            match index.checkpoint(stream.server_id).await {
                Some((p, _, 0)) if p.compare(&end).is_some_and(|o| o.is_ge()) => Ok(()),
                other => Err(format!(
                    "checkpoint {other:?}, source end {end}; log:\n{log}"
                )),
            }
        },
    )
    .await;
    rows
}

/// A source of its own (binlogs get purged), a table, an index, and position-mode flags.
async fn position_mode_setup(flavor: Flavor) -> (TestServer, Index, u32, Vec<String>, String) {
    let source = TestServer::start(flavor, &[]);
    let schema = unique("rot");
    let table = format!("{schema}.t");
    source
        .exec(&format!(
            "CREATE DATABASE {schema}; CREATE TABLE {table} (id INT PRIMARY KEY)"
        ))
        .await;
    let mut flags = start_here(&source, false).await.flags();
    flags.extend(["--schemas".into(), schema]);
    (source, Index::new(), server_id(), flags, table)
}

/// Issue [G]: in position mode, a binlog the stream had read to its end (the source rotated,
/// twice, with no new transaction) and that was then purged is no gap: nothing in it was left
/// unread. A binlog that did get unread rows after the stream moved on still is one.
async fn rotated_while_idle(flavor: Flavor) {
    let (source, index, id, mut flags, table) = position_mode_setup(flavor).await;
    let stream = Stream::start(&source, &index, id, &flags);
    let mut expected = insert_rows(&source, &table, 1..4).await;
    index.wait_caught_up(&source, id).await;
    let (old_end, _) = source_end(&source).await;

    // The source rotates twice while the stream is idle: the old file ends in a ROTATE right
    // at the checkpoint, the middle one holds no transaction at all.
    source.exec("FLUSH BINARY LOGS").await;
    source.exec("FLUSH BINARY LOGS").await;
    let (newest, _) = source_end(&source).await;
    assert_ne!(newest.file, old_end.file);
    let newest_start = BinlogPosition::new(newest.file.clone(), 4);
    wait_checkpoint(
        &index,
        id,
        &newest_start,
        "the checkpoint to follow the rotates to the newest binlog's start",
    )
    .await;
    assert_eq!(stream.stop().await, 0);

    purge_to(&source, &newest.file).await;
    let resumed = Stream::start(&source, &index, id, &flags);
    expected.extend(stream_more(&source, &index, &resumed, &table, 10..13).await);
    assert_changes(&index.changes().await, &expected);
    assert_eq!(gap_count(&index).await.0, 0, "no gap recorded");
    assert!(!resumed.log().contains("GAP IN THE INDEX"));

    // A real gap after such a move: the stream moves to the next file's start, stops, rows
    // land in that file unread, and the file is purged.
    source.exec("FLUSH BINARY LOGS").await;
    let (moved_to, _) = source_end(&source).await;
    let moved_start = BinlogPosition::new(moved_to.file.clone(), 4);
    wait_checkpoint(
        &index,
        id,
        &moved_start,
        "the checkpoint to follow the rotate",
    )
    .await;
    assert_eq!(resumed.stop().await, 0);
    insert_rows(&source, &table, 100..103).await;
    rotate_and_purge(&source).await;
    let (oldest, _) = source_end(&source).await;

    let refused = Stream::start(&source, &index, id, &flags);
    let log_path = refused.log_path();
    assert_eq!(refused.exit_code().await, 3, "unread rows were purged");
    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(log.contains("were purged from the source"), "{log}");
    assert!(
        log.contains(&moved_start.to_string()),
        "names the checkpoint: {log}"
    );
    assert!(log.contains(&oldest.file), "names the oldest file: {log}");
    assert_eq!(gap_count(&index).await.0, 0, "refusing records nothing");

    flags.extend(["--on-gap".into(), "skip".into()]);
    let skipping = Stream::start(&source, &index, id, &flags);
    expected.extend(stream_more(&source, &index, &skipping, &table, 200..202).await);
    assert_changes(&index.changes().await, &expected);
    let (gaps, last) = gap_count(&index).await;
    assert_eq!(gaps, 1, "the real gap is recorded");
    assert_eq!(last.unwrap().0, moved_start.to_string(), "gap_from");
    assert_eq!(skipping.stop().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_position_mode_sees_no_gap_in_a_purged_binlog_it_read_to_its_end() {
    rotated_while_idle(Flavor::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_position_mode_sees_no_gap_in_a_purged_binlog_it_read_to_its_end() {
    rotated_while_idle(Flavor::Mariadb).await;
}

/// A clean shutdown ends the source's binlog with a STOP event and the restarted source writes a
/// new file: the stream reconnects, reads the STOP and moves on, so purging the old file is no
/// gap either.
async fn restarted_while_idle(flavor: Flavor) {
    let (source, index, id, flags, table) = position_mode_setup(flavor).await;
    let stream = Stream::start(&source, &index, id, &flags);
    let mut expected = insert_rows(&source, &table, 1..4).await;
    index.wait_caught_up(&source, id).await;
    let (old_end, _) = source_end(&source).await;

    source.restart();
    let (newest, _) = source_end(&source).await;
    assert_ne!(newest.file, old_end.file);
    wait_checkpoint(
        &index,
        id,
        &BinlogPosition::new(newest.file.clone(), 4),
        "the checkpoint to move past the STOP to the new binlog's start",
    )
    .await;
    assert_eq!(stream.stop().await, 0);

    purge_to(&source, &newest.file).await;
    let resumed = Stream::start(&source, &index, id, &flags);
    expected.extend(stream_more(&source, &index, &resumed, &table, 10..13).await);
    assert_changes(&index.changes().await, &expected);
    assert_eq!(gap_count(&index).await.0, 0, "no gap recorded");
    assert_eq!(resumed.stop().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_position_mode_sees_no_gap_in_a_purged_binlog_ended_by_a_restart() {
    restarted_while_idle(Flavor::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_position_mode_sees_no_gap_in_a_purged_binlog_ended_by_a_restart() {
    restarted_while_idle(Flavor::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb118_gtid_mode_refuses_a_purged_gap_unless_told_to_skip() {
    purged(Flavor::Mariadb118, true).await;
}

//! Purged binlogs are never silent: by default the stream refuses to resume over a purged range,
//! saying exactly what is gone; with `--on-gap=skip` it continues from the oldest binlog the
//! source still has and records the gap in `stream_gaps`.

use std::time::Duration;

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

/// Rotates the binlog and purges every file before the new one. MariaDB keeps the previous file
/// until InnoDB has checkpointed past it, so the purge is repeated until it took effect.
async fn rotate_and_purge(source: &TestServer) {
    source.exec("FLUSH BINARY LOGS").await;
    let (end, _) = source_end(source).await;
    wait_until(
        Duration::from_secs(30),
        "the old binlogs to be purged",
        || async {
            source
                .exec(&format!("PURGE BINARY LOGS TO '{}'", end.file))
                .await;
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

//! `bintrail status`: each stream's checkpoint, progress and recorded gaps, its lag behind the
//! source (zero when caught up, counted in GTIDs and bytes when not), the index's size, and
//! `--stale-after` as a monitoring check.

use mysql_async::prelude::Queryable;
use serde_json::Value;

use crate::stream_basic::server_id;
use crate::support::stream::{source_end, start_here, Index, Stream};
use crate::support::{bintrail, unique, Flavor, TestServer};

fn status(index: &Index, source: &TestServer, extra: &[&str]) -> (Option<i32>, String, String) {
    let (dsn, src) = (index.dsn(), source.dsn(None));
    let mut args = vec!["status", "--index-dsn", &dsn, "--source-dsn", &src];
    args.extend_from_slice(extra);
    let out = bintrail(&args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn json_status(index: &Index, source: &TestServer) -> Value {
    let (code, stdout, stderr) = status(index, source, &["--format", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

async fn insert(source: &TestServer, table: &str, ids: &[u32]) {
    for id in ids {
        source
            .exec(&format!("INSERT INTO {table} VALUES ({id})"))
            .await;
    }
}

/// `dedicated`: nothing else writes to `source`, so "caught up" is exact.
async fn reports_streams_lag_and_gaps(source: &TestServer, gtid_mode: bool, dedicated: bool) {
    reports_into(source, gtid_mode, dedicated, Flavor::Mysql).await;
}

/// [`reports_streams_lag_and_gaps`] with an index on the shared index server of `index_flavor`.
async fn reports_into(source: &TestServer, gtid_mode: bool, dedicated: bool, index_flavor: Flavor) {
    let schema = unique("status");
    let table = format!("{schema}.t");
    source
        .exec(&format!(
            "CREATE DATABASE {schema}; CREATE TABLE {table} (id INT PRIMARY KEY)"
        ))
        .await;
    let index = Index::new_of(index_flavor);
    let id = server_id();
    let mut flags = start_here(source, gtid_mode).await.flags();
    flags.extend(["--schemas".to_string(), schema.clone()]);
    let stream = Stream::start(source, &index, id, &flags);
    insert(source, &table, &[1, 2, 3]).await;
    index.wait_caught_up(source, id).await;
    if dedicated {
        let lag = &json_status(&index, source)["streams"][0]["lag"];
        assert_eq!(lag["bytes"], 0, "{lag}");
        assert_eq!(lag["seconds"], 0, "{lag}");
        if gtid_mode {
            assert_eq!(lag["gtids"], 0, "{lag}");
        }
        // An idle source leaves the checkpoint alone: caught up is not stale.
        let mut conn = index.conn().await;
        conn.exec_drop(
            "UPDATE stream_state SET last_checkpoint = last_checkpoint - INTERVAL 2 HOUR \
             WHERE server_id = ?",
            (id,),
        )
        .await
        .unwrap();
        conn.disconnect().await.ok();
        let (code, _, stderr) = status(&index, source, &["--stale-after", "1h"]);
        assert_eq!(code, Some(0), "caught up: {stderr}");
        let alone = bintrail(&["status", "--index-dsn", &index.dsn(), "--stale-after", "1h"]);
        assert_eq!(
            alone.status.code(),
            Some(1),
            "without the source, age is all there is"
        );
        let mut conn = index.conn().await;
        conn.query_drop("UPDATE stream_state SET last_checkpoint = UTC_TIMESTAMP(3)")
            .await
            .unwrap();
        conn.disconnect().await.ok();
    }
    assert_eq!(stream.stop().await, 0);
    let (end, _) = source_end(source).await;

    let s = json_status(&index, source);
    let stream_json = &s["streams"][0];
    assert_eq!(stream_json["server_id"], id, "{s:#}");
    assert_eq!(
        stream_json["mode"],
        if gtid_mode { "gtid" } else { "position" }
    );
    assert_eq!(stream_json["events_indexed"], 3, "{s:#}");
    assert_eq!(stream_json["gaps"], Value::Array(vec![]));
    let lag = &stream_json["lag"];
    assert_eq!(lag["source_position"], end.to_string(), "{s:#}");
    let (checkpoint, _, _) = index.checkpoint(id).await.unwrap();
    if checkpoint.file == end.file {
        assert_eq!(lag["bytes"], end.pos - checkpoint.pos, "{s:#}");
    }
    let tables = s["tables"].as_array().unwrap();
    let events = tables
        .iter()
        .find(|t| t["table"] == "binlog_events")
        .unwrap();
    assert_eq!(
        events["partitions"], 50,
        "this hour, 48 ahead, p_future: {s:#}"
    );

    // Behind: two more transactions the stopped stream has not read.
    insert(source, &table, &[4, 5]).await;
    let lag = &json_status(&index, source)["streams"][0]["lag"];
    assert!(lag["bytes"].as_u64().unwrap() > 0, "{lag}");
    if gtid_mode {
        assert!(lag["gtids"].as_u64().unwrap() >= 2, "{lag}");
    } else {
        assert_eq!(lag["gtids"], Value::Null);
    }

    // A recorded gap, an old checkpoint, and the monitoring check.
    let mut conn = index.conn().await;
    conn.exec_drop(
        "INSERT INTO stream_gaps (server_id, gap_from, gap_to, detected_at, reason) \
         VALUES (?, 'binlog.000001:4', 'binlog.000002:4', UTC_TIMESTAMP(3), 'purged')",
        (id,),
    )
    .await
    .unwrap();
    let (code, _, stderr) = status(&index, source, &["--stale-after", "1h"]);
    assert_eq!(code, Some(0), "{stderr}");
    conn.exec_drop(
        "UPDATE stream_state SET last_checkpoint = last_checkpoint - INTERVAL 2 HOUR \
         WHERE server_id = ?",
        (id,),
    )
    .await
    .unwrap();
    conn.disconnect().await.ok();
    let (code, text, stderr) = status(&index, source, &["--stale-after", "1h"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("stream {id}'s checkpoint is 2h00m old")),
        "{stderr}"
    );
    assert!(text.contains(&format!("stream {id} (")), "{text}");
    assert!(
        text.contains("skipped from binlog.000001:4 to binlog.000002:4 (purged)"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_gtid_status_reports_streams_lag_and_gaps() {
    let source = TestServer::start(Flavor::Mysql, &[]);
    reports_streams_lag_and_gaps(&source, true, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_position_status_reports_streams_lag_and_gaps() {
    reports_streams_lag_and_gaps(TestServer::shared(Flavor::Mariadb), false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_after_fails_when_no_stream_has_a_checkpoint() {
    let index = Index::new();
    let out = bintrail(&["status", "--index-dsn", &index.dsn(), "--stale-after", "5m"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no stream has a checkpoint"), "{stderr}");
    let out = bintrail(&[
        "status",
        "--index-dsn",
        &index.dsn(),
        "--stale-after",
        "soon",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

crate::on_each_mariadb_index!(
    /// The same on a MariaDB index server (10.11 and 11.8), each with a dedicated source.
    mariadb_index_status_reports_streams_lag_and_gaps,
    |flavor| async move {
        let source = TestServer::start(Flavor::Mysql, &[]);
        reports_into(&source, true, true, flavor).await;
    }
);

//! A different history is not resumed: a position-mode checkpoint names an offset in one
//! particular binlog of one particular server. When the source's binlogs were reset, or the DSN
//! now reaches another server, the stream refuses with a definite error instead of reading
//! someone else's events at that offset.

use crate::stream_basic::server_id;
use crate::support::stream::{start_here, Index, Stream};
use crate::support::{unique, Flavor, TestServer};

async fn seeded(source: &TestServer, schema: &str, index: &Index, id: u32) -> Vec<String> {
    source
        .exec(&format!("CREATE DATABASE IF NOT EXISTS {schema}; CREATE TABLE IF NOT EXISTS {schema}.t (id INT PRIMARY KEY)"))
        .await;
    let mut flags = start_here(source, false).await.flags();
    flags.extend(["--schemas".into(), schema.to_string()]);
    let stream = Stream::start(source, index, id, &flags);
    source
        .exec(&format!("INSERT INTO {schema}.t VALUES (1), (2)"))
        .await;
    index.wait_caught_up(source, id).await;
    assert_eq!(stream.stop().await, 0);
    flags
}

async fn refused(source: &TestServer, index: &Index, id: u32, flags: &[String], needle: &str) {
    let before = index.checkpoint(id).await;
    let stream = Stream::start(source, index, id, flags);
    let log_path = stream.log_path();
    assert_eq!(stream.exit_code().await, 3);
    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(log.contains(needle), "expected '{needle}' in: {log}");
    assert!(log.contains("--reset"), "says what to do: {log}");
    assert_eq!(
        index.checkpoint(id).await,
        before,
        "the checkpoint did not move"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_source_is_not_resumed_by_offset() {
    let source = TestServer::start(Flavor::Mysql, &[]);
    let schema = unique("hist");
    let index = Index::new();
    let id = server_id();
    let flags = seeded(&source, &schema, &index, id).await;
    // A new binlog.000001, created in a later second than the old one, with enough traffic to
    // reach past the checkpoint's offset.
    source.next_second().await;
    source.exec("RESET BINARY LOGS AND GTIDS").await;
    for i in 10..60 {
        source
            .exec(&format!("INSERT INTO {schema}.t VALUES ({i})"))
            .await;
    }
    refused(
        &source,
        &index,
        id,
        &flags,
        "is not the one the checkpoint was taken in",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_server_is_not_resumed_by_offset() {
    let first = TestServer::start(Flavor::Mysql, &[]);
    let second = TestServer::start(Flavor::Mysql, &[]);
    let schema = unique("hist");
    let index = Index::new();
    let id = server_id();
    let flags = seeded(&first, &schema, &index, id).await;
    refused(&second, &index, id, &flags, "was taken on source").await;
}

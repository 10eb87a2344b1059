//! Smoke tests of the throwaway servers themselves: each flavor starts, logs row-based binlog
//! with full images, has the expected GTID state, and serves a replica connection.

use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::BinlogStreamRequest;

use crate::support::{unique, Flavor, TestServer};

async fn smoke(flavor: Flavor) {
    let server = TestServer::start(flavor, &[]);
    let mut conn = server.conn(None).await;
    let (log_bin, format, image, metadata): (u8, String, String, String) = conn
        .query_first("SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (log_bin, format.as_str(), image.as_str(), metadata.as_str()),
        (1, "ROW", "FULL", "FULL")
    );
    let schema = unique("smoke");
    conn.query_drop(format!(
        "CREATE DATABASE {schema}; CREATE TABLE {schema}.t (id INT PRIMARY KEY); INSERT INTO {schema}.t VALUES (1)"
    ))
    .await
    .unwrap();
    match flavor {
        Flavor::Mysql => {
            let mode: String = conn
                .query_first("SELECT @@gtid_mode")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(mode, "ON");
            let executed: String = conn
                .query_first("SELECT @@gtid_executed")
                .await
                .unwrap()
                .unwrap();
            assert!(executed.contains(':'), "gtid_executed {executed:?}");
        }
        Flavor::Mariadb | Flavor::Mariadb118 => {
            let pos: String = conn
                .query_first("SELECT @@gtid_binlog_pos")
                .await
                .unwrap()
                .unwrap();
            assert!(pos.starts_with("0-"), "gtid_binlog_pos {pos:?}");
        }
    }
    conn.disconnect().await.unwrap();

    // A replica connection from the first binlog reads events.
    let replica = server.conn(None).await;
    let mut stream = replica
        .get_binlog_stream(BinlogStreamRequest::new(4_000_000_001))
        .await
        .unwrap();
    let mut events = 0;
    while events < 3 {
        let event = tokio::time::timeout(std::time::Duration::from_secs(30), stream.next())
            .await
            .expect("binlog event within 30 s")
            .expect("stream open")
            .expect("event decodes");
        assert!(event.header().event_size() > 0);
        events += 1;
    }
    stream.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_server_serves_a_row_binlog_with_gtids() {
    smoke(Flavor::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_server_serves_a_row_binlog_with_gtids() {
    smoke(Flavor::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb118_server_serves_a_row_binlog_with_gtids() {
    smoke(Flavor::Mariadb118).await;
}

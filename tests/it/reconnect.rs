//! Losing a connection is survived with nothing lost: a frozen (half-open) source connection is
//! detected by the read deadline and replaced, a cut one is reconnected, and restarts of the
//! source and of the index server are ridden out with capped backoff.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use serde_json::json;

use crate::stream_basic::server_id;
use crate::support::proxy::Proxy;
use crate::support::stream::{assert_changes, ins, start_here, Index, Row, Stream};
use crate::support::{unique, wait_until, Flavor, TestServer};

pub(crate) async fn insert(
    source: &TestServer,
    table: &str,
    ids: std::ops::Range<u32>,
) -> Vec<Row> {
    let mut conn = source.conn(None).await;
    let mut out = Vec::new();
    for i in ids {
        conn.query_drop(format!("INSERT INTO {table} VALUES ({i}, 'r{i}')"))
            .await
            .unwrap();
        out.push(ins(
            table,
            &i.to_string(),
            json!({"id": i, "v": format!("r{i}")}),
        ));
    }
    conn.disconnect().await.ok();
    out
}

pub(crate) async fn wait_for_log(stream: &Stream, needle: &str, deadline: Duration) {
    wait_until(deadline, needle, || async {
        let log = stream.log();
        if log.contains(needle) {
            Ok(())
        } else {
            Err(log)
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_cut_and_restarted_connections_are_survived_with_nothing_lost() {
    let source = TestServer::start(Flavor::Mysql, &[]);
    let index_server = TestServer::start(Flavor::Mysql, &["--skip-log-bin"]);
    let index = Index::on(&index_server);
    let proxy = Proxy::start(source.port).await;
    let schema = unique("net");
    let table = format!("{schema}.t");
    source
        .exec(&format!(
            "CREATE DATABASE {schema}; CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR(10))"
        ))
        .await;
    let id = server_id();
    let mut flags = start_here(&source, true).await.flags();
    flags.extend([
        "--schemas".into(),
        schema.clone(),
        "--heartbeat-interval".into(),
        "1".into(),
        "--source-dsn".into(),
        format!("mysql://root@127.0.0.1:{}/", proxy.port),
    ]);
    let stream = Stream::start(&source, &index, id, &flags);
    let mut expected = insert(&source, &table, 1..10).await;
    index.wait_caught_up(&source, id).await;

    // A hung network: bytes stop, sockets stay open. The read deadline (4 heartbeats) fires.
    proxy.freeze();
    let frozen_at = Instant::now();
    expected.extend(insert(&source, &table, 10..20).await);
    wait_for_log(
        &stream,
        "no event and no heartbeat",
        Duration::from_secs(30),
    )
    .await;
    let detected = frozen_at.elapsed();
    eprintln!("frozen source connection detected after {detected:?}");
    assert!(
        detected < Duration::from_secs(15),
        "detection took {detected:?}"
    );
    proxy.thaw();
    index.wait_caught_up(&source, id).await;

    // A cut network.
    proxy.cut();
    expected.extend(insert(&source, &table, 20..30).await);
    index.wait_caught_up(&source, id).await;

    // The source restarts, then the index server.
    source.restart();
    expected.extend(insert(&source, &table, 30..40).await);
    index.wait_caught_up(&source, id).await;
    index_server.restart();
    expected.extend(insert(&source, &table, 40..50).await);
    index.wait_caught_up(&source, id).await;

    assert_changes(&index.changes().await, &expected);
    let log = stream.log();
    assert!(
        log.contains("reconnecting and resuming from the last checkpoint"),
        "{log}"
    );
    assert!(log.contains("attempt="), "{log}");
    assert_eq!(stream.stop().await, 0);
}

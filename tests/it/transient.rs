//! What a restart can fix does not stop the stream: a lock held on `stream_state` past
//! `innodb_lock_wait_timeout` (error 1205) and an index set `super_read_only` for a while, as
//! during a failover (1290), are retried from the checkpoint with backoff; afterwards the stream
//! streams again and every change is in the index exactly once (full rows compared). Before
//! `classify`, both ended the stream with exit status 3, which the unit does not restart.

use std::time::Duration;

use mysql_async::prelude::Queryable;

use crate::reconnect::{insert, wait_for_log};
use crate::stream_basic::server_id;
use crate::support::stream::{assert_changes, start_here, Index, Stream};
use crate::support::{unique, Flavor, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_waits_and_a_read_only_index_are_retried_with_nothing_lost() {
    let source = TestServer::shared(Flavor::Mysql);
    let index_server = TestServer::start(
        Flavor::Mysql,
        &["--skip-log-bin", "--innodb-lock-wait-timeout=1"],
    );
    let index = Index::on(&index_server);
    let schema = unique("transient");
    let table = format!("{schema}.t");
    source
        .exec(&format!(
            "CREATE DATABASE {schema}; CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR(10))"
        ))
        .await;
    let id = server_id();
    let mut flags = start_here(source, true).await.flags();
    flags.extend(["--schemas".into(), schema.clone()]);
    let stream = Stream::start(source, &index, id, &flags);
    let mut expected = insert(source, &table, 1..5).await;
    index.wait_caught_up(source, id).await;

    // Another session holds the checkpoint row: the next flush waits, times out with 1205.
    let mut holder = index.conn().await;
    holder.query_drop("BEGIN").await.unwrap();
    holder
        .query_drop("SELECT * FROM stream_state FOR UPDATE")
        .await
        .unwrap();
    expected.extend(insert(source, &table, 5..10).await);
    wait_for_log(
        &stream,
        "Lock wait timeout exceeded",
        Duration::from_secs(60),
    )
    .await;
    holder.query_drop("ROLLBACK").await.unwrap();
    holder.disconnect().await.ok();
    index.wait_caught_up(source, id).await;
    assert_changes(&index.changes_of(id).await, &expected);

    // A failover sets the index read-only for a while.
    index_server.exec("SET GLOBAL super_read_only = ON").await;
    expected.extend(insert(source, &table, 10..15).await);
    wait_for_log(&stream, "super-read-only", Duration::from_secs(60)).await;
    index_server
        .exec("SET GLOBAL super_read_only = OFF; SET GLOBAL read_only = OFF")
        .await;
    index.wait_caught_up(source, id).await;
    assert_changes(&index.changes_of(id).await, &expected);

    let log = stream.log();
    assert!(
        log.contains("transient failure; reconnecting"),
        "both were retried: {log}"
    );
    assert_eq!(stream.stop().await, 0, "the stream was still running");
}

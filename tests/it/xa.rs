//! XA transactions (JTA application servers, Seata, ShardingSphere) on MySQL and MariaDB: a
//! committed XA is indexed exactly once, also when it commits in ONE PHASE, and also when the
//! commit comes later, after other transactions and after a restart of the stream; one rolled
//! back after its prepare never appears. While an XA is prepared and undecided its changes wait
//! in `xa_prepared`, not in `binlog_events`. Before: `XA START` was taken for DDL and the stream
//! stopped for good ("rows event … refers to table id …").

use mysql_async::prelude::Queryable;
use serde_json::json;

use crate::stream_basic::server_id;
use crate::support::stream::{assert_changes, ins, start_here, Index, Row, Stream};
use crate::support::{unique, Flavor, TestServer};

async fn run(source: &TestServer, sql: &str) {
    let mut conn = source.conn(None).await;
    conn.query_drop(sql).await.unwrap();
    conn.disconnect().await.unwrap();
}

fn row(table: &str, id: u32) -> Row {
    ins(
        table,
        &id.to_string(),
        json!({"id": id, "v": format!("r{id}")}),
    )
}

async fn prepared(index: &Index) -> Vec<(String, String)> {
    let mut conn = index.conn().await;
    let rows = conn
        .query("SELECT xid, pk_values FROM xa_prepared ORDER BY seq")
        .await
        .unwrap();
    conn.disconnect().await.ok();
    rows
}

async fn xa_on(flavor: Flavor) {
    let source = TestServer::shared(flavor);
    let db = unique("xa");
    let t = format!("{db}.t");
    source
        .exec(&format!(
            "CREATE DATABASE {db}; CREATE TABLE {t} (id INT PRIMARY KEY, v VARCHAR(20))"
        ))
        .await;
    let index = Index::new();
    let id = server_id();
    let mut flags = start_here(source, true).await.flags();
    flags.extend(["--schemas".into(), db.clone()]);
    let stream = Stream::start(source, &index, id, &flags);
    let ins_sql = |n: u32| format!("INSERT INTO {t} VALUES ({n}, 'r{n}')");
    run(
        source,
        &format!(
            "XA START 'a'; {}; {}; XA END 'a'; XA PREPARE 'a'; XA COMMIT 'a';
             XA START 'b'; {}; XA END 'b'; XA COMMIT 'b' ONE PHASE;
             XA START 'c'; {}; XA END 'c'; XA PREPARE 'c'; XA ROLLBACK 'c';
             XA START 'x''y', 'bq', 7; {}; XA END 'x''y', 'bq', 7; XA PREPARE 'x''y', 'bq', 7",
            ins_sql(1),
            ins_sql(2),
            ins_sql(3),
            ins_sql(4),
            ins_sql(5)
        ),
    )
    .await;
    run(source, &ins_sql(6)).await;
    index.wait_caught_up(source, id).await;
    let mut expected = vec![row(&t, 1), row(&t, 2), row(&t, 3), row(&t, 6)];
    assert_changes(&index.changes_of(id).await, &expected);
    assert_eq!(
        prepared(&index).await,
        vec![("X'782779',X'6271',7".to_string(), "5".to_string())],
        "the undecided XA waits in xa_prepared"
    );

    // The stream restarts while the XA is undecided; the decision comes afterwards.
    assert_eq!(stream.stop().await, 0);
    let stream = Stream::start(source, &index, id, &flags);
    run(source, "XA COMMIT 'x''y', 'bq', 7").await;
    index.wait_caught_up(source, id).await;
    expected.push(row(&t, 5));
    assert_changes(&index.changes_of(id).await, &expected);
    assert!(prepared(&index).await.is_empty());
    assert_eq!(stream.stop().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_xa_transactions_are_indexed_exactly_when_committed() {
    xa_on(Flavor::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_xa_transactions_are_indexed_exactly_when_committed() {
    xa_on(Flavor::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb118_xa_transactions_are_indexed_exactly_when_committed() {
    xa_on(Flavor::Mariadb118).await;
}

//! A group logged with ROLLBACK or ROLLBACK TO SAVEPOINT (it changed a non-transactional table,
//! so MariaDB, or MySQL without GTIDs, writes it whole): the non-transactional changes persist
//! and are indexed; the transactional changes of the rolled-back part never happened and are
//! not. Before, a ROLLBACK dropped every row of the group, including the ones that persisted,
//! and a ROLLBACK TO SAVEPOINT ended the transaction in the middle.

use serde_json::json;

use crate::stream_basic::server_id;
use crate::support::stream::{assert_changes, ins, start_here, upd, Index, Stream};
use crate::support::{unique, Flavor, TestServer};

async fn rollback_on(source: &TestServer, gtid_mode: bool) {
    let db = unique("rollback");
    let (m, i) = (format!("{db}.m"), format!("{db}.i"));
    source
        .exec(&format!(
            "CREATE DATABASE {db};
             CREATE TABLE {m} (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=MyISAM;
             CREATE TABLE {i} (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=InnoDB"
        ))
        .await;
    let index = Index::new();
    let id = server_id();
    let mut flags = start_here(source, gtid_mode).await.flags();
    flags.extend(["--schemas".into(), db.clone()]);
    let stream = Stream::start(source, &index, id, &flags);
    // In row format a non-transactional change is logged at once, in a group of its own,
    // unless one statement changes both kinds of table: then the group is logged whole, with
    // ROLLBACK (TO SAVEPOINT) at its end.
    source
        .exec(&format!(
            "INSERT INTO {m} VALUES (10, 'a'); INSERT INTO {i} VALUES (10, 'a');
             BEGIN; INSERT INTO {i} VALUES (1, 'i1'); INSERT INTO {m} VALUES (1, 'm1'); ROLLBACK;
             BEGIN; UPDATE {i} JOIN {m} USING (id) SET {i}.v = 'ib', {m}.v = 'mb'; ROLLBACK;
             BEGIN; INSERT INTO {i} VALUES (2, 'i2'); SAVEPOINT s1;
               UPDATE {i} JOIN {m} USING (id) SET {i}.v = 'ic', {m}.v = 'mc';
               ROLLBACK TO SAVEPOINT s1; INSERT INTO {i} VALUES (4, 'i4'); COMMIT;
             INSERT INTO {i} VALUES (5, 'i5')"
        ))
        .await;
    index.wait_caught_up(source, id).await;
    let row = |t: &str, n: u32, v: &str| ins(t, &n.to_string(), json!({"id": n, "v": v}));
    let set = |before: &str, after: &str| {
        upd(
            &m,
            "10",
            &["v"],
            json!({"id": 10, "v": before}),
            json!({"id": 10, "v": after}),
        )
    };
    assert_changes(
        &index.changes_of(id).await,
        &[
            row(&m, 10, "a"),
            row(&i, 10, "a"),
            row(&m, 1, "m1"),
            set("a", "mb"),
            // The statement's non-transactional part is logged before the transaction's group.
            set("mb", "mc"),
            row(&i, 2, "i2"),
            row(&i, 4, "i4"),
            row(&i, 5, "i5"),
        ],
    );
    let mut conn = source.conn(None).await;
    let live: Vec<(u32, String)> = mysql_async::prelude::Queryable::query(
        &mut conn,
        format!("SELECT id, v FROM {m} ORDER BY id"),
    )
    .await
    .unwrap();
    conn.disconnect().await.ok();
    assert_eq!(
        live,
        vec![(1, "m1".into()), (10, "mc".into())],
        "what persisted"
    );
    assert_eq!(stream.stop().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_rolled_back_groups_keep_exactly_what_persisted() {
    rollback_on(TestServer::shared(Flavor::Mariadb), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_without_gtids_rolled_back_groups_keep_exactly_what_persisted() {
    let source = TestServer::start(
        Flavor::Mysql,
        &["--gtid-mode=OFF", "--enforce-gtid-consistency=OFF"],
    );
    rollback_on(&source, false).await;
}

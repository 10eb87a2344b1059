//! The stream's core promise on both flavors and in both modes: every committed row change of
//! the selected tables is in the index exactly once, in commit order, with full before/after
//! images, the right type, pk_values and changed_columns; rolled-back work never appears.

use serde_json::json;

use crate::support::stream::{assert_changes, del, ins, start_here, upd, Index, Row, Stream};
use crate::support::{unique, Flavor, TestServer};

/// Creates `s1.{orders,items,notes}` and `s2.{users,events,audit}` under unique names.
pub async fn create_schemas(source: &TestServer) -> (String, String) {
    let (s1, s2) = (unique("s1"), unique("s2"));
    source
        .exec(&format!(
            "CREATE DATABASE {s1}; CREATE DATABASE {s2};
             CREATE TABLE {s1}.orders (id INT PRIMARY KEY, customer VARCHAR(20), amount DECIMAL(10,2));
             CREATE TABLE {s1}.items (line INT, order_id INT, sku VARCHAR(10), qty INT, PRIMARY KEY (order_id, line));
             CREATE TABLE {s1}.notes (body VARCHAR(20), n INT);
             CREATE TABLE {s2}.users (id BIGINT UNSIGNED PRIMARY KEY, name VARCHAR(20));
             CREATE TABLE {s2}.events (id INT PRIMARY KEY, kind VARCHAR(10));
             CREATE TABLE {s2}.audit (id INT PRIMARY KEY, what VARCHAR(20))"
        ))
        .await;
    (s1, s2)
}

/// Runs the mixed workload and returns the changes it must produce, in commit order.
pub async fn mixed_workload(source: &TestServer, s1: &str, s2: &str) -> Vec<Row> {
    let (o, i, n) = (
        format!("{s1}.orders"),
        format!("{s1}.items"),
        format!("{s1}.notes"),
    );
    let (u, e, a) = (
        format!("{s2}.users"),
        format!("{s2}.events"),
        format!("{s2}.audit"),
    );
    let digest = bintrail::encoding::image_digest;
    let x1 = digest(r#"{"body":"x","n":1}"#);
    source
        .exec(&format!(
            "INSERT INTO {o} VALUES (1, 'ann', 10.50);
             INSERT INTO {o} VALUES (2, 'bob', 20.00), (3, 'cy', 30.25);
             BEGIN;
               INSERT INTO {i} VALUES (1, 1, 'A', 2), (2, 1, 'B', 1);
               UPDATE {o} SET amount = 11.00 WHERE id = 1;
               INSERT INTO {u} VALUES (18446744073709551615, 'max');
             COMMIT;
             BEGIN;
               INSERT INTO {o} VALUES (99, 'ghost', 0.01);
               DELETE FROM {u};
             ROLLBACK;
             UPDATE {o} SET id = 10 WHERE id = 2;
             UPDATE {i} SET qty = qty + 1 WHERE order_id = 1;
             DELETE FROM {i} WHERE order_id = 1;
             INSERT INTO {n} VALUES ('x', 1), ('y', NULL);
             UPDATE {n} SET n = 2 WHERE body = 'y';
             DELETE FROM {n} WHERE body = 'x';
             BEGIN;
               INSERT INTO {e} VALUES (1, 'login');
               INSERT INTO {a} VALUES (1, 'login seen');
               UPDATE {e} SET kind = 'logout' WHERE id = 1;
             COMMIT"
        ))
        .await;
    vec![
        ins(
            &o,
            "1",
            json!({"id": 1, "customer": "ann", "amount": "10.50"}),
        ),
        ins(
            &o,
            "2",
            json!({"id": 2, "customer": "bob", "amount": "20.00"}),
        ),
        ins(
            &o,
            "3",
            json!({"id": 3, "customer": "cy", "amount": "30.25"}),
        ),
        ins(
            &i,
            "1|1",
            json!({"line": 1, "order_id": 1, "sku": "A", "qty": 2}),
        ),
        ins(
            &i,
            "1|2",
            json!({"line": 2, "order_id": 1, "sku": "B", "qty": 1}),
        ),
        upd(
            &o,
            "1",
            &["amount"],
            json!({"id": 1, "customer": "ann", "amount": "10.50"}),
            json!({"id": 1, "customer": "ann", "amount": "11.00"}),
        ),
        ins(
            &u,
            "18446744073709551615",
            json!({"id": 18446744073709551615u64, "name": "max"}),
        ),
        upd(
            &o,
            "10",
            &["id"],
            json!({"id": 2, "customer": "bob", "amount": "20.00"}),
            json!({"id": 10, "customer": "bob", "amount": "20.00"}),
        ),
        upd(
            &i,
            "1|1",
            &["qty"],
            json!({"line": 1, "order_id": 1, "sku": "A", "qty": 2}),
            json!({"line": 1, "order_id": 1, "sku": "A", "qty": 3}),
        ),
        upd(
            &i,
            "1|2",
            &["qty"],
            json!({"line": 2, "order_id": 1, "sku": "B", "qty": 1}),
            json!({"line": 2, "order_id": 1, "sku": "B", "qty": 2}),
        ),
        del(
            &i,
            "1|1",
            json!({"line": 1, "order_id": 1, "sku": "A", "qty": 3}),
        ),
        del(
            &i,
            "1|2",
            json!({"line": 2, "order_id": 1, "sku": "B", "qty": 2}),
        ),
        // notes has no key: its rows are keyed by a digest of the image.
        ins(&n, &x1, json!({"body": "x", "n": 1})),
        ins(
            &n,
            &digest(r#"{"body":"y","n":null}"#),
            json!({"body": "y", "n": null}),
        ),
        upd(
            &n,
            &digest(r#"{"body":"y","n":2}"#),
            &["n"],
            json!({"body": "y", "n": null}),
            json!({"body": "y", "n": 2}),
        ),
        del(&n, &x1, json!({"body": "x", "n": 1})),
        ins(&e, "1", json!({"id": 1, "kind": "login"})),
        ins(&a, "1", json!({"id": 1, "what": "login seen"})),
        upd(
            &e,
            "1",
            &["kind"],
            json!({"id": 1, "kind": "login"}),
            json!({"id": 1, "kind": "logout"}),
        ),
    ]
}

/// A server id no other test uses.
pub fn server_id() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1000);
    std::process::id() % 100_000 * 1000 + NEXT.fetch_add(1, Ordering::Relaxed)
}

async fn mixed(flavor: Flavor, gtid_mode: bool) {
    mixed_into(flavor, gtid_mode, Index::new()).await;
}

/// The mixed workload from a `flavor` source into `index`.
async fn mixed_into(flavor: Flavor, gtid_mode: bool, index: Index) {
    let source = TestServer::shared(flavor);
    let (s1, s2) = create_schemas(source).await;
    let id = server_id();
    let start = start_here(source, gtid_mode).await;
    let mut flags = start.flags();
    flags.extend(["--schemas".to_string(), format!("{s1},{s2}")]);
    let stream = Stream::start(source, &index, id, &flags);
    let expected = mixed_workload(source, &s1, &s2).await;
    index.wait_caught_up(source, id).await;
    assert_changes(&index.changes().await, &expected);
    assert_eq!(stream.stop().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_gtid_mode_indexes_exactly_the_committed_changes() {
    mixed(Flavor::Mysql, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_position_mode_indexes_exactly_the_committed_changes() {
    mixed(Flavor::Mysql, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_gtid_mode_indexes_exactly_the_committed_changes() {
    mixed(Flavor::Mariadb, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_position_mode_indexes_exactly_the_committed_changes() {
    mixed(Flavor::Mariadb, false).await;
}

/// MySQL 8.4+ tagged GTIDs (`uuid:tag:n`): indexed, checkpointed with their tag, and resumed
/// from (the tagged set goes back to the server in COM_BINLOG_DUMP_GTID's tagged form).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_tagged_gtids_are_checkpointed_and_resumed() {
    let source = TestServer::shared(Flavor::Mysql);
    let schema = unique("tag");
    let table = format!("{schema}.t");
    source
        .exec(&format!(
            "CREATE DATABASE {schema}; CREATE TABLE {table} (id INT PRIMARY KEY)"
        ))
        .await;
    let index = Index::new();
    let id = server_id();
    let mut flags = start_here(source, true).await.flags();
    flags.extend(["--schemas".to_string(), schema.clone()]);
    let tagged = |ids: &str| {
        format!("SET gtid_next = 'AUTOMATIC:bintrail_test'; INSERT INTO {table} VALUES {ids}; SET gtid_next = 'AUTOMATIC'")
    };
    let first = Stream::start(source, &index, id, &flags);
    source.exec(&tagged("(1), (2)")).await;
    index.wait_caught_up(source, id).await;
    let (_, set, _) = index.checkpoint(id).await.unwrap();
    assert!(
        set.unwrap_or_default().contains(":bintrail_test:"),
        "the tag is in the checkpoint"
    );
    assert_eq!(first.stop().await, 0);

    source.exec(&tagged("(3)")).await;
    source
        .exec(&format!("INSERT INTO {table} VALUES (4)"))
        .await;
    let second = Stream::start(source, &index, id, &flags);
    index.wait_caught_up(source, id).await;
    let row = |i: u32| ins(&table, &i.to_string(), json!({"id": i}));
    assert_changes(&index.changes().await, &[row(1), row(2), row(3), row(4)]);
    assert_eq!(second.stop().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb118_gtid_mode_indexes_exactly_the_committed_changes() {
    mixed(Flavor::Mariadb118, true).await;
}

crate::on_each_mariadb_index!(
    /// A MariaDB index server, 10.11 and 11.8 (JSON columns are LONGTEXT with a json_valid
    /// CHECK there).
    mariadb_index_from_mysql_gtid_mode_indexes_exactly_the_committed_changes,
    |flavor| mixed_into(Flavor::Mysql, true, Index::new_of(flavor))
);

//! `pk_values` is unambiguous and bounded, on real servers: a `|` or `\` inside a key value is
//! escaped (`\|`, `\\`, the established format); a table without a primary key is keyed by its
//! first UNIQUE key of NOT NULL columns; without one, by a SHA-256 of the row image (a 12 MB BLOB
//! row no longer makes a 16 MB key).

use mysql_async::prelude::Queryable;

use crate::stream_basic::server_id;
use crate::support::stream::{start_here, Index, Stream};
use crate::support::{unique, Flavor, TestServer};

async fn keys_on(flavor: Flavor) {
    let source = TestServer::shared(flavor);
    let db = unique("keys");
    source
        .exec(&format!(
            "CREATE DATABASE {db};
             CREATE TABLE {db}.pk (a VARCHAR(10), b VARCHAR(10), PRIMARY KEY (a, b));
             CREATE TABLE {db}.uk (n INT NULL, code VARCHAR(10) NOT NULL, x INT,
               UNIQUE KEY by_n (n), UNIQUE KEY by_code (code));
             CREATE TABLE {db}.nk (n INT, blob_col LONGBLOB)"
        ))
        .await;
    let index = Index::new();
    let id = server_id();
    let mut flags = start_here(source, true).await.flags();
    flags.extend(["--schemas".into(), db.clone()]);
    let stream = Stream::start(source, &index, id, &flags);
    source
        .exec(&format!(
            "INSERT INTO {db}.pk VALUES ('a|b', 'c'), ('a', 'b|c'), ('x\\\\', 'y');
             INSERT INTO {db}.uk VALUES (1, 'k|1', 10);
             UPDATE {db}.uk SET x = 11 WHERE code = 'k|1';
             INSERT INTO {db}.nk VALUES (1, REPEAT('z', 12 * 1024 * 1024))"
        ))
        .await;
    index.wait_caught_up(source, id).await;
    assert_eq!(stream.stop().await, 0);
    let mut conn = index.conn().await;
    let keys: Vec<(String, String, u64)> = conn
        .query(
            "SELECT table_name, pk_values, LENGTH(row_after) FROM binlog_events ORDER BY event_id",
        )
        .await
        .unwrap();
    conn.disconnect().await.ok();
    let got: Vec<(&str, &str)> = keys
        .iter()
        .map(|(t, k, _)| (t.as_str(), k.as_str()))
        .collect();
    assert_eq!(
        &got[..5],
        &[
            ("pk", r"a\|b|c"),
            ("pk", r"a|b\|c"),
            ("pk", r"x\\|y"),
            ("uk", r"k\|1"),
            ("uk", r"k\|1"),
        ],
        "{flavor:?}"
    );
    let (table, digest, image) = &keys[5];
    assert_eq!(table, "nk");
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert!(
        *image > 12 << 20,
        "the image itself is whole: {image} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_key_values_are_escaped_and_bounded() {
    keys_on(Flavor::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_key_values_are_escaped_and_bounded() {
    keys_on(Flavor::Mariadb).await;
}

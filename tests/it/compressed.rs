//! MariaDB `log_bin_compress=ON`: its compressed query and rows events (types 165–171) are
//! decoded, and the index of a workload is identical, row for row, to that of the same workload
//! on an uncompressed binlog. Before, they fell through unread and their rows were lost silently
//! while the checkpoint moved past them.

use crate::stream_basic::server_id;
use crate::support::stream::{assert_changes, start_here, Index, Stream};
use crate::support::{unique, Flavor, TestServer};

async fn index_workload(source: &TestServer, db: &str) -> Vec<crate::support::stream::Row> {
    source
        .exec(&format!(
            "CREATE DATABASE {db};
             CREATE TABLE {db}.t (id INT PRIMARY KEY, s VARCHAR(2000), b LONGBLOB, j JSON)"
        ))
        .await;
    let index = Index::new();
    let id = server_id();
    let mut flags = start_here(source, true).await.flags();
    flags.extend(["--schemas".into(), db.to_string()]);
    let stream = Stream::start(source, &index, id, &flags);
    source
        .exec(&format!(
            "INSERT INTO {db}.t VALUES (1, REPEAT('a', 500), REPEAT('x', 100000), '{{\"k\": [1, 2]}}'),
               (2, 'short', NULL, NULL), (3, REPEAT('é', 300), X'00FF', '[]');
             UPDATE {db}.t SET s = REPEAT('b', 700), b = NULL WHERE id = 1;
             BEGIN; DELETE FROM {db}.t WHERE id = 2; INSERT INTO {db}.t VALUES (4, 'x', NULL, NULL); COMMIT;
             DELETE FROM {db}.t WHERE id = 3"
        ))
        .await;
    index.wait_caught_up(source, id).await;
    assert_eq!(stream.stop().await, 0);
    index.changes_of(id).await
}

async fn compressed_matches_plain(flavor: Flavor) {
    let compressed = TestServer::start(
        flavor,
        &["--log-bin-compress=ON", "--log-bin-compress-min-len=10"],
    );
    let db = unique("compressed");
    let plain = index_workload(TestServer::shared(flavor), &db).await;
    assert_eq!(plain.len(), 7, "the uncompressed workload's changes");
    let from_compressed = index_workload(&compressed, &db).await;
    assert_changes(&from_compressed, &plain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_compressed_binlog_indexes_the_same_rows_as_uncompressed() {
    compressed_matches_plain(Flavor::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb118_compressed_binlog_indexes_the_same_rows_as_uncompressed() {
    compressed_matches_plain(Flavor::Mariadb118).await;
}

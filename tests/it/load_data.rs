//! The writer's two ways in: LOAD DATA LOCAL INFILE (an index server with `local_infile=ON`) and
//! multi-row INSERTs (the default of MySQL 8+ servers, and the fallback when a load is refused)
//! store byte-for-byte the same rows, whatever the keys and values hold (tab, newline, `\`,
//! NUL, `\N`, quotes, `|`).

use mysql_async::prelude::Queryable;

use crate::stream_basic::server_id;
use crate::support::stream::{start_here, Index, Stream};
use crate::support::{unique, wait_until, Flavor, TestServer};

/// Every column of binlog_events a change writes, event_id (allocation order only) and
/// stream_id (one per stream here) aside, as text, in history order.
async fn stored(index: &Index) -> Vec<Vec<Option<String>>> {
    let mut conn = index.conn().await;
    let rows: Vec<mysql_async::Row> = conn
        .query(
            "SELECT binlog_file, start_pos, end_pos, row_in_event, event_timestamp, gtid, \
             connection_id, schema_name, table_name, event_type, pk_values, HEX(pk_values), \
             changed_columns, row_before, row_after, schema_version, policy_version \
             FROM binlog_events ORDER BY event_id",
        )
        .await
        .unwrap();
    rows.into_iter()
        .map(|r| {
            (0..r.len())
                .map(|i| match r.as_ref(i).unwrap() {
                    mysql_async::Value::NULL => None,
                    v => Some(v.as_sql(true)),
                })
                .collect()
        })
        .collect()
}

/// A table whose keys and values hold every byte the LOAD DATA format gives a meaning.
const TRICKY: &str = "CREATE DATABASE {db} CHARACTER SET utf8mb4;
    CREATE TABLE {db}.t (k VARCHAR(40) NOT NULL, n INT NOT NULL, s TEXT NULL, \
     b VARBINARY(16) NULL, j JSON NULL, PRIMARY KEY (k, n)) DEFAULT CHARSET = utf8mb4;
    INSERT INTO {db}.t VALUES
      ('tab\\there', 1, 'line\\nbreak', X'00090A5C4E', '{\"a\\\\tb\": \"x\\\\ny\"}'),
      ('back\\\\slash', 2, '\\\\N', X'5C', '[\"\\\\\\\\N\"]'),
      ('nul\\0byte', 3, 'cr\\rlf\\r\\n', NULL, NULL),
      ('\\\\N', 4, NULL, X'', 'null'),
      ('', 5, '', X'00', '\"\"'),
      ('pipe|and\\'quote', 6, 'é😀\\t', X'FF', '{}');
    UPDATE {db}.t SET s = CONCAT(s, '\\t\\\\'), n = n + 10 WHERE n < 4;
    DELETE FROM {db}.t WHERE n = 5;";

async fn enable_local_infile(server: &TestServer, on: bool) {
    server
        .exec(&format!(
            "SET GLOBAL local_infile = {}",
            if on { "ON" } else { "OFF" }
        ))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_data_and_inserts_store_the_same_rows() {
    let source = TestServer::shared(Flavor::Mysql);
    let db = unique("load");
    let start = start_here(source, true).await;
    source.exec(&TRICKY.replace("{db}", &db)).await;
    // One index server that allows LOCAL INFILE, the shared one (MySQL's default: it does not).
    let by_load = Index::on(TestServer::index_with_load_data());
    let by_insert = Index::new();
    let mut flags = start.flags();
    flags.extend(["--schemas".to_string(), db.clone()]);
    let (a, b) = (server_id(), server_id());
    let load_stream = Stream::start(source, &by_load, a, &flags);
    let insert_stream = Stream::start(source, &by_insert, b, &flags);
    by_load.wait_caught_up(source, a).await;
    by_insert.wait_caught_up(source, b).await;
    let (load_log, insert_log) = (load_stream.log(), insert_stream.log());
    assert_eq!(load_stream.stop().await, 0);
    assert_eq!(insert_stream.stop().await, 0);
    assert!(
        !load_log.contains("local_infile=OFF"),
        "the LOAD DATA stream fell back to INSERTs: {load_log}"
    );
    assert!(
        insert_log.contains("local_infile=OFF"),
        "no log line says why INSERTs are used: {insert_log}"
    );
    let (loaded, inserted) = (stored(&by_load).await, stored(&by_insert).await);
    assert_eq!(loaded.len(), 6 + 3 + 1, "changes: {loaded:#?}");
    for (i, (l, s)) in loaded.iter().zip(&inserted).enumerate() {
        assert_eq!(l, s, "change {i} differs between LOAD DATA and INSERT");
    }
    assert_eq!(loaded.len(), inserted.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_load_falls_back_to_inserts_with_every_change_once() {
    let source = TestServer::shared(Flavor::Mysql);
    let db = unique("refused");
    let index_server = TestServer::start(Flavor::Mysql, &["--skip-log-bin", "--local-infile=ON"]);
    let index = Index::on(&index_server);
    source
        .exec(&format!(
            "CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(10))"
        ))
        .await;
    let id = server_id();
    let mut flags = start_here(source, true).await.flags();
    flags.extend(["--schemas".to_string(), db.clone()]);
    let stream = Stream::start(source, &index, id, &flags);
    source
        .exec(&format!("INSERT INTO {db}.t VALUES (1, 'a'), (2, 'b')"))
        .await;
    index.wait_caught_up(source, id).await;
    // The server stops allowing it under the running stream.
    enable_local_infile(&index_server, false).await;
    source
        .exec(&format!(
            "INSERT INTO {db}.t VALUES (3, 'c'); UPDATE {db}.t SET v = 'z' WHERE id = 1"
        ))
        .await;
    index.wait_caught_up(source, id).await;
    wait_until(
        std::time::Duration::from_secs(30),
        "the fallback's log line",
        || async {
            let log = stream.log();
            if log.contains("refused LOAD DATA LOCAL INFILE") {
                Ok(())
            } else {
                Err(log)
            }
        },
    )
    .await;
    assert_eq!(stream.stop().await, 0);
    let pks: Vec<(u8, String)> = index
        .changes()
        .await
        .into_iter()
        .map(|r| (r.kind, r.pk))
        .collect();
    assert_eq!(
        pks,
        [(1, "1"), (1, "2"), (1, "3"), (2, "1")]
            .map(|(k, p)| (k, p.to_string()))
            .to_vec()
    );
}

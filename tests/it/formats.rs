//! Source formats in the wild: binlog transaction compression
//! (`binlog_transaction_compression=ON`, transactions arrive as one TRANSACTION_PAYLOAD event)
//! and partial JSON updates (`binlog_row_value_options=PARTIAL_JSON`, PARTIAL_UPDATE_ROWS
//! events whose after image holds JSON diffs) must index exactly the rows the plain form does.
//! Each variant runs the same workload and is compared, change by change and in order, with the
//! plain run; the plain run itself is checked against the tables' final contents.
//!
//! MySQL 9.7 only: MariaDB has neither transaction payload compression nor partial JSON (its
//! JSON is a text column), so there is no MariaDB variant to compare.

use std::collections::HashMap;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use serde_json::Value;

use crate::stream_basic::server_id;
use crate::support::stream::{assert_changes, source_end, start_here, Index, Row, Stream};
use crate::support::{unique, wait_until, Flavor, TestServer};

/// How the workload's session writes its binlog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Session {
    /// The server's defaults.
    Plain,
    /// `binlog_row_value_options = 'PARTIAL_JSON'` (the row image stays FULL).
    PartialJson,
}

/// Tables with nested JSON documents, composite and unsigned keys, and no key at all.
fn schema_sql(s: &str) -> String {
    format!(
        "CREATE DATABASE {s};
         CREATE TABLE {s}.docs (id INT PRIMARY KEY, title VARCHAR(40) NOT NULL, doc JSON NOT NULL,
           meta JSON NULL, n INT NOT NULL);
         CREATE TABLE {s}.orders (id BIGINT UNSIGNED PRIMARY KEY, customer VARCHAR(20),
           amount DECIMAL(12,2), placed DATETIME(3), tags JSON);
         CREATE TABLE {s}.bulk (grp INT, seq INT, label VARCHAR(32), doc JSON,
           PRIMARY KEY (grp, seq));
         CREATE TABLE {s}.notes (kind ENUM('a','b','c'), body TEXT, doc JSON)"
    )
}

/// The workload: multi-row statements, a transaction of a few thousand rows, JSON_SET /
/// JSON_REPLACE / JSON_REMOVE updates (replace, insert and remove diffs; `[last]`; quoted keys;
/// temporal and decimal values inside documents; a NULL document; a diff that changes nothing;
/// a full rewrite next to partial columns), and deletes. Documents carry padding so that a diff
/// is smaller than the document and MySQL really logs it as a diff.
fn workload_sql(s: &str) -> String {
    let pad = "p".repeat(300);
    format!(
        "SET SESSION cte_max_recursion_depth = 10000;
         INSERT INTO {s}.docs VALUES
           (1, 'one', JSON_OBJECT('pad', '{pad}', 'user', JSON_OBJECT('name', 'ann',
              'tags', JSON_ARRAY('a', 'b', 'c'), 'address', JSON_OBJECT('city', 'Oslo', 'zip', '0150')),
              'score', 1.5e0, 'items', JSON_ARRAY(JSON_OBJECT('sku', 'x1', 'qty', 1),
              JSON_OBJECT('sku', 'x2', 'qty', 2))), NULL, 1),
           (2, 'two', JSON_OBJECT('pad', '{pad}', 'user', JSON_OBJECT('name', 'bob', 'tags', JSON_ARRAY()),
              'deep', CAST('{{\"l1\": {{\"l2\": {{\"l3\": {{\"l4\": [1, [2, [3, {{\"k\": \"v\"}}]]]}}}}}}}}' AS JSON)),
              JSON_OBJECT('m', 1, 'pad', '{pad}'), 2),
           (3, 'three', JSON_ARRAY(1, 2, JSON_OBJECT('a', JSON_ARRAY(3, 4)), 'x', '{pad}'),
              JSON_ARRAY('{pad}'), 3),
           (4, 'four', JSON_OBJECT('big', '{pad}'), NULL, 4);
         INSERT INTO {s}.orders VALUES
           (1, 'ann', 10.50, '2024-01-02 03:04:05.678', JSON_ARRAY('x', '{pad}')),
           (2, 'bob', 20.00, NULL, NULL),
           (18446744073709551615, 'max', -0.01, '1999-12-31 23:59:59.999', JSON_OBJECT('a', JSON_ARRAY()));
         UPDATE {s}.docs SET doc = JSON_SET(doc, '$.user.name', 'Åsa 😀', '$.user.address.city', 'Bergen')
           WHERE id = 1;
         UPDATE {s}.docs SET doc = JSON_REPLACE(doc, '$.items[1].qty', 5, '$.score', 2.25e0) WHERE id = 1;
         UPDATE {s}.docs SET doc = JSON_REMOVE(doc, '$.user.tags[0]', '$.items[last]') WHERE id = 1;
         UPDATE {s}.docs SET doc = JSON_SET(doc, '$.user.tags[9]', 'appended',
             '$.new', JSON_OBJECT('when', CAST('2024-01-02 03:04:05.5' AS DATETIME(1)),
             'day', CAST('2024-02-29' AS DATE), 'f', -0.5e0)),
           n = n + 10 WHERE id IN (1, 2);
         UPDATE {s}.docs SET doc = JSON_SET(doc, '$.deep.l1.l2.l3.l4[1][1][1].k', 'w',
             '$.deep.l1.l2.l3.l4[last]', JSON_ARRAY(7, 8)) WHERE id = 2;
         UPDATE {s}.docs SET doc = JSON_REPLACE(doc, '$[2].a[last]', 40, '$[0]', 'first'),
           meta = JSON_SET(meta, '$[0]', 'm') WHERE id = 3;
         UPDATE {s}.docs SET doc = JSON_SET(JSON_REMOVE(doc, '$.score'), '$.\"key with space\"', 'yes',
           '$.\"quo\\\\\"te\"', NULL) WHERE id = 1;
         UPDATE {s}.docs SET meta = JSON_SET(meta, '$.m', 2), n = n + 1 WHERE id IN (1, 2);
         UPDATE {s}.docs SET doc = JSON_OBJECT('replaced', TRUE), meta = JSON_SET(meta, '$.z', 0)
           WHERE id = 4;
         UPDATE {s}.docs SET title = CONCAT(title, '!'), doc = JSON_REMOVE(doc, '$.nothing');
         BEGIN;
           INSERT INTO {s}.bulk (grp, seq, label, doc)
             WITH RECURSIVE q(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM q WHERE i < 2999)
             SELECT i DIV 100, i MOD 100, CONCAT('row-', i), JSON_OBJECT('i', i, 'sq', i * i,
               'tags', JSON_ARRAY('t', i MOD 7), 'nested', JSON_OBJECT('pad', REPEAT('z', 60)))
             FROM q;
           UPDATE {s}.bulk SET doc = JSON_SET(doc, '$.nested.seen', TRUE, '$.tags[0]', 'u',
               '$.price', CAST(grp * 100 + seq + 0.25 AS DECIMAL(8,2)))
             WHERE grp < 10;
           UPDATE {s}.bulk SET doc = JSON_REMOVE(doc, '$.sq'), label = UPPER(label) WHERE seq = 7;
           DELETE FROM {s}.bulk WHERE seq >= 90;
         COMMIT;
         BEGIN;
           UPDATE {s}.orders SET amount = amount * 2 WHERE id < 10;
           INSERT INTO {s}.notes VALUES ('a', 'x', NULL), ('b', REPEAT('y', 3000), '{{\"e\": 1}}'),
             ('c', NULL, JSON_ARRAY());
           UPDATE {s}.docs SET doc = JSON_SET(doc, '$.order', 1) WHERE id = 1;
         COMMIT;
         UPDATE {s}.orders SET tags = JSON_ARRAY_APPEND(tags, '$', 'y') WHERE id = 1;
         UPDATE {s}.notes SET doc = JSON_SET(doc, '$.e', 2.50, '$.f', 'x') WHERE kind = 'b';
         DELETE FROM {s}.orders WHERE id = 2;
         DELETE FROM {s}.docs WHERE id = 4;
         DELETE FROM {s}.notes WHERE kind = 'a'"
    )
}

/// How the stream reads the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Reading {
    /// GTID mode (else position mode).
    gtid_mode: bool,
    /// Killed with SIGKILL once it has checkpointed inside the big transaction, then restarted.
    crash_mid_transaction: bool,
}

const GTID: Reading = Reading {
    gtid_mode: true,
    crash_mid_transaction: false,
};

/// What one run indexed, with the schema name taken out so runs in different schemas compare.
struct Run {
    changes: Vec<Row>,
    /// `Event_type` of every event the workload wrote, from `SHOW BINLOG EVENTS`.
    event_types: Vec<String>,
}

/// Creates `schema` on `source`, runs the workload in a session of the given kind, streams it
/// (as a backlog) into a fresh index, and returns what the index holds once caught up.
async fn run(source: &TestServer, schema: &str, session: Session, reading: Reading) -> Run {
    source.exec(&schema_sql(schema)).await;
    let (from, _) = source_end(source).await;
    let mut flags = start_here(source, reading.gtid_mode).await.flags();
    flags.extend(["--schemas".to_string(), schema.to_string()]);

    let mut conn = source.conn(None).await;
    if session == Session::PartialJson {
        conn.query_drop("SET SESSION binlog_row_value_options = 'PARTIAL_JSON'")
            .await
            .unwrap();
    }
    conn.query_drop(workload_sql(schema))
        .await
        .unwrap_or_else(|e| panic!("workload on {schema}: {e}"));
    let event_types: Vec<String> = conn
        .query_map(
            format!("SHOW BINLOG EVENTS IN '{}' FROM {}", from.file, from.pos),
            |row: mysql_async::Row| row.get::<String, _>(2).unwrap_or_default(),
        )
        .await
        .unwrap();
    conn.disconnect().await.ok();

    let index = Index::new();
    let id = server_id();
    if reading.crash_mid_transaction {
        // Small batches, so that checkpoints land inside the big (4,330-row) transaction.
        let mut small = flags.clone();
        small.extend(["--batch-size".to_string(), "7".to_string()]);
        let first = Stream::start(source, &index, id, &small);
        wait_until(
            Duration::from_secs(60),
            "a checkpoint inside the big transaction",
            || async {
                match index.checkpoint(id).await {
                    Some((_, _, rows_done)) if rows_done > 0 => Ok(()),
                    cp => Err(format!("checkpoint {cp:?}")),
                }
            },
        )
        .await;
        first.kill().await;
    }
    let stream = Stream::start(source, &index, id, &flags);
    caught_up(source, &index, &stream).await;
    let mut changes = index.changes().await;
    assert_eq!(stream.stop().await, 0, "stream on {schema} stops cleanly");
    let prefix = format!("{schema}.");
    for c in &mut changes {
        c.table = c.table.strip_prefix(&prefix).unwrap_or(&c.table).to_owned();
    }
    Run {
        changes,
        event_types,
    }
}

/// Waits for the stream to catch up; on failure, shows its log with the timeout.
async fn caught_up(source: &TestServer, index: &Index, stream: &Stream) {
    use futures_util::FutureExt;
    let wait = std::panic::AssertUnwindSafe(index.wait_caught_up(source, stream.server_id));
    if let Err(panic) = wait.catch_unwind().await {
        eprintln!("stream log:\n{}", stream.log());
        std::panic::resume_unwind(panic);
    }
}

fn count(types: &[String], name: &str) -> usize {
    types
        .iter()
        .filter(|t| t.eq_ignore_ascii_case(name))
        .count()
}

/// Checks the plain run against the source itself: the right number of changes per table and
/// kind, and the last after image of every remaining row equal to the row `SELECT` returns.
async fn check_plain_run(source: &TestServer, schema: &str, plain: &Run) {
    let per = |table: &str, kind: u8| {
        plain
            .changes
            .iter()
            .filter(|c| c.table == table && c.kind == kind)
            .count()
    };
    assert_eq!(per("docs", 1), 4);
    assert_eq!(per("bulk", 1), 3000);
    assert_eq!(per("bulk", 2), 1000 + 30, "updates of the big transaction");
    assert_eq!(per("bulk", 3), 300);
    assert_eq!(per("orders", 3), 1);
    assert_eq!(count(&plain.event_types, "Update_rows_partial"), 0);

    let mut last_after: HashMap<String, Value> = HashMap::new();
    for c in plain.changes.iter().filter(|c| c.table == "docs") {
        last_after.insert(c.pk.clone(), c.after.clone());
    }
    let mut conn = source.conn(Some(schema)).await;
    let rows: Vec<(i32, String, String, Option<String>, i32)> = conn
        .query("SELECT id, title, CAST(doc AS CHAR), CAST(meta AS CHAR), n FROM docs")
        .await
        .unwrap();
    conn.disconnect().await.ok();
    assert_eq!(rows.len(), 3);
    for (id, title, doc, meta, n) in rows {
        let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        let expected = serde_json::json!({
            "id": id,
            "title": title,
            "doc": parse(&doc),
            "meta": meta.as_deref().map(parse).unwrap_or(Value::Null),
            "n": n,
        });
        assert_eq!(last_after[&id.to_string()], expected, "docs row {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_json_updates_index_exactly_like_full_images() {
    let source = TestServer::shared(Flavor::Mysql);
    let (plain_schema, partial_schema) = (unique("fmt_plain"), unique("fmt_partial"));
    let plain = run(source, &plain_schema, Session::Plain, GTID).await;
    check_plain_run(source, &plain_schema, &plain).await;
    let partial = run(source, &partial_schema, Session::PartialJson, GTID).await;
    assert!(
        count(&partial.event_types, "Update_rows_partial") >= 10,
        "the session really logged partial JSON updates: {:?}",
        partial.event_types
    );
    assert_changes(&partial.changes, &plain.changes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_transactions_index_exactly_like_plain_ones() {
    let shared = TestServer::shared(Flavor::Mysql);
    let compressed = TestServer::start(Flavor::Mysql, &["--binlog-transaction-compression=ON"]);
    let plain_schema = unique("fmt_plain");
    let plain = run(shared, &plain_schema, Session::Plain, GTID).await;
    check_plain_run(shared, &plain_schema, &plain).await;
    let position = Reading {
        gtid_mode: false,
        ..GTID
    };
    let crash = Reading {
        crash_mid_transaction: true,
        ..position
    };
    for (session, reading) in [
        (Session::Plain, GTID),
        (Session::Plain, position),
        (Session::PartialJson, GTID),
        (Session::Plain, crash),
    ] {
        let schema = unique("fmt_zstd");
        let got = run(&compressed, &schema, session, reading).await;
        assert!(
            count(&got.event_types, "Transaction_payload") >= 10,
            "the server really compressed the transactions: {:?}",
            got.event_types
        );
        if session == Session::PartialJson {
            assert!(count(&got.event_types, "Update_rows_partial") >= 10);
        }
        println!("compressed, {session:?}, {reading:?}: comparing with the plain run");
        assert_changes(&got.changes, &plain.changes);
    }
}

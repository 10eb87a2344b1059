//! Index-side limits: batches are split by byte size so that no statement exceeds the index
//! server's max_allowed_packet (read from the server), and a single row too large for it stops
//! the stream once, with exit 3 and a message naming the table, primary key, binlog position and
//! the way forward, instead of a crash loop. Raising max_allowed_packet on the index (the way
//! forward the message gives) and starting again indexes everything.
//!
//! The index here is a dedicated server started with `--max-allowed-packet=1M`.

use mysql_async::prelude::Queryable;
use serde_json::{json, Value};

use crate::event_checks::{
    assert_checkpoint_before, assert_names_position_in, error_line, txns_mentioning,
};
use crate::stream_basic::server_id;
use crate::support::stream::{assert_changes, ins, source_end, start_here, Index, Row, Stream};
use crate::support::{base64, unique, Flavor, TestServer};

const KIB: usize = 1024;

/// `len` bytes that differ per `seed` (a small LCG: no long runs, every byte value).
fn blob(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as u8
        })
        .collect()
}

/// Inserts `(id, blob)` rows in one transaction; returns the expected changes.
async fn insert_blobs(source: &TestServer, table: &str, rows: &[(u32, Vec<u8>)]) -> Vec<Row> {
    let mut conn = source.conn(None).await;
    conn.query_drop("BEGIN").await.unwrap();
    for (id, b) in rows {
        conn.exec_drop(format!("INSERT INTO {table} VALUES (?, ?)"), (id, b))
            .await
            .unwrap();
    }
    conn.query_drop("COMMIT").await.unwrap();
    conn.disconnect().await.ok();
    rows.iter()
        .map(|(id, b)| ins(table, &id.to_string(), json!({"id": id, "b": base64(b)})))
        .collect()
}

/// The rows with every long string replaced by its length and a hash, so that a failed
/// comparison prints readably while still comparing every byte.
fn digest(rows: &[Row]) -> Vec<Row> {
    fn walk(v: &Value) -> Value {
        match v {
            Value::String(s) if s.len() > 64 => {
                let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                for b in s.bytes() {
                    h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
                }
                Value::String(format!("<{} chars, fnv {h:016x}>", s.len()))
            }
            Value::Object(m) => {
                Value::Object(m.iter().map(|(k, v)| (k.clone(), walk(v))).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(walk).collect()),
            v => v.clone(),
        }
    }
    rows.iter()
        .map(|r| Row {
            before: walk(&r.before),
            after: walk(&r.after),
            ..r.clone()
        })
        .collect()
}

/// Full-row comparison with long values digested.
fn assert_rows(actual: &[Row], expected: &[Row]) {
    assert_changes(&digest(actual), &digest(expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_split_below_max_allowed_packet_and_an_oversize_row_stops_once_with_the_fix() {
    let server = TestServer::start(
        Flavor::Mysql,
        &["--skip-log-bin", "--max-allowed-packet=1M"],
    );
    let index = Index::on(&server);
    {
        let mut conn = server.conn(None).await;
        let max: u64 = conn
            .query_first("SELECT @@max_allowed_packet")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(max, 1 << 20, "the index server's max_allowed_packet");
        conn.disconnect().await.ok();
    }
    let source = TestServer::shared(Flavor::Mysql);
    let schema = unique("pkt");
    let table = format!("{schema}.t");
    source
        .exec(&format!(
            "CREATE DATABASE {schema}; CREATE TABLE {table} (id INT PRIMARY KEY, b LONGBLOB)"
        ))
        .await;
    let id = server_id();
    let mut flags = start_here(source, true).await.flags();
    flags.extend([
        "--schemas".to_string(),
        schema.clone(),
        "--batch-size".to_string(),
        "1000".to_string(),
    ]);
    let stream = Stream::start(source, &index, id, &flags);

    // Ten 400 KiB rows in one transaction: about 5.5 MB of base64 for a 1 MiB packet.
    let rows: Vec<(u32, Vec<u8>)> = (1..=10).map(|i| (i, blob(i, 400 * KIB))).collect();
    let mut expected = insert_blobs(source, &table, &rows).await;
    index.wait_caught_up(source, id).await;
    assert_rows(&index.changes().await, &expected);

    // A small row, then one row whose statement alone exceeds the packet, then another.
    let (mark, _) = source_end(source).await;
    let small = insert_blobs(source, &table, &[(20, b"small".to_vec())]).await;
    let big = insert_blobs(source, &table, &[(7_777_777, blob(99, 1536 * KIB))]).await;
    let after = insert_blobs(source, &table, &[(30, b"after".to_vec())]).await;
    let log_path = stream.log_path();
    let code = stream.exit_code().await;
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    assert_eq!(
        code, 3,
        "an oversize row is a definite error (exit 3); log:\n{log}"
    );
    assert!(
        !log.contains("transient failure"),
        "an oversize row must not be retried:\n{log}"
    );

    let txns = txns_mentioning(source, &mark, &format!("({table})")).await;
    assert_eq!(txns.len(), 3, "small, big and after: {txns:#?}");
    let error = error_line(&log);
    assert!(
        error.contains(&table),
        "the error must name {table}: {error}"
    );
    assert!(
        error.contains("7777777"),
        "the error must name the primary key: {error}"
    );
    assert!(
        error.contains("max_allowed_packet"),
        "the error must say what to change: {error}"
    );
    assert_names_position_in(&error, &txns[1]);
    assert_checkpoint_before(&index.checkpoint(id).await, &txns[1]);
    // The small row before it may or may not have been flushed before the oversize one was met;
    // nothing from the oversize transaction or after it is indexed.
    let indexed = index.changes().await;
    let mut with_small = expected.clone();
    with_small.extend(small.clone());
    if indexed.len() == with_small.len() {
        eprintln!("the small row before the oversize one was indexed before the stop");
        assert_rows(&indexed, &with_small);
    } else {
        eprintln!("the small row before the oversize one was not indexed before the stop");
        assert_rows(&indexed, &expected);
    }

    // The way forward: raise max_allowed_packet on the index and start again.
    server.exec("SET GLOBAL max_allowed_packet = 8388608").await;
    let again = Stream::start(source, &index, id, &flags);
    index.wait_caught_up(source, id).await;
    expected.extend(small);
    expected.extend(big);
    expected.extend(after);
    assert_rows(&index.changes().await, &expected);
    let log = again.log();
    assert_eq!(again.stop().await, 0, "a SIGTERM stop exits 0; log:\n{log}");
}

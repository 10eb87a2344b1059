//! Index-side limits: batches are split by byte size so that no statement exceeds the index
//! server's max_allowed_packet (read from the server), and a single row too large for it stops
//! the stream once, with exit 3 and a message naming the table, primary key, binlog position and
//! the way forward, instead of a crash loop. Raising max_allowed_packet on the index (the way
//! forward the message gives) and starting again indexes everything.
//!
//! The index here is a dedicated server started with `--max-allowed-packet=1M`, so this module
//! has its own small index and process helpers (the shared ones target the shared index).

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use bintrail::position::{BinlogPosition, GtidSet};
use mysql_async::prelude::Queryable;
use serde_json::{json, Value};

use crate::event_checks::{
    assert_checkpoint_before, assert_names_position_in, error_line, txns_mentioning,
};
use crate::stream_basic::server_id;
use crate::support::stream::{assert_changes, ins, source_end, start_here, Row};
use crate::support::{bintrail, bintrail_cmd, temp_dir, unique, wait_until, Flavor, TestServer};

const KIB: usize = 1024;

/// schema_name, table_name, event_type, pk_values, changed_columns, row_before, row_after.
type EventRow = (
    String,
    String,
    u8,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// An index database on a server of this test's own.
struct OwnIndex {
    server: TestServer,
    db: String,
}

impl OwnIndex {
    /// Starts an index server with these mysqld arguments and runs `bintrail init` on it.
    fn start(args: &[&str]) -> OwnIndex {
        let server = TestServer::start(Flavor::Mysql, args);
        let db = unique("pktidx");
        let out = bintrail(&["init", "--index-dsn", &server.dsn(Some(&db))]);
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        OwnIndex { server, db }
    }

    fn dsn(&self) -> String {
        self.server.dsn(Some(&self.db))
    }

    /// Every change, in event_id order, as comparable rows.
    async fn changes(&self) -> Vec<Row> {
        let mut conn = self.server.conn(Some(&self.db)).await;
        let rows: Vec<EventRow> = conn
            .query(
                "SELECT schema_name, table_name, event_type, pk_values, changed_columns, \
                 row_before, row_after FROM binlog_events ORDER BY event_id",
            )
            .await
            .unwrap();
        conn.disconnect().await.ok();
        let json = |s: Option<String>| -> Value {
            s.map(|s| serde_json::from_str(&s).unwrap())
                .unwrap_or(Value::Null)
        };
        rows.into_iter()
            .map(|(schema, table, kind, pk, changed, before, after)| Row {
                table: format!("{schema}.{table}"),
                kind,
                pk,
                changed: json(changed),
                before: json(before),
                after: json(after),
            })
            .collect()
    }

    /// The stream's checkpoint: (binlog position, GTID set text, rows_done).
    async fn checkpoint(&self, server_id: u32) -> Option<(BinlogPosition, Option<String>, u64)> {
        let mut conn = self.server.conn(Some(&self.db)).await;
        let row: Option<(String, u64, Option<String>, u64)> = conn
            .exec_first(
                "SELECT binlog_file, binlog_position, gtid_set, rows_done FROM stream_state \
                 WHERE server_id = ?",
                (server_id,),
            )
            .await
            .unwrap();
        conn.disconnect().await.ok();
        row.map(|(f, p, g, r)| (BinlogPosition::new(f, p), g, r))
    }

    /// Waits until the checkpoint (GTID mode) covers the source's executed set.
    async fn wait_caught_up(&self, source: &TestServer, server_id: u32) {
        let (_, gtids) = source_end(source).await;
        let target: GtidSet = gtids.parse().unwrap();
        wait_until(
            Duration::from_secs(90),
            "the checkpoint to reach the source's end",
            || async {
                let cp = self.checkpoint(server_id).await;
                match &cp {
                    Some((_, Some(set), 0))
                        if set.parse::<GtidSet>().unwrap().contains_set(&target) =>
                    {
                        Ok(())
                    }
                    _ => Err(format!("checkpoint {cp:?}, source at {gtids}")),
                }
            },
        )
        .await
    }
}

/// A `bintrail stream` process writing into an [`OwnIndex`], killed when dropped.
struct Proc {
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn start(source: &TestServer, index: &OwnIndex, server_id: u32, extra: &[String]) -> Proc {
        let log = temp_dir("pktstream").join("stream.log");
        let mut args: Vec<String> = vec![
            "stream".into(),
            "--source-dsn".into(),
            source.dsn(None),
            "--index-dsn".into(),
            index.dsn(),
            "--server-id".into(),
            server_id.to_string(),
            "--checkpoint-interval".into(),
            "1".into(),
            "--log-format".into(),
            "text".into(),
        ];
        args.extend_from_slice(extra);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = bintrail_cmd(&argv)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Proc {
            child: Some(child),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit (by itself, or after `signal`); returns its status code.
    async fn wait_exit(&mut self, signal: Option<&str>) -> i32 {
        if let (Some(sig), Some(child)) = (signal, &self.child) {
            crate::support::stream::send_signal(child.id() as i32, sig);
        }
        let status = wait_until(Duration::from_secs(60), "bintrail stream to exit", || {
            let r = self.child.as_mut().expect("running").try_wait();
            let log = self.log();
            async move {
                match r {
                    Ok(Some(status)) => Ok(status),
                    _ => Err(log),
                }
            }
        })
        .await;
        self.child = None;
        status.code().unwrap_or(-1)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// Standard base64 with padding (what the index stores for BLOB values).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

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

#[test]
fn base64_matches_the_standard_alphabet_and_padding() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(&[0xff, 0xfe, 0x00, 0x01]), "//4AAQ==");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_split_below_max_allowed_packet_and_an_oversize_row_stops_once_with_the_fix() {
    let index = OwnIndex::start(&["--skip-log-bin", "--max-allowed-packet=1M"]);
    {
        let mut conn = index.server.conn(None).await;
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
    let mut stream = Proc::start(source, &index, id, &flags);

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
    let code = stream.wait_exit(None).await;
    let log = stream.log();
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
    index
        .server
        .exec("SET GLOBAL max_allowed_packet = 8388608")
        .await;
    let mut again = Proc::start(source, &index, id, &flags);
    index.wait_caught_up(source, id).await;
    expected.extend(small);
    expected.extend(big);
    expected.extend(after);
    assert_rows(&index.changes().await, &expected);
    let code = again.wait_exit(Some("TERM")).await;
    assert_eq!(code, 0, "a SIGTERM stop exits 0; log:\n{}", again.log());
}

//! Per-event checks: binlog_format and binlog_row_image are session-settable, so the startup
//! check of the globals is not enough. A rows event with a partial image (a session with
//! `binlog_row_image=MINIMAL` or `NOBLOB`) and DML logged as a statement (a session with
//! `binlog_format=STATEMENT`) each stop the stream with a definite error (exit 3) that names the
//! position, the table or statement kind and the fix, never the statement text. Everything
//! committed before the offending transaction is indexed, nothing of it or after it, and the
//! checkpoint does not pass it.
//!
//! Each case runs on a dedicated source: the offending events would stop other tests' streams
//! reading a shared server.
//!
//! Also home of the binlog helpers the DDL and packet tests share: the transactions that
//! mention a table, read back with `SHOW BINLOG EVENTS`, and the positions an error names.

use std::time::Duration;

use bintrail::position::{BinlogPosition, Gtid, GtidSet};
use mysql_async::prelude::Queryable;
use serde_json::json;

use crate::stream_basic::server_id;
use crate::support::stream::{assert_changes, ins, source_end, start_here, Index, Row, Stream};
use crate::support::{unique, wait_until, Flavor, TestServer};

/// One transaction as `SHOW BINLOG EVENTS` lists it.
#[derive(Clone, Debug)]
pub struct TxnSpan {
    /// Where it starts (its GTID event, or its first event).
    pub start: BinlogPosition,
    /// The offset after its last event.
    pub end: u64,
    /// Its GTID, when it has one.
    pub gtid: Option<String>,
    /// `Event_type: Info` of each of its events, for failure messages.
    pub events: Vec<String>,
}

impl TxnSpan {
    /// Whether `pos` lies inside this transaction's events.
    pub fn covers(&self, pos: &BinlogPosition) -> bool {
        pos.file == self.start.file && self.start.pos <= pos.pos && pos.pos < self.end
    }
}

/// The transactions after `from` whose events mention `needle` (e.g. `(schema.table)` for the
/// table maps, or a schema name for statements), in binlog order. Reads only `from`'s file. A
/// transaction runs from one GTID event to the next (both flavors write one per group here).
pub async fn txns_mentioning(
    source: &TestServer,
    from: &BinlogPosition,
    needle: &str,
) -> Vec<TxnSpan> {
    let mut conn = source.conn(None).await;
    let rows: Vec<(String, u64, String, u64, u64, String)> = conn
        .query(format!(
            "SHOW BINLOG EVENTS IN '{}' FROM {}",
            from.file, from.pos
        ))
        .await
        .unwrap();
    conn.disconnect().await.ok();
    let mut out = Vec::new();
    let mut current: Option<(TxnSpan, bool)> = None;
    for (file, pos, kind, _server, end, info) in rows {
        let starts = kind == "Gtid" || kind == "Anonymous_Gtid";
        if starts || current.is_none() {
            if let Some((span, true)) = current.take() {
                out.push(span);
            }
            current = Some((
                TxnSpan {
                    start: BinlogPosition::new(file.clone(), pos),
                    end,
                    gtid: starts.then(|| gtid_of(&info)).flatten(),
                    events: Vec::new(),
                },
                false,
            ));
        }
        let (span, hit) = current.as_mut().unwrap();
        span.end = end;
        span.events.push(format!("{pos} {kind}: {info}"));
        *hit |= info.contains(needle);
    }
    if let Some((span, true)) = current {
        out.push(span);
    }
    out
}

/// The GTID in a GTID event's Info: MySQL `SET @@SESSION.GTID_NEXT= 'uuid:N'`, MariaDB
/// `BEGIN GTID 0-1-5` (or `GTID 0-1-5` for a standalone statement).
fn gtid_of(info: &str) -> Option<String> {
    if let Some(rest) = info.split('\'').nth(1) {
        return Some(rest.to_string());
    }
    info.split_whitespace()
        .skip_while(|w| *w != "GTID")
        .nth(1)
        .map(str::to_string)
}

/// The `bintrail: error: …` line of a stream log (the definite error it exited with).
pub fn error_line(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("bintrail: error:"))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one 'bintrail: error:' line in the log:\n{log}"
    );
    lines[0].to_string()
}

/// Every `file:offset` of binlog `file` written in `text`.
pub fn positions_in(text: &str, file: &str) -> Vec<BinlogPosition> {
    let mut out = Vec::new();
    let needle = format!("{file}:");
    let mut rest = text;
    while let Some(i) = rest.find(&needle) {
        rest = &rest[i + needle.len()..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if let Ok(pos) = digits.parse() {
            out.push(BinlogPosition::new(file, pos));
        }
    }
    out
}

/// Asserts the error names a position inside `txn`.
pub fn assert_names_position_in(error: &str, txn: &TxnSpan) {
    let named = positions_in(error, &txn.start.file);
    assert!(
        named.iter().any(|p| txn.covers(p)),
        "the error names positions {named:?}, none inside the offending transaction \
         {}..{} ({:#?}):\n{error}",
        txn.start,
        txn.end,
        txn.events
    );
}

/// Asserts the stream's checkpoint does not cover `txn`: its position is at or before the
/// transaction's start, and its GTID set (if any) lacks the transaction's GTID.
pub fn assert_checkpoint_before(cp: &Option<(BinlogPosition, Option<String>, u64)>, txn: &TxnSpan) {
    let Some((pos, set, rows_done)) = cp else {
        panic!("the stream has no checkpoint at all");
    };
    if let (Some(set), Some(gtid)) = (set, &txn.gtid) {
        let set: GtidSet = set.parse().unwrap();
        let gtid: Gtid = gtid.parse().unwrap();
        assert!(
            !set.contains(&gtid),
            "the checkpoint's GTID set {set} covers the refused transaction {gtid}"
        );
    }
    if !pos.file.is_empty() {
        let order = pos.compare(&txn.start);
        assert!(
            order.is_some_and(|o| o.is_le()),
            "checkpoint {pos} (rows_done {rows_done}) is past the start {} of the refused transaction",
            txn.start
        );
    }
}

/// Waits until the stream logs its exit error; fails at once if `went_past` shows up in the
/// index (the stream indexed something committed after the offending transaction).
pub async fn wait_for_error(stream: &Stream, index: &Index, went_past: &str) {
    wait_until(
        Duration::from_secs(60),
        "the stream to stop with an error",
        || async {
            let log = stream.log();
            if log.contains("bintrail: error:") {
                return Ok(());
            }
            let changes = index.changes().await;
            if changes.iter().any(|c| c.pk == went_past) {
                panic!(
                    "the stream went past the offending transaction: the later change {went_past} \
                     is indexed; index: {changes:#?}\nlog:\n{log}"
                );
            }
            Err(format!("{} changes indexed; log:\n{log}", changes.len()))
        },
    )
    .await
}

/// One refusal scenario on a table `{schema}.t`.
struct Case<'a> {
    flavor: Flavor,
    gtid_mode: bool,
    /// Column list of `t`.
    columns: &'a str,
    /// Committed before: statements and the changes they make (built from the table name).
    before: &'a str,
    expected: fn(&str) -> Vec<Row>,
    /// The offending transaction, run on one session (session settings first).
    offending: &'a str,
    /// A change committed after it (its pk), which must never be indexed.
    after: &'a str,
    after_pk: &'a str,
    /// What the error line must say, besides the table / position.
    needles: &'a [&'a str],
    /// Whether the error must name `{schema}.t`.
    names_table: bool,
    /// Text of the statement that must not appear anywhere in the log.
    secret: Option<&'a str>,
}

async fn refused_mid_stream(case: Case<'_>) {
    // A dedicated source: an offending event stops every stream that reads it (a statement is
    // refused whatever --schemas says, a partial image in any table an unfiltered stream keeps),
    // so on a shared server it would stop other tests' streams too.
    let server = TestServer::start(case.flavor, &[]);
    let source = &server;
    let schema = unique("evchk");
    let table = format!("{schema}.t");
    source
        .exec(&format!(
            "CREATE DATABASE {schema}; CREATE TABLE {table} ({})",
            case.columns
        ))
        .await;
    let index = Index::new();
    let id = server_id();
    let mut flags = start_here(source, case.gtid_mode).await.flags();
    flags.extend(["--schemas".to_string(), schema.clone()]);
    let stream = Stream::start(source, &index, id, &flags);

    source.exec(&case.before.replace("{t}", &table)).await;
    index.wait_caught_up(source, id).await;
    let expected = (case.expected)(&table);
    assert_changes(&index.changes().await, &expected);

    let (mark, _) = source_end(source).await;
    source.exec(&case.offending.replace("{t}", &table)).await;
    source.exec(&case.after.replace("{t}", &table)).await;
    wait_for_error(&stream, &index, case.after_pk).await;
    let log_path = stream.log_path();
    let code = stream.exit_code().await;
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    assert_eq!(code, 3, "a definite error exits 3; log:\n{log}");

    let txns = txns_mentioning(source, &mark, &table).await;
    assert!(
        txns.len() >= 2,
        "expected the offending and the later transaction after {mark}: {txns:#?}"
    );
    let offending = &txns[0];
    // Data first: everything before indexed, nothing of it or after, checkpoint not past it.
    assert_changes(&index.changes().await, &expected);
    assert_checkpoint_before(&index.checkpoint(id).await, offending);
    // Then the message: position, table or statement kind, fix, never the statement's text.
    let error = error_line(&log);
    assert_names_position_in(&error, offending);
    if case.names_table {
        assert!(
            error.contains(&table),
            "the error must name {table}: {error}"
        );
    }
    for needle in case.needles {
        assert!(error.contains(needle), "expected '{needle}' in: {error}");
    }
    if let Some(secret) = case.secret {
        assert!(
            !log.contains(secret),
            "the log holds the statement's text ('{secret}'):\n{log}"
        );
    }
}

fn two_rows(table: &str) -> Vec<Row> {
    vec![
        ins(table, "1", json!({"id": 1, "v": "v1", "n": 1})),
        ins(table, "2", json!({"id": 2, "v": "v2", "n": 2})),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_session_with_minimal_row_image_stops_the_stream_before_that_transaction() {
    refused_mid_stream(Case {
        flavor: Flavor::Mysql,
        gtid_mode: true,
        columns: "id INT PRIMARY KEY, v VARCHAR(20), n INT",
        before: "INSERT INTO {t} VALUES (1, 'v1', 1); INSERT INTO {t} VALUES (2, 'v2', 2)",
        expected: two_rows,
        // The insert names every column (a full image); the update's images are partial. Nothing
        // of the transaction may be indexed.
        offending: "SET SESSION binlog_row_image = 'MINIMAL'; BEGIN; \
                    INSERT INTO {t} VALUES (3, 'v3', 3); UPDATE {t} SET n = 5 WHERE id = 1; COMMIT",
        after: "INSERT INTO {t} VALUES (4, 'v4', 4)",
        after_pk: "4",
        needles: &["binlog_row_image", "FULL", "--reset"],
        names_table: true,
        secret: None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_session_with_noblob_row_image_stops_the_stream_before_that_transaction() {
    refused_mid_stream(Case {
        flavor: Flavor::Mysql,
        gtid_mode: false,
        columns: "id INT PRIMARY KEY, n INT, body TEXT",
        before: "INSERT INTO {t} VALUES (1, 1, 'body one')",
        expected: |t| vec![ins(t, "1", json!({"id": 1, "n": 1, "body": "body one"}))],
        // NOBLOB leaves the unchanged TEXT column out of both images.
        offending: "SET SESSION binlog_row_image = 'NOBLOB'; UPDATE {t} SET n = 2 WHERE id = 1",
        after: "INSERT INTO {t} VALUES (4, 4, 'four')",
        after_pk: "4",
        needles: &["binlog_row_image", "FULL", "--reset"],
        names_table: true,
        secret: None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_session_with_statement_format_stops_the_stream_without_logging_the_statement() {
    refused_mid_stream(Case {
        flavor: Flavor::Mysql,
        gtid_mode: true,
        columns: "id INT PRIMARY KEY, v VARCHAR(40), n INT",
        before: "INSERT INTO {t} VALUES (1, 'v1', 1); INSERT INTO {t} VALUES (2, 'v2', 2)",
        expected: two_rows,
        // A CTE before the DML: the guard once looked only at the first word.
        offending: "SET SESSION binlog_format = 'STATEMENT'; \
                    WITH s AS (SELECT 'zebra_93517_secret' AS v) \
                    UPDATE {t} JOIN s SET {t}.v = s.v WHERE {t}.id = 1",
        after: "INSERT INTO {t} VALUES (4, 'v4', 4)",
        after_pk: "4",
        needles: &["WITH", "binlog_format", "ROW", "--reset"],
        names_table: false,
        secret: Some("zebra_93517_secret"),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_session_with_statement_format_stops_the_stream_without_logging_the_statement() {
    refused_mid_stream(Case {
        flavor: Flavor::Mariadb,
        gtid_mode: false,
        columns: "id INT PRIMARY KEY, v VARCHAR(40), n INT",
        before: "INSERT INTO {t} VALUES (1, 'v1', 1); INSERT INTO {t} VALUES (2, 'v2', 2)",
        expected: two_rows,
        // A leading comment with multi-byte text past byte 64: the guard once decoded only the
        // first 64 bytes, failed on the cut character and let the statement through.
        offending: "SET SESSION binlog_format = 'STATEMENT'; \
                    /* ééééééééééééééééééééééééééééééééééééééééé */ \
                    UPDATE {t} SET v = 'okapi_41822_secret' WHERE id = 1",
        after: "INSERT INTO {t} VALUES (4, 'v4', 4)",
        after_pk: "4",
        needles: &["UPDATE", "binlog_format", "ROW", "--reset"],
        names_table: false,
        secret: Some("okapi_41822_secret"),
    })
    .await;
}

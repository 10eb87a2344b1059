//! Losing a connection is survived with nothing lost: a frozen (half-open) source connection is
//! detected by the read deadline and replaced, a cut one is reconnected, and restarts of the
//! source and of the index server are ridden out with capped backoff. A slow connection is not a
//! dead one: an event that takes many heartbeats to arrive is read once, without a reconnect.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use serde_json::json;

use crate::stream_basic::server_id;
use crate::support::proxy::Proxy;
use crate::support::stream::{assert_changes, ins, source_end, start_here, Index, Row, Stream};
use crate::support::{unique, wait_until, Flavor, TestServer};

pub(crate) async fn insert(
    source: &TestServer,
    table: &str,
    ids: std::ops::Range<u32>,
) -> Vec<Row> {
    let mut conn = source.conn(None).await;
    let mut out = Vec::new();
    for i in ids {
        conn.query_drop(format!("INSERT INTO {table} VALUES ({i}, 'r{i}')"))
            .await
            .unwrap();
        out.push(ins(
            table,
            &i.to_string(),
            json!({"id": i, "v": format!("r{i}")}),
        ));
    }
    conn.disconnect().await.ok();
    out
}

/// What the stream logs when it gives up on a silent source connection.
const STALL: &str = "the connection is considered dead";

pub(crate) async fn wait_for_log(stream: &Stream, needle: &str, deadline: Duration) {
    wait_until(deadline, needle, || async {
        let log = stream.log();
        if log.contains(needle) {
            Ok(())
        } else {
            Err(log)
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_cut_and_restarted_connections_are_survived_with_nothing_lost() {
    let source = TestServer::start(Flavor::Mysql, &[]);
    let index_server = TestServer::start(Flavor::Mysql, &["--skip-log-bin"]);
    let index = Index::on(&index_server);
    let proxy = Proxy::start(source.port).await;
    let schema = unique("net");
    let table = format!("{schema}.t");
    source
        .exec(&format!(
            "CREATE DATABASE {schema}; CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR(10))"
        ))
        .await;
    let id = server_id();
    let mut flags = start_here(&source, true).await.flags();
    flags.extend([
        "--schemas".into(),
        schema.clone(),
        "--heartbeat-interval".into(),
        "1".into(),
        "--source-dsn".into(),
        format!("mysql://root@127.0.0.1:{}/", proxy.port),
    ]);
    let stream = Stream::start(&source, &index, id, &flags);
    let mut expected = insert(&source, &table, 1..10).await;
    index.wait_caught_up(&source, id).await;

    // A hung network: bytes stop, sockets stay open. The read deadline (4 heartbeats) fires.
    proxy.freeze();
    let frozen_at = Instant::now();
    expected.extend(insert(&source, &table, 10..20).await);
    wait_for_log(&stream, STALL, Duration::from_secs(30)).await;
    let detected = frozen_at.elapsed();
    eprintln!("frozen source connection detected after {detected:?}");
    assert!(
        detected < Duration::from_secs(15),
        "detection took {detected:?}"
    );
    proxy.thaw();
    index.wait_caught_up(&source, id).await;

    // A cut network.
    proxy.cut();
    expected.extend(insert(&source, &table, 20..30).await);
    index.wait_caught_up(&source, id).await;

    // The source restarts, then the index server.
    source.restart();
    expected.extend(insert(&source, &table, 30..40).await);
    index.wait_caught_up(&source, id).await;
    index_server.restart();
    expected.extend(insert(&source, &table, 40..50).await);
    index.wait_caught_up(&source, id).await;

    assert_changes(&index.changes().await, &expected);
    let log = stream.log();
    assert!(
        log.contains("reconnecting and resuming from the last checkpoint"),
        "{log}"
    );
    assert!(log.contains("attempt="), "{log}");
    assert_eq!(stream.stop().await, 0);
}

/// The large row's size: its event spans two protocol packets (16 MiB each at most).
const LARGE: usize = 20 << 20;
/// The slow link: the large event takes about 8 s, twice the read deadline of 4 heartbeats.
const SLOW_LINK: u64 = 2_500_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_slower_than_the_read_deadline_is_read_once_without_a_reconnect() {
    let source = TestServer::shared(Flavor::Mysql);
    let index = Index::new();
    let proxy = Proxy::start(source.port).await;
    let schema = unique("slow");
    let table = format!("{schema}.t");
    source
        .exec(&format!(
            "CREATE DATABASE {schema}; CREATE TABLE {table} (id INT PRIMARY KEY, v LONGTEXT)"
        ))
        .await;
    let id = server_id();
    let mut flags = start_here(source, true).await.flags();
    flags.extend([
        "--schemas".into(),
        schema.clone(),
        "--heartbeat-interval".into(),
        "1".into(),
        "--source-dsn".into(),
        format!("mysql://root@127.0.0.1:{}/", proxy.port),
    ]);
    let stream = Stream::start(source, &index, id, &flags);
    let mut expected = insert(source, &table, 1..2).await;
    index.wait_caught_up(source, id).await;

    proxy.throttle(SLOW_LINK);
    let before = proxy.bytes_to_clients();
    source
        .exec(&format!(
            "INSERT INTO {table} VALUES (2, REPEAT('x', {LARGE}))"
        ))
        .await;
    expected.push(ins(&table, "2", json!({"id": 2, "v": "x".repeat(LARGE)})));
    let sent = Instant::now();
    let end = source_end(source).await;
    let transferred = std::cell::Cell::new(None);
    // Fails at once if the stream gives up on the slow connection (it would start the event over
    // and over, never finishing it).
    wait_until(
        Duration::from_secs(60),
        "the large row to be indexed",
        || async {
            let log = stream.log();
            if log.contains(STALL) {
                panic!("the slow connection was taken for a dead one:\n{log}");
            }
            if transferred.get().is_none() && proxy.bytes_to_clients() - before >= LARGE as u64 {
                transferred.set(Some(sent.elapsed()));
            }
            index.covers(id, &end).await
        },
    )
    .await;
    let indexed = sent.elapsed();
    let transferred = transferred.get().unwrap_or(indexed);
    eprintln!(
        "a {LARGE}-byte row event over a {SLOW_LINK} B/s link: transferred in {transferred:?}, indexed after {indexed:?}"
    );
    assert!(
        transferred > Duration::from_secs(6),
        "the link was not slow enough to outlast 4 heartbeats (4 s): {transferred:?}"
    );

    proxy.thaw();
    assert_same_changes(&index.changes().await, &expected);
    let log = stream.log();
    assert!(!log.contains(STALL), "{log}");
    assert!(!log.contains("reconnecting"), "{log}");
    assert_eq!(stream.stop().await, 0);
}

/// [`assert_changes`] for rows too large to print: on a mismatch, says which row and where its
/// images part.
fn assert_same_changes(actual: &[Row], expected: &[Row]) {
    if actual == expected {
        return;
    }
    let brief = |r: &Row| {
        let text = |v: &serde_json::Value| v.to_string();
        format!(
            "{} kind={} pk={} after={} bytes",
            r.table,
            r.kind,
            r.pk,
            text(&r.after).len()
        )
    };
    let mut report = format!(
        "index holds {} changes, expected {}\n",
        actual.len(),
        expected.len()
    );
    for i in 0..actual.len().max(expected.len()) {
        match (actual.get(i), expected.get(i)) {
            (Some(a), Some(e)) if a == e => {}
            (a, e) => {
                let (a_text, e_text) = (
                    a.map(|r| r.after.to_string()).unwrap_or_default(),
                    e.map(|r| r.after.to_string()).unwrap_or_default(),
                );
                let parts = a_text
                    .bytes()
                    .zip(e_text.bytes())
                    .position(|(x, y)| x != y)
                    .unwrap_or(a_text.len().min(e_text.len()));
                report.push_str(&format!(
                    "#{i}\n  actual:   {}\n  expected: {}\n  row_after differs from byte {parts}\n",
                    a.map(brief).unwrap_or_default(),
                    e.map(brief).unwrap_or_default(),
                ));
            }
        }
    }
    panic!("{report}");
}

//! Resume cost does not grow with the index: start-up after a crash touches this stream's
//! checkpoint and nothing else of `binlog_events`, so a 2,000,000-row index starts like an empty
//! one. Asserted on the index server's row-read counters (deterministic); the two start-up times
//! are printed for the record, not asserted.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use crate::stream_basic::server_id;
use crate::support::stream::{start_here, Index, Stream};
use crate::support::{unique, wait_until, Flavor, TestServer};

const ROWS: u64 = 2_000_000;

/// Fills `binlog_events` with `ROWS` plausible rows of another stream by repeated doubling.
async fn fill(index: &Index) {
    let mut conn = index.conn().await;
    conn.query_drop(
        "INSERT INTO binlog_events (stream_id, binlog_file, start_pos, end_pos, row_in_event, \
         event_timestamp, gtid, schema_name, table_name, event_type, pk_values, row_after, schema_version) \
         VALUES (7, 'binlog.000001', 4, 100, 0, '2026-01-01 00:00:00', NULL, 'app', 'orders', 1, '1', '{\"id\": 1}', 1)",
    )
    .await
    .unwrap();
    let mut have = 1u64;
    while have < ROWS {
        let take = have.min(ROWS - have);
        conn.query_drop(format!(
            "INSERT INTO binlog_events (stream_id, binlog_file, start_pos, end_pos, row_in_event, \
             event_timestamp, gtid, schema_name, table_name, event_type, pk_values, row_after, schema_version) \
             SELECT stream_id, binlog_file, start_pos + {have}, end_pos + {have}, row_in_event, event_timestamp, \
             gtid, schema_name, table_name, event_type, CAST(start_pos + {have} AS CHAR), row_after, schema_version \
             FROM binlog_events WHERE stream_id = 7 LIMIT {take}"
        ))
        .await
        .unwrap();
        have += take;
    }
    conn.disconnect().await.ok();
}

async fn rows_read(server: &TestServer) -> u64 {
    let mut conn = server.conn(None).await;
    let rows: Vec<(String, String)> = conn
        .query("SHOW GLOBAL STATUS WHERE Variable_name LIKE 'Handler_read%'")
        .await
        .unwrap();
    conn.disconnect().await.ok();
    rows.iter().filter_map(|(_, v)| v.parse::<u64>().ok()).sum()
}

/// Starts the stream with an existing checkpoint; returns (time to "streaming", rows read).
async fn restart(
    source: &TestServer,
    server: &TestServer,
    index: &Index,
    id: u32,
    flags: &[String],
) -> (Duration, u64) {
    let reads_before = rows_read(server).await;
    let started = Instant::now();
    let stream = Stream::start(source, index, id, flags);
    wait_until(
        Duration::from_secs(60),
        "the stream to be streaming",
        || async {
            let log = stream.log();
            if log.contains("streaming") {
                Ok(())
            } else {
                Err(log)
            }
        },
    )
    .await;
    let took = started.elapsed();
    let reads = rows_read(server).await - reads_before;
    assert_eq!(stream.stop().await, 0);
    (took, reads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_touches_no_more_of_a_two_million_row_index_than_of_an_empty_one() {
    let source = TestServer::shared(Flavor::Mysql);
    let server = TestServer::start(
        Flavor::Mysql,
        &["--skip-log-bin", "--innodb-flush-log-at-trx-commit=2"],
    );
    let schema = unique("cost");
    source
        .exec(&format!(
            "CREATE DATABASE {schema}; CREATE TABLE {schema}.t (id INT PRIMARY KEY)"
        ))
        .await;
    let mut results = Vec::new();
    for big in [false, true] {
        let index = Index::on(&server);
        if big {
            fill(&index).await;
        }
        let id = server_id();
        let mut flags = start_here(source, true).await.flags();
        flags.extend(["--schemas".into(), schema.clone()]);
        // A first run leaves a checkpoint, as a crashed stream would.
        let first = Stream::start(source, &index, id, &flags);
        source
            .exec(&format!(
                "INSERT INTO {schema}.t VALUES ({})",
                results.len() + 1
            ))
            .await;
        index.wait_caught_up(source, id).await;
        first.kill().await;
        results.push(restart(source, &server, &index, id, &flags).await);
    }
    let ((t_empty, r_empty), (t_big, r_big)) = (results[0], results[1]);
    eprintln!(
        "start-up to streaming: empty index {t_empty:?} ({r_empty} rows read), {ROWS}-row index {t_big:?} ({r_big} rows read)"
    );
    // A scan or a DELETE over binlog_events would read millions of rows.
    assert!(
        r_big < r_empty + 10_000,
        "start-up read {r_big} index rows with a {ROWS}-row index, {r_empty} with an empty one"
    );
}

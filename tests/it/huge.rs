//! Huge transactions stream in bounded memory: the reader hands the writer chunks, and the
//! checkpoint records how far inside the transaction it got, so a crash in the middle resumes
//! there and nothing is written twice.

use std::time::Duration;

use mysql_async::prelude::Queryable;

use crate::stream_basic::server_id;
use crate::support::stream::{start_here, Index, Stream};
use crate::support::{unique, wait_until, Flavor, TestServer};

/// Inserts `n` rows `(id, v = 2 * id)` in ONE transaction.
async fn one_transaction(source: &TestServer, table: &str, n: u32) {
    let (schema, _) = table.split_once('.').unwrap();
    let mut conn = source.conn(None).await;
    conn.query_drop(format!(
        "INSERT INTO {table} SELECT a.n * 1000 + b.n + 1, 2 * (a.n * 1000 + b.n + 1) \
         FROM {schema}.nums a JOIN {schema}.nums b WHERE a.n * 1000 + b.n < {n} ORDER BY 1"
    ))
    .await
    .unwrap();
    conn.disconnect().await.ok();
}

async fn count(index: &Index) -> u64 {
    let mut conn = index.conn().await;
    let n: u64 = conn
        .query_first("SELECT COUNT(*) FROM binlog_events")
        .await
        .unwrap()
        .unwrap();
    conn.disconnect().await.ok();
    n
}

/// Checks every stored image of `table` in SQL: inserts with `v = 2 * id`, pk_values = id, each id
/// exactly once, in id order.
async fn verify(index: &Index, table: &str, n: u64) {
    let (schema, name) = table.split_once('.').unwrap();
    let mut conn = index.conn().await;
    let (rows, distinct, right, ordered): (u64, u64, u64, u64) = conn
        .exec_first(
            "SELECT COUNT(*), COUNT(DISTINCT pk_values), \
               SUM(event_type = 1 AND row_before IS NULL AND changed_columns IS NULL \
                   AND pk_values = CAST(row_after->'$.id' AS CHAR) \
                   AND row_after->'$.v' = 2 * row_after->'$.id' AND JSON_LENGTH(row_after) = 2), \
               SUM(rn = CAST(pk_values AS UNSIGNED)) \
             FROM (SELECT *, ROW_NUMBER() OVER (ORDER BY event_id) AS rn FROM binlog_events \
                   WHERE schema_name = ? AND table_name = ?) AS t",
            (schema, name),
        )
        .await
        .unwrap()
        .unwrap();
    conn.disconnect().await.ok();
    assert_eq!(
        (rows, distinct, right, ordered),
        (n, n, n, n),
        "rows, distinct keys, right images, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_row_transaction_streams_in_bounded_memory_and_resumes_mid_transaction() {
    let source = TestServer::start(Flavor::Mysql, &[]);
    let index_server = TestServer::start(
        Flavor::Mysql,
        &["--skip-log-bin", "--innodb-flush-log-at-trx-commit=2"],
    );
    let schema = unique("huge");
    source
        .exec(&format!(
            "CREATE DATABASE {schema}; USE {schema}; CREATE TABLE nums (n INT PRIMARY KEY);
             INSERT INTO nums WITH RECURSIVE s AS (SELECT 0 AS n UNION ALL SELECT n + 1 FROM s WHERE n < 999) SELECT n FROM s;
             CREATE TABLE small (id INT PRIMARY KEY, v BIGINT); CREATE TABLE big (id INT PRIMARY KEY, v BIGINT)"
        ))
        .await;
    let flags = |start: Vec<String>, table: &str| {
        let mut f = start;
        f.extend(["--tables".into(), format!("{schema}.{table}")]);
        f
    };

    // 100,000 rows in one transaction: the reference peak.
    let small_index = Index::on(&index_server);
    let id = server_id();
    let small_flags = flags(start_here(&source, true).await.flags(), "small");
    let small = Stream::start(&source, &small_index, id, &small_flags);
    one_transaction(&source, &format!("{schema}.small"), 100_000).await;
    small_index.wait_caught_up(&source, id).await;
    let small_peak = small.peak_rss_kib();
    assert_eq!(small.stop().await, 0);
    verify(&small_index, &format!("{schema}.small"), 100_000).await;

    // 1,000,000 rows in one transaction, killed in the middle and resumed.
    let big_index = Index::on(&index_server);
    let id = server_id();
    let big_flags = flags(start_here(&source, true).await.flags(), "big");
    let first = Stream::start(&source, &big_index, id, &big_flags);
    one_transaction(&source, &format!("{schema}.big"), 1_000_000).await;
    wait_until(
        Duration::from_secs(300),
        "a third of the transaction indexed",
        || async {
            let n = count(&big_index).await;
            if n >= 300_000 {
                Ok(())
            } else {
                Err(format!("{n} rows"))
            }
        },
    )
    .await;
    let first_peak = first.peak_rss_kib();
    first.kill().await;
    let (_, _, rows_done) = big_index.checkpoint(id).await.expect("a checkpoint");
    assert!(
        rows_done > 0,
        "the checkpoint is inside the transaction (rows events done: {rows_done})"
    );

    let second = Stream::start(&source, &big_index, id, &big_flags);
    let resumed = std::time::Instant::now();
    // Up to 700,000 rows left: minutes, not seconds, while the other tests load the machine.
    big_index
        .wait_caught_up_within(&source, id, Duration::from_secs(300))
        .await;
    eprintln!(
        "resumed after {rows_done} rows events; caught up in {:.1} s",
        resumed.elapsed().as_secs_f64()
    );
    let second_peak = second.peak_rss_kib();
    assert_eq!(second.stop().await, 0);
    verify(&big_index, &format!("{schema}.big"), 1_000_000).await;

    eprintln!(
        "peak RSS: 100k-row transaction {small_peak} KiB; 1M-row transaction {first_peak} KiB until the kill, {second_peak} KiB after resuming"
    );
    for peak in [first_peak, second_peak] {
        assert!(
            peak as f64 <= small_peak as f64 * 1.5,
            "1M-row peak {peak} KiB is more than 1.5 x the 100k-row peak {small_peak} KiB"
        );
    }
}

/// Memory is bounded by bytes, not only by rows: 64 rows of 2 MiB BLOBs in one transaction
/// (170 MiB of row text) are far fewer than --batch-size rows, so before, the whole transaction
/// sat in one chunk, again in the writer's batch and again in its statements. Chunks and
/// batches now close at 4 MiB of row text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_megabyte_rows_stream_in_memory_bounded_by_bytes() {
    let source = TestServer::shared(Flavor::Mysql);
    let schema = unique("wide");
    let table = format!("{schema}.t");
    source
        .exec(&format!(
            "CREATE DATABASE {schema}; CREATE TABLE {table} (id INT PRIMARY KEY, b LONGBLOB)"
        ))
        .await;
    let index = Index::new();
    let id = server_id();
    let mut flags = start_here(source, true).await.flags();
    flags.extend(["--schemas".into(), schema.clone()]);
    let stream = Stream::start(source, &index, id, &flags);
    source
        .exec(&format!(
            "INSERT INTO {table} WITH RECURSIVE s AS (SELECT 0 AS n UNION ALL SELECT n + 1 FROM s WHERE n < 63) \
             SELECT n, REPEAT(CHAR(65 + n % 26), 2097152) FROM s"
        ))
        .await;
    index.wait_caught_up(source, id).await;
    let peak = stream.peak_rss_kib();
    assert_eq!(stream.stop().await, 0);
    let mut conn = index.conn().await;
    let (rows, right): (u64, u64) = conn
        .exec_first(
            "SELECT COUNT(*), SUM(event_type = 1 AND row_before IS NULL AND JSON_LENGTH(row_after) = 2 \
               AND pk_values = CAST(row_after->'$.id' AS CHAR) \
               AND SHA2(FROM_BASE64(row_after->>'$.b'), 256) = \
                   SHA2(REPEAT(CHAR(65 + row_after->'$.id' % 26), 2097152), 256)) \
             FROM binlog_events WHERE schema_name = ?",
            (&schema,),
        )
        .await
        .unwrap()
        .unwrap();
    conn.disconnect().await.ok();
    assert_eq!((rows, right), (64, 64), "every row, every image whole");
    eprintln!("peak RSS with 64 rows of 2 MiB in one transaction: {peak} KiB");
    assert!(
        peak < 256 * 1024,
        "peak RSS {peak} KiB: memory is not bounded by bytes"
    );
}

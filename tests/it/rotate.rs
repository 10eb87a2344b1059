//! Retention: `bintrail rotate --retain` removes exactly the changes of the expired hours (whole
//! hourly partitions whose every second is older than the retention, and nothing younger), adds
//! partitions ahead, and a running stream keeps writing across partition boundaries, into the
//! catch-all partition and through the rotation itself.

use mysql_async::prelude::Queryable;

use bintrail::time::{format_utc, now, parse_utc};

use crate::stream_basic::server_id;
use crate::support::stream::{Index, Stream};
use crate::support::{bintrail, unique, Flavor, TestServer};

const H: i64 = 3_600;
const D: i64 = 86_400;

fn hour(t: i64) -> i64 {
    t.div_euclid(H) * H
}

/// Inserts one row per timestamp, each with the binlog event time set by `SET TIMESTAMP`.
async fn insert_at(source: &TestServer, table: &str, rows: &[(u32, i64)]) {
    let mut conn = source.conn(None).await;
    for (id, t) in rows {
        conn.query_drop(format!(
            "SET TIMESTAMP = {t}; INSERT INTO {table} VALUES ({id}, '{}')",
            format_utc(*t)
        ))
        .await
        .unwrap();
    }
    conn.disconnect().await.ok();
}

/// The ids in the index, in event_id order.
async fn ids(index: &Index) -> Vec<u32> {
    let mut conn = index.conn().await;
    let ids: Vec<String> = conn
        .query("SELECT pk_values FROM binlog_events ORDER BY event_id")
        .await
        .unwrap();
    conn.disconnect().await.ok();
    ids.iter().map(|s| s.parse().unwrap()).collect()
}

/// (partition name, upper bound as Unix time) in order; `None` for MAXVALUE.
async fn partitions(index: &Index) -> Vec<(String, Option<i64>)> {
    let mut conn = index.conn().await;
    let rows: Vec<(String, String)> = conn
        .exec(
            "SELECT PARTITION_NAME, PARTITION_DESCRIPTION FROM information_schema.PARTITIONS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'binlog_events' ORDER BY PARTITION_ORDINAL_POSITION",
            (index.db.as_str(),),
        )
        .await
        .unwrap();
    conn.disconnect().await.ok();
    rows.into_iter()
        .map(|(n, d)| {
            let upper = d
                .parse::<i64>()
                .ok()
                .map(|s| s - bintrail::time::TO_SECONDS_EPOCH);
            (n, upper)
        })
        .collect()
}

async fn in_future_partition(index: &Index) -> u64 {
    let mut conn = index.conn().await;
    let n: u64 = conn
        .query_first("SELECT COUNT(*) FROM binlog_events PARTITION (p_future)")
        .await
        .unwrap()
        .unwrap();
    conn.disconnect().await.ok();
    n
}

fn rotate(index: &Index, extra: &[&str]) -> String {
    let mut args = vec!["rotate", "--index-dsn"];
    let dsn = index.dsn();
    args.push(&dsn);
    args.extend_from_slice(extra);
    let out = bintrail(&args);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "rotate {extra:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The cutoff rotate reports: `... wholly older than YYYY-MM-DD HH:MM:SS UTC ...`.
fn reported_cutoff(out: &str) -> i64 {
    let at = out.find("older than ").expect("a cutoff in the report") + "older than ".len();
    parse_utc(&out[at..at + 19]).expect("a UTC time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_drops_exactly_the_expired_hours_and_streaming_continues() {
    rotate_on(TestServer::index()).await;
}

crate::on_each_mariadb_index!(
    /// The same on a MariaDB index server, 10.11 and 11.8 (no page compression there).
    mariadb_index_rotate_drops_exactly_the_expired_hours_and_streaming_continues,
    |flavor| rotate_on(TestServer::index_of(flavor))
);

async fn rotate_on(index_server: &'static TestServer) {
    let source = TestServer::shared(Flavor::Mysql);
    let schema = unique("rotate");
    let table = format!("{schema}.t");
    source
        .exec(&format!(
            "CREATE DATABASE {schema}; CREATE TABLE {table} (id INT PRIMARY KEY, at VARCHAR(20))"
        ))
        .await;
    // An index created three days ago with three hours of partitions, never rotated since.
    let n = now();
    let index = Index::made_at(index_server, n - 3 * D, 2).await;
    let before = partitions(&index).await;
    assert_eq!(before.len(), 4, "three hours and p_future: {before:?}");

    let id = server_id();
    let stream = Stream::of_schema(source, &index, id, &schema, &[]).await;
    let edge = hour(n - 2 * D);
    let rows = [
        (1, n - 3 * D + 600),
        (2, n - 2 * D - 3 * H),
        (3, edge - 1),
        (4, edge),
        (5, n - H),
        (6, n),
        (7, n + 5 * D),
    ];
    insert_at(source, &table, &rows).await;
    index.wait_caught_up(source, id).await;
    assert_eq!(ids(&index).await, vec![1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(
        in_future_partition(&index).await,
        6,
        "rows 2..7 beyond the hours made"
    );

    let dry = rotate(&index, &["--retain", "2d", "--dry-run"]);
    assert!(dry.contains("would drop"), "{dry}");
    assert_eq!(
        partitions(&index).await,
        before,
        "a dry run changes nothing"
    );

    let out = rotate(&index, &["--retain", "2d"]);
    let cutoff = reported_cutoff(&out);
    let expected: Vec<u32> = rows
        .iter()
        .filter(|(_, t)| hour(*t) + H > cutoff)
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(ids(&index).await, expected, "after rotate: {out}");
    if hour(cutoff) == edge {
        assert_eq!(expected, vec![4, 5, 6, 7], "the edge hour is kept whole");
    }
    let parts = partitions(&index).await;
    assert!(
        parts.iter().all(|(_, u)| u.is_none_or(|u| u > cutoff)),
        "no expired partition is left: {parts:?}"
    );
    let ahead = parts
        .iter()
        .filter(|(_, u)| u.is_some_and(|u| u > hour(now()) + H))
        .count();
    assert!(ahead >= 48, "48 hours ahead are ready: {parts:?}");
    assert_eq!(
        in_future_partition(&index).await,
        1,
        "only the row 5 days ahead"
    );

    // The stream kept running through the rotation and keeps writing across hours.
    let n2 = now();
    insert_at(source, &table, &[(8, n2), (9, n2 + H), (10, n2 + 60 * D)]).await;
    index.wait_caught_up(source, id).await;
    let mut after = expected.clone();
    after.extend([8, 9, 10]);
    assert_eq!(ids(&index).await, after);
    assert_eq!(
        rotate(&index, &["--retain", "2d"])
            .matches("dropped")
            .count(),
        0,
        "a second run has nothing to drop"
    );
    assert_eq!(stream.stop().await, 0);
}

/// While another rotate holds the index's lock, a rotate changes nothing and says why (exit 1:
/// running it again later succeeds); a dry run still plans; once released, rotate runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_rotate_stops_while_another_holds_the_index_lock() {
    let server = TestServer::index();
    let index = Index::made_at(server, now() - 3 * D, 2).await;
    let mut conn = server.conn(None).await;
    let lock = bintrail::history::rotate::lock_name(&index.db);
    let held: Option<i64> = conn
        .exec_first("SELECT GET_LOCK(?, 0)", (&lock,))
        .await
        .unwrap();
    assert_eq!(held, Some(1));
    let before = partitions(&index).await;
    let dsn = index.dsn();
    let args = ["rotate", "--index-dsn", &dsn, "--retain", "2d"];
    let out = bintrail(&args);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("another bintrail rotate is running"),
        "{said}"
    );
    assert!(said.contains(&lock), "{said}");
    assert_eq!(partitions(&index).await, before, "nothing changed");
    let dry = bintrail(&["rotate", "--index-dsn", &dsn, "--retain", "2d", "--dry-run"]);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );

    let _: Option<i64> = conn
        .exec_first("SELECT RELEASE_LOCK(?)", (&lock,))
        .await
        .unwrap();
    conn.disconnect().await.ok();
    let out = bintrail(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(partitions(&index).await, before, "the expired hours went");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_refuses_an_unpartitioned_table_and_says_how_to_fix_it() {
    let index = Index::uninitialised(TestServer::index());
    TestServer::index()
        .exec(&format!(
            "CREATE DATABASE {db}; CREATE TABLE {db}.binlog_events (event_id BIGINT PRIMARY KEY, \
             event_timestamp DATETIME NOT NULL)",
            db = index.db
        ))
        .await;
    let out = bintrail(&["rotate", "--index-dsn", &index.dsn(), "--retain", "7d"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("is not partitioned") && stderr.contains("ALTER TABLE"),
        "{stderr}"
    );
    let out = bintrail(&["rotate", "--index-dsn", &index.dsn(), "--retain", "30m"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "retention below an hour is a usage error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_every_keeps_partitions_ahead_until_sigterm() {
    let index = Index::made_at(TestServer::index(), now() - 2 * H, 0).await;
    let dsn = index.dsn();
    let mut child = crate::support::bintrail_cmd(&[
        "rotate",
        "--index-dsn",
        &dsn,
        "--ahead",
        "3",
        "--every",
        "1m",
        "--log-format",
        "text",
    ])
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    crate::support::wait_until(
        std::time::Duration::from_secs(30),
        "the first rotation to add hours ahead",
        || async {
            let parts = partitions(&index).await;
            let ahead = parts
                .iter()
                .filter(|(_, u)| u.is_some_and(|u| u > hour(now()) + H))
                .count();
            if ahead >= 3 {
                Ok(())
            } else {
                Err(format!("{parts:?}"))
            }
        },
    )
    .await;
    crate::support::stream::send_signal(child.id() as i32, "TERM");
    let status = crate::support::wait_until(
        std::time::Duration::from_secs(30),
        "rotate --every to stop on SIGTERM",
        || {
            let r = child.try_wait();
            async move {
                match r {
                    Ok(Some(status)) => Ok(status),
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await;
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("added 4 hourly partitions"));
}

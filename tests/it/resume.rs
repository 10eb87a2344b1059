//! Stopping and starting again: a SIGTERM in the middle of a workload loses and doubles nothing,
//! and `--reset` with a start position clears only this stream's checkpoint and replays from
//! there (replayed changes are not written twice).

use std::time::Duration;

use serde_json::json;

use crate::stream_basic::server_id;
use crate::support::stream::{
    assert_changes, ins, source_end, start_here, upd, Index, Row, Start, Stream,
};
use crate::support::{unique, wait_until, Flavor, TestServer};

/// Runs `n` single-row transactions on `schema.t` (insert, then update every third row) and
/// returns the changes they make.
async fn workload(source: &TestServer, schema: &str, from: u32, n: u32) -> Vec<Row> {
    let table = format!("{schema}.t");
    let mut conn = source.conn(None).await;
    let mut expected = Vec::new();
    for i in from..from + n {
        use mysql_async::prelude::Queryable;
        conn.query_drop(format!("INSERT INTO {table} VALUES ({i}, 'v{i}')"))
            .await
            .unwrap();
        expected.push(ins(
            &table,
            &i.to_string(),
            json!({"id": i, "v": format!("v{i}")}),
        ));
        if i % 3 == 0 {
            conn.query_drop(format!("UPDATE {table} SET v = 'u{i}' WHERE id = {i}"))
                .await
                .unwrap();
            expected.push(upd(
                &table,
                &i.to_string(),
                &["v"],
                json!({"id": i, "v": format!("v{i}")}),
                json!({"id": i, "v": format!("u{i}")}),
            ));
        }
    }
    conn.disconnect().await.ok();
    expected
}

/// `stream_state.events_indexed` of a stream.
async fn events_indexed(index: &Index, server_id: u32) -> u64 {
    use mysql_async::prelude::Queryable;
    let mut conn = index.conn().await;
    let n: Option<u64> = conn
        .exec_first(
            "SELECT events_indexed FROM stream_state WHERE server_id = ?",
            (server_id,),
        )
        .await
        .unwrap();
    conn.disconnect().await.ok();
    n.expect("a stream_state row")
}

async fn rows_in(index: &Index) -> usize {
    index.changes().await.len()
}

async fn sigterm_mid_workload(flavor: Flavor, gtid_mode: bool) {
    let source = TestServer::shared(flavor);
    let schema = unique("resume");
    source
        .exec(&format!(
            "CREATE DATABASE {schema}; CREATE TABLE {schema}.t (id INT PRIMARY KEY, v VARCHAR(10))"
        ))
        .await;
    let index = Index::new();
    let id = server_id();
    let mut flags = start_here(source, gtid_mode).await.flags();
    flags.extend([
        "--schemas".into(),
        schema.clone(),
        "--batch-size".into(),
        "7".into(),
    ]);
    let first = Stream::start(source, &index, id, &flags);
    let work = tokio::spawn({
        let schema = schema.clone();
        async move { workload(TestServer::shared(flavor), &schema, 1, 400).await }
    });
    wait_until(
        Duration::from_secs(60),
        "some changes indexed before the stop",
        || async {
            let n = rows_in(&index).await;
            if n >= 40 {
                Ok(())
            } else {
                Err(format!("{n} rows"))
            }
        },
    )
    .await;
    assert_eq!(first.stop().await, 0, "a SIGTERM stop exits 0");
    // Same command again: the checkpoint decides where it resumes.
    let second = Stream::start(source, &index, id, &flags);
    let expected = work.await.unwrap();
    index.wait_caught_up(source, id).await;
    assert_changes(&index.changes().await, &expected);
    assert_eq!(second.stop().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_sigterm_mid_workload_then_restart_indexes_each_change_once() {
    sigterm_mid_workload(Flavor::Mysql, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_sigterm_mid_workload_then_restart_indexes_each_change_once() {
    sigterm_mid_workload(Flavor::Mariadb, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_with_a_start_position_replays_from_there_and_spares_other_streams() {
    let source = TestServer::shared(Flavor::Mysql);
    let schema = unique("reset");
    source
        .exec(&format!(
            "CREATE DATABASE {schema}; CREATE TABLE {schema}.t (id INT PRIMARY KEY, v VARCHAR(10))"
        ))
        .await;
    let index = Index::new();
    let (id, other) = (server_id(), server_id());
    let (p0, _) = source_end(source).await;
    let start = Start::Position(p0.clone());
    let mut flags = start.flags();
    flags.extend(["--schemas".into(), schema.clone()]);
    // Another stream shares the index; --reset of ours must not touch its checkpoint.
    let neighbour = Stream::start(source, &index, other, &flags);
    let stream = Stream::start(source, &index, id, &flags);
    let mut expected = workload(source, &schema, 1, 20).await;
    index.wait_caught_up(source, id).await;
    index.wait_caught_up(source, other).await;
    assert_eq!(stream.stop().await, 0);
    assert_eq!(neighbour.stop().await, 0);
    let neighbour_state = index.checkpoint(other).await;
    let first_run = expected.clone();
    assert_eq!(events_indexed(&index, id).await, first_run.len() as u64);

    expected.extend(workload(source, &schema, 100, 10).await);
    let mut reset_flags = flags.clone();
    reset_flags.push("--reset".into());
    let replay = Stream::start(source, &index, id, &reset_flags);
    index.wait_caught_up(source, id).await;
    let log = replay.log();
    assert!(
        log.contains("--reset cleared this stream's checkpoint"),
        "{log}"
    );
    assert!(log.contains(&format!("binlog_pos={}", p0.pos)), "{log}");
    assert_eq!(replay.stop().await, 0);
    // Replayed changes from p0 are no-ops; the ones after the first stop arrive once.
    assert_changes(&index.changes_of(id).await, &expected);
    assert_changes(&index.changes_of(other).await, &first_run);
    // The count covers what this run added: replays the unique key ignored are not counted
    // (before, the replayed 20 changes were counted again).
    assert_eq!(
        events_indexed(&index, id).await,
        (expected.len() - first_run.len()) as u64,
        "events_indexed after the replay"
    );
    assert_eq!(
        index.checkpoint(other).await,
        neighbour_state,
        "the other stream's checkpoint changed"
    );
}

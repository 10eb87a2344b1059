//! `bintrail stream --dry-run`: reads and decodes exactly what the stream would index, from the
//! stream's start point to the source's end of binlog, counts it per table, and writes nothing.

use mysql_async::prelude::Queryable;
use serde_json::{json, Value};

use crate::stream_basic::server_id;
use crate::support::stream::{start_here, Index, Stream};
use crate::support::{bintrail, unique, Flavor, TestServer};

fn dry_run(source: &TestServer, index: &Index, id: u32, extra: &[String]) -> Value {
    let (src, idx, id) = (source.dsn(None), index.dsn(), id.to_string());
    let mut args = vec![
        "stream",
        "--dry-run",
        "--format",
        "json",
        "--source-dsn",
        &src,
        "--index-dsn",
        &idx,
        "--server-id",
        &id,
    ];
    args.extend(extra.iter().map(String::as_str));
    let out = bintrail(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

async fn counts_what_the_stream_would_index(flavor: Flavor, gtid_mode: bool) {
    let source = TestServer::shared(flavor);
    let schema = unique("dry");
    source
        .exec(&format!(
            "CREATE DATABASE {schema}; CREATE TABLE {schema}.t (id INT PRIMARY KEY, v TEXT); \
             CREATE TABLE {schema}.skipped (id INT PRIMARY KEY)"
        ))
        .await;
    let start = start_here(source, gtid_mode).await;
    source
        .exec(&format!(
            "INSERT INTO {schema}.t VALUES (1, 'a'), (2, 'b'), (3, 'c'); \
             UPDATE {schema}.t SET v = 'B' WHERE id = 2; DELETE FROM {schema}.t WHERE id = 3; \
             INSERT INTO {schema}.skipped VALUES (1), (2)"
        ))
        .await;
    // An index database that was never created has no checkpoint, and stays uncreated.
    let nowhere = Index::uninitialised(TestServer::index());
    let mut flags = start.flags();
    flags.extend(["--tables".to_string(), format!("{schema}.t")]);
    let summary = dry_run(source, &nowhere, server_id(), &flags);
    assert_eq!(summary["start"], "the start flags", "{summary}");
    assert_eq!(summary["changes"], 5, "{summary}");
    assert_eq!(
        summary["tables"],
        json!({format!("{schema}.t"): {"inserts": 3, "updates": 1, "deletes": 1}}),
        "{summary}"
    );
    let mut conn = TestServer::index().conn(None).await;
    let created: Option<String> = conn
        .exec_first(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name = ?",
            (&nowhere.db,),
        )
        .await
        .unwrap();
    assert_eq!(created, None, "a dry run creates nothing");
    conn.disconnect().await.ok();

    // With a checkpoint, a dry run reads what is still to be indexed, and leaves it in place.
    let index = Index::new();
    let id = server_id();
    let stream = Stream::start(source, &index, id, &flags);
    index.wait_caught_up(source, id).await;
    assert_eq!(stream.stop().await, 0);
    let before = index.checkpoint(id).await;
    let indexed = index.changes_of(id).await;
    assert_eq!(indexed.len(), 5, "the stream indexed the workload");
    source
        .exec(&format!("INSERT INTO {schema}.t VALUES (4, 'd')"))
        .await;
    let pending = dry_run(source, &index, id, &flags);
    assert_eq!(pending["start"], "this stream's checkpoint", "{pending}");
    assert_eq!(
        pending["tables"],
        json!({format!("{schema}.t"): {"inserts": 1, "updates": 0, "deletes": 0}}),
        "{pending}"
    );
    assert_eq!(
        index.checkpoint(id).await,
        before,
        "the checkpoint is untouched"
    );
    assert_eq!(index.changes_of(id).await, indexed, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_dry_run_counts_and_writes_nothing() {
    counts_what_the_stream_would_index(Flavor::Mysql, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_dry_run_counts_and_writes_nothing() {
    counts_what_the_stream_would_index(Flavor::Mariadb, false).await;
}

#[test]
fn dry_run_cannot_go_into_a_service() {
    let root = crate::support::temp_dir("dry-service");
    let out = bintrail(&[
        "service",
        "install",
        "--root",
        root.to_str().unwrap(),
        "--source-dsn",
        "mysql://u@h:3306",
        "--index-dsn",
        "mysql://u@h:3306/idx",
        "--server-id",
        "7",
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dry-run"));
}

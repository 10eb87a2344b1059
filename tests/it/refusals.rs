//! What bintrail refuses, and how it says so: sources that cannot be indexed exit 3 with the fix
//! in the message; `init` is harmless twice and refuses a foreign table of the same name.

use crate::stream_basic::server_id;
use crate::support::stream::{Index, Stream};
use crate::support::{bintrail, unique, Flavor, TestServer};
use mysql_async::prelude::Queryable;

async fn refused(flavor: Flavor, server_args: &[&str], needles: &[&str]) {
    let source = TestServer::start(flavor, server_args);
    let index = Index::new();
    let stream = Stream::start(&source, &index, server_id(), &[]);
    let log = {
        let code = stream_exit(stream).await;
        assert_eq!(code.0, 3, "definite errors exit 3: {}", code.1);
        code.1
    };
    for needle in needles {
        assert!(log.contains(needle), "expected '{needle}' in: {log}");
    }
    assert!(index.checkpoint(1).await.is_none());
}

async fn stream_exit(stream: Stream) -> (i32, String) {
    let log_reader = stream.log_path();
    let code = stream.exit_code().await;
    (
        code,
        std::fs::read_to_string(log_reader).unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_format_source_is_refused_with_the_fix() {
    refused(
        Flavor::Mysql,
        &["--binlog-format=STATEMENT"],
        &["binlog_format", "'STATEMENT'", "ROW"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_without_binlog_is_refused_with_the_fix() {
    refused(
        Flavor::Mariadb,
        &["--skip-log-bin"],
        &["log_bin", "--log-bin"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimal_row_image_source_is_refused_with_the_fix() {
    refused(
        Flavor::Mysql,
        &["--binlog-row-image=MINIMAL"],
        &["binlog_row_image", "FULL"],
    )
    .await;
}

#[test]
fn init_twice_is_harmless_and_a_foreign_table_is_refused() {
    let index = TestServer::index();
    let db = unique("init");
    let dsn = index.dsn(Some(&db));
    let first = bintrail(&["init", "--index-dsn", &dsn]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(out.contains(&format!("created database {db}")), "{out}");
    assert!(out.contains("binlog_events: created"), "{out}");
    let second = bintrail(&["init", "--index-dsn", &dsn]);
    assert!(second.status.success());
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(out.contains("binlog_events: exists, compatible"), "{out}");
    assert!(!out.contains("created"), "{out}");

    let foreign = unique("foreign");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(index.exec(&format!(
        "CREATE DATABASE {foreign}; CREATE TABLE {foreign}.stream_state (id INT)"
    )));
    let third = bintrail(&["init", "--index-dsn", &index.dsn(Some(&foreign))]);
    assert_eq!(third.status.code(), Some(3));
    let err = String::from_utf8_lossy(&third.stderr);
    assert!(
        err.contains("is not a bintrail stream_state table")
            && err.contains("server_id is missing"),
        "{err}"
    );
}

/// `init` compresses binlog_events' pages with lz4 unless told otherwise, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_creates_binlog_events_page_compressed_unless_told_otherwise() {
    let index = TestServer::index();
    for (flags, option) in [
        (vec![], Some("COMPRESSION='lz4'")),
        (vec!["--compression", "zlib"], Some("COMPRESSION='zlib'")),
        (vec!["--compression", "none"], None),
    ] {
        let db = unique("compress");
        let dsn = index.dsn(Some(&db));
        let mut args = vec!["init", "--index-dsn", &dsn];
        args.extend(flags.iter().copied());
        let out = bintrail(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{flags:?}: {stdout}");
        let mut conn = index.conn(Some(&db)).await;
        let (_, create): (String, String) = conn
            .query_first("SHOW CREATE TABLE binlog_events")
            .await
            .unwrap()
            .unwrap();
        conn.disconnect().await.ok();
        match option {
            Some(option) => {
                assert!(create.contains(option), "{flags:?}: {create}");
                let name = option
                    .trim_start_matches("COMPRESSION='")
                    .trim_end_matches('\'');
                assert!(
                    stdout.contains(&format!(
                        "binlog_events: created (page compression: {name})"
                    )),
                    "{stdout}"
                );
            }
            None => assert!(!create.contains("COMPRESSION="), "{flags:?}: {create}"),
        }
    }
    let bad = bintrail(&[
        "init",
        "--index-dsn",
        "mysql://u@h/x",
        "--compression",
        "zstd",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--compression"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_without_init_says_to_run_init() {
    let source = TestServer::shared(Flavor::Mysql);
    let index = crate::support::stream::Index::uninitialised(TestServer::index());
    let stream = Stream::start(source, &index, server_id(), &[]);
    let (code, log) = stream_exit(stream).await;
    assert_eq!(code, 3, "{log}");
    assert!(log.contains("bintrail init"), "{log}");
}

//! Least privilege: the whole stream runs with users holding exactly the grants the README
//! lists (source: replication only; index: CREATE, SELECT, INSERT, UPDATE, DELETE on the index
//! database), from MySQL 9.7 and MariaDB sources into a MySQL index, and the changes arrive.
//! Their passwords appear in no log line, STATUS message or metric.

use std::time::Duration;

use mysql_async::prelude::Queryable;

use crate::metrics::{http_get, metrics_addr};
use crate::service::{NotifySocket, ServiceStream};
use crate::stream_basic::{create_schemas, mixed_workload};
use crate::support::stream::{assert_changes, Index};
use crate::support::{unique, wait_until, Flavor, TestServer};

/// The source grants of the README, per flavor.
fn source_grants(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::Mysql => "REPLICATION SLAVE, REPLICATION CLIENT",
        Flavor::Mariadb | Flavor::Mariadb118 => "REPLICATION SLAVE, BINLOG MONITOR",
    }
}

/// The index grants of the README.
const INDEX_GRANTS: &str = "CREATE, SELECT, INSERT, UPDATE, DELETE";

async fn least_privilege_stream(flavor: Flavor, server_id: u32) {
    let source = TestServer::shared(flavor);
    let index_server = TestServer::index();
    let (src_user, idx_user) = (unique("bt_src"), unique("bt_idx"));
    let (src_pw, idx_pw) = ("Src-Pa55word!", "Idx-Pa55word!");
    source
        .exec(&format!(
            "CREATE USER '{src_user}'@'%' IDENTIFIED BY '{src_pw}';
             GRANT {} ON *.* TO '{src_user}'@'%'",
            source_grants(flavor)
        ))
        .await;
    let idx_db = unique("lp_idx");
    index_server
        .exec(&format!(
            "CREATE USER '{idx_user}'@'%' IDENTIFIED BY '{idx_pw}';
             GRANT {INDEX_GRANTS} ON `{idx_db}`.* TO '{idx_user}'@'%'"
        ))
        .await;
    let index = Index {
        db: idx_db.clone(),
        port: index_server.port,
    };
    let index_dsn = format!(
        "mysql://{idx_user}@127.0.0.1:{}/{idx_db}",
        index_server.port
    );
    let source_dsn = format!("mysql://{src_user}@127.0.0.1:{}/", source.port);

    // init as the index user: CREATE on the index database is enough to create it.
    let mut init = crate::support::bintrail_cmd(&["init", "--index-dsn", &index_dsn]);
    let out = init
        .env("BINTRAIL_INDEX_PASSWORD", idx_pw)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "init: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (s1, s2) = create_schemas(source).await;
    let socket = NotifySocket::bind();
    let stream = ServiceStream::start(
        &source_dsn,
        &index_dsn,
        server_id,
        &[
            "--schemas",
            &format!("{s1},{s2}"),
            "--log-format",
            "json",
            "--metrics-addr",
            "127.0.0.1:0",
        ],
        &[
            ("BINTRAIL_SOURCE_PASSWORD", src_pw.to_string()),
            ("BINTRAIL_INDEX_PASSWORD", idx_pw.to_string()),
            ("NOTIFY_SOCKET", socket.path.display().to_string()),
            ("WATCHDOG_USEC", "10000000".to_string()),
        ],
    );
    socket.wait_for("READY=1", Duration::from_secs(60)).await;
    let expected = mixed_workload(source, &s1, &s2).await;
    wait_until(
        Duration::from_secs(60),
        "every change in the index",
        || async {
            let got = index.changes().await;
            if got.len() >= expected.len() {
                Ok(())
            } else {
                Err(format!(
                    "{} of {}; log: {}",
                    got.len(),
                    expected.len(),
                    stream.log()
                ))
            }
        },
    )
    .await;
    assert_changes(&index.changes().await, &expected);

    let addr = metrics_addr(&stream).await;
    let (_, metrics) = http_get(&addr, "/metrics");
    let log_path = stream.log_path();
    assert_eq!(stream.stop().await, 0);
    let log = std::fs::read_to_string(log_path).unwrap();
    let everything = format!("{log}\n{}\n{metrics}", socket.dump());
    for pw in [src_pw, idx_pw] {
        assert!(!everything.contains(pw), "a password leaked:\n{everything}");
    }

    // The grants were exactly these: nothing more was needed.
    let mut conn = source.conn(None).await;
    let grants: Vec<String> = conn
        .query(format!("SHOW GRANTS FOR '{src_user}'@'%'"))
        .await
        .unwrap();
    conn.disconnect().await.ok();
    assert_eq!(grants.len(), 1, "{grants:?}");
}

#[tokio::test]
async fn a_mysql_source_streams_with_exactly_the_documented_grants() {
    least_privilege_stream(Flavor::Mysql, 4401).await;
}

#[tokio::test]
async fn a_mariadb_source_streams_with_exactly_the_documented_grants() {
    least_privilege_stream(Flavor::Mariadb, 4402).await;
}

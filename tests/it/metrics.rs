//! `--metrics-addr`: scraping `/metrics` and `/healthz` of a running stream (JSON logs tell
//! where it listens), and a taken address refused before anything starts.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::service::ServiceStream;
use crate::support::stream::Index;
use crate::support::{bintrail, unique, wait_until, Flavor, TestServer};

/// One HTTP GET; returns (status code, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(conn, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, body.to_string())
}

/// The value of the sample `name{labels}` in an exposition, e.g. `bintrail_flushes_total`.
pub fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The address the stream logged for its metrics endpoint (JSON log lines).
pub async fn metrics_addr(stream: &ServiceStream) -> String {
    wait_until(
        Duration::from_secs(30),
        "the metrics address in the log",
        || async {
            let log = stream.log();
            let found = log.lines().find_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                v["fields"]["metrics_addr"].as_str().map(str::to_string)
            });
            found.ok_or(log)
        },
    )
    .await
}

#[tokio::test]
async fn metrics_and_healthz_reflect_a_running_stream() {
    let source = TestServer::shared(Flavor::Mysql);
    let index = Index::new();
    let db = unique("met");
    source
        .exec(&format!(
            "CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY)"
        ))
        .await;
    let stream = ServiceStream::start(
        &source.dsn(None),
        &index.dsn(),
        4201,
        &["--log-format", "json", "--metrics-addr", "127.0.0.1:0"],
        &[],
    );
    let addr = metrics_addr(&stream).await;
    source
        .exec(&format!("INSERT INTO {db}.t VALUES (1), (2), (3), (4)"))
        .await;
    let id = "{server_id=\"4201\"}";
    let text = wait_until(
        Duration::from_secs(30),
        "4 changes in the metrics",
        || async {
            let (code, text) = http_get(&addr, "/metrics");
            assert_eq!(code, 200);
            if sample(&text, &format!("bintrail_changes_indexed_total{id}")) == Some(4.0) {
                Ok(text)
            } else {
                Err(text)
            }
        },
    )
    .await;
    for name in [
        "bintrail_events_received_total",
        "bintrail_flushes_total",
        "bintrail_reconnects_total",
        "bintrail_checkpoint_age_seconds",
        "bintrail_replication_lag_seconds",
        "bintrail_flush_duration_seconds_count",
        "bintrail_flush_duration_seconds_sum",
    ] {
        assert!(
            sample(&text, &format!("{name}{id}")).is_some(),
            "{name} missing:\n{text}"
        );
    }
    assert!(sample(&text, &format!("bintrail_events_received_total{id}")).unwrap() >= 4.0);
    assert!(sample(&text, &format!("bintrail_flushes_total{id}")).unwrap() >= 1.0);
    assert_eq!(
        sample(&text, "bintrail_alive{server_id=\"4201\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "bintrail_phase{server_id=\"4201\",phase=\"streaming\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "bintrail_errors_total{server_id=\"4201\",kind=\"definite\"}"
        ),
        Some(0.0)
    );
    assert!(text.contains("bintrail_flush_duration_seconds_bucket{server_id=\"4201\",le=\"+Inf\"}"));
    assert!(text.contains("# TYPE bintrail_flush_duration_seconds histogram"));
    assert_eq!(http_get(&addr, "/healthz"), (200, "alive\n".to_string()));
    assert_eq!(http_get(&addr, "/nope").0, 404);

    // The JSON log lines carry the stream's server id.
    let log = stream.log();
    let streaming: Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["message"] == "streaming")
        .unwrap_or_else(|| panic!("no 'streaming' line in {log}"));
    assert_eq!(streaming["span"]["server_id"], 4201, "{streaming}");
    assert_eq!(stream.stop().await, 0);
}

#[tokio::test]
async fn a_taken_metrics_address_fails_before_streaming() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = bintrail(&[
        "stream",
        "--source-dsn",
        "mysql://root@127.0.0.1:1/",
        "--index-dsn",
        "mysql://root@127.0.0.1:1/idx",
        "--server-id",
        "4202",
        "--metrics-addr",
        &addr,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("--metrics-addr {addr}: cannot listen")),
        "{stderr}"
    );
    let bad = bintrail(&[
        "stream",
        "--source-dsn",
        "mysql://root@127.0.0.1:1/",
        "--index-dsn",
        "mysql://root@127.0.0.1:1/idx",
        "--server-id",
        "4202",
        "--metrics-addr",
        "localhost",
    ]);
    assert_eq!(bad.status.code(), Some(2));
}

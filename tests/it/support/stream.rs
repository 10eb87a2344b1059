//! Running `bintrail stream` as a real process against test servers, and reading back what it
//! wrote: full row images from `binlog_events` and the stream's `stream_state` row.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use bintrail::index::ddl;
use bintrail::position::{BinlogPosition, GtidSet};
use mysql_async::prelude::Queryable;
use serde_json::Value;

use super::{bintrail_cmd, temp_dir, unique, wait_until, TestServer};

/// Where the workload should be read from, captured before it runs.
#[derive(Clone, Debug)]
pub enum Start {
    /// Position mode from this file:offset.
    Position(BinlogPosition),
    /// GTID mode after this set.
    Gtid(String),
}

impl Start {
    /// The `--start-*` flags.
    pub fn flags(&self) -> Vec<String> {
        match self {
            Start::Position(p) => vec![
                "--start-file".into(),
                p.file.clone(),
                "--start-pos".into(),
                p.pos.to_string(),
            ],
            Start::Gtid(set) => vec!["--start-gtid".into(), set.clone()],
        }
    }
}

/// The source's current end of binlog: (file:pos, executed GTID set text).
pub async fn source_end(source: &TestServer) -> (BinlogPosition, String) {
    let mut conn = source.conn(None).await;
    let sql = match source.flavor {
        super::Flavor::Mysql => "SHOW BINARY LOG STATUS",
        super::Flavor::Mariadb | super::Flavor::Mariadb118 => "SHOW MASTER STATUS",
    };
    let row: mysql_async::Row = conn.query_first(sql).await.unwrap().unwrap();
    let pos = BinlogPosition::new(
        row.get::<String, _>(0).unwrap(),
        row.get::<u64, _>(1).unwrap(),
    );
    let gtid_sql = match source.flavor {
        super::Flavor::Mysql => "SELECT @@gtid_executed",
        super::Flavor::Mariadb | super::Flavor::Mariadb118 => "SELECT @@gtid_binlog_pos",
    };
    let gtids: String = conn
        .query_first(gtid_sql)
        .await
        .unwrap()
        .unwrap_or_default();
    conn.disconnect().await.ok();
    (pos, gtids.replace('\n', ""))
}

/// A start point in the given mode at the source's current end.
pub async fn start_here(source: &TestServer, gtid_mode: bool) -> Start {
    let (pos, gtids) = source_end(source).await;
    if gtid_mode {
        Start::Gtid(gtids)
    } else {
        Start::Position(pos)
    }
}

/// A fresh index database, initialised with `bintrail init`.
pub struct Index {
    /// Database name.
    pub db: String,
    /// Port of the index server.
    pub port: u16,
}

impl Index {
    /// Creates and initialises a new index database on the shared index server.
    pub fn new() -> Index {
        Index::on(TestServer::index())
    }

    /// Creates and initialises a new index database on the shared index server of `flavor`.
    pub fn new_of(flavor: super::Flavor) -> Index {
        Index::on(TestServer::index_of(flavor))
    }

    /// Creates and initialises a new index database on `server`.
    pub fn on(server: &TestServer) -> Index {
        let index = Index::uninitialised(server);
        let out = super::bintrail(&["init", "--index-dsn", &index.dsn()]);
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        index
    }

    /// A name for an index database that `init` has not created.
    pub fn uninitialised(server: &TestServer) -> Index {
        Index {
            db: unique("idx"),
            port: server.port,
        }
    }

    /// A new index database on `server` as `init` would have made it at `at` (its hour and
    /// `ahead` more, then the catch-all), never rotated since: the hours before now are
    /// rotate's to drop (or archive).
    pub async fn made_at(server: &TestServer, at: i64, ahead: u32) -> Index {
        let index = Index::uninitialised(server);
        let mut conn = server.conn(None).await;
        ddl::init_at(&mut conn, &index.db, at, ahead, ddl::Compression::Lz4)
            .await
            .unwrap();
        conn.disconnect().await.ok();
        index
    }

    /// The index DSN.
    pub fn dsn(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/{}", self.port, self.db)
    }

    /// A connection to the index database, retried for up to 30 s: on a loaded machine one
    /// attempt can fail while the server is only slow to accept (seen once on MariaDB), and
    /// the panic names the last error instead of hiding it.
    pub async fn conn(&self) -> mysql_async::Conn {
        wait_until(
            Duration::from_secs(30),
            "a connection to the index",
            || async { self.connect().await.map_err(|e| e.to_string()) },
        )
        .await
    }

    /// A connection to the index database, or `None` while the server is down.
    pub async fn try_conn(&self) -> Option<mysql_async::Conn> {
        self.connect().await.ok()
    }

    async fn connect(&self) -> Result<mysql_async::Conn, mysql_async::Error> {
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.port)
            .user(Some("root"))
            .db_name(Some(self.db.clone()))
            .prefer_socket(false);
        mysql_async::Conn::new(opts).await
    }

    /// Every change in the index, in event_id order, as comparable rows.
    pub async fn changes(&self) -> Vec<Row> {
        self.select("TRUE").await
    }

    /// The changes one stream wrote, in event_id order.
    pub async fn changes_of(&self, server_id: u32) -> Vec<Row> {
        self.select(&format!("stream_id = {server_id}")).await
    }

    async fn select(&self, condition: &str) -> Vec<Row> {
        let mut conn = self.conn().await;
        let rows: Vec<mysql_async::Row> = conn
            .query(format!(
                "SELECT schema_name, table_name, event_type, pk_values, changed_columns, row_before, row_after \
                 FROM binlog_events WHERE {condition} ORDER BY event_id"
            ))
            .await
            .unwrap();
        conn.disconnect().await.ok();
        rows.into_iter()
            .map(|r| {
                let json = |i: usize| -> Value {
                    r.get::<Option<String>, _>(i)
                        .flatten()
                        .map(|s| serde_json::from_str(&s).unwrap())
                        .unwrap_or(Value::Null)
                };
                Row {
                    table: format!(
                        "{}.{}",
                        r.get::<String, _>(0).unwrap(),
                        r.get::<String, _>(1).unwrap()
                    ),
                    kind: r.get(2).unwrap(),
                    pk: r.get(3).unwrap(),
                    changed: json(4),
                    before: json(5),
                    after: json(6),
                }
            })
            .collect()
    }

    /// The stream's checkpoint: (binlog position, GTID set text, rows_done).
    pub async fn checkpoint(
        &self,
        server_id: u32,
    ) -> Option<(BinlogPosition, Option<String>, u64)> {
        let mut conn = self.conn().await;
        let row: Option<(String, u64, Option<String>, u64)> = conn
            .exec_first(
                "SELECT binlog_file, binlog_position, gtid_set, rows_done FROM stream_state WHERE server_id = ?",
                (server_id,),
            )
            .await
            .unwrap();
        conn.disconnect().await.ok();
        row.map(|(f, p, g, r)| (BinlogPosition::new(f, p), g, r))
    }

    /// Waits until the stream's checkpoint covers the source's current end.
    pub async fn wait_caught_up(&self, source: &TestServer, server_id: u32) {
        self.wait_caught_up_within(source, server_id, Duration::from_secs(60))
            .await
    }

    /// [`Index::wait_caught_up`] with its own deadline, for a stream with a long way to go
    /// (hundreds of thousands of rows on a machine busy with other tests).
    pub async fn wait_caught_up_within(
        &self,
        source: &TestServer,
        server_id: u32,
        deadline: Duration,
    ) {
        let end = source_end(source).await;
        wait_until(deadline, "the checkpoint to reach the source's end", || {
            self.covers(server_id, &end)
        })
        .await
    }

    /// Whether the stream's checkpoint covers `end` (a [`source_end`]); if not, what it is.
    pub async fn covers(
        &self,
        server_id: u32,
        end: &(BinlogPosition, String),
    ) -> Result<(), String> {
        let (pos, gtids) = end;
        let cp = self.checkpoint(server_id).await;
        let done = match &cp {
            Some((_, Some(set), 0)) => set
                .parse::<GtidSet>()
                .unwrap()
                .contains_set(&gtids.parse().unwrap()),
            Some((p, None, 0)) => p.compare(pos).is_some_and(|o| o.is_ge()),
            _ => false,
        };
        if done {
            Ok(())
        } else {
            Err(format!("checkpoint {cp:?}, source end {pos} / {gtids}"))
        }
    }
}

/// One stored change, as compared in tests.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// `schema.table`.
    pub table: String,
    /// 1 insert, 2 update, 3 delete.
    pub kind: u8,
    /// pk_values.
    pub pk: String,
    /// changed_columns (null unless update).
    pub changed: Value,
    /// row_before.
    pub before: Value,
    /// row_after.
    pub after: Value,
}

/// An expected insert.
pub fn ins(table: &str, pk: &str, after: Value) -> Row {
    Row {
        table: table.into(),
        kind: 1,
        pk: pk.into(),
        changed: Value::Null,
        before: Value::Null,
        after,
    }
}

/// An expected update.
pub fn upd(table: &str, pk: &str, changed: &[&str], before: Value, after: Value) -> Row {
    Row {
        table: table.into(),
        kind: 2,
        pk: pk.into(),
        changed: changed.iter().map(|c| Value::from(*c)).collect(),
        before,
        after,
    }
}

/// An expected delete.
pub fn del(table: &str, pk: &str, before: Value) -> Row {
    Row {
        table: table.into(),
        kind: 3,
        pk: pk.into(),
        changed: Value::Null,
        before,
        after: Value::Null,
    }
}

/// Asserts two change lists are equal, printing the first differences readably.
pub fn assert_changes(actual: &[Row], expected: &[Row]) {
    if actual == expected {
        return;
    }
    let mut report = format!(
        "index holds {} changes, expected {}\n",
        actual.len(),
        expected.len()
    );
    for i in 0..actual.len().max(expected.len()) {
        let (a, e) = (actual.get(i), expected.get(i));
        if a != e {
            report.push_str(&format!("#{i}\n  actual:   {a:?}\n  expected: {e:?}\n"));
        }
    }
    panic!("{report}");
}

/// A running `bintrail stream` process, killed when dropped.
pub struct Stream {
    child: Option<Child>,
    log: PathBuf,
    /// Its --server-id.
    pub server_id: u32,
}

impl Stream {
    /// Streams `schema` alone into `index` as server `server_id`, from the source's current
    /// end on in GTID mode, with `extra` flags.
    pub async fn of_schema(
        source: &TestServer,
        index: &Index,
        server_id: u32,
        schema: &str,
        extra: &[String],
    ) -> Stream {
        let mut flags = start_here(source, true).await.flags();
        flags.extend(["--schemas".to_string(), schema.to_string()]);
        flags.extend_from_slice(extra);
        Stream::start(source, index, server_id, &flags)
    }

    /// Starts `bintrail stream` from `source` into `index` with extra flags.
    pub fn start(source: &TestServer, index: &Index, server_id: u32, extra: &[String]) -> Stream {
        let log = temp_dir("stream").join("stream.log");
        let mut args: Vec<String> = vec!["stream".into()];
        // A test may point the stream elsewhere (a proxy) with its own --source-dsn.
        if !extra.iter().any(|a| a == "--source-dsn") {
            args.extend(["--source-dsn".into(), source.dsn(None)]);
        }
        args.extend([
            "--index-dsn".into(),
            index.dsn(),
            "--server-id".into(),
            server_id.to_string(),
            "--checkpoint-interval".into(),
            "1".into(),
            "--log-format".into(),
            "text".into(),
        ]);
        args.extend_from_slice(extra);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = bintrail_cmd(&argv)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Stream {
            child: Some(child),
            log,
            server_id,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Its log file.
    pub fn log_path(&self) -> PathBuf {
        self.log.clone()
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits for the exit status.
    pub async fn stop(mut self) -> i32 {
        let pid = self.child.as_ref().expect("running").id() as i32;
        send_signal(pid, "TERM");
        self.wait_exit().await
    }

    /// SIGKILL (a crash), then waits for it to be gone.
    pub async fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Waits for the process to exit by itself; returns its status code.
    pub async fn exit_code(mut self) -> i32 {
        self.wait_exit().await
    }

    /// Polls for the exit; on timeout the panic leaves the child to `Drop`, which kills it.
    async fn wait_exit(&mut self) -> i32 {
        let status = wait_until(Duration::from_secs(60), "bintrail stream to exit", || {
            let r = self.child.as_mut().expect("running").try_wait();
            let log = self.log();
            async move {
                match r {
                    Ok(Some(status)) => Ok(status),
                    _ => Err(log),
                }
            }
        })
        .await;
        self.child = None;
        status.code().unwrap_or(-1)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// Sends a signal by name with the system's `kill` (no libc binding needed in tests).
pub fn send_signal(pid: i32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

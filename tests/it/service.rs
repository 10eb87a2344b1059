//! The systemd side of `bintrail stream`, with a unix datagram socket standing in for systemd
//! (`NOTIFY_SOCKET`) and a fake journald socket: the notify sequence of a normal start and stop,
//! watchdog pings that stop while the index server is frozen (SIGSTOP) and resume after SIGCONT,
//! and journald records with unprefixed structured fields.

use std::fs::File;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use crate::support::stream::{send_signal, Index};
use crate::support::{bintrail_cmd, temp_dir, unique, wait_until, Flavor, TestServer};

/// A unix datagram socket playing systemd's notify socket; records every message with its time.
pub struct NotifySocket {
    /// Where it is bound (the value for NOTIFY_SOCKET).
    pub path: PathBuf,
    messages: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl NotifySocket {
    /// Binds a fresh socket and starts recording.
    pub fn bind() -> NotifySocket {
        let path = temp_dir("notify").join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                sink.lock().unwrap().push((Instant::now(), text));
            }
        });
        NotifySocket { path, messages }
    }

    /// Every message so far.
    pub fn messages(&self) -> Vec<(Instant, String)> {
        self.messages.lock().unwrap().clone()
    }

    /// Every message so far, as one readable string.
    pub fn dump(&self) -> String {
        self.messages()
            .iter()
            .map(|(_, m)| m.trim_end().replace('\n', " | "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Times of the messages containing the line `line`.
    pub fn times_of(&self, line: &str) -> Vec<Instant> {
        self.messages()
            .iter()
            .filter(|(_, m)| m.lines().any(|l| l == line))
            .map(|(t, _)| *t)
            .collect()
    }

    /// Waits until a message contains the line `line`.
    pub async fn wait_for(&self, line: &str, deadline: Duration) {
        wait_until(deadline, &format!("notify message {line}"), || async {
            if self.times_of(line).is_empty() {
                Err(self.dump())
            } else {
                Ok(())
            }
        })
        .await
    }
}

/// `bintrail stream` from `source` into `index_dsn`, as systemd would run it: NOTIFY_SOCKET and
/// WATCHDOG_USEC set, text logs into a file.
pub struct ServiceStream {
    child: Option<Child>,
    log: PathBuf,
}

impl ServiceStream {
    /// Starts the stream with `args` after the connection flags.
    pub fn start(
        source_dsn: &str,
        index_dsn: &str,
        server_id: u32,
        args: &[&str],
        env: &[(&str, String)],
    ) -> ServiceStream {
        let log = temp_dir("svc").join("stream.log");
        let id = server_id.to_string();
        let mut argv = vec![
            "stream",
            "--source-dsn",
            source_dsn,
            "--index-dsn",
            index_dsn,
            "--server-id",
            &id,
            "--checkpoint-interval",
            "1",
        ];
        argv.extend_from_slice(args);
        let mut cmd = bintrail_cmd(&argv);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        ServiceStream {
            child: Some(child),
            log,
        }
    }

    /// Its log file (still there after it stopped).
    pub fn log_path(&self) -> PathBuf {
        self.log.clone()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then its exit status.
    pub async fn stop(mut self) -> i32 {
        let mut child = self.child.take().unwrap();
        send_signal(child.id() as i32, "TERM");
        let log = self.log.clone();
        let status = wait_until(Duration::from_secs(60), "the stream to exit", || {
            let r = child.try_wait();
            let log = log.clone();
            async move {
                match r {
                    Ok(Some(s)) => Ok(s),
                    _ => Err(std::fs::read_to_string(log).unwrap_or_default()),
                }
            }
        })
        .await;
        status.code().unwrap_or(-1)
    }
}

impl Drop for ServiceStream {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// Resumes a SIGSTOPped server even when the test fails half-way.
struct Frozen(i32);

impl Frozen {
    fn freeze(pid_file: &Path) -> Frozen {
        let pid: i32 = std::fs::read_to_string(pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        send_signal(pid, "STOP");
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        send_signal(self.0, "CONT");
    }
}

fn watchdog_env(socket: &NotifySocket, usec: u64) -> Vec<(&'static str, String)> {
    vec![
        ("NOTIFY_SOCKET", socket.path.display().to_string()),
        ("WATCHDOG_USEC", usec.to_string()),
    ]
}

#[tokio::test]
async fn notify_sequence_of_a_normal_start_and_stop() {
    let source = TestServer::shared(Flavor::Mysql);
    let index = Index::new();
    let db = unique("svc");
    source
        .exec(&format!(
            "CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY)"
        ))
        .await;
    let socket = NotifySocket::bind();
    let stream = ServiceStream::start(
        &source.dsn(None),
        &index.dsn(),
        4101,
        // Only this test's schema: the shared source carries every other test's traffic too.
        &["--log-format", "text", "--schemas", &db],
        &watchdog_env(&socket, 2_000_000),
    );
    socket.wait_for("READY=1", Duration::from_secs(60)).await;
    source
        .exec(&format!("INSERT INTO {db}.t VALUES (1), (2), (3)"))
        .await;
    wait_until(
        Duration::from_secs(30),
        "STATUS with 3 changes indexed",
        || async {
            let seen = socket
                .messages()
                .iter()
                .any(|(_, m)| m.contains("STATUS=streaming: 3 changes indexed"));
            if seen {
                Ok(())
            } else {
                Err(socket.dump())
            }
        },
    )
    .await;
    wait_until(Duration::from_secs(10), "two watchdog pings", || async {
        match socket.times_of("WATCHDOG=1").len() {
            n if n >= 2 => Ok(()),
            n => Err(format!("{n} pings: {}", socket.dump())),
        }
    })
    .await;
    assert_eq!(stream.stop().await, 0);
    // The recording thread may still be reading the last datagrams.
    wait_until(Duration::from_secs(5), "the final STATUS", || async {
        let last = socket.messages().last().map(|(_, m)| m.clone());
        match last {
            Some(m) if m.starts_with("STATUS=stopped") => Ok(()),
            _ => Err(socket.dump()),
        }
    })
    .await;

    let messages = socket.messages();
    let texts: Vec<&str> = messages.iter().map(|(_, m)| m.as_str()).collect();
    let first = |line: &str| texts.iter().position(|m| m.lines().any(|l| l == line));
    let ready = first("READY=1").unwrap();
    let stopping = first("STOPPING=1").expect("STOPPING=1 sent");
    assert!(ready < stopping, "{}", socket.dump());
    assert_eq!(texts.iter().filter(|m| m.contains("READY=1")).count(), 1);
    assert!(
        texts[ready].contains("STATUS=streaming"),
        "READY comes with a STATUS: {}",
        texts[ready]
    );
    assert!(
        texts[stopping].contains("STATUS=stopping"),
        "{}",
        texts[stopping]
    );
    let last = texts.last().unwrap();
    assert!(
        last.starts_with("STATUS=stopped at ") && last.contains("3 changes indexed"),
        "last message: {last}"
    );
    for m in &texts {
        for line in m.lines() {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not KEY=VALUE: {line}"));
            assert!(
                ["READY", "STATUS", "WATCHDOG", "STOPPING"].contains(&key),
                "{line}"
            );
            assert!(value.chars().count() <= 160, "STATUS too long: {line}");
        }
    }
}

#[tokio::test]
async fn watchdog_pings_stop_while_the_index_is_frozen_and_resume_after() {
    let source = TestServer::shared(Flavor::Mysql);
    let frozen_index = TestServer::start(Flavor::Mysql, &["--skip-log-bin"]);
    let idx_db = unique("idx");
    let index_dsn = frozen_index.dsn(Some(&idx_db));
    let out = crate::support::bintrail(&["init", "--index-dsn", &index_dsn]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = unique("svc");
    source
        .exec(&format!(
            "CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY)"
        ))
        .await;

    let period = Duration::from_secs(4);
    let socket = NotifySocket::bind();
    let stream = ServiceStream::start(
        &source.dsn(None),
        &index_dsn,
        4102,
        &["--log-format", "text", "--schemas", &db],
        &watchdog_env(&socket, period.as_micros() as u64),
    );
    socket.wait_for("READY=1", Duration::from_secs(60)).await;
    socket.wait_for("WATCHDOG=1", Duration::from_secs(10)).await;

    let frozen = Frozen::freeze(&frozen_index.dir().join("mysqld.pid"));
    let frozen_at = Instant::now();
    // A change to write: the next flush blocks on the frozen server.
    source.exec(&format!("INSERT INTO {db}.t VALUES (1)")).await;
    wait_until(
        Duration::from_secs(20),
        "a watchdog period without a ping",
        || async {
            let last = socket.times_of("WATCHDOG=1").last().copied().unwrap();
            if last.elapsed() > period {
                Ok(())
            } else {
                Err(format!(
                    "last ping {:?} ago, frozen {:?} ago\n{}",
                    last.elapsed(),
                    frozen_at.elapsed(),
                    socket.dump()
                ))
            }
        },
    )
    .await;
    // Pings stopped within a watchdog period of the stuck flush's start (which comes within a
    // checkpoint interval, 1 s, of the insert), far before the writer's own 60 s flush deadline.
    let last_ping = *socket.times_of("WATCHDOG=1").last().unwrap();
    assert!(
        last_ping.saturating_duration_since(frozen_at) < period + Duration::from_secs(1),
        "a ping came {:?} after the freeze",
        last_ping.saturating_duration_since(frozen_at)
    );
    assert!(
        stream.log().contains("pipeline not alive"),
        "{}",
        stream.log()
    );

    let thawed_at = Instant::now();
    drop(frozen);
    wait_until(Duration::from_secs(20), "pings to resume", || async {
        let resumed = socket.times_of("WATCHDOG=1").iter().any(|t| *t > thawed_at);
        if resumed {
            Ok(())
        } else {
            Err(socket.dump())
        }
    })
    .await;
    wait_until(Duration::from_secs(30), "the row in the index", || async {
        let mut conn = frozen_index.conn(Some(&idx_db)).await;
        let n: Option<u64> = conn
            .query_first("SELECT COUNT(*) FROM binlog_events")
            .await
            .unwrap();
        conn.disconnect().await.ok();
        if n == Some(1) {
            Ok(())
        } else {
            Err(format!("{n:?} rows"))
        }
    })
    .await;
    assert!(
        stream.log().contains("pipeline alive again"),
        "{}",
        stream.log()
    );
    assert_eq!(stream.stop().await, 0);
}

/// Fields of one journald native-protocol datagram (systemd's JOURNAL_NATIVE_PROTOCOL).
fn journal_fields(mut data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut fields = Vec::new();
    while !data.is_empty() {
        let nl = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
        let line = &data[..nl];
        if let Some(eq) = line.iter().position(|b| *b == b'=') {
            fields.push((
                String::from_utf8_lossy(&line[..eq]).to_string(),
                line[eq + 1..].to_vec(),
            ));
            data = &data[(nl + 1).min(data.len())..];
        } else {
            // KEY\n<u64 LE length><value>\n
            let key = String::from_utf8_lossy(line).to_string();
            let rest = &data[nl + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            fields.push((key, rest[8..8 + len].to_vec()));
            data = &rest[(8 + len + 1).min(rest.len())..];
        }
    }
    fields
}

#[tokio::test]
async fn under_systemd_logs_go_to_journald_with_unprefixed_fields() {
    let source = TestServer::shared(Flavor::Mysql);
    let index = Index::new();
    let dir = temp_dir("journal");
    let sock_path = dir.join("journal.sock");
    let journal = UnixDatagram::bind(&sock_path).unwrap();
    journal
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    // A private mount namespace where /run/systemd/journal/socket is our socket, and stderr is
    // the stream JOURNAL_STREAM names, as systemd sets up a service.
    let script = r#"set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/journal
touch /run/systemd/journal/socket
mount --bind "$FAKE_JOURNAL" /run/systemd/journal/socket
JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2)
export JOURNAL_STREAM
exec "$@""#;
    let log = dir.join("stderr.log");
    let mut child = std::process::Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            script,
            "sh",
            env!("CARGO_BIN_EXE_bintrail"),
        ])
        .args([
            "stream",
            "--source-dsn",
            &source.dsn(None),
            "--index-dsn",
            &index.dsn(),
            "--server-id",
            "4103",
        ])
        .env("FAKE_JOURNAL", &sock_path)
        .env("RUST_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut seen = Vec::new();
    let streaming = loop {
        let n = match journal.recv(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                child.kill().ok();
                panic!(
                    "no journald record ({e}); stderr: {}; seen: {seen:#?}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        let fields = journal_fields(&buf[..n]);
        let get = |k: &str| {
            fields
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| String::from_utf8_lossy(v).to_string())
        };
        if get("MESSAGE").as_deref() == Some("streaming") {
            break fields;
        }
        seen.push(get("MESSAGE"));
    };
    child.kill().ok();
    child.wait().ok();
    let get = |k: &str| {
        streaming
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| String::from_utf8_lossy(v).to_string())
    };
    assert_eq!(get("SYSLOG_IDENTIFIER").as_deref(), Some("bintrail"));
    assert_eq!(get("SERVER_ID").as_deref(), Some("4103"), "{streaming:?}");
    assert_eq!(get("PRIORITY").as_deref(), Some("6"));
    assert!(
        streaming.iter().all(|(k, _)| !k.starts_with("F_")),
        "fields must not be prefixed: {streaming:?}"
    );
    assert!(
        std::fs::read_to_string(&log).unwrap_or_default().is_empty(),
        "nothing on stderr under journald"
    );
}

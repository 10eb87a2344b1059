//! `TestServer`: a throwaway MySQL 9.7 or MariaDB started by `scripts/server.sh` on a free
//! loopback port with binlog on, stopped when dropped. Shared instances (one per flavor per test
//! process) serve tests that only need a schema of their own; a watcher process stops them when
//! the test process exits, since statics are never dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use mysql_async::prelude::Queryable;

use super::{repo_root, temp_dir};

/// Which server software.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Oracle MySQL 9.7 from Debian sid.
    Mysql,
    /// MariaDB 10.11 from Debian (the machine's own release, bookworm).
    Mariadb,
    /// MariaDB 11.8 from Debian trixie, unpacked into a private prefix like MySQL.
    Mariadb118,
}

impl Flavor {
    /// The name `scripts/server.sh` takes.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Mysql => "mysql",
            Flavor::Mariadb => "mariadb",
            Flavor::Mariadb118 => "mariadb118",
        }
    }

    /// Whether it is a MariaDB (of any version): what bintrail and the tests tell apart is
    /// MariaDB against MySQL; the version differences are named where they matter.
    pub fn is_mariadb(self) -> bool {
        matches!(self, Flavor::Mariadb | Flavor::Mariadb118)
    }
}

/// A running throwaway server.
pub struct TestServer {
    /// Its flavor.
    pub flavor: Flavor,
    /// Its loopback port.
    pub port: u16,
    dir: PathBuf,
    shared: bool,
}

fn server_sh(args: &[&str]) -> std::process::Output {
    Command::new("bash")
        .arg(repo_root().join("scripts/server.sh"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/server.sh")
}

fn check(out: std::process::Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

impl TestServer {
    /// Starts a dedicated server; `extra` mysqld arguments override the defaults.
    pub fn start(flavor: Flavor, extra: &[&str]) -> TestServer {
        let dir = temp_dir(flavor.name());
        let dir_s = dir.to_str().expect("utf-8 temp dir");
        let mut args = vec!["start", flavor.name(), dir_s];
        args.extend_from_slice(extra);
        let stdout = check(server_sh(&args), "scripts/server.sh start");
        let port = stdout
            .lines()
            .find_map(|l| l.strip_prefix("port="))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no port=N line in {stdout:?}"));
        TestServer {
            flavor,
            port,
            dir,
            shared: false,
        }
    }

    /// The per-process shared server of a flavor, for tests that only need their own schema.
    pub fn shared(flavor: Flavor) -> &'static TestServer {
        static SHARED: [OnceLock<TestServer>; 3] = [const { OnceLock::new() }; 3];
        TestServer::cached(&SHARED, flavor, &[])
    }

    /// The shared index server (a MySQL 9.7 without anything else on it).
    pub fn index() -> &'static TestServer {
        TestServer::index_of(Flavor::Mysql)
    }

    /// The shared index server of a flavor (without binlog, nothing else on it): the MariaDB
    /// ones serve the tests of a MariaDB index.
    pub fn index_of(flavor: Flavor) -> &'static TestServer {
        static INDEX: [OnceLock<TestServer>; 3] = [const { OnceLock::new() }; 3];
        TestServer::cached(&INDEX, flavor, &["--skip-log-bin"])
    }

    /// A shared MySQL index server that allows LOAD DATA LOCAL INFILE (`local_infile=ON`, which
    /// MySQL 8+ servers do not by default), so that the writer loads instead of INSERTing.
    pub fn index_with_load_data() -> &'static TestServer {
        static INDEX: [OnceLock<TestServer>; 3] = [const { OnceLock::new() }; 3];
        TestServer::cached(
            &INDEX,
            Flavor::Mysql,
            &["--skip-log-bin", "--local-infile=ON"],
        )
    }

    /// The server of `flavor` in `cells` (one per flavor), started with `args` on first use and
    /// stopped when the test process exits.
    fn cached(
        cells: &'static [OnceLock<TestServer>; 3],
        flavor: Flavor,
        args: &[&str],
    ) -> &'static TestServer {
        let cell = match flavor {
            Flavor::Mysql => &cells[0],
            Flavor::Mariadb => &cells[1],
            Flavor::Mariadb118 => &cells[2],
        };
        cell.get_or_init(|| {
            let mut server = TestServer::start(flavor, args);
            server.shared = true;
            server.stop_when_process_exits();
            server
        })
    }

    fn stop_when_process_exits(&self) {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; bash '{sh}' stop '{dir}' >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            sh = repo_root().join("scripts/server.sh").display(),
            dir = self.dir.display(),
        );
        // The watcher must outlive this process, so it is deliberately never waited for.
        #[allow(clippy::zombie_processes)]
        Command::new("setsid")
            .args(["bash", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn server watcher");
    }

    /// Its data directory and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its MySQL data directory, where MySQL writes the `ca.pem`, `server-cert.pem` and
    /// `server-key.pem` it generates at first start (all test servers start from one template
    /// data directory, so they share those files until [`regenerate_certificates`] is called).
    ///
    /// [`regenerate_certificates`]: TestServer::regenerate_certificates
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Makes MySQL generate a new CA and server certificate, as a freshly installed server does:
    /// removes the certificate files from the data directory and restarts (MySQL generates them
    /// at start when none exist and no `--ssl-*` option is given, `auto_generate_certs`). The new
    /// CA has the same name as every other auto-generated CA, and a key of its own.
    pub fn regenerate_certificates(&self) {
        for file in [
            "ca",
            "ca-key",
            "server-cert",
            "server-key",
            "client-cert",
            "client-key",
        ] {
            std::fs::remove_file(self.data_dir().join(format!("{file}.pem")))
                .unwrap_or_else(|e| panic!("remove {file}.pem: {e}"));
        }
        self.restart();
        assert!(
            self.data_dir().join("ca.pem").exists(),
            "MySQL generated no ca.pem on restart in {}",
            self.data_dir().display()
        );
    }

    /// A URL DSN for root, optionally naming a database.
    pub fn dsn(&self, db: Option<&str>) -> String {
        format!("mysql://root@127.0.0.1:{}/{}", self.port, db.unwrap_or(""))
    }

    /// mysql_async options for root.
    pub fn opts(&self, db: Option<&str>) -> mysql_async::Opts {
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.port)
            .user(Some("root"))
            .db_name(db)
            .prefer_socket(false)
            .into()
    }

    /// A new connection as root.
    pub async fn conn(&self, db: Option<&str>) -> mysql_async::Conn {
        mysql_async::Conn::new(self.opts(db))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "connect to {} server on port {}: {e}",
                    self.flavor.name(),
                    self.port
                )
            })
    }

    /// Runs statements separated by `;` on a new connection.
    pub async fn exec(&self, sql: &str) {
        let mut conn = self.conn(None).await;
        conn.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        conn.disconnect().await.ok();
    }

    /// Waits until the server's clock is in a later second than when called (for tests of
    /// second-resolution timestamps such as binlog creation or CREATE_TIME).
    pub async fn next_second(&self) {
        let start = self.unix_time().await;
        super::wait_until(
            std::time::Duration::from_secs(5),
            "the next second",
            || async {
                let t = self.unix_time().await;
                if t > start {
                    Ok(())
                } else {
                    Err(format!("still {t}"))
                }
            },
        )
        .await;
    }

    /// The server's clock, seconds since the epoch.
    pub async fn unix_time(&self) -> u64 {
        let mut conn = self.conn(None).await;
        let t: u64 = conn
            .query_first("SELECT UNIX_TIMESTAMP()")
            .await
            .unwrap()
            .unwrap();
        conn.disconnect().await.ok();
        t
    }

    /// Kills the server with SIGKILL (a crash).
    pub fn kill(&self) {
        check(
            server_sh(&["kill", self.dir.to_str().unwrap()]),
            "server kill",
        );
    }

    /// Restarts the server on the same port with the same data.
    pub fn restart(&self) {
        check(
            server_sh(&["restart", self.dir.to_str().unwrap()]),
            "server restart",
        );
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if !self.shared {
            let _ = server_sh(&["stop", self.dir.to_str().unwrap_or("")]);
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

//! The source side: connect, validate the source's settings, register as a replica and read the
//! binlog from a checkpoint, yielding [`txn::Chunk`]s into a bounded channel.
//!
//! # Validate before streaming
//! Every setting that would make the index wrong (no binlog, statement or mixed format, partial
//! row images, our server id equal to the source's) is checked by a named `ensure_*` function
//! before the stream is requested, and reported as a definite error that says how to fix it.
//! The server's flavor and version are read once, here.
//!
//! # Read deadline
//! A replica connection that receives nothing for [`Reader::read_deadline`] (four heartbeats)
//! is dead and is replaced. "Nothing" means not a byte, rather than no whole event, so that a
//! large event on a slow link is not mistaken for a dead link: see [`wire`].

pub mod columns;
pub mod ddl_names;
pub mod file;
pub mod file_ends;
pub mod gap;
pub mod idle;
pub mod mariadb;
pub mod schema;
pub mod txn;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, Row};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::StreamConfig;
use crate::connect::{connect_through, ConnectError};
use crate::position::{BinlogPosition, Checkpoint, GtidSet, ResumePoint};

pub use self::file_ends::FileEnds;
pub use self::gap::{find_gap, is_mariadb_purged, mariadb_gap, oldest, Gap};
use self::txn::{Assembler, Chunk, TxnError};
use self::wire::Wire;

/// The default interval of source heartbeats (`--heartbeat-interval`).
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// Server software of the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Oracle MySQL (8.0 and later).
    Mysql,
    /// MariaDB.
    Mariadb,
}

/// What was learned about the source at connect time.
#[derive(Clone, Debug)]
pub struct SourceInfo {
    /// MySQL or MariaDB.
    pub flavor: Flavor,
    /// `@@version`.
    pub version: String,
    /// The source's own `@@server_id`.
    pub server_id: u32,
    /// What identifies the source's binlog history: `@@server_uuid`, or `server-id:N` on MariaDB.
    pub identity: String,
    /// Whether GTIDs are available (MySQL gtid_mode=ON, or MariaDB).
    pub gtids: bool,
    /// Whether table maps carry column names (binlog_row_metadata=FULL).
    pub full_metadata: bool,
}

/// Why the source cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Could not connect.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A setting that makes indexing impossible or wrong.
    #[error("source setting {name} is '{actual}', bintrail needs {expected} ({fix})")]
    Setting {
        /// The variable.
        name: &'static str,
        /// Its value on the source.
        actual: String,
        /// What bintrail needs.
        expected: &'static str,
        /// How to fix it.
        fix: &'static str,
    },
    /// The user lacks a privilege.
    #[error("source user '{user}' lacks {privilege}: {fix}")]
    Privilege {
        /// The user.
        user: String,
        /// What is missing.
        privilege: &'static str,
        /// The GRANT to run.
        fix: String,
    },
    /// The source refused to serve the binlog (MySQL error 1236), with the server's own text.
    #[error("the source refused to send its binlog from {from}: {message} (server error {code}); if the binlog files were purged, restart with --reset and a --start-file/--start-gtid that the source still has")]
    Refused {
        /// Where the stream was requested from.
        from: String,
        /// Server error code.
        code: u16,
        /// The server's message.
        message: String,
    },
    /// A table's columns cannot be known for sure.
    #[error(transparent)]
    Columns(#[from] columns::ColumnsError),
    /// The binlogs needed to resume are gone from the source.
    #[error("the binlogs needed to resume from {from} were purged from the source: {what}. Those changes can no longer reach the index. To continue anyway, restart with --on-gap=skip (streams from the oldest binlog the source still has, {oldest}, and records the gap in stream_gaps, shown by `bintrail status`), or with --reset and a --start-file/--start-gtid of your choice")]
    Purged {
        /// The resume point that cannot be served.
        from: String,
        /// What exactly is missing.
        what: String,
        /// The oldest point the source can still serve.
        oldest: String,
    },
    /// The binlog could not be indexed from here on.
    #[error(transparent)]
    Txn(#[from] TxnError),
    /// Not a byte arrived within the read deadline.
    #[error(
        "the source sent nothing (no event, no heartbeat, not a byte) for {0:?}; the connection is considered dead"
    )]
    Stalled(Duration),
    /// The server or network failed.
    #[error("source connection failed: {0}")]
    Server(#[from] mysql_async::Error),
    /// The source closed the stream.
    #[error("the source closed the binlog stream")]
    Closed,
}

impl SourceError {
    /// Whether reconnecting later may succeed; everything else is definite.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Connect(e) => e.is_transient(),
            SourceError::Server(e) => crate::classify::is_transient(e),
            SourceError::Stalled(_) | SourceError::Closed => true,
            _ => false,
        }
    }
}

/// The connection that becomes the binlog stream, and the clock of the bytes it receives.
pub struct Replica {
    /// The connection (through [`Wire::tunnel`]).
    pub conn: Conn,
    /// When it last received a byte.
    pub wire: Arc<Wire>,
}

/// A requested binlog stream, and the clock of the bytes its connection receives.
pub struct Binlog {
    /// The events.
    pub events: BinlogStream,
    /// When its connection last received a byte.
    pub wire: Arc<Wire>,
}

/// Connects to the source (the connection that [`request`] turns into the binlog stream) and
/// checks its settings.
pub async fn open(config: &StreamConfig) -> Result<(Replica, SourceInfo), SourceError> {
    let wire = Wire::new();
    let tunnel = {
        let (wire, host, port) = (wire.clone(), config.source.host.clone(), config.source.port);
        move || wire.clone().tunnel(host.clone(), port).boxed()
    };
    let mut conn =
        connect_through("source", &config.source, None, &config.tls, Some(&tunnel)).await?;
    let info = inspect(&mut conn).await?;
    ensure_settings(&mut conn, &info, config.server_id).await?;
    ensure_privileges(&mut conn, &config.source.user).await?;
    Ok((Replica { conn, wire }, info))
}

/// Reads the source's flavor, version, server id, identity and GTID availability: the one place
/// a server's flavor is decided.
pub async fn inspect(conn: &mut Conn) -> Result<SourceInfo, mysql_async::Error> {
    let (version, server_id): (String, u32) = conn
        .query_first("SELECT @@version, @@server_id")
        .await?
        .unwrap_or_default();
    let flavor = if version.to_ascii_lowercase().contains("mariadb") {
        Flavor::Mariadb
    } else {
        Flavor::Mysql
    };
    let (identity, gtids) = match flavor {
        Flavor::Mysql => {
            let (uuid, mode): (String, String) = conn
                .query_first("SELECT @@server_uuid, @@gtid_mode")
                .await?
                .unwrap_or_default();
            (uuid, mode.eq_ignore_ascii_case("ON"))
        }
        Flavor::Mariadb => (format!("server-id:{server_id}"), true),
    };
    let metadata: Option<String> = conn
        .query_first("SELECT @@binlog_row_metadata")
        .await
        .unwrap_or(None);
    Ok(SourceInfo {
        flavor,
        version,
        server_id,
        identity,
        gtids,
        full_metadata: metadata.is_some_and(|m| m.eq_ignore_ascii_case("FULL")),
    })
}

/// Checks log_bin, binlog_format, binlog_row_image and the server id.
pub async fn ensure_settings(
    conn: &mut Conn,
    info: &SourceInfo,
    our_server_id: u32,
) -> Result<(), SourceError> {
    let (log_bin, format, image): (String, String, String) = conn
        .query_first("SELECT @@log_bin, @@binlog_format, @@binlog_row_image")
        .await?
        .unwrap_or_default();
    if log_bin != "1" && !log_bin.eq_ignore_ascii_case("ON") {
        return Err(SourceError::Setting {
            name: "log_bin",
            actual: "OFF".into(),
            expected: "binary logging ON",
            fix: "start the source with --log-bin (MySQL 8+ enables it by default unless --skip-log-bin or --disable-log-bin is set) and restart it",
        });
    }
    if !format.eq_ignore_ascii_case("ROW") {
        return Err(SourceError::Setting {
            name: "binlog_format",
            actual: format,
            expected: "'ROW'",
            fix: "SET PERSIST binlog_format = 'ROW' (or binlog_format=ROW in my.cnf) and reconnect the applications",
        });
    }
    if !image.eq_ignore_ascii_case("FULL") {
        return Err(SourceError::Setting {
            name: "binlog_row_image",
            actual: image,
            expected: "'FULL'",
            fix: "SET PERSIST binlog_row_image = 'FULL' (or binlog_row_image=FULL in my.cnf) and reconnect the applications",
        });
    }
    if info.server_id == our_server_id {
        return Err(SourceError::Setting {
            name: "server_id",
            actual: info.server_id.to_string(),
            expected: "a --server-id different from the source's own",
            fix: "choose another --server-id, unique among the source and all its replicas",
        });
    }
    if !info.full_metadata {
        tracing::warn!(
            "source setting binlog_row_metadata is not FULL: column names come from information_schema, which is only right while the tables are not altered; set binlog_row_metadata=FULL on the source"
        );
    }
    Ok(())
}

/// Checks that the user may read the binlog (REPLICATION SLAVE / REPLICATION REPLICA) and its
/// position (REPLICATION CLIENT; MariaDB: BINLOG MONITOR).
pub async fn ensure_privileges(conn: &mut Conn, user: &str) -> Result<(), SourceError> {
    let grants: Vec<String> = conn.query("SHOW GRANTS").await?;
    let global: Vec<String> = grants
        .iter()
        .map(|g| g.to_ascii_uppercase())
        .filter(|g| g.contains(" ON *.* "))
        .collect();
    let has = |names: &[&str]| {
        global
            .iter()
            .any(|g| g.contains("ALL PRIVILEGES") || names.iter().any(|n| g.contains(n)))
    };
    // Privileges can also come through roles; only refuse when nothing could grant them.
    let roles = grants
        .iter()
        .any(|g| g.to_ascii_uppercase().starts_with("GRANT `") && !g.contains(" ON "));
    if roles {
        return Ok(());
    }
    let missing = if !has(&["REPLICATION SLAVE", "REPLICATION REPLICA"]) {
        Some("REPLICATION SLAVE (REPLICATION REPLICA)")
    } else if !has(&["REPLICATION CLIENT", "BINLOG MONITOR", "SUPER"]) {
        Some("REPLICATION CLIENT (MariaDB: BINLOG MONITOR)")
    } else {
        None
    };
    match missing {
        None => Ok(()),
        Some(privilege) => Err(SourceError::Privilege {
            user: user.to_string(),
            privilege,
            fix: format!(
                "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{user}' (MariaDB: GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{user}')"
            ),
        }),
    }
}

/// The source's current end of binlog, as a checkpoint (GTID mode when the source has GTIDs).
pub async fn current_end(conn: &mut Conn, info: &SourceInfo) -> Result<Checkpoint, SourceError> {
    // MySQL 8.2+ and MariaDB 10.5.2+ say SHOW BINARY LOG STATUS / SHOW BINLOG STATUS; older
    // servers only know SHOW MASTER STATUS. Report the first error if every form fails.
    let mut first_error = None;
    let mut status: Option<Row> = None;
    for sql in [
        "SHOW BINARY LOG STATUS",
        "SHOW BINLOG STATUS",
        "SHOW MASTER STATUS",
    ] {
        match conn.query_first(sql).await {
            Ok(row) => {
                status = row;
                first_error = None;
                break;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e.into());
    }
    let (file, pos) = status
        .and_then(|row| {
            let file: Option<String> = row.get(0);
            let pos: Option<u64> = row.get(1);
            file.zip(pos)
        })
        .ok_or(SourceError::Setting {
            name: "log_bin",
            actual: "no binary log status".into(),
            expected: "a current binlog file",
            fix: "check that binary logging is on and that the user has REPLICATION CLIENT (MariaDB: BINLOG MONITOR)",
        })?;
    let position = BinlogPosition::new(file, pos);
    let resume = if info.gtids {
        let sql = match info.flavor {
            Flavor::Mysql => "SELECT @@gtid_executed",
            Flavor::Mariadb => "SELECT @@gtid_binlog_pos",
        };
        let text: String = conn.query_first(sql).await?.unwrap_or_default();
        let set: GtidSet =
            text.parse()
                .map_err(|e: crate::position::PositionError| SourceError::Setting {
                    name: "gtid_executed",
                    actual: e.to_string(),
                    expected: "a GTID set",
                    fix: "report this as a bug with the value shown",
                })?;
        ResumePoint::Gtid(if text.is_empty() && info.flavor == Flavor::Mariadb {
            GtidSet::Mariadb(Default::default())
        } else {
            set
        })
    } else {
        ResumePoint::Position(position.clone())
    };
    Ok(Checkpoint::at(resume, position))
}

/// How long a requested binlog stream lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// Follow the source for ever, waiting for new events (the stream).
    Forever,
    /// End at the source's current end of binlog (`--dry-run`): the source closes the stream
    /// instead of waiting, and [`read`] then returns [`SourceError::Closed`].
    End,
}

/// Registers as replica `server_id` and requests the binlog from `from`.
pub async fn request(
    replica: Replica,
    info: &SourceInfo,
    config: &StreamConfig,
    from: &Checkpoint,
    until: Until,
) -> Result<Binlog, SourceError> {
    let Replica { mut conn, wire } = replica;
    let server_id = config.server_id;
    let period_ns = config.heartbeat_interval.as_nanos();
    conn.query_drop(format!("SET @master_heartbeat_period = {period_ns}"))
        .await?;
    if info.flavor == Flavor::Mariadb {
        // Capability 4 (MARIA_SLAVE_CAPABILITY_GTID) makes MariaDB send its GTID events
        // instead of replacing them with BEGIN.
        conn.query_drop("SET @mariadb_slave_capability = 4").await?;
    }
    let file = from.position.file.clone().into_bytes();
    let mut req = BinlogStreamRequest::new(server_id);
    if until == Until::End {
        req = req.with_non_blocking();
    }
    match (&from.resume, info.flavor) {
        (ResumePoint::Position(p), _) => {
            req = req.with_filename(&file).with_pos(p.pos);
        }
        (ResumePoint::Gtid(set), Flavor::Mariadb) => {
            conn.exec_drop("SET @slave_connect_state = ?", (set.to_string(),))
                .await?;
            conn.query_drop("SET @slave_gtid_strict_mode = 0, @slave_gtid_ignore_duplicates = 0")
                .await?;
            req = req.with_filename(b"").with_pos(4u64);
        }
        (ResumePoint::Gtid(set), Flavor::Mysql) => {
            req = req
                .with_gtid()
                .with_gtid_set(set.to_mysql_sids().unwrap_or_default())
                .with_pos(4u64);
        }
    }
    let events = conn
        .get_binlog_stream(req)
        .await
        .map_err(|e| refine(e, &from.resume))?;
    Ok(Binlog { events, wire })
}

/// Maps server error 1236 (and friends) to `Refused`, keeping the server's text.
fn refine(e: mysql_async::Error, from: &ResumePoint) -> SourceError {
    match e {
        mysql_async::Error::Server(s) if s.code == 1236 || s.code == 1227 || s.code == 1045 => {
            SourceError::Refused {
                from: from.to_string(),
                code: s.code,
                message: s.message,
            }
        }
        e => SourceError::Server(e),
    }
}

/// Logs a warning for each privacy pattern (`--exclude-columns`, `--mask-columns`,
/// `--truncate-columns`) that matches no column of the source: a typo there would otherwise
/// capture the very values it was meant to keep out, silently.
pub async fn warn_unmatched_policy(
    conn: &mut Conn,
    policy: &crate::policy::Policy,
) -> Result<(), SourceError> {
    if policy.is_empty() {
        return Ok(());
    }
    let columns: Vec<(String, String, String)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA NOT IN ('mysql', 'sys', 'information_schema', 'performance_schema')",
        )
        .await?;
    let names = columns
        .iter()
        .map(|(s, t, c)| (s.as_str(), t.as_str(), c.as_str()));
    for pattern in policy.unmatched(names) {
        tracing::warn!(
            pattern = %pattern,
            "privacy pattern matches no column of the source: check its spelling (names are case-sensitive); it still applies to tables created later"
        );
    }
    Ok(())
}

/// The reading half of a run: the binlog stream and what turns it into chunks.
pub struct Reader {
    /// Source flavor (for table layout lookups).
    pub flavor: Flavor,
    /// Silence (not a byte) longer than this means the connection is dead.
    pub read_deadline: Duration,
    /// The requested binlog stream.
    pub binlog: Binlog,
    /// Transaction assembly state.
    pub assembler: Assembler,
    /// Position mode: moves the checkpoint past binlog files read to their end.
    pub file_ends: Option<FileEnds>,
    /// A second source connection for information_schema lookups.
    pub lookup: Conn,
    /// Where activity is reported.
    pub telemetry: std::sync::Arc<crate::telemetry::Telemetry>,
    /// Raised while the reader waits on the socket with nothing buffered (see [`idle`]).
    pub idle: Arc<idle::Idle>,
}

impl Reader {
    /// The reader of a stream requested from `from`, with the configuration's filter, batch size
    /// and read deadline.
    pub fn new(
        config: &StreamConfig,
        info: &SourceInfo,
        binlog: Binlog,
        lookup: Conn,
        from: &Checkpoint,
        telemetry: std::sync::Arc<crate::telemetry::Telemetry>,
    ) -> Reader {
        Reader {
            flavor: info.flavor,
            read_deadline: config.read_deadline(),
            binlog,
            assembler: Assembler::new(
                config.filter.clone(),
                config.policy.clone(),
                config.batch_size,
                from,
            ),
            file_ends: FileEnds::new(from),
            lookup,
            telemetry,
            idle: Arc::default(),
        }
    }
}

/// Reads events until cancelled or failed, sending chunks to the writer.
pub async fn read(
    reader: Reader,
    tx: mpsc::Sender<Chunk>,
    cancel: CancellationToken,
) -> Result<(), SourceError> {
    let Reader {
        flavor,
        read_deadline,
        mut binlog,
        mut assembler,
        mut file_ends,
        mut lookup,
        telemetry,
        idle,
    } = reader;
    loop {
        // An event already buffered is taken without telling anyone; only when the socket has
        // nothing does the writer learn that every chunk so far is in its hands.
        let next = match binlog.events.next().now_or_never() {
            Some(item) => Ok(item),
            None => {
                idle.enter();
                let next = tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    next = wire::next_within(&mut binlog.events, &binlog.wire, read_deadline) => next,
                };
                idle.leave();
                next
            }
        };
        let event = match next {
            Err(wire::Silent) => return Err(SourceError::Stalled(read_deadline)),
            Ok(None) => return Err(SourceError::Closed),
            Ok(Some(Err(e))) => {
                return Err(refine(e, &ResumePoint::Position(assembler.position())))
            }
            Ok(Some(Ok(event))) => event,
        };
        telemetry.source_activity(event.header().timestamp());
        let chunk = loop {
            match assembler.feed(&event) {
                Err(TxnError::NeedColumns {
                    table_id,
                    schema,
                    table,
                }) => {
                    let tme = assembler
                        .table_map(table_id)
                        .cloned()
                        .expect("NeedColumns names a cached table map");
                    let at = columns::EventAt {
                        position: assembler.position(),
                        time: event.header().timestamp(),
                    };
                    let spec = columns::resolve(&mut lookup, flavor, &tme, &at).await?;
                    tracing::debug!(
                        schema,
                        table,
                        columns = spec.columns.len(),
                        "table layout resolved"
                    );
                    assembler.provide_spec(table_id, spec)?;
                }
                other => break other?,
            }
        };
        let chunk = match (chunk, file_ends.as_mut()) {
            (Some(chunk), Some(ends)) => {
                ends.proposed(&chunk);
                Some(chunk)
            }
            (None, Some(ends)) => ends.observe(&event, || assembler.position()),
            (chunk, None) => chunk,
        };
        if let Some(chunk) = chunk {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                sent = tx.send(chunk) => if sent.is_err() { return Ok(()) },
            }
        }
    }
}

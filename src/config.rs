//! Validated configuration: the line past which no clap type and no unchecked value goes.
//!
//! `cli.rs` hands over plain strings and numbers in [`StreamArgs`]; [`StreamConfig::new`] checks
//! every value and every combination before anything connects, so a bad flag exits with status 2
//! and leaves no state behind. Messages name the flag, the value (passwords redacted) and what
//! was expected.

use std::path::PathBuf;
use std::time::Duration;

use crate::dsn::{Dsn, DsnError, Secret};
use crate::filter::{Filter, FilterError};
use crate::policy::{Policy, PolicyArgs, PolicyError};
use crate::position::{BinlogPosition, Checkpoint, GtidSet, PositionError, ResumePoint};
use crate::tls::{SslMode, TlsConfig, TlsError};

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// journald when stdout is the journal, else text.
    #[default]
    Auto,
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where a stream starts when it has no checkpoint (or `--reset` cleared it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// `--start-file` / `--start-pos`.
    Position(BinlogPosition),
    /// `--start-gtid`: the set of transactions to skip.
    Gtid(GtidSet),
}

impl StartAt {
    /// The checkpoint a stream starts from when it starts here.
    pub fn checkpoint(&self) -> Checkpoint {
        match self {
            StartAt::Position(p) => Checkpoint::at(ResumePoint::Position(p.clone()), p.clone()),
            StartAt::Gtid(set) => {
                Checkpoint::at(ResumePoint::Gtid(set.clone()), BinlogPosition::new("", 4))
            }
        }
    }
}

/// What to do when the binlogs needed to resume were purged from the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnGap {
    /// Refuse to start, saying exactly what is gone (the default).
    #[default]
    Fail,
    /// Continue from the oldest position the source still has and record the gap.
    Skip,
}

impl OnGap {
    /// The flag values, in the order they are documented.
    pub const NAMES: [&'static str; 2] = ["fail", "skip"];
}

/// The `stream` command's raw inputs, as strings and numbers, before validation.
#[derive(Clone, Debug, Default)]
pub struct StreamArgs {
    /// `--source-dsn`.
    pub source_dsn: String,
    /// `--index-dsn`.
    pub index_dsn: String,
    /// `BINTRAIL_SOURCE_PASSWORD`, overriding the source DSN's password.
    pub source_password: Option<String>,
    /// `BINTRAIL_INDEX_PASSWORD`, overriding the index DSN's password.
    pub index_password: Option<String>,
    /// `--server-id` (already range-checked by the parser).
    pub server_id: u32,
    /// `--schemas`.
    pub schemas: Option<String>,
    /// `--tables`.
    pub tables: Option<String>,
    /// `--batch-size`.
    pub batch_size: u64,
    /// `--checkpoint-interval`, seconds.
    pub checkpoint_interval: u64,
    /// `--heartbeat-interval`, seconds (0 means the default).
    pub heartbeat_interval: u64,
    /// `--ssl-*` (source) and `--index-ssl-*` (index).
    pub tls: TlsArgs,
    /// `--reset`.
    pub reset: bool,
    /// Whether `BINTRAIL_RESET` is set in the environment (refused, see [`ConfigError::ResetFromEnv`]).
    pub reset_env: bool,
    /// `--start-file`.
    pub start_file: Option<String>,
    /// `--start-pos`.
    pub start_pos: Option<u64>,
    /// `--start-gtid`.
    pub start_gtid: Option<String>,
    /// `--on-gap`.
    pub on_gap: String,
    /// `--exclude-columns`, `--mask-columns`, `--truncate-columns` and the mask key.
    pub policy: PolicyArgs,
}

/// The raw TLS flags of both connections: `--ssl-*` for the source, `--index-ssl-*` for the
/// index (each `None` there means "as the source").
#[derive(Clone, Debug, Default)]
pub struct TlsArgs {
    /// `--ssl-mode` (`None`: the source DSN's TLS parameter, else `preferred`).
    pub ssl_mode: Option<String>,
    /// `--ssl-ca`.
    pub ssl_ca: Option<PathBuf>,
    /// `--ssl-cert`.
    pub ssl_cert: Option<PathBuf>,
    /// `--ssl-key`.
    pub ssl_key: Option<PathBuf>,
    /// `--index-ssl-mode`.
    pub index_ssl_mode: Option<String>,
    /// `--index-ssl-ca`.
    pub index_ssl_ca: Option<PathBuf>,
    /// `--index-ssl-cert`.
    pub index_ssl_cert: Option<PathBuf>,
    /// `--index-ssl-key`.
    pub index_ssl_key: Option<PathBuf>,
}

impl TlsArgs {
    /// Validates both settings: (source, index). A TLS parameter in a DSN (`?tls=…`,
    /// `?ssl-mode=…`) sets that connection's mode, or is refused (see
    /// [`SslMode::from_dsn_param`]); with a mode flag too, both must agree.
    pub fn into_configs(
        self,
        source: Option<&Dsn>,
        index: &Dsn,
    ) -> Result<(TlsConfig, TlsConfig), ConfigError> {
        let given = self.ssl_mode.map(|m| m.parse::<SslMode>()).transpose()?;
        let mode = dsn_mode("--source-dsn", source, "--ssl-mode", given)?.unwrap_or_default();
        let source = TlsConfig::new(mode, self.ssl_ca, self.ssl_cert, self.ssl_key)?;
        let index_mode = match self.index_ssl_mode {
            Some(m) => Some(m.parse::<SslMode>().map_err(|_| TlsError::Mode {
                flag: crate::tls::INDEX_FLAGS.mode,
                value: m,
            })?),
            None => None,
        };
        let index_mode = dsn_mode("--index-dsn", Some(index), "--index-ssl-mode", index_mode)?;
        let index = TlsConfig::for_index(
            &source,
            index_mode,
            self.index_ssl_ca,
            self.index_ssl_cert,
            self.index_ssl_key,
        )?;
        Ok((source, index))
    }
}

/// The mode of a connection whose DSN may carry a TLS parameter: the parameter's, the flag's
/// (`given`), or `None` for the default. Both must agree when both are there.
fn dsn_mode(
    flag: &'static str,
    dsn: Option<&Dsn>,
    mode_flag: &'static str,
    given: Option<SslMode>,
) -> Result<Option<SslMode>, ConfigError> {
    let Some((name, value)) = dsn.and_then(|d| d.tls_param.as_ref()) else {
        return Ok(given);
    };
    let mode = SslMode::from_dsn_param(flag, name, value)?;
    if let Some(flag_mode) = given.filter(|g| *g != mode) {
        return Err(TlsError::DsnConflict {
            flag,
            param: format!("{name}={value}"),
            mode_flag,
            dsn_mode: mode,
            flag_mode,
        }
        .into());
    }
    tracing::info!(
        dsn = flag,
        parameter = %format!("{name}={value}"),
        mode = %mode,
        "the DSN's TLS parameter sets the connection's {mode_flag}"
    );
    Ok(Some(mode))
}

/// Everything `stream` needs, validated.
#[derive(Clone, Debug)]
pub struct StreamConfig {
    /// The source server (replication client connection).
    pub source: Dsn,
    /// The index server and database.
    pub index: IndexConfig,
    /// This stream's replica server id; also its key in `stream_state`.
    pub server_id: u32,
    /// Which changes are kept.
    pub filter: Filter,
    /// Rows per flush at most.
    pub batch_size: usize,
    /// Time between flushes/checkpoints at most.
    pub checkpoint_interval: Duration,
    /// How often the source sends a heartbeat when idle; a connection silent for
    /// [`StreamConfig::read_deadline`] is considered dead.
    pub heartbeat_interval: Duration,
    /// TLS of the source connections (the index's is in [`IndexConfig::tls`]).
    pub tls: TlsConfig,
    /// Clear this stream's checkpoint before starting.
    pub reset: bool,
    /// Where to start without a checkpoint; `None` means the source's current end.
    pub start: Option<StartAt>,
    /// What to do about purged binlogs.
    pub on_gap: OnGap,
    /// Which columns are excluded, masked or truncated at capture.
    pub policy: Policy,
}

/// The index connection, validated: a DSN that names the index database.
#[derive(Clone, Debug)]
pub struct IndexConfig {
    /// The DSN; `database` is always `Some`.
    pub dsn: Dsn,
    /// The index database name.
    pub database: String,
    /// TLS of the index connections.
    pub tls: TlsConfig,
}

/// Why a configuration was rejected. Each message names the flag.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `BINTRAIL_RESET` in the environment.
    #[error("BINTRAIL_RESET is set in the environment: a reset taken from the environment (an environment file, a unit's Environment=) would clear the checkpoint on every restart of the stream. Remove it there, and run `bintrail stream --reset ...` once by hand when a reset is really wanted")]
    ResetFromEnv,
    /// A DSN that does not parse.
    #[error("{flag}: {source}")]
    Dsn {
        /// The flag.
        flag: &'static str,
        /// The parse error (password already redacted).
        source: DsnError,
    },
    /// The index DSN has no database.
    #[error("{flag} '{shown}' names no database: expected the index database in the DSN, e.g. mysql://user@host:3306/bintrail_index")]
    NoDatabase {
        /// The flag.
        flag: &'static str,
        /// The DSN, redacted.
        shown: String,
    },
    /// A bad `--schemas`/`--tables`.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// A bad TLS setting.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A bad `--exclude-columns`/`--mask-columns`/`--truncate-columns` or mask key.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A number outside its range.
    #[error("{flag} '{value}' is out of range: expected {expected}")]
    Range {
        /// The flag.
        flag: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// Two flags that cannot be combined, or one that needs another.
    #[error("{flag} {problem}")]
    Combination {
        /// The flag at fault.
        flag: &'static str,
        /// What is wrong and what to do.
        problem: &'static str,
    },
    /// A `--start-gtid` that does not parse.
    #[error("--start-gtid: {0}")]
    StartGtid(PositionError),
}

impl StreamConfig {
    /// Validates every value and combination of the `stream` flags.
    pub fn new(args: StreamArgs) -> Result<StreamConfig, ConfigError> {
        let source = parse_dsn("--source-dsn", &args.source_dsn, args.source_password)?;
        let index_dsn = parse_dsn("--index-dsn", &args.index_dsn, args.index_password)?;
        let (tls, index_tls) = args.tls.into_configs(Some(&source), &index_dsn)?;
        let index = IndexConfig::from_dsn(index_dsn, index_tls)?;
        if args.server_id == 0 {
            return Err(ConfigError::Range {
                flag: "--server-id",
                value: "0".into(),
                expected:
                    "1..=4294967295, different from the source's and every replica's server_id",
            });
        }
        if args.reset_env {
            return Err(ConfigError::ResetFromEnv);
        }
        let filter = Filter::new(args.schemas.as_deref(), args.tables.as_deref())?;
        let policy = Policy::new(args.policy)?;
        let batch_size = check_range(
            "--batch-size",
            args.batch_size,
            1,
            1_000_000,
            "1..=1000000 rows",
        )?;
        let interval = check_range(
            "--checkpoint-interval",
            args.checkpoint_interval,
            1,
            86_400,
            "1..=86400 seconds",
        )?;
        let heartbeat = match args.heartbeat_interval {
            0 => crate::source::HEARTBEAT.as_secs(),
            n => check_range("--heartbeat-interval", n, 1, 3600, "1..=3600 seconds")?,
        };
        let start = start_at(args.start_file, args.start_pos, args.start_gtid)?;
        let on_gap = match args.on_gap.as_str() {
            "" | "fail" => OnGap::Fail,
            "skip" => OnGap::Skip,
            other => {
                return Err(ConfigError::Range {
                    flag: "--on-gap",
                    value: other.to_string(),
                    expected: "fail or skip",
                })
            }
        };
        Ok(StreamConfig {
            source,
            index,
            server_id: args.server_id,
            filter,
            batch_size: batch_size as usize,
            checkpoint_interval: Duration::from_secs(interval),
            heartbeat_interval: Duration::from_secs(heartbeat),
            tls,
            reset: args.reset,
            start,
            on_gap,
            policy,
        })
    }
}

impl StreamConfig {
    /// Silence on the source connection longer than this (four heartbeats) means it is dead.
    pub fn read_deadline(&self) -> Duration {
        self.heartbeat_interval * 4
    }
}

impl IndexConfig {
    /// Checks that the parsed `--index-dsn` names a database; `tls` is the index connection's
    /// validated TLS setting.
    pub fn from_dsn(dsn: Dsn, tls: TlsConfig) -> Result<IndexConfig, ConfigError> {
        let database = dsn
            .database
            .clone()
            .ok_or_else(|| ConfigError::NoDatabase {
                flag: "--index-dsn",
                shown: dsn.redacted(),
            })?;
        Ok(IndexConfig { dsn, database, tls })
    }
}

/// Parses the DSN of `flag`; `password` (from the environment) overrides the DSN's.
pub fn parse_dsn(
    flag: &'static str,
    text: &str,
    password: Option<String>,
) -> Result<Dsn, ConfigError> {
    let mut dsn = Dsn::parse(text).map_err(|source| ConfigError::Dsn { flag, source })?;
    if let Some(p) = password {
        dsn.password = Some(Secret::new(p));
    }
    Ok(dsn)
}

fn check_range(
    flag: &'static str,
    value: u64,
    min: u64,
    max: u64,
    expected: &'static str,
) -> Result<u64, ConfigError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::Range {
            flag,
            value: value.to_string(),
            expected,
        })
    }
}

fn start_at(
    file: Option<String>,
    pos: Option<u64>,
    gtid: Option<String>,
) -> Result<Option<StartAt>, ConfigError> {
    match (file, pos, gtid) {
        (None, None, None) => Ok(None),
        (None, Some(_), _) => Err(ConfigError::Combination {
            flag: "--start-pos",
            problem: "needs --start-file (the binlog file the offset is in)",
        }),
        (Some(_), _, Some(_)) => Err(ConfigError::Combination {
            flag: "--start-gtid",
            problem: "cannot be combined with --start-file/--start-pos: start either at a GTID set or at a file position",
        }),
        (Some(file), pos, None) => {
            if file.trim().is_empty() {
                return Err(ConfigError::Combination {
                    flag: "--start-file",
                    problem: "is empty: expected a binlog file name such as binlog.000012",
                });
            }
            // A file's first event follows the 4-byte magic header.
            let pos = pos.unwrap_or(4);
            if pos < 4 {
                return Err(ConfigError::Range {
                    flag: "--start-pos",
                    value: pos.to_string(),
                    expected: "an event offset of 4 or more",
                });
            }
            Ok(Some(StartAt::Position(BinlogPosition::new(file, pos))))
        }
        (None, None, Some(gtid)) => Ok(Some(StartAt::Gtid(
            gtid.parse().map_err(ConfigError::StartGtid)?,
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> StreamArgs {
        StreamArgs {
            source_dsn: "mysql://repl:pw@src:3306".into(),
            index_dsn: "mysql://idx:pw@idx:3306/bt".into(),
            server_id: 42,
            batch_size: 1000,
            checkpoint_interval: 10,
            ..Default::default()
        }
    }

    fn err(f: impl FnOnce(&mut StreamArgs)) -> String {
        let mut a = args();
        f(&mut a);
        StreamConfig::new(a).unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_valid() {
        let c = StreamConfig::new(args()).unwrap();
        assert_eq!(c.batch_size, 1000);
        assert_eq!(c.index.database, "bt");
        assert_eq!(c.start, None);
    }

    #[test]
    fn each_bad_value_names_its_flag() {
        assert!(err(|a| a.batch_size = 0).contains("--batch-size"));
        assert!(err(|a| a.checkpoint_interval = 0).contains("--checkpoint-interval"));
        assert!(err(|a| a.server_id = 0).contains("--server-id"));
        assert!(err(|a| a.tls.ssl_mode = Some("bogus".into())).contains("--ssl-mode"));
        assert!(err(|a| a.tables = Some("orders".into())).contains("--tables"));
        assert!(err(|a| a.start_pos = Some(4)).contains("--start-pos"));
        assert!(err(|a| a.index_dsn = "mysql://idx:pw@idx".into()).contains("--index-dsn"));
        assert!(err(|a| {
            a.start_file = Some("binlog.000001".into());
            a.start_gtid = Some("0-1-1".into());
        })
        .contains("--start-gtid"));
    }

    #[test]
    fn index_tls_defaults_to_the_source_and_names_its_own_flags() {
        let ca = std::env::temp_dir().join(format!("bintrail-cfg-ca-{}.pem", std::process::id()));
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let mut a = args();
        a.tls.ssl_mode = Some("verify-ca".into());
        a.tls.ssl_ca = Some(ca.clone());
        let c = StreamConfig::new(a.clone()).unwrap();
        assert_eq!(c.index.tls.mode, SslMode::VerifyCa);
        assert_eq!(c.index.tls.ca.as_ref(), Some(&ca));
        assert!(c.index.tls.inherited);
        a.tls.index_ssl_mode = Some("disabled".into());
        let c = StreamConfig::new(a.clone()).unwrap();
        assert_eq!(
            (c.index.tls.mode, c.index.tls.ca),
            (SslMode::Disabled, None)
        );
        assert_eq!(c.tls.mode, SslMode::VerifyCa);
        a.tls.index_ssl_mode = Some("verify-full".into());
        a.tls.ssl_mode = Some("required".into());
        a.tls.ssl_ca = None;
        let e = StreamConfig::new(a.clone()).unwrap_err().to_string();
        assert!(
            e.contains("--index-ssl-mode verify-full needs --index-ssl-ca"),
            "{e}"
        );
        a.tls.index_ssl_ca = Some("/nonexistent/idx-ca.pem".into());
        let e = StreamConfig::new(a).unwrap_err().to_string();
        let _ = std::fs::remove_file(&ca);
        assert!(
            e.starts_with("--index-ssl-ca '/nonexistent/idx-ca.pem'"),
            "{e}"
        );
    }

    #[test]
    fn start_file_alone_starts_at_the_first_event() {
        let mut a = args();
        a.start_file = Some("binlog.000003".into());
        let c = StreamConfig::new(a).unwrap();
        assert_eq!(
            c.start,
            Some(StartAt::Position(BinlogPosition::new("binlog.000003", 4)))
        );
    }

    #[test]
    fn env_password_overrides_and_never_prints() {
        let mut a = args();
        a.source_password = Some("hunter2".into());
        let c = StreamConfig::new(a).unwrap();
        assert_eq!(c.source.password.as_ref().unwrap().expose(), "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!err(|a| a.source_dsn = "repl:hunter2@nowhere".into()).contains("hunter2"));
    }
}

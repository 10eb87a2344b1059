//! The command line: clap definitions of every command and flag, and their `BINTRAIL_*`
//! environment variables. Clap types stop here; each command's flags become a validated config
//! from `bintrail::config` in one step.

use std::path::PathBuf;

use bintrail::config::{ConfigError, IndexConfig, LogFormat, OnGap, StreamArgs};
use bintrail::tls::{SslMode, TlsConfig, TlsError};
use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Turns a MySQL server's binary log into a queryable, durable history of every row change.
#[derive(Debug, Parser)]
#[command(name = "bintrail", version, propagate_version = true)]
pub struct Cli {
    /// Log output: auto (journald under systemd, else text), text, or json (one object per line).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "BINTRAIL_LOG_FORMAT",
        default_value = "auto"
    )]
    pub log_format: LogFormatArg,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Stream the source's binlog into the change index, resuming from this stream's checkpoint.
    #[command(
        long_about = "Connects to the source as a replica (with its own --server-id), decodes every row \
change of the selected schemas/tables and writes it, with full before and after images, into the \
change index. Progress is checkpointed in stream_state in the same transaction as the rows, so a \
restart resumes exactly where it stopped.\n\nStarting point, in this order: this stream's checkpoint \
(unless --reset); else --start-gtid or --start-file/--start-pos; else the source's current end of \
binlog.\n\nPasswords can be given as BINTRAIL_SOURCE_PASSWORD / BINTRAIL_INDEX_PASSWORD instead of \
inside the DSNs, so they never appear in the process list."
    )]
    Stream(StreamCmd),

    /// Create the change index's database and tables (idempotent; checks existing ones).
    Init(InitCmd),
}

/// `--log-format` values.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormatArg {
    /// journald when stdout is the journal, else text.
    Auto,
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(v: LogFormatArg) -> LogFormat {
        match v {
            LogFormatArg::Auto => LogFormat::Auto,
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

/// TLS flags shared by every command that connects.
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// TLS for the source and index connections, with MySQL's meanings
    #[arg(long, env = "BINTRAIL_SSL_MODE", default_value = "preferred", value_name = "MODE",
          value_parser = PossibleValuesParser::new(SslMode::ALL.map(SslMode::as_str)))]
    pub ssl_mode: String,

    /// CA certificate (PEM) for verify-ca and verify-full
    #[arg(long, env = "BINTRAIL_SSL_CA", value_name = "FILE")]
    pub ssl_ca: Option<PathBuf>,

    /// Client certificate (PEM), for users created with REQUIRE X509
    #[arg(long, env = "BINTRAIL_SSL_CERT", value_name = "FILE")]
    pub ssl_cert: Option<PathBuf>,

    /// Client private key (PEM) matching --ssl-cert
    #[arg(long, env = "BINTRAIL_SSL_KEY", value_name = "FILE")]
    pub ssl_key: Option<PathBuf>,
}

impl TlsArgs {
    /// Validates the TLS flags.
    pub fn into_config(self) -> Result<TlsConfig, TlsError> {
        TlsConfig::new(
            self.ssl_mode.parse()?,
            self.ssl_ca,
            self.ssl_cert,
            self.ssl_key,
        )
    }
}

/// The `init` flags.
#[derive(Debug, Args)]
pub struct InitCmd {
    /// Index server and database to create: mysql://user:pass@host:3306/bintrail_index
    #[arg(
        long,
        env = "BINTRAIL_INDEX_DSN",
        hide_env_values = true,
        value_name = "DSN"
    )]
    pub index_dsn: String,

    #[command(flatten)]
    pub tls: TlsArgs,
}

impl InitCmd {
    /// The validated index target and TLS setting.
    pub fn into_config(self) -> Result<(IndexConfig, TlsConfig), ConfigError> {
        let index = IndexConfig::new(
            &self.index_dsn,
            std::env::var("BINTRAIL_INDEX_PASSWORD").ok(),
        )?;
        Ok((index, self.tls.into_config()?))
    }
}

/// The `stream` flags.
#[derive(Debug, Args)]
pub struct StreamCmd {
    /// Source server: mysql://user:pass@host:3306 or user:pass@tcp(host:3306)/
    #[arg(
        long,
        env = "BINTRAIL_SOURCE_DSN",
        hide_env_values = true,
        value_name = "DSN"
    )]
    pub source_dsn: String,

    /// Index server and database: mysql://user:pass@host:3306/bintrail_index
    #[arg(
        long,
        env = "BINTRAIL_INDEX_DSN",
        hide_env_values = true,
        value_name = "DSN"
    )]
    pub index_dsn: String,

    /// This stream's replica server id (1..=4294967295), unique among the source's replicas; also
    /// names the stream in stream_state and in the unit bintrail-stream-<id>
    #[arg(long, env = "BINTRAIL_SERVER_ID", value_name = "ID")]
    pub server_id: u32,

    /// Schemas to index, comma-separated [default: all]
    #[arg(long, env = "BINTRAIL_SCHEMAS", value_name = "LIST")]
    pub schemas: Option<String>,

    /// Tables to index as schema.table, comma-separated [default: all]
    #[arg(long, env = "BINTRAIL_TABLES", value_name = "LIST")]
    pub tables: Option<String>,

    /// Rows per index transaction at most
    #[arg(
        long,
        env = "BINTRAIL_BATCH_SIZE",
        default_value_t = 1000,
        value_name = "ROWS"
    )]
    pub batch_size: u64,

    /// Seconds between flushes and checkpoints at most (also when everything was filtered out)
    #[arg(
        long,
        env = "BINTRAIL_CHECKPOINT_INTERVAL",
        default_value_t = 10,
        value_name = "SECONDS"
    )]
    pub checkpoint_interval: u64,

    #[command(flatten)]
    pub tls: TlsArgs,

    /// Delete this stream's checkpoint (only this --server-id's) and start from the start flags,
    /// or from the source's current end without them
    #[arg(long, env = "BINTRAIL_RESET")]
    pub reset: bool,

    /// Binlog file to start from when there is no checkpoint, e.g. binlog.000012
    #[arg(long, env = "BINTRAIL_START_FILE", value_name = "FILE")]
    pub start_file: Option<String>,

    /// Offset in --start-file to start from [default: 4, the first event]
    #[arg(long, env = "BINTRAIL_START_POS", value_name = "OFFSET")]
    pub start_pos: Option<u64>,

    /// GTID set already processed, to start after it when there is no checkpoint (MySQL
    /// uuid:1-100 or MariaDB 0-1-100); selects GTID mode
    #[arg(long, env = "BINTRAIL_START_GTID", value_name = "GTID_SET")]
    pub start_gtid: Option<String>,

    /// When the binlogs needed to resume were purged: fail (say exactly what is gone, exit 3) or
    /// skip (continue from the oldest binlog the source has and record the gap in stream_gaps)
    #[arg(long, env = "BINTRAIL_ON_GAP", default_value = "fail", value_name = "ACTION",
          value_parser = PossibleValuesParser::new(OnGap::NAMES))]
    pub on_gap: String,
}

impl StreamCmd {
    /// The raw values for `StreamConfig::new`, with passwords from the environment.
    pub fn into_args(self) -> StreamArgs {
        StreamArgs {
            source_dsn: self.source_dsn,
            index_dsn: self.index_dsn,
            source_password: std::env::var("BINTRAIL_SOURCE_PASSWORD").ok(),
            index_password: std::env::var("BINTRAIL_INDEX_PASSWORD").ok(),
            server_id: self.server_id,
            schemas: self.schemas,
            tables: self.tables,
            batch_size: self.batch_size,
            checkpoint_interval: self.checkpoint_interval,
            ssl_mode: self.tls.ssl_mode,
            ssl_ca: self.tls.ssl_ca,
            ssl_cert: self.tls.ssl_cert,
            ssl_key: self.tls.ssl_key,
            reset: self.reset,
            start_file: self.start_file,
            start_pos: self.start_pos,
            start_gtid: self.start_gtid,
            on_gap: self.on_gap,
        }
    }
}

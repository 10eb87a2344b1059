//! The command line: clap definitions of every command and flag, and their `BINTRAIL_*`
//! environment variables. Clap types stop here; each command's flags become a validated config
//! from `bintrail::config` in one step.

use std::path::PathBuf;

use bintrail::config::{self, TlsArgs as RawTls};
use bintrail::config::{ConfigError, IndexConfig, LogFormat, OnGap, StreamArgs};
use bintrail::dsn::Dsn;
use bintrail::index::ddl::Compression;
use bintrail::policy::PolicyArgs;
use bintrail::tls::{SslMode, TlsConfig};
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

    /// Show every stream's checkpoint, progress, lag and gaps, and the index's size.
    Status(StatusCmd),

    /// Find changes in the index by table, primary key, time, type, GTID or changed column.
    Query(QueryCmd),

    /// Write the SQL that undoes the selected changes, newest first, in one transaction.
    #[command(
        long_about = "Selects changes exactly as `query` does and writes the SQL that reverses them, newest \
first, in one transaction: DELETE for inserts, INSERT for deletes, UPDATE back to the before image for \
updates, keyed by the live table's primary key. Values are written as exact literals for the live \
column types, read from the source's information_schema (--source-dsn). Refuses, saying why, when the \
selection spans a gap in the stream's history, when the selected rows changed again later outside the \
selection (unless --overwrite-later-changes), or when the table's columns changed since in a way that \
makes the SQL wrong."
    )]
    Recover(RecoverCmd),

    /// Show a table, or some of its rows, as it was at a moment: from the live table and the index.
    #[command(
        long_about = "Writes the content a table had at a moment: right after a transaction \
(--as-of-gtid), or after every transaction before the first one with a change stamped later than a \
time (--as-of); never a state inside a transaction. Reads the live rows in a consistent snapshot of \
the source (no lock, no dump), waits until the stream has indexed what that snapshot holds, and gives \
every row changed since the moment the before image of its first change after it. Refuses, saying \
why, when the stream skipped history after the moment, when the moment is older than the index's \
oldest change of the table, when the table changed shape in a way that does not map by name, or when \
it was truncated, dropped or renamed since. Output: CSV, JSON lines, or INSERT statements for a \
table you name with --into, to load the old state beside the live one and compare."
    )]
    Reconstruct(ReconstructCmd),

    /// Index binlog files (a data directory, a backup, a `mysqlbinlog --raw` copy) under a stream's id.
    #[command(
        long_about = "Reads binlog files from disk with the same decoder, filter, value encoding and \
change identity as `stream`, and writes their changes into binlog_events under --server-id, the id \
of the stream that reads (or will read, or read) the same source: a change indexed from a file and \
streamed, or indexed twice, is stored once. For history older than the stream, or from a server \
that is gone. The stream's checkpoint is not touched. Each file's magic and every event's CRC32 are \
verified; a corrupt or truncated file stops the run there, with everything before the transaction \
it breaks indexed and nothing after. Column names come from the files (binlog_row_metadata=FULL) \
or from --source-dsn."
    )]
    Index(IndexCmd),

    /// Drop expired hours of binlog_events and add partitions ahead (retention).
    Rotate(RotateCmd),

    /// Print the stored form of a value of a masked column, to look it up with `query`.
    #[command(
        long_about = "Prints \"hmac:<hex>\", the form in which a stream with --mask-columns stores VALUE: the HMAC-SHA-256 under the same mask key (BINTRAIL_MASK_KEY or --mask-key-file) of the value's stored-form text (strings as they are, numbers as JSON prints them, binary data as its base64, JSON documents as compact JSON). Use it to find rows by a masked value, e.g. `bintrail query --table app.users --pk \"$(bintrail mask --mask-key-file k alice@example.com)\"`; for a key of several columns, join the parts with |."
    )]
    Mask(MaskCmd),

    /// Set up streams as systemd services.
    #[command(subcommand)]
    Service(ServiceCmd),

    /// Work with the cold tier that `rotate --archive` writes.
    #[command(subcommand)]
    Archive(ArchiveCmd),
}

/// `bintrail archive` subcommands.
#[derive(Debug, Subcommand)]
pub enum ArchiveCmd {
    /// Re-read every file the manifest (archive_files) records and check it against its row
    #[command(
        long_about = "Re-reads every file recorded in the index's archive_files: its size and \
SHA-256, then every row (decoded, counted, in event_id order, of the recorded stream, table and \
hour, with the recorded event_id and time range). Exits 0 when all match; otherwise names each \
missing or different file and exits 3."
    )]
    Verify(ArchiveVerifyCmd),
}

/// The `archive verify` flags.
#[derive(Debug, Args)]
pub struct ArchiveVerifyCmd {
    #[command(flatten)]
    pub index: IndexArgs,

    /// The archive: the directory or s3://bucket/prefix given to rotate --archive (S3
    /// credentials and endpoint from AWS_* environment variables)
    #[arg(long, env = "BINTRAIL_ARCHIVE", value_name = "DIR|s3://BUCKET/PREFIX")]
    pub archive: String,

    /// Output format
    #[arg(long, value_enum, default_value = "table")]
    pub format: StatusFormat,
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

/// TLS flags shared by every command that connects: the source's, and the index's own.
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// TLS for the source connection (and the index's, unless --index-ssl-mode), with MySQL's
    /// meanings; a tls= or ssl-mode= parameter of the DSN sets it too [default: preferred]
    #[arg(long, env = "BINTRAIL_SSL_MODE", value_name = "MODE",
          value_parser = PossibleValuesParser::new(SslMode::ALL.map(SslMode::as_str)))]
    pub ssl_mode: Option<String>,

    /// CA certificate (PEM) for verify-ca and verify-full
    #[arg(long, env = "BINTRAIL_SSL_CA", value_name = "FILE")]
    pub ssl_ca: Option<PathBuf>,

    /// Client certificate (PEM), for users created with REQUIRE X509
    #[arg(long, env = "BINTRAIL_SSL_CERT", value_name = "FILE")]
    pub ssl_cert: Option<PathBuf>,

    /// Client private key (PEM) matching --ssl-cert
    #[arg(long, env = "BINTRAIL_SSL_KEY", value_name = "FILE")]
    pub ssl_key: Option<PathBuf>,

    /// TLS for the index connection [default: --ssl-mode]
    #[arg(long, env = "BINTRAIL_INDEX_SSL_MODE", value_name = "MODE",
          value_parser = PossibleValuesParser::new(SslMode::ALL.map(SslMode::as_str)))]
    pub index_ssl_mode: Option<String>,

    /// CA certificate (PEM) of the index server [default: --ssl-ca]
    #[arg(long, env = "BINTRAIL_INDEX_SSL_CA", value_name = "FILE")]
    pub index_ssl_ca: Option<PathBuf>,

    /// Client certificate (PEM) for the index [default: --ssl-cert, with --ssl-key]
    #[arg(long, env = "BINTRAIL_INDEX_SSL_CERT", value_name = "FILE")]
    pub index_ssl_cert: Option<PathBuf>,

    /// Client private key (PEM) matching --index-ssl-cert
    #[arg(long, env = "BINTRAIL_INDEX_SSL_KEY", value_name = "FILE")]
    pub index_ssl_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The raw values for `config::TlsArgs`.
    pub fn into_raw(self) -> RawTls {
        RawTls {
            ssl_mode: self.ssl_mode,
            ssl_ca: self.ssl_ca,
            ssl_cert: self.ssl_cert,
            ssl_key: self.ssl_key,
            index_ssl_mode: self.index_ssl_mode,
            index_ssl_ca: self.index_ssl_ca,
            index_ssl_cert: self.index_ssl_cert,
            index_ssl_key: self.index_ssl_key,
        }
    }
}

/// The `init` flags: the index to create, and how to reach it.
#[derive(Debug, Args)]
pub struct InitCmd {
    #[command(flatten)]
    pub index: IndexArgs,

    /// InnoDB page compression of binlog_events (MySQL index servers; needs a file system with
    /// hole punching, such as ext4 or XFS): lz4 keeps about a third of the disk for some 10 %
    /// of insert throughput, zlib is smaller and slower, none stores plain pages
    #[arg(long, default_value = "lz4", value_name = "ALGORITHM",
          value_parser = PossibleValuesParser::new(Compression::NAMES))]
    pub compression: String,

    /// Take over, in place, an index the established Go tool created: add bintrail's columns,
    /// keys and tables without rewriting a row, and turn its checkpoint into a stream
    /// checkpoint under the same server id (README, "Moving from the established tool")
    #[arg(long)]
    pub adopt: bool,

    /// With --adopt: print every statement it would run and what each costs, run nothing
    #[arg(long, requires = "adopt")]
    pub dry_run: bool,
}

impl InitCmd {
    /// The validated index target and TLS setting.
    pub fn into_config(self) -> Result<(IndexConfig, TlsConfig), ConfigError> {
        let (index, tls, _) = self.index.into_config(None)?;
        Ok((index, tls))
    }

    /// `--compression`, already one of [`Compression::NAMES`] (the parser checked).
    pub fn compression(&self) -> Compression {
        Compression::from_name(&self.compression).unwrap_or_default()
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

    /// Seconds between heartbeats the source sends when idle; a source connection silent for
    /// four heartbeats is treated as dead and reconnected
    #[arg(
        long,
        env = "BINTRAIL_HEARTBEAT_INTERVAL",
        default_value_t = 5,
        value_name = "SECONDS"
    )]
    pub heartbeat_interval: u64,

    #[command(flatten)]
    pub tls: TlsArgs,

    /// Delete this stream's checkpoint (only this --server-id's) and start from the start flags,
    /// or from the source's current end without them. Deliberately a flag only: a
    /// BINTRAIL_RESET left in an environment file would clear the checkpoint on every restart of
    /// the unit, so it is refused
    #[arg(long)]
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

    /// Serve Prometheus metrics on http://ADDR/metrics and liveness on /healthz, e.g.
    /// 127.0.0.1:9187 [default: off]
    #[arg(long, env = "BINTRAIL_METRICS_ADDR", value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    #[command(flatten)]
    pub policy: PolicyFlags,

    /// Write nothing: read and decode from where this stream would start (its checkpoint, else
    /// the start flags, else the oldest binlog on the source) to the source's current end,
    /// print what would be indexed per table and how fast it decoded, and exit
    #[arg(long)]
    pub dry_run: bool,

    /// Output of --dry-run
    #[arg(
        long,
        value_enum,
        default_value = "table",
        requires = "dry_run",
        value_name = "FORMAT"
    )]
    pub format: StatusFormat,
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
            heartbeat_interval: self.heartbeat_interval,
            tls: self.tls.into_raw(),
            reset: self.reset,
            reset_env: std::env::var_os("BINTRAIL_RESET").is_some(),
            start_file: self.start_file,
            start_pos: self.start_pos,
            start_gtid: self.start_gtid,
            on_gap: self.on_gap,
            policy: self.policy.into_args(),
        }
    }
}

/// The privacy-at-capture flags of `stream` (see README "Keeping personal data out").
#[derive(Debug, Args)]
pub struct PolicyFlags {
    /// Columns never captured, as schema.table.column (* for a whole part), comma-separated:
    /// absent from both images and from changed_columns; key columns cannot be excluded
    #[arg(long, env = "BINTRAIL_EXCLUDE_COLUMNS", value_name = "LIST")]
    pub exclude_columns: Option<String>,

    /// Columns stored as "hmac:<hex>", the HMAC-SHA-256 of the value under the mask key: equal
    /// values stay equal and can be looked up with `bintrail mask`, nothing can be read back
    #[arg(long, env = "BINTRAIL_MASK_COLUMNS", value_name = "LIST")]
    pub mask_columns: Option<String>,

    /// Columns cut to N characters (text) or N bytes (binary), as schema.table.column:N,
    /// comma-separated (an item without :N takes the next item's N)
    #[arg(long, env = "BINTRAIL_TRUNCATE_COLUMNS", value_name = "LIST:N")]
    pub truncate_columns: Option<String>,

    /// File holding the mask key (at least 16 bytes; a trailing newline is ignored); or set
    /// BINTRAIL_MASK_KEY
    #[arg(long, env = "BINTRAIL_MASK_KEY_FILE", value_name = "FILE")]
    pub mask_key_file: Option<PathBuf>,
}

impl PolicyFlags {
    /// The raw values for `Policy::new`, the key from `BINTRAIL_MASK_KEY` when set.
    pub fn into_args(self) -> PolicyArgs {
        PolicyArgs {
            exclude: self.exclude_columns,
            mask: self.mask_columns,
            truncate: self.truncate_columns,
            key: std::env::var("BINTRAIL_MASK_KEY").ok(),
            key_file: self.mask_key_file,
        }
    }
}

/// The `index` flags.
#[derive(Debug, Args)]
pub struct IndexCmd {
    #[command(flatten)]
    pub index: IndexArgs,

    /// The stream whose history the files belong to (its --server-id): the changes are stored
    /// under this id, so that the stream and the files never store a change twice (with
    /// --fill-gap: the gap's stream, which it must match if given)
    #[arg(
        long,
        env = "BINTRAIL_SERVER_ID",
        value_name = "ID",
        required_unless_present = "fill_gap"
    )]
    pub server_id: Option<u32>,

    /// Index exactly the history that gap ID of stream_gaps lacks (`bintrail status` lists
    /// them), from the files of --binlog-dir, then mark the gap filled; refused, writing
    /// nothing, when the files do not hold all of it
    #[arg(long, requires = "binlog_dir", value_name = "ID")]
    pub fill_gap: Option<u64>,

    /// Write nothing: read and decode the files, print what would be indexed per table and the
    /// range, and exit
    #[arg(long)]
    pub dry_run: bool,

    /// Binlog files to read, in binlog order
    #[arg(long, num_args = 1.., value_name = "FILE", conflicts_with = "binlog_dir", required_unless_present = "binlog_dir")]
    pub files: Vec<PathBuf>,

    /// Read the binlog files (NAME.NNNNNN) of this directory, in sequence order
    #[arg(long, value_name = "DIR")]
    pub binlog_dir: Option<PathBuf>,

    /// With --binlog-dir: the first file to read, e.g. binlog.000012
    #[arg(long, requires = "binlog_dir", value_name = "FILE")]
    pub from: Option<String>,

    /// With --binlog-dir: the last file to read
    #[arg(long, requires = "binlog_dir", value_name = "FILE")]
    pub to: Option<String>,

    /// The source that wrote the files, if reachable: confirms their identity and gives column
    /// names the files lack (binlog_row_metadata=MINIMAL) and keys of tables without a primary key
    #[arg(
        long,
        env = "BINTRAIL_SOURCE_DSN",
        hide_env_values = true,
        value_name = "DSN"
    )]
    pub source_dsn: Option<String>,

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

    /// The same privacy-at-capture flags as the stream that reads this source (give the same
    /// ones: files are policed as that stream polices its changes)
    #[command(flatten)]
    pub policy: PolicyFlags,
}

/// `bintrail service …`.
#[derive(Debug, Subcommand)]
pub enum ServiceCmd {
    /// Write the systemd unit bintrail-stream-<ID>.service and its environment file for one
    /// stream (validating the flags exactly as `stream` does); then `systemctl daemon-reload` and
    /// `systemctl enable --now bintrail-stream-<ID>`
    #[command(
        long_about = "Writes ROOT/etc/systemd/system/bintrail-stream-<ID>.service and \
ROOT/etc/bintrail/stream-<ID>.env (mode 0600). The unit runs `bintrail stream --server-id <ID>` as \
Type=notify with a watchdog, restarts on failure (not on exit status 3, a definite error) and is \
sandboxed. Every other stream flag, and the passwords (as BINTRAIL_SOURCE_PASSWORD and \
BINTRAIL_INDEX_PASSWORD, never in the unit), go into the environment file. The flags are \
validated exactly as `bintrail stream` validates them; nothing connects."
    )]
    Install(ServiceInstallCmd),
}

/// The `service install` flags: every `stream` flag, plus where to write.
#[derive(Debug, Args)]
pub struct ServiceInstallCmd {
    #[command(flatten)]
    pub stream: StreamCmd,

    /// Write under this directory instead of / (packaging, or to look before installing)
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    /// The bintrail binary the unit runs
    #[arg(long, value_name = "PATH", default_value = "/usr/bin/bintrail")]
    pub exec: PathBuf,

    /// Replace an existing unit and environment file of this stream
    #[arg(long)]
    pub force: bool,
}

/// The index connection of the read-side commands (`status`, `query`, `recover`, `rotate`).
#[derive(Debug, Args)]
pub struct IndexArgs {
    /// Index server and database: mysql://user:pass@host:3306/bintrail_index
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

impl IndexArgs {
    /// The validated index target (with its TLS setting), and the source's DSN (`--source-dsn`
    /// of `status` and `recover`, if given) with its TLS setting.
    pub fn into_config(
        self,
        source_dsn: Option<&str>,
    ) -> Result<(IndexConfig, TlsConfig, Option<Dsn>), ConfigError> {
        let source = source_dsn
            .map(|s| {
                config::parse_dsn(
                    "--source-dsn",
                    s,
                    std::env::var("BINTRAIL_SOURCE_PASSWORD").ok(),
                )
            })
            .transpose()?;
        let index_dsn = config::parse_dsn(
            "--index-dsn",
            &self.index_dsn,
            std::env::var("BINTRAIL_INDEX_PASSWORD").ok(),
        )?;
        let (source_tls, index_tls) = self
            .tls
            .into_raw()
            .into_configs(source.as_ref(), &index_dsn)?;
        let index = IndexConfig::from_dsn(index_dsn, index_tls)?;
        Ok((index, source_tls, source))
    }
}

/// Which changes `query` and `recover` are about. Times are UTC; both ends are inclusive.
#[derive(Debug, Args)]
pub struct SelectionFlags {
    /// Only changes indexed by the stream with this --server-id
    #[arg(long, value_name = "ID")]
    pub server_id: Option<u32>,

    /// Schema (database) of the table
    #[arg(long, value_name = "NAME")]
    pub schema: Option<String>,

    /// Table, with --schema or as schema.table
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,

    /// Primary key value(s) in pk_values form: 12345, or 12345|2 for a two-column key (needs the
    /// table); looked up through the k_table_pk index
    #[arg(long, value_name = "VALUES")]
    pub pk: Option<String>,

    /// Changes at or after this time: YYYY-MM-DD[ HH:MM:SS] (UTC), or a duration ago: 30m, 2h, 7d
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// Changes at or before this time: YYYY-MM-DD[ HH:MM:SS] (UTC), or a duration ago
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,

    /// Only this kind of change
    #[arg(long, value_name = "TYPE", value_parser = PossibleValuesParser::new(["insert", "update", "delete"]))]
    pub event_type: Option<String>,

    /// Only the changes of these transactions: a GTID or GTID set (MySQL uuid:5, uuid:5-9,
    /// uuid:1-3:7-8,uuid2:tag:4) or MariaDB GTIDs and ranges (0-1-5,0-2-9, 0-1-5..9)
    #[arg(long, value_name = "GTIDS")]
    pub gtid: Option<String>,

    /// Only updates that changed this column
    #[arg(long, value_name = "NAME")]
    pub changed_column: Option<String>,

    /// At most this many changes (the newest)
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub limit: u64,
}

impl SelectionFlags {
    /// The raw filters for `Selection::new`.
    pub fn into_args(self) -> bintrail::history::selection::SelectionArgs {
        bintrail::history::selection::SelectionArgs {
            server_id: self.server_id,
            schema: self.schema,
            table: self.table,
            pk: self.pk,
            since: self.since,
            until: self.until,
            event_type: self.event_type,
            gtid: self.gtid,
            changed_column: self.changed_column,
            limit: self.limit,
        }
    }
}

/// `status --format` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    /// For people.
    Table,
    /// One JSON document.
    Json,
}

/// `query --format` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum QueryFormat {
    /// For people: before → after of the changed columns.
    Table,
    /// One JSON object per change and line, values exactly as stored.
    Json,
    /// RFC 4180 CSV with a header; images as JSON text.
    Csv,
}

/// The `status` flags.
#[derive(Debug, Args)]
pub struct StatusCmd {
    #[command(flatten)]
    pub index: IndexArgs,

    #[command(flatten)]
    pub archive: ArchiveReadArgs,

    /// Also show how far each stream of this source is behind it (bytes, GTIDs, seconds)
    #[arg(
        long,
        env = "BINTRAIL_SOURCE_DSN",
        hide_env_values = true,
        value_name = "DSN"
    )]
    pub source_dsn: Option<String>,

    /// Output format
    #[arg(long, value_enum, default_value = "table")]
    pub format: StatusFormat,

    /// Exit with status 1 when a stream's last checkpoint is older than this (e.g. 5m), or when
    /// there is no stream: a monitoring check. With --source-dsn a stream that is caught up is
    /// never stale (on an idle source there is nothing to checkpoint)
    #[arg(long, value_name = "DURATION")]
    pub stale_after: Option<String>,
}

/// `--archive DIR|s3://BUCKET/PREFIX` of the commands that read changes.
#[derive(Debug, Args)]
pub struct ArchiveReadArgs {
    /// Also read the changes rotate --archive moved to this directory or s3://bucket/prefix, as
    /// if they were still in the index (files pruned by the index's archive_files manifest, or
    /// by the archive's layout, then by each file's row-group statistics and key bloom filters)
    #[arg(long, env = "BINTRAIL_ARCHIVE", value_name = "DIR|s3://BUCKET/PREFIX")]
    pub archive: Option<String>,
}

/// The `query` flags.
#[derive(Debug, Args)]
pub struct QueryCmd {
    #[command(flatten)]
    pub index: IndexArgs,

    #[command(flatten)]
    pub archive: ArchiveReadArgs,

    #[command(flatten)]
    pub selection: SelectionFlags,

    /// Output format
    #[arg(long, value_enum, default_value = "table")]
    pub format: QueryFormat,
}

/// The `recover` flags.
#[derive(Debug, Args)]
pub struct RecoverCmd {
    #[command(flatten)]
    pub index: IndexArgs,

    #[command(flatten)]
    pub archive: ArchiveReadArgs,

    /// The source (or a server with the same tables), whose information_schema gives the column
    /// types the SQL is written for
    #[arg(
        long,
        env = "BINTRAIL_SOURCE_DSN",
        hide_env_values = true,
        value_name = "DSN"
    )]
    pub source_dsn: String,

    #[command(flatten)]
    pub selection: SelectionFlags,

    /// Write the SQL to this file instead of standard output
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Print what would be reversed instead of the SQL
    #[arg(long)]
    pub dry_run: bool,

    /// Reverse even when the selected rows changed again later, outside the selection (those
    /// later changes are overwritten)
    #[arg(long)]
    pub overwrite_later_changes: bool,

    /// Reverse even when the selection holds only some of a transaction's changes (undoing part
    /// of a transaction restores a state that never existed; the script notes which)
    #[arg(long)]
    pub allow_partial_transactions: bool,

    /// Restore deleted rows even when columns of theirs were masked, truncated or excluded at
    /// capture: those columns get their defaults (the script lists them)
    #[arg(long)]
    pub restore_with_defaults: bool,

    /// The time zone the established tool's indexing host wrote TIMESTAMP values in, for
    /// changes indexed before the index was adopted: a fixed offset (+02:00, -05:30) or UTC.
    /// Without it such values are refused
    #[arg(long, value_name = "ZONE")]
    pub established_time_zone: Option<String>,
}

/// `reconstruct --format` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReconstructFormat {
    /// RFC 4180 CSV with a header of column names; NULL is an empty field, an empty string `""`.
    Csv,
    /// One JSON object per row and line, values in the stored form (see README, Value encoding).
    Json,
    /// INSERT statements for the table named by --into, in one transaction.
    Sql,
}

/// The `reconstruct` flags.
#[derive(Debug, Args)]
pub struct ReconstructCmd {
    #[command(flatten)]
    pub index: IndexArgs,

    #[command(flatten)]
    pub archive: ArchiveReadArgs,

    /// The source the stream reads: the live rows come from it
    #[arg(
        long,
        env = "BINTRAIL_SOURCE_DSN",
        hide_env_values = true,
        value_name = "DSN"
    )]
    pub source_dsn: String,

    /// The table, as schema.table
    #[arg(long, value_name = "SCHEMA.TABLE")]
    pub table: String,

    /// The moment: YYYY-MM-DD[ HH:MM:SS] (UTC), or a duration ago: 30m, 2h, 7d
    #[arg(
        long,
        value_name = "TIME",
        conflicts_with = "as_of_gtid",
        required_unless_present = "as_of_gtid"
    )]
    pub as_of: Option<String>,

    /// The moment right after this transaction committed: uuid:N (MySQL) or domain-server-seq (MariaDB)
    #[arg(long, value_name = "GTID")]
    pub as_of_gtid: Option<String>,

    /// Only the row with this key, in pk_values form (12345, or 12345|2 for a two-column key)
    #[arg(long, value_name = "VALUES", conflicts_with = "where_sql")]
    pub pk: Option<String>,

    /// Only rows for which this SQL condition on the table's columns holds (on live rows and on
    /// restored ones alike), e.g. "customer_id = 42"
    #[arg(long = "where", value_name = "SQL")]
    pub where_sql: Option<String>,

    /// Use the history of the stream with this --server-id (needed when the index has several)
    #[arg(long, value_name = "ID")]
    pub server_id: Option<u32>,

    /// The time zone the established tool's indexing host wrote TIMESTAMP values in, for
    /// changes indexed before the index was adopted: a fixed offset (+02:00, -05:30) or UTC.
    /// Without it such values are refused
    #[arg(long, value_name = "ZONE")]
    pub established_time_zone: Option<String>,

    /// Output format
    #[arg(long, value_enum, default_value = "csv")]
    pub format: ReconstructFormat,

    /// With --format sql: the table the INSERT statements write, as table or schema.table
    #[arg(long, value_name = "TABLE")]
    pub into: Option<String>,

    /// Write to this file (complete or not at all) instead of standard output
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// How long to wait for the stream to index what the source's snapshot holds (e.g. 60s, 5m)
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub wait: String,
}

/// The `mask` flags.
#[derive(Debug, Args)]
pub struct MaskCmd {
    /// The value as the unmasked index would hold it (its stored-form text)
    #[arg(value_name = "VALUE")]
    pub value: String,

    /// File holding the mask key, as given to the stream; or set BINTRAIL_MASK_KEY
    #[arg(long, env = "BINTRAIL_MASK_KEY_FILE", value_name = "FILE")]
    pub mask_key_file: Option<PathBuf>,
}

impl MaskCmd {
    /// The key flags as `PolicyArgs` (no patterns).
    pub fn key_args(&self) -> PolicyArgs {
        PolicyArgs {
            key: std::env::var("BINTRAIL_MASK_KEY").ok(),
            key_file: self.mask_key_file.clone(),
            ..PolicyArgs::default()
        }
    }
}

/// The `rotate` flags.
#[derive(Debug, Args)]
pub struct RotateCmd {
    #[command(flatten)]
    pub index: IndexArgs,

    /// Drop the hourly partitions of binlog_events whose every change is older than this
    /// (e.g. 7d, 36h); without it, only partitions ahead are added
    #[arg(long, env = "BINTRAIL_RETAIN", value_name = "DURATION")]
    pub retain: Option<String>,

    /// Hourly partitions to keep ready after the current hour
    #[arg(
        long,
        env = "BINTRAIL_AHEAD",
        default_value_t = 48,
        value_name = "HOURS"
    )]
    pub ahead: u32,

    /// Keep running and rotate at this interval (e.g. 1h) until SIGTERM/SIGINT
    #[arg(long, env = "BINTRAIL_EVERY", value_name = "DURATION")]
    pub every: Option<String>,

    /// Print what would be added, archived and dropped, change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Before dropping an expired hour, write its changes as Parquet files under this
    /// directory or S3 location (schema=…/table=…/date=…/hour=…/stream=….parquet) and record
    /// them in the index's archive_files; needs --retain. S3 credentials, region and endpoint
    /// come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION and
    /// AWS_ENDPOINT_URL
    #[arg(long, env = "BINTRAIL_ARCHIVE", value_name = "DIR|s3://BUCKET/PREFIX")]
    pub archive: Option<String>,
}

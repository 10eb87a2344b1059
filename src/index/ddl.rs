//! The change index's tables: their CREATE statements and the check that an existing table has
//! a shape bintrail can write to. `init` is idempotent: it creates what is missing and leaves
//! compatible tables alone; `stream` runs the same check before it writes anything.
//!
//! # `binlog_events`
//! Keeps the established column names and meanings (event_id, binlog_file, start_pos, end_pos,
//! event_timestamp, gtid, connection_id, schema_name, table_name, event_type 1/2/3,
//! pk_values, pk_hash = SHA2(pk_values, 256), changed_columns, row_before, row_after,
//! schema_version) and adds `stream_id` and `row_in_event`, which with `binlog_file` and
//! `start_pos` form the unique identity of a change: a replay writes nothing twice.
//! `event_timestamp` is part of every unique key so that the table can be range-partitioned by
//! time for retention (dropping a partition is instant; deleting rows is not).
//!
//! # Partitions
//! `init` creates `binlog_events` partitioned `BY RANGE (TO_SECONDS(event_timestamp))`, the
//! layout of the established bintrail index: one partition per UTC hour, named `p_YYYYMMDDHH`
//! after the hour it holds, from the current hour to [`DEFAULT_AHEAD_HOURS`] ahead, then the
//! catch-all [`FUTURE_PARTITION`] (`VALUES LESS THAN MAXVALUE`), so that a row always has a
//! partition to land in, whatever its time. `bintrail rotate` (`history::rotate`) keeps hours
//! ahead by splitting the catch-all and drops expired hours whole, without reading them. The
//! first partition also holds everything older than its hour (a stream started from an old
//! binlog); it is dropped once its hour has expired.
//!
//! # `ddl_events`
//! One marker per table a logged DDL statement acts on (TRUNCATE, DROP TABLE, RENAME, ALTER,
//! CREATE, DROP DATABASE; see `source::ddl_names`), for the tables the stream keeps, written in
//! the same index transaction as the checkpoint that passes the statement, so a crash neither
//! loses nor doubles one (`uk_marker` makes a replay a no-op). `last_event_id` places the
//! statement among the stream's changes: its changes with `event_id <= last_event_id` came
//! before it, later ones after (`event_id` is allocated in increasing order, so a change written
//! after the marker's transaction gets a larger id, whichever streams write meanwhile). Markers
//! are few and small; `rotate` keeps them.
//!
//! # Secondary indexes
//! Each costs write throughput, so there is one per kind of lookup the read side makes:
//! `uk_change` (the identity, makes replays no-ops), `k_table_pk` (`--pk`, and `--schema`/
//! `--table` through its prefix), `k_time` (`--since`/`--until`, together with partition
//! pruning) and `k_gtid` (`--gtid`).
//!
//! # `key_changes`
//! An update that changes a row's key is stored under the new key. So that `query --pk` and
//! `recover` can follow a row from its old key, the writer adds one `key_changes` row per such
//! update (old key, new key, its `event_id` and time), in the same transaction; nothing for the
//! updates that keep their key. `k_before` answers "where did key K go" through an index.
//! `rotate` deletes the rows of the hours it drops (`k_time`), so the side table never outlives
//! the changes it points to. An index created before this table gets it (and `xa_prepared` its
//! `pk_before` column) from `init` or on the stream's start; key changes indexed before then
//! have no row here.
//!
//! # `capture_policies` and `policy_version`
//! Every change carries the fingerprint of the privacy policy its images were policed by
//! (`policy`; 0: none), and `capture_policies` holds each stream's policies (canonical text, the
//! mask key by its id only; first and last start under it), written when the stream starts, so
//! `status` can show since when a column is masked. An index created before them gets both on
//! the stream's start ([`ensure_ready`]); its earlier changes have `policy_version` 0.
//!
//! # `archive_files`
//! The manifest of the cold tier (`archive`): one row per Parquet file `rotate --archive` wrote,
//! with its checksum, row count and key and time range, recorded before the partition its rows
//! came from is dropped. An index created before it gets it from `init`, on the stream's start,
//! or from `rotate --archive` itself.
//!
//! # Bytes per change
//! Disk is paid for every day of retention, so nothing is stored twice: `pk_hash` keeps its
//! established meaning (`SHA2(pk_values, 256)`) but is VIRTUAL, computed when read, and
//! `k_table_pk` indexes the first 32 characters of `pk_values` itself (the full value is
//! compared after the index lookup). That saves the 65-byte stored hash in every row, and
//! because key values of one table arrive in roughly increasing order, the index is written
//! near its end instead of at a random hash position in every page (`scripts/bench.sh`: 11 %
//! fewer bytes per change, and faster writes once the index outgrows the buffer pool).

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::sql::ident;
use crate::time::{format_hour, now, TO_SECONDS_EPOCH};

/// The change rows.
pub const BINLOG_EVENTS: &str = "binlog_events";
/// One checkpoint row per stream.
pub const STREAM_STATE: &str = "stream_state";
/// Ranges of the source's history that a stream skipped (purged binlogs, `--on-gap=skip`).
pub const STREAM_GAPS: &str = "stream_gaps";

/// Changes of prepared XA transactions waiting for their `XA COMMIT` or `XA ROLLBACK`.
pub const XA_PREPARED: &str = "xa_prepared";

/// Updates that changed a row's key: old key → new key.
pub const KEY_CHANGES: &str = "key_changes";
/// One row per table a logged DDL statement acted on.
pub const DDL_EVENTS: &str = "ddl_events";
/// The capture policies each stream ran under (`policy`): the history `status` lists.
pub const CAPTURE_POLICIES: &str = "capture_policies";
/// The manifest of the cold tier: one row per Parquet file `rotate --archive` wrote (`archive`).
pub const ARCHIVE_FILES: &str = "archive_files";

/// Width of one `binlog_events` partition: an hour, in seconds.
pub const PARTITION_SECONDS: i64 = 3_600;
/// Hourly partitions `init` creates ahead of the current hour.
pub const DEFAULT_AHEAD_HOURS: u32 = 48;
/// The catch-all partition for rows later than every hourly partition.
pub const FUTURE_PARTITION: &str = "p_future";

/// The name of the hourly partition that holds the hour starting at `start` (Unix seconds).
pub fn partition_name(start: i64) -> String {
    format!("p_{}", format_hour(start))
}

/// `TO_SECONDS` of a Unix time: the partition bound MySQL compares with.
pub fn to_seconds(unix: i64) -> i64 {
    unix + TO_SECONDS_EPOCH
}

/// The partition definitions for hourly upper bounds `uppers` (Unix seconds, ascending),
/// followed by the catch-all: `PARTITION p_2026112514 VALUES LESS THAN (63963…), …`.
pub fn partition_defs(uppers: &[i64]) -> String {
    let mut defs: Vec<String> = uppers
        .iter()
        .map(|&u| {
            format!(
                "PARTITION {} VALUES LESS THAN ({})",
                partition_name(u - PARTITION_SECONDS),
                to_seconds(u)
            )
        })
        .collect();
    defs.push(format!(
        "PARTITION {FUTURE_PARTITION} VALUES LESS THAN MAXVALUE"
    ));
    defs.join(",\n  ")
}

/// Upper bounds of the hours from the one containing `now` to `ahead` hours after it.
pub fn hours_from(now: i64, ahead: u32) -> Vec<i64> {
    let first = now.div_euclid(PARTITION_SECONDS) * PARTITION_SECONDS + PARTITION_SECONDS;
    (0..=i64::from(ahead))
        .map(|i| first + i * PARTITION_SECONDS)
        .collect()
}

/// InnoDB page compression of `binlog_events` (MySQL's transparent `COMPRESSION` table
/// option): pages are compressed when written to disk and the freed blocks are punched out of
/// the file, so the disk holds about a third of the pages' size (`scripts/bench.sh`, lz4: 240
/// instead of 722 bytes per change), for some 10 % of insert throughput. `information_schema`'s
/// data_length still counts whole pages; `INNODB_TABLESPACES.ALLOCATED_SIZE` is what the disk
/// holds. Needs a file system with hole punching (ext4, XFS); MariaDB index servers spell it
/// differently and get none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// LZ4: fast, the default.
    #[default]
    Lz4,
    /// zlib: smaller, slower.
    Zlib,
    /// Plain pages.
    None,
}

impl Compression {
    /// The `--compression` values, in the order they are documented.
    pub const NAMES: [&'static str; 3] = ["lz4", "zlib", "none"];

    /// The algorithm named `name` (one of [`Compression::NAMES`]).
    pub fn from_name(name: &str) -> Option<Compression> {
        [Compression::Lz4, Compression::Zlib, Compression::None]
            .into_iter()
            .find(|c| c.name() == name)
    }

    /// The value of MySQL's COMPRESSION table option.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Lz4 => "lz4",
            Compression::Zlib => "zlib",
            Compression::None => "none",
        }
    }
}

/// The CREATE statement of `binlog_events`, partitioned from the hour of `now` to `ahead`
/// hours after it.
fn create_binlog_events(now: i64, ahead: u32, compression: Compression) -> String {
    let option = match compression {
        Compression::None => String::new(),
        c => format!(" COMPRESSION='{}'", c.name()),
    };
    format!(
        "{CREATE_BINLOG_EVENTS}{option}\nPARTITION BY RANGE (TO_SECONDS(`event_timestamp`)) (\n  {}\n)",
        partition_defs(&hours_from(now, ahead))
    )
}

const CREATE_BINLOG_EVENTS: &str = "CREATE TABLE IF NOT EXISTS `binlog_events` (
  `event_id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `stream_id` INT UNSIGNED NOT NULL COMMENT 'server id of the stream that indexed the change',
  `binlog_file` VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  `start_pos` BIGINT UNSIGNED NOT NULL COMMENT 'offset of the rows event',
  `end_pos` BIGINT UNSIGNED NOT NULL COMMENT 'offset of the event after it',
  `row_in_event` INT UNSIGNED NOT NULL COMMENT 'index of the row inside its rows event',
  `event_timestamp` DATETIME NOT NULL COMMENT 'UTC',
  `gtid` VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NULL,
  `connection_id` INT UNSIGNED NULL,
  `schema_name` VARCHAR(64) NOT NULL,
  `table_name` VARCHAR(64) NOT NULL,
  `event_type` TINYINT UNSIGNED NOT NULL COMMENT '1 insert, 2 update, 3 delete',
  `pk_values` MEDIUMTEXT NOT NULL COMMENT 'primary key values in key order joined by |',
  `pk_hash` CHAR(64) CHARACTER SET ascii COLLATE ascii_bin AS (SHA2(`pk_values`, 256)) VIRTUAL COMMENT 'computed when read; lookups use k_table_pk on pk_values',
  `changed_columns` JSON NULL,
  `row_before` JSON NULL,
  `row_after` JSON NULL,
  `schema_version` INT UNSIGNED NOT NULL COMMENT 'fingerprint of the table columns at the time',
  `policy_version` INT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'fingerprint of the capture policy (capture_policies); 0: none',
  PRIMARY KEY (`event_id`, `event_timestamp`),
  UNIQUE KEY `uk_change` (`stream_id`, `binlog_file`, `start_pos`, `row_in_event`, `event_timestamp`),
  KEY `k_table_pk` (`schema_name`, `table_name`, `pk_values`(32)),
  KEY `k_time` (`event_timestamp`),
  KEY `k_gtid` (`gtid`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";

const CREATE_STREAM_STATE: &str = "CREATE TABLE IF NOT EXISTS `stream_state` (
  `server_id` INT UNSIGNED NOT NULL COMMENT 'the stream''s --server-id',
  `mode` VARCHAR(8) CHARACTER SET ascii NOT NULL COMMENT 'position or gtid',
  `binlog_file` VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  `binlog_position` BIGINT UNSIGNED NOT NULL,
  `gtid_set` LONGTEXT CHARACTER SET ascii NULL,
  `rows_done` BIGINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'rows of the transaction at the resume point already indexed',
  `in_flight_gtid` VARCHAR(128) CHARACTER SET ascii NULL,
  `source_uuid` VARCHAR(64) CHARACTER SET ascii NULL,
  `events_indexed` BIGINT UNSIGNED NOT NULL DEFAULT 0,
  `last_event_time` DATETIME NULL COMMENT 'UTC',
  `last_checkpoint` DATETIME(3) NOT NULL COMMENT 'UTC',
  `binlog_created` INT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'creation time of binlog_file (Unix), to recognise a reset source',
  PRIMARY KEY (`server_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";

const CREATE_STREAM_GAPS: &str = "CREATE TABLE IF NOT EXISTS `stream_gaps` (
  `gap_id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `server_id` INT UNSIGNED NOT NULL COMMENT 'the stream that skipped',
  `gap_from` TEXT CHARACTER SET ascii NOT NULL COMMENT 'checkpoint that could not be resumed (file:pos or GTID set)',
  `gap_to` TEXT CHARACTER SET ascii NOT NULL COMMENT 'where streaming continued (file:pos or GTID set)',
  `detected_at` DATETIME(3) NOT NULL COMMENT 'UTC',
  `reason` TEXT NOT NULL COMMENT 'the source''s own words',
  `filled_at` DATETIME(3) NULL COMMENT 'UTC, when index --fill-gap indexed the range; NULL: still missing',
  `filled_from` TEXT NULL COMMENT 'the binlog files it was indexed from',
  `before_event_id` BIGINT UNSIGNED NULL COMMENT 'largest binlog_events.event_id when the gap was recorded: the gap sits after the stream''s changes up to it; NULL: recorded before bintrail kept it',
  `filled_first_event_id` BIGINT UNSIGNED NULL COMMENT 'first event_id index --fill-gap wrote for the range (0: none); NULL: open, or filled before bintrail kept it',
  `filled_last_event_id` BIGINT UNSIGNED NULL COMMENT 'last event_id index --fill-gap wrote for the range (0: none)',
  PRIMARY KEY (`gap_id`),
  KEY `k_stream` (`server_id`, `detected_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";

const CREATE_XA_PREPARED: &str = "CREATE TABLE IF NOT EXISTS `xa_prepared` (
  `seq` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `stream_id` INT UNSIGNED NOT NULL,
  `xid` VARCHAR(300) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'X''gtrid'',X''bqual'',formatID as the binlog spells it',
  `prepared_at` DATETIME(3) NOT NULL COMMENT 'UTC, when the stream wrote it',
  `binlog_file` VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  `start_pos` BIGINT UNSIGNED NOT NULL,
  `end_pos` BIGINT UNSIGNED NOT NULL,
  `row_in_event` INT UNSIGNED NOT NULL,
  `event_timestamp` DATETIME NOT NULL COMMENT 'UTC',
  `gtid` VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NULL,
  `connection_id` INT UNSIGNED NULL,
  `schema_name` VARCHAR(64) NOT NULL,
  `table_name` VARCHAR(64) NOT NULL,
  `event_type` TINYINT UNSIGNED NOT NULL,
  `pk_values` MEDIUMTEXT NOT NULL,
  `changed_columns` JSON NULL,
  `row_before` JSON NULL,
  `row_after` JSON NULL,
  `schema_version` INT UNSIGNED NOT NULL,
  `pk_before` MEDIUMTEXT NULL COMMENT 'key of the before image when an update changed the key',
  `policy_version` INT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (`seq`),
  UNIQUE KEY `uk_change` (`stream_id`, `binlog_file`, `start_pos`, `row_in_event`),
  KEY `k_xid` (`stream_id`, `xid`, `seq`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";

const CREATE_KEY_CHANGES: &str = "CREATE TABLE IF NOT EXISTS `key_changes` (
  `stream_id` INT UNSIGNED NOT NULL,
  `event_id` BIGINT UNSIGNED NOT NULL COMMENT 'the update in binlog_events, stored under pk_after',
  `event_timestamp` DATETIME NOT NULL COMMENT 'UTC, as in binlog_events',
  `schema_name` VARCHAR(64) NOT NULL,
  `table_name` VARCHAR(64) NOT NULL,
  `pk_before` MEDIUMTEXT NOT NULL COMMENT 'the key before the update (pk_values form)',
  `pk_after` MEDIUMTEXT NOT NULL COMMENT 'the key after it: the update''s pk_values',
  PRIMARY KEY (`stream_id`, `event_id`),
  KEY `k_before` (`schema_name`, `table_name`, `pk_before`(32)),
  KEY `k_time` (`event_timestamp`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";

const CREATE_DDL_EVENTS: &str = "CREATE TABLE IF NOT EXISTS `ddl_events` (
  `seq` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `stream_id` INT UNSIGNED NOT NULL COMMENT 'server id of the stream that recorded it',
  `binlog_file` VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  `start_pos` BIGINT UNSIGNED NOT NULL COMMENT 'offset of the QUERY event',
  `end_pos` BIGINT UNSIGNED NOT NULL COMMENT 'offset of the event after it',
  `event_timestamp` DATETIME NOT NULL COMMENT 'UTC',
  `gtid` VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NULL,
  `schema_name` VARCHAR(64) NOT NULL,
  `table_name` VARCHAR(64) NOT NULL COMMENT 'empty for drop_schema',
  `kind` VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'truncate, drop, rename, rename_in, alter, create, drop_schema',
  `statement` MEDIUMTEXT NOT NULL COMMENT 'the statement as logged',
  `renamed_to` VARCHAR(130) NULL COMMENT 'rename: the new schema.table',
  `renamed_from` VARCHAR(130) NULL COMMENT 'rename_in: the old schema.table',
  `last_event_id` BIGINT UNSIGNED NOT NULL COMMENT 'largest binlog_events.event_id when the marker was written: changes with event_id <= it came before the DDL, later ones after',
  PRIMARY KEY (`seq`),
  UNIQUE KEY `uk_marker` (`stream_id`, `binlog_file`, `start_pos`, `schema_name`, `table_name`, `kind`),
  KEY `k_table` (`schema_name`, `table_name`, `last_event_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";

const CREATE_CAPTURE_POLICIES: &str = "CREATE TABLE IF NOT EXISTS `capture_policies` (
  `stream_id` INT UNSIGNED NOT NULL COMMENT 'server id of the stream that captured under it',
  `policy_version` INT UNSIGNED NOT NULL COMMENT 'binlog_events.policy_version of its changes',
  `policy` TEXT NOT NULL COMMENT 'exclude/mask/truncate rules, one a line; the mask key by its id only',
  `first_seen` DATETIME(3) NOT NULL COMMENT 'UTC, when the stream first started with it',
  `last_seen` DATETIME(3) NOT NULL COMMENT 'UTC, when the stream last started with it',
  PRIMARY KEY (`stream_id`, `policy_version`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";

const CREATE_ARCHIVE_FILES: &str = "CREATE TABLE IF NOT EXISTS `archive_files` (
  `file_id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `path` VARCHAR(2048) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'relative to the archive root, percent-encoded segments',
  `stream_id` INT UNSIGNED NOT NULL,
  `schema_name` VARCHAR(64) NOT NULL,
  `table_name` VARCHAR(64) NOT NULL,
  `hour_start` DATETIME NOT NULL COMMENT 'UTC, the hour every change of the file is stamped in',
  `source_partition` VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'the binlog_events partition it was written from',
  `row_count` BIGINT UNSIGNED NOT NULL,
  `bytes` BIGINT UNSIGNED NOT NULL,
  `sha256` CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'of the whole file, hex',
  `min_event_id` BIGINT UNSIGNED NOT NULL,
  `max_event_id` BIGINT UNSIGNED NOT NULL,
  `min_event_time` DATETIME NOT NULL COMMENT 'UTC',
  `max_event_time` DATETIME NOT NULL COMMENT 'UTC',
  `min_pk_int` BIGINT NULL COMMENT 'smallest pk_values when every key of the file is an integer, else NULL',
  `max_pk_int` BIGINT NULL COMMENT 'largest pk_values when every key of the file is an integer, else NULL',
  `created_at` DATETIME(3) NOT NULL COMMENT 'UTC',
  PRIMARY KEY (`file_id`),
  UNIQUE KEY `uk_path` (`path`),
  KEY `k_partition` (`source_partition`),
  KEY `k_table_hour` (`schema_name`, `table_name`, `hour_start`),
  KEY `k_hour` (`hour_start`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";

/// An index table: its name, CREATE statement and the columns (name, DATA_TYPE) it must have.
struct IndexTable {
    name: &'static str,
    create: &'static str,
    columns: &'static [(&'static str, &'static str)],
}

/// Every index table.
const TABLES: [IndexTable; 8] = [
    IndexTable {
        name: BINLOG_EVENTS,
        create: CREATE_BINLOG_EVENTS,
        columns: &[
            ("event_id", "bigint"),
            ("stream_id", "int"),
            ("binlog_file", "varchar"),
            ("start_pos", "bigint"),
            ("end_pos", "bigint"),
            ("row_in_event", "int"),
            ("event_timestamp", "datetime"),
            ("gtid", "varchar"),
            ("connection_id", "int"),
            ("schema_name", "varchar"),
            ("table_name", "varchar"),
            ("event_type", "tinyint"),
            ("pk_values", "mediumtext"),
            ("pk_hash", "char"),
            ("changed_columns", "json"),
            ("row_before", "json"),
            ("row_after", "json"),
            ("schema_version", "int"),
        ],
    },
    IndexTable {
        name: STREAM_STATE,
        create: CREATE_STREAM_STATE,
        columns: &[
            ("server_id", "int"),
            ("mode", "varchar"),
            ("binlog_file", "varchar"),
            ("binlog_position", "bigint"),
            ("gtid_set", "longtext"),
            ("rows_done", "bigint"),
            ("in_flight_gtid", "varchar"),
            ("source_uuid", "varchar"),
            ("events_indexed", "bigint"),
            ("last_event_time", "datetime"),
            ("last_checkpoint", "datetime"),
            ("binlog_created", "int"),
        ],
    },
    IndexTable {
        name: STREAM_GAPS,
        create: CREATE_STREAM_GAPS,
        columns: &[
            ("gap_id", "bigint"),
            ("server_id", "int"),
            ("gap_from", "text"),
            ("gap_to", "text"),
            ("detected_at", "datetime"),
            ("reason", "text"),
        ],
    },
    IndexTable {
        name: XA_PREPARED,
        create: CREATE_XA_PREPARED,
        columns: &[
            ("seq", "bigint"),
            ("stream_id", "int"),
            ("xid", "varchar"),
            ("prepared_at", "datetime"),
            ("binlog_file", "varchar"),
            ("start_pos", "bigint"),
            ("row_in_event", "int"),
            ("pk_values", "mediumtext"),
            ("row_before", "json"),
            ("row_after", "json"),
        ],
    },
    IndexTable {
        name: KEY_CHANGES,
        create: CREATE_KEY_CHANGES,
        columns: &[
            ("stream_id", "int"),
            ("event_id", "bigint"),
            ("event_timestamp", "datetime"),
            ("schema_name", "varchar"),
            ("table_name", "varchar"),
            ("pk_before", "mediumtext"),
            ("pk_after", "mediumtext"),
        ],
    },
    IndexTable {
        name: DDL_EVENTS,
        create: CREATE_DDL_EVENTS,
        columns: &[
            ("seq", "bigint"),
            ("stream_id", "int"),
            ("binlog_file", "varchar"),
            ("start_pos", "bigint"),
            ("end_pos", "bigint"),
            ("event_timestamp", "datetime"),
            ("gtid", "varchar"),
            ("schema_name", "varchar"),
            ("table_name", "varchar"),
            ("kind", "varchar"),
            ("statement", "mediumtext"),
            ("renamed_to", "varchar"),
            ("renamed_from", "varchar"),
            ("last_event_id", "bigint"),
        ],
    },
    IndexTable {
        name: CAPTURE_POLICIES,
        create: CREATE_CAPTURE_POLICIES,
        columns: &[
            ("stream_id", "int"),
            ("policy_version", "int"),
            ("policy", "text"),
            ("first_seen", "datetime"),
            ("last_seen", "datetime"),
        ],
    },
    IndexTable {
        name: ARCHIVE_FILES,
        create: CREATE_ARCHIVE_FILES,
        columns: &[
            ("file_id", "bigint"),
            ("path", "varchar"),
            ("stream_id", "int"),
            ("schema_name", "varchar"),
            ("table_name", "varchar"),
            ("hour_start", "datetime"),
            ("source_partition", "varchar"),
            ("row_count", "bigint"),
            ("bytes", "bigint"),
            ("sha256", "char"),
            ("min_event_id", "bigint"),
            ("max_event_id", "bigint"),
            ("min_event_time", "datetime"),
            ("max_event_time", "datetime"),
            ("created_at", "datetime"),
        ],
    },
];

/// Tables added after an index may have been created: created by [`ensure_ready`] instead of
/// refused.
const ADDED_LATER: [&str; 5] = [
    XA_PREPARED,
    KEY_CHANGES,
    DDL_EVENTS,
    CAPTURE_POLICIES,
    ARCHIVE_FILES,
];

/// Why the index tables cannot be created or used.
#[derive(Debug, thiserror::Error)]
pub enum DdlError {
    /// A table of the same name exists with another shape.
    #[error("index table {database}.{table} exists but is not a bintrail {table} table: {problems}; rename or drop it, or point --index-dsn at another database")]
    Incompatible {
        /// Index database.
        database: String,
        /// Table name.
        table: &'static str,
        /// What differs.
        problems: String,
    },
    /// A table is missing (when checking before streaming).
    #[error(
        "index table {database}.{table} does not exist: run `bintrail init --index-dsn ...` first"
    )]
    Missing {
        /// Index database.
        database: String,
        /// Table name.
        table: &'static str,
    },
    /// The server refused a statement.
    #[error("index database {database}: {source}")]
    Server {
        /// Index database.
        database: String,
        /// The driver's error.
        #[source]
        source: mysql_async::Error,
    },
}

impl DdlError {
    /// Whether a retry after reconnecting may succeed: only a server error that `classify`
    /// calls transient; a missing or incompatible table needs a person.
    pub fn is_transient(&self) -> bool {
        match self {
            DdlError::Server { source, .. } => crate::classify::is_transient(source),
            DdlError::Incompatible { .. } | DdlError::Missing { .. } => false,
        }
    }
}

/// What `init` did to each table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// Whether the database itself had to be created.
    pub created_database: bool,
    /// `(table, created)`: `false` means it already existed with a compatible shape.
    pub tables: Vec<(&'static str, bool)>,
    /// The page compression `binlog_events` was created with, when `init` created it.
    pub compression: Option<Compression>,
    /// What the server said about creating it (say, no hole punching on its file system).
    pub warnings: Vec<String>,
}

/// Creates the index database and tables that are missing; verifies the ones that exist.
/// `binlog_events` gets hourly partitions from the current hour to [`DEFAULT_AHEAD_HOURS`]
/// ahead.
/// `binlog_events` is created with `compression` (none on a MariaDB server).
pub async fn init(
    conn: &mut Conn,
    database: &str,
    compression: Compression,
) -> Result<InitReport, DdlError> {
    init_at(conn, database, now(), DEFAULT_AHEAD_HOURS, compression).await
}

/// [`init`] as of the Unix time `now`, with `ahead` hourly partitions after the current one.
pub async fn init_at(
    conn: &mut Conn,
    database: &str,
    now: i64,
    ahead: u32,
    compression: Compression,
) -> Result<InitReport, DdlError> {
    let server = |source| DdlError::Server {
        database: database.to_string(),
        source,
    };
    let existing: Option<String> = conn
        .exec_first(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (database,),
        )
        .await
        .map_err(server)?;
    if existing.is_none() {
        conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS {}", ident(database)))
            .await
            .map_err(server)?;
    }
    let version: String = conn
        .query_first("SELECT @@version")
        .await
        .map_err(server)?
        .unwrap_or_default();
    let compression = if version.contains("MariaDB") {
        Compression::None
    } else {
        compression
    };
    let (mut tables, mut created_with, mut warnings) = (Vec::new(), None, Vec::new());
    for IndexTable {
        name: table,
        create,
        ..
    } in TABLES
    {
        let exists = check_table(conn, database, table).await?;
        if !exists {
            conn.query_drop(format!("USE {}", ident(database)))
                .await
                .map_err(server)?;
            let sql = if table == BINLOG_EVENTS {
                created_with = Some(compression);
                create_binlog_events(now, ahead, compression)
            } else {
                create.to_string()
            };
            conn.query_drop(sql).await.map_err(server)?;
            let said: Vec<(String, u32, String)> =
                conn.query("SHOW WARNINGS").await.map_err(server)?;
            warnings.extend(said.into_iter().map(|(_, _, message)| message));
        }
        tables.push((table, !exists));
    }
    add_missing_columns(conn, database).await?;
    Ok(InitReport {
        created_database: existing.is_none(),
        tables,
        compression: created_with,
        warnings,
    })
}

/// Checks that every index table exists with a compatible shape (run before streaming).
///
/// A table added after an index was created ([`XA_PREPARED`], [`KEY_CHANGES`], [`DDL_EVENTS`]) is
/// created here instead of refused, and a column added since ([`add_missing_columns`]) is added,
/// so an existing index keeps working after an upgrade without another `init`.
pub async fn ensure_ready(conn: &mut Conn, database: &str) -> Result<(), DdlError> {
    let server = |source| DdlError::Server {
        database: database.to_string(),
        source,
    };
    for IndexTable { name: table, .. } in TABLES {
        let exists = check_table(conn, database, table).await?;
        if !exists && ADDED_LATER.contains(&table) {
            let qualified = create_qualified(database, table).unwrap_or_default();
            conn.query_drop(qualified).await.map_err(server)?;
        } else if !exists {
            return Err(DdlError::Missing {
                database: database.to_string(),
                table,
            });
        }
    }
    add_missing_columns(conn, database).await
}

/// The CREATE statement of index table `table` qualified with `database`, for every table but
/// the partitioned [`BINLOG_EVENTS`] (whose statement depends on the hour); `None` for a name
/// that is not one of them.
pub fn create_qualified(database: &str, table: &str) -> Option<String> {
    let t = TABLES
        .iter()
        .find(|t| t.name == table && t.name != BINLOG_EVENTS)?;
    let name = format!("`{}`", t.name);
    Some(
        t.create
            .replacen(&name, &format!("{}.{name}", ident(database)), 1),
    )
}

/// The index tables other than [`BINLOG_EVENTS`], in creation order.
pub fn other_tables() -> impl Iterator<Item = &'static str> {
    TABLES
        .iter()
        .map(|t| t.name)
        .filter(|n| *n != BINLOG_EVENTS)
}

/// Columns added to existing tables since they were first created: table, column, definition.
/// `xa_prepared.pk_before` (the key-change record of a prepared update); `policy_version` of
/// both change tables (existing changes were captured without a policy: 0); `filled_at` and
/// `filled_from` of `stream_gaps` (`index --fill-gap`; existing gaps are open); its
/// `before_event_id`, `filled_first_event_id` and `filled_last_event_id` (where a filled range
/// sits in the stream's history order, `history::order`; NULL for gaps recorded or filled before);
/// `min_pk_int` and `max_pk_int` of `archive_files` (a file's integer key range; NULL for files
/// recorded before, which a one-key read then opens).
const ADDED_COLUMNS: [(&str, &str, &str); 10] = [
    (XA_PREPARED, "pk_before", "MEDIUMTEXT NULL"),
    (
        BINLOG_EVENTS,
        "policy_version",
        "INT UNSIGNED NOT NULL DEFAULT 0",
    ),
    (
        XA_PREPARED,
        "policy_version",
        "INT UNSIGNED NOT NULL DEFAULT 0",
    ),
    (STREAM_GAPS, "filled_at", "DATETIME(3) NULL"),
    (STREAM_GAPS, "filled_from", "TEXT NULL"),
    (STREAM_GAPS, "before_event_id", "BIGINT UNSIGNED NULL"),
    (STREAM_GAPS, "filled_first_event_id", "BIGINT UNSIGNED NULL"),
    (STREAM_GAPS, "filled_last_event_id", "BIGINT UNSIGNED NULL"),
    (ARCHIVE_FILES, "min_pk_int", "BIGINT NULL"),
    (ARCHIVE_FILES, "max_pk_int", "BIGINT NULL"),
];

/// Adds the [`ADDED_COLUMNS`] a table lacks (appended: an instant change on both servers).
async fn add_missing_columns(conn: &mut Conn, database: &str) -> Result<(), DdlError> {
    let server = |source| DdlError::Server {
        database: database.to_string(),
        source,
    };
    for (table, column, definition) in ADDED_COLUMNS {
        let has: Option<String> = conn
            .exec_first(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = ?",
                (database, table, column),
            )
            .await
            .map_err(server)?;
        if has.is_none() {
            conn.query_drop(format!(
                "ALTER TABLE {}.`{table}` ADD COLUMN `{column}` {definition}",
                ident(database)
            ))
            .await
            .map_err(server)?;
        }
    }
    Ok(())
}

/// `Ok(true)` when the table exists with every expected column, `Ok(false)` when it is absent.
async fn check_table(
    conn: &mut Conn,
    database: &str,
    table: &'static str,
) -> Result<bool, DdlError> {
    let columns: Vec<(String, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (database, table),
        )
        .await
        .map_err(|source| DdlError::Server {
            database: database.to_string(),
            source,
        })?;
    if columns.is_empty() {
        return Ok(false);
    }
    let expected = TABLES
        .iter()
        .find(|t| t.name == table)
        .map(|t| t.columns)
        .unwrap_or(&[]);
    let mut problems = Vec::new();
    for (name, data_type) in expected {
        match columns.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            None => problems.push(format!("column {name} is missing")),
            // MariaDB reports JSON columns as longtext.
            Some((_, t)) if t.eq_ignore_ascii_case(data_type) => {}
            Some((_, t)) if *data_type == "json" && t.eq_ignore_ascii_case("longtext") => {}
            // An index taken over from the established tool (`adopt`) keeps its VARCHAR(512)
            // key text and stored hash: converting them would copy the whole table.
            Some((_, t))
                if matches!(*name, "pk_values" | "pk_hash")
                    && t.eq_ignore_ascii_case("varchar") => {}
            Some((_, t)) => problems.push(format!("column {name} is {t}, expected {data_type}")),
        }
    }
    if problems.is_empty() {
        Ok(true)
    } else {
        Err(DdlError::Incompatible {
            database: database.to_string(),
            table,
            problems: problems.join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_cover_the_current_hour_then_hours_ahead_then_the_future() {
        // 2026-11-25 14:30:00 UTC.
        let now = 1_795_617_000;
        assert_eq!(
            hours_from(now, 2),
            vec![1_795_618_800, 1_795_622_400, 1_795_626_000]
        );
        assert_eq!(
            partition_defs(&hours_from(now, 1)),
            "PARTITION p_2026112514 VALUES LESS THAN (63962838000),\n  \
             PARTITION p_2026112515 VALUES LESS THAN (63962841600),\n  \
             PARTITION p_future VALUES LESS THAN MAXVALUE"
        );
        assert!(create_binlog_events(now, 0, Compression::Lz4)
            .contains("COLLATE=utf8mb4_bin COMPRESSION='lz4'\nPARTITION BY"));
        assert!(!create_binlog_events(now, 0, Compression::None).contains("COMPRESSION"));
        assert!(create_binlog_events(now, 0, Compression::None)
            .ends_with("PARTITION BY RANGE (TO_SECONDS(`event_timestamp`)) (\n  PARTITION p_2026112514 VALUES LESS THAN (63962838000),\n  PARTITION p_future VALUES LESS THAN MAXVALUE\n)"));
    }

    #[test]
    fn compression_names_round_trip() {
        for name in Compression::NAMES {
            assert_eq!(
                Compression::from_name(name).map(Compression::name),
                Some(name)
            );
        }
        assert_eq!(Compression::from_name("zstd"), None);
    }
}

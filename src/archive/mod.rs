//! The cold tier: hours of `binlog_events` that `rotate --archive DIR` moves out of the index
//! into Parquet files that bintrail and analytics engines (DuckDB, pyarrow, Trino, Spark) read.
//!
//! * [`layout`]: where a file lives (`schema=…/table=…/date=…/hour=…/stream=N-E.parquet`).
//! * [`writer`]: the file format (the index's columns, zstd, statistics) and its read back.
//! * [`manifest`]: `archive_files` in the index, one row per recorded file.
//! * [`export`]: a partition's changes → files → manifest rows.
//! * [`verify`]: every recorded file checked against its manifest row.
//! * [`store`]: where the files live, a directory or `s3://bucket/prefix`.
//! * [`read`]: the read side: candidate files pruned by manifest or layout, row groups by
//!   statistics and bloom filters, every byte read through [`store::Store`].
//!
//! # Crash safety
//! Every change is at every moment in the index, in a complete recorded file, or both: a file
//! is written under a hidden temporary name and fsynced, put in place atomically (renamed and
//! its directory fsynced, or uploaded in one S3 `PUT`), then recorded; the partition is dropped only once the rows recorded from it are as
//! many as it holds, checked under a table lock. Rerunning after a crash at any step writes
//! the missing files under the same names and skips the recorded ones.
//!
//! # Not built yet
//! Compaction of small hours into larger files.

pub mod export;
pub mod layout;
pub mod manifest;
pub mod read;
pub mod store;
pub mod verify;
pub mod writer;

use std::path::{Path, PathBuf};

/// Why archiving or verifying failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A file or directory of the archive could not be written or read.
    #[error("archive file {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The Parquet library refused to write or read a file.
    #[error("archive file {path}: {source}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What it said.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A value read back from a file does not have the type or range bintrail writes.
    #[error("archive file {path}: column {column} of row group {row_group}: {what} (the file was not written by this bintrail, or is damaged; run `bintrail archive verify`)")]
    Field {
        /// The file (relative to the archive root when read through a [`read::Source`]).
        path: String,
        /// The column.
        column: String,
        /// The row group (from 0).
        row_group: usize,
        /// What is wrong.
        what: String,
    },
    /// A file of the archive could not be decoded as it was read.
    #[error("archive {root}: {path}: {what}")]
    Read {
        /// The archive's root.
        root: String,
        /// The file or prefix.
        path: String,
        /// What failed.
        what: String,
    },
    /// The index refused a statement.
    #[error("archiving from {database}: {source}")]
    Server {
        /// The index database.
        database: String,
        /// The driver's error.
        #[source]
        source: mysql_async::Error,
    },
    /// A manifest row does not have the shape bintrail writes.
    #[error("{database}.archive_files: the row of {path:?} is unreadable (edited by hand?)")]
    Manifest {
        /// The index database.
        database: String,
        /// Its path column.
        path: String,
    },
    /// A stored row does not have the shape bintrail writes.
    #[error("binlog_events row {event_id} cannot be archived: {what}")]
    Corrupt {
        /// The row.
        event_id: u64,
        /// What is wrong.
        what: String,
    },
    /// The store (directory or S3) refused an operation.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The rows of a file changed between planning and writing it.
    #[error("archive file {path}: {planned} changes were planned, {read} were read (changes are still arriving for that hour; run rotate again)")]
    Changed {
        /// The file.
        path: String,
        /// Rows counted when planning.
        planned: u64,
        /// Rows read when writing.
        read: u64,
    },
}

impl ArchiveError {
    /// Whether running again later, with nobody changing anything, can succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            ArchiveError::Server { source, .. } => crate::classify::is_transient(source),
            ArchiveError::Store(e) => e.is_transient(),
            // Changes still arriving for the hour: the next run archives them.
            ArchiveError::Changed { .. } => true,
            ArchiveError::Io { .. }
            | ArchiveError::Parquet { .. }
            | ArchiveError::Manifest { .. }
            | ArchiveError::Field { .. }
            | ArchiveError::Read { .. }
            | ArchiveError::Corrupt { .. } => false,
        }
    }

    fn io(path: &Path, source: std::io::Error) -> ArchiveError {
        ArchiveError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn parquet(path: &Path, source: parquet::errors::ParquetError) -> ArchiveError {
        ArchiveError::Parquet {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The crash tests' hook: with `BINTRAIL_TEST_FAILPOINT` set to `name`, the process aborts
/// here, as a crash would. Compiled into debug builds only (the tests'), never into release.
pub fn failpoint(name: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("BINTRAIL_TEST_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("bintrail: failpoint {name}: aborting");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

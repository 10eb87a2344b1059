//! The manifest: `archive_files` in the index, one row per archive file (DDL in `index::ddl`).
//!
//! # Invariants
//! * A file is recorded only once it is complete, fsynced and renamed into place, and a
//!   partition is dropped only when the rows recorded for it are as many as it holds
//!   ([`recorded_rows`]), so every change is at every moment in the index, in a recorded
//!   file, or both.
//! * Paths are relative to the archive root, the same in a directory and under an S3 prefix
//!   (`store`), so the archive can be moved or copied between them without rewriting the
//!   manifest.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde::Serialize;

use super::layout::FileKey;
use super::writer::Written;
use super::ArchiveError;
use crate::index::ddl::ARCHIVE_FILES;
use crate::time::{format_utc, parse_utc};

/// One recorded file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileRecord {
    /// Path relative to the archive root, `/`-separated.
    pub path: String,
    /// The stream whose changes it holds.
    pub stream_id: u32,
    /// Schema of the table.
    pub schema: String,
    /// The table.
    pub table: String,
    /// Start of its UTC hour (Unix seconds).
    pub hour_start: i64,
    /// The `binlog_events` partition it was written from.
    pub source_partition: String,
    /// Rows.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the file, lower-case hex.
    pub sha256: String,
    /// Smallest `event_id`.
    pub min_event_id: u64,
    /// Largest `event_id`.
    pub max_event_id: u64,
    /// Earliest `event_timestamp` (Unix seconds).
    pub min_time: i64,
    /// Latest `event_timestamp` (Unix seconds).
    pub max_time: i64,
    /// Smallest and largest key when every `pk_values` of the file is an integer in canonical
    /// form (`writer::int_key`); `None` otherwise, and for files recorded before bintrail
    /// recorded it. A read for a key outside the range skips the file without opening it.
    pub int_keys: Option<(i64, i64)>,
}

impl FileRecord {
    /// The record of the file of `key`, taken from the `binlog_events` partition
    /// `source_partition`, with what the writer measured of it: one place maps a written file
    /// to its manifest row, for rotate and for anything else that writes archive files.
    pub fn of(key: &FileKey, source_partition: String, written: Written) -> FileRecord {
        FileRecord {
            path: key.path(),
            stream_id: key.stream_id,
            schema: key.schema.clone(),
            table: key.table.clone(),
            hour_start: key.hour_start,
            source_partition,
            rows: written.rows,
            bytes: written.bytes,
            sha256: written.sha256,
            min_event_id: written.event_ids.0,
            max_event_id: written.event_ids.1,
            min_time: written.times.0,
            max_time: written.times.1,
            int_keys: written.int_keys,
        }
    }
}

const SELECT: &str = "SELECT path, stream_id, schema_name, table_name, \
     DATE_FORMAT(hour_start, '%Y-%m-%d %H:%i:%s'), source_partition, row_count, bytes, sha256, \
     min_event_id, max_event_id, DATE_FORMAT(min_event_time, '%Y-%m-%d %H:%i:%s'), \
     DATE_FORMAT(max_event_time, '%Y-%m-%d %H:%i:%s'), min_pk_int, max_pk_int FROM archive_files";

/// The key range's columns in [`SELECT`], and what stands for them in a manifest from before
/// them that no rotate has upgraded yet (the read side does not alter the index).
const KEY_COLUMNS: (&str, &str) = ("min_pk_int, max_pk_int", "NULL, NULL");

fn server(database: &str) -> impl Fn(mysql_async::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Server {
        database: database.to_string(),
        source,
    }
}

/// Records `file` (after it is in place).
pub async fn record(
    conn: &mut Conn,
    database: &str,
    file: &FileRecord,
) -> Result<(), ArchiveError> {
    conn.exec_drop(
        format!(
            "INSERT INTO {ARCHIVE_FILES} (path, stream_id, schema_name, table_name, hour_start, \
             source_partition, row_count, bytes, sha256, min_event_id, max_event_id, \
             min_event_time, max_event_time, min_pk_int, max_pk_int, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(3))"
        ),
        mysql_async::Params::Positional(vec![
            file.path.clone().into(),
            file.stream_id.into(),
            file.schema.clone().into(),
            file.table.clone().into(),
            format_utc(file.hour_start).into(),
            file.source_partition.clone().into(),
            file.rows.into(),
            file.bytes.into(),
            file.sha256.clone().into(),
            file.min_event_id.into(),
            file.max_event_id.into(),
            format_utc(file.min_time).into(),
            format_utc(file.max_time).into(),
            file.int_keys.map(|k| k.0).into(),
            file.int_keys.map(|k| k.1).into(),
        ]),
    )
    .await
    .map_err(server(database))
}

/// Every recorded file, by path.
pub async fn all(conn: &mut Conn, database: &str) -> Result<Vec<FileRecord>, ArchiveError> {
    select(
        conn,
        database,
        &format!("{SELECT} ORDER BY path"),
        Vec::new(),
    )
    .await
}

/// The files recorded from partition `partition`.
pub async fn of_partition(
    conn: &mut Conn,
    database: &str,
    partition: &str,
) -> Result<Vec<FileRecord>, ArchiveError> {
    let sql = format!("{SELECT} WHERE source_partition = ? ORDER BY path");
    select(conn, database, &sql, vec![partition.into()]).await
}

/// The rows recorded from partition `partition`.
pub async fn recorded_rows(
    conn: &mut Conn,
    database: &str,
    partition: &str,
) -> Result<u64, ArchiveError> {
    let n: Option<u64> = match conn
        .exec_first(
            format!(
                "SELECT CAST(COALESCE(SUM(row_count), 0) AS UNSIGNED) FROM {ARCHIVE_FILES} \
                 WHERE source_partition = ?"
            ),
            (partition,),
        )
        .await
    {
        Ok(n) => n,
        Err(mysql_async::Error::Server(e)) if e.code == 1146 => None,
        Err(e) => return Err(server(database)(e)),
    };
    Ok(n.unwrap_or(0))
}

async fn select(
    conn: &mut Conn,
    database: &str,
    sql: &str,
    params: Vec<mysql_async::Value>,
) -> Result<Vec<FileRecord>, ArchiveError> {
    let params = if params.is_empty() {
        mysql_async::Params::Empty
    } else {
        mysql_async::Params::Positional(params)
    };
    let rows: Vec<mysql_async::Row> = match conn.exec(sql, params.clone()).await {
        Ok(rows) => rows,
        // An index from before the cold tier (a dry run does not create the table): no files.
        Err(mysql_async::Error::Server(e)) if e.code == 1146 => Vec::new(),
        // A manifest from before the key range: its files have none.
        Err(mysql_async::Error::Server(e)) if e.code == 1054 => conn
            .exec(sql.replacen(KEY_COLUMNS.0, KEY_COLUMNS.1, 1), params)
            .await
            .map_err(server(database))?,
        Err(e) => return Err(server(database)(e)),
    };
    rows.into_iter()
        .map(|row| from_row(row, database))
        .collect()
}

/// A row of [`SELECT`] as a [`FileRecord`].
fn from_row(mut row: mysql_async::Row, database: &str) -> Result<FileRecord, ArchiveError> {
    let values: Vec<mysql_async::Value> = (0..15)
        .map(|i| {
            row.take::<mysql_async::Value, usize>(i)
                .unwrap_or(mysql_async::Value::NULL)
        })
        .collect();
    let text = |i: usize| mysql_async::from_value_opt::<String>(values[i].clone()).ok();
    let int = |i: usize| mysql_async::from_value_opt::<u64>(values[i].clone()).ok();
    let time = |i: usize| parse_utc(&text(i)?);
    let signed = |i: usize| mysql_async::from_value_opt::<Option<i64>>(values[i].clone()).ok();
    let record = (|| {
        Some(FileRecord {
            path: text(0)?,
            stream_id: u32::try_from(int(1)?).ok()?,
            schema: text(2)?,
            table: text(3)?,
            hour_start: time(4)?,
            source_partition: text(5)?,
            rows: int(6)?,
            bytes: int(7)?,
            sha256: text(8)?,
            min_event_id: int(9)?,
            max_event_id: int(10)?,
            min_time: time(11)?,
            max_time: time(12)?,
            int_keys: match (signed(13)?, signed(14)?) {
                (Some(lo), Some(hi)) => Some((lo, hi)),
                _ => None,
            },
        })
    })();
    record.ok_or_else(|| ArchiveError::Manifest {
        database: database.to_string(),
        path: text(0).unwrap_or_default(),
    })
}

//! Writing the changes of a `binlog_events` partition into the archive, one file per stream,
//! table and hour, each recorded in the manifest once it is in place.
//!
//! # Invariants
//! * **Write and fsync, put in place, record**: a file is complete and durable under its
//!   final name ([`Store::commit`]: a rename and directory fsync, or one S3 `PUT`) before its
//!   manifest row exists, and the partition is dropped (by
//!   `history::rotate`) only after that row is committed. A crash between two steps leaves
//!   the partition in place; the rerun writes the same file under the same name (the name is
//!   a function of the rows, [`FileKey`]), replacing an unrecorded leftover, and skips what
//!   is recorded: no file twice, no change lost.
//! * **A file holds exactly the rows it was planned with**: the changes of one stream and
//!   table in one hour with `event_id` in the planned range, read in `event_id` order in one
//!   consistent read. Rows that reach an expired hour later (a stream catching up on old
//!   binlogs) have larger `event_id`s and go to a further file on the next run.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use serde::Serialize;

use super::layout::FileKey;
use super::manifest::{self, FileRecord};
use super::store::Store;
use super::writer::{ArchiveRow, ParquetFile};
use super::{failpoint, ArchiveError};
use crate::index::ddl::{BINLOG_EVENTS, PARTITION_SECONDS};
use crate::time::{format_utc, TO_SECONDS_EPOCH};

/// Rows per row group: large enough for good compression and few footers entries, small
/// enough that a group of large row images stays well inside memory.
const GROUP_ROWS: usize = 50_000;

/// A partition of `binlog_events` whose changes are to be archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRange {
    /// Its name (recorded as each file's `source_partition`).
    pub name: String,
    /// Inclusive lower bound of `event_timestamp` (Unix seconds); `None`: everything older.
    pub lower: Option<i64>,
    /// Exclusive upper bound of `event_timestamp` (Unix seconds).
    pub upper: i64,
}

/// A file to write: changes of one stream, table and hour not yet in a recorded file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pending {
    /// The partition they are in.
    pub partition: String,
    /// Path relative to the archive root.
    pub path: String,
    /// The stream.
    pub stream_id: u32,
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Start of the hour (Unix seconds).
    pub hour_start: i64,
    /// Smallest and largest `event_id` of the rows.
    pub event_ids: (u64, u64),
    /// How many.
    pub rows: u64,
}

impl Pending {
    fn key(&self) -> FileKey {
        FileKey {
            stream_id: self.stream_id,
            schema: self.schema.clone(),
            table: self.table.clone(),
            hour_start: self.hour_start,
            first_event_id: self.event_ids.0,
        }
    }
}

fn server(database: &str) -> impl Fn(mysql_async::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Server {
        database: database.to_string(),
        source,
    }
}

/// `event_timestamp` as Unix seconds, without the session time zone.
fn unix_time_sql() -> String {
    format!("CAST(TO_SECONDS(event_timestamp) - {TO_SECONDS_EPOCH} AS SIGNED)")
}

type GroupRow = (u32, String, String, i64, u64, u64, u64);

/// The files partition `part` still needs: per stream, table and hour, the changes after the
/// last recorded file of the same group.
pub async fn pending(
    conn: &mut Conn,
    database: &str,
    part: &PartitionRange,
) -> Result<Vec<Pending>, ArchiveError> {
    let lower = part
        .lower
        .map_or_else(|| "1000-01-01 00:00:00".to_string(), format_utc);
    let groups: Vec<GroupRow> = conn
        .exec(
            format!(
                "SELECT stream_id, schema_name, table_name, \
                 CAST(FLOOR(({t}) / {PARTITION_SECONDS}) * {PARTITION_SECONDS} AS SIGNED) AS h, \
                 MIN(event_id), MAX(event_id), COUNT(*) FROM {BINLOG_EVENTS} \
                 WHERE event_timestamp >= ? AND event_timestamp < ? \
                 GROUP BY stream_id, schema_name, table_name, h \
                 ORDER BY h, schema_name, table_name, stream_id",
                t = unix_time_sql()
            ),
            (lower, format_utc(part.upper)),
        )
        .await
        .map_err(server(database))?;
    let recorded = manifest::of_partition(conn, database, &part.name).await?;
    let mut out = Vec::new();
    for (stream_id, schema, table, hour_start, first, last, rows) in groups {
        let after = recorded
            .iter()
            .filter(|f| {
                (
                    f.stream_id,
                    f.schema.as_str(),
                    f.table.as_str(),
                    f.hour_start,
                ) == (stream_id, schema.as_str(), table.as_str(), hour_start)
            })
            .map(|f| f.max_event_id)
            .max();
        let (first, rows) = match after {
            None => (first, rows),
            Some(a) if a >= last => continue,
            Some(a) => {
                let later: Option<(u64, u64)> = conn
                    .exec_first(
                        format!(
                            "SELECT MIN(event_id), COUNT(*) FROM {BINLOG_EVENTS} WHERE {}",
                            GROUP_FILTER
                        ),
                        group_params(stream_id, &schema, &table, hour_start, a + 1, last),
                    )
                    .await
                    .map_err(server(database))?;
                match later {
                    Some((first, rows)) if rows > 0 => (first, rows),
                    _ => continue,
                }
            }
        };
        let mut p = Pending {
            partition: part.name.clone(),
            path: String::new(),
            stream_id,
            schema,
            table,
            hour_start,
            event_ids: (first, last),
            rows,
        };
        p.path = p.key().path();
        out.push(p);
    }
    Ok(out)
}

/// The rows of one file: a stream, a table, an hour, an `event_id` range.
const GROUP_FILTER: &str = "stream_id = ? AND schema_name = ? AND table_name = ? \
     AND event_timestamp >= ? AND event_timestamp < ? AND event_id BETWEEN ? AND ?";

fn group_params(
    stream_id: u32,
    schema: &str,
    table: &str,
    hour_start: i64,
    first: u64,
    last: u64,
) -> mysql_async::Params {
    mysql_async::Params::Positional(vec![
        stream_id.into(),
        schema.into(),
        table.into(),
        format_utc(hour_start).into(),
        format_utc(hour_start + PARTITION_SECONDS).into(),
        first.into(),
        last.into(),
    ])
}

/// Writes the file `p` describes, puts it in place in `store` durably and records it.
pub async fn write(
    conn: &mut Conn,
    database: &str,
    store: &Store,
    p: &Pending,
) -> Result<FileRecord, ArchiveError> {
    let staged = store.stage(&p.path)?;
    let written = {
        let mut file = ParquetFile::create_for(staged.path(), p.rows)?;
        let sql = format!(
            "SELECT event_id, stream_id, binlog_file, start_pos, end_pos, COALESCE(row_in_event, 0), \
             {}, gtid, connection_id, schema_name, table_name, event_type, pk_values, \
             changed_columns, row_before, row_after, schema_version, policy_version \
             FROM {BINLOG_EVENTS} WHERE {GROUP_FILTER} ORDER BY event_id",
            unix_time_sql()
        );
        let params = group_params(
            p.stream_id,
            &p.schema,
            &p.table,
            p.hour_start,
            p.event_ids.0,
            p.event_ids.1,
        );
        let mut result = conn
            .exec_iter(sql, params)
            .await
            .map_err(server(database))?;
        let mut chunk = Vec::with_capacity(GROUP_ROWS.min(p.rows as usize));
        while let Some(row) = result.next().await.map_err(server(database))? {
            chunk.push(archive_row(row)?);
            if chunk.len() == GROUP_ROWS {
                tokio::task::block_in_place(|| file.write_group(&chunk))?;
                chunk.clear();
            }
        }
        tokio::task::block_in_place(|| {
            file.write_group(&chunk)?;
            file.finish()
        })?
    };
    if written.rows != p.rows {
        return Err(ArchiveError::Changed {
            path: p.path.clone(),
            planned: p.rows,
            read: written.rows,
        });
    }
    store
        .commit(staged, &p.path, written.bytes, &written.sha256)
        .await?;
    failpoint("archive-written");
    let record = FileRecord::of(&p.key(), p.partition.clone(), written);
    manifest::record(conn, database, &record).await?;
    Ok(record)
}

/// A `binlog_events` row (the columns [`write`] selects) as an [`ArchiveRow`].
fn archive_row(mut row: Row) -> Result<ArchiveRow, ArchiveError> {
    let event_id: u64 = row.get_opt(0).and_then(Result::ok).unwrap_or(0);
    let mut failed = None;
    let mut take = |i: usize| -> mysql_async::Value {
        match row.take_opt::<mysql_async::Value, usize>(i) {
            Some(Ok(v)) => v,
            _ => {
                failed.get_or_insert(i);
                mysql_async::Value::NULL
            }
        }
    };
    let values: Vec<mysql_async::Value> = (0..18).map(&mut take).collect();
    if let Some(i) = failed {
        return Err(ArchiveError::Corrupt {
            event_id,
            what: format!("column {i} is missing"),
        });
    }
    let mut it = values.into_iter();
    let mut next = || it.next().unwrap_or(mysql_async::Value::NULL);
    let corrupt = |what: &str| ArchiveError::Corrupt {
        event_id,
        what: what.to_string(),
    };
    macro_rules! get {
        ($t:ty, $what:expr) => {
            mysql_async::from_value_opt::<$t>(next()).map_err(|_| corrupt($what))?
        };
    }
    Ok(ArchiveRow {
        event_id: get!(u64, "event_id"),
        stream_id: get!(u32, "stream_id"),
        binlog_file: get!(String, "binlog_file"),
        start_pos: get!(u64, "start_pos"),
        end_pos: get!(u64, "end_pos"),
        row_in_event: get!(u32, "row_in_event"),
        event_time: get!(i64, "event_timestamp"),
        gtid: get!(Option<String>, "gtid"),
        connection_id: get!(Option<u32>, "connection_id"),
        schema: get!(String, "schema_name"),
        table: get!(String, "table_name"),
        event_type: get!(u8, "event_type"),
        pk_values: get!(String, "pk_values"),
        changed_columns: get!(Option<String>, "changed_columns"),
        row_before: get!(Option<String>, "row_before"),
        row_after: get!(Option<String>, "row_after"),
        schema_version: get!(u32, "schema_version"),
        policy_version: get!(u32, "policy_version"),
    })
}

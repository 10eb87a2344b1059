//! Reading the DDL markers of `ddl_events` (see `index::ddl`): which TRUNCATE, DROP, RENAME,
//! ALTER or CREATE statements a stream recorded on a table, and where they fall among its
//! changes.
//!
//! # Invariant
//! A marker's `last_event_id` orders it against the changes *of the same stream*: the marker
//! sits right after the change with that id in history order (`history::order`: the place of
//! a change is compared, not its id, so a change `index --fill-gap` wrote sits at its gap), so
//! a change at or before that place came before the statement, a later one after it. Markers
//! the fill recorded before its range's first change are moved to the gap's place when it
//! marks the gap filled. Lookups use the `k_table` index (`schema_name`, `table_name`,
//! `last_event_id`), from an `event_id` floor; callers compare the places.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

pub use crate::change::DdlKind;
use crate::change::DdlRecord;
use crate::time::format_utc;

/// One recorded DDL statement on one table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DdlMarker {
    /// The marker's row number in `ddl_events` (recording order).
    pub seq: u64,
    /// The stream (its `--server-id`) that recorded it.
    pub stream_id: u32,
    /// What the statement did to the table.
    #[serde(serialize_with = "kind_name")]
    pub kind: DdlKind,
    /// Schema of the table.
    pub schema: String,
    /// The table, as logged; empty for [`DdlKind::DropSchema`].
    pub table: String,
    /// `schema.table` the table was renamed to ([`DdlKind::Rename`]).
    pub renamed_to: Option<String>,
    /// `schema.table` of the table renamed to this name ([`DdlKind::RenameIn`]).
    pub renamed_from: Option<String>,
    /// The statement as logged.
    pub statement: String,
    /// Its GTID, when the source has GTIDs.
    pub gtid: Option<String>,
    /// Binlog file of the statement.
    pub binlog_file: String,
    /// Offset of the statement's event in it.
    pub start_pos: u64,
    /// `YYYY-MM-DD HH:MM:SS`, UTC, like `StoredChange::event_timestamp`.
    pub event_timestamp: String,
    /// The stream's changes with `event_id <= last_event_id` came before the statement.
    pub last_event_id: u64,
}

fn kind_name<S: serde::Serializer>(kind: &DdlKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.name())
}

impl DdlMarker {
    /// The marker `record` becomes when `stream_id` writes it (`seq` and `last_event_id` are
    /// known only then and are 0 here): for `--dry-run`, which writes nothing.
    pub fn unwritten(stream_id: u32, record: &DdlRecord) -> DdlMarker {
        DdlMarker {
            seq: 0,
            stream_id,
            kind: record.kind,
            schema: record.schema.clone(),
            table: record.table.clone(),
            renamed_to: record.renamed_to.clone(),
            renamed_from: record.renamed_from.clone(),
            statement: record.statement.to_string(),
            gtid: record.gtid.as_deref().map(str::to_string),
            binlog_file: record.binlog_file.to_string(),
            start_pos: record.start_pos,
            event_timestamp: format_utc(i64::from(record.timestamp)),
            last_event_id: 0,
        }
    }

    /// One line for messages: `TRUNCATE of shop.orders at 2026-12-06 14:05:00 UTC (GTID …)`.
    pub fn describe(&self) -> String {
        let what = match self.kind {
            DdlKind::DropSchema => format!("DROP DATABASE of {}", self.schema),
            DdlKind::Rename => format!(
                "RENAME of {}.{} to {}",
                self.schema,
                self.table,
                self.renamed_to.as_deref().unwrap_or("?")
            ),
            DdlKind::RenameIn => format!(
                "RENAME of {} to {}.{}",
                self.renamed_from.as_deref().unwrap_or("?"),
                self.schema,
                self.table
            ),
            kind => format!(
                "{} of {}.{}",
                kind.name().to_ascii_uppercase(),
                self.schema,
                self.table
            ),
        };
        let place = match &self.gtid {
            Some(gtid) => format!("GTID {gtid}"),
            None => format!("binlog {}:{}", self.binlog_file, self.start_pos),
        };
        format!("{what} at {} UTC ({place})", self.event_timestamp)
    }
}

const SELECT: &str = "SELECT seq, stream_id, kind, schema_name, table_name, renamed_to, \
     renamed_from, statement, gtid, binlog_file, start_pos, \
     DATE_FORMAT(event_timestamp, '%Y-%m-%d %H:%i:%s'), last_event_id FROM ddl_events";

/// Markers of `schema.table` (recorded by `stream_id`) with `last_event_id >= from_event_id`,
/// oldest first: the statements after the change `from_event_id` (and, for `from_event_id` 0,
/// every one). Markers of `DROP DATABASE schema` are included (their table is empty).
pub async fn markers_since(
    conn: &mut Conn,
    stream_id: u32,
    schema: &str,
    table: &str,
    from_event_id: u64,
) -> Result<Vec<DdlMarker>, mysql_async::Error> {
    let rows: Vec<Row> = conn
        .exec(
            format!(
                "{SELECT} WHERE schema_name = ? AND table_name IN (?, '') \
                 AND last_event_id >= ? AND stream_id = ? ORDER BY last_event_id, seq"
            ),
            (schema, table, from_event_id, stream_id),
        )
        .await?;
    Ok(rows.into_iter().filter_map(marker).collect())
}

/// Every marker of `stream_id`, oldest first (for tests and listings; the table is small).
pub async fn all_markers(
    conn: &mut Conn,
    stream_id: u32,
) -> Result<Vec<DdlMarker>, mysql_async::Error> {
    let rows: Vec<Row> = conn
        .exec(
            format!("{SELECT} WHERE stream_id = ? ORDER BY seq"),
            (stream_id,),
        )
        .await?;
    Ok(rows.into_iter().filter_map(marker).collect())
}

/// A row of [`SELECT`]; `None` for a kind this version does not know (a newer writer's).
fn marker(mut row: Row) -> Option<DdlMarker> {
    Some(DdlMarker {
        seq: row.take_opt(0)?.ok()?,
        stream_id: row.take_opt(1)?.ok()?,
        kind: DdlKind::from_name(&row.take_opt::<String, _>(2)?.ok()?)?,
        schema: row.take_opt(3)?.ok()?,
        table: row.take_opt(4)?.ok()?,
        renamed_to: row.take_opt(5)?.ok()?,
        renamed_from: row.take_opt(6)?.ok()?,
        statement: row.take_opt(7)?.ok()?,
        gtid: row.take_opt(8)?.ok()?,
        binlog_file: row.take_opt(9)?.ok()?,
        start_pos: row.take_opt(10)?.ok()?,
        event_timestamp: row.take_opt(11)?.ok()?,
        last_event_id: row.take_opt(12)?.ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(kind: DdlKind, gtid: Option<&str>) -> DdlMarker {
        DdlMarker {
            seq: 1,
            stream_id: 7,
            kind,
            schema: "shop".into(),
            table: "orders".into(),
            renamed_to: Some("shop.orders_old".into()),
            renamed_from: None,
            statement: "TRUNCATE TABLE orders".into(),
            gtid: gtid.map(str::to_string),
            binlog_file: "binlog.000003".into(),
            start_pos: 1234,
            event_timestamp: "2026-12-06 14:05:00".into(),
            last_event_id: 99,
        }
    }

    #[test]
    fn describe_names_the_statement_the_table_the_time_and_the_place() {
        assert_eq!(
            marker(DdlKind::Truncate, Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:23")).describe(),
            "TRUNCATE of shop.orders at 2026-12-06 14:05:00 UTC (GTID 3e11fa47-71ca-11e1-9e33-c80aa9429562:23)"
        );
        assert_eq!(
            marker(DdlKind::Rename, None).describe(),
            "RENAME of shop.orders to shop.orders_old at 2026-12-06 14:05:00 UTC (binlog binlog.000003:1234)"
        );
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in DdlKind::ALL {
            assert_eq!(DdlKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(DdlKind::from_name("flush"), None);
    }
}

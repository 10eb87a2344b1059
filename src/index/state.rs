//! `stream_state`: one row per stream, keyed by its `--server-id`. Read at start, deleted by
//! `--reset`, and written only by the writer, inside the same transaction as the rows it covers.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

use crate::position::{BinlogPosition, Checkpoint, Gtid, GtidSet, ResumePoint};
use crate::sql::push_plain_literal;

/// A stream's stored state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamState {
    /// Where to resume.
    pub checkpoint: Checkpoint,
    /// server_uuid (MySQL) or server id (MariaDB) of the source the checkpoint came from.
    pub source_uuid: Option<String>,
    /// Rows written by this stream so far.
    pub events_indexed: u64,
    /// Timestamp of the last indexed event, `YYYY-MM-DD HH:MM:SS` UTC.
    pub last_event_time: Option<String>,
    /// When the checkpoint was written, UTC.
    pub last_checkpoint: String,
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The server refused a statement.
    #[error("stream_state of server id {server_id}: {source}")]
    Server {
        /// The stream.
        server_id: u32,
        /// The driver's error.
        #[source]
        source: mysql_async::Error,
    },
    /// A stored value does not parse.
    #[error("stream_state row of server id {server_id} is unreadable: {what}; fix or delete the row (bintrail stream --reset)")]
    Corrupt {
        /// The stream.
        server_id: u32,
        /// What is wrong.
        what: String,
    },
}

impl StateError {
    /// Whether a retry after reconnecting may succeed (a lock wait, a lost connection, a
    /// read-only index; see `classify`).
    pub fn is_transient(&self) -> bool {
        match self {
            StateError::Server { source, .. } => crate::classify::is_transient(source),
            StateError::Corrupt { .. } => false,
        }
    }

    /// Whether the statement failed because `stream_state` does not exist (no `init` yet).
    pub fn is_missing_table(&self) -> bool {
        matches!(self, StateError::Server { source: mysql_async::Error::Server(e), .. } if e.code == 1146)
    }
}

const SELECT: &str =
    "SELECT mode, binlog_file, binlog_position, gtid_set, rows_done, in_flight_gtid, \
     source_uuid, events_indexed, \
     DATE_FORMAT(last_event_time, '%Y-%m-%d %H:%i:%s'), \
     DATE_FORMAT(last_checkpoint, '%Y-%m-%d %H:%i:%s.%f'), binlog_created \
     FROM stream_state WHERE server_id = ?";

/// Reads a stream's state, if it has one.
pub async fn load(conn: &mut Conn, server_id: u32) -> Result<Option<StreamState>, StateError> {
    let row: Option<Row> = conn
        .exec_first(SELECT, (server_id,))
        .await
        .map_err(|source| StateError::Server { server_id, source })?;
    row.map(|row| parse_row(server_id, row)).transpose()
}

/// Deletes a stream's state (only that stream's) and returns what it was.
pub async fn reset(conn: &mut Conn, server_id: u32) -> Result<Option<StreamState>, StateError> {
    let old = load(conn, server_id).await?;
    conn.exec_drop("DELETE FROM stream_state WHERE server_id = ?", (server_id,))
        .await
        .map_err(|source| StateError::Server { server_id, source })?;
    Ok(old)
}

fn parse_row(server_id: u32, row: Row) -> Result<StreamState, StateError> {
    type Cols = (
        String,
        String,
        u64,
        Option<String>,
        u64,
        Option<String>,
        Option<String>,
        u64,
        Option<String>,
        String,
        u32,
    );
    let corrupt = |what: String| StateError::Corrupt { server_id, what };
    let (
        mode,
        file,
        pos,
        gtid_set,
        rows_done,
        in_flight,
        source_uuid,
        events,
        last_event,
        last_cp,
        created,
    ): Cols = mysql_async::from_row_opt(row).map_err(|e| corrupt(e.to_string()))?;
    let position = BinlogPosition::new(file, pos);
    let resume = match mode.as_str() {
        "position" => ResumePoint::Position(position.clone()),
        "gtid" => ResumePoint::Gtid(
            gtid_set
                .unwrap_or_default()
                .parse::<GtidSet>()
                .map_err(|e| corrupt(e.to_string()))?,
        ),
        other => {
            return Err(corrupt(format!(
                "mode '{other}' is neither position nor gtid"
            )))
        }
    };
    let in_flight = in_flight
        .map(|g| g.parse::<Gtid>())
        .transpose()
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(StreamState {
        checkpoint: Checkpoint {
            resume,
            position,
            rows_done,
            in_flight,
            binlog_created: created,
        },
        source_uuid,
        events_indexed: events,
        last_event_time: last_event,
        last_checkpoint: last_cp,
    })
}

/// The statement that records `checkpoint` for `server_id`, adding `rows` to events_indexed.
/// It runs inside the writer's transaction, after the rows it covers, in the writer's
/// `NO_BACKSLASH_ESCAPES` session ([`crate::sql::WRITER_SESSION_SETUP`]).
pub fn upsert_sql(
    server_id: u32,
    checkpoint: &Checkpoint,
    source_uuid: &str,
    rows: u64,
    last_event_time: Option<u32>,
) -> String {
    let mut sql = String::with_capacity(512);
    sql.push_str(
        "INSERT INTO stream_state (server_id, mode, binlog_file, binlog_position, gtid_set, \
         rows_done, in_flight_gtid, source_uuid, events_indexed, last_event_time, last_checkpoint, \
         binlog_created) VALUES (",
    );
    sql.push_str(&server_id.to_string());
    sql.push_str(", '");
    sql.push_str(checkpoint.resume.mode());
    sql.push_str("', ");
    push_plain_literal(&mut sql, &checkpoint.position.file);
    sql.push_str(&format!(", {}, ", checkpoint.position.pos));
    match &checkpoint.resume {
        ResumePoint::Gtid(set) => push_plain_literal(&mut sql, &set.to_string()),
        ResumePoint::Position(_) => sql.push_str("NULL"),
    }
    sql.push_str(&format!(", {}, ", checkpoint.rows_done));
    match &checkpoint.in_flight {
        Some(g) => push_plain_literal(&mut sql, &g.to_string()),
        None => sql.push_str("NULL"),
    }
    sql.push_str(", ");
    push_plain_literal(&mut sql, source_uuid);
    let event_time = last_event_time
        .map(|t| format!("FROM_UNIXTIME({t})"))
        .unwrap_or_else(|| "NULL".into());
    sql.push_str(&format!(
        ", {rows}, {event_time}, UTC_TIMESTAMP(3), {created}) ON DUPLICATE KEY UPDATE \
         mode = VALUES(mode), binlog_file = VALUES(binlog_file), \
         binlog_position = VALUES(binlog_position), gtid_set = VALUES(gtid_set), \
         rows_done = VALUES(rows_done), in_flight_gtid = VALUES(in_flight_gtid), \
         source_uuid = VALUES(source_uuid), events_indexed = events_indexed + VALUES(events_indexed), \
         last_event_time = COALESCE(VALUES(last_event_time), last_event_time), \
         last_checkpoint = VALUES(last_checkpoint), binlog_created = VALUES(binlog_created)",
        created = checkpoint.binlog_created
    ));
    sql
}

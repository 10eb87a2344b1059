//! Writing changes and their checkpoint into the index, in ONE transaction per flush.
//!
//! # Invariant
//! A checkpoint is committed in the same transaction as every row it covers, so the index can
//! never hold a checkpoint ahead of its data, nor rows that the checkpoint says are still to come
//! (a crash rolls both back together). Statements are split by byte size below the server's
//! `max_allowed_packet`, read once at connect, and a duplicate change identity (a replay) is a
//! no-op rather than an error.
//!
//! # Key changes
//! An update that changed a keyed row's key is stored under its new key; so that the row can be
//! found from its old key too, the same transaction writes one `key_changes` row for it (old key,
//! new key, the change's `event_id`, looked up by its identity through `uk_change`). Rows whose
//! key did not change, nearly all of them, cost nothing: no statement is sent for a batch
//! without a key change. A committed XA transaction's key changes are written the same way from
//! the `pk_before` its prepared changes kept in `xa_prepared`.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::change::{Change, DdlRecord, XaPart};
use crate::config::IndexConfig;
use crate::connect::{connect, ConnectError};
use crate::position::Checkpoint;
use crate::sql::{push_plain_literal, WRITER_SESSION_SETUP};
use crate::tls::TlsConfig;

use super::state;
use crate::policy::Policy;

/// The columns a change is written to, in `binlog_events` and in `xa_prepared` alike.
macro_rules! change_columns {
    () => {
        "stream_id, binlog_file, start_pos, end_pos, row_in_event, event_timestamp, gtid, \
         connection_id, schema_name, table_name, event_type, pk_values, changed_columns, \
         row_before, row_after, schema_version, policy_version"
    };
}
const INSERT_HEAD: &str = concat!(
    "INSERT INTO binlog_events (",
    change_columns!(),
    ") VALUES "
);
const INSERT_TAIL: &str = " ON DUPLICATE KEY UPDATE event_id = event_id";
/// Changes of a prepared XA transaction wait in `xa_prepared` for its decision.
const XA_INSERT_HEAD: &str = concat!(
    "INSERT INTO xa_prepared (",
    change_columns!(),
    ", xid, prepared_at, pk_before) VALUES "
);
const XA_INSERT_TAIL: &str = " ON DUPLICATE KEY UPDATE seq = seq";
/// A committed XA: its prepared changes become committed changes (a replay inserts nothing twice).
const XA_COMMIT_HEAD: &str = concat!(
    "INSERT INTO binlog_events (",
    change_columns!(),
    ") SELECT ",
    change_columns!(),
    " FROM xa_prepared WHERE stream_id = "
);
/// `key_changes` rows for changes just written, found by their identity (`uk_change`); a
/// replay updates nothing.
const KEY_CHANGES_HEAD: &str = "INSERT INTO key_changes (stream_id, event_id, event_timestamp, \
     schema_name, table_name, pk_before, pk_after) SELECT e.stream_id, e.event_id, \
     e.event_timestamp, e.schema_name, e.table_name, k.b, e.pk_values FROM (";
const KEY_CHANGES_TAIL: &str = ") k JOIN binlog_events e ON e.stream_id = k.s \
     AND e.binlog_file = k.f AND e.start_pos = k.p AND e.row_in_event = k.r \
     AND e.event_timestamp = k.t ON DUPLICATE KEY UPDATE key_changes.event_id = key_changes.event_id";
/// The `key_changes` rows of a committed XA transaction, from its prepared changes.
const XA_KEY_CHANGES_HEAD: &str = "INSERT INTO key_changes (stream_id, event_id, event_timestamp, \
     schema_name, table_name, pk_before, pk_after) SELECT e.stream_id, e.event_id, \
     e.event_timestamp, e.schema_name, e.table_name, x.pk_before, e.pk_values FROM xa_prepared x \
     JOIN binlog_events e ON e.stream_id = x.stream_id AND e.binlog_file = x.binlog_file \
     AND e.start_pos = x.start_pos AND e.row_in_event = x.row_in_event \
     AND e.event_timestamp = x.event_timestamp WHERE x.pk_before IS NOT NULL AND x.stream_id = ";
/// Places the DDL markers that follow among the stream's changes: the largest event_id written
/// so far (this transaction's rows included; ids are allocated in increasing order, so every
/// change written later gets a larger one).
const DDL_LAST_EVENT_ID: &str =
    "SET @bintrail_last_event_id = (SELECT COALESCE(MAX(event_id), 0) FROM binlog_events)";
const DDL_INSERT_HEAD: &str =
    "INSERT INTO ddl_events (stream_id, binlog_file, start_pos, end_pos, \
     event_timestamp, gtid, schema_name, table_name, kind, statement, renamed_to, renamed_from, \
     last_event_id) VALUES ";
/// Room kept below max_allowed_packet for the packet header and the statement tail.
const PACKET_MARGIN: usize = 1024;
/// Bytes of a tuple besides its text values: numbers, separators, quotes, FROM_UNIXTIME().
const TUPLE_OVERHEAD: usize = 160;

/// Why a flush failed.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// Could not connect.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The index server refused or lost a statement.
    #[error("index write failed: {0}")]
    Server(#[from] mysql_async::Error),
    /// One change is larger than the index server accepts in a statement.
    #[error("the change to {schema}.{table} with primary key '{pk}' at binlog {position} needs a {size}-byte statement but the index server's max_allowed_packet is {max_packet}: raise max_allowed_packet on the index server (SET GLOBAL max_allowed_packet = ...) and restart the stream")]
    OversizeRow {
        /// Schema of the change.
        schema: String,
        /// Table of the change.
        table: String,
        /// Its primary key values.
        pk: String,
        /// Its binlog position.
        position: String,
        /// Bytes it needs.
        size: usize,
        /// The server's limit.
        max_packet: usize,
    },
}

impl WriterError {
    /// Whether a retry after reconnecting may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            WriterError::Connect(e) => e.is_transient(),
            WriterError::Server(e) => crate::classify::is_transient(e),
            WriterError::OversizeRow { .. } => false,
        }
    }
}

/// The markers of one DDL statement, placed in the batch where the statement came.
#[derive(Debug, Clone)]
pub struct DdlAt {
    /// Rows of the batch's plain changes before it.
    pub rows: usize,
    /// XA parts of the batch before it.
    pub xa: usize,
    /// Its markers.
    pub records: Vec<DdlRecord>,
}

/// The index side of a stream: one connection, one transaction per flush.
pub struct Writer {
    conn: Conn,
    server_id: u32,
    source_uuid: String,
    max_statement: usize,
    /// Statement buffers of the last flush, reused by the next.
    spare: Vec<String>,
    /// Whether flushes write the stream's checkpoint (`false` for `bintrail index`, which adds
    /// history under a stream's id without moving that stream).
    checkpoints: bool,
}

impl Writer {
    /// Connects to the index and prepares the session.
    pub async fn open(
        index: &IndexConfig,
        tls: &TlsConfig,
        server_id: u32,
        source_uuid: String,
    ) -> Result<Writer, WriterError> {
        let mut conn = connect("index", &index.dsn, Some(&index.database), tls).await?;
        conn.query_drop(WRITER_SESSION_SETUP).await?;
        let max_packet: u64 = conn
            .query_first("SELECT @@max_allowed_packet")
            .await?
            .unwrap_or(4 << 20);
        Ok(Writer {
            conn,
            server_id,
            source_uuid,
            max_statement: (max_packet as usize).saturating_sub(PACKET_MARGIN),
            spare: Vec::new(),
            checkpoints: true,
        })
    }

    /// This writer's flushes write rows and DDL markers only, never `stream_state`: history
    /// added from binlog files under a stream's id must not move that stream's checkpoint.
    pub fn without_checkpoints(mut self) -> Writer {
        self.checkpoints = false;
        self
    }

    /// Writes `rows`, the XA parts `xa`, the DDL markers `ddl` and `checkpoint` in one
    /// transaction; returns how many changes became new rows of `binlog_events` (a replayed
    /// change, which the unique key ignores, is not counted). Each XA part names the number of
    /// `rows` before it in binlog order, so that a committed XA lands between the changes
    /// around it; each DDL names the rows and XA parts before it, so that its `last_event_id`
    /// counts exactly the changes before it.
    pub async fn flush(
        &mut self,
        rows: &[Change],
        xa: &[(usize, XaPart, Vec<Change>)],
        ddl: &[DdlAt],
        checkpoint: &Checkpoint,
        last_event_time: Option<u32>,
    ) -> Result<u64, WriterError> {
        let mut statements = Vec::new();
        let mut done = 0;
        let mut ddl = ddl.iter().peekable();
        for (i, (at, part, changes)) in xa.iter().enumerate() {
            while let Some(d) = ddl.next_if(|d| d.xa <= i) {
                self.rows_until(rows, &mut done, d.rows, &mut statements)?;
                statements.extend(self.ddl_statements(&d.records));
            }
            self.rows_until(rows, &mut done, *at, &mut statements)?;
            for sql in self.insert_statements(changes, Some(&part.xid))? {
                statements.push((sql, false));
            }
            statements.extend(self.decision_statements(part));
        }
        for d in ddl {
            self.rows_until(rows, &mut done, d.rows, &mut statements)?;
            statements.extend(self.ddl_statements(&d.records));
        }
        self.rows_until(rows, &mut done, rows.len(), &mut statements)?;
        let result = self
            .run_flush(&statements, checkpoint, last_event_time)
            .await;
        // Statement buffers are kept for the next flush: a fresh half-megabyte String per flush
        // costs a page-fault storm (perf: a twentieth of a catch-up's CPU in clear_page).
        self.spare = statements.into_iter().map(|(sql, _)| sql).collect();
        result
    }

    /// Appends the INSERTs of `rows[*done..to]` (no-op when `to <= *done`) and moves `done`.
    fn rows_until(
        &mut self,
        rows: &[Change],
        done: &mut usize,
        to: usize,
        statements: &mut Vec<(String, bool)>,
    ) -> Result<(), WriterError> {
        if to > *done {
            for sql in self.insert_statements(&rows[*done..to], None)? {
                statements.push((sql, true));
            }
            statements.extend(self.key_change_statements(&rows[*done..to]));
            *done = to;
        }
        Ok(())
    }

    /// The statements that write the markers of one DDL statement, after the changes before it.
    fn ddl_statements(&self, records: &[DdlRecord]) -> Vec<(String, bool)> {
        use std::fmt::Write;
        if records.is_empty() {
            return Vec::new();
        }
        let mut sql = String::from(DDL_INSERT_HEAD);
        for (i, d) in records.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            let _ = write!(sql, "({},", self.server_id);
            push_plain_literal(&mut sql, &d.binlog_file);
            let _ = write!(
                sql,
                ",{},{},FROM_UNIXTIME({}),",
                d.start_pos, d.end_pos, d.timestamp
            );
            push_opt(&mut sql, d.gtid.as_deref());
            for text in [&d.schema, &d.table, d.kind.name(), &*d.statement] {
                sql.push(',');
                push_plain_literal(&mut sql, text);
            }
            sql.push(',');
            push_opt(&mut sql, d.renamed_to.as_deref());
            sql.push(',');
            push_opt(&mut sql, d.renamed_from.as_deref());
            sql.push_str(",@bintrail_last_event_id)");
        }
        sql.push_str(" ON DUPLICATE KEY UPDATE seq = seq");
        vec![(DDL_LAST_EVENT_ID.to_string(), false), (sql, false)]
    }

    /// The statements that carry out an XA decision, each flagged when its affected rows are
    /// new rows of `binlog_events`.
    fn decision_statements(&self, part: &XaPart) -> Vec<(String, bool)> {
        let Some(commit) = part.decision else {
            return Vec::new();
        };
        let mut key = format!("{} AND xid = ", self.server_id);
        push_plain_literal(&mut key, &part.xid);
        let mut out = Vec::new();
        if commit {
            out.push((
                format!("{XA_COMMIT_HEAD}{key} ORDER BY seq{INSERT_TAIL}"),
                true,
            ));
            out.push((
                format!(
                    "{XA_KEY_CHANGES_HEAD}{key} ON DUPLICATE KEY UPDATE key_changes.event_id = key_changes.event_id"
                ),
                false,
            ));
        }
        out.push((
            format!("DELETE FROM xa_prepared WHERE stream_id = {key}"),
            false,
        ));
        out
    }

    /// The `key_changes` rows of the key-changing updates among `rows` (just inserted into
    /// `binlog_events` by the statements before), in statements of at most 500 rows and half the
    /// statement size limit; none when no update changed a key.
    fn key_change_statements(&self, rows: &[Change]) -> Vec<(String, bool)> {
        use std::fmt::Write;
        let mut out = Vec::new();
        let (mut sql, mut n) = (String::new(), 0);
        for c in rows.iter().filter(|c| c.pk_before.is_some()) {
            if n == 0 {
                sql.push_str(KEY_CHANGES_HEAD);
            } else {
                sql.push_str(" UNION ALL ");
            }
            let _ = write!(sql, "SELECT {} AS s, ", self.server_id);
            push_plain_literal(&mut sql, &c.binlog_file);
            let _ = write!(
                sql,
                " AS f, {} AS p, {} AS r, FROM_UNIXTIME({}) AS t, ",
                c.start_pos, c.row_in_event, c.timestamp
            );
            push_opt(&mut sql, c.pk_before.as_deref());
            sql.push_str(" AS b");
            n += 1;
            if n == 500 || sql.len() > self.max_statement / 2 {
                sql.push_str(KEY_CHANGES_TAIL);
                out.push((std::mem::take(&mut sql), false));
                n = 0;
            }
        }
        if n > 0 {
            sql.push_str(KEY_CHANGES_TAIL);
            out.push((sql, false));
        }
        out
    }

    /// Runs `statements` (each flagged when its affected rows are new `binlog_events` rows)
    /// and the checkpoint in one transaction.
    async fn run_flush(
        &mut self,
        statements: &[(String, bool)],
        checkpoint: &Checkpoint,
        last_event_time: Option<u32>,
    ) -> Result<u64, WriterError> {
        let result = async {
            let mut inserted = 0;
            self.conn.query_drop("START TRANSACTION").await?;
            for (sql, counts) in statements {
                self.conn.query_drop(sql).await?;
                if *counts {
                    inserted += self.conn.affected_rows();
                }
            }
            if self.checkpoints {
                let checkpoint_sql = state::upsert_sql(
                    self.server_id,
                    checkpoint,
                    &self.source_uuid,
                    inserted,
                    last_event_time,
                );
                self.conn.query_drop(&checkpoint_sql).await?;
            }
            self.conn.query_drop("COMMIT").await?;
            Ok::<u64, mysql_async::Error>(inserted)
        }
        .await;
        if result.is_err() {
            // The connection may be unusable; a failed rollback changes nothing about the outcome.
            let _ = self.conn.query_drop("ROLLBACK").await;
        }
        result.map_err(WriterError::from)
    }

    /// Records a skipped range of history and moves the checkpoint past it, in one transaction.
    pub async fn record_gap(
        &mut self,
        gap_from: &str,
        to: &Checkpoint,
        reason: &str,
    ) -> Result<(), WriterError> {
        let insert =
            super::gaps::insert_sql(self.server_id, gap_from, &to.resume.to_string(), reason);
        let checkpoint_sql = state::upsert_sql(self.server_id, to, &self.source_uuid, 0, None);
        let result = async {
            self.conn.query_drop("START TRANSACTION").await?;
            self.conn.query_drop(&insert).await?;
            self.conn.query_drop(&checkpoint_sql).await?;
            self.conn.query_drop("COMMIT").await
        }
        .await;
        if result.is_err() {
            let _ = self.conn.query_drop("ROLLBACK").await;
        }
        result.map_err(WriterError::from)
    }

    /// Multi-row INSERTs, each below the statement size limit. Tuples are written straight
    /// into the statement (no per-row buffer), which is sized from the batch's data up front.
    ///
    /// With `xa`, the rows are the prepared changes of that XA transaction, for `xa_prepared`.
    fn insert_statements(
        &mut self,
        rows: &[Change],
        xa: Option<&str>,
    ) -> Result<Vec<String>, WriterError> {
        let (head, tail) = match xa {
            None => (INSERT_HEAD, INSERT_TAIL),
            Some(_) => (XA_INSERT_HEAD, XA_INSERT_TAIL),
        };
        let data: usize = rows.iter().map(Change::text_len).sum();
        let estimate = head.len() + tail.len() + data + rows.len() * TUPLE_OVERHEAD;
        let capacity = estimate.min(self.max_statement);
        let mut spare = std::mem::take(&mut self.spare);
        let mut buffer = move || {
            let mut sql = spare.pop().unwrap_or_default();
            sql.clear();
            sql.reserve(capacity);
            sql
        };
        let mut out = Vec::new();
        let mut sql = buffer();
        for change in rows {
            let mark = sql.len();
            if mark == 0 {
                sql.push_str(head);
            } else {
                sql.push(',');
            }
            self.push_tuple(&mut sql, change, xa);
            if sql.len() + tail.len() <= self.max_statement {
                continue;
            }
            if mark == 0 {
                return Err(self.oversize(change, sql.len() + tail.len()));
            }
            // Close the statement before this row and start the next one with it.
            sql.truncate(mark);
            sql.push_str(tail);
            out.push(std::mem::replace(&mut sql, buffer()));
            sql.push_str(head);
            self.push_tuple(&mut sql, change, xa);
            if sql.len() + tail.len() > self.max_statement {
                return Err(self.oversize(change, sql.len() + tail.len()));
            }
        }
        if !sql.is_empty() {
            sql.push_str(tail);
            out.push(sql);
        }
        Ok(out)
    }

    fn oversize(&self, change: &Change, size: usize) -> WriterError {
        WriterError::OversizeRow {
            schema: change.schema.to_string(),
            table: change.table.to_string(),
            pk: change.pk_values.clone(),
            position: change.position().to_string(),
            size,
            max_packet: self.max_statement + PACKET_MARGIN,
        }
    }

    fn push_tuple(&self, out: &mut String, c: &Change, xa: Option<&str>) {
        use std::fmt::Write;
        let _ = write!(out, "({},", self.server_id);
        push_plain_literal(out, &c.binlog_file);
        let _ = write!(
            out,
            ",{},{},{},FROM_UNIXTIME({}),",
            c.start_pos, c.end_pos, c.row_in_event, c.timestamp
        );
        push_opt(out, c.gtid.as_deref());
        match c.connection_id {
            Some(id) => {
                let _ = write!(out, ",{id},");
            }
            None => out.push_str(",NULL,"),
        }
        push_plain_literal(out, &c.schema);
        out.push(',');
        push_plain_literal(out, &c.table);
        let _ = write!(out, ",{},", c.kind.code());
        push_plain_literal(out, &c.pk_values);
        out.push(',');
        push_opt(out, c.changed_columns.as_deref());
        out.push(',');
        push_opt(out, c.row_before.as_deref());
        out.push(',');
        push_opt(out, c.row_after.as_deref());
        let _ = write!(out, ",{},{}", c.schema_version, c.policy_version);
        if let Some(xid) = xa {
            out.push(',');
            push_plain_literal(out, xid);
            out.push_str(",UTC_TIMESTAMP(3),");
            push_opt(out, c.pk_before.as_deref());
        }
        out.push(')');
    }

    /// Records that this stream captures under `policy` from now on (`capture_policies`): the
    /// first start under it sets `first_seen`, every start `last_seen`. Its canonical text holds
    /// patterns and the mask key's id, never the key.
    pub async fn record_policy(&mut self, policy: &Policy) -> Result<(), WriterError> {
        self.conn
            .exec_drop(
                "INSERT INTO capture_policies (stream_id, policy_version, policy, first_seen, \
                 last_seen) VALUES (?, ?, ?, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3)) \
                 ON DUPLICATE KEY UPDATE last_seen = UTC_TIMESTAMP(3)",
                (self.server_id, policy.fingerprint(), policy.canonical()),
            )
            .await?;
        Ok(())
    }

    /// Closes the connection politely.
    pub async fn close(self) {
        let _ = self.conn.disconnect().await;
    }
}

fn push_opt(out: &mut String, value: Option<&str>) {
    match value {
        Some(v) => push_plain_literal(out, v),
        None => out.push_str("NULL"),
    }
}

//! Writing changes and their checkpoint into the index, in ONE transaction per flush.
//!
//! # Invariant
//! A checkpoint is committed in the same transaction as every row it covers, so the index can
//! never hold a checkpoint ahead of its data, nor rows that the checkpoint says are still to come
//! (a crash rolls both back together). Statements are split by byte size below the server's
//! `max_allowed_packet`, read once at connect, and a duplicate change identity (a replay) is a
//! no-op rather than an error.
//!
//! # LOAD DATA
//! Plain changes go in through `LOAD DATA LOCAL INFILE` from an in-memory buffer (the server
//! skips lexing and parsing a literal per value: measured about 30 % more rows/s than 1,000-row
//! INSERTs on the same table), when the index server allows it (`local_infile=ON`). The text is
//! escaped exactly for every value (backslash, tab, newline and NUL escaped, `\N` for NULL). With
//! LOCAL the server turns duplicate keys (a replay: skipped, as the INSERT's no-op update skips
//! them) and also data errors into warnings, so a load that leaves any warning but a duplicate
//! key is rolled back and the flush is done again with INSERTs, whose strict mode reports the
//! error as before. A server that refuses LOCAL INFILE gets INSERTs from then on, with a log line.
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
/// Loads the rows of a buffer built by [`push_load_row`]: the same columns as [`INSERT_HEAD`],
/// the timestamp through a variable. Separators as hex literals: the session's
/// NO_BACKSLASH_ESCAPES would otherwise make `'\t'` two characters and drop the default escape.
const LOAD_SQL: &str = "LOAD DATA LOCAL INFILE 'bintrail-batch' IGNORE INTO TABLE binlog_events \
     CHARACTER SET utf8mb4 FIELDS TERMINATED BY X'09' ESCAPED BY X'5C' LINES TERMINATED BY X'0A' \
     (stream_id, binlog_file, start_pos, end_pos, row_in_event, @ts, gtid, connection_id, \
     schema_name, table_name, event_type, pk_values, changed_columns, row_before, row_after, \
     schema_version, policy_version) SET event_timestamp = FROM_UNIXTIME(@ts)";
/// Server errors that mean LOCAL INFILE is not allowed (3948: disabled on the server or the
/// client; 1148: not allowed with this server).
const LOCAL_INFILE_REFUSED: [u16; 2] = [3948, 1148];
/// The warning a skipped duplicate key leaves (a replayed change): harmless.
const DUP_ENTRY: u16 = 1062;
/// The load buffer goes to the driver in pieces of this size (each becomes packets well below
/// any max_allowed_packet).
const LOAD_PIECE: usize = 1 << 20;
/// Buffers of each kind kept for the next flush at most.
const SPARE_BUFFERS: usize = 16;
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

/// One statement of a flush.
struct Statement {
    sql: String,
    /// Whether its affected rows are new rows of `binlog_events`.
    counts: bool,
    /// The rows a [`LOAD_SQL`] statement reads.
    data: Option<Vec<u8>>,
}

impl From<(String, bool)> for Statement {
    fn from((sql, counts): (String, bool)) -> Statement {
        Statement {
            sql,
            counts,
            data: None,
        }
    }
}

/// Why a flush by LOAD DATA was undone, to be done again with INSERTs.
enum LoadFailed {
    /// The server refuses LOCAL INFILE.
    Refused(mysql_async::Error),
    /// The load left warnings other than duplicate keys (a value the server did not take as is).
    Warnings(String),
    /// Anything else: the flush failed.
    Other(mysql_async::Error),
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
    /// Whether plain changes go in by LOAD DATA LOCAL INFILE (see "LOAD DATA" above).
    load_data: bool,
    /// Load buffers of the last flush, reused by the next.
    spare_loads: Vec<Vec<u8>>,
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
        let (max_packet, local_infile): (u64, Option<i64>) = conn
            .query_first("SELECT @@max_allowed_packet, @@local_infile")
            .await?
            .unwrap_or((4 << 20, None));
        let load_data = local_infile == Some(1);
        if !load_data {
            tracing::info!(
                "the index server has local_infile=OFF: writing changes with multi-row INSERTs \
                 (SET PERSIST local_infile = ON there lets bintrail use LOAD DATA LOCAL INFILE, \
                 about 30 % faster)"
            );
        }
        Ok(Writer {
            conn,
            server_id,
            source_uuid,
            max_statement: (max_packet as usize).saturating_sub(PACKET_MARGIN),
            spare: Vec::new(),
            checkpoints: true,
            load_data,
            spare_loads: Vec::new(),
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
        loop {
            let statements = self.statements(rows, xa, ddl)?;
            let result = self
                .run_flush(&statements, checkpoint, last_event_time)
                .await;
            self.keep_buffers(statements);
            match result {
                Ok(n) => return Ok(n),
                Err(LoadFailed::Other(e)) => return Err(e.into()),
                Err(LoadFailed::Refused(e)) => {
                    tracing::warn!(error = %e, "the index server refused LOAD DATA LOCAL INFILE: writing changes with multi-row INSERTs from now on");
                    self.load_data = false;
                }
                Err(LoadFailed::Warnings(w)) => {
                    // Done again below with INSERTs: strict mode turns the same value into the
                    // error it is, or (a server quirk of LOAD DATA) takes it exactly.
                    tracing::warn!(warnings = %w, "LOAD DATA left warnings; writing this batch with INSERTs instead");
                    self.load_data = false;
                    let result = self
                        .flush_with_inserts(rows, xa, ddl, checkpoint, last_event_time)
                        .await;
                    self.load_data = true;
                    return result;
                }
            }
        }
    }

    /// One flush with INSERTs only.
    async fn flush_with_inserts(
        &mut self,
        rows: &[Change],
        xa: &[(usize, XaPart, Vec<Change>)],
        ddl: &[DdlAt],
        checkpoint: &Checkpoint,
        last_event_time: Option<u32>,
    ) -> Result<u64, WriterError> {
        let statements = self.statements(rows, xa, ddl)?;
        let result = self
            .run_flush(&statements, checkpoint, last_event_time)
            .await;
        self.keep_buffers(statements);
        result.map_err(|e| match e {
            LoadFailed::Other(e) | LoadFailed::Refused(e) => e.into(),
            LoadFailed::Warnings(w) => WriterError::Server(mysql_async::Error::Other(w.into())),
        })
    }

    /// Statement and load buffers are kept for the next flush: a fresh half-megabyte buffer per
    /// flush costs a page-fault storm (perf: a twentieth of a catch-up's CPU in clear_page).
    /// A bounded number of them: the small statements (key changes, DDL markers) are made fresh.
    fn keep_buffers(&mut self, statements: Vec<Statement>) {
        for st in statements {
            if self.spare.len() < SPARE_BUFFERS {
                self.spare.push(st.sql);
            }
            if let Some(data) = st.data.filter(|_| self.spare_loads.len() < SPARE_BUFFERS) {
                self.spare_loads.push(data);
            }
        }
    }

    /// The statements of one flush, in binlog order.
    fn statements(
        &mut self,
        rows: &[Change],
        xa: &[(usize, XaPart, Vec<Change>)],
        ddl: &[DdlAt],
    ) -> Result<Vec<Statement>, WriterError> {
        let mut statements = Vec::new();
        let mut done = 0;
        let mut ddl = ddl.iter().peekable();
        for (i, (at, part, changes)) in xa.iter().enumerate() {
            while let Some(d) = ddl.next_if(|d| d.xa <= i) {
                self.rows_until(rows, &mut done, d.rows, &mut statements)?;
                statements.extend(
                    self.ddl_statements(&d.records)
                        .into_iter()
                        .map(Statement::from),
                );
            }
            self.rows_until(rows, &mut done, *at, &mut statements)?;
            for sql in self.insert_statements(changes, Some(&part.xid))? {
                statements.push((sql, false).into());
            }
            statements.extend(
                self.decision_statements(part)
                    .into_iter()
                    .map(Statement::from),
            );
        }
        for d in ddl {
            self.rows_until(rows, &mut done, d.rows, &mut statements)?;
            statements.extend(
                self.ddl_statements(&d.records)
                    .into_iter()
                    .map(Statement::from),
            );
        }
        self.rows_until(rows, &mut done, rows.len(), &mut statements)?;
        Ok(statements)
    }

    /// Appends the INSERTs of `rows[*done..to]` (no-op when `to <= *done`) and moves `done`.
    fn rows_until(
        &mut self,
        rows: &[Change],
        done: &mut usize,
        to: usize,
        statements: &mut Vec<Statement>,
    ) -> Result<(), WriterError> {
        if to > *done {
            if self.load_data {
                statements.push(self.load_statement(&rows[*done..to]));
            } else {
                for sql in self.insert_statements(&rows[*done..to], None)? {
                    statements.push((sql, true).into());
                }
            }
            statements.extend(
                self.key_change_statements(&rows[*done..to])
                    .into_iter()
                    .map(Statement::from),
            );
            *done = to;
        }
        Ok(())
    }

    /// One LOAD DATA statement with the rows of `rows` as its data. Its size needs no limit:
    /// the driver sends the data in packets, not as one statement.
    fn load_statement(&mut self, rows: &[Change]) -> Statement {
        let mut data = self.spare_loads.pop().unwrap_or_default();
        data.clear();
        data.reserve(
            rows.iter().map(Change::text_len).sum::<usize>() + rows.len() * TUPLE_OVERHEAD,
        );
        for change in rows {
            push_load_row(&mut data, self.server_id, change);
        }
        let mut sql = self.spare.pop().unwrap_or_default();
        sql.clear();
        sql.push_str(LOAD_SQL);
        Statement {
            sql,
            counts: true,
            data: Some(data),
        }
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

    /// Runs `statements` and the checkpoint in one transaction.
    async fn run_flush(
        &mut self,
        statements: &[Statement],
        checkpoint: &Checkpoint,
        last_event_time: Option<u32>,
    ) -> Result<u64, LoadFailed> {
        let result = async {
            let mut inserted = 0;
            self.conn
                .query_drop("START TRANSACTION")
                .await
                .map_err(LoadFailed::Other)?;
            for st in statements {
                let affected = match &st.data {
                    Some(data) => self.load(data).await?,
                    None => {
                        self.conn
                            .query_drop(&st.sql)
                            .await
                            .map_err(LoadFailed::Other)?;
                        self.conn.affected_rows()
                    }
                };
                if st.counts {
                    inserted += affected;
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
                self.conn
                    .query_drop(&checkpoint_sql)
                    .await
                    .map_err(LoadFailed::Other)?;
            }
            self.conn
                .query_drop("COMMIT")
                .await
                .map_err(LoadFailed::Other)?;
            Ok::<u64, LoadFailed>(inserted)
        }
        .await;
        if result.is_err() {
            // The connection may be unusable; a failed rollback changes nothing about the outcome.
            let _ = self.conn.query_drop("ROLLBACK").await;
        }
        result
    }

    /// Runs [`LOAD_SQL`] with `data` (a copy: the driver wants owned pieces), and fails on any
    /// warning but a skipped duplicate; returns the rows it inserted.
    async fn load(&mut self, data: &[u8]) -> Result<u64, LoadFailed> {
        use futures_util::StreamExt;
        let pieces: Vec<Vec<u8>> = data.chunks(LOAD_PIECE).map(<[u8]>::to_vec).collect();
        // Each Vec<u8> becomes the driver's `Bytes` by inference (no direct dependency on `bytes`).
        self.conn.set_infile_handler(async move {
            Ok(futures_util::stream::iter(pieces.into_iter().map(|p| Ok(p.into()))).boxed())
        });
        match self.conn.query_drop(LOAD_SQL).await {
            Ok(()) => {}
            Err(mysql_async::Error::Server(e)) if LOCAL_INFILE_REFUSED.contains(&e.code) => {
                return Err(LoadFailed::Refused(mysql_async::Error::Server(e)))
            }
            Err(e) => return Err(LoadFailed::Other(e)),
        }
        let affected = self.conn.affected_rows();
        if self.conn.get_warnings() == 0 {
            return Ok(affected);
        }
        let warnings: Vec<(String, u16, String)> = self
            .conn
            .query("SHOW WARNINGS LIMIT 5")
            .await
            .map_err(LoadFailed::Other)?;
        let other: Vec<String> = warnings
            .into_iter()
            .filter(|(_, code, _)| *code != DUP_ENTRY)
            .map(|(level, code, message)| format!("{level} {code}: {message}"))
            .collect();
        if other.is_empty() {
            Ok(affected)
        } else {
            Err(LoadFailed::Warnings(other.join("; ")))
        }
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

/// Appends one change as a line of [`LOAD_SQL`]'s data: tab-separated fields, `\N` for NULL,
/// and in text the four bytes the format gives a meaning escaped with a backslash (the
/// server's reading turns `\\`, `\t`, `\n` and `\0` back into exactly those bytes).
fn push_load_row(out: &mut Vec<u8>, server_id: u32, c: &Change) {
    use std::io::Write;
    let _ = write!(out, "{server_id}\t");
    push_load_text(out, &c.binlog_file);
    let _ = write!(
        out,
        "\t{}\t{}\t{}\t{}\t",
        c.start_pos, c.end_pos, c.row_in_event, c.timestamp
    );
    push_load_opt(out, c.gtid.as_deref());
    match c.connection_id {
        Some(id) => {
            let _ = write!(out, "\t{id}\t");
        }
        None => out.extend_from_slice(b"\t\\N\t"),
    }
    push_load_text(out, &c.schema);
    out.push(b'\t');
    push_load_text(out, &c.table);
    let _ = write!(out, "\t{}\t", c.kind.code());
    push_load_text(out, &c.pk_values);
    out.push(b'\t');
    push_load_opt(out, c.changed_columns.as_deref());
    out.push(b'\t');
    push_load_opt(out, c.row_before.as_deref());
    out.push(b'\t');
    push_load_opt(out, c.row_after.as_deref());
    let _ = writeln!(out, "\t{}\t{}", c.schema_version, c.policy_version);
}

fn push_load_opt(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(v) => push_load_text(out, v),
        None => out.extend_from_slice(b"\\N"),
    }
}

/// Appends `value` with `\`, tab, newline and NUL escaped; runs of other bytes are copied whole.
fn push_load_text(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    // No early exit: the fold compiles to a SIMD pass that proves most values need no escape
    // (perf: the byte loop alone was a seventh of a catch-up's CPU).
    let special = |b: u8| b == b'\\' || b == b'\t' || b == b'\n' || b == 0;
    if !bytes.iter().fold(false, |any, &b| any | special(b)) {
        out.extend_from_slice(bytes);
        return;
    }
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0 => b"\\0",
            _ => continue,
        };
        out.extend_from_slice(&bytes[plain..i]);
        out.extend_from_slice(escaped);
        plain = i + 1;
    }
    out.extend_from_slice(&bytes[plain..]);
}

fn push_opt(out: &mut String, value: Option<&str>) {
    match value {
        Some(v) => push_plain_literal(out, v),
        None => out.push_str("NULL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        push_load_text(&mut out, s);
        out
    }

    #[test]
    fn load_text_escapes_backslash_tab_newline_and_nul_and_nothing_else() {
        assert_eq!(
            load_text("plain é😀 'q' \"d\" |"),
            "plain é😀 'q' \"d\" |".as_bytes()
        );
        assert_eq!(load_text("a\\b\tc\nd\0e"), b"a\\\\b\\tc\\nd\\0e");
        // A carriage return is data: only \n ends a line.
        assert_eq!(load_text("\r"), b"\r");
        // The text \N is escaped, so it cannot be read as NULL.
        assert_eq!(load_text("\\N"), b"\\\\N");
        assert_eq!(load_text(""), b"");
    }

    #[test]
    fn a_load_row_has_every_column_and_null_as_backslash_n() {
        let c = Change {
            binlog_file: "binlog.000001".into(),
            start_pos: 4,
            end_pos: 90,
            row_in_event: 2,
            timestamp: 1_700_000_000,
            gtid: None,
            connection_id: None,
            schema: "s".into(),
            table: "t\tx".into(),
            kind: crate::change::ChangeKind::Insert,
            pk_values: "1|a\\|b".into(),
            pk_before: None,
            changed_columns: None,
            row_before: None,
            row_after: Some("{\"k\":\"a\\nb\"}".into()),
            schema_version: 7,
            policy_version: 0,
        };
        let mut out = Vec::new();
        push_load_row(&mut out, 42, &c);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "42\tbinlog.000001\t4\t90\t2\t1700000000\t\\N\t\\N\ts\tt\\tx\t1\t1|a\\\\|b\t\\N\t\\N\t{\"k\":\"a\\\\nb\"}\t7\t0\n"
        );
    }
}

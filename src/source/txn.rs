//! Transaction assembly: binlog events in, bounded [`Chunk`]s of kept changes out, each with the
//! checkpoint that becomes true once the chunk is written.
//!
//! # Resumption
//! A checkpoint names a transaction boundary (the file:offset where a transaction starts, or the
//! GTID set without that transaction) plus `rows_done`: how many *rows events* of that
//! transaction are already fully indexed. Rows events, not rows, are counted so that resuming
//! needs no decoding of the skipped events and stays right when `--schemas`/`--tables` change
//! between runs (filtered events count too). A chunk is cut only between rows events, and only
//! when enough kept rows are pending, so memory stays bounded by `chunk_rows` plus one event
//! however large the transaction. On resume the first transaction is checked to be the one the
//! checkpoint names (same start offset, or same GTID) before anything is skipped.
//!
//! # Commit boundaries
//! MySQL: GTID → BEGIN → TABLE_MAP/ROWS… → XID (or COMMIT); DDL is GTID → QUERY.
//! MariaDB: GTID (its own event, which replaces BEGIN) → … → XID/COMMIT; a GTID flagged
//! standalone is followed by exactly one statement. A QUERY that is not BEGIN/COMMIT/ROLLBACK
//! inside a BEGIN…COMMIT is a statement-logged change, which bintrail cannot index.
//!
//! # Compressed transactions
//! With `binlog_transaction_compression=ON` MySQL writes GTID → TRANSACTION_PAYLOAD, whose
//! zstd payload holds BEGIN … XID. mysql_async yields the payload event itself (its real
//! offset and size), then each inner event with `log_pos` 0 and its uncompressed `event_size`
//! (no checksum). Inner events have no offset of their own, so a change inside a payload is
//! placed at the payload event: `start_pos`/`end_pos` are the payload's, and `row_in_event` is
//! the rows event's byte offset inside the decompressed payload plus the row's index (unique,
//! since a rows event of k rows is longer than k bytes, and independent of filters and of
//! resume skipping). The transaction commits at the payload's end. A payload whose inner events
//! stop before a commit (mysql_async drops a payload it cannot decompress) is an error, not a
//! silently missing transaction.

use std::collections::HashMap;
use std::sync::Arc;

use mysql_common::binlog::events::{
    BinlogEventHeader, Event, GtidEvent, QueryEvent, RowsEventData, TableMapEvent,
    TransactionPayloadEvent,
};

use crate::change::{Change, ChangeKind, DdlKind, DdlRecord, XaPart};
use crate::encoding;
use crate::filter::Filter;
use crate::policy::{ColumnAction, Policed, Policy, PolicyError};
use crate::position::{BinlogPosition, Checkpoint, Gtid, GtidSet, ResumePoint};
use crate::source::ddl_names::{ddl_names, Parsed};
use crate::source::file_ends::ARTIFICIAL;
use crate::source::mariadb;
use crate::source::schema::{schema_version, TableSpec};

/// Kept changes plus the checkpoint that holds once they are written.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Changes, in binlog order.
    pub changes: Vec<Change>,
    /// The resume point after these changes.
    pub checkpoint: Checkpoint,
    /// Timestamp of the last event covered.
    pub last_event_time: Option<u32>,
    /// Set when the chunk belongs to an XA transaction (see "XA" in the module documentation).
    pub xa: Option<XaPart>,
    /// Markers of the DDL statement this chunk commits, one per kept table it names (see
    /// `source::ddl_names`); written in the same index transaction as the checkpoint.
    pub ddl: Vec<DdlRecord>,
}

/// Why the event sequence cannot be indexed.
#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    /// A kept table cannot be captured under the privacy policy (a key column excluded, a JSON
    /// column truncated): refused rather than captured with the value in it.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The column layout of a kept table is not known yet; the caller resolves it (from the table
    /// map, or information_schema) with [`Assembler::provide_spec`] and feeds the event again.
    #[error("column layout of {schema}.{table} is not resolved")]
    NeedColumns {
        /// Table id of the table map.
        table_id: u64,
        /// Schema.
        schema: String,
        /// Table.
        table: String,
    },
    /// A row image could not be decoded.
    #[error("cannot decode the rows event at {position}: {source}")]
    Decode {
        /// Position of the rows event.
        position: BinlogPosition,
        /// The decoder's error.
        #[source]
        source: Box<encoding::DecodeError>,
    },
    /// An event that mysql_common cannot parse.
    #[error("malformed binlog event at {position}: {reason}")]
    Malformed {
        /// Position of the event.
        position: BinlogPosition,
        /// The parser's complaint.
        reason: String,
    },
    /// A rows event without a preceding table map.
    #[error(
        "rows event at {position} refers to table id {table_id}, which no table map announced"
    )]
    UnknownTable {
        /// Position of the rows event.
        position: BinlogPosition,
        /// Its table id.
        table_id: u64,
    },
    /// The first transaction after resuming is not the one the checkpoint names.
    #[error("resume check failed: the checkpoint says {rows_done} rows events of the transaction {expected} are indexed, but the source sent {found} first; the source's binlog history differs from the one indexed; restart with --reset and a start position")]
    ResumeMismatch {
        /// What the checkpoint names.
        expected: String,
        /// What arrived.
        found: String,
        /// Rows events that were to be skipped.
        rows_done: u64,
    },
    /// The binlog file the checkpoint names was recreated: another history.
    #[error("the source's binlog {file} is not the one the checkpoint was taken in (created at {found}, the checkpoint's at {expected}, Unix time): the source's binary logs were reset or the server was rebuilt; its offsets mean something else now. Restart with --reset and a --start-file/--start-gtid chosen for the new history (changes between the old checkpoint and the reset may be missing from the index)")]
    DifferentHistory {
        /// The binlog file.
        file: String,
        /// Creation time recorded with the checkpoint.
        expected: u32,
        /// Creation time the source reports now.
        found: u32,
    },
    /// An event type that may carry row changes and that bintrail cannot read: never skipped.
    #[error("binlog event type {event_type} ({name}) at {position} may carry row changes that bintrail cannot decode; nothing after it is indexed. Upgrade bintrail, or change the source's setting that writes it (see README, Supported sources), then restart")]
    UnknownEvent {
        /// The event type code.
        event_type: u8,
        /// Its name, where known.
        name: &'static str,
        /// Its position.
        position: BinlogPosition,
    },
    /// A rolled-back group whose transactional changes were partly written already.
    #[error("the transaction at {position} was rolled back after part of it had been written to the index: it changed a non-transactional table (MyISAM, Aria, MEMORY) together with transactional ones and is larger than one chunk (--batch-size rows or 1 MiB), so rows that never happened may be in the index for it. Delete this stream's rows at that position from binlog_events, restart with a larger --batch-size, and avoid mixing non-transactional tables into transactions")]
    RolledBackAfterWrite {
        /// The ROLLBACK query's position.
        position: BinlogPosition,
    },
    /// A data change logged as a statement.
    #[error("a statement-logged data change ({kind}) at {position} cannot be indexed: a session used binlog_format=STATEMENT or MIXED; set binlog_format=ROW for every session (SET GLOBAL binlog_format=ROW and reconnect clients), then restart from a later position with --reset")]
    Statement {
        /// Position of the QUERY event.
        position: BinlogPosition,
        /// The statement's first word (never its text, which holds data).
        kind: String,
    },
}

/// What is known about one table id.
struct CachedTable {
    tme: TableMapEvent<'static>,
    schema: Arc<str>,
    table: Arc<str>,
    kept: bool,
    /// The table as the source writes it, its schema_version, and how the policy changes it.
    spec: Option<(Arc<TableSpec>, u32, Option<Arc<Policed>>)>,
}

/// The transaction being read.
struct Txn {
    file: Arc<str>,
    start: u64,
    gtid: Option<Gtid>,
    gtid_text: Option<Arc<str>>,
    begun: bool,
    standalone: bool,
    row_events: u64,
    thread_id: Option<u32>,
    /// Rows events at the start of this transaction already indexed (resume).
    skip: u64,
    /// The XID of an XA transaction being prepared (its rows wait for the decision).
    xa: Option<Arc<str>>,
    /// SAVEPOINTs logged in this transaction: name and the count of pending changes then
    /// (`None` once a chunk of the transaction has been handed on since).
    savepoints: Vec<(String, Option<usize>)>,
    /// A chunk with changes of transactional tables was handed on before the commit.
    emitted_transactional: bool,
}

/// The TRANSACTION_PAYLOAD event whose inner events are being read.
struct Payload {
    /// Offset of the payload event: where its inner events are placed.
    start: u64,
    /// Offset after it; the transaction's commit position.
    end: u64,
    /// Bytes of the decompressed payload read so far (the next inner event's offset in it).
    offset: u64,
    /// Decompressed size the payload event announces.
    size: u64,
}

/// Turns a binlog event stream into chunks.
pub struct Assembler {
    filter: Filter,
    policy: Policy,
    policy_version: u32,
    chunk_rows: usize,
    file: Arc<str>,
    /// The end of the last event read that has a place in the file.
    end: u64,
    /// The end of the event being fed (see [`Assembler::place`]).
    event_end: u64,
    executed: Option<GtidSet>,
    txn: Option<Txn>,
    pending: Vec<Change>,
    /// For each pending change: its table is non-transactional (its rows survive a ROLLBACK).
    pending_kept_on_rollback: Vec<bool>,
    /// Bytes of text in `pending` (row images): chunks are bounded by bytes too.
    pending_bytes: usize,
    tables: HashMap<u64, CachedTable>,
    resume: Option<Checkpoint>,
    last_time: Option<u32>,
    payload: Option<Payload>,
    /// Creation time (FORMAT_DESCRIPTION timestamp) of the current binlog file.
    file_created: u32,
    /// Position mode resume: the file and creation time the checkpoint names, checked against
    /// the first FORMAT_DESCRIPTION the source sends.
    verify_created: Option<(String, u32)>,
}

impl Assembler {
    /// An assembler that starts at `from`; `chunk_rows` bounds the kept rows per chunk; every
    /// decoded image is policed by `policy` before anything else reads it.
    pub fn new(filter: Filter, policy: Policy, chunk_rows: usize, from: &Checkpoint) -> Assembler {
        let executed = match &from.resume {
            ResumePoint::Gtid(set) => Some(set.clone()),
            ResumePoint::Position(_) => None,
        };
        Assembler {
            filter,
            policy_version: policy.fingerprint(),
            policy,
            chunk_rows: chunk_rows.max(1),
            file: Arc::from(from.position.file.as_str()),
            end: from.position.pos,
            event_end: 0,
            executed,
            txn: None,
            pending: Vec::new(),
            pending_kept_on_rollback: Vec::new(),
            pending_bytes: 0,
            tables: HashMap::new(),
            resume: (from.rows_done > 0).then(|| from.clone()),
            last_time: None,
            payload: None,
            file_created: from.binlog_created,
            verify_created: match from.resume {
                ResumePoint::Position(_) if from.binlog_created != 0 => {
                    Some((from.position.file.clone(), from.binlog_created))
                }
                _ => None,
            },
        }
    }

    /// The binlog position after the last event read.
    pub fn position(&self) -> BinlogPosition {
        BinlogPosition::new(&*self.file, self.end)
    }

    /// Starts reading binlog file `file` from its first event, as the fake ROTATE that opens
    /// each file of a replica stream does (binlog files on disk have none).
    pub fn open_file(&mut self, file: &str) {
        self.file = Arc::from(file);
        self.end = 4;
    }

    /// Gives the column layout of a table (see `NeedColumns`). Fails when the privacy policy
    /// refuses the table (see [`Policy::for_table`]).
    ///
    /// `schema_version` stays the fingerprint of the source's columns, excluded ones included:
    /// it says which table shape the change was read under, which `recover` and `reconstruct`
    /// compare with the live table; the policy has its own `policy_version`.
    pub fn provide_spec(&mut self, table_id: u64, spec: TableSpec) -> Result<(), TxnError> {
        if let Some(t) = self.tables.get_mut(&table_id) {
            let version =
                schema_version(spec.columns.iter().map(|c| (c.name.as_str(), c.col_type)));
            let policed = self.policy.for_table(&spec)?.map(Arc::new);
            t.spec = Some((Arc::new(spec), version, policed));
        }
        Ok(())
    }

    /// The table map currently cached for `table_id`.
    pub fn table_map(&self, table_id: u64) -> Option<&TableMapEvent<'static>> {
        self.tables.get(&table_id).map(|t| &t.tme)
    }

    /// Feeds one event; returns a chunk when a transaction committed or enough rows are pending.
    /// On `Err(NeedColumns)` nothing was consumed: provide the spec and feed the event again.
    pub fn feed(&mut self, event: &Event) -> Result<Option<Chunk>, TxnError> {
        let header = event.header();
        if mariadb::is_compressed(header.event_type_raw()) {
            // Same log_pos, larger event_size: the place is the compressed event's.
            let (start, end) = self.place(&header);
            let malformed = |reason: String| TxnError::Malformed {
                position: BinlogPosition::new(&*self.file, start),
                reason,
            };
            let plain = mariadb::decompress(event)
                .map_err(|e| malformed(e.to_string()))?
                .ok_or_else(|| malformed("not a compressed event".into()))?;
            return self.feed_at(&plain, Some((start, end)));
        }
        self.feed_at(event, None)
    }

    /// Where an event not inside a compressed payload sits in its file: `(start, end)`.
    ///
    /// MariaDB 11.4+ with `binlog_legacy_event_pos=OFF` (its default) writes `log_pos` 0 in
    /// every event it copies from a transaction's cache into the binlog (ANNOTATE_ROWS,
    /// TABLE_MAP, rows events; the GTID before them and the XID after them keep theirs), so
    /// such an event starts where the one before it ended. Events the sender makes up
    /// (`LOG_EVENT_ARTIFICIAL_F`) and a FORMAT_DESCRIPTION or ROTATE sent with `log_pos` 0
    /// have no place; they give `(0, 0)` and move nothing.
    fn place(&self, header: &BinlogEventHeader) -> (u64, u64) {
        let end = u64::from(header.log_pos());
        let size = u64::from(header.event_size());
        let made_up =
            header.flags_raw() & ARTIFICIAL != 0 || matches!(header.event_type_raw(), 4 | 15);
        if end == 0 && !made_up && self.end > 0 {
            (self.end, self.end + size)
        } else {
            (end.saturating_sub(size), end)
        }
    }

    /// [`Assembler::feed`] with the event's place given (a decompressed event).
    fn feed_at(
        &mut self,
        event: &Event,
        place: Option<(u64, u64)>,
    ) -> Result<Option<Chunk>, TxnError> {
        let header = event.header();
        let event_type = header.event_type_raw();
        let inner = header.log_pos() == 0 && self.payload.is_some();
        if !inner && event_type != 40 {
            self.check_payload_done()?;
        }
        let (start, end) = match &self.payload {
            Some(p) if inner => (p.start, p.end),
            _ => place.unwrap_or_else(|| self.place(&header)),
        };
        self.event_end = end;
        let here = BinlogPosition::new(&*self.file, start);
        let out = match event_type {
            4 => {
                if let Some((file, pos)) = rotate_target(event) {
                    self.file = Arc::from(file.as_str());
                    self.end = pos;
                }
                return Ok(None);
            }
            33 | 34 | 42 => {
                let gtid = event
                    .read_event::<GtidEvent>()
                    .ok()
                    .filter(|g| g.gno() > 0)
                    .map(|g| Gtid::mysql(g.sid(), g.tag().map(|t| t.as_str()), g.gno()));
                self.begin(start, gtid, false)?;
                None
            }
            mariadb::GTID_EVENT => {
                let parsed = mariadb::parse_gtid(header.server_id(), event.data());
                let standalone = parsed.as_ref().is_some_and(|g| g.standalone);
                let xa = parsed.as_ref().and_then(|g| g.prepared_xa.clone());
                self.begin(start, parsed.map(|g| g.gtid), standalone)?;
                // MariaDB's GTID event replaces BEGIN: what follows is inside the transaction.
                if let Some(txn) = self.txn.as_mut() {
                    txn.begun = !standalone;
                    txn.xa = xa.map(|x| Arc::from(x.as_str()));
                }
                None
            }
            15 => {
                self.on_format_description(header.timestamp())?;
                None
            }
            2 => self.on_query(event, start, &here)?,
            16 => self.commit(event, None),
            XA_PREPARE_EVENT => {
                let (one_phase, xid) =
                    parse_xa_prepare(event.data()).ok_or_else(|| TxnError::Malformed {
                        position: here.clone(),
                        reason: "XA_PREPARE event too short".into(),
                    })?;
                if let Some(txn) = self.txn.as_mut() {
                    txn.xa.get_or_insert_with(|| Arc::from(xid.as_str()));
                }
                // One phase: prepared and committed at once; else the rows wait for the decision.
                self.commit(event, one_phase.then_some(true))
            }
            19 => {
                if let Ok(tme) = event.read_event::<TableMapEvent<'_>>() {
                    self.on_table_map(tme.into_owned());
                }
                None
            }
            23..=25 | 30..=32 | 39 => self.on_rows(event, &here)?,
            40 => {
                self.check_payload_done()?;
                let size = event
                    .read_event::<TransactionPayloadEvent<'_>>()
                    .map_err(|e| TxnError::Malformed {
                        position: here.clone(),
                        reason: e.to_string(),
                    })?
                    .uncompressed_size();
                self.payload = Some(Payload {
                    start,
                    end,
                    offset: 0,
                    size,
                });
                None
            }
            other if carries_no_rows(other, header.flags_raw()) => None,
            other => {
                return Err(TxnError::UnknownEvent {
                    event_type: other,
                    name: event_name(other),
                    position: here,
                })
            }
        };
        if end > 0 && !inner {
            self.end = end;
        }
        if let Some(p) = self.payload.as_mut().filter(|_| inner) {
            p.offset += u64::from(header.event_size());
        }
        Ok(out)
    }

    /// Fails if the previous payload's inner events stopped before its commit.
    fn check_payload_done(&mut self) -> Result<(), TxnError> {
        match self.payload.take() {
            None => Ok(()),
            Some(p) => Err(TxnError::Malformed {
                position: BinlogPosition::new(&*self.file, p.start),
                reason: format!(
                    "the compressed transaction payload yielded {} of its {} bytes of events and no commit (it did not decompress)",
                    p.offset, p.size
                ),
            }),
        }
    }

    fn begin(&mut self, start: u64, gtid: Option<Gtid>, standalone: bool) -> Result<(), TxnError> {
        let gtid_text = gtid.as_ref().map(|g| Arc::from(g.to_string().as_str()));
        let mut txn = Txn {
            file: self.file.clone(),
            start,
            gtid,
            gtid_text,
            begun: false,
            standalone,
            row_events: 0,
            thread_id: None,
            skip: 0,
            xa: None,
            savepoints: Vec::new(),
            emitted_transactional: false,
        };
        if let Some(cp) = self.resume.take() {
            let same = match (&cp.resume, &cp.in_flight) {
                (ResumePoint::Gtid(_), Some(expected)) => txn.gtid.as_ref() == Some(expected),
                _ => cp.position.file == *txn.file && cp.position.pos == start,
            };
            if !same {
                let expected = cp
                    .in_flight
                    .as_ref()
                    .map(|g| format!("with GTID {g}"))
                    .unwrap_or_else(|| format!("at {}", cp.position));
                let found = txn
                    .gtid_text
                    .as_ref()
                    .map(|g| format!("the transaction with GTID {g}"))
                    .unwrap_or_else(|| format!("a transaction at {}:{start}", txn.file));
                return Err(TxnError::ResumeMismatch {
                    expected,
                    found,
                    rows_done: cp.rows_done,
                });
            }
            txn.skip = cp.rows_done;
        }
        self.txn = Some(txn);
        Ok(())
    }

    fn on_query(
        &mut self,
        event: &Event,
        start: u64,
        here: &BinlogPosition,
    ) -> Result<Option<Chunk>, TxnError> {
        let Ok(query) = event.read_event::<QueryEvent<'_>>() else {
            return Ok(None);
        };
        let text = query.query_raw();
        let word = first_word(text);
        if word.eq_ignore_ascii_case("XA") {
            return self.on_xa_query(text, start, query.thread_id(), event);
        }
        if word.eq_ignore_ascii_case("BEGIN") {
            if self.txn.is_none() {
                self.begin(start, None, false)?;
            }
            if let Some(txn) = self.txn.as_mut() {
                txn.begun = true;
                txn.thread_id = Some(query.thread_id());
            }
            return Ok(None);
        }
        if word.eq_ignore_ascii_case("COMMIT") {
            return Ok(self.commit(event, None));
        }
        if word.eq_ignore_ascii_case("ROLLBACK") {
            return self.on_rollback(text, event, here);
        }
        if word.eq_ignore_ascii_case("SAVEPOINT") {
            if let Some(txn) = self.txn.as_mut() {
                let name = savepoint_name(text, 1);
                txn.savepoints.push((name, Some(self.pending.len())));
            }
            return Ok(None);
        }
        let in_begun_txn = self.txn.as_ref().is_some_and(|t| t.begun && !t.standalone);
        let dml = [
            "INSERT", "UPDATE", "DELETE", "REPLACE", "LOAD", "WITH", "CALL",
        ]
        .iter()
        .any(|k| word.eq_ignore_ascii_case(k));
        if in_begun_txn && dml && !self.filter.statement_may_touch(&query.schema(), text) {
            // A statement on schemas this stream does not index cannot affect its data.
            return Ok(None);
        }
        if in_begun_txn && dml {
            return Err(TxnError::Statement {
                position: here.clone(),
                kind: word.to_ascii_uppercase(),
            });
        }
        if in_begun_txn {
            // e.g. SAVEPOINT, or a CREATE TEMPORARY TABLE inside a transaction: no row data.
            return Ok(None);
        }
        // A DDL statement is a transaction of its own.
        if self.txn.is_none() {
            self.begin(start, None, true)?;
        }
        let ddl = self.ddl_markers(&query.schema(), text, here, event);
        let mut chunk = self.commit(event, None);
        if let Some(chunk) = chunk.as_mut() {
            chunk.ddl = ddl;
        }
        Ok(chunk)
    }

    /// The markers of a DDL statement on kept tables. A table DDL whose names cannot be read is
    /// logged (position and first word, never the text) and passed over: it carries no rows.
    fn ddl_markers(
        &self,
        default_schema: &str,
        text: &[u8],
        here: &BinlogPosition,
        event: &Event,
    ) -> Vec<DdlRecord> {
        let statement = String::from_utf8_lossy(text);
        let tables = match ddl_names(&statement) {
            Parsed::Tables(tables) => tables,
            Parsed::NotTableDdl | Parsed::Temporary => return Vec::new(),
            Parsed::Unreadable => {
                tracing::warn!(
                    binlog_file = %here.file,
                    pos = here.pos,
                    statement = first_word(text),
                    "cannot read the table names of a DDL statement: no ddl_events marker for it"
                );
                return Vec::new();
            }
        };
        let qualify = |name: &crate::source::ddl_names::Name| {
            name.schema.as_deref().unwrap_or(default_schema).to_string()
        };
        let statement: Arc<str> = Arc::from(statement.as_ref());
        let header = event.header();
        let gtid = self.txn.as_ref().and_then(|t| t.gtid_text.clone());
        let mut out = Vec::new();
        for t in tables {
            let schema = qualify(&t.name);
            if schema.is_empty() {
                tracing::warn!(
                    binlog_file = %here.file,
                    pos = here.pos,
                    table = %t.name.table,
                    "a DDL statement names a table without a schema and has no default schema: no ddl_events marker for it"
                );
                continue;
            }
            let kept = match t.kind {
                DdlKind::DropSchema => self.filter.may_keep_schema(&schema),
                _ => self.filter.matches(&schema, &t.name.table),
            };
            if !kept {
                continue;
            }
            let other = t
                .other
                .as_ref()
                .map(|o| format!("{}.{}", qualify(o), o.table));
            out.push(DdlRecord {
                binlog_file: self.file.clone(),
                start_pos: here.pos,
                end_pos: self.event_end,
                timestamp: header.timestamp(),
                gtid: gtid.clone(),
                kind: t.kind,
                schema,
                table: t.name.table,
                renamed_to: other.clone().filter(|_| t.kind == DdlKind::Rename),
                renamed_from: other.filter(|_| t.kind == DdlKind::RenameIn),
                statement: statement.clone(),
            });
        }
        out
    }

    /// A group is logged with ROLLBACK (or ROLLBACK TO SAVEPOINT) only when it changed a
    /// non-transactional table (MyISAM, Aria, MEMORY…), whose changes persist; the changes of
    /// transactional tables in the rolled-back part never happened. So the first are kept and
    /// the second dropped. If a chunk of the transaction with transactional changes was already
    /// handed on (a group larger than a chunk), those cannot be unwritten: refuse loudly.
    fn on_rollback(
        &mut self,
        text: &[u8],
        event: &Event,
        here: &BinlogPosition,
    ) -> Result<Option<Chunk>, TxnError> {
        let lower = String::from_utf8_lossy(text).to_ascii_lowercase();
        let words: Vec<&str> = lower.split_whitespace().collect();
        let to = words.iter().position(|w| *w == "to");
        let mark = match to {
            None => Some(0),
            Some(at) => {
                let skip = if words.get(at + 1) == Some(&"savepoint") {
                    at + 2
                } else {
                    at + 1
                };
                let name = savepoint_name(text, skip);
                let Some(txn) = self.txn.as_ref() else {
                    return Ok(None);
                };
                match txn.savepoints.iter().rev().find(|(n, _)| *n == name) {
                    Some((_, mark)) => *mark,
                    None => {
                        return Err(TxnError::Malformed {
                            position: here.clone(),
                            reason: format!("ROLLBACK TO SAVEPOINT {name} without that SAVEPOINT in the transaction"),
                        })
                    }
                }
            }
        };
        let emitted = self.txn.as_ref().is_some_and(|t| t.emitted_transactional);
        let Some(mark) = mark.filter(|_| to.is_some() || !emitted) else {
            return Err(TxnError::RolledBackAfterWrite {
                position: here.clone(),
            });
        };
        let (mut i, mut kept_bytes) = (0, 0);
        let keep = std::mem::take(&mut self.pending_kept_on_rollback);
        self.pending.retain(|c| {
            let k = i < mark || keep[i];
            i += 1;
            if k {
                kept_bytes += c.text_len();
            }
            k
        });
        self.pending_kept_on_rollback = keep
            .into_iter()
            .enumerate()
            .filter(|&(i, k)| i < mark || k)
            .map(|(_, k)| k)
            .collect();
        self.pending_bytes = kept_bytes;
        if to.is_some() {
            // The savepoints after this one are gone; the transaction goes on.
            if let Some(txn) = self.txn.as_mut() {
                let len = self.pending.len();
                for (_, m) in txn.savepoints.iter_mut() {
                    if let Some(m) = m.as_mut() {
                        *m = (*m).min(len);
                    }
                }
            }
            return Ok(None);
        }
        Ok(self.commit(event, None))
    }

    /// `XA START` opens an XA transaction (MySQL logs it; MariaDB puts the XID in its GTID
    /// event instead), `XA END` is inside it, and `XA COMMIT`/`XA ROLLBACK` of a prepared XA
    /// are a transaction of their own, possibly long after the prepare.
    fn on_xa_query(
        &mut self,
        text: &[u8],
        start: u64,
        thread_id: u32,
        event: &Event,
    ) -> Result<Option<Chunk>, TxnError> {
        let text = String::from_utf8_lossy(text);
        let mut words = text.trim_start().splitn(3, char::is_whitespace);
        let (_, verb, rest) = (words.next(), words.next().unwrap_or(""), words.next());
        let xid = rest.map(|r| Arc::from(r.trim()));
        if verb.eq_ignore_ascii_case("START") || verb.eq_ignore_ascii_case("BEGIN") {
            if self.txn.is_none() {
                self.begin(start, None, false)?;
            }
            if let Some(txn) = self.txn.as_mut() {
                txn.begun = true;
                txn.thread_id = Some(thread_id);
                txn.xa = xid;
            }
            return Ok(None);
        }
        let decision = if verb.eq_ignore_ascii_case("COMMIT") {
            Some(true)
        } else if verb.eq_ignore_ascii_case("ROLLBACK") {
            Some(false)
        } else {
            // XA END (inside the transaction), and nothing else is logged.
            return Ok(None);
        };
        if self.txn.as_ref().is_some_and(|t| t.begun && !t.standalone) {
            return Ok(None);
        }
        if self.txn.is_none() {
            self.begin(start, None, true)?;
        }
        if let Some(txn) = self.txn.as_mut() {
            txn.xa = xid;
        }
        Ok(self.commit(event, decision))
    }

    /// A FORMAT_DESCRIPTION opens every binlog file; its timestamp is the file's creation time.
    fn on_format_description(&mut self, created: u32) -> Result<(), TxnError> {
        if let Some((file, expected)) = self.verify_created.take() {
            if *self.file == file && created != expected {
                return Err(TxnError::DifferentHistory {
                    file,
                    expected,
                    found: created,
                });
            }
        }
        self.file_created = created;
        Ok(())
    }

    fn on_table_map(&mut self, tme: TableMapEvent<'static>) {
        let id = tme.table_id();
        if self.tables.get(&id).is_some_and(|t| t.tme == tme) {
            return;
        }
        let schema: Arc<str> = Arc::from(&*tme.database_name());
        let table: Arc<str> = Arc::from(&*tme.table_name());
        let kept = self.filter.matches(&schema, &table);
        self.tables.insert(
            id,
            CachedTable {
                tme,
                schema,
                table,
                kept,
                spec: None,
            },
        );
    }

    fn on_rows(&mut self, event: &Event, here: &BinlogPosition) -> Result<Option<Chunk>, TxnError> {
        let rows = match event.read_data() {
            Ok(Some(mysql_common::binlog::events::EventData::RowsEvent(r))) => r,
            Ok(_) => return Ok(None),
            Err(e) => {
                return Err(TxnError::Malformed {
                    position: here.clone(),
                    reason: e.to_string(),
                })
            }
        };
        let table_id = rows.table_id();
        let cached = self
            .tables
            .get_mut(&table_id)
            .ok_or_else(|| TxnError::UnknownTable {
                position: here.clone(),
                table_id,
            })?;
        if cached.kept && cached.spec.is_none() {
            return Err(TxnError::NeedColumns {
                table_id,
                schema: cached.schema.to_string(),
                table: cached.table.to_string(),
            });
        }
        let Some(txn) = self.txn.as_mut() else {
            // Rows outside any transaction cannot be checkpointed; treat as a one-event group.
            return Err(TxnError::UnknownTable {
                position: here.clone(),
                table_id,
            });
        };
        txn.row_events += 1;
        if txn.row_events <= txn.skip || !cached.kept {
            return Ok(None);
        }
        let (spec, version, policed) = cached.spec.clone().expect("spec resolved above");
        let mut pairs = encoding::decode_rows(&spec, &rows).map_err(|source| TxnError::Decode {
            position: here.clone(),
            source: Box::new(withhold(source, &spec, policed.as_deref())),
        })?;
        // The policy is applied before anything (key, changed columns, JSON, errors) reads an
        // image; from here on the table is the policed one.
        let spec = match policed {
            Some(p) => {
                for pair in &mut pairs {
                    pair.before = pair.before.take().map(|v| p.apply(v));
                    pair.after = pair.after.take().map(|v| p.apply(v));
                    pair.absent = p.apply_flags(std::mem::take(&mut pair.absent));
                }
                p.spec.clone()
            }
            None => spec,
        };
        let policy_version = self.policy_version;
        let header = event.header();
        // Inside a compressed payload: the payload's place, rows numbered from the event's
        // offset in the decompressed payload (see the module documentation).
        let (end, first_row) = match &self.payload {
            Some(p) if header.log_pos() == 0 => (p.end, p.offset),
            _ => (self.event_end, 0),
        };
        let last_row = first_row + pairs.len() as u64;
        if u32::try_from(last_row).is_err() {
            return Err(TxnError::Malformed {
                position: here.clone(),
                reason: format!("row number {last_row} inside the compressed transaction does not fit row_in_event"),
            });
        }
        for (i, pair) in pairs.into_iter().enumerate() {
            let change = build_change(
                &spec,
                version,
                &rows,
                pair,
                ChangeMeta {
                    txn,
                    schema: &cached.schema,
                    table: &cached.table,
                    start: here.pos,
                    end,
                    row: (first_row + i as u64) as u32,
                    timestamp: header.timestamp(),
                    policy_version,
                },
            );
            self.pending_bytes += change.text_len();
            self.pending.push(change);
            self.pending_kept_on_rollback.push(spec.non_transactional);
        }
        self.last_time = Some(header.timestamp());
        if self.pending.len() >= self.chunk_rows || self.pending_bytes >= CHUNK_BYTES {
            return Ok(Some(self.partial_chunk()));
        }
        Ok(None)
    }

    /// A chunk in the middle of a transaction: resume at its start, minus the events done.
    fn partial_chunk(&mut self) -> Chunk {
        let txn = self
            .txn
            .as_mut()
            .expect("partial chunk inside a transaction");
        txn.emitted_transactional |= self.pending_kept_on_rollback.iter().any(|k| !k);
        for (_, mark) in txn.savepoints.iter_mut() {
            *mark = None;
        }
        self.pending_kept_on_rollback.clear();
        self.pending_bytes = 0;
        let txn = &*txn;
        let position = BinlogPosition::new(&*txn.file, txn.start);
        let resume = match &self.executed {
            Some(set) => ResumePoint::Gtid(set.clone()),
            None => ResumePoint::Position(position.clone()),
        };
        Chunk {
            changes: std::mem::take(&mut self.pending),
            checkpoint: Checkpoint {
                resume,
                position,
                rows_done: txn.row_events,
                in_flight: txn.gtid.clone(),
                binlog_created: self.file_created,
            },
            last_event_time: self.last_time,
            xa: txn.xa.clone().map(|xid| XaPart {
                xid,
                decision: None,
            }),
            ddl: Vec::new(),
        }
    }

    /// Ends the transaction; `decision` is that of an XA (see [`XaPart::decision`]).
    fn commit(&mut self, event: &Event, decision: Option<bool>) -> Option<Chunk> {
        let header = event.header();
        let txn = self.txn.take();
        self.pending_kept_on_rollback.clear();
        self.pending_bytes = 0;
        // Inside a compressed payload the commit has no offset: the payload's end is it.
        let commit_pos = match self.payload.take() {
            Some(p) if header.log_pos() == 0 => p.end,
            _ => self.event_end,
        };
        if let (Some(set), Some(gtid)) = (
            self.executed.as_mut(),
            txn.as_ref().and_then(|t| t.gtid.as_ref()),
        ) {
            // An empty starting set has no flavor yet: the first GTID decides it.
            if !set.add(gtid) && set.is_empty() {
                *set = GtidSet::empty_for(gtid);
                set.add(gtid);
            }
        }
        let position = BinlogPosition::new(&*self.file, commit_pos);
        let resume = match &self.executed {
            Some(set) => ResumePoint::Gtid(set.clone()),
            None => ResumePoint::Position(position.clone()),
        };
        self.last_time = Some(header.timestamp());
        Some(Chunk {
            changes: std::mem::take(&mut self.pending),
            checkpoint: Checkpoint {
                resume,
                position,
                rows_done: 0,
                in_flight: None,
                binlog_created: self.file_created,
            },
            last_event_time: self.last_time,
            xa: txn.and_then(|t| t.xa).map(|xid| XaPart { xid, decision }),
            ddl: Vec::new(),
        })
    }
}

/// A decode error about a column under the privacy policy without its detail: the detail of
/// an invalid value (a partial JSON update's path, say) may quote the data.
fn withhold(
    e: encoding::DecodeError,
    spec: &TableSpec,
    policed: Option<&Policed>,
) -> encoding::DecodeError {
    match (e, policed) {
        (
            encoding::DecodeError::InvalidValue {
                schema,
                table,
                column,
                row,
                ..
            },
            Some(p),
        ) if spec
            .columns
            .iter()
            .zip(&p.actions)
            .any(|(c, a)| c.name == column && *a != ColumnAction::Keep) =>
        {
            encoding::DecodeError::InvalidValue {
                schema,
                table,
                column,
                row,
                detail: "the detail is withheld: the column is under the capture policy".into(),
            }
        }
        (e, _) => e,
    }
}

struct ChangeMeta<'a> {
    txn: &'a Txn,
    schema: &'a Arc<str>,
    table: &'a Arc<str>,
    start: u64,
    end: u64,
    row: u32,
    timestamp: u32,
    policy_version: u32,
}

fn build_change(
    spec: &TableSpec,
    version: u32,
    rows: &RowsEventData<'_>,
    pair: encoding::RowPair,
    m: ChangeMeta<'_>,
) -> Change {
    let kind = match rows {
        RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => ChangeKind::Insert,
        RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => {
            ChangeKind::Delete
        }
        _ => ChangeKind::Update,
    };
    let key_source = pair.after.as_ref().or(pair.before.as_ref());
    let pk_values = key_source
        .map(|v| encoding::pk_values(spec, v))
        .unwrap_or_default();
    let changed_columns = match (&pair.before, &pair.after) {
        (Some(b), Some(a)) => Some(encoding::changed_columns_json(spec, b, a)),
        _ => None,
    };
    let pk_before = match (&pair.before, &pair.after) {
        (Some(b), Some(a)) => encoding::changed_key(spec, b, a),
        _ => None,
    };
    let object = |v: &Vec<serde_json::Value>| encoding::image_json(spec, v, &pair.absent);
    Change {
        binlog_file: m.txn.file.clone(),
        start_pos: m.start,
        end_pos: m.end,
        row_in_event: m.row,
        timestamp: m.timestamp,
        gtid: m.txn.gtid_text.clone(),
        connection_id: m.txn.thread_id,
        schema: m.schema.clone(),
        table: m.table.clone(),
        kind,
        pk_values,
        pk_before,
        changed_columns,
        row_before: pair.before.as_ref().map(object),
        row_after: pair.after.as_ref().map(object),
        schema_version: version,
        policy_version: m.policy_version,
    }
}

/// The file and offset a ROTATE event points to.
///
/// The fake ROTATE that opens a stream arrives before any FORMAT_DESCRIPTION, so the parser
/// cannot know whether it ends in a CRC32; MariaDB sends one and MySQL does not. The trailing
/// four bytes are dropped exactly when they are the CRC32 of the rest of the event.
fn rotate_target(event: &Event) -> Option<(String, u64)> {
    use mysql_common::proto::MySerialize;
    let data = event.data();
    let pos = u64::from_le_bytes(data.get(..8)?.try_into().ok()?);
    let mut name = &data[8..];
    if data.len() >= 12 {
        let (body, crc) = data.split_at(data.len() - 4);
        let mut header = Vec::with_capacity(19);
        event.header().serialize(&mut header);
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&header);
        hasher.update(body);
        if hasher.finalize().to_le_bytes() == crc {
            name = &body[8..];
        }
    }
    Some((String::from_utf8_lossy(name).into_owned(), pos))
}

/// The statement's first word, for classification (never logged with the rest of the text).
/// Bytes of row text at which a chunk is cut even before `chunk_rows` rows (at a rows-event
/// boundary). With the channel's 16 chunks and the writer's batch (flushed at 4 MiB), memory
/// stays near 16 × (1 MiB + one row) plus 4 MiB however large the rows are; `--batch-size`
/// alone bounded rows, and 16 chunks of 1,000 multi-megabyte rows were gigabytes. Ordinary
/// rows (hundreds of bytes) fill `chunk_rows` long before this. Measured (tests/it/huge.rs, 64
/// rows of 2 MiB in one transaction): peak RSS 693 MiB before, 264 MiB with 4 MiB chunks,
/// 180 MiB with 1 MiB.
pub const CHUNK_BYTES: usize = 1 << 20;

/// The savepoint name in a SAVEPOINT / ROLLBACK TO statement: the word at `index` (counted
/// after the first), backticks removed, lowercase (savepoint names are case-insensitive).
fn savepoint_name(text: &[u8], index: usize) -> String {
    let text = String::from_utf8_lossy(text);
    text.split_whitespace()
        .nth(index)
        .unwrap_or("")
        .trim_end_matches(';')
        .replace('`', "")
        .to_lowercase()
}

/// XA_PREPARE_LOG_EVENT (MySQL and MariaDB): ends the prepare of an XA transaction.
const XA_PREPARE_EVENT: u8 = 38;

/// `LOG_EVENT_IGNORABLE_F`: the server marks an event that a reader may skip safely.
const LOG_EVENT_IGNORABLE_F: u16 = 0x80;

/// The one rule for events the assembler has no arm for: `true` only for types known to carry
/// no row change (and for events the server itself flags ignorable). Anything else, such as
/// statement-based LOAD DATA, an INCIDENT (the source lost events) or a type newer than this
/// code, stops the stream with [`TxnError::UnknownEvent`] instead of being skipped.
fn carries_no_rows(event_type: u8, flags: u16) -> bool {
    flags & LOG_EVENT_IGNORABLE_F != 0
        || matches!(
            event_type,
            3 // STOP
            | 5 | 13 | 14 // INTVAR, RAND, USER_VAR: context of a statement-logged QUERY
            | 27 | 41 // HEARTBEAT, HEARTBEAT_V2
            | 28 | 29 // IGNORABLE, ROWS_QUERY
            | 35 | 36 | 37 // PREVIOUS_GTIDS, TRANSACTION_CONTEXT, VIEW_CHANGE
        )
        || matches!(
            event_type,
            mariadb::ANNOTATE_ROWS_EVENT
                | mariadb::BINLOG_CHECKPOINT_EVENT
                | mariadb::GTID_LIST_EVENT
                | mariadb::START_ENCRYPTION_EVENT
        )
}

/// A name for an event type in error messages.
fn event_name(event_type: u8) -> &'static str {
    match event_type {
        6..=12 | 17 | 18 => "statement-based LOAD DATA",
        20..=22 => "pre-GA rows event",
        26 => "INCIDENT: the source recorded that changes may be missing from its binlog",
        _ => "unknown to this version of bintrail",
    }
}

/// `(one_phase, xid)` of an XA_PREPARE event body: one_phase u8, formatID u32, gtrid_length
/// u32, bqual_length u32 (little-endian), then gtrid and bqual. The XID is spelled as the
/// server spells it in `XA COMMIT` queries.
fn parse_xa_prepare(body: &[u8]) -> Option<(bool, String)> {
    let u32_at = |i: usize| -> Option<u32> {
        Some(u32::from_le_bytes(body.get(i..i + 4)?.try_into().ok()?))
    };
    let one_phase = *body.first()? != 0;
    let format = u32_at(1)?;
    let gtrid = usize::try_from(u32_at(5)?).ok()?;
    let bqual = usize::try_from(u32_at(9)?).ok()?;
    let data = body.get(13..13 + gtrid.checked_add(bqual)?)?;
    Some((one_phase, xid_text(format, &data[..gtrid], &data[gtrid..])))
}

/// `X'<gtrid hex>',X'<bqual hex>',<formatID>`, lowercase hex, as MySQL and MariaDB log it.
pub fn xid_text(format: u32, gtrid: &[u8], bqual: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::from("X'");
    for b in gtrid {
        let _ = write!(out, "{b:02x}");
    }
    out.push_str("',X'");
    for b in bqual {
        let _ = write!(out, "{b:02x}");
    }
    let _ = write!(out, "',{format}");
    out
}

/// The statement's first keyword: leading space, parentheses and comments skipped (the text of
/// a `/*!NNNNN … */` versioned comment is code, so it counts). Bytes, not characters, are
/// looked at, so a multi-byte character anywhere before the keyword cannot hide it.
fn first_word(text: &[u8]) -> &str {
    let mut t = text;
    loop {
        let skip = t
            .iter()
            .position(|&b| !(b.is_ascii_whitespace() || b == b'('))
            .unwrap_or(t.len());
        t = &t[skip..];
        if let Some(rest) = t.strip_prefix(b"/*!") {
            let digits = rest
                .iter()
                .position(|b| !b.is_ascii_digit())
                .unwrap_or(rest.len());
            t = &rest[digits..];
        } else if let Some(rest) = t.strip_prefix(b"/*") {
            t = rest
                .windows(2)
                .position(|w| w == b"*/")
                .map_or(&[][..], |i| &rest[i + 2..]);
        } else if t.starts_with(b"--") || t.starts_with(b"#") {
            t = t
                .iter()
                .position(|&b| b == b'\n')
                .map_or(&[][..], |i| &t[i + 1..]);
        } else {
            break;
        }
    }
    let end = t
        .iter()
        .position(|b| !b.is_ascii_alphabetic())
        .unwrap_or(t.len());
    // ASCII letters only: always UTF-8.
    std::str::from_utf8(&t[..end]).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_word_ignores_leading_space_and_parentheses() {
        assert_eq!(first_word(b"  BEGIN"), "BEGIN");
        assert_eq!(first_word(b"(insert into t values (1))"), "insert");
        assert_eq!(first_word(b"COMMIT /* x */"), "COMMIT");
    }

    #[test]
    fn first_word_sees_through_comments_and_cut_characters() {
        assert_eq!(first_word(b"/* app=shop */ UPDATE t SET a = 1"), "UPDATE");
        assert_eq!(first_word(b"-- note\n# more\n DELETE FROM t"), "DELETE");
        assert_eq!(
            first_word(b"/*!40000 INSERT INTO t VALUES (1) */"),
            "INSERT"
        );
        assert_eq!(first_word(b"WITH x AS (SELECT 1) UPDATE t"), "WITH");
        let long = "/* ".to_string() + &"é".repeat(40) + " */ INSERT";
        assert_eq!(
            first_word(long.as_bytes()),
            "INSERT",
            "a keyword past byte 64"
        );
        let mut long = "INSERT /*".to_string() + &"é".repeat(40);
        long.push_str("*/");
        assert_eq!(first_word(long.as_bytes()), "INSERT");
    }

    #[test]
    fn xa_prepare_bodies_name_their_xid() {
        let body = [
            0, 7, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 0x78, 0x27, 0x79, 0x62, 0x71,
        ];
        assert_eq!(
            parse_xa_prepare(&body),
            Some((false, "X'782779',X'6271',7".to_string()))
        );
        assert_eq!(parse_xa_prepare(&body[..15]), None);
    }

    #[test]
    fn only_events_known_to_carry_no_rows_are_passed_over() {
        for t in [3, 27, 29, 35, 160, 161, 163] {
            assert!(carries_no_rows(t, 0), "{t}");
        }
        for t in [0, 6, 20, 26, 172, 200] {
            assert!(!carries_no_rows(t, 0), "{t}");
        }
        assert!(carries_no_rows(200, LOG_EVENT_IGNORABLE_F));
    }
}

//! A row change: born in the source's binlog, decoded once, written as one row of
//! `binlog_events`.
//!
//! Values arrive already encoded (`encoding.rs` owns how each type is stored) and serialized to
//! JSON text, so the writer only has to quote them. The identity of a change,
//! `(stream, binlog file, rows-event start position, row index inside the event)`, is
//! deterministic: a replay after a crash produces the same identity, which the index keeps unique.

use std::sync::Arc;

use crate::position::BinlogPosition;

/// Insert, update or delete, stored as 1, 2, 3 in `binlog_events.event_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// A WRITE_ROWS row.
    Insert = 1,
    /// An UPDATE_ROWS before/after pair.
    Update = 2,
    /// A DELETE_ROWS row.
    Delete = 3,
}

impl ChangeKind {
    /// The stored `event_type` code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The name used on the command line and in output.
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Insert => "insert",
            ChangeKind::Update => "update",
            ChangeKind::Delete => "delete",
        }
    }
}

/// One decoded, kept row change.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// Binlog file of the rows event.
    pub binlog_file: Arc<str>,
    /// Start offset of the rows event.
    pub start_pos: u64,
    /// End offset of the rows event (the next event's offset).
    pub end_pos: u64,
    /// Index of this row inside its rows event (identity and replay order).
    pub row_in_event: u32,
    /// Commit-time timestamp of the event (seconds since the epoch, UTC).
    pub timestamp: u32,
    /// GTID of the transaction, when the source has GTIDs.
    pub gtid: Option<Arc<str>>,
    /// Session (thread) id that made the change, when the binlog carries it.
    pub connection_id: Option<u32>,
    /// Schema name.
    pub schema: Arc<str>,
    /// Table name.
    pub table: Arc<str>,
    /// Insert, update or delete.
    pub kind: ChangeKind,
    /// Primary key values in key order, joined by `|` (an update: of its after image).
    pub pk_values: String,
    /// An update of a keyed table that changed the key: the key of its before image (it is
    /// written to `key_changes` so the row can be followed from its old key). `None` for every
    /// other change, and for keyless tables, whose digest key changes with every update.
    pub pk_before: Option<String>,
    /// JSON array of the columns an update changed; `None` for inserts and deletes.
    pub changed_columns: Option<String>,
    /// JSON object of the row before (updates, deletes).
    pub row_before: Option<String>,
    /// JSON object of the row after (inserts, updates).
    pub row_after: Option<String>,
    /// Fingerprint of the table's column list at the time of the change.
    pub schema_version: u32,
    /// Fingerprint of the capture policy the images were policed by (`policy::Policy`); 0: none.
    pub policy_version: u32,
}

impl Change {
    /// Bytes of its text values (names, key, images): most of what its INSERT tuple weighs.
    pub fn text_len(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        self.binlog_file.len()
            + self.gtid.as_ref().map_or(0, |g| g.len())
            + self.schema.len()
            + self.table.len()
            + self.pk_values.len()
            + self.pk_before.as_ref().map_or(0, String::len)
            + opt(&self.changed_columns)
            + opt(&self.row_before)
            + opt(&self.row_after)
    }

    /// The rows event's position.
    pub fn position(&self) -> BinlogPosition {
        BinlogPosition::new(&*self.binlog_file, self.start_pos)
    }
}

/// What a chunk of an XA transaction asks of the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XaPart {
    /// The XID as the binlog spells it: `X'<gtrid hex>',X'<bqual hex>',<formatID>`.
    pub xid: Arc<str>,
    /// `None`: the changes are prepared, not committed (they wait in `xa_prepared`).
    /// `Some(true)`: the XA committed: its prepared changes become committed changes.
    /// `Some(false)`: it rolled back: its prepared changes are discarded.
    pub decision: Option<bool>,
}

/// What a DDL statement did to one table, as recorded in `ddl_events.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DdlKind {
    /// `TRUNCATE [TABLE] t`: every row is gone, and no row change says so.
    Truncate,
    /// `DROP TABLE t`.
    Drop,
    /// The table got another name (`RENAME TABLE t TO u`, `ALTER TABLE t RENAME u`); the marker
    /// is under the old name.
    Rename,
    /// Another table was renamed to this name (the marker under the new name of a rename).
    RenameIn,
    /// `ALTER TABLE t …` (also `CREATE INDEX … ON t`, `DROP INDEX … ON t`).
    Alter,
    /// `CREATE TABLE t`.
    Create,
    /// `DROP DATABASE s`: the marker's table name is empty.
    DropSchema,
}

impl DdlKind {
    /// Every kind, in the order of the documentation.
    pub const ALL: [DdlKind; 7] = [
        DdlKind::Truncate,
        DdlKind::Drop,
        DdlKind::Rename,
        DdlKind::RenameIn,
        DdlKind::Alter,
        DdlKind::Create,
        DdlKind::DropSchema,
    ];

    /// The stored `kind` value.
    pub fn name(&self) -> &'static str {
        match self {
            DdlKind::Truncate => "truncate",
            DdlKind::Drop => "drop",
            DdlKind::Rename => "rename",
            DdlKind::RenameIn => "rename_in",
            DdlKind::Alter => "alter",
            DdlKind::Create => "create",
            DdlKind::DropSchema => "drop_schema",
        }
    }

    /// The kind stored as `name`.
    pub fn from_name(name: &str) -> Option<DdlKind> {
        DdlKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the rows the table held before are gone from it, or it is no longer the same
    /// table under that name: changes before it cannot be undone into today's table.
    pub fn ends_table_history(&self) -> bool {
        !matches!(self, DdlKind::Alter | DdlKind::Create)
    }
}

/// One DDL statement's effect on one kept table, written as one row of `ddl_events` in the
/// same index transaction as the checkpoint that passes the statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DdlRecord {
    /// Binlog file of the QUERY event.
    pub binlog_file: Arc<str>,
    /// Start offset of the QUERY event (with the names, the marker's identity).
    pub start_pos: u64,
    /// Offset after it.
    pub end_pos: u64,
    /// Timestamp of the event (seconds since the epoch, UTC).
    pub timestamp: u32,
    /// GTID of the statement, when the source has GTIDs.
    pub gtid: Option<Arc<str>>,
    /// What it did.
    pub kind: DdlKind,
    /// Schema of the table (the statement's default schema when the name was unqualified).
    pub schema: String,
    /// Table name as logged; empty for [`DdlKind::DropSchema`].
    pub table: String,
    /// `schema.table` of the new name ([`DdlKind::Rename`]).
    pub renamed_to: Option<String>,
    /// `schema.table` of the old name ([`DdlKind::RenameIn`]).
    pub renamed_from: Option<String>,
    /// The statement as logged (shared by the markers of one statement).
    pub statement: Arc<str>,
}

impl DdlRecord {
    /// The event's position.
    pub fn position(&self) -> BinlogPosition {
        BinlogPosition::new(&*self.binlog_file, self.start_pos)
    }
}

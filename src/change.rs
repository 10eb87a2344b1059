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

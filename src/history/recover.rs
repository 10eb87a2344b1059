//! `bintrail recover`: plans the reversal of a selection of changes, refusing when the SQL could
//! not restore what was there.
//!
//! # When a reversal is refused
//! Undoing changes c1 … cn (oldest to newest in history order, `history::order`: commit order,
//! with the changes `index --fill-gap` wrote at their gap) by applying their inverses newest
//! first restores each row to its state before c1, provided that the index holds every change
//! made to those rows since c1, and that the statements mean today what they meant then. So
//! [`plan`] refuses:
//! * a selection that spans more than one stream (the same source indexed twice would be undone
//!   twice; different sources cannot be ordered against each other);
//! * a **gap**: a `stream_gaps` row of the stream detected at or after the earliest selected
//!   change (the skipped history may hold changes to these rows), unless `index --fill-gap`
//!   filled it and noted where it sits in history order (`history::order`); a gap filled
//!   without that (recorded or filled by an older bintrail) is refused too;
//! * **later changes**: changes to the same rows after the oldest selected one that the selection
//!   leaves out (they would be overwritten), unless the caller accepts that. A row is followed
//!   through updates that changed its key and, in a keyless table, through its images
//!   (`history::follow`);
//! * a **schema change** that makes the SQL wrong: a stored column that the live table no longer
//!   has, or a column whose name or binlog type differs from when the change was indexed (the
//!   change's `schema_version` matches neither the live table's fingerprint nor the fingerprint
//!   of the live columns it has). Columns added since are fine: inserts leave them to their
//!   defaults, and a note says so;
//! * a selection that takes only some of a transaction's changes (`history::transactions`):
//!   undoing half a transaction restores a state that never existed, unless the caller accepts
//!   that (`--allow-partial-transactions`, and the script notes which);
//! * a **TRUNCATE, DROP or RENAME** of a selected change's table recorded after the oldest
//!   selected change of that table (a `ddl_events` marker whose `last_event_id` names that
//!   change or one after it in history order, `history::order`): the rows are gone from the
//!   table, or the name is another table's now, so
//!   the SQL would not put back what was there. ALTER is the schema check's business;
//! * a selection larger than its `--limit` (a partial reversal is not what was asked for);
//! * a change the established tool indexed before the index was adopted (`index::adopt`,
//!   `stream_id` 0) whose value forms cannot be converted exactly through that tool's
//!   `schema_snapshots` (`history::established`: a TIMESTAMP in the indexing host's zone, a
//!   JSON document with numbers, a missing snapshot, …), or whose snapshot's column types differ
//!   from the live table's.
//!
//! # The established era
//! Old-era changes are converted to bintrail's value forms before anything else, so every
//! check and statement below sees one form. The old era and the stream that continues it (the
//! server id of the converted checkpoint, `established_stream_state`) are one history: a
//! selection may span both; its gaps, DDL markers and horizon are that stream's; later changes
//! are looked for in both eras, rows identified by the live key computed from their converted
//! images (the eras write `pk_values` in different column orders, and the old tool recorded no
//! key changes); transactions are counted within each era.

use std::collections::{BTreeMap, BTreeSet};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::ddl::{self, DdlMarker};
use super::established::{self, EraError, Reading, Snapshots};
use super::follow;
use super::host_zone::HostZone;
use super::live::LiveColumn;
use super::live::LiveTable;
use super::order::{Order, Pos};
use super::policed;
use super::query::{self, QueryError, StoredChange};
use super::recent::{self, Recent};
use super::reversal::{self, ReversalError};
use super::selection::Selection;
use super::transactions;
use crate::archive::read::Archive;
use crate::change::ChangeKind;
use crate::encoding::SqlType;
use crate::index::adopt::ValueForm;
use crate::index::gaps;
use crate::source::Flavor;

/// A planned reversal, newest change first.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    /// What was selected.
    pub selection: Selection,
    /// The changes, newest first.
    pub changes: Vec<StoredChange>,
    /// The statement undoing each change (`None`: nothing to undo).
    pub statements: Vec<Option<String>>,
    /// The live tables involved.
    pub tables: Vec<LiveTable>,
    /// Things the person applying the SQL should know.
    pub notes: Vec<String>,
}

/// What the caller accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Reverse even when the same rows changed again later, outside the selection.
    pub overwrite_later_changes: bool,
    /// Reverse even when the selection holds only some of a transaction's changes.
    pub allow_partial_transactions: bool,
    /// Restore deleted rows whose masked, truncated or excluded columns the index does not hold
    /// (those columns get their defaults; a note lists them).
    pub restore_with_defaults: bool,
    /// The zone the established tool's indexing host wrote TIMESTAMPs in
    /// (`--established-time-zone`); `None`: old-era TIMESTAMP values are refused.
    pub established_zone: Option<HostZone>,
}

/// Why a reversal was refused or could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// Reading the selection failed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// A lookup on the index failed.
    #[error("reading the index: {0}")]
    Index(#[source] mysql_async::Error),
    /// A lookup on the source failed.
    #[error("reading the source's information_schema: {0}")]
    Source(#[source] mysql_async::Error),
    /// A deleted row whose policed columns the index does not hold.
    #[error("change #{event_id} deleted a row of {table} whose columns {columns} were captured under a privacy policy: the index does not hold their values, so the row cannot be restored as it was; add --restore-with-defaults to insert it with those columns at their defaults")]
    PolicedRestore {
        /// The change.
        event_id: u64,
        /// schema.table.
        table: String,
        /// The columns and what was done to them.
        columns: String,
    },
    /// A key column under a privacy policy: the stored key does not find the live row.
    #[error("change #{event_id} on {table}: key column(s) {columns} were captured under a privacy policy, so the stored key cannot find the live row; reverse this change by hand")]
    PolicedKey {
        /// The change.
        event_id: u64,
        /// schema.table.
        table: String,
        /// The key columns and what was done to them.
        columns: String,
    },
    /// Nothing matched.
    #[error("no change in the index matches {0}")]
    Nothing(String),
    /// More matched than the limit.
    #[error("more than {limit} changes match {selection}; a partial reversal is not what was asked for: narrow the selection or raise --limit")]
    TooMany {
        /// The limit.
        limit: u64,
        /// The selection.
        selection: String,
    },
    /// Changes of several streams.
    #[error("the selection holds changes indexed by streams {streams:?}; pick the one that reads this source with --server-id")]
    MultipleStreams {
        /// The streams.
        streams: Vec<u32>,
    },
    /// History is missing.
    #[error(transparent)]
    Gap(Box<GapRefusal>),
    /// A filled gap whose changes cannot be placed in history order (`index::gaps`).
    #[error("stream {server_id}'s gap #{gap_id} (detected {detected_at}, after the oldest selected change, {oldest}) was filled by `index --fill-gap`, but it was recorded or filled by an older bintrail that did not note where the gap sits in the stream's order; the changes indexed for it cannot be ordered against those streamed after it, so undoing could apply them in the wrong order. Select only changes after the gap (--since '{detected_at}')")]
    UnorderedGap {
        /// The stream.
        server_id: u32,
        /// The gap.
        gap_id: u64,
        /// When it was detected, UTC.
        detected_at: String,
        /// Time of the oldest selected change.
        oldest: String,
    },
    /// The table was truncated, dropped or renamed after the oldest selected change to it.
    #[error("{} was recorded after change #{event_id} to {schema}.{table}, the oldest selected one: the rows it changed are gone from that table or the name now belongs to another table, so undoing would not restore what was there. Restore the rows from a backup taken before it, or select only changes after it (e.g. --since '{}')", marker.describe(), marker.event_timestamp)]
    TableDdl {
        /// The oldest selected change to the table.
        event_id: u64,
        /// Schema.
        schema: String,
        /// Table.
        table: String,
        /// The first such statement recorded.
        marker: Box<DdlMarker>,
    },
    /// The same rows changed again outside the selection.
    #[error("{count} later change(s) to the selected rows are not in the selection, e.g. {example}; undoing would overwrite them. Widen the selection to include them (e.g. drop --until), or pass --overwrite-later-changes")]
    LaterChanges {
        /// How many.
        count: usize,
        /// One of them, described.
        example: String,
    },
    /// The selection cuts a transaction in two.
    #[error("the selection holds only part of {example}{others}; undoing part of a transaction restores a state that never existed. Select whole transactions (e.g. --gtid with the transaction's GTID), or pass --allow-partial-transactions")]
    PartialTransaction {
        /// The first such transaction, described.
        example: String,
        /// `, and 2 other transaction(s) likewise`, or nothing.
        others: String,
    },
    /// The table no longer exists.
    #[error("table {schema}.{table} does not exist on the source (dropped or renamed since the changes); nothing to restore into")]
    TableMissing {
        /// Schema.
        schema: String,
        /// Table.
        table: String,
    },
    /// The stored image names a column the live table lacks.
    #[error("change #{event_id} to {schema}.{table} has column {column}, which the live table no longer has; the SQL would fail or lose that value")]
    ColumnMissing {
        /// The change.
        event_id: u64,
        /// Schema.
        schema: String,
        /// Table.
        table: String,
        /// The column.
        column: String,
    },
    /// A column was renamed, retyped or reordered since.
    #[error("{schema}.{table} changed since change #{event_id} was indexed (schema_version {stored}, live table {live}): a column was renamed, retyped or reordered, so values cannot be written with today's column types")]
    SchemaChanged {
        /// The change.
        event_id: u64,
        /// Schema.
        schema: String,
        /// Table.
        table: String,
        /// The change's schema_version.
        stored: u32,
        /// The live table's fingerprint.
        live: u32,
    },
    /// A change the established tool indexed whose value forms cannot be converted exactly.
    #[error("{0}; select only changes bintrail indexed (--server-id of the stream, or --since the adoption)")]
    Era(#[from] EraError),
    /// A column of an old-era change's snapshot has another type in the live table.
    #[error(transparent)]
    EraSchemaChanged(Box<EraSchemaChange>),
    /// A change cannot be written as SQL.
    #[error(transparent)]
    Reversal(#[from] ReversalError),
}

/// A column of an old-era change's snapshot that has another type in the live table.
#[derive(Debug, thiserror::Error)]
#[error("{schema}.{table} changed since change #{event_id} was indexed by the established tool: column {column} was {then} (its schema snapshot {snapshot}) and is {now} now, so its values cannot be written with today's type")]
pub struct EraSchemaChange {
    /// The change.
    pub event_id: u64,
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// The column.
    pub column: String,
    /// Its type in the snapshot.
    pub then: String,
    /// Its live DATA_TYPE.
    pub now: String,
    /// The snapshot id.
    pub snapshot: u32,
}

/// A gap in the stream's history after the oldest selected change.
#[derive(Debug, thiserror::Error)]
#[error("stream {server_id} skipped part of the source's history (gap #{gap_id}, detected {detected_at}: from {from} to {to}: {reason}), after the oldest selected change ({oldest}); changes to these rows may be missing from the index, so undoing would not restore them. Select only changes after the gap (--since '{detected_at}')")]
pub struct GapRefusal {
    /// The stream.
    pub server_id: u32,
    /// The gap row.
    pub gap_id: u64,
    /// When it was detected, UTC.
    pub detected_at: String,
    /// Checkpoint that could not be resumed.
    pub from: String,
    /// Where streaming continued.
    pub to: String,
    /// The source's words.
    pub reason: String,
    /// Time of the oldest selected change.
    pub oldest: String,
}

/// Selects the changes and plans their reversal, refusing as described in the module docs.
/// `source` is a connection to the source (or a server with the same tables) of `flavor`.
/// With `archive`, its changes count as if they were in the index: for the selection and for
/// every check of later changes and transactions.
pub async fn plan(
    index: &mut Conn,
    source: &mut Conn,
    flavor: Flavor,
    sel: &Selection,
    opts: Options,
    archive: Option<&Archive>,
) -> Result<Recovery, RecoverError> {
    let clock = std::time::Instant::now();
    let lap =
        |step: &str| tracing::debug!(step, ms = clock.elapsed().as_millis() as u64, "recover");
    let order = Order::load(index).await.map_err(RecoverError::Index)?;
    let page = query::fetch_in(index, sel, &order, archive).await?;
    lap("selected");
    if page.more {
        return Err(RecoverError::TooMany {
            limit: sel.limit,
            selection: sel.describe(),
        });
    }
    let mut changes = page.changes;
    changes.reverse();
    if changes.is_empty() {
        return Err(RecoverError::Nothing(sel.describe()));
    }
    let tables = live_tables(source, flavor, &changes).await?;
    let reading = Reading::new(opts.established_zone, &tables);
    let era = Era::of(index, &mut changes, &reading).await?;
    let streams: BTreeSet<u32> = changes.iter().map(|c| c.stream_id).collect();
    if streams.iter().any(|s| !era.streams.contains(s)) {
        return Err(RecoverError::MultipleStreams {
            streams: streams.into_iter().collect(),
        });
    }
    let oldest = changes
        .last()
        .ok_or_else(|| RecoverError::Nothing(sel.describe()))?;
    let stream = era.stream.unwrap_or(oldest.stream_id);
    // The earliest stamp, not the oldest change's: a filled change of a gap that cannot be
    // placed sorts after the changes streamed since it, and is still before the gap.
    let earliest = changes
        .iter()
        .map(|c| c.event_timestamp.as_str())
        .min()
        .unwrap_or(&oldest.event_timestamp);
    check_gaps(index, stream, earliest).await?;
    check_table_ddl(index, &order, stream, &changes).await?;
    lap("gaps and ddl checked");
    // Everything at or after the oldest selected change in history order has an id from here.
    let first = changes
        .iter()
        .map(|c| order.pos(c.stream_id, c.event_id).id_floor())
        .min()
        .unwrap_or(0);
    // What the index holds from the oldest selected change on is all there is only when the
    // archive holds nothing from there on; else the checks look rows up in both.
    let recent = match archive.is_some_and(|a| a.reaches(first)) {
        true => None,
        false => recent::read(index, stream, first, recent::cap(changes.len()))
            .await
            .map_err(RecoverError::Index)?,
    };
    lap("recent changes read");
    let mut notes = era.notes();
    let later = match era.old {
        0 => later_changes(index, &order, &changes, recent.as_ref(), archive).await?,
        _ => era_later_changes(index, &changes, &era.streams, &tables, &reading).await?,
    };
    if let Some((count, example)) = later {
        if !opts.overwrite_later_changes {
            return Err(RecoverError::LaterChanges { count, example });
        }
        notes.push(format!(
            "{count} later change(s) to these rows are not in the selection and will be overwritten, e.g. {example}"
        ));
    }
    lap("later changes");
    for s in &era.streams {
        let mine: Vec<StoredChange> = changes
            .iter()
            .filter(|c| c.stream_id == *s)
            .cloned()
            .collect();
        if mine.is_empty() {
            continue;
        }
        let recent = recent.as_ref().filter(|_| *s == stream);
        notes.extend(check_transactions(index, &mine, recent, opts, archive).await?);
    }
    lap("transactions");
    let policed = policed::load(index, &changes)
        .await
        .map_err(RecoverError::Index)?;
    lap("policies");
    let mut policy_notes = BTreeSet::new();
    let mut statements = Vec::with_capacity(changes.len());
    let mut checked = BTreeSet::new();
    for c in &changes {
        let t = tables
            .iter()
            .find(|t| t.schema == c.schema && t.table == c.table)
            .ok_or_else(|| RecoverError::TableMissing {
                schema: c.schema.clone(),
                table: c.table.clone(),
            })?;
        if checked.insert((
            c.stream_id == 0,
            c.schema.clone(),
            c.table.clone(),
            c.schema_version,
        )) {
            let note = match c.stream_id {
                0 => check_era_schema(c, t, &era.snapshots)?,
                _ => check_schema(c, t)?,
            };
            if let Some(note) = note {
                notes.push(note);
            }
        }
        let columns = policed.columns(c, t);
        if columns.is_empty() {
            statements.push(reversal::statement(c, t)?);
            continue;
        }
        policy_notes.insert(police(c, t, &columns, opts)?);
        let mut stripped = c.clone();
        policed::strip(&mut stripped, &columns);
        statements.push(reversal::statement(&stripped, t)?);
    }
    notes.extend(policy_notes);
    lap("statements");
    notes.extend(index_horizon(index, stream).await?);
    Ok(Recovery {
        selection: sel.clone(),
        changes,
        statements,
        tables,
        notes,
    })
}

/// Refuses what cannot be reversed without the real values of `columns` (module `policed`);
/// otherwise the note the script carries.
fn police(
    c: &StoredChange,
    t: &LiveTable,
    columns: &[(String, crate::policy::Action)],
    opts: Options,
) -> Result<String, RecoverError> {
    let table = format!("{}.{}", c.schema, c.table);
    let in_key: Vec<(String, crate::policy::Action)> = columns
        .iter()
        .filter(|(name, _)| t.key.iter().any(|&i| t.columns[i].name == *name))
        .cloned()
        .collect();
    if !in_key.is_empty() {
        return Err(RecoverError::PolicedKey {
            event_id: c.event_id,
            table,
            columns: policed::describe(&in_key),
        });
    }
    let described = policed::describe(columns);
    match c.event_type {
        ChangeKind::Delete if !opts.restore_with_defaults => Err(RecoverError::PolicedRestore {
            event_id: c.event_id,
            table,
            columns: described,
        }),
        ChangeKind::Delete => Ok(format!(
            "{table}: rows restored by INSERT leave {described} to their defaults (--restore-with-defaults): the index does not hold their values"
        )),
        _ => Ok(format!(
            "{table}: UPDATE statements leave {described} as the live row has them: the index does not hold their values"
        )),
    }
}

/// The eras a selection spans, and what the old one needs.
struct Era {
    /// The streams whose changes may be reversed together: the selection's one stream, or the
    /// established era (0) and the stream that continues it.
    streams: Vec<u32>,
    /// The stream that continues the established era, when the selection has old-era changes.
    stream: Option<u32>,
    /// How many selected changes the established tool indexed.
    old: usize,
    /// Their schema snapshots.
    snapshots: Snapshots,
}

impl Era {
    /// Converts the old-era changes among `changes` in place (refusing what is not exact).
    async fn of(
        index: &mut Conn,
        changes: &mut [StoredChange],
        reading: &Reading,
    ) -> Result<Era, RecoverError> {
        let old = changes
            .iter()
            .filter(|c| c.value_form == ValueForm::Established)
            .count();
        if old == 0 {
            return Ok(Era {
                streams: changes.last().map(|c| c.stream_id).into_iter().collect(),
                stream: None,
                old,
                snapshots: Snapshots::new(),
            });
        }
        let stream = established::successor(index)
            .await
            .map_err(RecoverError::Index)?;
        let snapshots = established::load(index, changes)
            .await
            .map_err(RecoverError::Index)?;
        for c in changes.iter_mut() {
            *c = established::convert(c, &snapshots, reading)?;
        }
        let mut streams = vec![0];
        streams.extend(stream);
        Ok(Era {
            streams,
            stream,
            old,
            snapshots,
        })
    }

    /// What the script says about the old era.
    fn notes(&self) -> Vec<String> {
        if self.old == 0 {
            return Vec::new();
        }
        vec![format!(
            "{} change(s) were indexed by the established tool (stream_id 0); their values were converted exactly through its schema_snapshots (ENUM index to name, SET bitmask to names, base64 TEXT to text, raw BINARY bytes, JSON text to the document, wrapped BIGINT UNSIGNED)",
            self.old
        )]
    }
}

/// [`later_changes`] for a selection with old-era changes ([`established::later_changes`]).
async fn era_later_changes(
    index: &mut Conn,
    changes: &[StoredChange],
    streams: &[u32],
    tables: &[LiveTable],
    reading: &Reading,
) -> Result<Option<(usize, String)>, RecoverError> {
    let later = established::later_changes(index, changes, streams, tables, reading)
        .await
        .map_err(|e| match e {
            established::ScanError::Query(q) => RecoverError::Query(q),
            established::ScanError::Era(e) => RecoverError::Era(e),
        })?;
    Ok(later.first().map(|c| (later.len(), reversal::describe(c))))
}

/// [`check_schema`] for an old-era change: its snapshot's columns must have the same data
/// types in the live table (an ENUM or SET is written by name, so a reordered member list is
/// fine; a missing member fails when the script runs, in strict mode). A MariaDB JSON column
/// (a LONGTEXT to the established tool, stored as base64 text) is refused: its text is not
/// bintrail's document form.
fn check_era_schema(
    c: &StoredChange,
    t: &LiveTable,
    snapshots: &Snapshots,
) -> Result<Option<String>, RecoverError> {
    let Some(snap) = snapshots.get(&(c.schema_version, c.schema.clone(), c.table.clone())) else {
        return Ok(None);
    };
    for col in &snap.columns {
        let live: Option<&LiveColumn> = t.columns.iter().find(|l| l.name == col.name);
        match live {
            None => {
                return Err(RecoverError::ColumnMissing {
                    event_id: c.event_id,
                    schema: c.schema.clone(),
                    table: c.table.clone(),
                    column: col.name.clone(),
                })
            }
            Some(l) if l.sql_type == Some(SqlType::JsonText) => {
                return Err(RecoverError::Era(EraError::Inexact(Box::new(
                    established::Inexact {
                        event_id: c.event_id,
                        table: format!("{}.{}", c.schema, c.table),
                        column: col.name.clone(),
                        column_type: col.column_type.clone(),
                        form: "MariaDB JSON as base64 text".into(),
                        why: "the text's numbers and key order are not bintrail's document form"
                            .into(),
                    },
                ))))
            }
            Some(l) if !l.data_type.eq_ignore_ascii_case(&col.data_type) => {
                return Err(RecoverError::EraSchemaChanged(Box::new(EraSchemaChange {
                    event_id: c.event_id,
                    schema: c.schema.clone(),
                    table: c.table.clone(),
                    column: col.name.clone(),
                    then: col.column_type.clone(),
                    now: l.data_type.clone(),
                    snapshot: c.schema_version,
                })))
            }
            Some(_) => {}
        }
    }
    let added: Vec<&str> = t
        .columns
        .iter()
        .filter(|l| !snap.columns.iter().any(|s| s.name == l.name))
        .map(|l| l.name.as_str())
        .collect();
    Ok((!added.is_empty()).then(|| {
        format!(
            "{}.{} has columns added since the established tool's changes were indexed: {}; rows restored by INSERT get their defaults",
            c.schema,
            c.table,
            added.join(", ")
        )
    }))
}

/// Refuses when a gap of `stream` was detected at or after `oldest` (UTC text) and has not been
/// filled (`index --fill-gap`), or was filled without its place in history order.
async fn check_gaps(index: &mut Conn, stream: u32, oldest: &str) -> Result<(), RecoverError> {
    let gap = gaps::first_unusable_since(index, stream, oldest)
        .await
        .map_err(RecoverError::Index)?;
    match gap {
        None => Ok(()),
        Some(g) if g.unordered() => Err(RecoverError::UnorderedGap {
            server_id: stream,
            gap_id: g.gap_id,
            detected_at: g.detected_at,
            oldest: oldest.to_string(),
        }),
        Some(g) => Err(RecoverError::Gap(Box::new(GapRefusal {
            server_id: stream,
            gap_id: g.gap_id,
            detected_at: g.detected_at,
            from: g.from,
            to: g.to,
            reason: g.reason,
            oldest: oldest.to_string(),
        }))),
    }
}

/// Refuses when a TRUNCATE, DROP or RENAME of a selected change's table was recorded at or
/// after the oldest selected change of that table. An index whose `ddl_events` table does not
/// exist yet (made by an older `init`, no stream run since) has recorded none.
async fn check_table_ddl(
    index: &mut Conn,
    order: &Order,
    stream: u32,
    changes: &[StoredChange],
) -> Result<(), RecoverError> {
    let mut oldest: BTreeMap<(&str, &str), (Pos, u64)> = BTreeMap::new();
    for c in changes {
        let at = (order.pos(stream, c.event_id), c.event_id);
        let first = oldest.entry((&c.schema, &c.table)).or_insert(at);
        *first = (*first).min(at);
    }
    for ((schema, table), (at, event_id)) in oldest {
        let from = at.id_floor();
        let markers = match ddl::markers_since(index, stream, schema, table, from).await {
            Ok(markers) => markers,
            Err(mysql_async::Error::Server(e)) if e.code == 1146 => return Ok(()),
            Err(e) => return Err(RecoverError::Index(e)),
        };
        // A marker sits right after the change its `last_event_id` names.
        if let Some(marker) = markers
            .into_iter()
            .find(|m| m.kind.ends_table_history() && order.pos(stream, m.last_event_id) >= at)
        {
            return Err(RecoverError::TableDdl {
                event_id,
                schema: schema.to_string(),
                table: table.to_string(),
                marker: Box::new(marker),
            });
        }
    }
    Ok(())
}

/// Changes to the selected rows after the oldest selected change of each row that the
/// selection leaves out, following rows through key changes and keyless images
/// ([`follow::later_changes`]): their count and the first described.
async fn later_changes(
    index: &mut Conn,
    order: &Order,
    changes: &[StoredChange],
    recent: Option<&Recent>,
    archive: Option<&Archive>,
) -> Result<Option<(usize, String)>, RecoverError> {
    let (count, later) = follow::later_changes(index, order, changes, recent, archive).await?;
    Ok(later.first().map(|c| {
        let example = format!(
            "#{} {} {} {}.{} {}",
            c.event_id,
            c.event_timestamp,
            c.event_type.name(),
            c.schema,
            c.table,
            c.pk_values
        );
        (count, example)
    }))
}

/// Refuses a selection that cuts a transaction in two unless the caller accepts that; then a
/// note names each such transaction.
async fn check_transactions(
    index: &mut Conn,
    changes: &[StoredChange],
    recent: Option<&Recent>,
    opts: Options,
    archive: Option<&Archive>,
) -> Result<Vec<String>, RecoverError> {
    let partial = transactions::partial_transactions(index, changes, recent, archive)
        .await
        .map_err(|e| match e {
            transactions::CountError::Index(e) => RecoverError::Index(e),
            transactions::CountError::Archive(e) => RecoverError::Query(QueryError::Archive(e)),
        })?;
    let Some(first) = partial.first() else {
        return Ok(Vec::new());
    };
    if !opts.allow_partial_transactions {
        let others = match partial.len() - 1 {
            0 => String::new(),
            n => format!(", and {n} other transaction(s) likewise"),
        };
        return Err(RecoverError::PartialTransaction {
            example: first.describe(),
            others,
        });
    }
    Ok(partial
        .iter()
        .map(|p| format!("partial {}: only those are undone", p.describe()))
        .collect())
}

/// The live shape of every table the changes touch.
async fn live_tables(
    source: &mut Conn,
    flavor: Flavor,
    changes: &[StoredChange],
) -> Result<Vec<LiveTable>, RecoverError> {
    let names: BTreeSet<(&str, &str)> = changes
        .iter()
        .map(|c| (c.schema.as_str(), c.table.as_str()))
        .collect();
    let mut tables = Vec::with_capacity(names.len());
    for (schema, table) in names {
        let t = LiveTable::load(source, flavor, schema, table)
            .await
            .map_err(RecoverError::Source)?
            .ok_or_else(|| RecoverError::TableMissing {
                schema: schema.to_string(),
                table: table.to_string(),
            })?;
        tables.push(t);
    }
    Ok(tables)
}

/// Checks that `c` was indexed under a shape its SQL can be written for (module docs); a note
/// when the live table has columns added since.
fn check_schema(c: &StoredChange, t: &LiveTable) -> Result<Option<String>, RecoverError> {
    let live = t.fingerprint(|_| true).unwrap_or(0);
    if c.schema_version == live {
        return Ok(None);
    }
    let stored: BTreeSet<&String> = c
        .row_before
        .iter()
        .chain(c.row_after.iter())
        .flat_map(|m| m.keys())
        .collect();
    if let Some(gone) = stored.iter().find(|n| t.column_index(n).is_none()) {
        return Err(RecoverError::ColumnMissing {
            event_id: c.event_id,
            schema: c.schema.clone(),
            table: c.table.clone(),
            column: gone.to_string(),
        });
    }
    // MariaDB 11 leaves generated columns out of UPDATE and DELETE images: with them added
    // back, such an image names every column of its moment.
    let with_generated = t.fingerprint(|col| stored.contains(&col.name) || col.generated);
    let stored_only = t.fingerprint(|col| stored.contains(&col.name));
    if stored_only == Some(c.schema_version) || with_generated == Some(c.schema_version) {
        let generated_absent = stored_only != Some(c.schema_version);
        let added: Vec<&str> = t
            .columns
            .iter()
            .filter(|col| !stored.contains(&col.name))
            .filter(|col| !(generated_absent && col.generated))
            .map(|col| col.name.as_str())
            .collect();
        if added.is_empty() {
            return Ok(None);
        }
        return Ok(Some(format!(
            "{}.{} has columns added since the changes were indexed: {}; rows restored by INSERT get their defaults",
            c.schema,
            c.table,
            added.join(", ")
        )));
    }
    Err(RecoverError::SchemaChanged {
        event_id: c.event_id,
        schema: c.schema.clone(),
        table: c.table.clone(),
        stored: c.schema_version,
        live,
    })
}

/// A note on how far the index reaches: changes made after the stream's checkpoint are not
/// known, so they cannot be checked for.
async fn index_horizon(index: &mut Conn, stream: u32) -> Result<Option<String>, RecoverError> {
    let at: Option<String> = index
        .exec_first(
            "SELECT DATE_FORMAT(last_checkpoint, '%Y-%m-%d %H:%i:%s') FROM stream_state \
             WHERE server_id = ?",
            (stream,),
        )
        .await
        .map_err(RecoverError::Index)?;
    Ok(at.map(|at| {
        format!("the index holds stream {stream}'s changes up to its checkpoint of {at} UTC; later changes to these rows are not checked")
    }))
}

impl Recovery {
    /// The whole recovery script ([`reversal::script`]): this plan's headline, selection and
    /// notes as its header, then its statements.
    pub fn script(&self) -> String {
        let mut header = vec![
            format!("bintrail recover: {}", self.headline()),
            format!("selection: {}", self.selection.describe()),
        ];
        header.extend(self.notes.iter().map(|n| format!("note: {n}")));
        reversal::script(&header, &self.changes, &self.statements)
    }

    /// `reverses 3 changes (1 insert, 2 updates) to shop.orders, indexed by stream 42 from … to …
    /// UTC, newest first`.
    pub fn headline(&self) -> String {
        let kinds: Vec<String> = [ChangeKind::Insert, ChangeKind::Update, ChangeKind::Delete]
            .into_iter()
            .map(|k| (k, self.changes.iter().filter(|c| c.event_type == k).count()))
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| counted(n, k.name()))
            .collect();
        let tables: Vec<String> = self
            .tables
            .iter()
            .map(|t| format!("{}.{}", t.schema, t.table))
            .collect();
        let (newest, oldest) = (self.changes.first(), self.changes.last());
        let (to, from) = (
            newest.map_or("", |c| c.event_timestamp.as_str()),
            oldest.map_or("", |c| c.event_timestamp.as_str()),
        );
        let when = if from == to {
            format!("at {to} UTC")
        } else {
            format!("from {from} to {to} UTC")
        };
        format!(
            "reverses {} ({}) to {}, indexed by stream {} {when}, newest first",
            counted(self.changes.len(), "change"),
            kinds.join(", "),
            tables.join(", "),
            newest.map_or(0, |c| c.stream_id),
        )
    }
}

/// `1 change`, `2 changes`.
fn counted(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

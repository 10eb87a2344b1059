//! `bintrail index`: binlog files into the change index, through the same transaction assembly,
//! filter, value encoding and writer as `stream` (reader → bounded channel → writer).
//!
//! # Change identity
//! Files are indexed under a stream's id (`--server-id`): a change's identity in the index is
//! (stream id, binlog file, event offset, row ordinal, timestamp), the same from a file as from
//! the replica connection, so a file indexed twice, or indexed and also streamed by that stream,
//! yields each change once.
//!
//! # What `index` records
//! Nothing in `stream_state`: the stream whose id the files are indexed under keeps its own
//! checkpoint untouched (indexing older history, or a gap, must not move it). `index` is
//! idempotent instead of resumable: after a failure, run it again over the same files; what was
//! written is skipped by the unique key. Only complete transactions reach the writer: chunks of
//! a transaction are held until its commit, so a file that ends inside a transaction (or inside
//! an event) leaves nothing of that transaction in the index.
//!
//! # Source identity and column names
//! With `--source-dsn` both come from the source, as for `stream`. Without it, the identity is
//! the first GTID's server uuid (MariaDB: `server-id:N` of its GTID events) and the column names
//! come from the table maps (binlog_row_metadata=FULL); a table map without names, or a table
//! without a primary key (whose identifying unique key only the live schema knows), is refused.
//! When the stream already has a checkpoint from a known source, files of another source are
//! refused.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use mysql_common::binlog::events::{Event, GtidEvent};
use tokio::sync::mpsc;

use crate::config::IndexConfig;
use crate::connect::connect;
use crate::dsn::Dsn;
use crate::filter::Filter;
use crate::index::gaps::GapRange;
use crate::index::writer::{Writer, WriterError};
use crate::index::{ddl, state};
use crate::position::{BinlogPosition, Checkpoint, Gtid, ResumePoint};
use crate::source::file::{BinlogFile, FileError};
use crate::source::schema::{SchemaError, ServerFlavor, TableSpec};
use crate::source::txn::{Assembler, Chunk, TxnError};
use crate::source::{self, columns, Flavor, SourceError};
use crate::sql::SESSION_SETUP;
use crate::stream::{Batch, StreamError, BATCH_BYTES, CHANNEL_BOUND};
use crate::telemetry::Telemetry;
use crate::tls::TlsConfig;

/// What `bintrail index` reads and where it writes.
#[derive(Clone, Debug)]
pub struct FilesConfig {
    /// The index.
    pub index: IndexConfig,
    /// The stream whose history the files belong to (its `--server-id`).
    pub server_id: u32,
    /// Which changes are kept.
    pub filter: Filter,
    /// Rows per index transaction at most.
    pub batch_size: usize,
    /// The files, in binlog order.
    pub files: Vec<PathBuf>,
    /// The source, for its identity and for column names the files lack.
    pub source: Option<(Dsn, TlsConfig)>,
    /// The capture policy applied to every image, as the stream applies it.
    pub policy: crate::policy::Policy,
    /// Only the transactions of this range (a gap being filled, `fill_gap`); all when `None`.
    pub range: Option<GapRange>,
    /// Decode and count, write nothing (`--dry-run`).
    pub dry_run: bool,
}

/// Counters the progress line reads while indexing runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes of all files.
    pub total_bytes: AtomicU64,
    /// Bytes read so far.
    pub bytes: AtomicU64,
    /// Changes kept so far (decoded, passed the filter).
    pub changes: AtomicU64,
}

/// What an indexing run did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Summary {
    /// Files read to their end.
    pub files: usize,
    /// Bytes read.
    pub bytes: u64,
    /// Changes kept (decoded, passed the filter) in complete transactions.
    pub changes: u64,
    /// Of those, changes that were new to the index (the others were already there).
    pub inserted: u64,
    /// The position after the last complete transaction indexed.
    pub through: String,
    /// The source identity the files were checked against, if known.
    pub identity: Option<String>,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Changes kept per table (`schema.table`): inserts, updates, deletes.
    pub tables: BTreeMap<String, [u64; 3]>,
    /// The position of the first change kept, if any.
    pub first: Option<String>,
    /// Nothing was written (`--dry-run`).
    pub dry_run: bool,
    /// A transaction was cut off at the end of the last file and left out.
    pub incomplete: bool,
}

/// Why indexing files failed.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// A file cannot be read further.
    #[error(transparent)]
    File(#[from] FileError),
    /// The events cannot be indexed.
    #[error(transparent)]
    Txn(#[from] TxnError),
    /// The source (`--source-dsn`) failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The index failed.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// A table's column names are not in the files and there is no source to ask.
    #[error("cannot label the columns of {schema}.{table} (rows event at {position}): {reason}; pass --source-dsn of the server that wrote the files (its live table must still match the event)")]
    NeedSource {
        /// Schema.
        schema: String,
        /// Table.
        table: String,
        /// Where.
        position: String,
        /// What the files lack.
        reason: &'static str,
    },
    /// The files come from another source than the stream's checkpoint.
    #[error("the files were written by source {found} but stream {server_id} indexes source {recorded}: refusing to mix histories (use the --server-id of a stream of that source)")]
    OtherSource {
        /// The stream.
        server_id: u32,
        /// The source its checkpoint names.
        recorded: String,
        /// The source of the files.
        found: String,
    },
    /// The source identity is needed and neither the files nor a source tell it.
    #[error("stream {server_id} indexes source {recorded}, and the files carry no GTID that names their source: pass --source-dsn of the server that wrote them to confirm it")]
    UnknownSource {
        /// The stream.
        server_id: u32,
        /// The source its checkpoint names.
        recorded: String,
    },
    /// The reader task failed.
    #[error("the file reader stopped unexpectedly: {0}")]
    Task(String),
}

impl From<WriterError> for FilesError {
    fn from(e: WriterError) -> Self {
        FilesError::Stream(e.into())
    }
}

impl From<mysql_async::Error> for FilesError {
    fn from(e: mysql_async::Error) -> Self {
        FilesError::Stream(e.into())
    }
}

impl From<state::StateError> for FilesError {
    fn from(e: state::StateError) -> Self {
        FilesError::Stream(e.into())
    }
}

/// The source connection that answers what the files do not say.
struct Lookup {
    conn: Conn,
    flavor: Flavor,
    handle: tokio::runtime::Handle,
}

/// What the reader learned besides chunks.
struct ReadEnd {
    incomplete: bool,
    files: usize,
    bytes: u64,
    identity: Option<String>,
    through: BinlogPosition,
}

/// Indexes `config.files` in order; complete transactions only (see the module documentation).
/// On an error, everything before the failing transaction is already committed to the index.
pub async fn run(config: &FilesConfig, progress: Arc<Progress>) -> Result<Summary, FilesError> {
    let started = Instant::now();
    let mut index = connect("index", &config.index.dsn, None, &config.index.tls)
        .await
        .map_err(SourceError::from)?;
    index.query_drop(SESSION_SETUP).await?;
    ddl::ensure_ready(&mut index, &config.index.database)
        .await
        .map_err(StreamError::from)?;
    index
        .query_drop(format!("USE {}", crate::sql::ident(&config.index.database)))
        .await?;
    let recorded = state::load(&mut index, config.server_id)
        .await?
        .and_then(|s| s.source_uuid)
        .filter(|u| !u.is_empty());
    let _ = index.disconnect().await;

    let (lookup, source_identity) = match &config.source {
        Some((dsn, tls)) => {
            let mut conn = connect("source", dsn, None, tls)
                .await
                .map_err(SourceError::from)?;
            let info = source::inspect(&mut conn)
                .await
                .map_err(SourceError::from)?;
            let lookup = Lookup {
                conn,
                flavor: info.flavor,
                handle: tokio::runtime::Handle::current(),
            };
            (Some(lookup), Some(info.identity))
        }
        None => (None, None),
    };
    if let (Some(recorded), Some(found)) = (&recorded, &source_identity) {
        if recorded != found {
            return Err(FilesError::OtherSource {
                server_id: config.server_id,
                recorded: recorded.clone(),
                found: found.clone(),
            });
        }
    }
    let expected = Expected {
        server_id: config.server_id,
        recorded: if source_identity.is_some() {
            None
        } else {
            recorded
        },
    };
    let writer = if config.dry_run {
        None
    } else {
        let writer = Writer::open(
            &config.index,
            &config.index.tls,
            config.server_id,
            source_identity.clone().unwrap_or_default(),
        )
        .await?;
        Some(writer.without_checkpoints())
    };

    let total: u64 = config
        .files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    progress.total_bytes.store(total, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel(CHANNEL_BOUND);
    let reader = {
        let (config, progress) = (config.clone(), progress.clone());
        tokio::task::spawn_blocking(move || read_files(&config, lookup, expected, tx, &progress))
    };
    let written = write_all(writer, rx, config.batch_size).await;
    let read = reader.await.map_err(|e| FilesError::Task(e.to_string()))?;
    let Written {
        changes,
        inserted,
        tables,
        first,
    } = written?;
    let end = read?;
    Ok(Summary {
        tables,
        first,
        dry_run: config.dry_run,
        incomplete: end.incomplete,
        files: end.files,
        bytes: end.bytes,
        changes,
        inserted,
        through: end.through.to_string(),
        identity: source_identity.or(end.identity),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What the writing side saw.
#[derive(Default)]
struct Written {
    changes: u64,
    inserted: u64,
    tables: BTreeMap<String, [u64; 3]>,
    first: Option<String>,
}

/// Writes chunks in batches until the reader is done (with no writer: counts them only).
async fn write_all(
    mut writer: Option<Writer>,
    mut rx: mpsc::Receiver<Chunk>,
    batch_size: usize,
) -> Result<Written, FilesError> {
    let telemetry = Telemetry::new();
    let mut batch = Batch::default();
    let mut out = Written::default();
    while let Some(chunk) = rx.recv().await {
        out.changes += chunk.changes.len() as u64;
        for c in &chunk.changes {
            if out.first.is_none() {
                out.first = Some(BinlogPosition::new(&*c.binlog_file, c.start_pos).to_string());
            }
            let counts = out
                .tables
                .entry(format!("{}.{}", c.schema, c.table))
                .or_default();
            counts[c.kind as usize - 1] += 1;
        }
        let Some(writer) = writer.as_mut() else {
            continue;
        };
        batch.add(chunk);
        if batch.len() >= batch_size || batch.bytes >= BATCH_BYTES {
            batch.flush(writer, &telemetry).await?;
        }
    }
    if let Some(mut writer) = writer {
        batch.flush(&mut writer, &telemetry).await?;
        writer.close().await;
    }
    out.inserted = telemetry.rows_indexed.load(Ordering::Relaxed);
    Ok(out)
}

/// The source the stream's checkpoint names, which the files must come from.
struct Expected {
    server_id: u32,
    /// `None` when there is nothing to check (no checkpoint, or `--source-dsn` checked it).
    recorded: Option<String>,
}

/// Reads every file in order on a blocking thread, sending complete transactions.
fn read_files(
    config: &FilesConfig,
    mut lookup: Option<Lookup>,
    expected: Expected,
    tx: mpsc::Sender<Chunk>,
    progress: &Progress,
) -> Result<ReadEnd, FilesError> {
    let first = config
        .files
        .first()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let start = BinlogPosition::new(first, 4);
    let from = Checkpoint::at(ResumePoint::Position(start.clone()), start);
    let mut assembler = Assembler::new(
        config.filter.clone(),
        config.policy.clone(),
        config.batch_size,
        &from,
    );
    let mut end = ReadEnd {
        incomplete: false,
        files: 0,
        bytes: 0,
        identity: None,
        through: from.position.clone(),
    };
    let mut identity_checked = expected.recorded.is_none();
    // Chunks of the transaction in progress: sent only once it commits.
    let mut held: Vec<Chunk> = Vec::new();
    // Inside a transaction that the range leaves out: its events are not fed.
    let mut skipping = false;
    for path in &config.files {
        let mut file = BinlogFile::open(path)?;
        assembler.open_file(file.name());
        while let Some(event) = file.next_event()? {
            progress
                .bytes
                .store(end.bytes + file.offset(), Ordering::Relaxed);
            if let Some(range) = &config.range {
                if starts_transaction(&event) {
                    let at = BinlogPosition::new(file.name(), event_start(&event));
                    skipping = !range.wants(&at, gtid_of(&event).as_ref());
                }
                if skipping && !between_transactions(&event) {
                    continue;
                }
            }
            if !identity_checked && starts_transaction(&event) {
                identity_checked = true;
                check_identity(&event, &expected)?;
            }
            if end.identity.is_none() {
                end.identity = identity_of(&event);
            }
            let Some(chunk) = feed(&mut assembler, &event, lookup.as_mut(), file.flavor())? else {
                continue;
            };
            progress
                .changes
                .fetch_add(chunk.changes.len() as u64, Ordering::Relaxed);
            let complete = chunk.checkpoint.rows_done == 0;
            held.push(chunk);
            if complete {
                end.through = held
                    .last()
                    .map(|c| c.checkpoint.position.clone())
                    .unwrap_or_else(|| end.through.clone());
                for chunk in held.drain(..) {
                    if tx.blocking_send(chunk).is_err() {
                        // The writer failed; its error is the one to report.
                        return Ok(end);
                    }
                }
            }
        }
        end.bytes += file.len();
        end.files += 1;
    }
    if !held.is_empty() {
        end.incomplete = true;
        tracing::warn!(
            through = %end.through,
            "the last file ends inside a transaction: that transaction was not indexed"
        );
    }
    Ok(end)
}

/// Feeds one event, answering the assembler's column questions from the table map (FULL
/// metadata) or the source.
fn feed(
    assembler: &mut Assembler,
    event: &Event,
    mut lookup: Option<&mut Lookup>,
    flavor: Option<Flavor>,
) -> Result<Option<Chunk>, FilesError> {
    loop {
        match assembler.feed(event) {
            Err(TxnError::NeedColumns {
                table_id,
                schema,
                table,
            }) => {
                let tme = assembler
                    .table_map(table_id)
                    .cloned()
                    .ok_or_else(|| FilesError::Task("NeedColumns names no table map".into()))?;
                let at = columns::EventAt {
                    position: assembler.position(),
                    time: event.header().timestamp(),
                };
                let spec = match lookup.as_deref_mut() {
                    Some(l) => {
                        l.handle
                            .block_on(columns::resolve(&mut l.conn, l.flavor, &tme, &at))?
                    }
                    None => spec_from_files(&tme, flavor, schema, table, &at)?,
                };
                assembler.provide_spec(table_id, spec)?;
            }
            other => return Ok(other?),
        }
    }
}

/// A table's layout from its table map alone; refused where the files cannot say enough.
fn spec_from_files(
    tme: &mysql_common::binlog::events::TableMapEvent<'_>,
    flavor: Option<Flavor>,
    schema: String,
    table: String,
    at: &columns::EventAt,
) -> Result<TableSpec, FilesError> {
    let server_flavor = match flavor {
        Some(Flavor::Mariadb) => ServerFlavor::MariaDb,
        _ => ServerFlavor::MySql,
    };
    let need = |reason| FilesError::NeedSource {
        schema: schema.clone(),
        table: table.clone(),
        position: at.position.to_string(),
        reason,
    };
    let spec = match TableSpec::from_table_map_as(tme, server_flavor) {
        Ok(spec) => spec,
        Err(SchemaError::NoColumnNames { .. }) => {
            return Err(need(
                "its table map has no column names (binlog_row_metadata=MINIMAL)",
            ))
        }
        Err(e) => return Err(SourceError::from(columns::ColumnsError::from(e)).into()),
    };
    let long_text = |c: &crate::source::schema::ColumnSpec| {
        c.col_type == mysql_common::constants::ColumnType::MYSQL_TYPE_BLOB
    };
    if server_flavor == ServerFlavor::MariaDb && spec.columns.iter().any(long_text) {
        return Err(need(
            "on MariaDB a TEXT/BLOB column may be JSON (a LONGTEXT with a json_valid CHECK that no binlog records), stored as JSON only when the live schema says so",
        ));
    }
    if spec.primary_key.is_empty() {
        return Err(need(
            "it has no primary key, and which unique key identifies its rows only the live schema says",
        ));
    }
    Ok(spec)
}

/// Offset of an event in its file (not meaningful for the inner events of a payload).
pub fn event_start(event: &Event) -> u64 {
    let header = event.header();
    u64::from(header.log_pos()).saturating_sub(u64::from(header.event_size()))
}

/// The GTID of a transaction's first event (MySQL, MariaDB); `None` for an anonymous one.
pub fn gtid_of(event: &Event) -> Option<Gtid> {
    match event.header().event_type_raw() {
        33 | 42 => event
            .read_event::<GtidEvent>()
            .ok()
            .filter(|g| g.gno() > 0)
            .map(|g| Gtid::mysql(g.sid(), g.tag().map(|t| t.as_str()), g.gno())),
        source::mariadb::GTID_EVENT => {
            source::mariadb::parse_gtid(event.header().server_id(), event.data()).map(|g| g.gtid)
        }
        _ => None,
    }
}

/// Events that belong to no transaction: a file's FORMAT_DESCRIPTION, PREVIOUS_GTIDS,
/// GTID_LIST, BINLOG_CHECKPOINT, and its closing ROTATE or STOP. Skipping a transaction
/// never skips these.
fn between_transactions(event: &Event) -> bool {
    matches!(
        event.header().event_type_raw(),
        3 | 4
            | 15
            | 35
            | source::mariadb::GTID_LIST_EVENT
            | source::mariadb::BINLOG_CHECKPOINT_EVENT
    )
}

/// GTID (MySQL, anonymous included) and MariaDB GTID events: where a transaction begins.
pub fn starts_transaction(event: &Event) -> bool {
    matches!(
        event.header().event_type_raw(),
        33 | 34 | 42 | source::mariadb::GTID_EVENT
    )
}

/// The source identity a transaction's first event names, as `SourceInfo::identity` does.
fn identity_of(event: &Event) -> Option<String> {
    match event.header().event_type_raw() {
        33 | 42 => {
            let gtid = event.read_event::<GtidEvent>().ok()?;
            let text = Gtid::mysql(gtid.sid(), None, 1).to_string();
            text.split(':').next().map(str::to_string)
        }
        source::mariadb::GTID_EVENT => Some(format!("server-id:{}", event.header().server_id())),
        _ => None,
    }
}

/// Refuses files of another source than the one the stream's checkpoint names.
fn check_identity(event: &Event, expected: &Expected) -> Result<(), FilesError> {
    let Some(recorded) = &expected.recorded else {
        return Ok(());
    };
    match identity_of(event) {
        Some(found) if &found == recorded => Ok(()),
        Some(found) => Err(FilesError::OtherSource {
            server_id: expected.server_id,
            recorded: recorded.clone(),
            found,
        }),
        None => Err(FilesError::UnknownSource {
            server_id: expected.server_id,
            recorded: recorded.clone(),
        }),
    }
}

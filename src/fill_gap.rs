//! `bintrail index --fill-gap ID --binlog-dir DIR`: indexes exactly the history a `stream_gaps`
//! row says is missing, from binlog files that survived (a backup, a `mysqlbinlog --raw` copy),
//! then marks the gap filled so that `recover` and `reconstruct` stop refusing for it.
//!
//! # All or nothing
//! Before anything is written, the files are read once without decoding rows (framing, magic,
//! CRC32, GTIDs: [`survey`]) to prove they hold the whole range: in position mode every binlog
//! from the gap's first file to the one before the file the stream continued in, the last one
//! closed by its ROTATE (or STOP); in GTID mode every transaction of the missing set. Otherwise
//! the run is refused naming the first missing file and offset, or the GTIDs left, and nothing
//! is written or marked. The second pass indexes only the range's transactions under the gap's
//! stream (its server id), so a change gets the identity the stream would have given it and is
//! never stored twice, whatever was indexed before. The gap is marked only after every
//! transaction was written.
//!
//! # Its place in history order
//! The range's changes get `event_id`s after what the stream wrote since the gap. The gap row
//! knows where the gap sits (`before_event_id`), and the fill records which ids it gave the
//! range ([`record_fill`]: the stream's changes in the filled files that the range wants, written
//! after the gap was recorded) in the same transaction that marks the gap filled, so that
//! `history::order` can put them back in place. That needs the ids to be the fill's alone: if
//! the stream wrote a change with an id between them (it ran during the fill and its source was
//! busy), the fill takes its changes out again and refuses, leaving the gap open; run it again
//! while the stream is stopped (or its source quiet). DDL markers the fill recorded before the
//! range's first change are moved to the gap's place ([`early_markers`]).
//!
//! # Already filled
//! A gap that is already filled is reported as such (when and from which files) and nothing is
//! read: exit status 0, since what was asked for is true.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::connect::connect;
use crate::files::{self, event_start, gtid_of, starts_transaction, FilesConfig, FilesError};
use crate::index::gaps::{self, GapRange, GapRow, GapsError};
use crate::position::{BinlogPosition, Gtid};
use crate::source::file::BinlogFile;
use crate::source::SourceError;
use crate::sql::SESSION_SETUP;

/// STOP_EVENT and ROTATE_EVENT: the events that close a binlog file.
const STOP_EVENT: u8 = 3;
const ROTATE_EVENT: u8 = 4;

/// What `index --fill-gap` does.
#[derive(Clone, Debug)]
pub struct FillConfig {
    /// How to read and write; `files` are the candidate files (the directory's, in order),
    /// `server_id` is ignored (the gap's stream is used).
    pub files: FilesConfig,
    /// `--server-id`, when given: must be the gap's stream.
    pub server_id: Option<u32>,
    /// The gap.
    pub gap_id: u64,
}

/// What a fill did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Filled {
    /// The gap.
    pub gap_id: u64,
    /// Its stream.
    pub server_id: u32,
    /// `gap_from`.
    pub from: String,
    /// `gap_to`.
    pub to: String,
    /// The files that held the range.
    pub files: Vec<String>,
    /// The indexing run over them; `None` when the gap was already filled.
    pub summary: Option<files::Summary>,
    /// When it was filled before, when it was.
    pub already_filled: Option<String>,
}

/// Why a gap cannot be filled.
#[derive(Debug, thiserror::Error)]
pub enum FillError {
    /// Reading or writing failed.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// The gap row cannot be read or understood.
    #[error(transparent)]
    Gap(#[from] GapsError),
    /// No such gap.
    #[error(
        "there is no gap #{gap_id} in stream_gaps (`bintrail status` lists each stream's gaps)"
    )]
    NoGap {
        /// The gap asked for.
        gap_id: u64,
    },
    /// `--server-id` names another stream.
    #[error("gap #{gap_id} was recorded by stream {gap_stream}, not by --server-id {server_id}: its history is indexed under the stream that skipped it (leave out --server-id)")]
    OtherStream {
        /// The gap.
        gap_id: u64,
        /// Its stream.
        gap_stream: u32,
        /// `--server-id`.
        server_id: u32,
    },
    /// The files lack part of the range.
    #[error("the binlog files do not cover gap #{gap_id} (from {from} to {to}): still missing {missing}. Nothing was indexed and the gap stays open; put the missing binlogs (from a backup, or `mysqlbinlog --read-from-remote-server --raw` while the source still has them) into the directory and run again")]
    NotCovered {
        /// The gap.
        gap_id: u64,
        /// `gap_from`.
        from: String,
        /// `gap_to`.
        to: String,
        /// The first thing missing.
        missing: String,
    },
    /// The stream wrote changes while the fill ran, with ids among the fill's.
    #[error("gap #{gap_id} (from {from} to {to}) is not filled: stream {server_id} wrote {interleaved} change(s) whose event_ids lie among those of the range's changes (#{first} to #{last}), while this fill (or an earlier, interrupted run of it) ran, so the range could not be placed in history order. The range's changes were taken out of the index again and the gap stays open; stop the stream (or wait until its source is quiet) and run again")]
    Interleaved {
        /// The gap.
        gap_id: u64,
        /// `gap_from`.
        from: String,
        /// `gap_to`.
        to: String,
        /// The stream.
        server_id: u32,
        /// How many of its changes lie among the fill's.
        interleaved: u64,
        /// The fill's first id.
        first: u64,
        /// The fill's last id.
        last: u64,
    },
    /// The last file ends inside a transaction of the range (seen only while indexing: the
    /// survey counts a transaction by its GTID event).
    #[error("gap #{gap_id} (from {from} to {to}) is not filled: the last binlog file ends inside the transaction after {through}. The range's transactions before it were indexed; the gap stays open. Copy that file again once the server has rotated past it, and run again")]
    CutOff {
        /// The gap.
        gap_id: u64,
        /// `gap_from`.
        from: String,
        /// `gap_to`.
        to: String,
        /// The position after the last complete transaction indexed.
        through: String,
    },
}

impl From<mysql_async::Error> for FillError {
    fn from(e: mysql_async::Error) -> Self {
        FillError::Files(e.into())
    }
}

/// Fills gap `config.gap_id` (see the module documentation).
pub async fn run(config: &FillConfig, progress: Arc<files::Progress>) -> Result<Filled, FillError> {
    let index = &config.files.index;
    let mut conn = connect("index", &index.dsn, None, &index.tls)
        .await
        .map_err(|e| FilesError::Source(SourceError::from(e)))?;
    conn.query_drop(SESSION_SETUP).await?;
    crate::index::ddl::ensure_ready(&mut conn, &index.database)
        .await
        .map_err(|e| FilesError::Stream(e.into()))?;
    conn.query_drop(format!("USE {}", crate::sql::ident(&index.database)))
        .await?;
    let gap = gaps::load(&mut conn, config.gap_id)
        .await?
        .ok_or(FillError::NoGap {
            gap_id: config.gap_id,
        })?;
    if let Some(id) = config.server_id.filter(|id| *id != gap.server_id) {
        return Err(FillError::OtherStream {
            gap_id: gap.gap_id,
            gap_stream: gap.server_id,
            server_id: id,
        });
    }
    let mut filled = Filled {
        gap_id: gap.gap_id,
        server_id: gap.server_id,
        from: gap.from.clone(),
        to: gap.to.clone(),
        files: gap
            .filled_from
            .iter()
            .flat_map(|f| f.split(", ").map(str::to_string))
            .collect(),
        summary: None,
        already_filled: gap.filled_at.clone(),
    };
    if gap.filled_at.is_some() {
        let _ = conn.disconnect().await;
        return Ok(filled);
    }
    let range = gap.range()?;
    let candidates = candidates(&config.files.files, &range, &gap)?;
    let files = tokio::task::spawn_blocking({
        let (range, gap) = (range.clone(), gap.clone());
        move || survey(&candidates, &range, &gap)
    })
    .await
    .map_err(|e| FilesError::Task(e.to_string()))??;

    let mut run = config.files.clone();
    run.server_id = gap.server_id;
    run.files = files.clone();
    run.range = Some(range.clone());
    let summary = files::run(&run, progress).await?;
    filled.files = files.iter().map(|p| p.display().to_string()).collect();
    if summary.incomplete {
        return Err(FillError::CutOff {
            gap_id: gap.gap_id,
            from: gap.from.clone(),
            to: gap.to.clone(),
            through: summary.through.clone(),
        });
    }
    if !run.dry_run {
        record_fill(
            &mut conn,
            &gap,
            &range,
            &run.files,
            &filled.files.join(", "),
        )
        .await?;
    }
    let _ = conn.disconnect().await;
    filled.summary = Some(summary);
    Ok(filled)
}

/// A stream's changes in some binlog files written after an `event_id`, through `uk_change`
/// (stream, file): (stream, each file, id). What the EXPLAIN test runs, for `files` files. The
/// hint keeps the read bounded by the files' changes: the ids above the gap's place are most of
/// an index whose gap is old, and MariaDB, estimating from the id alone, chose to scan.
pub fn fill_ids_sql(files: usize) -> String {
    let marks = vec!["?"; files.max(1)].join(", ");
    format!(
        "SELECT event_id, binlog_file, start_pos, gtid FROM binlog_events \
         FORCE INDEX (uk_change) WHERE stream_id = ? AND binlog_file IN ({marks}) AND event_id > ?"
    )
}

/// A stream's DDL markers in some binlog files placed between two `event_id`s (`uk_marker`):
/// (stream, each file, after, before). What the EXPLAIN test runs.
pub fn early_markers_sql(files: usize) -> String {
    let marks = vec!["?"; files.max(1)].join(", ");
    format!(
        "SELECT seq, binlog_file, start_pos, gtid FROM ddl_events WHERE stream_id = ? \
         AND binlog_file IN ({marks}) AND last_event_id > ? AND last_event_id < ?"
    )
}

/// How many of a stream's changes have ids in a range (`PRIMARY`), waiting for any not yet
/// committed: (first, last, stream). What the EXPLAIN test runs (without the locking clause).
pub const STREAM_IDS_SQL: &str = "SELECT COUNT(*) FROM binlog_events \
     WHERE event_id BETWEEN ? AND ? AND stream_id = ? LOCK IN SHARE MODE";

/// Changes per `IN (…)` list when the fill's changes are taken out again.
const DELETE_BATCH: usize = 1_000;

/// The `event_id`s of the range's changes that this fill (or an earlier, interrupted run of
/// it) wrote: the gap stream's changes in `files` (`uk_change`: stream, file) that the range
/// wants, with ids above the gap's `before_event_id` (a change below it was streamed before
/// the gap, and is in place already); all of them, sorted.
async fn fill_ids(
    conn: &mut Conn,
    gap: &GapRow,
    range: &GapRange,
    files: &[PathBuf],
) -> Result<Vec<u64>, FillError> {
    let names: Vec<String> = files.iter().map(|p| name_of(p)).collect();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut params: Vec<mysql_async::Value> = vec![gap.server_id.into()];
    params.extend(names.iter().map(|n| mysql_async::Value::from(n.as_str())));
    params.push(gap.before_event_id.unwrap_or(0).into());
    let rows: Vec<(u64, String, u64, Option<String>)> =
        conn.exec(fill_ids_sql(names.len()), params).await?;
    let mut ids: Vec<u64> = rows
        .into_iter()
        .filter(|(_, file, pos, gtid)| {
            let gtid = gtid.as_deref().and_then(|g| g.parse::<Gtid>().ok());
            range.wants(&BinlogPosition::new(file.as_str(), *pos), gtid.as_ref())
        })
        .map(|(id, ..)| id)
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// The `ddl_events` markers the fill wrote for the range before its first change (`first`;
/// `None`: it wrote none): their `last_event_id` is the largest id when they were written, a
/// change streamed after the gap (or another stream's), which would place them after it. Their
/// `seq`s; [`place_markers`] moves them to the gap's place.
async fn early_markers(
    conn: &mut Conn,
    gap: &GapRow,
    range: &GapRange,
    files: &[PathBuf],
    first: Option<u64>,
) -> Result<Vec<u64>, FillError> {
    let Some(before) = gap.before_event_id else {
        return Ok(Vec::new());
    };
    let names: Vec<String> = files.iter().map(|p| name_of(p)).collect();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut params: Vec<mysql_async::Value> = vec![gap.server_id.into()];
    params.extend(names.iter().map(|n| mysql_async::Value::from(n.as_str())));
    params.push(before.into());
    params.push(first.unwrap_or(u64::MAX).into());
    let rows: Vec<(u64, String, u64, Option<String>)> =
        conn.exec(early_markers_sql(names.len()), params).await?;
    Ok(rows
        .into_iter()
        .filter(|(_, file, pos, gtid)| {
            let gtid = gtid.as_deref().and_then(|g| g.parse::<Gtid>().ok());
            range.wants(&BinlogPosition::new(file.as_str(), *pos), gtid.as_ref())
        })
        .map(|(seq, ..)| seq)
        .collect())
}

/// Sets the `last_event_id` of the markers `seqs` to the gap's `before_event_id`: after the
/// stream's changes before the gap, before every filled change.
async fn place_markers(
    conn: &mut Conn,
    gap: &GapRow,
    seqs: &[u64],
) -> Result<(), mysql_async::Error> {
    let Some(before) = gap.before_event_id.filter(|_| !seqs.is_empty()) else {
        return Ok(());
    };
    let list = seqs
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    conn.exec_drop(
        format!("UPDATE ddl_events SET last_event_id = ? WHERE seq IN ({list})"),
        (before,),
    )
    .await
}

/// Marks the gap filled from `files_text` with the first and last id of the fill's changes
/// ((0, 0): none were new), in the transaction that checks that the stream wrote nothing among
/// them; if it did, the fill's changes are deleted and the fill refused (module docs).
async fn record_fill(
    conn: &mut Conn,
    gap: &GapRow,
    range: &GapRange,
    files: &[PathBuf],
    files_text: &str,
) -> Result<(), FillError> {
    let ids = fill_ids(conn, gap, range, files).await?;
    let markers = early_markers(conn, gap, range, files, ids.first().copied()).await?;
    let (first, last) = (
        ids.first().copied().unwrap_or(0),
        ids.last().copied().unwrap_or(0),
    );
    let checked = async {
        conn.query_drop("START TRANSACTION").await?;
        // A locking read waits for a stream transaction that took an id in the window and has
        // not committed yet, so a change being written right now is counted too.
        let counted: Option<u64> = conn
            .exec_first(STREAM_IDS_SQL, (first, last, gap.server_id))
            .await?;
        let interleaved = counted.unwrap_or(0).saturating_sub(ids.len() as u64);
        if interleaved == 0 {
            place_markers(conn, gap, &markers).await?;
            gaps::mark_filled(conn, gap.gap_id, files_text, (first, last)).await?;
        }
        conn.query_drop("COMMIT").await?;
        Ok::<u64, mysql_async::Error>(interleaved)
    }
    .await;
    let interleaved = match checked {
        Ok(n) => n,
        Err(e) => {
            let _ = conn.query_drop("ROLLBACK").await;
            return Err(e.into());
        }
    };
    if interleaved == 0 {
        return Ok(());
    }
    for chunk in ids.chunks(DELETE_BATCH) {
        let list = chunk
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        for table in ["key_changes", "binlog_events"] {
            conn.exec_drop(
                format!("DELETE FROM {table} WHERE stream_id = ? AND event_id IN ({list})"),
                (gap.server_id,),
            )
            .await?;
        }
    }
    Err(FillError::Interleaved {
        gap_id: gap.gap_id,
        from: gap.from.clone(),
        to: gap.to.clone(),
        server_id: gap.server_id,
        interleaved,
        first,
        last,
    })
}

fn not_covered(gap: &GapRow, missing: String) -> FillError {
    FillError::NotCovered {
        gap_id: gap.gap_id,
        from: gap.from.clone(),
        to: gap.to.clone(),
        missing,
    }
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The files a range can be in. Position mode: exactly the binlogs from the gap's first file to
/// the one before the file the stream continued in, each of which must be there. GTID mode:
/// all of them (the survey finds which hold the range).
fn candidates(
    files: &[PathBuf],
    range: &GapRange,
    gap: &GapRow,
) -> Result<Vec<PathBuf>, FillError> {
    let GapRange::Position { from, to } = range else {
        return Ok(files.to_vec());
    };
    let (Some(first), Some(next)) = (from.file_seq(), to.file_seq()) else {
        return Err(not_covered(
            gap,
            format!("binlog {} (its name has no sequence number)", from.file),
        ));
    };
    let (base, width) = match from.file.rsplit_once('.') {
        Some((base, ext)) => (base.to_string(), ext.len()),
        None => (from.file.clone(), 6),
    };
    let mut out = Vec::new();
    for seq in first..next.max(first + 1) {
        let name = format!("{base}.{seq:0width$}");
        match files.iter().find(|p| name_of(p) == name) {
            Some(p) => out.push(p.clone()),
            None if seq == first => {
                return Err(not_covered(
                    gap,
                    format!("binlog {name} from offset {} on", from.pos),
                ))
            }
            None => return Err(not_covered(gap, format!("binlog {name} (all of it)"))),
        }
    }
    Ok(out)
}

/// Reads `files` without decoding rows; returns those that hold transactions of the range, or
/// what is missing. Every event's framing and checksum is verified on the way.
fn survey(files: &[PathBuf], range: &GapRange, gap: &GapRow) -> Result<Vec<PathBuf>, FillError> {
    let mut seen: Vec<Gtid> = Vec::new();
    let mut holding = Vec::new();
    let mut last_closed = (String::new(), 0u64, true);
    for path in files {
        let mut file = BinlogFile::open(path).map_err(FilesError::from)?;
        let mut wanted_here = false;
        let mut last_outer = 0u8;
        while let Some(event) = file.next_event().map_err(FilesError::from)? {
            if event.header().log_pos() > 0 {
                last_outer = event.header().event_type_raw();
            }
            if !starts_transaction(&event) {
                continue;
            }
            let gtid = gtid_of(&event);
            let at = BinlogPosition::new(file.name(), event_start(&event));
            if range.wants(&at, gtid.as_ref()) {
                wanted_here = true;
                seen.extend(gtid);
            }
        }
        let closed = matches!(last_outer, ROTATE_EVENT | STOP_EVENT);
        last_closed = (file.name().to_string(), file.len(), closed);
        if wanted_here || matches!(range, GapRange::Position { .. }) {
            holding.push(path.clone());
        }
    }
    if let GapRange::Position { .. } = range {
        let (name, len, closed) = last_closed;
        if !closed {
            return Err(not_covered(
                gap,
                format!("binlog {name} from offset {len} on (the copy ends before the ROTATE that closes the file: it was copied while the server still wrote it)"),
            ));
        }
    }
    if let Some(left) = range.gtids_left(&seen) {
        return Err(not_covered(gap, left));
    }
    Ok(holding)
}

//! The read side of the cold tier: which files may hold the changes a selection asks for, and
//! their matching rows, reading as little as the layout, the manifest and the files' own
//! statistics allow.
//!
//! # Pruning, in three steps
//! 1. **Files**, before any is opened: by the manifest in the index when it is reachable (each
//!    file's stream, table, hour, `event_id` and time range, and its integer key range: a
//!    one-key read over a year of an integer-keyed table opens the few files whose keys span
//!    the key, not a year of footers), else by the layout alone (the
//!    `schema=/table=/date=/hour=/stream=N-E` segments of each path, listed under the
//!    narrowest prefix the selection allows).
//! 2. **Row groups**, from a file's footer: by the min/max statistics of `event_id`,
//!    `event_timestamp`, `stream_id`, `pk_values` and `gtid`, then by the `pk_values` and
//!    `gtid` bloom filters (`writer`): a one-key read opens each candidate file's footer and
//!    filters, and decodes only the groups that may hold the key.
//! 3. **Rows**: every decoded row is checked against the whole [`Scan`].
//!
//! # Invariants
//! * **All file access goes through [`Source`]**: list a prefix, read a byte range. A file is
//!   read as its footer (one range from the end) and the ranges of the row groups and bloom
//!   filters it needs, never whole unless a selection needs every group.
//! * Pruning only skips what cannot match: statistics are bounds (a truncated string
//!   statistic still bounds), a bloom filter has no false negatives, and a file or group
//!   without a statistic is read.
//! * [`ReadStats`] counts what was opened and read, for the DBA's `files read: 2 of 40`.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Mutex;

use bytes::Bytes;
use mysql_async::Conn;
use parquet::bloom_filter::Sbbf;
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::reader::{ChunkReader, FileReader, Length, SerializedFileReader};
use parquet::file::statistics::Statistics;
use serde::Serialize;

use super::layout::FileKey;
use super::manifest::{self, FileRecord};
use super::store::Store;
use super::writer::{archive_row, int_key, ArchiveRow};
use super::ArchiveError;
use crate::index::ddl::PARTITION_SECONDS;

/// A file of the archive, as a listing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Path relative to the archive root, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// Where the archive's bytes are: the one interface every read goes through. The archive's
/// [`store::Store`] (a directory or S3) implements it; tests may give anything else.
pub trait Source: Send + Sync {
    /// The archive's root, for messages (`/srv/archive`, `s3://bucket/prefix`).
    fn root(&self) -> String;
    /// Every file under `prefix` (relative, `/`-separated, empty for all), recursively.
    fn list(&self, prefix: &str) -> Result<Vec<Listed>, ArchiveError>;
    /// The bytes `range` of the file at `path` (relative to the root).
    fn read_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, ArchiveError>;
}

/// The parquet reader pulls bytes synchronously as it decodes, while the store's S3 requests
/// are async: they run on the current (multi-threaded) runtime, whose worker this read
/// occupies meanwhile, as a local file read does.
fn blocking<T>(f: impl std::future::Future<Output = T>) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => tokio::task::block_in_place(|| h.block_on(f)),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the archive's reads")
            .block_on(f),
    }
}

impl Source for Store {
    fn root(&self) -> String {
        self.location()
    }

    fn list(&self, prefix: &str) -> Result<Vec<Listed>, ArchiveError> {
        let mut out: Vec<Listed> = blocking(Store::list(self, prefix))?
            .into_iter()
            .map(|o| Listed {
                path: o.path,
                size: o.bytes,
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn read_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, ArchiveError> {
        let len = range.end.saturating_sub(range.start);
        Ok(Bytes::from(blocking(self.get_range(
            path,
            range.start,
            len,
        ))?))
    }
}

/// A file that may be read: what is known of it before it is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    path: String,
    size: u64,
    stream_id: u32,
    schema: String,
    table: String,
    hour_start: i64,
    /// Smallest and largest `event_id`: from the manifest, or the first from the file name.
    min_event_id: u64,
    max_event_id: Option<u64>,
    /// Earliest and latest time: from the manifest, or the file's hour.
    times: (i64, i64),
    /// Rows, when the manifest says.
    rows: Option<u64>,
    /// The integer key range, when the manifest records one.
    int_keys: Option<(i64, i64)>,
}

impl Candidate {
    fn of_record(r: &FileRecord) -> Candidate {
        Candidate {
            path: r.path.clone(),
            size: r.bytes,
            stream_id: r.stream_id,
            schema: r.schema.clone(),
            table: r.table.clone(),
            hour_start: r.hour_start,
            min_event_id: r.min_event_id,
            max_event_id: Some(r.max_event_id),
            times: (r.min_time, r.max_time),
            rows: Some(r.rows),
            int_keys: r.int_keys,
        }
    }

    fn of_listed(l: &Listed) -> Option<Candidate> {
        let key = FileKey::parse(&l.path)?;
        Some(Candidate {
            path: l.path.clone(),
            size: l.size,
            stream_id: key.stream_id,
            schema: key.schema,
            table: key.table,
            hour_start: key.hour_start,
            min_event_id: key.first_event_id,
            max_event_id: None,
            times: (key.hour_start, key.hour_start + PARTITION_SECONDS - 1),
            rows: None,
            int_keys: None,
        })
    }
}

/// Which end of the `event_id` order a search wants: the smallest or the largest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    First,
    Last,
}

impl End {
    /// Whether `event_id` is nearer this end than `best`.
    fn beats(self, event_id: u64, best: u64) -> bool {
        match self {
            End::First => event_id < best,
            End::Last => event_id > best,
        }
    }

    /// Whether no row of `c` can be nearer this end than `best` (a bound the file does not
    /// know, a largest found by layout alone, proves nothing).
    fn cannot_beat(self, c: &Candidate, best: u64) -> bool {
        match self {
            End::First => c.min_event_id > best,
            End::Last => c.max_event_id.is_some_and(|m| m < best),
        }
    }
}

/// A key looked up from a point on: `pk_values = pk AND event_id >= from` (and, with
/// `stream`, only that stream's changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFrom {
    /// The `pk_values`.
    pub pk: String,
    /// The smallest `event_id` it is looked up from.
    pub from: u64,
    /// Only this stream's changes under the key.
    pub stream: Option<u32>,
}

/// Which archived changes a read wants: the same filters `binlog_events` is read with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scan {
    /// Only this stream's changes.
    pub stream: Option<u32>,
    /// Schema.
    pub schema: Option<String>,
    /// Table (with `schema`).
    pub table: Option<String>,
    /// Any of these keys (`None`: any key).
    pub keys: Option<Vec<KeyFrom>>,
    /// `event_id` at least this.
    pub min_event_id: Option<u64>,
    /// `event_id` at most this.
    pub max_event_id: Option<u64>,
    /// Stamped at or after (Unix seconds).
    pub since: Option<i64>,
    /// Stamped at or before (Unix seconds).
    pub until: Option<i64>,
    /// Any of these GTIDs (`None`: any).
    pub gtids: Option<BTreeSet<String>>,
    /// `event_type` (1, 2, 3).
    pub kind: Option<u8>,
}

impl Scan {
    /// The `event_id` range, inclusive.
    fn ids(&self) -> (u64, u64) {
        (
            self.min_event_id.unwrap_or(0),
            self.max_event_id.unwrap_or(u64::MAX),
        )
    }

    /// The time range, inclusive, in seconds.
    fn times(&self) -> (i64, i64) {
        (
            self.since.unwrap_or(i64::MIN),
            self.until.unwrap_or(i64::MAX),
        )
    }

    /// Whether a file known as `c` may hold a match.
    fn file_may_match(&self, c: &Candidate) -> bool {
        let (lo, hi) = self.ids();
        let (since, until) = self.times();
        let key_floor = self
            .keys
            .as_ref()
            .map(|k| k.iter().map(|k| k.from).min().unwrap_or(u64::MAX));
        self.stream.is_none_or(|s| s == c.stream_id)
            && self.schema.as_ref().is_none_or(|s| *s == c.schema)
            && self.table.as_ref().is_none_or(|t| *t == c.table)
            && c.min_event_id <= hi
            && c.max_event_id.is_none_or(|m| m >= lo)
            && c.max_event_id
                .is_none_or(|m| key_floor.is_none_or(|f| m >= f))
            && c.times.0 <= until
            && c.times.1 >= since
            && self.keys.as_ref().is_none_or(|k| !k.is_empty())
            && self.keys.as_ref().is_none_or(|k| keys_may_be_in(k, c))
            && self.gtids.as_ref().is_none_or(|g| !g.is_empty())
    }

    /// Whether `r` is a match.
    pub fn matches(&self, r: &ArchiveRow) -> bool {
        let (lo, hi) = self.ids();
        let (since, until) = self.times();
        self.stream.is_none_or(|s| s == r.stream_id)
            && self.schema.as_ref().is_none_or(|s| *s == r.schema)
            && self.table.as_ref().is_none_or(|t| *t == r.table)
            && (lo..=hi).contains(&r.event_id)
            && (since..=until).contains(&r.event_time)
            && self.kind.is_none_or(|k| k == r.event_type)
            && self.keys.as_ref().is_none_or(|keys| {
                keys.iter().any(|k| {
                    k.pk == r.pk_values
                        && r.event_id >= k.from
                        && k.stream.is_none_or(|s| s == r.stream_id)
                })
            })
            && self
                .gtids
                .as_ref()
                .is_none_or(|g| r.gtid.as_ref().is_some_and(|x| g.contains(x)))
    }
}

/// Whether a file known as `c` may hold one of `keys`: every key of a file with an integer
/// key range is an integer in canonical form within it, so a key that is not one, or is
/// outside it, is not in the file.
fn keys_may_be_in(keys: &[KeyFrom], c: &Candidate) -> bool {
    let Some((lo, hi)) = c.int_keys else {
        return true;
    };
    keys.iter().any(|k| {
        k.stream.is_none_or(|s| s == c.stream_id)
            && int_key(&k.pk).is_some_and(|v| (lo..=hi).contains(&v))
    })
}

/// What reads of the archive opened and read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReadStats {
    /// Files in the archive (recorded in the manifest, or found by listing).
    pub files: u64,
    /// Files whose footer was read (the others were ruled out by manifest or layout).
    pub files_opened: u64,
    /// Files of which at least one row group was decoded.
    pub files_read: u64,
    /// Row groups in the opened files.
    pub groups: u64,
    /// Row groups decoded.
    pub groups_read: u64,
    /// Bytes read from the store.
    pub bytes_read: u64,
    /// Rows that matched.
    pub rows_matched: u64,
}

impl ReadStats {
    /// `files read: 2 of 40 (3 footers opened; row groups read: 2 of 3; 1.2 MiB)`.
    pub fn describe(&self) -> String {
        format!(
            "files read: {} of {} ({} footer(s) opened; row groups read: {} of {}; {} byte(s); {} matching change(s))",
            self.files_read,
            self.files,
            self.files_opened,
            self.groups_read,
            self.groups,
            self.bytes_read,
            self.rows_matched
        )
    }
}

/// The archive's extent, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Extent {
    /// Where it is.
    pub root: String,
    /// Where the file list came from: `manifest` (the index's `archive_files`) or `layout`
    /// (listing the directory).
    pub source: &'static str,
    /// Files.
    pub files: u64,
    /// Bytes.
    pub bytes: u64,
    /// Changes (`None` from the layout alone: the footers were not read).
    pub rows: Option<u64>,
    /// Earliest change's time (Unix seconds; from the layout: its hour).
    pub first_time: Option<i64>,
    /// Latest change's time (from the layout: the end of its hour).
    pub last_time: Option<i64>,
    /// Per table.
    pub tables: Vec<TableExtent>,
}

/// One table's part of the archive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableExtent {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Files.
    pub files: u64,
    /// Bytes.
    pub bytes: u64,
    /// Changes, when known.
    pub rows: Option<u64>,
    /// Earliest time.
    pub first_time: i64,
    /// Latest time.
    pub last_time: i64,
}

/// An archive opened for reading.
pub struct Archive {
    store: Box<dyn Source>,
    files: Vec<Candidate>,
    from_manifest: bool,
    stats: Mutex<ReadStats>,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("root", &self.store.root())
            .field("files", &self.files.len())
            .finish()
    }
}

impl Archive {
    /// Opens the archive in `store`: its files from the manifest in `index` (connection and
    /// database) when one is given and records files, else from listing the store.
    pub async fn open(
        store: Box<dyn Source>,
        index: Option<(&mut Conn, &str)>,
    ) -> Result<Archive, ArchiveError> {
        let records = match index {
            Some((conn, database)) => manifest::all(conn, database).await?,
            None => Vec::new(),
        };
        if !records.is_empty() {
            return Ok(Archive::with(
                store,
                records.iter().map(Candidate::of_record).collect(),
                true,
            ));
        }
        Archive::from_layout(store)
    }

    /// Opens the archive from its layout alone (no index).
    pub fn from_layout(store: Box<dyn Source>) -> Result<Archive, ArchiveError> {
        let listed = tokio::task::block_in_place(|| store.list(""))?;
        let files = listed.iter().filter_map(Candidate::of_listed).collect();
        Ok(Archive::with(store, files, false))
    }

    fn with(store: Box<dyn Source>, files: Vec<Candidate>, from_manifest: bool) -> Archive {
        let stats = ReadStats {
            files: files.len() as u64,
            ..ReadStats::default()
        };
        Archive {
            store,
            files,
            from_manifest,
            stats: Mutex::new(stats),
        }
    }

    /// What the reads so far opened and read.
    pub fn stats(&self) -> ReadStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, f: impl FnOnce(&mut ReadStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Every archived change that `scan` matches, in file order (by path, then `event_id`).
    /// Blocking I/O, run in place on the async runtime's worker.
    pub fn read(&self, scan: &Scan) -> Result<Vec<ArchiveRow>, ArchiveError> {
        let mut out = Vec::new();
        tokio::task::block_in_place(|| {
            self.each(scan, &mut |r| {
                out.push(r);
                Ok(())
            })
        })?;
        Ok(out)
    }

    /// Hands every archived change `scan` matches to `each`.
    pub fn each(
        &self,
        scan: &Scan,
        each: &mut dyn FnMut(ArchiveRow) -> Result<(), ArchiveError>,
    ) -> Result<(), ArchiveError> {
        for c in self.files.iter().filter(|c| scan.file_may_match(c)) {
            self.read_file(c, scan, each)?;
        }
        Ok(())
    }

    /// Whether a file may hold a change with an `event_id` of at least `from` (a file whose
    /// largest is unknown, found by layout alone, may).
    pub fn reaches(&self, from: u64) -> bool {
        self.files
            .iter()
            .any(|c| c.max_event_id.is_none_or(|m| m >= from))
    }

    /// [`Archive::each`] from the newest file down (by largest `event_id`, a file whose largest
    /// is unknown first), stopping before the first file of which `enough(largest)` says that
    /// nothing in it is wanted any more: `query --limit 10` over a year reads the newest files.
    pub fn each_newest_first(
        &self,
        scan: &Scan,
        enough: &dyn Fn(u64) -> bool,
        each: &mut dyn FnMut(ArchiveRow) -> Result<(), ArchiveError>,
    ) -> Result<(), ArchiveError> {
        for c in self.candidates(scan, End::Last) {
            if c.max_event_id.is_some_and(enough) {
                break;
            }
            self.read_file(c, scan, each)?;
        }
        Ok(())
    }

    /// The match of `scan` with the smallest `event_id`: files are read in the order of their
    /// smallest `event_id`, and none once that is above the best match found.
    pub fn first_match(&self, scan: &Scan) -> Result<Option<ArchiveRow>, ArchiveError> {
        self.best_match(scan, End::First)
    }

    /// The match of `scan` with the largest `event_id`: files are read from the largest
    /// `event_id` down (a file whose largest is unknown first), none once below the best found.
    pub fn last_match(&self, scan: &Scan) -> Result<Option<ArchiveRow>, ArchiveError> {
        self.best_match(scan, End::Last)
    }

    /// The match of `scan` nearest `end` of the `event_id` order, reading the files most
    /// likely to hold it first and stopping at the first file that cannot hold a better one.
    fn best_match(&self, scan: &Scan, end: End) -> Result<Option<ArchiveRow>, ArchiveError> {
        let mut best: Option<ArchiveRow> = None;
        tokio::task::block_in_place(|| {
            for c in self.candidates(scan, end) {
                if best
                    .as_ref()
                    .is_some_and(|b| end.cannot_beat(c, b.event_id))
                {
                    break;
                }
                self.read_file(c, scan, &mut |r| {
                    if best
                        .as_ref()
                        .is_none_or(|b| end.beats(r.event_id, b.event_id))
                    {
                        best = Some(r);
                    }
                    Ok(())
                })?;
            }
            Ok::<_, ArchiveError>(())
        })?;
        Ok(best)
    }

    /// The files `scan` may match, those nearest `end` of the `event_id` order first.
    fn candidates(&self, scan: &Scan, end: End) -> Vec<&Candidate> {
        let mut files: Vec<&Candidate> = self
            .files
            .iter()
            .filter(|c| scan.file_may_match(c))
            .collect();
        match end {
            End::First => files.sort_by_key(|c| c.min_event_id),
            // A file whose largest is unknown may hold anything, so it comes first.
            End::Last => {
                files.sort_by_key(|c| std::cmp::Reverse(c.max_event_id.unwrap_or(u64::MAX)))
            }
        }
        files
    }

    /// The earliest time of the files `scan` may match (from the manifest exact, from the
    /// layout the start of the hour), without opening any.
    pub fn first_time(&self, scan: &Scan) -> Option<i64> {
        self.files
            .iter()
            .filter(|c| scan.file_may_match(c))
            .map(|c| c.times.0)
            .min()
    }

    /// The archive's files, bytes, changes and time range, in all and per table.
    pub fn extent(&self) -> Extent {
        let mut tables: Vec<TableExtent> = Vec::new();
        for c in &self.files {
            let at = tables
                .iter()
                .position(|t| t.schema == c.schema && t.table == c.table);
            let t = match at {
                Some(i) => &mut tables[i],
                None => {
                    tables.push(TableExtent {
                        schema: c.schema.clone(),
                        table: c.table.clone(),
                        rows: Some(0),
                        first_time: c.times.0,
                        last_time: c.times.1,
                        ..TableExtent::default()
                    });
                    tables.last_mut().expect("just pushed")
                }
            };
            t.files += 1;
            t.bytes += c.size;
            t.rows = t.rows.zip(c.rows).map(|(a, b)| a + b);
            t.first_time = t.first_time.min(c.times.0);
            t.last_time = t.last_time.max(c.times.1);
        }
        tables.sort_by(|a, b| (&a.schema, &a.table).cmp(&(&b.schema, &b.table)));
        Extent {
            root: self.store.root(),
            source: if self.from_manifest {
                "manifest"
            } else {
                "layout"
            },
            files: self.files.len() as u64,
            bytes: self.files.iter().map(|c| c.size).sum(),
            rows: self
                .files
                .iter()
                .map(|c| c.rows)
                .try_fold(0u64, |a, r| r.map(|r| a + r)),
            first_time: self.files.iter().map(|c| c.times.0).min(),
            last_time: self.files.iter().map(|c| c.times.1).max(),
            tables,
        }
    }

    /// Reads a range through the store, counting its bytes.
    fn fetch(&self, path: &str, range: Range<u64>) -> Result<Bytes, ArchiveError> {
        let bytes = self.store.read_range(path, range)?;
        self.count(|s| s.bytes_read += bytes.len() as u64);
        Ok(bytes)
    }

    /// Reads the footer of `c`, then the row groups of it that may match `scan`.
    fn read_file(
        &self,
        c: &Candidate,
        scan: &Scan,
        each: &mut dyn FnMut(ArchiveRow) -> Result<(), ArchiveError>,
    ) -> Result<(), ArchiveError> {
        let pq = |e: parquet::errors::ParquetError| ArchiveError::Read {
            root: self.store.root(),
            path: c.path.clone(),
            what: e.to_string(),
        };
        let mut sparse = Sparse {
            len: c.size,
            chunks: Vec::new(),
        };
        let tail_len = c.size.min(FOOTER_GUESS);
        let tail = self.fetch(&c.path, c.size - tail_len..c.size)?;
        sparse.add(c.size - tail_len, tail.clone());
        let meta_len = footer_len(&tail).ok_or_else(|| {
            pq(parquet::errors::ParquetError::General(
                "not a Parquet file (no PAR1 footer)".into(),
            ))
        })?;
        if meta_len + 8 > tail_len {
            let start = c.size.saturating_sub(meta_len + 8);
            let more = self.fetch(&c.path, start..c.size - tail_len)?;
            sparse.add(start, more);
        }
        let reader = SerializedFileReader::new(sparse.clone()).map_err(pq)?;
        let meta = reader.metadata();
        let groups = meta.num_row_groups();
        self.count(|s| {
            s.files_opened += 1;
            s.groups += groups as u64;
        });
        let columns = Columns::of(meta.file_metadata().schema_descr());
        let mut keep = Vec::new();
        for i in 0..groups {
            let g = meta.row_group(i);
            if !group_may_match(g, &columns, scan) {
                continue;
            }
            if !self.blooms_may_match(c, g, &columns, scan, &mut sparse)? {
                continue;
            }
            keep.push(i);
        }
        if keep.is_empty() {
            return Ok(());
        }
        for &i in &keep {
            let (start, end) = group_range(meta.row_group(i));
            if !sparse.holds(start, end) {
                let bytes = self.fetch(&c.path, start..end)?;
                sparse.add(start, bytes);
            }
        }
        self.count(|s| {
            s.files_read += 1;
            s.groups_read += keep.len() as u64;
        });
        let reader = SerializedFileReader::new(sparse).map_err(pq)?;
        for i in keep {
            let rows = reader.get_row_group(i).map_err(pq)?;
            for row in rows.get_row_iter(None).map_err(pq)? {
                let r = archive_row(&row.map_err(pq)?, &c.path, i)?;
                if scan.matches(&r) {
                    self.count(|s| s.rows_matched += 1);
                    each(r)?;
                }
            }
        }
        Ok(())
    }

    /// Whether the bloom filters of group `g` allow a key or GTID of `scan`.
    fn blooms_may_match(
        &self,
        c: &Candidate,
        g: &RowGroupMetaData,
        columns: &Columns,
        scan: &Scan,
        sparse: &mut Sparse,
    ) -> Result<bool, ArchiveError> {
        let wanted: [(Option<usize>, Option<Vec<&str>>); 2] = [
            (
                columns.pk,
                scan.keys
                    .as_ref()
                    .map(|k| k.iter().map(|k| k.pk.as_str()).collect()),
            ),
            (
                columns.gtid,
                scan.gtids
                    .as_ref()
                    .map(|g| g.iter().map(String::as_str).collect()),
            ),
        ];
        for (column, values) in wanted {
            let (Some(column), Some(values)) = (column, values) else {
                continue;
            };
            let chunk = g.column(column);
            let (Some(offset), Some(length)) =
                (chunk.bloom_filter_offset(), chunk.bloom_filter_length())
            else {
                continue;
            };
            let (Ok(start), Ok(length)) = (u64::try_from(offset), u64::try_from(length)) else {
                continue;
            };
            if !sparse.holds(start, start + length) {
                let bytes = self.fetch(&c.path, start..start + length)?;
                sparse.add(start, bytes);
            }
            let filter =
                Sbbf::read_from_column_chunk(chunk, &*sparse).map_err(|e| ArchiveError::Read {
                    root: self.store.root(),
                    path: c.path.clone(),
                    what: format!("bloom filter of {}: {e}", chunk.column_path()),
                })?;
            if let Some(filter) = filter {
                if !values
                    .iter()
                    .any(|v| filter.check(&parquet::data_type::ByteArray::from(*v)))
                {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}

/// Bytes read from a file's end first: the footer of a file of a few row groups fits.
const FOOTER_GUESS: u64 = 64 * 1024;

/// The footer's metadata length, from the file's last 8 bytes.
fn footer_len(tail: &[u8]) -> Option<u64> {
    let n = tail.len();
    if n < 8 || &tail[n - 4..] != b"PAR1" {
        return None;
    }
    let len = u32::from_le_bytes(tail[n - 8..n - 4].try_into().ok()?);
    Some(u64::from(len))
}

/// The byte range of a row group's column chunks.
fn group_range(g: &RowGroupMetaData) -> (u64, u64) {
    let mut start = u64::MAX;
    let mut end = 0;
    for c in g.columns() {
        let (s, len) = c.byte_range();
        start = start.min(s);
        end = end.max(s + len);
    }
    (start.min(end), end)
}

/// The positions of the columns pruning looks at.
struct Columns {
    event_id: Option<usize>,
    stream_id: Option<usize>,
    time: Option<usize>,
    pk: Option<usize>,
    gtid: Option<usize>,
}

impl Columns {
    fn of(schema: &parquet::schema::types::SchemaDescriptor) -> Columns {
        let find =
            |name: &str| (0..schema.num_columns()).find(|&i| schema.column(i).name() == name);
        Columns {
            event_id: find("event_id"),
            stream_id: find("stream_id"),
            time: find("event_timestamp"),
            pk: find("pk_values"),
            gtid: find("gtid"),
        }
    }
}

/// The min/max of an INT64 column of a group, when recorded.
fn int_range(g: &RowGroupMetaData, column: Option<usize>) -> Option<(i64, i64)> {
    match g.column(column?).statistics()? {
        Statistics::Int64(s) => Some((*s.min_opt()?, *s.max_opt()?)),
        _ => None,
    }
}

/// The min/max of a text column of a group, when recorded.
fn text_range(g: &RowGroupMetaData, column: Option<usize>) -> Option<(Vec<u8>, Vec<u8>)> {
    match g.column(column?).statistics()? {
        Statistics::ByteArray(s) => {
            Some((s.min_opt()?.data().to_vec(), s.max_opt()?.data().to_vec()))
        }
        _ => None,
    }
}

/// Whether a group may hold a match, by its statistics (a missing statistic rules nothing out).
fn group_may_match(g: &RowGroupMetaData, columns: &Columns, scan: &Scan) -> bool {
    let overlaps =
        |r: Option<(i64, i64)>, lo: i64, hi: i64| r.is_none_or(|(a, b)| a <= hi && b >= lo);
    let (lo, hi) = scan.ids();
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let ids = int_range(g, columns.event_id);
    if !overlaps(ids, clamp(lo), clamp(hi)) {
        return false;
    }
    if let Some(keys) = &scan.keys {
        let floor = keys.iter().map(|k| k.from).min().unwrap_or(u64::MAX);
        if ids.is_some_and(|(_, max)| max < clamp(floor)) {
            return false;
        }
    }
    let (since, until) = scan.times();
    let micros = |s: i64| s.saturating_mul(1_000_000);
    if !overlaps(
        int_range(g, columns.time),
        micros(since),
        micros(until).saturating_add(999_999),
    ) {
        return false;
    }
    if let Some(s) = scan.stream {
        if !overlaps(int_range(g, columns.stream_id), i64::from(s), i64::from(s)) {
            return false;
        }
    }
    let within = |range: Option<(Vec<u8>, Vec<u8>)>, v: &str| {
        range.is_none_or(|(a, b)| a.as_slice() <= v.as_bytes() && v.as_bytes() <= b.as_slice())
    };
    if let Some(keys) = &scan.keys {
        let range = text_range(g, columns.pk);
        if !keys.iter().any(|k| within(range.clone(), &k.pk)) {
            return false;
        }
    }
    if let Some(gtids) = &scan.gtids {
        let range = text_range(g, columns.gtid);
        if !gtids.iter().any(|v| within(range.clone(), v)) {
            return false;
        }
    }
    true
}

/// The parts of a file read so far, as a [`ChunkReader`] for the parquet crate: it can read
/// only what was fetched through the [`Source`], so a read beyond that is an error, not a
/// silent read of the whole file.
#[derive(Clone)]
struct Sparse {
    len: u64,
    chunks: Vec<(u64, Bytes)>,
}

impl Sparse {
    fn add(&mut self, start: u64, bytes: Bytes) {
        self.chunks.push((start, bytes));
    }

    fn holds(&self, start: u64, end: u64) -> bool {
        self.chunk(start, end).is_some()
    }

    fn chunk(&self, start: u64, end: u64) -> Option<Bytes> {
        self.chunks.iter().find_map(|(at, b)| {
            let stop = at + b.len() as u64;
            (*at <= start && end <= stop)
                .then(|| b.slice((start - at) as usize..(end - at) as usize))
        })
    }
}

impl Length for Sparse {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for Sparse {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        use bytes::Buf;
        let found = self.chunks.iter().find_map(|(at, b)| {
            let stop = at + b.len() as u64;
            (*at <= start && start < stop).then(|| b.slice((start - at) as usize..))
        });
        found.map(Buf::reader).ok_or_else(|| {
            parquet::errors::ParquetError::General(format!(
                "archive read at offset {start}, which was not fetched"
            ))
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.chunk(start, start + length as u64).ok_or_else(|| {
            parquet::errors::ParquetError::General(format!(
                "archive read of {length} byte(s) at offset {start}, which were not fetched"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::writer::ParquetFile;

    fn row(event_id: u64, pk: &str) -> ArchiveRow {
        ArchiveRow {
            event_id,
            stream_id: 3,
            binlog_file: "binlog.000001".into(),
            start_pos: 100 + event_id,
            end_pos: 200 + event_id,
            row_in_event: 0,
            event_time: 1_795_615_200 + event_id as i64,
            gtid: Some(format!("u:{event_id}")),
            connection_id: None,
            schema: "app".into(),
            table: "t".into(),
            event_type: 1,
            pk_values: pk.into(),
            changed_columns: None,
            row_before: None,
            row_after: Some("{}".into()),
            schema_version: 1,
            policy_version: 0,
        }
    }

    /// A file of 4 groups of 100 rows with keys at random (every group spans most keys).
    fn archive() -> (std::path::PathBuf, Archive) {
        archive_in("read")
    }

    /// [`archive`] in a directory of its own per `tag` (tests run in parallel).
    fn archive_in(tag: &str) -> (std::path::PathBuf, Archive) {
        let dir = std::env::temp_dir().join(format!("bintrail-{tag}-{}", std::process::id()));
        let key = FileKey {
            stream_id: 3,
            schema: "app".into(),
            table: "t".into(),
            hour_start: 1_795_615_200,
            first_event_id: 1,
        };
        std::fs::create_dir_all(dir.join(key.dir())).unwrap();
        let mut f = ParquetFile::create_for(&dir.join(key.path()), 400).unwrap();
        for g in 0..4u64 {
            let rows: Vec<ArchiveRow> = (1..=100)
                .map(|i| {
                    let id = g * 100 + i;
                    row(id, &((id * 7919) % 1000).to_string())
                })
                .collect();
            f.write_group(&rows).unwrap();
        }
        f.finish().unwrap();
        let a =
            Archive::from_layout(Box::new(Store::open(dir.to_str().unwrap()).unwrap())).unwrap();
        (dir, a)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_one_key_read_decodes_only_the_group_whose_bloom_filter_has_the_key() {
        let (dir, a) = archive();
        let id = 250u64;
        let pk = ((id * 7919) % 1000).to_string();
        let scan = Scan {
            keys: Some(vec![KeyFrom {
                pk: pk.clone(),
                from: 0,
                stream: None,
            }]),
            ..Scan::default()
        };
        let rows = a.read(&scan).unwrap();
        assert!(rows.iter().any(|r| r.event_id == id), "{rows:?}");
        assert!(rows.iter().all(|r| r.pk_values == pk));
        let s = a.stats();
        assert_eq!((s.files, s.files_opened, s.files_read), (1, 1, 1), "{s:?}");
        assert_eq!(s.groups, 4);
        assert!(s.groups_read <= 2, "{s:?}");
        // A time range outside every group reads no group; an event_id range one group.
        let by_id = a
            .read(&Scan {
                min_event_id: Some(120),
                max_event_id: Some(130),
                ..Scan::default()
            })
            .unwrap();
        assert_eq!(
            by_id.iter().map(|r| r.event_id).collect::<Vec<_>>(),
            (120..=130).collect::<Vec<_>>()
        );
        assert_eq!(a.stats().groups_read, s.groups_read + 1);
        let below = |id: u64| Scan {
            stream: Some(3),
            max_event_id: Some(id),
            ..Scan::default()
        };
        assert_eq!(
            a.last_match(&below(176)).unwrap().map(|r| r.event_id),
            Some(176)
        );
        assert_eq!(
            a.first_match(&Scan {
                min_event_id: Some(333),
                ..Scan::default()
            })
            .unwrap()
            .map(|r| r.event_id),
            Some(333)
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_key_outside_a_files_recorded_integer_range_opens_no_footer() {
        let (dir, listed) = archive_in("read-int-keys");
        let mut files = listed.files.clone();
        files[0].int_keys = Some((0, 999));
        let a = Archive::with(
            Box::new(Store::open(dir.to_str().unwrap()).unwrap()),
            files,
            true,
        );
        let one = |pk: &str| Scan {
            keys: Some(vec![KeyFrom {
                pk: pk.into(),
                from: 0,
                stream: None,
            }]),
            ..Scan::default()
        };
        for outside in ["1000", "-1", "007", "7|1"] {
            assert!(a.read(&one(outside)).unwrap().is_empty());
        }
        assert_eq!(a.stats().files_opened, 0, "{:?}", a.stats());
        let pk = ((250 * 7919) % 1000).to_string();
        assert!(!a.read(&one(&pk)).unwrap().is_empty());
        assert_eq!(a.stats().files_opened, 1);
        std::fs::remove_dir_all(&dir).ok();
    }
}

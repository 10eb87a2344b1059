//! One Parquet file of the cold tier: its schema, the write (zstd, column statistics) and the
//! read back.
//!
//! # Invariants
//! * **The columns are the index's** (`binlog_events`, see `index::ddl`), under the same names,
//!   with types every engine reads: integers as INT64 (INT32 for `event_type`), text as
//!   BYTE_ARRAY with the STRING logical type, `event_timestamp` as INT64
//!   TIMESTAMP(MICROS, adjusted to UTC), the row images and `changed_columns` as their JSON
//!   text, exactly as the index holds it. `pk_hash` is left out: it is `SHA2(pk_values, 256)`.
//! * Rows are written in `event_id` order, and every column but the JSON text ones carries
//!   min/max statistics per row group and page, so a reader can skip row groups by key, time
//!   and `event_id` without decoding them. `pk_values` and `gtid` also carry a bloom filter per
//!   row group (sized for the file's rows): a group's key range spans most keys of a table
//!   whose changes hit keys at random, so only the filter lets a one-key read skip it.
//! * **Read back fails loudly**: a value of an unexpected type or out of its field's range is
//!   an error naming the file, the column and the row group, never a silent 0.
//! * A file's keys are summed up for the manifest ([`IntKeys`]): when every `pk_values` is an
//!   integer in canonical decimal form (a one-column integer key, the common case), their
//!   smallest and largest, so a one-key read can rule the file out without opening it.
//! * [`ParquetFile::finish`] returns only after the footer is written and the file is fsynced;
//!   its SHA-256 and size are of exactly the bytes written, computed on the way to the disk.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::{Compression, ZstdLevel};
use parquet::data_type::{ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::{SerializedColumnWriter, SerializedFileWriter};
use parquet::record::Field;
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::ColumnPath;
use sha2::{Digest, Sha256};

use super::ArchiveError;

/// The Parquet schema of an archive file: the columns of `binlog_events`, in its order.
pub const MESSAGE_TYPE: &str = "message binlog_events {
  REQUIRED INT64 event_id;
  REQUIRED INT64 stream_id;
  REQUIRED BYTE_ARRAY binlog_file (STRING);
  REQUIRED INT64 start_pos;
  REQUIRED INT64 end_pos;
  REQUIRED INT64 row_in_event;
  REQUIRED INT64 event_timestamp (TIMESTAMP(MICROS,true));
  OPTIONAL BYTE_ARRAY gtid (STRING);
  OPTIONAL INT64 connection_id;
  REQUIRED BYTE_ARRAY schema_name (STRING);
  REQUIRED BYTE_ARRAY table_name (STRING);
  REQUIRED INT32 event_type;
  REQUIRED BYTE_ARRAY pk_values (STRING);
  OPTIONAL BYTE_ARRAY changed_columns (STRING);
  OPTIONAL BYTE_ARRAY row_before (STRING);
  OPTIONAL BYTE_ARRAY row_after (STRING);
  REQUIRED INT64 schema_version;
  REQUIRED INT64 policy_version;
}";

/// The JSON text columns: large, rarely filtered on, so neither statistics nor dictionaries.
const JSON_COLUMNS: [&str; 3] = ["changed_columns", "row_before", "row_after"];

/// The zstd level: 3 is zstd's own default, most of the ratio at a fraction of the CPU.
const ZSTD_LEVEL: i32 = 3;

/// The columns with a bloom filter per row group: the ones a read looks single values up in.
pub const BLOOM_COLUMNS: [&str; 2] = ["pk_values", "gtid"];

/// False positives the bloom filters allow: 1 in 100 groups without the key is read anyway.
const BLOOM_FPP: f64 = 0.01;

/// Bloom filters are sized for at most this many distinct values (a row group's rows, see
/// `export`); a smaller file gets a smaller filter.
const BLOOM_MAX_NDV: u64 = 50_000;

/// One change as an archive file holds it: a row of `binlog_events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveRow {
    /// `event_id`.
    pub event_id: u64,
    /// `stream_id`.
    pub stream_id: u32,
    /// `binlog_file`.
    pub binlog_file: String,
    /// `start_pos`.
    pub start_pos: u64,
    /// `end_pos`.
    pub end_pos: u64,
    /// `row_in_event`.
    pub row_in_event: u32,
    /// `event_timestamp` as Unix seconds (the index stores whole seconds).
    pub event_time: i64,
    /// `gtid`.
    pub gtid: Option<String>,
    /// `connection_id`.
    pub connection_id: Option<u32>,
    /// `schema_name`.
    pub schema: String,
    /// `table_name`.
    pub table: String,
    /// `event_type`: 1 insert, 2 update, 3 delete.
    pub event_type: u8,
    /// `pk_values`.
    pub pk_values: String,
    /// `changed_columns`, JSON text.
    pub changed_columns: Option<String>,
    /// `row_before`, JSON text.
    pub row_before: Option<String>,
    /// `row_after`, JSON text.
    pub row_after: Option<String>,
    /// `schema_version`.
    pub schema_version: u32,
    /// `policy_version`.
    pub policy_version: u32,
}

/// What a finished file holds: the facts the manifest records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Rows.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the file, lower-case hex.
    pub sha256: String,
    /// Smallest and largest `event_id`.
    pub event_ids: (u64, u64),
    /// Earliest and latest `event_timestamp` (Unix seconds).
    pub times: (i64, i64),
    /// Smallest and largest key when every key is an integer ([`IntKeys`]).
    pub int_keys: Option<(i64, i64)>,
}

/// `pk` as an integer when it is one in canonical decimal form: `-12`, never `012`, `+12` or
/// `1|2`, so that equal integers are equal texts and a range of integers bounds the texts.
pub fn int_key(pk: &str) -> Option<i64> {
    let v: i64 = pk.parse().ok()?;
    (v.to_string() == pk).then_some(v)
}

/// The keys of a file as far as the manifest records them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IntKeys {
    /// No key seen yet.
    #[default]
    Empty,
    /// Every key seen is an integer ([`int_key`]), within this range.
    Range(i64, i64),
    /// A key that is not one integer was seen.
    Other,
}

impl IntKeys {
    /// Takes `pk` into account.
    pub fn add(&mut self, pk: &str) {
        *self = match (*self, int_key(pk)) {
            (IntKeys::Other, _) | (_, None) => IntKeys::Other,
            (IntKeys::Empty, Some(v)) => IntKeys::Range(v, v),
            (IntKeys::Range(lo, hi), Some(v)) => IntKeys::Range(lo.min(v), hi.max(v)),
        };
    }

    /// The range, when every key was an integer and there was one.
    pub fn range(self) -> Option<(i64, i64)> {
        match self {
            IntKeys::Range(lo, hi) => Some((lo, hi)),
            IntKeys::Empty | IntKeys::Other => None,
        }
    }
}

/// A writer that hashes and counts what passes through it.
struct Hashing {
    file: File,
    hasher: Sha256,
    bytes: u64,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A Parquet file being written, one row group per [`ParquetFile::write_group`].
pub struct ParquetFile {
    path: PathBuf,
    writer: SerializedFileWriter<io::BufWriter<Hashing>>,
    rows: u64,
    event_ids: Option<(u64, u64)>,
    times: Option<(i64, i64)>,
    keys: IntKeys,
}

impl ParquetFile {
    /// Creates (or truncates) the file at `path`, with bloom filters sized for the largest.
    pub fn create(path: &Path) -> Result<ParquetFile, ArchiveError> {
        ParquetFile::create_for(path, BLOOM_MAX_NDV)
    }

    /// Creates (or truncates) the file at `path` for about `rows` rows (the bloom filters'
    /// size: a filter sized for 50,000 keys would outweigh an hour of a few changes).
    pub fn create_for(path: &Path, rows: u64) -> Result<ParquetFile, ArchiveError> {
        let file = File::create(path).map_err(|e| ArchiveError::io(path, e))?;
        let sink = io::BufWriter::with_capacity(
            1 << 20,
            Hashing {
                file,
                hasher: Sha256::new(),
                bytes: 0,
            },
        );
        let writer = SerializedFileWriter::new(sink, schema(), properties(rows))
            .map_err(|e| ArchiveError::parquet(path, e))?;
        Ok(ParquetFile {
            path: path.to_path_buf(),
            writer,
            rows: 0,
            event_ids: None,
            times: None,
            keys: IntKeys::Empty,
        })
    }

    /// Writes `rows` (in `event_id` order, continuing the previous groups) as one row group.
    pub fn write_group(&mut self, rows: &[ArchiveRow]) -> Result<(), ArchiveError> {
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Ok(());
        };
        let path = self.path.clone();
        let pq = |e| ArchiveError::parquet(&path, e);
        let mut group = self.writer.next_row_group().map_err(pq)?;
        let mut i = 0;
        while let Some(mut column) = group.next_column().map_err(pq)? {
            write_column(&mut column, i, rows).map_err(pq)?;
            column.close().map_err(pq)?;
            i += 1;
        }
        group.close().map_err(pq)?;
        self.rows += rows.len() as u64;
        let ids = self
            .event_ids
            .get_or_insert((first.event_id, last.event_id));
        ids.1 = last.event_id;
        for r in rows {
            let t = self.times.get_or_insert((r.event_time, r.event_time));
            t.0 = t.0.min(r.event_time);
            t.1 = t.1.max(r.event_time);
            self.keys.add(&r.pk_values);
        }
        Ok(())
    }

    /// Writes the footer, fsyncs the file and returns what it holds.
    pub fn finish(self) -> Result<Written, ArchiveError> {
        let path = self.path;
        let sink = self
            .writer
            .into_inner()
            .map_err(|e| ArchiveError::parquet(&path, e))?;
        let hashing = sink
            .into_inner()
            .map_err(|e| ArchiveError::io(&path, e.into_error()))?;
        hashing
            .file
            .sync_all()
            .map_err(|e| ArchiveError::io(&path, e))?;
        Ok(Written {
            rows: self.rows,
            bytes: hashing.bytes,
            sha256: hex(&hashing.hasher.finalize()),
            event_ids: self.event_ids.unwrap_or((0, 0)),
            times: self.times.unwrap_or((0, 0)),
            int_keys: self.keys.range(),
        })
    }
}

/// The parsed [`MESSAGE_TYPE`].
fn schema() -> Arc<parquet::schema::types::Type> {
    Arc::new(parse_message_type(MESSAGE_TYPE).expect("the archive schema parses"))
}

/// zstd, statistics on every column but the JSON text ones, bloom filters on
/// [`BLOOM_COLUMNS`] sized for `rows` distinct values.
fn properties(rows: u64) -> Arc<WriterProperties> {
    let level = ZstdLevel::try_new(ZSTD_LEVEL).expect("a valid zstd level");
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("bintrail {}", env!("CARGO_PKG_VERSION")));
    for c in JSON_COLUMNS {
        b = b
            .set_column_statistics_enabled(ColumnPath::from(c), EnabledStatistics::None)
            .set_column_dictionary_enabled(ColumnPath::from(c), false);
    }
    let ndv = rows.clamp(64, BLOOM_MAX_NDV);
    for c in BLOOM_COLUMNS {
        b = b
            .set_column_bloom_filter_enabled(ColumnPath::from(c), true)
            .set_column_bloom_filter_fpp(ColumnPath::from(c), BLOOM_FPP)
            .set_column_bloom_filter_max_ndv(ColumnPath::from(c), ndv);
    }
    Arc::new(b.build())
}

type PqResult<T> = Result<T, parquet::errors::ParquetError>;

/// Writes column `i` of [`MESSAGE_TYPE`] for `rows`.
fn write_column(
    col: &mut SerializedColumnWriter<'_>,
    i: usize,
    rows: &[ArchiveRow],
) -> PqResult<()> {
    let ints = |f: fn(&ArchiveRow) -> i64| rows.iter().map(f).collect::<Vec<i64>>();
    let texts = |f: fn(&ArchiveRow) -> &str| {
        rows.iter()
            .map(|r| ByteArray::from(f(r).as_bytes().to_vec()))
            .collect::<Vec<_>>()
    };
    match i {
        0 => int64(col, &ints(|r| r.event_id as i64)),
        1 => int64(col, &ints(|r| i64::from(r.stream_id))),
        2 => text(col, &texts(|r| &r.binlog_file)),
        3 => int64(col, &ints(|r| r.start_pos as i64)),
        4 => int64(col, &ints(|r| r.end_pos as i64)),
        5 => int64(col, &ints(|r| i64::from(r.row_in_event))),
        6 => int64(col, &ints(|r| r.event_time * 1_000_000)),
        7 => opt_text(col, rows.iter().map(|r| r.gtid.as_deref())),
        8 => {
            let (vals, defs) = levels(rows.iter().map(|r| r.connection_id.map(i64::from)));
            col.typed::<Int64Type>()
                .write_batch(&vals, Some(&defs), None)
                .map(drop)
        }
        9 => text(col, &texts(|r| &r.schema)),
        10 => text(col, &texts(|r| &r.table)),
        11 => {
            let vals: Vec<i32> = rows.iter().map(|r| i32::from(r.event_type)).collect();
            col.typed::<Int32Type>()
                .write_batch(&vals, None, None)
                .map(drop)
        }
        12 => text(col, &texts(|r| &r.pk_values)),
        13 => opt_text(col, rows.iter().map(|r| r.changed_columns.as_deref())),
        14 => opt_text(col, rows.iter().map(|r| r.row_before.as_deref())),
        15 => opt_text(col, rows.iter().map(|r| r.row_after.as_deref())),
        16 => int64(col, &ints(|r| i64::from(r.schema_version))),
        _ => int64(col, &ints(|r| i64::from(r.policy_version))),
    }
}

fn int64(col: &mut SerializedColumnWriter<'_>, vals: &[i64]) -> PqResult<()> {
    col.typed::<Int64Type>()
        .write_batch(vals, None, None)
        .map(drop)
}

fn text(col: &mut SerializedColumnWriter<'_>, vals: &[ByteArray]) -> PqResult<()> {
    col.typed::<ByteArrayType>()
        .write_batch(vals, None, None)
        .map(drop)
}

fn opt_text<'a>(
    col: &mut SerializedColumnWriter<'_>,
    vals: impl Iterator<Item = Option<&'a str>>,
) -> PqResult<()> {
    let (vals, defs) = levels(vals.map(|v| v.map(|s| ByteArray::from(s.as_bytes().to_vec()))));
    col.typed::<ByteArrayType>()
        .write_batch(&vals, Some(&defs), None)
        .map(drop)
}

/// The present values and the definition levels (1 present, 0 null) of an optional column.
fn levels<T>(vals: impl Iterator<Item = Option<T>>) -> (Vec<T>, Vec<i16>) {
    let (mut present, mut defs) = (Vec::new(), Vec::new());
    for v in vals {
        defs.push(i16::from(v.is_some()));
        present.extend(v);
    }
    (present, defs)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads every row of the archive file at `path`, in file order, into `each`; returns the
/// number of rows the footer declares.
pub fn read_rows(
    path: &Path,
    mut each: impl FnMut(ArchiveRow) -> Result<(), ArchiveError>,
) -> Result<u64, ArchiveError> {
    let pq = |e| ArchiveError::parquet(path, e);
    let file = File::open(path).map_err(|e| ArchiveError::io(path, e))?;
    let reader = SerializedFileReader::new(file).map_err(pq)?;
    let declared = reader.metadata().file_metadata().num_rows();
    let name = path.display().to_string();
    for group in 0..reader.num_row_groups() {
        let rows = reader.get_row_group(group).map_err(pq)?;
        for row in rows.get_row_iter(None).map_err(pq)? {
            each(archive_row(&row.map_err(pq)?, &name, group)?)?;
        }
    }
    u64::try_from(declared).map_err(|_| ArchiveError::Field {
        path: name,
        column: "(footer)".into(),
        row_group: 0,
        what: format!("declares {declared} rows"),
    })
}

/// A decoded row of row group `group` of file `path` as an [`ArchiveRow`]; every column must
/// be present with its type and in its field's range.
pub fn archive_row(
    row: &parquet::record::Row,
    path: &str,
    group: usize,
) -> Result<ArchiveRow, ArchiveError> {
    let mut out = ArchiveRow {
        event_id: 0,
        stream_id: 0,
        binlog_file: String::new(),
        start_pos: 0,
        end_pos: 0,
        row_in_event: 0,
        event_time: 0,
        gtid: None,
        connection_id: None,
        schema: String::new(),
        table: String::new(),
        event_type: 0,
        pk_values: String::new(),
        changed_columns: None,
        row_before: None,
        row_after: None,
        schema_version: 0,
        policy_version: 0,
    };
    let mut seen = 0;
    for (name, field) in row.get_column_iter() {
        set_field(&mut out, name, field).map_err(|what| ArchiveError::Field {
            path: path.to_string(),
            column: name.clone(),
            row_group: group,
            what,
        })?;
        seen += 1;
    }
    if seen != COLUMNS {
        return Err(ArchiveError::Field {
            path: path.to_string(),
            column: "(row)".into(),
            row_group: group,
            what: format!("{seen} columns, the archive schema has {COLUMNS}"),
        });
    }
    Ok(out)
}

/// Columns of [`MESSAGE_TYPE`].
const COLUMNS: usize = 18;

/// Sets the column `name` of `row` from a decoded field; `Err` says what is wrong with it.
fn set_field(row: &mut ArchiveRow, name: &str, field: &Field) -> Result<(), String> {
    let int = || match field {
        Field::Long(v) | Field::TimestampMicros(v) => Ok(*v),
        Field::Int(v) => Ok(i64::from(*v)),
        other => Err(format!("expected an integer, found {other:?}")),
    };
    let text = || match field {
        Field::Str(s) => Ok(s.clone()),
        other => Err(format!("expected text, found {other:?}")),
    };
    let opt_text = || match field {
        Field::Null => Ok(None),
        _ => text().map(Some),
    };
    fn fit<T: TryFrom<i64>>(v: i64) -> Result<T, String> {
        T::try_from(v).map_err(|_| format!("{v} is out of range"))
    }
    match name {
        "event_id" => row.event_id = fit(int()?)?,
        "stream_id" => row.stream_id = fit(int()?)?,
        "binlog_file" => row.binlog_file = text()?,
        "start_pos" => row.start_pos = fit(int()?)?,
        "end_pos" => row.end_pos = fit(int()?)?,
        "row_in_event" => row.row_in_event = fit(int()?)?,
        "event_timestamp" => match field {
            Field::TimestampMicros(v) => row.event_time = v.div_euclid(1_000_000),
            other => return Err(format!("expected a TIMESTAMP(MICROS), found {other:?}")),
        },
        "gtid" => row.gtid = opt_text()?,
        "connection_id" => {
            row.connection_id = match field {
                Field::Null => None,
                _ => Some(fit(int()?)?),
            }
        }
        "schema_name" => row.schema = text()?,
        "table_name" => row.table = text()?,
        "event_type" => match int()? {
            v @ 1..=3 => row.event_type = fit(v)?,
            v => return Err(format!("{v} is not 1, 2 or 3")),
        },
        "pk_values" => row.pk_values = text()?,
        "changed_columns" => row.changed_columns = opt_text()?,
        "row_before" => row.row_before = opt_text()?,
        "row_after" => row.row_after = opt_text()?,
        "schema_version" => row.schema_version = fit(int()?)?,
        "policy_version" => row.policy_version = fit(int()?)?,
        other => return Err(format!("{other} is not a column of the archive schema")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(event_id: u64, t: i64, before: Option<&str>) -> ArchiveRow {
        ArchiveRow {
            event_id,
            stream_id: 9,
            binlog_file: "binlog.000001".into(),
            start_pos: 100 + event_id,
            end_pos: 200 + event_id,
            row_in_event: 1,
            event_time: t,
            gtid: (event_id % 2 == 0).then(|| format!("uuid:{event_id}")),
            connection_id: (event_id % 3 == 0).then_some(42),
            schema: "app".into(),
            table: "t\nx/..".into(),
            event_type: 2,
            pk_values: format!("{event_id}|a\\|b"),
            changed_columns: Some("[\"v\"]".into()),
            row_before: before.map(str::to_string),
            row_after: Some("{\"v\": \"naïve\", \"id\": 1}".into()),
            schema_version: 77,
            policy_version: 0,
        }
    }

    #[test]
    fn rows_written_in_groups_read_back_exactly_with_their_range_and_checksum() {
        let dir = std::env::temp_dir().join(format!("bintrail-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.parquet");
        let rows: Vec<ArchiveRow> = (1..=5)
            .map(|i| {
                row(
                    i,
                    1_795_615_200 + 10 - i as i64,
                    (i != 3).then_some("{\"v\": 1}"),
                )
            })
            .collect();
        let mut f = ParquetFile::create(&path).unwrap();
        f.write_group(&rows[..2]).unwrap();
        f.write_group(&rows[2..]).unwrap();
        let w = f.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(w.bytes, bytes.len() as u64);
        assert_eq!(w.sha256, hex(&Sha256::digest(&bytes)));
        assert_eq!((w.rows, w.event_ids), (5, (1, 5)));
        assert_eq!(w.times, (1_795_615_205, 1_795_615_209));
        assert_eq!(w.int_keys, None, "keys like `1|a\\|b` are not integers");
        let mut back = Vec::new();
        let declared = read_rows(&path, |r| {
            back.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(declared, 5);
        assert_eq!(back, rows);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn only_keys_that_are_all_canonical_integers_get_a_range() {
        let range = |keys: &[&str]| {
            let mut k = IntKeys::default();
            keys.iter().for_each(|pk| k.add(pk));
            k.range()
        };
        assert_eq!(range(&["7", "-3", "12"]), Some((-3, 12)));
        assert_eq!(range(&["9223372036854775807"]), Some((i64::MAX, i64::MAX)));
        assert_eq!(range(&[]), None);
        for odd in ["007", "+7", "7|8", "", " 7", "18446744073709551615", "x"] {
            assert_eq!(int_key(odd), None, "{odd:?}");
            assert_eq!(range(&["7", odd, "8"]), None, "{odd:?}");
        }
    }

    #[test]
    fn a_field_of_another_type_or_out_of_range_is_an_error_not_a_zero() {
        let mut r = row(1, 0, None);
        assert!(set_field(&mut r, "event_id", &Field::Str("7".into()))
            .unwrap_err()
            .contains("expected an integer"));
        assert!(set_field(&mut r, "event_id", &Field::Long(-1))
            .unwrap_err()
            .contains("-1 is out of range"));
        assert!(set_field(&mut r, "stream_id", &Field::Long(1 << 40))
            .unwrap_err()
            .contains("out of range"));
        assert!(set_field(&mut r, "event_type", &Field::Int(7))
            .unwrap_err()
            .contains("not 1, 2 or 3"));
        assert!(set_field(&mut r, "event_timestamp", &Field::Long(5))
            .unwrap_err()
            .contains("TIMESTAMP"));
        assert!(set_field(&mut r, "gtid", &Field::Long(5)).is_err());
        assert!(set_field(&mut r, "surprise", &Field::Null).is_err());
        assert_eq!(r, row(1, 0, None), "nothing was set");
        set_field(&mut r, "connection_id", &Field::Null).unwrap();
        assert_eq!(r.connection_id, None);
    }
}

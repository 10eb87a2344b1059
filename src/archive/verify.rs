//! `bintrail archive verify`: every recorded file re-read and checked against its manifest row.
//!
//! # Invariants
//! * Nothing is trusted that can be checked: the size and SHA-256 of the bytes stored (a
//!   directory's file, or an S3 object downloaded whole to a temporary copy), then
//!   every row decoded (so a file whose checksum was recorded wrong still has to be readable),
//!   counted, and its `event_id` and time range, stream, table, hour and (when recorded)
//!   integer key range compared with the manifest; rows must be in `event_id` order.
//! * Every problem of a file is reported, one per file, naming the file; verification never
//!   stops at the first. A store that cannot be read at all (an unreachable endpoint, a bucket
//!   that does not exist, refused credentials) stops it with that error instead of calling
//!   every file unreadable.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::manifest::FileRecord;
use super::store::{Store, StoreError};
use super::writer::{hex, read_rows};
use super::ArchiveError;
use crate::index::ddl::PARTITION_SECONDS;

/// A recorded file that does not match its manifest row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Path relative to the archive root.
    pub path: String,
    /// What is wrong.
    pub what: String,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Files recorded in the manifest.
    pub files: u64,
    /// Rows the manifest records in them.
    pub rows: u64,
    /// Bytes the manifest records.
    pub bytes: u64,
    /// The files that failed, with why.
    pub problems: Vec<Problem>,
}

/// Checks every file of `records` in `store`; `progress` is called after each file with
/// (files done, files in all).
pub async fn verify(
    store: &Store,
    records: &[FileRecord],
    mut progress: impl FnMut(usize, usize),
) -> Result<Report, StoreError> {
    let mut report = Report::default();
    for (i, r) in records.iter().enumerate() {
        report.files += 1;
        report.rows += r.rows;
        report.bytes += r.bytes;
        if let Err(what) = verify_file(store, r).await? {
            report.problems.push(Problem {
                path: r.path.clone(),
                what,
            });
        }
        progress(i + 1, records.len());
    }
    Ok(report)
}

/// Checks one file; the inner `Err` says what is wrong with it, the outer one why the store
/// could not be read.
pub async fn verify_file(store: &Store, r: &FileRecord) -> Result<Result<(), String>, StoreError> {
    let copy = match store.fetch(&r.path).await {
        Ok(Some(copy)) => copy,
        Ok(None) => return Ok(Err("missing".into())),
        Err(e @ StoreError::Io { .. }) => return Ok(Err(format!("unreadable: {e}"))),
        Err(e) => return Err(e),
    };
    // Hashing and decoding a whole file is blocking work.
    Ok(tokio::task::block_in_place(|| check(copy.path(), r)))
}

/// Checks the local file `path` against `r`.
fn check(path: &Path, r: &FileRecord) -> Result<(), String> {
    let (bytes, sha256) = match digest(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err("missing".into()),
        Err(e) => return Err(format!("unreadable: {e}")),
    };
    if bytes != r.bytes {
        return Err(format!("{bytes} bytes, the manifest records {}", r.bytes));
    }
    if sha256 != r.sha256 {
        return Err(format!(
            "SHA-256 {sha256}, the manifest records {} (the file changed after it was written)",
            r.sha256
        ));
    }
    let mut seen = Seen::default();
    let declared = read_rows(path, |row| {
        seen.add(r, &row);
        Ok(())
    })
    .map_err(|e: ArchiveError| format!("undecodable: {e}"))?;
    if let Some(what) = seen.wrong {
        return Err(what);
    }
    if r.int_keys.is_some() && r.int_keys != seen.keys.range() {
        let show = |k: Option<(i64, i64)>| {
            k.map_or("not all integers".into(), |(lo, hi)| format!("{lo}..{hi}"))
        };
        return Err(format!(
            "keys {}, the manifest records integer keys {}",
            show(seen.keys.range()),
            show(r.int_keys)
        ));
    }
    let ids = seen.ids.unwrap_or((0, 0));
    let times = seen.times.unwrap_or((0, 0));
    let expected = (
        r.rows,
        r.rows,
        (r.min_event_id, r.max_event_id),
        (r.min_time, r.max_time),
    );
    let actual = (seen.rows, declared, ids, times);
    if actual != expected {
        return Err(format!(
            "holds {} rows ({} declared), event_id {}..{}, time {}..{}; the manifest records {} rows, event_id {}..{}, time {}..{}",
            seen.rows, declared, ids.0, ids.1, times.0, times.1,
            r.rows, r.min_event_id, r.max_event_id, r.min_time, r.max_time
        ));
    }
    Ok(())
}

/// Size and SHA-256 of a file, read in blocks.
fn digest(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let (mut hasher, mut buf, mut n) = (Sha256::new(), vec![0u8; 1 << 20], 0u64);
    loop {
        let got = file.read(&mut buf)?;
        if got == 0 {
            return Ok((n, hex(&hasher.finalize())));
        }
        hasher.update(&buf[..got]);
        n += got as u64;
    }
}

/// What the rows of a file showed.
#[derive(Default)]
struct Seen {
    rows: u64,
    ids: Option<(u64, u64)>,
    times: Option<(i64, i64)>,
    keys: super::writer::IntKeys,
    wrong: Option<String>,
}

impl Seen {
    fn add(&mut self, r: &FileRecord, row: &super::writer::ArchiveRow) {
        self.rows += 1;
        if let Some((_, last)) = self.ids {
            if row.event_id <= last && self.wrong.is_none() {
                self.wrong = Some(format!(
                    "event_id {} after {last}: not in order",
                    row.event_id
                ));
            }
        }
        let ids = self.ids.get_or_insert((row.event_id, row.event_id));
        ids.1 = row.event_id;
        let t = self.times.get_or_insert((row.event_time, row.event_time));
        t.0 = t.0.min(row.event_time);
        t.1 = t.1.max(row.event_time);
        self.keys.add(&row.pk_values);
        let hour = row.event_time.div_euclid(PARTITION_SECONDS) * PARTITION_SECONDS;
        let owner = (row.stream_id, row.schema.as_str(), row.table.as_str(), hour);
        if owner
            != (
                r.stream_id,
                r.schema.as_str(),
                r.table.as_str(),
                r.hour_start,
            )
            && self.wrong.is_none()
        {
            self.wrong = Some(format!(
                "event_id {} belongs to stream {} table {}.{} at {}, not to this file",
                row.event_id, row.stream_id, row.schema, row.table, row.event_time
            ));
        }
    }
}

//! Where a file of the cold tier lives: a Hive-style path that engines prune by.
//!
//! `schema=S/table=T/date=YYYY-MM-DD/hour=HH/stream=N-E.parquet`, relative to the archive root,
//! for the changes of stream `N` to table `S.T` stamped in that UTC hour, whose first `event_id`
//! is `E`. The name is a function of the rows alone, so a rerun after a crash writes the same
//! file under the same name (and replaces an unrecorded leftover) instead of a second copy.
//!
//! # Invariants
//! * **Any identifier is a safe path segment**: every byte of a schema or table name other than
//!   ASCII letters, digits, `-`, `.`, `_` and `~` is percent-encoded ([`crate::percent`]) (`/` as `%2F`, a newline as
//!   `%0A`, `%` itself as `%25`, each byte of a multibyte character on its own), so a name can
//!   neither leave its directory nor add one, and the path is ASCII. A segment always starts
//!   with `key=`, so not even the name `..` makes a `..` segment. Engines decode `%XX` in Hive
//!   partition values (DuckDB, pyarrow's default `segment_encoding="uri"`).
//! * A file is written under a hidden temporary name in its final directory ([`temp_name`]:
//!   a leading `.`, so `**/*.parquet` globs never read a half-written file), then renamed.

use std::path::PathBuf;

use crate::percent;
use crate::time::{format_utc, parse_utc};

/// The identity of one archive file: whose changes, which hour, from which `event_id` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileKey {
    /// The stream (`--server-id`) that indexed the changes.
    pub stream_id: u32,
    /// Schema of the changed table.
    pub schema: String,
    /// The changed table.
    pub table: String,
    /// Start of the UTC hour every change of the file is stamped in (Unix seconds).
    pub hour_start: i64,
    /// The file's smallest `event_id`.
    pub first_event_id: u64,
}

impl FileKey {
    /// The file's path relative to the archive root, `/`-separated.
    pub fn path(&self) -> String {
        format!("{}/{}", self.dir(), self.file_name())
    }

    /// The directory part of [`FileKey::path`].
    pub fn dir(&self) -> String {
        let stamp = format_utc(self.hour_start);
        format!(
            "schema={}/table={}/date={}/hour={}",
            percent::encode(&self.schema),
            percent::encode(&self.table),
            &stamp[..10],
            &stamp[11..13]
        )
    }

    /// The file name part of [`FileKey::path`].
    pub fn file_name(&self) -> String {
        format!("stream={}-{}.parquet", self.stream_id, self.first_event_id)
    }

    /// The path relative to the archive root as a [`PathBuf`].
    pub fn relative(&self) -> PathBuf {
        PathBuf::from(self.path())
    }

    /// The key of a file from its path relative to the archive root ([`FileKey::path`] read
    /// back); `None` for anything else (a temporary file, a file of another tool), which a
    /// reader working from the layout alone skips.
    pub fn parse(path: &str) -> Option<FileKey> {
        let parts: Vec<&str> = path.split('/').collect();
        let [schema, table, date, hour, file] = parts.as_slice() else {
            return None;
        };
        fn value<'a>(seg: &'a str, key: &str) -> Option<&'a str> {
            seg.strip_prefix(key)?.strip_prefix('=')
        }
        let schema = percent::decode(value(schema, "schema")?)?;
        let table = percent::decode(value(table, "table")?)?;
        let (date, hour) = (value(date, "date")?, value(hour, "hour")?);
        if date.len() != 10 || hour.len() != 2 || !hour.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let hour_start = parse_utc(&format!("{date} {hour}:00:00"))?;
        let (stream, first) = value(file, "stream")?
            .strip_suffix(".parquet")?
            .split_once('-')?;
        Some(FileKey {
            stream_id: stream.parse().ok()?,
            schema,
            table,
            hour_start,
            first_event_id: first.parse().ok()?,
        })
    }
}

/// The hidden name a file is written under before it is renamed to `final_name`.
pub fn temp_name(final_name: &str) -> String {
    format!(".{final_name}.tmp")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(schema: &str, table: &str) -> FileKey {
        FileKey {
            stream_id: 7,
            schema: schema.into(),
            table: table.into(),
            // 2026-11-25 14:00:00 UTC.
            hour_start: 1_795_615_200,
            first_event_id: 1234,
        }
    }

    #[test]
    fn a_plain_table_gets_a_readable_hive_path() {
        assert_eq!(
            key("app", "orders").path(),
            "schema=app/table=orders/date=2026-11-25/hour=14/stream=7-1234.parquet"
        );
    }

    #[test]
    fn names_with_slashes_newlines_dots_and_unicode_stay_in_one_segment() {
        for name in ["a/b", "..", "x\ny", "50%", "a=b", "naïve", "sp ace", "/"] {
            let enc = percent::encode(name);
            assert!(
                !enc.contains('/') && !enc.contains('\n'),
                "{name:?} → {enc}"
            );
            assert!(enc.is_ascii(), "{name:?} → {enc}");
            assert_eq!(percent::decode(&enc).as_deref(), Some(name), "{enc}");
            let path = key("s", name).path();
            assert_eq!(path.split('/').count(), 5, "{path}");
            assert!(path.split('/').all(|s| s != ".." && s != "."), "{path}");
        }
        assert_eq!(percent::encode("a/b\n%"), "a%2Fb%0A%25");
        assert_eq!(percent::encode("naïve"), "na%C3%AFve");
    }

    #[test]
    fn a_path_reads_back_as_its_key_and_nothing_else_does() {
        for name in ["orders", "a/b", "..", "x\ny", "50%", "naïve"] {
            let k = key("app", name);
            assert_eq!(FileKey::parse(&k.path()), Some(k.clone()), "{}", k.path());
        }
        let k = key("s", "t");
        assert_eq!(
            FileKey::parse(&format!("{}/{}", k.dir(), temp_name(&k.file_name()))),
            None
        );
        assert_eq!(
            FileKey::parse("schema=s/table=t/date=2026-11-25/stream=1-2.parquet"),
            None
        );
        assert_eq!(
            FileKey::parse("x=s/table=t/date=2026-11-25/hour=14/stream=1-2.parquet"),
            None
        );
    }

    #[test]
    fn the_temporary_name_is_hidden_from_parquet_globs() {
        let name = temp_name(&key("s", "t").file_name());
        assert_eq!(name, ".stream=7-1234.parquet.tmp");
        assert!(!name.ends_with(".parquet"));
    }
}

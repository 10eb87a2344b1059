//! Where the archive's files live: a local directory or an S3 bucket (`s3://bucket/prefix`),
//! behind the few operations the cold tier needs. Paths are relative to the archive root and
//! `/`-separated ([`super::layout`]), the same in both, so the manifest never names a store.
//!
//! # Invariants
//! * **A file appears under its final name only complete**: it is written locally and
//!   fsynced first ([`Store::stage`]), then [`Store::commit`] puts it in place atomically: a
//!   rename plus directory fsync in a directory ([`local`]), a single `PUT` on S3 ([`s3`],
//!   which states the size limit). Only after `commit` returns may the file be recorded.
//! * Replacing an unrecorded leftover of a crashed run needs no delete: a rename and a `PUT`
//!   both replace what is there.
//! * A staged or fetched local copy is removed when dropped; a crash can leave one behind, as
//!   a hidden `.….parquet.tmp` that the next run under the same name overwrites.
//!
//! # Dependencies
//! S3 is spoken here, not through an SDK: SigV4 signing ([`sigv4`], checked against the S3
//! documentation's examples) and a minimal HTTP/1.1 client ([`http`]) on tokio, rustls and
//! ring, which mysql_async already builds. It adds no crate to the build (180 distinct crates in
//! `cargo tree -e normal` before and after), where an SDK or `rusty-s3` plus an HTTP client
//! adds dozens.

pub mod http;
pub mod local;
pub mod s3;
pub mod sigv4;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use local::Local;
pub use s3::S3;

use super::writer::hex;

/// An object (file) of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Path relative to the archive root.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// Why an operation on the archive's store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A local file or directory could not be written or read.
    #[error("archive file {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The location or its environment is not usable.
    #[error("--archive {location}: {what}")]
    Config {
        /// The location as given.
        location: String,
        /// What is wrong and what to do.
        what: String,
    },
    /// The endpoint did not answer (refused, reset, timed out) on any attempt.
    #[error("{method} {url}: no answer after {attempts} attempts: {source} (check that the endpoint is right, AWS_ENDPOINT_URL if set, and reachable from here)")]
    Unreachable {
        /// HTTP method.
        method: String,
        /// The object's URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        #[source]
        source: std::io::Error,
    },
    /// S3 refused the request.
    #[error("{method} {url}: S3 answered {status} {code}{}: {hint}", detail(.message))]
    S3 {
        /// HTTP method.
        method: String,
        /// The object's URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// S3's error code (`NoSuchBucket`, `AccessDenied`, …), or `HTTP n` without a body.
        code: String,
        /// S3's message.
        message: String,
        /// What to do.
        hint: &'static str,
    },
    /// A file larger than one `PUT` carries.
    #[error("{url}: {bytes} bytes is more than one S3 PUT carries (5 GiB); rotate more often so an hour's file stays smaller")]
    TooLarge {
        /// The object's URL.
        url: String,
        /// The file's size.
        bytes: u64,
    },
}

impl StoreError {
    fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether running again later, with nobody changing anything, can succeed: the endpoint
    /// unreachable or failing (5xx, 429) after every retry. A missing bucket, refused
    /// credentials or a wrong region need a person.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Unreachable { .. } => true,
            StoreError::S3 { status, code, .. } => {
                *status >= 500 || *status == 429 || code == "RequestTimeout"
            }
            StoreError::Io { .. } | StoreError::Config { .. } | StoreError::TooLarge { .. } => {
                false
            }
        }
    }
}

/// The archive's store.
#[derive(Debug, Clone)]
pub enum Store {
    /// A local directory.
    Local(Local),
    /// A bucket and prefix on S3.
    S3(S3),
}

/// A local file: staged for [`Store::commit`], or a fetched copy of an object. A temporary one
/// is removed when dropped.
#[derive(Debug)]
pub struct LocalFile {
    path: PathBuf,
    temporary: bool,
}

impl LocalFile {
    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LocalFile {
    fn drop(&mut self) {
        if self.temporary {
            // Gone already after a successful rename; a leftover is overwritten next time.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Store {
    /// The store of `--archive`: `s3://bucket/prefix`, or a directory; S3 is configured from
    /// the process environment.
    pub fn open(location: &str) -> Result<Store, StoreError> {
        Store::open_with(location, &|name| std::env::var(name).ok())
    }

    /// [`Store::open`] with the environment given.
    pub fn open_with(
        location: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Store, StoreError> {
        if location.starts_with("s3://") {
            return Ok(Store::S3(S3::from_env(location, env)?));
        }
        if location.contains("://") {
            return Err(StoreError::Config {
                location: location.to_string(),
                what: "the archive is a directory or s3://bucket/prefix".into(),
            });
        }
        Ok(Store::Local(Local::new(PathBuf::from(location))))
    }

    /// The location as a user writes it.
    pub fn location(&self) -> String {
        match self {
            Store::Local(l) => l.root().display().to_string(),
            Store::S3(s) => s.location(),
        }
    }

    /// Creates a local root directory when missing (S3 needs nothing: a bucket must exist).
    pub fn create_root(&self) -> Result<(), StoreError> {
        match self {
            Store::Local(l) => {
                std::fs::create_dir_all(l.root()).map_err(|e| StoreError::io(l.root(), e))
            }
            Store::S3(_) => Ok(()),
        }
    }

    /// A local file to write `rel` into before [`Store::commit`].
    pub fn stage(&self, rel: &str) -> Result<LocalFile, StoreError> {
        let path = match self {
            Store::Local(l) => l.staging(rel)?,
            Store::S3(_) => scratch(&self.location(), rel),
        };
        Ok(LocalFile {
            path,
            temporary: true,
        })
    }

    /// Puts the complete, fsynced `staged` file in place as `rel`, atomically; `bytes` and
    /// `sha256` are its size and SHA-256 (hex), which S3 checks on receipt.
    pub async fn commit(
        &self,
        staged: LocalFile,
        rel: &str,
        bytes: u64,
        sha256: &str,
    ) -> Result<(), StoreError> {
        match self {
            Store::Local(l) => l.commit(staged.path(), rel),
            Store::S3(s) => s.put_file(rel, staged.path(), bytes, sha256).await,
        }
    }

    /// A local file with the bytes of `rel` (a directory's own file, or a temporary copy of
    /// an object), or `None` when there is no such file.
    pub async fn fetch(&self, rel: &str) -> Result<Option<LocalFile>, StoreError> {
        match self {
            Store::Local(l) => Ok(l.head(rel)?.map(|_| LocalFile {
                path: l.path(rel),
                temporary: false,
            })),
            Store::S3(s) => {
                // Named by process too: two verifications may fetch the same object at once.
                let copy = LocalFile {
                    path: scratch(&format!("{}\n{}", s.location(), std::process::id()), rel),
                    temporary: true,
                };
                Ok(s.get_to_file(rel, copy.path()).await?.then_some(copy))
            }
        }
    }

    /// The whole of `rel`, or `None` when there is no such file.
    pub async fn get(&self, rel: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(file) = self.fetch(rel).await? else {
            return Ok(None);
        };
        std::fs::read(file.path())
            .map(Some)
            .map_err(|e| StoreError::io(file.path(), e))
    }

    /// `len` bytes of `rel` from byte `start` (fewer at its end).
    pub async fn get_range(&self, rel: &str, start: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        match self {
            Store::Local(l) => l.get_range(rel, start, len),
            Store::S3(s) => s.get_range(rel, start, len).await,
        }
    }

    /// The size of `rel`, or `None` when there is no such file.
    pub async fn head(&self, rel: &str) -> Result<Option<u64>, StoreError> {
        match self {
            Store::Local(l) => l.head(rel),
            Store::S3(s) => s.head(rel).await,
        }
    }

    /// Every file whose path starts with `rel_prefix`, by path.
    pub async fn list(&self, rel_prefix: &str) -> Result<Vec<Object>, StoreError> {
        match self {
            Store::Local(l) => l.list(rel_prefix),
            Store::S3(s) => s.list(rel_prefix).await,
        }
    }

    /// Deletes `rel` (nothing when there is none).
    pub async fn delete(&self, rel: &str) -> Result<(), StoreError> {
        match self {
            Store::Local(l) => l.delete(rel),
            Store::S3(s) => s.delete(rel).await,
        }
    }
}

/// S3's message in parentheses, when it gave one.
fn detail(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(" ({message})")
    }
}

/// A hidden local scratch file for object `rel` of `location`: the same name on every run, so
/// a crashed run's leftover is overwritten by the next instead of piling up.
fn scratch(location: &str, rel: &str) -> PathBuf {
    let id = hex(&Sha256::digest(format!("{location}\n{rel}").as_bytes()));
    std::env::temp_dir().join(format!(".bintrail-archive-{}.parquet.tmp", &id[..24]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, code: &str) -> StoreError {
        StoreError::S3 {
            method: "PUT".into(),
            url: "http://127.0.0.1:9/b/k".into(),
            status,
            code: code.into(),
            message: String::new(),
            hint: s3::hint(code, status),
        }
    }

    #[test]
    fn an_absent_or_failing_service_is_transient_a_refusal_is_not() {
        assert!(refused(503, "SlowDown").is_transient());
        assert!(refused(500, "InternalError").is_transient());
        assert!(!refused(404, "NoSuchBucket").is_transient());
        assert!(!refused(403, "InvalidAccessKeyId").is_transient());
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let e = StoreError::Unreachable {
            method: "GET".into(),
            url: "http://127.0.0.1:9/b".into(),
            attempts: 4,
            source: reset,
        };
        assert!(e.is_transient());
        let said = refused(404, "NoSuchBucket").to_string();
        assert!(said.starts_with("PUT http://127.0.0.1:9/b/k: S3 answered 404 NoSuchBucket: the bucket does not exist"), "{said}");
    }

    #[test]
    fn a_directory_and_an_s3_url_open_their_stores_and_other_schemes_are_refused() {
        let env = |_: &str| None;
        assert!(matches!(
            Store::open_with("/srv/archive", &env),
            Ok(Store::Local(_))
        ));
        let e = Store::open_with("gs://bucket/p", &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("directory or s3://bucket/prefix"), "{e}");
        let keys = |k: &str| (!k.contains("ENDPOINT")).then(|| format!("{k}-value"));
        let s3 = Store::open_with("s3://bucket/p/", &keys).unwrap();
        assert_eq!(s3.location(), "s3://bucket/p");
    }
}

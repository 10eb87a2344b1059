//! The archive in a local directory: relative paths are files under the root.
//!
//! # Invariants
//! * **Write, fsync, rename, fsync the directory**: a file is written under its hidden
//!   temporary name in its final directory ([`super::super::layout::temp_name`]) and fsynced
//!   by the writer; [`Local::commit`] renames it into place and fsyncs the directory, so the
//!   file is complete and durable under its final name before anyone records it. A rename
//!   replaces an unrecorded leftover of a crashed run atomically.
//! * New directories are fsynced up to the root, so a file's directory survives a power cut
//!   with it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::super::layout::temp_name;
use super::{Object, StoreError};

/// An archive root directory.
#[derive(Debug, Clone)]
pub struct Local {
    root: PathBuf,
}

impl Local {
    /// The archive under `root`.
    pub fn new(root: PathBuf) -> Local {
        Local { root }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of `rel`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Where `rel` is written before [`Local::commit`]: its hidden temporary name in its final
    /// directory (created durably here).
    pub fn staging(&self, rel: &str) -> Result<PathBuf, StoreError> {
        let path = self.path(rel);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        create_dirs(&self.root, &dir)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        Ok(dir.join(temp_name(&name)))
    }

    /// Renames the fsynced `staged` file to `rel` and fsyncs its directory.
    pub fn commit(&self, staged: &Path, rel: &str) -> Result<(), StoreError> {
        let path = self.path(rel);
        std::fs::rename(staged, &path).map_err(|e| StoreError::io(&path, e))?;
        sync_dir(path.parent().unwrap_or(&self.root))
    }

    /// `len` bytes of `rel` from byte `start` (fewer at its end).
    pub fn get_range(&self, rel: &str, start: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        let path = self.path(rel);
        let io = |e| StoreError::io(&path, e);
        let mut file = File::open(&path).map_err(io)?;
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        let mut out = Vec::new();
        file.take(len).read_to_end(&mut out).map_err(io)?;
        Ok(out)
    }

    /// The size of `rel`, or `None` when there is no such file.
    pub fn head(&self, rel: &str) -> Result<Option<u64>, StoreError> {
        let path = self.path(rel);
        match std::fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }

    /// Deletes `rel` (nothing when there is none).
    pub fn delete(&self, rel: &str) -> Result<(), StoreError> {
        let path = self.path(rel);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::io(&path, e)),
            _ => Ok(()),
        }
    }

    /// Every file (hidden temporary ones included) whose relative path starts with
    /// `rel_prefix`, by path.
    pub fn list(&self, rel_prefix: &str) -> Result<Vec<Object>, StoreError> {
        let mut out = Vec::new();
        let mut todo = vec![self.root.clone()];
        while let Some(dir) = todo.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io(&dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
                let path = entry.path();
                let meta = entry.metadata().map_err(|e| StoreError::io(&path, e))?;
                if meta.is_dir() {
                    todo.push(path);
                    continue;
                }
                let Ok(rel) = path.strip_prefix(&self.root) else {
                    continue;
                };
                let rel = rel
                    .to_string_lossy()
                    .replace(std::path::MAIN_SEPARATOR, "/");
                if rel.starts_with(rel_prefix) {
                    out.push(Object {
                        path: rel,
                        bytes: meta.len(),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

/// Creates `dir` under `root` and fsyncs every directory whose entries changed on the way.
fn create_dirs(root: &Path, dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    let mut at: PathBuf = dir.to_path_buf();
    while at != root {
        let Some(parent) = at.parent() else { break };
        sync_dir(parent)?;
        at = parent.to_path_buf();
    }
    Ok(())
}

/// fsync of a directory: makes a rename or a new entry in it durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

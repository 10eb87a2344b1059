//! Binlog files on disk (the source's data directory, a backup, a `mysqlbinlog --raw` copy) as a
//! second event source: the same [`Event`]s the replica connection yields, in the same order, so
//! that they go through the same transaction assembly (`source::txn`) and get the same change
//! identity (file name, event offset, row ordinal, timestamp).
//!
//! # Verification
//! A file must start with the magic `\xfebin`. Every event is framed here, not by mysql_common
//! (whose reader panics on a short read): a file that ends inside an event (copied while the
//! server was writing it) is reported as [`FileError::Truncated`] with its offset. When the
//! FORMAT_DESCRIPTION event says the events carry CRC32 checksums, every event's checksum is
//! verified before it is decoded, and a mismatch is [`FileError::Checksum`] with file and offset;
//! mysql_common reads the checksum but never verifies it.
//!
//! # Compressed transactions
//! A TRANSACTION_PAYLOAD event is yielded itself, then its decompressed inner events (with
//! `log_pos` 0 and no checksum), exactly as mysql_async's binlog stream yields them, so the
//! assembler places their changes as it does for the stream. MariaDB's compressed events are
//! decompressed by the assembler, as for the stream.

use std::fs::File;
use std::io::{BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use mysql_common::binlog::consts::{BinlogChecksumAlg, BinlogVersion};
use mysql_common::binlog::events::{Event, FormatDescriptionEvent, TransactionPayloadEvent};
use mysql_common::binlog::EventStreamReader;

use super::Flavor;

/// The four bytes every binlog file starts with.
pub const MAGIC: [u8; 4] = *b"\xfebin";
/// Length of the common event header (binlog version 4).
const HEADER_LEN: usize = 19;
/// An event larger than this is corruption, not data: MySQL's max_allowed_packet is at most 1 GiB.
const MAX_EVENT: u32 = 1 << 30;
/// Event types.
const FORMAT_DESCRIPTION: u8 = 15;
const TRANSACTION_PAYLOAD: u8 = 40;
/// MariaDB's START_ENCRYPTION: the events after it are encrypted with a key only the server has.
const START_ENCRYPTION: u8 = 164;
/// LOG_EVENT_BINLOG_IN_USE_F: set in the FORMAT_DESCRIPTION of a file the server still writes,
/// cleared on close, and not covered by the checksum.
const BINLOG_IN_USE: u16 = 0x1;

/// Why a binlog file cannot be read (further).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The operating system refused.
    #[error("cannot read binlog file {file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file does not start with `\xfebin`.
    #[error("{file} is not a binlog file: it does not start with the binlog magic bytes \\xfebin (a relay log, a mysqlbinlog text dump or an encrypted file cannot be read)")]
    Magic {
        /// The file.
        file: String,
    },
    /// An event's CRC32 does not match its bytes.
    #[error("checksum mismatch in {file} at offset {offset}: the event's stored CRC32 is {stored:08x} but its bytes hash to {computed:08x}; the file is corrupt from this event on, nothing from it on was indexed (index the rest from an intact copy)")]
    Checksum {
        /// The file.
        file: String,
        /// Offset of the event.
        offset: u64,
        /// The checksum in the file.
        stored: u32,
        /// The checksum of the event's bytes.
        computed: u32,
    },
    /// The file ends inside an event.
    #[error("{file} ends inside the event at offset {offset} ({have} of its {need} bytes): the file was copied while the server was writing it; everything before the transaction holding that event was indexed, nothing after (copy the file again once the server has rotated past it)")]
    Truncated {
        /// The file.
        file: String,
        /// Offset of the incomplete event.
        offset: u64,
        /// The event's size.
        need: u64,
        /// Bytes of it in the file.
        have: u64,
    },
    /// An event that cannot be decoded (after its checksum matched, or without a checksum).
    #[error("malformed event in {file} at offset {offset}: {reason}")]
    Malformed {
        /// The file.
        file: String,
        /// Offset of the event.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

/// One binlog file, read event by event.
pub struct BinlogFile {
    /// The file name without directory: the `binlog_file` of its changes.
    name: String,
    input: BufReader<File>,
    /// Bytes consumed so far: the offset of the next event.
    offset: u64,
    /// Size of the file when opened.
    len: u64,
    esr: EventStreamReader,
    /// The decompressed payload whose inner events come next.
    payload: Option<Cursor<Vec<u8>>>,
    /// Whether events carry a CRC32 (from the FORMAT_DESCRIPTION event).
    checksums: bool,
    /// Flavor, from the FORMAT_DESCRIPTION's server version.
    flavor: Option<Flavor>,
}

impl BinlogFile {
    /// Opens `path` and checks its magic.
    pub fn open(path: &Path) -> Result<BinlogFile, FileError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let io = |source| FileError::Io {
            file: path.display().to_string(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut input = BufReader::with_capacity(1 << 20, file);
        let mut magic = [0u8; 4];
        let got = read_full(&mut input, &mut magic).map_err(io)?;
        if got < 4 || magic != MAGIC {
            return Err(FileError::Magic {
                file: path.display().to_string(),
            });
        }
        Ok(BinlogFile {
            name,
            input,
            offset: 4,
            len,
            esr: EventStreamReader::new(BinlogVersion::Version4),
            payload: None,
            checksums: false,
            flavor: None,
        })
    }

    /// The file's name (no directory), as the server named it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes read so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The file's size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file holds nothing but its magic.
    pub fn is_empty(&self) -> bool {
        self.len <= 4
    }

    /// The server software that wrote the file, once its FORMAT_DESCRIPTION was read.
    pub fn flavor(&self) -> Option<Flavor> {
        self.flavor
    }

    /// The next event (after a TRANSACTION_PAYLOAD: its inner events first); `None` at the end.
    pub fn next_event(&mut self) -> Result<Option<Event>, FileError> {
        if let Some(event) = self.next_inner()? {
            return Ok(Some(event));
        }
        let start = self.offset;
        let mut header = [0u8; HEADER_LEN];
        let got = read_full(&mut self.input, &mut header).map_err(|e| self.io(e))?;
        if got == 0 {
            return Ok(None);
        }
        let size = u32::from_le_bytes([header[9], header[10], header[11], header[12]]);
        if got < HEADER_LEN {
            return Err(self.truncated(start, u64::from(size.max(HEADER_LEN as u32)), got));
        }
        if (size as usize) < HEADER_LEN || size > MAX_EVENT {
            return Err(self.malformed(start, format!("impossible event size {size}")));
        }
        let mut bytes = vec![0u8; size as usize];
        bytes[..HEADER_LEN].copy_from_slice(&header);
        let got = read_full(&mut self.input, &mut bytes[HEADER_LEN..]).map_err(|e| self.io(e))?;
        if got < bytes.len() - HEADER_LEN {
            return Err(self.truncated(start, u64::from(size), HEADER_LEN + got));
        }
        self.offset += u64::from(size);
        let event_type = header[4];
        if event_type == FORMAT_DESCRIPTION {
            self.checksums = fde_has_crc32(&bytes);
        }
        if self.checksums {
            self.verify(start, &mut bytes, event_type == FORMAT_DESCRIPTION)?;
        }
        if event_type == START_ENCRYPTION {
            return Err(self.malformed(
                start,
                "the binlog is encrypted (encrypt_binlog=ON); decrypt it with the server first (mysqlbinlog --read-from-remote-server --raw)".into(),
            ));
        }
        let event = match self.esr.read(&bytes[..]) {
            Ok(Some(event)) => event,
            Ok(None) => return Err(self.malformed(start, "empty event".into())),
            Err(e) => return Err(self.malformed(start, e.to_string())),
        };
        if event_type == FORMAT_DESCRIPTION {
            self.flavor =
                event
                    .read_event::<FormatDescriptionEvent<'_>>()
                    .ok()
                    .map(|fde| match fde.server_version().to_ascii_lowercase() {
                        v if v.contains("mariadb") => Flavor::Mariadb,
                        _ => Flavor::Mysql,
                    });
        }
        if event_type == TRANSACTION_PAYLOAD {
            // As mysql_async does: a payload that does not decompress yields no inner events, and
            // the assembler reports the transaction that never committed.
            if let Ok(payload) = event.read_event::<TransactionPayloadEvent<'_>>() {
                self.payload = Some(Cursor::new(payload.danger_decompress()));
            }
        }
        Ok(Some(event))
    }

    /// The next inner event of the current payload, if any.
    fn next_inner(&mut self) -> Result<Option<Event>, FileError> {
        let Some(cursor) = self.payload.as_mut() else {
            return Ok(None);
        };
        let (at, data) = (cursor.position() as usize, cursor.get_ref());
        let rest = &data[at.min(data.len())..];
        if rest.is_empty() {
            self.payload = None;
            return Ok(None);
        }
        // mysql_common panics on an inner event longer than what is left: check the framing.
        let size = rest
            .get(9..13)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
        if !size.is_some_and(|s| s >= HEADER_LEN && s <= rest.len()) {
            let start = self.offset;
            self.payload = None;
            return Err(self.malformed(
                start,
                "an event inside the compressed transaction payload before this offset is cut short".into(),
            ));
        }
        match self.esr.read_decompressed(cursor) {
            Ok(Some(event)) => Ok(Some(event)),
            Ok(None) => {
                self.payload = None;
                Ok(None)
            }
            Err(e) => {
                self.payload = None;
                let start = self.offset;
                Err(self.malformed(start, format!("inside a compressed transaction: {e}")))
            }
        }
    }

    /// Checks the event's CRC32 (its last four bytes).
    fn verify(&self, start: u64, bytes: &mut [u8], fde: bool) -> Result<(), FileError> {
        let split = bytes.len().saturating_sub(4);
        if split < HEADER_LEN {
            return Err(self.malformed(start, "event too short for its checksum".into()));
        }
        let stored = u32::from_le_bytes([
            bytes[split],
            bytes[split + 1],
            bytes[split + 2],
            bytes[split + 3],
        ]);
        let flags = u16::from_le_bytes([bytes[17], bytes[18]]);
        let computed = if fde && flags & BINLOG_IN_USE != 0 {
            // The server sets the in-use flag after computing the checksum (and clears it on
            // close); hash the event as it was when checksummed.
            let cleared = (flags & !BINLOG_IN_USE).to_le_bytes();
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&bytes[..17]);
            hasher.update(&cleared);
            hasher.update(&bytes[HEADER_LEN..split]);
            hasher.finalize()
        } else {
            crc32fast::hash(&bytes[..split])
        };
        if stored != computed {
            return Err(FileError::Checksum {
                file: self.name.clone(),
                offset: start,
                stored,
                computed,
            });
        }
        Ok(())
    }

    fn io(&self, source: std::io::Error) -> FileError {
        FileError::Io {
            file: self.name.clone(),
            source,
        }
    }

    fn truncated(&self, offset: u64, need: u64, have: usize) -> FileError {
        FileError::Truncated {
            file: self.name.clone(),
            offset,
            need,
            have: have as u64,
        }
    }

    fn malformed(&self, offset: u64, reason: String) -> FileError {
        FileError::Malformed {
            file: self.name.clone(),
            offset,
            reason,
        }
    }
}

/// Whether a FORMAT_DESCRIPTION event (whole, header included) announces CRC32 checksums. Since
/// MySQL 5.6.1 / MariaDB 5.3 it ends with the algorithm byte and a 4-byte checksum; older
/// servers wrote no checksums (and no algorithm byte, so the byte read here is then part of
/// the post-header lengths, which mysql_common decides by the server version).
fn fde_has_crc32(bytes: &[u8]) -> bool {
    let Ok(Some(event)) = EventStreamReader::new(BinlogVersion::Version4).read(bytes) else {
        return false;
    };
    matches!(
        event.footer().get_checksum_alg(),
        Ok(Some(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32))
    )
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The binlog files of `dir` in order: every file whose name ends in a numeric extension
/// (`binlog.000012`), sorted; only those from `from` to `to` (file names, both inclusive) when
/// given. A data directory holds other numbered files too (MariaDB's `aria_log.00000001`): a
/// base name whose first file does not start with the binlog magic is left out whole, while a
/// later file of a binlog base name without it is kept, to be refused as damaged when read.
pub fn list_dir(
    dir: &Path,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Vec<PathBuf>, FileError> {
    let io = |source| FileError::Io {
        file: dir.display().to_string(),
        source,
    };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_binlog_name(n))
        .collect();
    // Sequence numbers are zero-padded to the same width, but compare them as numbers anyway
    // (a sequence past 999999 grows a digit).
    names.sort_by_key(|n| sequence_key(n));
    let mut foreign: Vec<String> = Vec::new();
    let mut checked: Vec<String> = Vec::new();
    for name in &names {
        let base = sequence_key(name).0;
        if !checked.contains(&base) {
            if !starts_with_magic(&dir.join(name)) {
                foreign.push(base.clone());
            }
            checked.push(base);
        }
    }
    names.retain(|n| !foreign.contains(&sequence_key(n).0));
    Ok(names
        .into_iter()
        .filter(|n| from.is_none_or(|f| sequence_key(n) >= sequence_key(f)))
        .filter(|n| to.is_none_or(|t| sequence_key(n) <= sequence_key(t)))
        .map(|n| dir.join(n))
        .collect())
}

/// Whether the file at `path` starts with the binlog magic bytes.
fn starts_with_magic(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| read_full(&mut f, &mut magic))
        .is_ok_and(|n| n == 4 && magic == MAGIC)
}

/// `base.NNNNNN`: a binlog file name (not the `.index` file, not a relay log's `.info`).
fn is_binlog_name(name: &str) -> bool {
    name.rsplit_once('.').is_some_and(|(base, ext)| {
        !base.is_empty() && !ext.is_empty() && ext.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Sort key of a binlog file name: base name, then sequence number.
fn sequence_key(name: &str) -> (String, u64) {
    match name.rsplit_once('.') {
        Some((base, ext)) => (base.to_string(), ext.parse().unwrap_or(0)),
        None => (name.to_string(), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binlog_names_are_numbered_files_only() {
        assert!(is_binlog_name("binlog.000001"));
        assert!(is_binlog_name("mysql-bin.1000000"));
        assert!(!is_binlog_name("binlog.index"));
        assert!(!is_binlog_name("binlog"));
        assert!(!is_binlog_name(".000001"));
    }

    #[test]
    fn sequence_numbers_sort_as_numbers() {
        let mut names = vec!["b.1000000", "b.999999", "b.000002"];
        names.sort_by_key(|n| sequence_key(n));
        assert_eq!(names, vec!["b.000002", "b.999999", "b.1000000"]);
    }

    #[test]
    fn a_file_without_the_magic_is_refused() {
        let dir = std::env::temp_dir().join(format!("bintrail-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("binlog.000001");
        std::fs::write(&path, b"-- mysqlbinlog text\n").unwrap();
        assert!(matches!(
            BinlogFile::open(&path),
            Err(FileError::Magic { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

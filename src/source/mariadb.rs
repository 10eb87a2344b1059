//! MariaDB's own binlog events that mysql_common does not parse.
//!
//! MariaDB replaces MySQL's GTID event with its GTID event (type 162) and announces the state
//! of every replication domain with GTID_LIST (163); ANNOTATE_ROWS (160) and BINLOG_CHECKPOINT
//! (161) carry nothing bintrail needs. Layouts: MariaDB's `log_event.h`
//! (`Gtid_log_event`: seq_no u64, domain_id u32, flags2 u8, then optional commit id).
//!
//! # Compressed events
//! With `log_bin_compress=ON` MariaDB writes QUERY_COMPRESSED (165) and compressed rows events
//! (166-168 for v1 rows events, the only kind MariaDB 10.11 writes; 169-171 for v2), which
//! mysql_common does not know. Each is the uncompressed event with one part replaced by a
//! compressed record; [`decompress_event`] undoes that and [`decompress`] rebuilds an ordinary
//! [`Event`] of the equivalent type, so the usual mysql_common parsing applies.
//!
//! Layout (MariaDB `sql/log_event.cc`: `binlog_buf_compress`, `binlog_get_uncompress_len`,
//! `binlog_buf_uncompress`, `query_event_uncompress`, `row_log_event_uncompress`):
//! - compressed record: one header byte (bit 7 set = compressed; bits 4-6 the algorithm, only
//!   0 = zlib exists; bits 0-2 the count n, 1 to 4, of length bytes), then the uncompressed
//!   length in n bytes, big-endian, then a zlib stream (zlib `compress()`: RFC 1950 header and
//!   Adler-32 trailer) running to the end of the body.
//! - QUERY_COMPRESSED: post-header, status vars, database name and its NUL are as in
//!   QUERY_EVENT; only the query text is compressed.
//! - rows: table id (6) and flags (2), for v2 the variable header (its u16 length counts
//!   itself), the column count (length-encoded), the columns bitmap (two for UPDATE) are as in
//!   the plain event; only the row images after them are compressed.

use std::io;

use mysql_common::binlog::consts::BinlogChecksumAlg;
use mysql_common::binlog::events::Event;

use crate::position::Gtid;

/// MariaDB ANNOTATE_ROWS_EVENT.
pub const ANNOTATE_ROWS_EVENT: u8 = 160;
/// MariaDB BINLOG_CHECKPOINT_EVENT.
pub const BINLOG_CHECKPOINT_EVENT: u8 = 161;
/// MariaDB GTID_EVENT.
pub const GTID_EVENT: u8 = 162;
/// MariaDB GTID_LIST_EVENT.
pub const GTID_LIST_EVENT: u8 = 163;
/// MariaDB START_ENCRYPTION_EVENT.
pub const START_ENCRYPTION_EVENT: u8 = 164;
/// MariaDB QUERY_COMPRESSED_EVENT: a QUERY_EVENT (2) whose query text is compressed.
pub const QUERY_COMPRESSED_EVENT: u8 = 165;
/// MariaDB WRITE_ROWS_COMPRESSED_EVENT_V1: a WRITE_ROWS_EVENT_V1 (23) with compressed rows.
pub const WRITE_ROWS_COMPRESSED_EVENT_V1: u8 = 166;
/// MariaDB UPDATE_ROWS_COMPRESSED_EVENT_V1: an UPDATE_ROWS_EVENT_V1 (24) with compressed rows.
pub const UPDATE_ROWS_COMPRESSED_EVENT_V1: u8 = 167;
/// MariaDB DELETE_ROWS_COMPRESSED_EVENT_V1: a DELETE_ROWS_EVENT_V1 (25) with compressed rows.
pub const DELETE_ROWS_COMPRESSED_EVENT_V1: u8 = 168;
/// MariaDB WRITE_ROWS_COMPRESSED_EVENT: a WRITE_ROWS_EVENT (30) with compressed rows.
pub const WRITE_ROWS_COMPRESSED_EVENT: u8 = 169;
/// MariaDB UPDATE_ROWS_COMPRESSED_EVENT: an UPDATE_ROWS_EVENT (31) with compressed rows.
pub const UPDATE_ROWS_COMPRESSED_EVENT: u8 = 170;
/// MariaDB DELETE_ROWS_COMPRESSED_EVENT: a DELETE_ROWS_EVENT (32) with compressed rows.
pub const DELETE_ROWS_COMPRESSED_EVENT: u8 = 171;

/// `flags2` bit: the event group is a single statement without BEGIN/COMMIT (DDL).
const FL_STANDALONE: u8 = 1;
/// `flags2` bit: a commit id (u64) follows the flags.
const FL_GROUP_COMMIT_ID: u8 = 2;
/// `flags2` bit: the group is the prepare of an XA transaction; its XID follows.
const FL_PREPARED_XA: u8 = 0x40;

/// A decoded MariaDB GTID event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MariadbGtid {
    /// The transaction's GTID (server id from the event header).
    pub gtid: Gtid,
    /// True when no BEGIN/COMMIT surrounds the group: the next statement ends it.
    pub standalone: bool,
    /// The XID (as `X'…',X'…',N`) when the group is the prepare of an XA transaction
    /// (`FL_PREPARED_XA`): its rows wait for a later `XA COMMIT`/`XA ROLLBACK` group.
    pub prepared_xa: Option<String>,
}

/// Parses a GTID event body; `None` when it is too short.
pub fn parse_gtid(server_id: u32, body: &[u8]) -> Option<MariadbGtid> {
    let seq = u64::from_le_bytes(body.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(body.get(8..12)?.try_into().ok()?);
    let flags = *body.get(12)?;
    let prepared_xa = if flags & FL_PREPARED_XA != 0 {
        // After flags2: the commit id (8 bytes) when FL_GROUP_COMMIT_ID, then the XID:
        // formatID u32, gtrid and bqual lengths u8 each, their bytes.
        let at = if flags & FL_GROUP_COMMIT_ID != 0 {
            21
        } else {
            13
        };
        let format = u32::from_le_bytes(body.get(at..at + 4)?.try_into().ok()?);
        let (g, b) = (
            usize::from(*body.get(at + 4)?),
            usize::from(*body.get(at + 5)?),
        );
        let data = body.get(at + 6..at + 6 + g + b)?;
        Some(crate::source::txn::xid_text(format, &data[..g], &data[g..]))
    } else {
        None
    };
    Some(MariadbGtid {
        gtid: Gtid::Mariadb {
            domain,
            server: server_id,
            seq,
        },
        standalone: flags & FL_STANDALONE != 0,
        prepared_xa,
    })
}

/// QUERY_EVENT's post-header: thread id (4), exec time (4), db length (1), error code (2),
/// status vars length (2). MariaDB's `QUERY_HEADER_LEN`.
const QUERY_POST_HEADER_LEN: u8 = 13;
/// Offset of the database name's length in the query post-header (`Q_DB_LEN_OFFSET`).
const Q_DB_LEN_OFFSET: usize = 8;
/// Offset of the status vars' length in the query post-header (`Q_STATUS_VARS_LEN_OFFSET`).
const Q_STATUS_VARS_LEN_OFFSET: usize = 11;
/// A v1 rows event's post-header: table id (6) and flags (2) (`ROWS_HEADER_LEN_V1`).
const ROWS_HEADER_LEN_V1: u8 = 8;
/// A v2 rows event's post-header: v1's plus the variable header's length (`ROWS_HEADER_LEN_V2`).
const ROWS_HEADER_LEN_V2: u8 = 10;
/// Binlog event header length (v4).
const EVENT_HEADER_LEN: usize = 19;
/// Length of a CRC32 event checksum.
const CHECKSUM_LEN: usize = 4;
/// Deflate cannot expand data more than 1032 times; used only to size the first allocation.
const MAX_DEFLATE_RATIO: usize = 1032;

/// True for MariaDB's seven compressed event types (165-171).
pub fn is_compressed(event_type: u8) -> bool {
    (QUERY_COMPRESSED_EVENT..=DELETE_ROWS_COMPRESSED_EVENT).contains(&event_type)
}

/// MariaDB's name of a compressed event type.
fn compressed_type_name(event_type: u8) -> &'static str {
    match event_type {
        QUERY_COMPRESSED_EVENT => "QUERY_COMPRESSED_EVENT",
        WRITE_ROWS_COMPRESSED_EVENT_V1 => "WRITE_ROWS_COMPRESSED_EVENT_V1",
        UPDATE_ROWS_COMPRESSED_EVENT_V1 => "UPDATE_ROWS_COMPRESSED_EVENT_V1",
        DELETE_ROWS_COMPRESSED_EVENT_V1 => "DELETE_ROWS_COMPRESSED_EVENT_V1",
        WRITE_ROWS_COMPRESSED_EVENT => "WRITE_ROWS_COMPRESSED_EVENT",
        UPDATE_ROWS_COMPRESSED_EVENT => "UPDATE_ROWS_COMPRESSED_EVENT",
        DELETE_ROWS_COMPRESSED_EVENT => "DELETE_ROWS_COMPRESSED_EVENT",
        _ => "non-compressed",
    }
}

/// The post-header length MariaDB's FORMAT_DESCRIPTION gives a compressed type.
fn default_post_header_len(event_type: u8) -> u8 {
    match event_type {
        QUERY_COMPRESSED_EVENT => QUERY_POST_HEADER_LEN,
        WRITE_ROWS_COMPRESSED_EVENT_V1..=DELETE_ROWS_COMPRESSED_EVENT_V1 => ROWS_HEADER_LEN_V1,
        _ => ROWS_HEADER_LEN_V2,
    }
}

/// A compressed MariaDB event that cannot be decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot decompress the MariaDB {} (type {event_type}): {reason}",
    compressed_type_name(*event_type)
)]
pub struct CompressedError {
    /// The event's type.
    pub event_type: u8,
    /// What is wrong with it.
    pub reason: CompressedReason,
}

/// Why a compressed event cannot be decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressedReason {
    /// The type is not 165-171.
    #[error("it is not one of MariaDB's compressed event types (165-171)")]
    NotCompressed,
    /// The FORMAT_DESCRIPTION gives the type a post-header length MariaDB does not write.
    #[error("the FORMAT_DESCRIPTION event gives its post-header {found} bytes; MariaDB writes {expected}")]
    PostHeaderLength {
        /// The FORMAT_DESCRIPTION's value.
        found: u8,
        /// MariaDB's.
        expected: u8,
    },
    /// The body ends inside its uncompressed head, or has no compressed record.
    #[error("its {len}-byte body ends before {what}")]
    Truncated {
        /// The part that is missing.
        what: &'static str,
        /// The body's length (without checksum).
        len: usize,
    },
    /// The compressed record's header byte lacks bit 7.
    #[error("the compressed record's header byte {0:#04x} lacks the compressed flag (bit 7)")]
    NotFlagged(u8),
    /// The header byte names an algorithm other than zlib.
    #[error("the compressed record's header byte {byte:#04x} names compression algorithm {algorithm} (bits 4-6); MariaDB knows only 0, zlib")]
    Algorithm {
        /// The header byte.
        byte: u8,
        /// Its bits 4-6.
        algorithm: u8,
    },
    /// The header byte's count of length bytes is not 1-4.
    #[error("the compressed record's header byte {byte:#04x} gives {count} length bytes (bits 0-2); MariaDB writes 1 to 4")]
    LengthBytes {
        /// The header byte.
        byte: u8,
        /// Its bits 0-2.
        count: u8,
    },
    /// The uncompressed length is 0, which MariaDB treats as a bad event.
    #[error("the compressed record announces an uncompressed length of 0")]
    ZeroLength,
    /// zlib rejects the data.
    #[error("its zlib data is corrupt: {0}")]
    Zlib(String),
    /// The zlib stream stops before its end (missing data or Adler-32 trailer).
    #[error("its zlib stream is cut short after {produced} of the {announced} announced bytes")]
    ZlibTruncated {
        /// Bytes decompressed before the data ran out.
        produced: usize,
        /// Bytes announced.
        announced: usize,
    },
    /// The zlib data holds more than announced.
    #[error("its zlib data holds more than the {announced} uncompressed bytes announced")]
    Longer {
        /// Bytes announced.
        announced: usize,
    },
    /// The zlib data holds fewer bytes than announced.
    #[error("its zlib data holds {actual} bytes, not the {announced} announced")]
    Shorter {
        /// Bytes announced.
        announced: usize,
        /// Bytes in the stream.
        actual: usize,
    },
    /// The uncompressed event does not fit a binlog event's 32-bit size.
    #[error(
        "the uncompressed event would be {0} bytes, more than a binlog event's 32-bit size allows"
    )]
    TooLarge(u64),
    /// mysql_common cannot read the rebuilt event.
    #[error("mysql_common cannot read the rebuilt uncompressed event: {0}")]
    Rebuild(String),
}

/// Decompresses the body of a MariaDB compressed event.
///
/// `body` is the event data after the 19-byte common header and without the checksum (what
/// mysql_common's `Event::data` holds); `post_header_len` is the one the binlog's
/// FORMAT_DESCRIPTION gives `event_type` (13 for 165, 8 for 166-168, 10 for 169-171 in every
/// MariaDB binlog). Returns the equivalent uncompressed type (2; 23/24/25 for 166-168; 30/31/32
/// for 169-171) and body: the uncompressed head unchanged, followed by the decompressed part,
/// byte for byte what the server writes with `log_bin_compress=OFF`.
pub fn decompress_event(
    event_type: u8,
    post_header_len: u8,
    body: &[u8],
) -> Result<(u8, Vec<u8>), CompressedError> {
    let fail = |reason| CompressedError { event_type, reason };
    let truncated = |what| {
        fail(CompressedReason::Truncated {
            what,
            len: body.len(),
        })
    };
    let (plain_type, head_len) = match event_type {
        QUERY_COMPRESSED_EVENT => {
            // query_event_uncompress: post-header, status vars, db name and its NUL stay plain.
            if post_header_len < QUERY_POST_HEADER_LEN {
                return Err(fail(CompressedReason::PostHeaderLength {
                    found: post_header_len,
                    expected: QUERY_POST_HEADER_LEN,
                }));
            }
            if body.len() < usize::from(QUERY_POST_HEADER_LEN) {
                return Err(truncated("the query post-header"));
            }
            let db_len = usize::from(body[Q_DB_LEN_OFFSET]);
            let vars_len = usize::from(u16::from_le_bytes([
                body[Q_STATUS_VARS_LEN_OFFSET],
                body[Q_STATUS_VARS_LEN_OFFSET + 1],
            ]));
            (2, usize::from(post_header_len) + vars_len + db_len + 1)
        }
        WRITE_ROWS_COMPRESSED_EVENT_V1..=DELETE_ROWS_COMPRESSED_EVENT => {
            // row_log_event_uncompress: everything up to the row images stays plain.
            let v2 = event_type >= WRITE_ROWS_COMPRESSED_EVENT;
            let expected = if v2 {
                ROWS_HEADER_LEN_V2
            } else {
                ROWS_HEADER_LEN_V1
            };
            if post_header_len != expected {
                return Err(fail(CompressedReason::PostHeaderLength {
                    found: post_header_len,
                    expected,
                }));
            }
            let plain_type = if v2 {
                event_type - WRITE_ROWS_COMPRESSED_EVENT + 30
            } else {
                event_type - WRITE_ROWS_COMPRESSED_EVENT_V1 + 23
            };
            let mut at = usize::from(ROWS_HEADER_LEN_V1);
            if v2 {
                let var = body
                    .get(at..at + 2)
                    .ok_or_else(|| truncated("the rows event's variable header length"))?;
                at += usize::from(u16::from_le_bytes([var[0], var[1]]));
            }
            let (width, n) = read_lenenc(body.get(at..).unwrap_or_default())
                .ok_or_else(|| truncated("the rows event's column count"))?;
            let bitmaps = if event_type == UPDATE_ROWS_COMPRESSED_EVENT_V1
                || event_type == UPDATE_ROWS_COMPRESSED_EVENT
            {
                2
            } else {
                1
            };
            let bitmap_len = usize::try_from(width.div_ceil(8))
                .ok()
                .and_then(|b| b.checked_mul(bitmaps))
                .ok_or_else(|| truncated("the rows event's column bitmaps"))?;
            (plain_type, (at + n).saturating_add(bitmap_len))
        }
        _ => return Err(fail(CompressedReason::NotCompressed)),
    };
    let record = body
        .get(head_len..)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| truncated("the compressed record"))?;
    let (announced, data) = record_header(record).map_err(fail)?;
    let mut out = Vec::new();
    out.try_reserve_exact(head_len + announced.min(data.len().saturating_mul(MAX_DEFLATE_RATIO)))
        .map_err(|_| fail(CompressedReason::TooLarge(announced as u64)))?;
    out.extend_from_slice(&body[..head_len]);
    inflate(data, announced, &mut out).map_err(fail)?;
    Ok((plain_type, out))
}

/// A length-encoded integer and its length in bytes.
fn read_lenenc(b: &[u8]) -> Option<(u64, usize)> {
    let n = match *b.first()? {
        x @ 0..=0xfa => return Some((u64::from(x), 1)),
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
        _ => return None,
    };
    let mut v = [0u8; 8];
    v[..n].copy_from_slice(b.get(1..1 + n)?);
    Some((u64::from_le_bytes(v), 1 + n))
}

/// Reads a compressed record's header (`binlog_get_uncompress_len` and the checks of
/// `binlog_buf_uncompress`): the announced length and the zlib data.
fn record_header(record: &[u8]) -> Result<(usize, &[u8]), CompressedReason> {
    let byte = record[0];
    if byte & 0x80 == 0 {
        return Err(CompressedReason::NotFlagged(byte));
    }
    let algorithm = (byte >> 4) & 0x07;
    if algorithm != 0 {
        return Err(CompressedReason::Algorithm { byte, algorithm });
    }
    // Bit 3 is ignored, as MariaDB does.
    let count = byte & 0x07;
    if !(1..=4).contains(&count) {
        return Err(CompressedReason::LengthBytes { byte, count });
    }
    let count = usize::from(count);
    let len_bytes = record
        .get(1..1 + count)
        .ok_or(CompressedReason::Truncated {
            what: "the compressed record's length",
            len: record.len(),
        })?;
    let announced = len_bytes
        .iter()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    if announced == 0 {
        return Err(CompressedReason::ZeroLength);
    }
    Ok((announced, &record[1 + count..]))
}

/// Appends the zlib stream `data` to `out`, requiring it to be complete and exactly
/// `announced` bytes long.
fn inflate(data: &[u8], announced: usize, out: &mut Vec<u8>) -> Result<(), CompressedReason> {
    use flate2::{Decompress, FlushDecompress, Status};
    let start = out.len();
    let limit = start.saturating_add(announced).saturating_add(1);
    let mut z = Decompress::new(true);
    loop {
        let consumed = usize::try_from(z.total_in()).unwrap_or(usize::MAX);
        let before = out.len();
        // Not FlushDecompress::Finish: with the rust backend a Finish call whose output space
        // is too small fails the stream for good, and the space here grows in steps.
        let status = z
            .decompress_vec(
                data.get(consumed..).unwrap_or_default(),
                out,
                FlushDecompress::None,
            )
            .map_err(|e| CompressedReason::Zlib(e.to_string()))?;
        let produced = out.len() - start;
        if produced > announced {
            return Err(CompressedReason::Longer { announced });
        }
        if status == Status::StreamEnd {
            break;
        }
        if out.len() == out.capacity() {
            let grow = (limit - out.len()).min(out.len().max(4096));
            out.try_reserve_exact(grow)
                .map_err(|_| CompressedReason::TooLarge(announced as u64))?;
            continue;
        }
        let now = usize::try_from(z.total_in()).unwrap_or(usize::MAX);
        if now >= data.len() || (now == consumed && out.len() == before) {
            // Room is left but the input ran out before the stream's end.
            return Err(CompressedReason::ZlibTruncated {
                produced,
                announced,
            });
        }
    }
    let actual = out.len() - start;
    if actual != announced {
        return Err(CompressedReason::Shorter { announced, actual });
    }
    Ok(())
}

/// Rebuilds a MariaDB compressed event as the equivalent uncompressed [`Event`]; `Ok(None)`
/// when `event` is not compressed.
///
/// The result is what MariaDB itself reconstructs (`query_event_uncompress`,
/// `row_log_event_uncompress`): the same header with the uncompressed type and `event_size`,
/// the decompressed body, and, when the binlog has checksums (the event's FORMAT_DESCRIPTION
/// footer, as `Event::read` decides), a freshly computed CRC32. It is read with `event.fde()`,
/// so `read_event`/`read_data` parse it exactly like an event of that type from the stream.
///
/// Positions: `log_pos` is kept but `event_size` is now the uncompressed size, so
/// `log_pos - event_size` is no longer where the event starts. Take the event's start and end
/// from the compressed event's header.
pub fn decompress(event: &Event) -> Result<Option<Event>, CompressedError> {
    let header = event.header();
    let event_type = header.event_type_raw();
    if !is_compressed(event_type) {
        return Ok(None);
    }
    let fde = event.fde();
    let post_header_len = fde
        .event_type_header_lengths()
        .get(usize::from(event_type) - 1)
        .copied()
        .unwrap_or_else(|| default_post_header_len(event_type));
    let (plain_type, body) = decompress_event(event_type, post_header_len, event.data())?;
    let fail = |reason| CompressedError { event_type, reason };

    // Event::read strips a checksum when this holds; the rebuilt event must carry one then.
    let footer = fde.footer();
    let checksummed = footer.get_checksum_enabled()
        && !matches!(
            footer.get_checksum_alg(),
            Ok(None | Some(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_OFF))
        );
    let size = EVENT_HEADER_LEN + body.len() + if checksummed { CHECKSUM_LEN } else { 0 };
    let size32 = u32::try_from(size).map_err(|_| fail(CompressedReason::TooLarge(size as u64)))?;
    let mut raw = Vec::with_capacity(size);
    raw.extend_from_slice(&header.timestamp().to_le_bytes());
    raw.push(plain_type);
    raw.extend_from_slice(&header.server_id().to_le_bytes());
    raw.extend_from_slice(&size32.to_le_bytes());
    raw.extend_from_slice(&header.log_pos().to_le_bytes());
    raw.extend_from_slice(&header.flags_raw().to_le_bytes());
    raw.extend_from_slice(&body);
    if checksummed {
        let crc = crc32fast::hash(&raw);
        raw.extend_from_slice(&crc.to_le_bytes());
    }
    Event::read(fde, io::Cursor::new(raw))
        .map(Some)
        .map_err(|e| fail(CompressedReason::Rebuild(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    use mysql_common::binlog::consts::BinlogVersion;
    use mysql_common::binlog::events::{
        FormatDescriptionEvent, QueryEvent, RowsEventData, TableMapEvent,
    };
    use mysql_common::binlog::value::BinlogValue;
    use mysql_common::value::Value;

    // Real events, copied from two MariaDB 10.11.14 servers (binlog_checksum=CRC32,
    // binlog_format=ROW, binlog_row_image=FULL) that ran the same statements, one with
    // --log-bin-compress=ON --log-bin-compress-min-len=10, the other with log_bin_compress=OFF:
    //   CREATE DATABASE ct;
    //   CREATE TABLE ct.t (id INT PRIMARY KEY, a VARCHAR(2000), b LONGTEXT);
    //   INSERT INTO ct.t VALUES (1, 'hello compressed world', 'bbbbbbbbbbbb'),
    //                           (2, REPEAT('ab', 500), REPEAT('z', 100000));
    //   UPDATE ct.t SET a = CONCAT(a, '-updated') WHERE id = 1;
    //   DELETE FROM ct.t WHERE id = 2;
    //   INSERT INTO ct.t VALUES (3, REPEAT('q', 300), 'x');
    // The INSERT of two rows is logged as two rows events (the second row is large). Each
    // constant is a whole event: header, body, CRC32.
    // log_bin_compress=ON server, binlog.000002 at 4, type 15
    /// 252 bytes.
    const FDE: &str = concat!(
        "76ca156b0f2043556ffc000000000100000100040031302e31312e31342d4d6172696144422d302b646562313275",
        "322d6c6f6700000000000000000000000000000000000000000000000013380d000800120004040404120000e400",
        "041a08000000080808020000000a0a0a0000000000000a0a0a000000000000000000000000000000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000041304000d0808080a0a0a0163c9cc9d",
    );
    // log_bin_compress=ON server, binlog.000002 at 860, type 19
    /// 65 bytes.
    const TABLE_MAP: &str = concat!(
        "76ca156b132043556f410000009d030000000012000000000001000263740001740003030ffc03d0070406010100",
        "02010804070269640161016208010055401af6",
    );
    // log_bin_compress=ON server, binlog.000002 at 532, type 165
    /// 149 bytes.
    const QUERY_C: &str = concat!(
        "76ca156ba52043556f95000000a90200000000070000000000000000000023000000000001010000205400000000",
        "060373746404210021000800810a00000000000000008143789c730e72750c7155087174f27155482ed12b51d0c8",
        "4c51f0f40b510808f2f4750c8a54f0768dd451485408730c72f6700cd230323030d0d4514852f0f1f7730f718d08",
        "d10400637e1196030b2e9b",
    );
    // log_bin_compress=ON server, binlog.000002 at 925, type 166
    /// 77 bytes.
    const INSERT1_C: &str = concat!(
        "76ca156ba62043556f4d000000ea030000000012000000000000000307812d789cfbc1c8c0c020c690919a9393af",
        "909c9f5b50945a5c9c9aa2509e5f9493c203944b4202003c8b0e65f3308d97",
    );
    // log_bin_compress=ON server, binlog.000002 at 1002, type 166
    /// 176 bytes.
    const INSERT2_C: &str = concat!(
        "76ca156ba62043556fb00000009a04000000001200000000000100030783018a93789cedc1511100110005c0e724",
        "25c60590433c117caa61cceeee2fc9aaadabaf9fa3e4070000000000000000000000000000000000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000ae7500c754b31e78051607",
    );
    // log_bin_compress=ON server, binlog.000002 at 1393, type 167
    /// 94 bytes.
    const UPDATE_C: &str = concat!(
        "76ca156ba72043556f5e000000cf050000000012000000000001000307078162789cfbc1c8c0c020c690919a9393",
        "af909c9f5b50945a5c9c9aa2509e5f9493c203944b42023f408ae57028d62d2d48492c49c5d00400020b1fe5b753",
        "fd79",
    );
    // log_bin_compress=ON server, binlog.000002 at 1677, type 168
    /// 176 bytes.
    const DELETE_C: &str = concat!(
        "76ca156ba82043556fb00000003d07000000001200000000000100030783018a93789cedc1511100110005c0e724",
        "25c60590433c117caa61cceeee2fc9aaadabaf9fa3e4070000000000000000000000000000000000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000ae7500c754b31ec0e0c418",
    );
    // log_bin_compress=ON server, binlog.000002 at 2064, type 166
    /// 60 bytes.
    const INSERT3_C: &str = concat!(
        "82ca156ba62043556f3c0000004c080000000012000000000001000307820138789cfbc1ccc0c0a0c358380a8806",
        "8cc010ab0000dde9860e9ab4b99e",
    );
    // log_bin_compress=OFF server, binlog.000002 at 532, type 2
    /// 139 bytes.
    const QUERY_P: &str = concat!(
        "76ca156b0266852d038b0000009f0200000000070000000000000000000023000000000001010000205400000000",
        "060373746404210021000800810a0000000000000000435245415445205441424c452063742e742028696420494e",
        "54205052494d415259204b45592c206120564152434841522832303030292c2062204c4f4e475445585429a1ae86",
        "af",
    );
    // log_bin_compress=OFF server, binlog.000002 at 915, type 23
    /// 78 bytes.
    const INSERT1_P: &str = concat!(
        "76ca156b1766852d034e000000e1030000000012000000000000000307f801000000160068656c6c6f20636f6d70",
        "72657373656420776f726c640c0000006262626262626262626262620de85cef",
    );
    // log_bin_compress=OFF server, binlog.000002 at 102252, type 24
    /// 132 bytes.
    const UPDATE_P: &str = concat!(
        "76ca156b1866852d0384000000f08f010000001200000000000100030707f801000000160068656c6c6f20636f6d",
        "7072657373656420776f726c640c000000626262626262626262626262f8010000001e0068656c6c6f20636f6d70",
        "72657373656420776f726c642d757064617465640c000000626262626262626262626262e79b8084",
    );
    // log_bin_compress=OFF server, binlog.000002 at 203829, type 23
    /// 345 bytes.
    const INSERT3_P: &str = concat!(
        "82ca156b1766852d03590100008e1d0300000012000000000001000307f8030000002c0171717171717171717171",
        "71717171717171717171717171717171717171717171717171717171717171717171717171717171717171717171",
        "71717171717171717171717171717171717171717171717171717171717171717171717171717171717171717171",
        "71717171717171717171717171717171717171717171717171717171717171717171717171717171717171717171",
        "71717171717171717171717171717171717171717171717171717171717171717171717171717171717171717171",
        "71717171717171717171717171717171717171717171717171717171717171717171717171717171717171717171",
        "71717171717171717171717171717171717171717171717171717171717171717171717171717171717171717171",
        "717171717171717171717171717101000000789f31945e",
    );

    // The OFF server's events holding row 2 are 101044 bytes; their headers and checksums are
    // kept, and the body is rebuilt by `big_row_body` (the checksum proves it exact).
    /// Header of the OFF server's WRITE_ROWS_EVENT_V1 (23) of row 2, at 993.
    const INSERT2_P_HEADER: &str = "76ca156b1766852d03b48a0100958e01000000";
    /// Its CRC32.
    const INSERT2_P_CRC: &str = "7ebfd130";
    /// Header of the OFF server's DELETE_ROWS_EVENT_V1 (25) of row 2, at 102574.
    const DELETE_P_HEADER: &str = "76ca156b1966852d03b48a0100621b03000000";
    /// Its CRC32.
    const DELETE_P_CRC: &str = "2b9e6043";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// An event's body: after the common header, without the CRC32.
    fn body(raw: &[u8]) -> &[u8] {
        &raw[EVENT_HEADER_LEN..raw.len() - CHECKSUM_LEN]
    }

    /// The body of a rows event of row 2 as the OFF server wrote it: table id 18, flags
    /// STMT_END, 3 columns, all present, then the row (null bitmap, INT, VARCHAR with a 2-byte
    /// length, LONGTEXT with a 4-byte length).
    fn big_row_body() -> Vec<u8> {
        // Table id, flags, width, columns bitmap, then the row's null bitmap.
        let mut b = unhex("12000000000001000307f8");
        b.extend_from_slice(&2i32.to_le_bytes());
        b.extend_from_slice(&1000u16.to_le_bytes());
        b.extend_from_slice(&b"ab".repeat(500));
        b.extend_from_slice(&100_000u32.to_le_bytes());
        b.extend_from_slice(&b"z".repeat(100_000));
        b
    }

    /// The binlog's FORMAT_DESCRIPTION, read as mysql_common's stream reader does.
    fn mariadb_fde() -> FormatDescriptionEvent<'static> {
        let boot = FormatDescriptionEvent::new(BinlogVersion::Version4);
        let ev = Event::read(&boot, &unhex(FDE)[..]).unwrap();
        ev.read_event::<FormatDescriptionEvent<'_>>()
            .unwrap()
            .into_owned()
            .with_footer(ev.footer())
    }

    /// A row image's values, if the event has that image.
    type Image = Option<Vec<Value>>;

    fn rows(ev: &Event, tme: &TableMapEvent<'_>) -> Vec<(Image, Image)> {
        let data = match ev.header().event_type_raw() {
            23 => RowsEventData::WriteRowsEventV1(ev.read_event().unwrap()),
            24 => RowsEventData::UpdateRowsEventV1(ev.read_event().unwrap()),
            25 => RowsEventData::DeleteRowsEventV1(ev.read_event().unwrap()),
            30 => RowsEventData::WriteRowsEvent(ev.read_event().unwrap()),
            31 => RowsEventData::UpdateRowsEvent(ev.read_event().unwrap()),
            32 => RowsEventData::DeleteRowsEvent(ev.read_event().unwrap()),
            t => panic!("not a rows event: {t}"),
        };
        let values = |row: mysql_common::binlog::row::BinlogRow| {
            row.unwrap()
                .into_iter()
                .map(|v| match v {
                    BinlogValue::Value(v) => v,
                    other => panic!("unexpected {other:?}"),
                })
                .collect::<Vec<_>>()
        };
        data.rows(tme)
            .map(|r| {
                let (before, after) = r.unwrap();
                (before.map(values), after.map(values))
            })
            .collect()
    }

    fn row(id: i64, a: &[u8], b: &[u8]) -> Vec<Value> {
        vec![
            Value::Int(id),
            Value::Bytes(a.to_vec()),
            Value::Bytes(b.to_vec()),
        ]
    }

    /// A whole event (header, body, CRC32) with the header of `raw` and another type and body.
    fn reframe(raw: &[u8], event_type: u8, body: &[u8]) -> Vec<u8> {
        let mut out = raw[..EVENT_HEADER_LEN].to_vec();
        out[4] = event_type;
        let size = (EVENT_HEADER_LEN + body.len() + CHECKSUM_LEN) as u32;
        out[9..13].copy_from_slice(&size.to_le_bytes());
        out.extend_from_slice(body);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    #[test]
    fn compressed_bodies_decompress_to_what_the_uncompressed_server_wrote() {
        let cases = [
            (QUERY_C, 13, 2, QUERY_P),
            (INSERT1_C, 8, 23, INSERT1_P),
            (INSERT3_C, 8, 23, INSERT3_P),
            (UPDATE_C, 8, 24, UPDATE_P),
        ];
        for (compressed, post_header_len, plain_type, plain) in cases {
            let compressed = unhex(compressed);
            let plain = unhex(plain);
            assert_eq!(plain[4], plain_type);
            let got = decompress_event(compressed[4], post_header_len, body(&compressed)).unwrap();
            assert_eq!(
                got,
                (plain_type, body(&plain).to_vec()),
                "type {}",
                compressed[4]
            );
        }
        // The three sizes of length: 1 byte (INSERT1, head of 10 bytes), 2 (INSERT3), 3 (row 2).
        assert_eq!(unhex(INSERT1_C)[EVENT_HEADER_LEN + 10], 0x81);
        assert_eq!(unhex(INSERT3_C)[EVENT_HEADER_LEN + 10], 0x82);
        assert_eq!(unhex(INSERT2_C)[EVENT_HEADER_LEN + 10], 0x83);
    }

    #[test]
    fn a_100_kb_row_decompresses_to_the_uncompressed_servers_event() {
        let big = big_row_body();
        for (compressed, plain_type, header, crc) in [
            (INSERT2_C, 23, INSERT2_P_HEADER, INSERT2_P_CRC),
            (DELETE_C, 25, DELETE_P_HEADER, DELETE_P_CRC),
        ] {
            // The rebuilt expectation is the OFF server's event: its checksum matches.
            let mut plain = unhex(header);
            assert_eq!(plain[4], plain_type);
            plain.extend_from_slice(&big);
            assert_eq!(crc32fast::hash(&plain).to_le_bytes().to_vec(), unhex(crc));

            let compressed = unhex(compressed);
            let (t, got) = decompress_event(compressed[4], 8, body(&compressed)).unwrap();
            assert_eq!(t, plain_type);
            assert!(got == big, "row 2 differs after decompression");
        }
    }

    #[test]
    fn inflate_grows_its_output_in_steps() {
        // Starting from no capacity exercises the growth path a small first allocation takes.
        let compressed = unhex(INSERT2_C);
        let (announced, data) = record_header(&body(&compressed)[10..]).unwrap();
        let mut out = Vec::new();
        inflate(data, announced, &mut out).unwrap();
        assert!(
            out == big_row_body()[10..],
            "row 2 differs after decompression"
        );
    }

    #[test]
    fn decompress_rebuilds_events_that_mysql_common_parses() {
        let fde = mariadb_fde();
        let tme_event = Event::read(&fde, &unhex(TABLE_MAP)[..]).unwrap();
        let tme = tme_event.read_event::<TableMapEvent<'_>>().unwrap();
        assert_eq!(decompress(&tme_event).unwrap(), None);

        let read = |hex: &str| {
            let raw = unhex(hex);
            let ev = Event::read(&fde, &raw[..]).unwrap();
            let plain = decompress(&ev).unwrap().expect("a compressed event");
            let (h, p) = (ev.header(), plain.header());
            assert_eq!(
                (p.timestamp(), p.server_id(), p.log_pos(), p.flags_raw()),
                (h.timestamp(), h.server_id(), h.log_pos(), h.flags_raw())
            );
            assert_eq!(
                p.event_size() as usize,
                EVENT_HEADER_LEN + plain.data().len() + 4
            );
            let alg = BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32;
            assert_eq!(
                plain.checksum(),
                Some(plain.calc_checksum(alg).to_le_bytes())
            );
            plain
        };

        let query = read(QUERY_C);
        assert_eq!(query.header().event_type_raw(), 2);
        assert_eq!(query.data(), body(&unhex(QUERY_P)));
        let q = query.read_event::<QueryEvent<'_>>().unwrap();
        assert_eq!(
            q.query(),
            "CREATE TABLE ct.t (id INT PRIMARY KEY, a VARCHAR(2000), b LONGTEXT)"
        );

        let hello = row(1, b"hello compressed world", b"bbbbbbbbbbbb");
        let big = row(2, &b"ab".repeat(500), &b"z".repeat(100_000));
        let insert1 = read(INSERT1_C);
        assert_eq!(insert1.header().event_type_raw(), 23);
        assert_eq!(rows(&insert1, &tme), vec![(None, Some(hello.clone()))]);
        let insert2 = read(INSERT2_C);
        assert_eq!(rows(&insert2, &tme), vec![(None, Some(big.clone()))]);
        let update = read(UPDATE_C);
        assert_eq!(update.header().event_type_raw(), 24);
        let updated = row(1, b"hello compressed world-updated", b"bbbbbbbbbbbb");
        assert_eq!(rows(&update, &tme), vec![(Some(hello), Some(updated))]);
        let delete = read(DELETE_C);
        assert_eq!(delete.header().event_type_raw(), 25);
        assert_eq!(rows(&delete, &tme), vec![(Some(big), None)]);
        let insert3 = read(INSERT3_C);
        assert_eq!(
            rows(&insert3, &tme),
            vec![(None, Some(row(3, &b"q".repeat(300), b"x")))]
        );
    }

    #[test]
    fn decompress_adds_no_checksum_to_a_binlog_without_one() {
        // A FORMAT_DESCRIPTION without checksums and without MariaDB's post-header lengths.
        let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
        let raw = unhex(INSERT1_C);
        let mut unsummed = raw[..raw.len() - 4].to_vec();
        unsummed[9..13].copy_from_slice(&((raw.len() - 4) as u32).to_le_bytes());
        let ev = Event::read(&fde, &unsummed[..]).unwrap();
        let plain = decompress(&ev).unwrap().unwrap();
        assert_eq!(plain.data(), body(&unhex(INSERT1_P)));
        assert_eq!(
            plain.header().event_size() as usize,
            EVENT_HEADER_LEN + plain.data().len()
        );
    }

    #[test]
    fn v2_compressed_rows_events_keep_their_variable_header() {
        // MariaDB 10.11 writes only the v1 compressed types; 169-171 are built here from the
        // real v1 events by adding the empty v2 variable header (its length, 2, counts itself).
        let fde = mariadb_fde();
        let tme = Event::read(&fde, &unhex(TABLE_MAP)[..]).unwrap();
        let tme = tme.read_event::<TableMapEvent<'_>>().unwrap();
        let v2 = |b: &[u8]| [&b[..8], &[2, 0], &b[8..]].concat();
        for (compressed, v2_type, plain) in [
            (INSERT1_C, WRITE_ROWS_COMPRESSED_EVENT, INSERT1_P),
            (UPDATE_C, UPDATE_ROWS_COMPRESSED_EVENT, UPDATE_P),
        ] {
            let compressed = unhex(compressed);
            let plain = unhex(plain);
            let body2 = v2(body(&compressed));
            let (t, got) = decompress_event(v2_type, 10, &body2).unwrap();
            assert_eq!(t, plain[4] + 7);
            assert_eq!(got, v2(body(&plain)));

            let ev = Event::read(&fde, &reframe(&compressed, v2_type, &body2)[..]).unwrap();
            let rebuilt = decompress(&ev).unwrap().unwrap();
            assert_eq!(rebuilt.header().event_type_raw(), t);
            let v1 = Event::read(&fde, &plain[..]).unwrap();
            assert_eq!(rows(&rebuilt, &tme), rows(&v1, &tme));
        }
        let delete = unhex(DELETE_C);
        let (t, got) =
            decompress_event(DELETE_ROWS_COMPRESSED_EVENT, 10, &v2(body(&delete))).unwrap();
        assert_eq!((t, got), (32, v2(&big_row_body())));
    }

    #[test]
    fn malformed_compressed_events_are_refused_with_the_reason() {
        let insert = unhex(INSERT1_C);
        let insert = body(&insert);
        // The compressed record starts after table id, flags, width and bitmap: at 10.
        let with = |at: usize, bytes: &[u8]| {
            let mut b = insert.to_vec();
            b.splice(at..at + bytes.len(), bytes.iter().copied());
            b
        };
        let reason = |t: u8, phl: u8, b: &[u8]| decompress_event(t, phl, b).unwrap_err().reason;
        use CompressedReason::*;
        assert_eq!(reason(23, 8, insert), NotCompressed);
        assert_eq!(
            reason(166, 10, insert),
            PostHeaderLength {
                found: 10,
                expected: 8
            }
        );
        assert_eq!(reason(166, 8, &with(10, &[0x01])), NotFlagged(0x01));
        assert_eq!(
            reason(166, 8, &with(10, &[0x91])),
            Algorithm {
                byte: 0x91,
                algorithm: 1
            }
        );
        assert_eq!(
            reason(166, 8, &with(10, &[0x80])),
            LengthBytes {
                byte: 0x80,
                count: 0
            }
        );
        assert_eq!(
            reason(166, 8, &with(10, &[0x85])),
            LengthBytes {
                byte: 0x85,
                count: 5
            }
        );
        assert_eq!(reason(166, 8, &with(10, &[0x81, 0])), ZeroLength);
        assert_eq!(
            reason(166, 8, &with(10, &[0x81, 46])),
            Shorter {
                announced: 46,
                actual: 45
            }
        );
        assert_eq!(
            reason(166, 8, &with(10, &[0x81, 44])),
            Longer { announced: 44 }
        );
        // Without the last byte of its Adler-32 trailer the stream is incomplete.
        assert_eq!(
            reason(166, 8, &insert[..insert.len() - 1]),
            ZlibTruncated {
                produced: 45,
                announced: 45
            }
        );
        let mut bad_sum = insert.to_vec();
        *bad_sum.last_mut().unwrap() ^= 1;
        assert!(matches!(reason(166, 8, &bad_sum), Zlib(_)));
        assert_eq!(
            reason(166, 8, &insert[..10]),
            Truncated {
                what: "the compressed record",
                len: 10
            }
        );
        assert_eq!(
            reason(165, 13, &body(&unhex(QUERY_C))[..12]),
            Truncated {
                what: "the query post-header",
                len: 12
            }
        );
        assert_eq!(
            decompress_event(166, 8, &with(10, &[0x91]))
                .unwrap_err()
                .to_string(),
            "cannot decompress the MariaDB WRITE_ROWS_COMPRESSED_EVENT_V1 (type 166): the \
             compressed record's header byte 0x91 names compression algorithm 1 (bits 4-6); \
             MariaDB knows only 0, zlib"
        );
    }

    #[test]
    fn gtid_event_body_decodes_domain_server_and_sequence() {
        let mut body = 77u64.to_le_bytes().to_vec();
        body.extend_from_slice(&3u32.to_le_bytes());
        body.push(FL_STANDALONE);
        let g = parse_gtid(9, &body).unwrap();
        assert_eq!(g.gtid.to_string(), "3-9-77");
        assert!(g.standalone);
        assert!(parse_gtid(9, &body[..5]).is_none());
        // A real prepare group's GTID body (flags2 0x4c, XID 'x''y','bq',7).
        let xa = [
            12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x4c, 7, 0, 0, 0, 3, 2, 0x78, 0x27, 0x79, 0x62,
            0x71, 1, 0xff,
        ];
        let g = parse_gtid(9, &xa).unwrap();
        assert_eq!(g.prepared_xa.as_deref(), Some("X'782779',X'6271',7"));
        assert!(!g.standalone);
    }
}

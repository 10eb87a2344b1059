//! A binlog file read to its end is no gap: the position-mode checkpoint follows the stream into
//! the next file once the old one is proven read.
//!
//! In position mode the checkpoint names a file and an offset. When the source rotates while the
//! stream is idle, the checkpoint would stay at the old file's last commit, and a later purge of
//! that file would look like a gap although nothing in it was left unread. [`FileEnds`] moves
//! the checkpoint to the next file's start, but only on proof: every byte of the old file from
//! the checkpoint on was read, byte-contiguously (each event starts where the previous one
//! ended), and held only events that carry no change (FORMAT_DESCRIPTION, PREVIOUS_GTIDS,
//! GTID_LIST, BINLOG_CHECKPOINT, START_ENCRYPTION) up to the file's last event, its ROTATE (or
//! the STOP of a server shutdown) after which the source moves on to the next file. Anything
//! else, an open transaction, an event that cannot be placed in the file, a jump in offsets,
//! drops the proof until the next commit; the checkpoint then stays where it was, and a purge
//! is judged by [`super::find_gap`] as before. The proof can only fail to form; it never covers
//! a byte it did not see.

use mysql_common::binlog::events::Event;

use super::mariadb::{BINLOG_CHECKPOINT_EVENT, GTID_LIST_EVENT, START_ENCRYPTION_EVENT};
use super::txn::Chunk;
use crate::position::{BinlogPosition, Checkpoint, ResumePoint};

/// STOP_EVENT: the server shut down; the last event of its binlog file.
const STOP_EVENT: u8 = 3;
/// ROTATE_EVENT: the last event of a rotated file, or made up by the sender to name a file.
const ROTATE_EVENT: u8 = 4;
/// FORMAT_DESCRIPTION_EVENT: the first event of every binlog file, at offset 4.
const FORMAT_DESCRIPTION_EVENT: u8 = 15;
/// HEARTBEAT_LOG_EVENT and its v2: sent by an idle source, never in a file.
const HEARTBEAT_EVENTS: [u8; 2] = [27, 41];
/// PREVIOUS_GTIDS_LOG_EVENT: MySQL writes it after the FORMAT_DESCRIPTION of every file.
const PREVIOUS_GTIDS_EVENT: u8 = 35;
/// Offset of the first event in a binlog file (after the magic bytes).
const FIRST_EVENT: u64 = 4;
/// `LOG_EVENT_ARTIFICIAL_F`: the sender made the event up; it is not in the binlog file.
pub(crate) const ARTIFICIAL: u16 = 0x20;

/// Events that sit between transactions and carry no change.
fn is_inert(kind: u8) -> bool {
    matches!(
        kind,
        FORMAT_DESCRIPTION_EVENT
            | PREVIOUS_GTIDS_EVENT
            | GTID_LIST_EVENT
            | BINLOG_CHECKPOINT_EVENT
            | START_ENCRYPTION_EVENT
    )
}

/// What is proven about the binlog past the last checkpoint the reader proposed.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Read {
    /// Every byte of the file from the checkpoint up to this offset was read; none holds a change.
    Clean(BinlogPosition),
    /// This file was read to its last event (a STOP), with no change after the checkpoint.
    Ended(String),
    /// After such a file the source moved on to this place (the next file's start); the
    /// FORMAT_DESCRIPTION that dates the new file comes next.
    Moved(BinlogPosition),
    /// Nothing is proven: a transaction is open, or an event could not be placed.
    Unknown,
}

/// One event, as far as the proof needs it.
#[derive(Clone, Copy, Debug)]
struct Seen {
    kind: u8,
    /// `(start, end)` offsets in the file being read; `None` for an event the sender made up.
    place: Option<(u64, u64)>,
    size: u64,
    timestamp: u32,
}

impl Seen {
    fn of(event: &Event) -> Seen {
        let header = event.header();
        let end = u64::from(header.log_pos());
        let size = u64::from(header.event_size());
        let in_file = end > 0 && header.flags_raw() & ARTIFICIAL == 0;
        Seen {
            kind: header.event_type_raw(),
            place: in_file.then(|| (end.saturating_sub(size), end)),
            size,
            timestamp: header.timestamp(),
        }
    }
}

/// Follows a position-mode stream across binlog files and proposes the next file's start as the
/// checkpoint when the file before it was read to its end with nothing left after the checkpoint
/// (see the module documentation), so that purging that file later is no gap.
#[derive(Debug)]
pub struct FileEnds {
    read: Read,
}

impl FileEnds {
    /// The tracker of a stream that starts at `from`; `None` in GTID mode, where a purge is
    /// judged by GTIDs and the file position is only informational.
    pub fn new(from: &Checkpoint) -> Option<FileEnds> {
        let ResumePoint::Position(at) = &from.resume else {
            return None;
        };
        let read = if from.rows_done == 0 {
            Read::Clean(at.clone())
        } else {
            Read::Unknown
        };
        Some(FileEnds { read })
    }

    /// The reader proposed `chunk`'s checkpoint: a commit is a new clean point.
    pub fn proposed(&mut self, chunk: &Chunk) {
        self.read = if chunk.checkpoint.rows_done == 0 {
            Read::Clean(chunk.checkpoint.position.clone())
        } else {
            Read::Unknown
        };
    }

    /// An event the reader consumed without proposing a checkpoint; `now` is the reader's
    /// position after it (asked for rotates only). Returns the chunk that moves the checkpoint
    /// to the next file's start, once that is proven.
    pub fn observe(
        &mut self,
        event: &Event,
        now: impl FnOnce() -> BinlogPosition,
    ) -> Option<Chunk> {
        let read = std::mem::replace(&mut self.read, Read::Unknown);
        let (read, moved) = step(read, &Seen::of(event), now);
        self.read = read;
        let (to, created) = moved?;
        tracing::info!(
            binlog_file = %to.file,
            pos = to.pos,
            "the previous binlog was read to its end; the checkpoint moves to the next one"
        );
        let mut checkpoint = Checkpoint::at(ResumePoint::Position(to.clone()), to);
        checkpoint.binlog_created = created;
        Some(Chunk {
            changes: Vec::new(),
            checkpoint,
            last_event_time: None,
            xa: None,
            ddl: Vec::new(),
        })
    }
}

/// One step of the proof; returns the new state and, when a file was proven read to its end
/// and the next one's FORMAT_DESCRIPTION arrived, that file's start and creation time.
fn step(
    read: Read,
    e: &Seen,
    now: impl FnOnce() -> BinlogPosition,
) -> (Read, Option<(BinlogPosition, u32)>) {
    if HEARTBEAT_EVENTS.contains(&e.kind) {
        return (read, None);
    }
    let read = match (read, e.kind, e.place) {
        (read, ROTATE_EVENT, place) => rotated(read, place, now()),
        (Read::Moved(next), FORMAT_DESCRIPTION_EVENT, _) => {
            // A file's FORMAT_DESCRIPTION sits at offset 4, whatever log_pos the sender gives it.
            let clean = match next.pos {
                FIRST_EVENT => BinlogPosition::new(next.file.clone(), FIRST_EVENT + e.size),
                _ => next.clone(),
            };
            return (Read::Clean(clean), Some((next, e.timestamp)));
        }
        (Read::Clean(at), STOP_EVENT, Some((start, _))) if start == at.pos => Read::Ended(at.file),
        (Read::Clean(at), kind, Some((start, end))) if start == at.pos && is_inert(kind) => {
            Read::Clean(BinlogPosition::new(at.file, end))
        }
        // The header of the file being read, sent again when a stream starts inside it.
        (Read::Clean(at), FORMAT_DESCRIPTION_EVENT, Some((FIRST_EVENT, end))) if end <= at.pos => {
            Read::Clean(at)
        }
        // Made up by the sender (e.g. MariaDB's GTID_LIST at the start): nothing in the file.
        (read, kind, None) if is_inert(kind) => read,
        _ => Read::Unknown,
    };
    (read, None)
}

/// A ROTATE: `now` is where it says the stream continues.
fn rotated(read: Read, place: Option<(u64, u64)>, now: BinlogPosition) -> Read {
    match (read, place) {
        // The made-up ROTATE that names where the stream (re)starts.
        (Read::Clean(at), None) if now == at => Read::Clean(at),
        // A file's own ROTATE is its last event: right at the clean point, the file is done.
        (Read::Clean(at), Some((start, _))) if start == at.pos && now.file != at.file => {
            Read::Moved(now)
        }
        // After a STOP the sender opens the next file with a made-up ROTATE.
        (Read::Ended(file), None) if now.file != file => Read::Moved(now),
        // The sender may name the next file once more before its FORMAT_DESCRIPTION.
        (Read::Moved(next), None) if now == next => Read::Moved(next),
        _ => Read::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(file: &str, pos: u64) -> BinlogPosition {
        BinlogPosition::new(file, pos)
    }

    fn in_file(kind: u8, start: u64, end: u64) -> Seen {
        Seen {
            kind,
            place: Some((start, end)),
            size: end - start,
            timestamp: 1000,
        }
    }

    fn made_up(kind: u8, size: u64) -> Seen {
        Seen {
            kind,
            place: None,
            size,
            timestamp: 2000,
        }
    }

    /// Feeds events, each with the reader's position after it; returns the final state and
    /// every proposed move.
    fn run(start: Read, events: &[(Seen, BinlogPosition)]) -> (Read, Vec<(BinlogPosition, u32)>) {
        let mut read = start;
        let mut moves = Vec::new();
        for (e, now) in events {
            let (next, moved) = step(read, e, || now.clone());
            read = next;
            moves.extend(moved);
        }
        (read, moves)
    }

    #[test]
    fn a_rotate_right_at_the_checkpoint_moves_it_to_the_next_files_start() {
        let (read, moves) = run(
            Read::Clean(pos("binlog.000005", 900)),
            &[
                (in_file(ROTATE_EVENT, 900, 944), pos("binlog.000006", 4)),
                (made_up(ROTATE_EVENT, 44), pos("binlog.000006", 4)),
                (
                    in_file(FORMAT_DESCRIPTION_EVENT, 4, 126),
                    pos("binlog.000006", 126),
                ),
                (
                    in_file(PREVIOUS_GTIDS_EVENT, 126, 157),
                    pos("binlog.000006", 157),
                ),
            ],
        );
        assert_eq!(moves, vec![(pos("binlog.000006", 4), 1000)]);
        assert_eq!(read, Read::Clean(pos("binlog.000006", 157)));
    }

    #[test]
    fn an_empty_file_between_two_rotates_is_read_through() {
        let (_, moves) = run(
            Read::Clean(pos("binlog.000005", 900)),
            &[
                (in_file(ROTATE_EVENT, 900, 944), pos("binlog.000006", 4)),
                (
                    made_up(FORMAT_DESCRIPTION_EVENT, 122),
                    pos("binlog.000006", 4),
                ),
                (
                    in_file(PREVIOUS_GTIDS_EVENT, 126, 157),
                    pos("binlog.000006", 157),
                ),
                (in_file(ROTATE_EVENT, 157, 201), pos("binlog.000007", 4)),
                (
                    in_file(FORMAT_DESCRIPTION_EVENT, 4, 126),
                    pos("binlog.000007", 126),
                ),
            ],
        );
        assert_eq!(
            moves,
            vec![
                (pos("binlog.000006", 4), 2000),
                (pos("binlog.000007", 4), 1000)
            ]
        );
    }

    #[test]
    fn a_rotate_after_unread_bytes_proves_nothing() {
        let (read, moves) = run(
            Read::Clean(pos("binlog.000005", 900)),
            &[
                (in_file(ROTATE_EVENT, 950, 994), pos("binlog.000006", 4)),
                (
                    in_file(FORMAT_DESCRIPTION_EVENT, 4, 126),
                    pos("binlog.000006", 126),
                ),
            ],
        );
        assert!(moves.is_empty());
        assert_eq!(read, Read::Unknown);
    }

    #[test]
    fn an_open_transaction_at_the_rotate_proves_nothing() {
        // A GTID event opens a transaction; its commit never came before the rotate.
        let (_, moves) = run(
            Read::Clean(pos("binlog.000005", 900)),
            &[
                (in_file(34, 900, 979), pos("binlog.000005", 979)),
                (in_file(ROTATE_EVENT, 979, 1023), pos("binlog.000006", 4)),
                (
                    in_file(FORMAT_DESCRIPTION_EVENT, 4, 126),
                    pos("binlog.000006", 126),
                ),
            ],
        );
        assert!(moves.is_empty());
    }

    #[test]
    fn inert_events_and_heartbeats_keep_the_proof() {
        let (_, moves) = run(
            Read::Clean(pos("mariadb-bin.000002", 700)),
            &[
                (made_up(27, 40), pos("mariadb-bin.000002", 700)),
                (
                    in_file(BINLOG_CHECKPOINT_EVENT, 700, 748),
                    pos("mariadb-bin.000002", 748),
                ),
                (
                    in_file(ROTATE_EVENT, 748, 798),
                    pos("mariadb-bin.000003", 4),
                ),
                (
                    in_file(FORMAT_DESCRIPTION_EVENT, 4, 256),
                    pos("mariadb-bin.000003", 256),
                ),
            ],
        );
        assert_eq!(moves, vec![(pos("mariadb-bin.000003", 4), 1000)]);
    }

    #[test]
    fn a_stop_then_the_next_file_moves_the_checkpoint() {
        let (_, moves) = run(
            Read::Clean(pos("binlog.000005", 900)),
            &[
                (made_up(ROTATE_EVENT, 44), pos("binlog.000005", 900)),
                (
                    made_up(FORMAT_DESCRIPTION_EVENT, 122),
                    pos("binlog.000005", 900),
                ),
                (in_file(STOP_EVENT, 900, 923), pos("binlog.000005", 923)),
                (made_up(ROTATE_EVENT, 44), pos("binlog.000006", 4)),
                (
                    in_file(FORMAT_DESCRIPTION_EVENT, 4, 126),
                    pos("binlog.000006", 126),
                ),
            ],
        );
        assert_eq!(moves, vec![(pos("binlog.000006", 4), 1000)]);
    }

    #[test]
    fn a_file_switch_without_its_last_event_proves_nothing() {
        let (_, moves) = run(
            Read::Clean(pos("binlog.000005", 900)),
            &[
                (made_up(ROTATE_EVENT, 44), pos("binlog.000006", 4)),
                (
                    in_file(FORMAT_DESCRIPTION_EVENT, 4, 126),
                    pos("binlog.000006", 126),
                ),
            ],
        );
        assert!(moves.is_empty());
    }

    #[test]
    fn the_start_of_a_stream_keeps_the_checkpoints_proof() {
        let (read, _) = run(
            Read::Clean(pos("binlog.000005", 900)),
            &[
                (made_up(ROTATE_EVENT, 44), pos("binlog.000005", 900)),
                (
                    in_file(FORMAT_DESCRIPTION_EVENT, 4, 126),
                    pos("binlog.000005", 900),
                ),
                (made_up(GTID_LIST_EVENT, 40), pos("binlog.000005", 900)),
            ],
        );
        assert_eq!(read, Read::Clean(pos("binlog.000005", 900)));
    }
}

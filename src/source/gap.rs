//! Purged history: finding the binlogs a resume needs that the source no longer has.
//!
//! Invariant: a gap is never skipped silently. [`find_gap`] (position mode, MySQL GTID mode) and
//! [`mariadb_gap`] (MariaDB, which only says so when the dump is requested) describe exactly
//! what is gone and where streaming could continue; the stream then refuses or, with
//! `--on-gap=skip`, records the gap in `stream_gaps` with the new checkpoint in one transaction.
//!
//! In position mode [`super::file_ends`] moves the checkpoint to the next file's start once the
//! old file is proven read to its end, so purging a file that held nothing unread is no gap.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

use super::{Flavor, SourceError, SourceInfo};
use crate::position::{BinlogPosition, Checkpoint, GtidSet, ResumePoint};

/// A part of the source's history that was purged before it was indexed.
#[derive(Clone, Debug)]
pub struct Gap {
    /// The resume point that cannot be served.
    pub from: String,
    /// What exactly is missing, in the source's terms.
    pub what: String,
    /// Where streaming can continue.
    pub to: Checkpoint,
}

impl Gap {
    /// The definite error for refusing to skip this gap.
    pub fn refuse(&self) -> SourceError {
        SourceError::Purged {
            from: self.from.clone(),
            what: self.what.clone(),
            oldest: self.to.resume.to_string(),
        }
    }
}

/// Checks that the source still has every binlog needed to resume from `from`.
pub async fn find_gap(
    conn: &mut Conn,
    info: &SourceInfo,
    from: &Checkpoint,
) -> Result<Option<Gap>, SourceError> {
    match &from.resume {
        ResumePoint::Position(p) => {
            let names = binlog_names(conn).await?;
            let Some(oldest) = names.first() else {
                return Ok(None);
            };
            let oldest = BinlogPosition::new(oldest.clone(), 4);
            let purged = !names.contains(&p.file) && p.compare(&oldest).is_some_and(|o| o.is_lt());
            Ok(purged.then(|| Gap {
                from: p.to_string(),
                what: format!(
                    "binlog {} is gone; the oldest binlog on the source is {}",
                    p.file, oldest.file
                ),
                to: Checkpoint::at(ResumePoint::Position(oldest.clone()), oldest),
            }))
        }
        ResumePoint::Gtid(done) if info.flavor == Flavor::Mysql => {
            let text: String = conn
                .query_first("SELECT @@gtid_purged")
                .await?
                .unwrap_or_default();
            let Ok(purged) = text.replace('\n', "").parse::<GtidSet>() else {
                return Ok(None);
            };
            let missing = purged.subtract(done);
            if missing.is_empty() {
                return Ok(None);
            }
            let mut to = done.clone();
            to.union(&purged);
            Ok(Some(Gap {
                from: from.resume.to_string(),
                what: format!("transactions {missing} were purged before they were indexed"),
                to: Checkpoint::at(ResumePoint::Gtid(to), BinlogPosition::new("", 4)),
            }))
        }
        // MariaDB has no gtid_purged; a purged GTID state is reported by the dump request (1236).
        ResumePoint::Gtid(_) => Ok(None),
    }
}

/// The source's binlog files, oldest first (`SHOW BINARY LOGS`).
async fn binlog_names(conn: &mut Conn) -> Result<Vec<String>, SourceError> {
    let logs: Vec<Row> = conn.query("SHOW BINARY LOGS").await?;
    Ok(logs.iter().filter_map(|r| r.get::<String, _>(0)).collect())
}

/// The first event of the oldest binlog the source still has, if it has any.
pub async fn oldest(conn: &mut Conn) -> Result<Option<BinlogPosition>, SourceError> {
    Ok(binlog_names(conn)
        .await?
        .into_iter()
        .next()
        .map(|file| BinlogPosition::new(file, 4)))
}

/// Whether a MariaDB dump request was refused because the GTID state's binlogs were purged.
pub fn is_mariadb_purged(error: &SourceError) -> bool {
    matches!(error, SourceError::Refused { code: 1236, message, .. } if message.contains("purged"))
}

/// The gap behind a MariaDB "binlog files have been purged" refusal: streaming can continue
/// from the GTID state that opens the oldest binlog (its GTID_LIST event).
pub async fn mariadb_gap(
    conn: &mut Conn,
    error: &SourceError,
    from: &Checkpoint,
) -> Result<Gap, SourceError> {
    let first = oldest(conn)
        .await?
        .unwrap_or_else(|| BinlogPosition::new("", 4));
    // SHOW statements take no placeholders.
    let events: Vec<Row> = conn
        .query(format!(
            "SHOW BINLOG EVENTS IN {} LIMIT 5",
            crate::sql::str_literal(&first.file)
        ))
        .await?;
    let list = events
        .iter()
        .find(|r| r.get::<String, _>(2).as_deref() == Some("Gtid_list"))
        .and_then(|r| r.get::<String, _>(5))
        .unwrap_or_default();
    let state = list
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<GtidSet>()
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or(GtidSet::Mariadb(Default::default()));
    Ok(Gap {
        from: from.resume.to_string(),
        what: error.to_string(),
        to: Checkpoint::at(ResumePoint::Gtid(state), first),
    })
}

//! `stream_gaps`: the ranges of a source's history a stream skipped (`--on-gap=skip`), and
//! whether `bintrail index --fill-gap` has since indexed them. Every statement on the table is
//! here, so what a gap is, and when it stops counting, is decided in one place.
//!
//! # What a gap covers
//! `gap_from` is the checkpoint the stream could not resume from, `gap_to` where it continued,
//! both as `ResumePoint` prints them. In position mode the missing history is every transaction
//! that starts at or after `gap_from` and before `gap_to` (the start of the oldest binlog the
//! source still had). In GTID mode it is every transaction in `gap_to` but not in `gap_from`
//! (MariaDB: per domain, the sequence numbers after `gap_from`'s up to `gap_to`'s).
//!
//! # Filled gaps
//! `filled_at` and `filled_from` (the files read) are set once, by `index --fill-gap`, after
//! every transaction of the range was indexed and only then; a filled gap no longer makes
//! `recover` or `reconstruct` refuse. An index created before these columns gets them from
//! `ensure_ready`; the read side does not run that, so it asks whether the columns exist and
//! treats every gap of an index without them as open.
//!
//! # Where a gap sits in history order
//! Changes indexed by `--fill-gap` get `event_id`s after everything the stream wrote since the
//! gap, so `event_id` order is not history order for them. `before_event_id` is the largest
//! `event_id` of the index when the stream recorded the gap (the stream's changes up to it came
//! before the gap, its later ones after: ids are allocated in increasing order, as for
//! `ddl_events.last_event_id`), and `filled_first_event_id`/`filled_last_event_id` the ids
//! `--fill-gap` gave the range's changes (0/0: none were new), set in the same statement that
//! marks the gap filled. `history::order` places a filled range at its gap from these. A gap
//! filled without them (recorded or filled by an older bintrail) is *unordered*: its changes
//! cannot be placed, so the read side keeps treating it like an open gap
//! ([`first_unusable_since`]).

use std::collections::{BTreeMap, BTreeSet};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::position::{BinlogPosition, Gtid, GtidSet};
use crate::sql::push_plain_literal;

/// One row of `stream_gaps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GapRow {
    /// `gap_id`.
    pub gap_id: u64,
    /// The stream that skipped (its server id).
    pub server_id: u32,
    /// The checkpoint that could not be resumed.
    pub from: String,
    /// Where streaming continued.
    pub to: String,
    /// When the gap was recorded, UTC, to the second.
    pub detected_at: String,
    /// The source's own words.
    pub reason: String,
    /// When `index --fill-gap` indexed the range, UTC; `None` while the gap is open.
    pub filled_at: Option<String>,
    /// The binlog files the range was indexed from.
    pub filled_from: Option<String>,
    /// The largest `event_id` when the gap was recorded; `None` for a gap recorded before
    /// bintrail kept it.
    pub before_event_id: Option<u64>,
    /// The first and last `event_id` the fill wrote ((0, 0): none were new); `None` while open,
    /// or when filled by a bintrail that did not keep it.
    pub filled_ids: Option<(u64, u64)>,
}

/// Why a gap row cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GapsError {
    /// The index refused a statement.
    #[error("reading stream_gaps: {0}")]
    Index(#[from] mysql_async::Error),
    /// `gap_from`/`gap_to` does not parse, or the two are of different modes.
    #[error(
        "gap #{gap_id}: cannot tell which history it covers (from '{from}' to '{to}'): {reason}"
    )]
    Unreadable {
        /// The gap.
        gap_id: u64,
        /// Its `gap_from`.
        from: String,
        /// Its `gap_to`.
        to: String,
        /// What is wrong.
        reason: String,
    },
}

/// The history a gap lacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GapRange {
    /// Transactions starting at or after `from` and before `to`.
    Position {
        /// The first missing byte.
        from: BinlogPosition,
        /// Where the stream continued.
        to: BinlogPosition,
    },
    /// Transactions in `to` and not in `from`.
    Gtid {
        /// What the stream had indexed.
        from: GtidSet,
        /// What it had after skipping.
        to: GtidSet,
    },
}

impl GapRow {
    /// Whether the gap was filled but its changes cannot be placed in history order (recorded
    /// or filled by an older bintrail): the read side treats it like an open gap.
    pub fn unordered(&self) -> bool {
        self.filled_at.is_some() && (self.before_event_id.is_none() || self.filled_ids.is_none())
    }

    /// The history this gap lacks.
    pub fn range(&self) -> Result<GapRange, GapsError> {
        let bad = |reason: String| GapsError::Unreadable {
            gap_id: self.gap_id,
            from: self.from.clone(),
            to: self.to.clone(),
            reason,
        };
        match (gtid_text(&self.from), gtid_text(&self.to)) {
            (Some(from), Some(to)) => {
                let parse = |t: &str| t.parse::<GtidSet>().map_err(|e| bad(e.to_string()));
                Ok(GapRange::Gtid {
                    from: parse(from)?,
                    to: parse(to)?,
                })
            }
            (None, None) => {
                let parse = |t: &str| t.parse::<BinlogPosition>().map_err(|e| bad(e.to_string()));
                Ok(GapRange::Position {
                    from: parse(&self.from)?,
                    to: parse(&self.to)?,
                })
            }
            _ => Err(bad(
                "one end is a GTID set, the other a binlog position".into()
            )),
        }
    }
}

/// The set of `gtid set X` (how `ResumePoint` prints a GTID checkpoint), `''` being empty.
fn gtid_text(text: &str) -> Option<&str> {
    let set = text.strip_prefix("gtid set ")?;
    Some(if set == "''" { "" } else { set })
}

impl GapRange {
    /// Whether the transaction starting at `at` with GTID `gtid` belongs to the gap. In GTID
    /// mode a transaction without a GTID never does.
    pub fn wants(&self, at: &BinlogPosition, gtid: Option<&Gtid>) -> bool {
        match self {
            GapRange::Position { from, to } => {
                at.compare(from).is_some_and(|o| o.is_ge())
                    && at.compare(to).is_some_and(|o| o.is_lt())
            }
            GapRange::Gtid { from, to } => {
                gtid.is_some_and(|g| to.contains(g) && !from.contains(g))
            }
        }
    }

    /// In GTID mode, what of the range `seen` (the wanted GTIDs found in the files) leaves
    /// out, as text; `None` when nothing is left. MariaDB sequence numbers of a domain are
    /// taken to be consecutive (one server writes each domain, as MariaDB's strict mode has it).
    pub fn gtids_left(&self, seen: &[Gtid]) -> Option<String> {
        let GapRange::Gtid { from, to } = self else {
            return None;
        };
        match to {
            GtidSet::Mysql(_) => {
                let mut found = GtidSet::Mysql(BTreeMap::new());
                for g in seen {
                    found.add(g);
                }
                let left = to.subtract(from).subtract(&found);
                (!left.is_empty()).then(|| format!("transactions {left}"))
            }
            GtidSet::Mariadb(last) => {
                let mut by_domain: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
                for g in seen {
                    if let Gtid::Mariadb { domain, seq, .. } = g {
                        by_domain.entry(*domain).or_default().insert(*seq);
                    }
                }
                let mut left = Vec::new();
                for (domain, (server, end)) in last {
                    let start = match from {
                        GtidSet::Mariadb(f) => f.get(domain).map_or(0, |(_, s)| *s),
                        GtidSet::Mysql(_) => 0,
                    };
                    let have = by_domain.remove(domain).unwrap_or_default();
                    if let Some(first) = (start + 1..=*end).find(|s| !have.contains(s)) {
                        left.push(format!(
                            "{domain}-{server}-{first} through {domain}-{server}-{end}"
                        ));
                    }
                }
                (!left.is_empty()).then(|| format!("transactions {}", left.join(", ")))
            }
        }
    }
}

/// The INSERT that records a gap (the writer runs it with the checkpoint past the gap, before
/// any change after the gap is written), with the index's largest `event_id` as the gap's place
/// in history order.
pub fn insert_sql(server_id: u32, gap_from: &str, gap_to: &str, reason: &str) -> String {
    let mut insert = String::from(
        "INSERT INTO stream_gaps (server_id, gap_from, gap_to, detected_at, reason, \
         before_event_id) VALUES (",
    );
    insert.push_str(&server_id.to_string());
    insert.push(',');
    push_plain_literal(&mut insert, gap_from);
    insert.push(',');
    push_plain_literal(&mut insert, gap_to);
    insert.push_str(", UTC_TIMESTAMP(3), ");
    push_plain_literal(&mut insert, reason);
    insert.push_str(", (SELECT COALESCE(MAX(event_id), 0) FROM binlog_events))");
    insert
}

type Row11 = (
    u64,
    u32,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<u64>,
    Option<u64>,
    Option<u64>,
);

/// Which of the columns added since `stream_gaps` was first created the index has.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Shape {
    /// Neither the fill columns nor the order columns.
    Original,
    /// `filled_at`, `filled_from`.
    Fill,
    /// And `before_event_id`, `filled_first_event_id`, `filled_last_event_id`.
    Order,
}

async fn shape(conn: &mut Conn) -> Result<Shape, mysql_async::Error> {
    let has: Vec<String> = conn
        .query(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
             AND TABLE_NAME = 'stream_gaps' \
             AND COLUMN_NAME IN ('filled_at', 'filled_last_event_id')",
        )
        .await?;
    let has = |c: &str| has.iter().any(|h| h.eq_ignore_ascii_case(c));
    Ok(match (has("filled_at"), has("filled_last_event_id")) {
        (_, true) => Shape::Order,
        (true, false) => Shape::Fill,
        _ => Shape::Original,
    })
}

/// The SELECT list of a [`GapRow`]; `NULL`s for the columns an older index lacks.
async fn select(conn: &mut Conn) -> Result<(&'static str, Shape), mysql_async::Error> {
    let shape = shape(conn).await?;
    let sql = match shape {
        Shape::Order => {
            "SELECT gap_id, server_id, gap_from, gap_to, \
             DATE_FORMAT(detected_at, '%Y-%m-%d %H:%i:%s'), reason, \
             DATE_FORMAT(filled_at, '%Y-%m-%d %H:%i:%s'), filled_from, before_event_id, \
             filled_first_event_id, filled_last_event_id FROM stream_gaps"
        }
        Shape::Fill => {
            "SELECT gap_id, server_id, gap_from, gap_to, \
             DATE_FORMAT(detected_at, '%Y-%m-%d %H:%i:%s'), reason, \
             DATE_FORMAT(filled_at, '%Y-%m-%d %H:%i:%s'), filled_from, NULL, NULL, NULL \
             FROM stream_gaps"
        }
        Shape::Original => {
            "SELECT gap_id, server_id, gap_from, gap_to, \
             DATE_FORMAT(detected_at, '%Y-%m-%d %H:%i:%s'), reason, NULL, NULL, NULL, NULL, \
             NULL FROM stream_gaps"
        }
    };
    Ok((sql, shape))
}

fn row(r: Row11) -> GapRow {
    GapRow {
        gap_id: r.0,
        server_id: r.1,
        from: r.2,
        to: r.3,
        detected_at: r.4,
        reason: r.5,
        filled_at: r.6,
        filled_from: r.7,
        before_event_id: r.8,
        filled_ids: r.9.zip(r.10),
    }
}

/// The gap `gap_id`, if there is one.
pub async fn load(conn: &mut Conn, gap_id: u64) -> Result<Option<GapRow>, mysql_async::Error> {
    let sql = format!("{} WHERE gap_id = ?", select(conn).await?.0);
    let found: Option<Row11> = conn.exec_first(sql, (gap_id,)).await?;
    Ok(found.map(row))
}

/// Every gap of a stream, oldest first, filled or not.
pub async fn of_stream(conn: &mut Conn, server_id: u32) -> Result<Vec<GapRow>, mysql_async::Error> {
    let sql = format!(
        "{} WHERE server_id = ? ORDER BY detected_at, gap_id",
        select(conn).await?.0
    );
    let rows: Vec<Row11> = conn.exec(sql, (server_id,)).await?;
    Ok(rows.into_iter().map(row).collect())
}

/// The oldest gap of a stream recorded at or after `since` (UTC text) that is still open (not
/// filled), or filled but [`unordered`](GapRow::unordered): history that may hold changes made
/// after that moment is unknown, or cannot be placed in order.
pub async fn first_unusable_since(
    conn: &mut Conn,
    server_id: u32,
    since: &str,
) -> Result<Option<GapRow>, mysql_async::Error> {
    let (select, shape) = select(conn).await?;
    let unusable = match shape {
        Shape::Order => {
            " AND (filled_at IS NULL OR before_event_id IS NULL OR filled_last_event_id IS NULL)"
        }
        Shape::Fill => " AND filled_at IS NULL",
        Shape::Original => "",
    };
    let sql = format!(
        "{select} WHERE server_id = ? AND detected_at >= ?{unusable} ORDER BY detected_at, gap_id LIMIT 1"
    );
    let found: Option<Row11> = conn.exec_first(sql, (server_id, since)).await?;
    Ok(found.map(row))
}

/// A filled gap placed in history order: its stream's changes with `event_id` in
/// `first..=last` belong between the stream's changes up to `before` and those after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    /// The gap.
    pub gap_id: u64,
    /// Its stream.
    pub server_id: u32,
    /// `before_event_id`.
    pub before: u64,
    /// `filled_first_event_id`.
    pub first: u64,
    /// `filled_last_event_id`.
    pub last: u64,
}

/// Every filled gap whose fill wrote changes and whose place is known (an index without the
/// order columns has none). `stream_gaps` holds a row per skip, so it is read whole.
pub async fn placed(conn: &mut Conn) -> Result<Vec<Placed>, mysql_async::Error> {
    if shape(conn).await? != Shape::Order {
        return Ok(Vec::new());
    }
    let rows: Vec<(u64, u32, u64, u64, u64)> = conn
        .query(
            "SELECT gap_id, server_id, before_event_id, filled_first_event_id, \
             filled_last_event_id FROM stream_gaps WHERE filled_at IS NOT NULL \
             AND before_event_id IS NOT NULL AND filled_first_event_id > 0 \
             ORDER BY gap_id",
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|(gap_id, server_id, before, first, last)| Placed {
            gap_id,
            server_id,
            before,
            first,
            last,
        })
        .collect())
}

/// Marks gap `gap_id` filled now from `files`, its changes written with the `event_id`s `ids`
/// ((0, 0): none were new); `false` when it was already filled (or is gone).
pub async fn mark_filled(
    conn: &mut Conn,
    gap_id: u64,
    files: &str,
    ids: (u64, u64),
) -> Result<bool, mysql_async::Error> {
    conn.exec_drop(
        "UPDATE stream_gaps SET filled_at = UTC_TIMESTAMP(3), filled_from = ?, \
         filled_first_event_id = ?, filled_last_event_id = ? \
         WHERE gap_id = ? AND filled_at IS NULL",
        (files, ids.0, ids.1, gap_id),
    )
    .await?;
    Ok(conn.affected_rows() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(from: &str, to: &str) -> GapRow {
        GapRow {
            gap_id: 7,
            server_id: 1,
            from: from.into(),
            to: to.into(),
            detected_at: String::new(),
            reason: String::new(),
            filled_at: None,
            filled_from: None,
            before_event_id: None,
            filled_ids: None,
        }
    }

    #[test]
    fn a_position_gap_wants_transactions_from_its_start_to_the_next_files_start() {
        let range = gap("binlog.000002:1200", "binlog.000004:4")
            .range()
            .unwrap();
        let at = |f: &str, p| BinlogPosition::new(f, p);
        assert!(!range.wants(&at("binlog.000002", 900), None));
        assert!(range.wants(&at("binlog.000002", 1200), None));
        assert!(range.wants(&at("binlog.000003", 157), None));
        assert!(!range.wants(&at("binlog.000004", 157), None));
    }

    #[test]
    fn a_mysql_gtid_gap_wants_what_the_skip_added_and_says_what_the_files_lack() {
        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let range = gap(&format!("gtid set {u}:1-5"), &format!("gtid set {u}:1-9"))
            .range()
            .unwrap();
        let g = |n: u64| format!("{u}:{n}").parse::<Gtid>().unwrap();
        assert!(!range.wants(&BinlogPosition::new("b.1", 4), Some(&g(5))));
        assert!(range.wants(&BinlogPosition::new("b.1", 4), Some(&g(6))));
        assert!(!range.wants(&BinlogPosition::new("b.1", 4), Some(&g(10))));
        assert_eq!(
            range.gtids_left(&[g(6), g(7)]),
            Some(format!("transactions {u}:8-9"))
        );
        assert_eq!(range.gtids_left(&[g(6), g(7), g(8), g(9)]), None);
    }

    #[test]
    fn a_mariadb_gap_from_an_empty_set_counts_sequence_numbers_from_one() {
        let range = gap("gtid set ''", "gtid set 0-1-4").range().unwrap();
        let g = |n: u64| Gtid::Mariadb {
            domain: 0,
            server: 1,
            seq: n,
        };
        assert!(range.wants(&BinlogPosition::new("b.1", 4), Some(&g(1))));
        assert_eq!(
            range.gtids_left(&[g(1), g(2), g(4)]),
            Some("transactions 0-1-3 through 0-1-4".into())
        );
        assert_eq!(range.gtids_left(&[g(1), g(2), g(3), g(4)]), None);
    }

    #[test]
    fn a_gap_with_one_end_of_each_mode_is_unreadable() {
        assert!(matches!(
            gap("binlog.000001:4", "gtid set ''").range(),
            Err(GapsError::Unreadable { .. })
        ));
    }
}

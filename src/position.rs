//! Binlog positions, GTIDs and checkpoints: the only place they are parsed, formatted or compared.
//!
//! # Invariants
//! - A [`BinlogPosition`] is a file name plus a byte offset in that file. Positions of different
//!   files are ordered by the file's numeric suffix (`binlog.000012` < `binlog.000100`), never by
//!   string, and positions with different base names do not compare at all.
//! - A [`GtidSet`] is either MySQL's (`uuid[:tag]:interval…`, MySQL 8.4+ tags included) or
//!   MariaDB's list of the last GTID per replication domain (`domain-server-seq,…`). Formatting
//!   is canonical (lowercase uuids, sorted, merged intervals), so a set round-trips through the
//!   `stream_state` table unchanged.
//! - A [`Checkpoint`] names a transaction boundary plus `rows_done`, the number of rows of the
//!   transaction starting there that are already in the index. `rows_done` is never sent to the
//!   server; the reader skips exactly that many rows of the first transaction it receives, after
//!   checking that it is the transaction the checkpoint names.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Why a position, GTID or GTID set could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PositionError {
    /// `file:pos` text without a valid offset.
    #[error("'{text}' is not a binlog position: expected file:offset, e.g. binlog.000012:4")]
    Position {
        /// The text given.
        text: String,
    },
    /// A MySQL GTID set element that does not parse.
    #[error("'{text}' is not a GTID set: {reason} (expected e.g. 3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,0-1-100 for MariaDB)")]
    GtidSet {
        /// The element that failed.
        text: String,
        /// What was wrong.
        reason: String,
    },
    /// A GTID list naming too many transactions.
    #[error(transparent)]
    TooMany(Box<TooManyGtids>),
}

/// A list of transactions (`--gtid`) names more than a selection may.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{text}' names {count} transactions, more than the {max} one selection may name: split it into smaller ranges")]
pub struct TooManyGtids {
    /// The text given.
    pub text: String,
    /// How many it names.
    pub count: u128,
    /// The limit.
    pub max: u64,
}

/// A byte offset in one binlog file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BinlogPosition {
    /// File name, e.g. `binlog.000012`.
    pub file: String,
    /// Byte offset inside the file (4 is the first event after the magic header).
    pub pos: u64,
}

impl BinlogPosition {
    /// A position.
    pub fn new(file: impl Into<String>, pos: u64) -> Self {
        BinlogPosition {
            file: file.into(),
            pos,
        }
    }

    /// The numeric suffix of the file name (`binlog.000012` → 12), if it has one.
    pub fn file_seq(&self) -> Option<u64> {
        let (_, suffix) = self.file.rsplit_once('.')?;
        suffix.parse().ok()
    }

    /// Orders two positions, or `None` when they are in differently named binlogs.
    pub fn compare(&self, other: &BinlogPosition) -> Option<std::cmp::Ordering> {
        if self.file == other.file {
            return Some(self.pos.cmp(&other.pos));
        }
        let base = |p: &BinlogPosition| p.file.rsplit_once('.').map(|(b, _)| b.to_string());
        if base(self) != base(other) {
            return None;
        }
        Some(
            self.file_seq()?
                .cmp(&other.file_seq()?)
                .then(self.pos.cmp(&other.pos)),
        )
    }
}

impl fmt::Display for BinlogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

impl FromStr for BinlogPosition {
    type Err = PositionError;
    fn from_str(s: &str) -> Result<Self, PositionError> {
        let err = || PositionError::Position { text: s.into() };
        let (file, pos) = s.rsplit_once(':').ok_or_else(err)?;
        if file.is_empty() {
            return Err(err());
        }
        Ok(BinlogPosition::new(file, pos.parse().map_err(|_| err())?))
    }
}

/// A 16-byte MySQL server uuid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub [u8; 16]);

impl FromStr for Uuid {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let hex: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
        let groups: Vec<usize> = s.split('-').map(str::len).collect();
        if hex.len() != 32 || groups != [8, 4, 4, 4, 12] {
            return Err(format!("'{s}' is not a server uuid"));
        }
        let mut out = [0u8; 16];
        for (i, pair) in hex.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
            out[i] =
                u8::from_str_radix(text, 16).map_err(|_| format!("'{s}' is not a server uuid"))?;
        }
        Ok(Uuid(out))
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// One transaction's global id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Gtid {
    /// MySQL: `uuid[:tag]:gno`.
    Mysql {
        /// Originating server.
        uuid: Uuid,
        /// MySQL 8.4+ tag, lowercase.
        tag: Option<String>,
        /// Sequence number, from 1.
        gno: u64,
    },
    /// MariaDB: `domain-server-seq`.
    Mariadb {
        /// Replication domain.
        domain: u32,
        /// Originating server id.
        server: u32,
        /// Sequence number inside the domain.
        seq: u64,
    },
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gtid::Mysql { uuid, tag, gno } => match tag {
                Some(tag) => write!(f, "{uuid}:{tag}:{gno}"),
                None => write!(f, "{uuid}:{gno}"),
            },
            Gtid::Mariadb {
                domain,
                server,
                seq,
            } => write!(f, "{domain}-{server}-{seq}"),
        }
    }
}

impl FromStr for Gtid {
    type Err = PositionError;
    fn from_str(s: &str) -> Result<Self, PositionError> {
        let set: GtidSet = s.parse()?;
        let err = || PositionError::GtidSet {
            text: s.into(),
            reason: "expected a single GTID".into(),
        };
        match set {
            GtidSet::Mariadb(m) if m.len() == 1 => {
                let (domain, (server, seq)) = m.into_iter().next().ok_or_else(err)?;
                Ok(Gtid::Mariadb {
                    domain,
                    server,
                    seq,
                })
            }
            GtidSet::Mysql(m) if m.len() == 1 => {
                let ((uuid, tag), ivs) = m.into_iter().next().ok_or_else(err)?;
                match ivs.as_slice() {
                    [(a, b)] if a == b => Ok(Gtid::Mysql { uuid, tag, gno: *a }),
                    _ => Err(err()),
                }
            }
            _ => Err(err()),
        }
    }
}

/// Inclusive GNO intervals per (server uuid, tag), sorted and merged.
pub type MysqlGtids = BTreeMap<(Uuid, Option<String>), Vec<(u64, u64)>>;
/// MariaDB: per domain, the (server id, seq) of the last transaction.
pub type MariadbGtids = BTreeMap<u32, (u32, u64)>;

/// A set of executed transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GtidSet {
    /// MySQL's `uuid[:tag]:a-b` intervals.
    Mysql(MysqlGtids),
    /// MariaDB's per-domain positions (`gtid_slave_pos` form).
    Mariadb(MariadbGtids),
}

impl GtidSet {
    /// Whether the set has no transaction at all.
    pub fn is_empty(&self) -> bool {
        match self {
            GtidSet::Mysql(m) => m.is_empty(),
            GtidSet::Mariadb(m) => m.is_empty(),
        }
    }

    /// An empty set of the same flavor as `gtid`.
    pub fn empty_for(gtid: &Gtid) -> GtidSet {
        match gtid {
            Gtid::Mysql { .. } => GtidSet::Mysql(BTreeMap::new()),
            Gtid::Mariadb { .. } => GtidSet::Mariadb(BTreeMap::new()),
        }
    }

    /// Adds one executed transaction (MariaDB: it becomes its domain's last transaction).
    /// A GTID of the other flavor is ignored and reported by returning `false`.
    pub fn add(&mut self, gtid: &Gtid) -> bool {
        match (self, gtid) {
            (GtidSet::Mysql(m), Gtid::Mysql { uuid, tag, gno }) => {
                let ivs = m.entry((*uuid, tag.clone())).or_default();
                ivs.push((*gno, *gno));
                merge(ivs);
                true
            }
            (
                GtidSet::Mariadb(m),
                Gtid::Mariadb {
                    domain,
                    server,
                    seq,
                },
            ) => {
                m.insert(*domain, (*server, *seq));
                true
            }
            _ => false,
        }
    }

    /// Whether the set contains `gtid` (MariaDB: its domain has reached that sequence number).
    pub fn contains(&self, gtid: &Gtid) -> bool {
        match (self, gtid) {
            (GtidSet::Mysql(m), Gtid::Mysql { uuid, tag, gno }) => m
                .get(&(*uuid, tag.clone()))
                .is_some_and(|ivs| ivs.iter().any(|(a, b)| a <= gno && gno <= b)),
            (GtidSet::Mariadb(m), Gtid::Mariadb { domain, seq, .. }) => {
                m.get(domain).is_some_and(|(_, s)| s >= seq)
            }
            _ => false,
        }
    }
}

impl GtidSet {
    /// Whether every transaction of `other` is in this set (MariaDB: every domain of `other`
    /// has reached at least its sequence number here).
    pub fn contains_set(&self, other: &GtidSet) -> bool {
        match (self, other) {
            (GtidSet::Mysql(a), GtidSet::Mysql(b)) => b.iter().all(|(key, ivs)| {
                a.get(key).is_some_and(|mine| {
                    ivs.iter()
                        .all(|(x, y)| mine.iter().any(|(p, q)| p <= x && y <= q))
                })
            }),
            (GtidSet::Mariadb(a), GtidSet::Mariadb(b)) => b
                .iter()
                .all(|(d, (_, seq))| a.get(d).is_some_and(|(_, mine)| mine >= seq)),
            _ => other.is_empty(),
        }
    }
}

impl GtidSet {
    /// Adds every transaction of `other` (MariaDB: each domain keeps the later position).
    pub fn union(&mut self, other: &GtidSet) {
        match (self, other) {
            (GtidSet::Mysql(a), GtidSet::Mysql(b)) => {
                for (key, ivs) in b {
                    let mine = a.entry(key.clone()).or_default();
                    mine.extend_from_slice(ivs);
                    merge(mine);
                }
            }
            (GtidSet::Mariadb(a), GtidSet::Mariadb(b)) => {
                for (d, (srv, seq)) in b {
                    let e = a.entry(*d).or_insert((*srv, *seq));
                    if e.1 < *seq {
                        *e = (*srv, *seq);
                    }
                }
            }
            (me, other) if me.is_empty() => *me = other.clone(),
            _ => {}
        }
    }

    /// The transactions of `self` that `other` lacks (MySQL); for MariaDB, the domains of `self`
    /// that are ahead of `other`.
    pub fn subtract(&self, other: &GtidSet) -> GtidSet {
        match (self, other) {
            (GtidSet::Mysql(a), GtidSet::Mysql(b)) => {
                let mut out = BTreeMap::new();
                for (key, ivs) in a {
                    let holes = b.get(key).map(Vec::as_slice).unwrap_or(&[]);
                    let left: Vec<(u64, u64)> =
                        ivs.iter().flat_map(|iv| minus(*iv, holes)).collect();
                    if !left.is_empty() {
                        out.insert(key.clone(), left);
                    }
                }
                GtidSet::Mysql(out)
            }
            (GtidSet::Mariadb(a), GtidSet::Mariadb(b)) => GtidSet::Mariadb(
                a.iter()
                    .filter(|(d, (_, seq))| b.get(d).is_none_or(|(_, s)| s < seq))
                    .map(|(d, v)| (*d, *v))
                    .collect(),
            ),
            (me, _) => me.clone(),
        }
    }
}

/// The parts of interval `iv` not covered by the sorted, merged `holes`.
fn minus(iv: (u64, u64), holes: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut start = iv.0;
    for &(a, b) in holes {
        if b < start || a > iv.1 {
            continue;
        }
        if a > start {
            out.push((start, a - 1));
        }
        start = b.saturating_add(1);
        if start > iv.1 {
            return out;
        }
    }
    if start <= iv.1 {
        out.push((start, iv.1));
    }
    out
}

fn merge(ivs: &mut Vec<(u64, u64)>) {
    ivs.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ivs.len());
    for &(a, b) in ivs.iter() {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    *ivs = out;
}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GtidSet::Mariadb(m) => {
                let parts: Vec<String> =
                    m.iter().map(|(d, (s, q))| format!("{d}-{s}-{q}")).collect();
                f.write_str(&parts.join(","))
            }
            GtidSet::Mysql(m) => {
                // Untagged intervals come first inside each uuid, as MySQL prints them.
                let mut first_uuid = true;
                let mut last_uuid = None;
                for ((uuid, tag), ivs) in m {
                    if last_uuid != Some(uuid) {
                        if !first_uuid {
                            f.write_str(",")?;
                        }
                        write!(f, "{uuid}")?;
                        first_uuid = false;
                        last_uuid = Some(uuid);
                    }
                    if let Some(tag) = tag {
                        write!(f, ":{tag}")?;
                    }
                    for (a, b) in ivs {
                        if a == b {
                            write!(f, ":{a}")?;
                        } else {
                            write!(f, ":{a}-{b}")?;
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

impl FromStr for GtidSet {
    type Err = PositionError;
    /// Parses MySQL's `gtid_executed` form (newlines allowed) or MariaDB's `gtid_current_pos`
    /// form. The empty string is an empty MySQL set.
    fn from_str(s: &str) -> Result<Self, PositionError> {
        let items: Vec<&str> = s
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .collect();
        let mariadb = items.first().is_some_and(|i| !i.contains(':'));
        if mariadb {
            let mut m = BTreeMap::new();
            for item in items {
                let (d, s, q) = parse_mariadb(item)?;
                if m.insert(d, (s, q)).is_some() {
                    return Err(bad(item, "a domain appears twice"));
                }
            }
            Ok(GtidSet::Mariadb(m))
        } else {
            let mut m: MysqlGtids = BTreeMap::new();
            for item in items {
                parse_mysql_item(item, &mut m)?;
            }
            m.values_mut().for_each(merge);
            Ok(GtidSet::Mysql(m))
        }
    }
}

fn bad(text: &str, reason: &str) -> PositionError {
    PositionError::GtidSet {
        text: text.into(),
        reason: reason.into(),
    }
}

fn parse_mariadb(item: &str) -> Result<(u32, u32, u64), PositionError> {
    let parts: Vec<&str> = item.split('-').collect();
    match parts.as_slice() {
        [d, s, q] => Ok((
            d.parse().map_err(|_| bad(item, "domain is not a number"))?,
            s.parse()
                .map_err(|_| bad(item, "server id is not a number"))?,
            q.parse()
                .map_err(|_| bad(item, "sequence is not a number"))?,
        )),
        _ => Err(bad(item, "expected uuid:interval or domain-server-seq")),
    }
}

fn parse_mysql_item(item: &str, m: &mut MysqlGtids) -> Result<(), PositionError> {
    let mut parts = item.split(':');
    let uuid: Uuid = parts
        .next()
        .unwrap_or("")
        .parse()
        .map_err(|e: String| bad(item, &e))?;
    let mut tag: Option<String> = None;
    let mut any = false;
    for part in parts {
        if part.starts_with(|c: char| c.is_ascii_digit()) {
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (a, b),
                None => (part, part),
            };
            let a: u64 = a
                .parse()
                .map_err(|_| bad(item, "interval is not a number"))?;
            let b: u64 = b
                .parse()
                .map_err(|_| bad(item, "interval is not a number"))?;
            if a == 0 || b < a {
                return Err(bad(item, "interval must be n or a-b with 1 <= a <= b"));
            }
            m.entry((uuid, tag.clone())).or_default().push((a, b));
            any = true;
        } else if is_tag(part) {
            tag = Some(part.to_ascii_lowercase());
        } else {
            return Err(bad(
                item,
                &format!("'{part}' is neither an interval nor a tag"),
            ));
        }
    }
    if !any {
        return Err(bad(item, "a uuid needs at least one interval"));
    }
    Ok(())
}

/// The transactions a GTID list names, each once, in canonical order, refused beyond `max`:
/// * MySQL: a GTID set in `gtid_executed` form: `uuid:5`, `uuid:5-9`, `uuid:1-3:7-8,uuid2:4`,
///   tagged `uuid:tag:5-9`;
/// * MariaDB: GTIDs `0-1-5,0-2-9`, and ranges `0-1-5..9` (domain 0, server 1, sequence
///   numbers 5 to 9). Unlike a MariaDB GTID *position*, a domain may appear more than once.
pub fn gtid_list(text: &str, max: u64) -> Result<Vec<Gtid>, PositionError> {
    let items: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .collect();
    if items.is_empty() {
        return Err(bad(text, "no GTID given"));
    }
    let too_many = |count: u128| {
        PositionError::TooMany(Box::new(TooManyGtids {
            text: text.to_string(),
            count,
            max,
        }))
    };
    if items.iter().any(|i| i.contains(':')) {
        let mut m: MysqlGtids = BTreeMap::new();
        for item in &items {
            parse_mysql_item(item, &mut m)?;
        }
        m.values_mut().for_each(merge);
        let count: u128 = m
            .values()
            .flatten()
            .map(|(a, b)| u128::from(b - a) + 1)
            .sum();
        if count > u128::from(max) {
            return Err(too_many(count));
        }
        let mut out = Vec::with_capacity(count as usize);
        for ((uuid, tag), ivs) in m {
            for (a, b) in ivs {
                out.extend((a..=b).map(|gno| Gtid::Mysql {
                    uuid,
                    tag: tag.clone(),
                    gno,
                }));
            }
        }
        return Ok(out);
    }
    let mut ranges = Vec::new();
    for item in items {
        let (first, last) = match item.split_once("..") {
            Some((first, last)) => {
                let last: u64 = last
                    .parse()
                    .map_err(|_| bad(item, "range end is not a number"))?;
                (first, Some(last))
            }
            None => (item, None),
        };
        let (domain, server, a) = parse_mariadb(first)?;
        let b = last.unwrap_or(a);
        if b < a {
            return Err(bad(item, "a range d-s-a..b needs a <= b"));
        }
        ranges.push((domain, server, a, b));
    }
    let count: u128 = ranges
        .iter()
        .map(|(_, _, a, b)| u128::from(b - a) + 1)
        .sum();
    if count > u128::from(max) {
        return Err(too_many(count));
    }
    let mut out: Vec<Gtid> = ranges
        .into_iter()
        .flat_map(|(domain, server, a, b)| {
            (a..=b).map(move |seq| Gtid::Mariadb {
                domain,
                server,
                seq,
            })
        })
        .collect();
    out.sort_by_key(|g| match g {
        Gtid::Mariadb {
            domain,
            server,
            seq,
        } => (*domain, *server, *seq),
        Gtid::Mysql { .. } => (0, 0, 0),
    });
    out.dedup();
    Ok(out)
}

/// MySQL tags: a letter or underscore, then up to 31 letters, digits or underscores.
fn is_tag(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.len() <= 32
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl GtidSet {
    /// The set in the wire form of COM_BINLOG_DUMP_GTID (intervals there are end-exclusive).
    /// `None` for a MariaDB set, which is sent as `@slave_connect_state` text instead.
    pub fn to_mysql_sids(&self) -> Option<Vec<mysql_common::packets::Sid<'static>>> {
        use mysql_common::packets::{GnoInterval, Sid, Tag};
        let GtidSet::Mysql(m) = self else {
            return None;
        };
        let sids = m
            .iter()
            .map(|((uuid, tag), ivs)| {
                let sid = Sid::new(uuid.0).with_intervals(
                    ivs.iter()
                        .map(|(a, b)| GnoInterval::new(*a, b + 1))
                        .collect(),
                );
                match tag.as_ref().and_then(|t| Tag::new(t.clone()).ok()) {
                    Some(tag) => sid.with_tag(tag),
                    None => sid,
                }
            })
            .collect();
        Some(sids)
    }
}

impl Gtid {
    /// A MySQL GTID from a GTID event's fields.
    pub fn mysql(sid: [u8; 16], tag: Option<&str>, gno: u64) -> Gtid {
        Gtid::Mysql {
            uuid: Uuid(sid),
            tag: tag.map(str::to_ascii_lowercase),
            gno,
        }
    }
}

/// Where a stream resumes: a transaction boundary, by position or by GTID set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResumePoint {
    /// Position mode: the file:offset where the next (or in-flight) transaction begins.
    Position(BinlogPosition),
    /// GTID mode: every transaction already fully indexed (or filtered).
    Gtid(GtidSet),
}

impl ResumePoint {
    /// `position` or `gtid`, as stored in `stream_state.mode`.
    pub fn mode(&self) -> &'static str {
        match self {
            ResumePoint::Position(_) => "position",
            ResumePoint::Gtid(_) => "gtid",
        }
    }
}

impl fmt::Display for ResumePoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResumePoint::Position(p) => write!(f, "{p}"),
            ResumePoint::Gtid(g) if g.is_empty() => f.write_str("gtid set ''"),
            ResumePoint::Gtid(g) => write!(f, "gtid set {g}"),
        }
    }
}

/// A durable resume point: a transaction boundary plus rows of the next transaction already
/// written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Where to ask the server to start.
    pub resume: ResumePoint,
    /// The binlog position matching `resume` (in GTID mode: informational, for `status`).
    pub position: BinlogPosition,
    /// Rows of the transaction starting at `resume` that are already in the index.
    pub rows_done: u64,
    /// The GTID of that partly written transaction (GTID mode), checked on resume.
    pub in_flight: Option<Gtid>,
    /// Timestamp of the FORMAT_DESCRIPTION event that opens `position.file`: when that file was
    /// created. A binlog of the same name with another creation time is another history
    /// (RESET BINARY LOGS, a rebuilt source). 0 when unknown.
    pub binlog_created: u32,
}

impl Checkpoint {
    /// The start of a transaction boundary `resume`, at `position`, with nothing in flight.
    pub fn at(resume: ResumePoint, position: BinlogPosition) -> Checkpoint {
        Checkpoint {
            resume,
            position,
            rows_done: 0,
            in_flight: None,
            binlog_created: 0,
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn gtid_lists_expand_sets_ranges_and_tags_and_refuse_too_many() {
        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let names = |t: &str| -> Vec<String> {
            gtid_list(t, 100)
                .unwrap()
                .iter()
                .map(Gtid::to_string)
                .collect()
        };
        assert_eq!(names(&format!("{u}:5")), vec![format!("{u}:5")]);
        assert_eq!(names(&format!("{u}:5-7")).len(), 3);
        assert_eq!(
            names(&format!("{u}:1-2:7,{u}:tg:4")),
            vec![
                format!("{u}:1"),
                format!("{u}:2"),
                format!("{u}:7"),
                format!("{u}:tg:4")
            ]
        );
        assert_eq!(names("0-1-5,0-2-9"), vec!["0-1-5", "0-2-9"]);
        assert_eq!(names("0-1-5..7"), vec!["0-1-5", "0-1-6", "0-1-7"]);
        assert!(gtid_list("0-1-7..5", 100).is_err());
        let err = gtid_list(&format!("{u}:1-1000"), 100)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("names 1000 transactions, more than the 100"),
            "{err}"
        );
    }

    use super::*;

    const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const U2: &str = "4e11fa47-71ca-11e1-9e33-c80aa9429562";

    #[test]
    fn position_round_trips_and_orders_by_file_number() {
        let a: BinlogPosition = "binlog.000012:4".parse().unwrap();
        let b: BinlogPosition = "binlog.000100:4".parse().unwrap();
        assert_eq!(a.to_string(), "binlog.000012:4");
        assert_eq!(a.compare(&b), Some(std::cmp::Ordering::Less));
        let other: BinlogPosition = "mysql-bin.000001:4".parse().unwrap();
        assert_eq!(a.compare(&other), None);
        assert!("binlog.000012".parse::<BinlogPosition>().is_err());
    }

    #[test]
    fn mysql_gtid_set_is_canonical_after_round_trip() {
        let text = format!("{},\n{}:7:1-5:3", U2.to_uppercase(), U1);
        let text = text.replacen(',', ":1-2,", 1);
        let set: GtidSet = text.parse().unwrap();
        assert_eq!(set.to_string(), format!("{U1}:1-5:7,{U2}:1-2"));
    }

    #[test]
    fn gtid_set_with_tag_round_trips() {
        let text = format!("{U1}:1-3:Blue:1-2:7,{U2}:5");
        let set: GtidSet = text.parse().unwrap();
        assert_eq!(set.to_string(), format!("{U1}:1-3:blue:1-2:7,{U2}:5"));
        assert_eq!(set.to_string().parse::<GtidSet>().unwrap(), set);
    }

    #[test]
    fn adding_gtids_merges_intervals() {
        let mut set: GtidSet = format!("{U1}:1-3").parse().unwrap();
        let g: Gtid = format!("{U1}:4").parse().unwrap();
        assert!(!set.contains(&g));
        set.add(&g);
        assert!(set.contains(&g));
        set.add(&format!("{U1}:tag:1").parse().unwrap());
        assert_eq!(set.to_string(), format!("{U1}:1-4:tag:1"));
    }

    #[test]
    fn mariadb_gtid_list_keeps_the_last_per_domain() {
        let mut set: GtidSet = "0-1-100,2-5-7".parse().unwrap();
        set.add(&"0-2-101".parse().unwrap());
        assert_eq!(set.to_string(), "0-2-101,2-5-7");
        assert!(set.contains(&"0-1-50".parse().unwrap()));
        assert!(!set.contains(&"2-5-8".parse().unwrap()));
    }

    #[test]
    fn set_containment_checks_every_interval() {
        let big: GtidSet = format!("{U1}:1-10,{U2}:1-3").parse().unwrap();
        let small: GtidSet = format!("{U1}:2-5").parse().unwrap();
        assert!(big.contains_set(&small));
        assert!(!small.contains_set(&big));
        let m1: GtidSet = "0-1-10,1-1-5".parse().unwrap();
        let m2: GtidSet = "0-2-9".parse().unwrap();
        assert!(m1.contains_set(&m2));
        assert!(!m2.contains_set(&m1));
    }

    #[test]
    fn union_and_subtract_are_set_operations() {
        let purged: GtidSet = format!("{U1}:1-100,{U2}:1-5").parse().unwrap();
        let done: GtidSet = format!("{U1}:1-40:50-60").parse().unwrap();
        assert_eq!(
            purged.subtract(&done).to_string(),
            format!("{U1}:41-49:61-100,{U2}:1-5")
        );
        let mut all = done.clone();
        all.union(&purged);
        assert_eq!(all.to_string(), format!("{U1}:1-100,{U2}:1-5"));
        let m: GtidSet = "0-1-10,1-1-5".parse().unwrap();
        assert_eq!(m.subtract(&"0-1-10".parse().unwrap()).to_string(), "1-1-5");
    }

    #[test]
    fn empty_text_is_an_empty_set() {
        assert!("".parse::<GtidSet>().unwrap().is_empty());
    }

    #[test]
    fn malformed_gtid_sets_are_rejected() {
        for bad in [
            "nonsense",
            U1,
            &format!("{U1}:0"),
            &format!("{U1}:5-3"),
            &format!("{U1}:1-x"),
            "1-2",
            "0-1-1,0-2-2",
            "zz-1-1",
        ] {
            assert!(bad.parse::<GtidSet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn single_gtid_round_trips() {
        for text in [
            format!("{U1}:42"),
            format!("{U1}:tg:42"),
            "0-1-9".to_string(),
        ] {
            assert_eq!(text.parse::<Gtid>().unwrap().to_string(), text);
        }
    }
}

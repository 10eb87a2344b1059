//! MariaDB's own binlog events that mysql_common does not parse.
//!
//! MariaDB replaces MySQL's GTID event with its GTID event (type 162) and announces the state
//! of every replication domain with GTID_LIST (163); ANNOTATE_ROWS (160) and BINLOG_CHECKPOINT
//! (161) carry nothing bintrail needs. Layouts: MariaDB's `log_event.h`
//! (`Gtid_log_event`: seq_no u64, domain_id u32, flags2 u8, then optional commit id).

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

/// `flags2` bit: the event group is a single statement without BEGIN/COMMIT (DDL).
const FL_STANDALONE: u8 = 1;

/// A decoded MariaDB GTID event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MariadbGtid {
    /// The transaction's GTID (server id from the event header).
    pub gtid: Gtid,
    /// True when no BEGIN/COMMIT surrounds the group: the next statement ends it.
    pub standalone: bool,
}

/// Parses a GTID event body; `None` when it is too short.
pub fn parse_gtid(server_id: u32, body: &[u8]) -> Option<MariadbGtid> {
    let seq = u64::from_le_bytes(body.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(body.get(8..12)?.try_into().ok()?);
    let flags = *body.get(12)?;
    Some(MariadbGtid {
        gtid: Gtid::Mariadb {
            domain,
            server: server_id,
            seq,
        },
        standalone: flags & FL_STANDALONE != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_event_body_decodes_domain_server_and_sequence() {
        let mut body = 77u64.to_le_bytes().to_vec();
        body.extend_from_slice(&3u32.to_le_bytes());
        body.push(FL_STANDALONE);
        let g = parse_gtid(9, &body).unwrap();
        assert_eq!(g.gtid.to_string(), "3-9-77");
        assert!(g.standalone);
        assert!(parse_gtid(9, &body[..5]).is_none());
    }
}

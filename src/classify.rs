//! Which failures a restart can fix: the one table of server error codes and I/O conditions.
//!
//! The supervisor retries a *transient* failure from the durable checkpoint with backoff, and
//! stops on a *definite* one with exit status 3 (which the unit does not restart). A failure is
//! transient when waiting and trying again, with nobody doing anything, can succeed: the network
//! or a server came back, a lock was released, a failover finished and the index is writable
//! again. Everything that needs a person (wrong credentials or privileges, a missing table, a
//! purged binlog, an oversize row) is definite, and its message says what to do.
//!
//! Every module's error type asks [`is_transient`] about the driver error it wraps, so one code
//! is classified the same way wherever it surfaces: in a flush, in the checkpoint read every
//! restart runs, in the DDL check, on the source's setup queries.

/// Server error codes that a later retry can get past, with why. MySQL and MariaDB share these
/// numbers except where noted.
pub const TRANSIENT_SERVER_ERRORS: &[(u16, &str)] = &[
    (1021, "disk full; the server waits for space (ER_DISK_FULL)"),
    (1037, "server out of memory (ER_OUTOFMEMORY)"),
    (1038, "server out of sort memory (ER_OUT_OF_SORTMEMORY)"),
    (1040, "too many connections (ER_CON_COUNT_ERROR)"),
    (1041, "server out of resources (ER_OUT_OF_RESOURCES)"),
    (1043, "bad handshake (ER_HANDSHAKE_ERROR)"),
    (1053, "server shutdown in progress (ER_SERVER_SHUTDOWN)"),
    (1077, "normal shutdown (ER_NORMAL_SHUTDOWN)"),
    (1135, "cannot create a thread (ER_CANT_CREATE_THREAD)"),
    (1152, "connection aborted (ER_ABORTING_CONNECTION)"),
    (1158, "network read error (ER_NET_READ_ERROR)"),
    (1159, "network read timeout (ER_NET_READ_INTERRUPTED)"),
    (1160, "network write error (ER_NET_ERROR_ON_WRITE)"),
    (1161, "network write timeout (ER_NET_WRITE_INTERRUPTED)"),
    (1180, "error during COMMIT (ER_ERROR_DURING_COMMIT)"),
    (1184, "connection aborted (ER_NEW_ABORTING_CONNECTION)"),
    (1203, "too many connections for the user (ER_TOO_MANY_USER_CONNECTIONS)"),
    (1205, "lock wait timeout (ER_LOCK_WAIT_TIMEOUT)"),
    (1213, "deadlock (ER_LOCK_DEADLOCK)"),
    (
        1290,
        "the server runs with read_only or super_read_only, as during a failover (ER_OPTION_PREVENTS_STATEMENT)",
    ),
    (1317, "query interrupted (ER_QUERY_INTERRUPTED)"),
    (1615, "statement needs to be re-prepared (ER_NEED_REPREPARE)"),
    (1637, "too many active transactions (ER_TOO_MANY_CONCURRENT_TRXS)"),
    (1689, "lock wait aborted (ER_LOCK_ABORTED)"),
    (
        1792,
        "read-only transaction (ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION)",
    ),
    (1836, "the server is in read-only mode (ER_READ_ONLY_MODE)"),
    (1927, "connection killed (MariaDB ER_CONNECTION_KILLED)"),
    (1969, "statement timeout (MariaDB ER_STATEMENT_TIMEOUT)"),
    (3024, "query execution time exceeded (ER_QUERY_TIMEOUT)"),
    (3169, "session killed (ER_SESSION_WAS_KILLED)"),
    (
        4031,
        "disconnected for inactivity (ER_CLIENT_INTERACTION_TIMEOUT)",
    ),
];

/// Why a server error code is transient, or `None` when it is definite.
pub fn transient_server_error(code: u16) -> Option<&'static str> {
    TRANSIENT_SERVER_ERRORS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, why)| *why)
}

/// Whether retrying after a reconnect may get past `e`.
///
/// I/O errors (a reset or closed connection, a TLS record on a dying connection) and the
/// driver's connection-state errors are transient; server errors are looked up in
/// [`TRANSIENT_SERVER_ERRORS`]; everything else (URL, value conversion, protocol misuse) is a
/// bug or a setting a person must change. Refused TLS handshakes are told apart before this,
/// where connections are opened (`connect.rs`).
pub fn is_transient(e: &mysql_async::Error) -> bool {
    use mysql_async::DriverError as D;
    match e {
        mysql_async::Error::Io(_) => true,
        mysql_async::Error::Server(s) => transient_server_error(s.code).is_some(),
        mysql_async::Error::Driver(
            D::ConnectionClosed
            | D::PoolDisconnected
            | D::PacketOutOfOrder
            | D::BadCompressedPacketHeader,
        ) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: u16) -> mysql_async::Error {
        mysql_async::Error::Server(mysql_async::ServerError {
            code,
            message: String::new(),
            state: String::new(),
        })
    }

    #[test]
    fn lock_waits_deadlocks_read_only_and_lost_connections_are_transient() {
        for code in [1205, 1213, 1040, 1290, 1836, 1053, 4031] {
            assert!(is_transient(&server(code)), "{code}");
        }
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(is_transient(&mysql_async::Error::Io(reset.into())));
        assert!(is_transient(&mysql_async::Error::Driver(
            mysql_async::DriverError::ConnectionClosed
        )));
    }

    #[test]
    fn what_a_person_must_fix_is_definite() {
        // access denied, no privilege, unknown database, missing table, binlog unavailable,
        // table full
        for code in [1045, 1227, 1049, 1146, 1236, 1114] {
            assert!(!is_transient(&server(code)), "{code}");
        }
    }

    #[test]
    fn the_table_has_each_code_once() {
        let mut codes: Vec<u16> = TRANSIENT_SERVER_ERRORS.iter().map(|(c, _)| *c).collect();
        codes.sort_unstable();
        let n = codes.len();
        codes.dedup();
        assert_eq!(codes.len(), n);
    }
}

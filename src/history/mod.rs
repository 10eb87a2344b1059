//! The read side of the change index: what `bintrail status`, `query`, `recover` and `rotate`
//! compute. Every function returns typed results and prints nothing; `commands/` renders them.
//!
//! # Invariants
//!
//! * **Every lookup uses an index** of `binlog_events` (see `index::ddl`): `--pk` the
//!   `k_table_pk` index through `pk_values = ?`, `--schema`/`--table` its prefix,
//!   `--since`/`--until` `k_time` plus partition pruning, `--gtid` `k_gtid`; the other filters
//!   only narrow what those return. The integration tests check each combination with EXPLAIN.
//! * **Commit order is `event_id` order** within a stream (one writer, one transaction per batch),
//!   except for the changes `index --fill-gap` wrote, which belong at their gap's place: every
//!   comparison of places goes through [`order`]. Event timestamps are statement start times
//!   and can disagree with commit order, so nothing here orders by time.
//! * **The source is never written.** `recover` produces SQL for a person (or a pipeline) to
//!   review and apply; it reads only `information_schema` on the source.
//! * **DDL markers** (`ddl_events`) order a TRUNCATE/DROP/RENAME against the changes by
//!   `last_event_id`, never by time ([`ddl`]).
//! * **Only `rotate` changes the index**, and only by partition DDL on `binlog_events`.

pub mod ddl;
pub mod established;
pub mod follow;
pub mod host_zone;
pub mod live;
pub mod order;
pub mod policed;
pub mod query;
pub mod recent;
pub mod reconstruct;
pub mod recover;
pub mod reversal;
pub mod rotate;
pub mod selection;
pub mod status;
pub mod transactions;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::config::IndexConfig;
use crate::connect::{connect, ConnectError};
use crate::dsn::Dsn;
use crate::source::SourceInfo;
use crate::sql::SESSION_SETUP;
use crate::tls::TlsConfig;

/// Why a connection for the read side could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Could not connect.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The server refused the session setup or the first query.
    #[error("{role} server: {source}")]
    Server {
        /// "index" or "source".
        role: &'static str,
        /// The driver's error.
        #[source]
        source: mysql_async::Error,
    },
}

impl OpenError {
    /// Whether retrying later may help.
    pub fn is_transient(&self) -> bool {
        match self {
            OpenError::Connect(e) => e.is_transient(),
            OpenError::Server { source, .. } => crate::classify::is_transient(source),
        }
    }
}

/// Connects to the index database with the session every index connection uses (UTC,
/// utf8mb4, strict), with the index's own TLS setting.
pub async fn open_index(index: &IndexConfig) -> Result<Conn, OpenError> {
    let mut conn = connect("index", &index.dsn, Some(&index.database), &index.tls).await?;
    conn.query_drop(SESSION_SETUP)
        .await
        .map_err(|source| OpenError::Server {
            role: "index",
            source,
        })?;
    Ok(conn)
}

/// Connects to a source server (read-only use: `information_schema`, binlog status) and learns
/// what `source::current_end` needs to know about it.
pub async fn open_source(dsn: &Dsn, tls: &TlsConfig) -> Result<(Conn, SourceInfo), OpenError> {
    let mut conn = connect("source", dsn, None, tls).await?;
    let info = crate::source::inspect(&mut conn)
        .await
        .map_err(|source| OpenError::Server {
            role: "source",
            source,
        })?;
    Ok((conn, info))
}

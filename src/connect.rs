//! Opening connections to the source and the index: DSN + TLS config → a live `Conn`.
//!
//! `tls.rs` decides what TLS to ask for and how to explain a TLS failure; this module carries
//! out the one retry a mode needs (`preferred` against a server without TLS goes on in
//! plaintext with a warning), bounds the handshake in time, and classifies failures: network trouble is
//! transient (see `classify`), refused credentials and TLS problems are not (retrying cannot
//! fix them).
//!
//! A connection may be dialled through a loopback tunnel instead of straight to the DSN's host
//! ([`connect_through`]; the source's replica connection is, see `source::wire`). The tunnel only
//! relays bytes, so everything above stays as it is: TLS runs end to end, and the certificate is
//! checked against the DSN's host, not the tunnel's address.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use mysql_async::{Conn, Opts, OptsBuilder};

use crate::dsn::Dsn;
use crate::tls::{tls_failure, TlsConfig};

/// A server that accepts TCP but does not complete the handshake in this time (a frozen or
/// overloaded server) counts as unreachable, so a reconnect can never hang forever.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to the {role} at {address} as '{user}': {reason}")]
pub struct ConnectError {
    /// "source" or "index".
    pub role: &'static str,
    /// host:port.
    pub address: String,
    /// User name.
    pub user: String,
    /// What went wrong, in the user's terms (TLS failures explained, never a password).
    pub reason: String,
    /// Whether retrying later may help.
    pub transient: bool,
    /// The driver's error (boxed: it is large, and errors travel through many `Result`s).
    #[source]
    pub source: Box<mysql_async::Error>,
}

impl ConnectError {
    /// Whether retrying later may help (network trouble rather than refused credentials or TLS).
    pub fn is_transient(&self) -> bool {
        self.transient
    }

    fn new(role: &'static str, dsn: &Dsn, tls: &TlsConfig, source: mysql_async::Error) -> Self {
        let (reason, transient) = match (tls_failure(&source), &source) {
            (Some(failure), _) => (tls.explain(&failure, &dsn.host), false),
            (None, mysql_async::Error::Server(e)) if e.code == 1045 && tls.cert.is_none() => (
                format!(
                    "{source} (if the account was created REQUIRE X509 or SUBJECT/ISSUER, give --ssl-cert and --ssl-key)"
                ),
                false,
            ),
            (None, _) => (source.to_string(), crate::classify::is_transient(&source)),
        };
        ConnectError {
            role,
            address: dsn.address(),
            user: dsn.user.clone(),
            reason,
            transient,
            source: Box::new(source),
        }
    }
}

/// Opens a tunnel for one connection attempt: a loopback address whose other end is the DSN's
/// host and port.
pub type Tunnel<'a> =
    &'a (dyn Fn() -> BoxFuture<'static, std::io::Result<SocketAddr>> + Send + Sync);

/// Connection options for `dsn` with the given TLS options, dialling `via` if given.
fn opts(
    dsn: &Dsn,
    database: Option<&str>,
    tls: Option<mysql_async::SslOpts>,
    via: Option<SocketAddr>,
) -> Opts {
    let (host, port, tls) = match via {
        None => (dsn.host.clone(), dsn.port, tls),
        // The certificate names the server, not the tunnel.
        Some(addr) => (
            addr.ip().to_string(),
            addr.port(),
            tls.map(|o| o.with_danger_tls_hostname_override(Some(dsn.host.clone()))),
        ),
    };
    OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some(dsn.user.clone()))
        .pass(dsn.password.as_ref().map(|p| p.expose().to_string()))
        .db_name(database.map(str::to_string))
        .prefer_socket(false)
        .ssl_opts(tls)
        .into()
}

/// One attempt (opening its tunnel, if any, included), bounded by [`CONNECT_TIMEOUT`].
async fn attempt(
    dsn: &Dsn,
    database: Option<&str>,
    tls: Option<mysql_async::SslOpts>,
    tunnel: Option<Tunnel<'_>>,
) -> Result<Conn, mysql_async::Error> {
    let dial = async {
        let via = match tunnel {
            Some(open) => Some(open().await?),
            None => None,
        };
        Conn::new(opts(dsn, database, tls, via)).await
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, dial).await {
        Ok(result) => result,
        Err(_) => Err(mysql_async::Error::Io(mysql_async::IoError::Io(
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the server accepted the connection but did not complete the handshake within {} s",
                    CONNECT_TIMEOUT.as_secs()
                ),
            ),
        ))),
    }
}

/// Connects as `role` ("source" or "index"), honouring `--ssl-mode`.
pub async fn connect(
    role: &'static str,
    dsn: &Dsn,
    database: Option<&str>,
    tls: &TlsConfig,
) -> Result<Conn, ConnectError> {
    connect_through(role, dsn, database, tls, None).await
}

/// [`connect`], each attempt dialling a fresh tunnel opened by `tunnel` when one is given.
pub async fn connect_through(
    role: &'static str,
    dsn: &Dsn,
    database: Option<&str>,
    tls: &TlsConfig,
    tunnel: Option<Tunnel<'_>>,
) -> Result<Conn, ConnectError> {
    let err = match attempt(dsn, database, tls.ssl_opts(), tunnel).await {
        Ok(conn) => return Ok(conn),
        Err(e) => e,
    };
    if tls_failure(&err) == Some(crate::tls::TlsFailure::NotOffered)
        && tls.allows_plaintext_fallback()
    {
        tracing::warn!(
            role,
            address = %dsn.address(),
            "server does not offer TLS; connecting in plaintext because --ssl-mode is preferred (use --ssl-mode required to refuse)"
        );
        return attempt(dsn, database, None, tunnel)
            .await
            .map_err(|e| ConnectError::new(role, dsn, tls, e));
    }
    Err(ConnectError::new(role, dsn, tls, err))
}

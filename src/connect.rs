//! Opening connections to the source and the index: DSN + TLS config → a live `Conn`.
//!
//! `tls.rs` decides what TLS to ask for; this module carries out `preferred`'s one special
//! case (a server that does not offer TLS is used in plaintext, with a warning) and sets the
//! session up the way the rest of the code assumes.

use mysql_async::{Conn, DriverError, Opts, OptsBuilder};

use crate::dsn::Dsn;
use crate::tls::TlsConfig;

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to the {role} at {address} as '{user}': {source}")]
pub struct ConnectError {
    /// "source" or "index".
    pub role: &'static str,
    /// host:port.
    pub address: String,
    /// User name.
    pub user: String,
    /// The driver's error (boxed: it is large, and errors travel through many `Result`s).
    #[source]
    pub source: Box<mysql_async::Error>,
}

impl ConnectError {
    /// Whether retrying later may help (network trouble rather than refused credentials or TLS).
    pub fn is_transient(&self) -> bool {
        matches!(*self.source, mysql_async::Error::Io(_))
    }
}

/// Connection options for `dsn` with the given TLS options.
fn opts(dsn: &Dsn, database: Option<&str>, tls: Option<mysql_async::SslOpts>) -> Opts {
    OptsBuilder::default()
        .ip_or_hostname(dsn.host.clone())
        .tcp_port(dsn.port)
        .user(Some(dsn.user.clone()))
        .pass(dsn.password.as_ref().map(|p| p.expose().to_string()))
        .db_name(database.map(str::to_string))
        .prefer_socket(false)
        .ssl_opts(tls)
        .into()
}

/// Connects as `role` ("source" or "index"), honouring `--ssl-mode`.
pub async fn connect(
    role: &'static str,
    dsn: &Dsn,
    database: Option<&str>,
    tls: &TlsConfig,
) -> Result<Conn, ConnectError> {
    let err = |source| ConnectError {
        role,
        address: dsn.address(),
        user: dsn.user.clone(),
        source: Box::new(source),
    };
    match Conn::new(opts(dsn, database, tls.ssl_opts())).await {
        Ok(conn) => Ok(conn),
        Err(mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer))
            if tls.allows_plaintext_fallback() =>
        {
            tracing::warn!(
                role,
                address = %dsn.address(),
                "server does not offer TLS; connecting in plaintext because --ssl-mode is preferred (use --ssl-mode required to refuse)"
            );
            Conn::new(opts(dsn, database, None)).await.map_err(err)
        }
        Err(e) => Err(err(e)),
    }
}

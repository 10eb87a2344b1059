//! One thin file per subcommand: flags → validated config → library call → rendered output.
//! `anyhow`-style context lives here, not in the library: a [`Failure`] is a message for the user
//! and the exit status it deserves.

pub mod archive;
mod csv;
pub mod index;
pub mod init;
pub mod mask;
pub mod query;
pub mod reconstruct;
pub mod recover;
pub mod rotate;
pub mod service;
pub mod status;
pub mod stream;

use std::fmt;

/// How a command failed, which decides the exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Bad flags or values: exit 2, nothing was touched.
    Usage,
    /// A transient or unexpected runtime failure: exit 1 (systemd may restart).
    Runtime,
    /// A definite error that a restart cannot fix: exit 3 (the unit's RestartPreventExitStatus).
    Definite,
}

/// A command's failure: what to tell the user and how to exit.
#[derive(Debug)]
pub struct Failure {
    kind: Kind,
    message: String,
}

impl Failure {
    /// A failure of the given kind.
    pub fn new(kind: Kind, message: impl fmt::Display) -> Self {
        Failure {
            kind,
            message: message.to_string(),
        }
    }

    /// A usage error (exit 2).
    pub fn usage(message: impl fmt::Display) -> Self {
        Failure::new(Kind::Usage, message)
    }

    /// The process exit status for this failure.
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            Kind::Usage => 2,
            Kind::Runtime => 1,
            Kind::Definite => 3,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A connection that could not be opened: exit 1 when trying again may help (network
/// trouble), 3 when not (a refused certificate or password will be refused again).
pub fn open_failure(e: bintrail::history::OpenError) -> Failure {
    let kind = if e.is_transient() {
        Kind::Runtime
    } else {
        Kind::Definite
    };
    Failure::new(kind, e)
}

/// The archive of `--archive DIR`, its files from the manifest in the index (`conn`,
/// `database`), or from the directory's layout when the manifest records none.
pub async fn open_archive(
    location: Option<&str>,
    conn: &mut mysql_async::Conn,
    database: &str,
) -> Result<Option<bintrail::archive::read::Archive>, Failure> {
    use bintrail::archive::read::Archive;
    use bintrail::archive::store::Store;
    let Some(location) = location else {
        return Ok(None);
    };
    let store = Store::open(location).map_err(|e| Failure::usage(e.to_string()))?;
    if let Store::Local(l) = &store {
        if !l.root().is_dir() {
            return Err(Failure::usage(format!(
                "--archive {location}: not a directory (give the DIR or s3://bucket/prefix rotate --archive wrote to)"
            )));
        }
    }
    let archive = Archive::open(Box::new(store), Some((conn, database)))
        .await
        .map_err(|e| Failure::new(Kind::Runtime, e))?;
    Ok(Some(archive))
}

/// Tells the DBA on stderr how much of the archive a read opened: `files read: 2 of 40 …`.
pub fn report_archive(archive: Option<&bintrail::archive::read::Archive>) {
    if let Some(a) = archive {
        eprintln!("bintrail: archive: {}", a.stats().describe());
    }
}

/// The tokio runtime commands run on: two workers, as many as this kind of machine has cores.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            Failure::new(
                Kind::Runtime,
                format!("cannot start the async runtime: {e}"),
            )
        })
}

/// `--established-time-zone` of `recover` and `reconstruct` (parsed by
/// `history::host_zone`); a malformed zone is a usage error.
pub fn established_zone(
    text: Option<&str>,
) -> Result<Option<bintrail::history::host_zone::HostZone>, Failure> {
    text.map(|t| t.parse().map_err(Failure::usage)).transpose()
}

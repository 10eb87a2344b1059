//! `bintrail init`: create the index database and tables, idempotently.

use bintrail::connect::connect;
use bintrail::index::ddl;

use super::{runtime, Failure, Kind};
use crate::cli::InitCmd;

/// Creates what is missing and reports what it found.
pub fn run(cmd: InitCmd) -> Result<(), Failure> {
    let compression = cmd.compression();
    let (index, _) = cmd.into_config().map_err(Failure::usage)?;
    runtime()?.block_on(async move {
        // The database may not exist yet: connect without selecting it.
        let mut conn = connect("index", &index.dsn, None, &index.tls)
            .await
            .map_err(|e| super::open_failure(e.into()))?;
        let report = ddl::init(&mut conn, &index.database, compression)
            .await
            .map_err(|e| Failure::new(Kind::Definite, e))?;
        let _ = conn.disconnect().await;
        if report.created_database {
            println!("created database {}", index.database);
        }
        for (table, created) in report.tables {
            let what = match (created, report.compression) {
                (false, _) => "exists, compatible".to_string(),
                (true, Some(c)) if table == ddl::BINLOG_EVENTS => {
                    format!("created (page compression: {})", c.name())
                }
                (true, _) => "created".to_string(),
            };
            println!("{}.{table}: {what}", index.database);
        }
        for warning in report.warnings {
            eprintln!("warning from the index server: {warning}");
        }
        Ok(())
    })
}

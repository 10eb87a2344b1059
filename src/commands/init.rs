//! `bintrail init`: create the index database and tables, idempotently; with `--adopt`, take
//! over an index the established tool created (`index::adopt`).

use bintrail::connect::connect;
use bintrail::index::{adopt, ddl};

use super::{runtime, Failure, Kind};
use crate::cli::InitCmd;

/// Creates what is missing and reports what it found.
pub fn run(cmd: InitCmd) -> Result<(), Failure> {
    let compression = cmd.compression();
    let (adopting, dry_run) = (cmd.adopt, cmd.dry_run);
    let (index, _) = cmd.into_config().map_err(Failure::usage)?;
    runtime()?.block_on(async move {
        // The database may not exist yet: connect without selecting it.
        let mut conn = connect("index", &index.dsn, None, &index.tls)
            .await
            .map_err(|e| super::open_failure(e.into()))?;
        if adopting {
            let result = run_adopt(&mut conn, &index.database, dry_run).await;
            let _ = conn.disconnect().await;
            return result;
        }
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

/// `--adopt [--dry-run]`: plan, print the plan, and run it unless dry.
async fn run_adopt(
    conn: &mut mysql_async::Conn,
    database: &str,
    dry_run: bool,
) -> Result<(), Failure> {
    let definite = |e: adopt::AdoptError| Failure::new(Kind::Definite, e);
    let plan = adopt::plan(conn, database).await.map_err(definite)?;
    if plan.steps.is_empty() {
        println!("{database}: already in bintrail's layout; nothing to do");
        return Ok(());
    }
    let s = plan.events_size;
    println!(
        "-- {database}.binlog_events: ~{} rows, ~{} data, ~{} indexes \
         (information_schema.TABLES: InnoDB's sampled estimate, not a count)",
        s.rows,
        adopt::human(s.data_bytes),
        adopt::human(s.index_bytes)
    );
    for line in plan.describe() {
        println!("{line}");
    }
    if dry_run {
        println!("-- dry run: nothing was changed");
        return Ok(());
    }
    adopt::apply(conn, &plan).await.map_err(definite)?;
    match &plan.checkpoint {
        Some((server_id, resume)) => println!(
            "-- adopted; run `bintrail stream --server-id {server_id}` to resume from {resume}"
        ),
        None => println!("-- adopted; there was no established checkpoint to convert"),
    }
    Ok(())
}

//! `bintrail archive verify`: every recorded archive file checked against the manifest.

use bintrail::archive::store::Store;
use bintrail::archive::{manifest, verify};
use bintrail::history::open_index;

use super::{runtime, Failure, Kind};
use crate::cli::{ArchiveCmd, ArchiveVerifyCmd, StatusFormat};

/// Runs an `archive` subcommand.
pub fn run(cmd: ArchiveCmd) -> Result<(), Failure> {
    match cmd {
        ArchiveCmd::Verify(cmd) => run_verify(cmd),
    }
}

/// Reads the manifest, verifies every file, prints the outcome; exit 3 when a file is bad.
fn run_verify(cmd: ArchiveVerifyCmd) -> Result<(), Failure> {
    let (index, _, _) = cmd.index.into_config(None).map_err(Failure::usage)?;
    let store = Store::open(&cmd.archive).map_err(Failure::usage)?;
    if let Store::Local(local) = &store {
        if !local.root().is_dir() {
            return Err(Failure::usage(format!(
                "--archive {}: not a directory",
                cmd.archive
            )));
        }
    }
    let report = runtime()?.block_on(async {
        let mut conn = open_index(&index).await.map_err(super::open_failure)?;
        let records = manifest::all(&mut conn, &index.database)
            .await
            .map_err(|e| Failure::new(Kind::Runtime, e))?;
        let _ = conn.disconnect().await;
        verify::verify(&store, &records, |done, all| {
            // Progress for a long verification, on stderr so stdout stays the report.
            if done % 100 == 0 && done < all {
                eprintln!("bintrail: verified {done} of {all} archive files");
            }
        })
        .await
        .map_err(|e| {
            let kind = if e.is_transient() {
                Kind::Runtime
            } else {
                Kind::Definite
            };
            Failure::new(kind, e)
        })
    })?;
    match cmd.format {
        StatusFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        StatusFormat::Table => {
            println!(
                "{}: {} file(s), {} change(s), {} bytes recorded; {} bad",
                store.location(),
                report.files,
                report.rows,
                report.bytes,
                report.problems.len()
            );
            for p in &report.problems {
                println!("  {}: {}", p.path, p.what);
            }
        }
    }
    match report.problems.len() {
        0 => Ok(()),
        n => Err(Failure::new(
            Kind::Definite,
            format!(
                "{n} archive file(s) do not match the manifest: {}",
                report
                    .problems
                    .iter()
                    .map(|p| p.path.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

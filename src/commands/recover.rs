//! `bintrail recover`: the SQL that undoes the selected changes (or, with `--dry-run`, what it
//! would undo). Refusals exit with status 3: running again will not change the answer.

use std::io::Write;

use bintrail::history::recover::{self, Options, RecoverError, Recovery};
use bintrail::history::reversal::describe;
use bintrail::history::selection::Selection;
use bintrail::history::{open_index, open_source};
use bintrail::time::now;

use super::{runtime, Failure, Kind};
use crate::cli::RecoverCmd;

/// Plans the reversal and writes the SQL or the summary.
pub fn run(cmd: RecoverCmd) -> Result<(), Failure> {
    let (index, tls, source) = cmd
        .index
        .into_config(Some(&cmd.source_dsn))
        .map_err(Failure::usage)?;
    let source = source.ok_or_else(|| Failure::usage("--source-dsn is required"))?;
    let sel = Selection::new(cmd.selection.into_args(), now()).map_err(Failure::usage)?;
    let opts = Options {
        overwrite_later_changes: cmd.overwrite_later_changes,
        allow_partial_transactions: cmd.allow_partial_transactions,
        restore_with_defaults: cmd.restore_with_defaults,
        established_zone: super::established_zone(cmd.established_time_zone.as_deref())?,
    };
    let recovery = runtime()?.block_on(async {
        let mut idx = open_index(&index).await.map_err(super::open_failure)?;
        let (mut src, info) = open_source(&source, &tls)
            .await
            .map_err(super::open_failure)?;
        let archive =
            super::open_archive(cmd.archive.archive.as_deref(), &mut idx, &index.database).await?;
        let planned = recover::plan(
            &mut idx,
            &mut src,
            info.flavor,
            &sel,
            opts,
            archive.as_ref(),
        )
        .await;
        let _ = idx.disconnect().await;
        super::report_archive(archive.as_ref());
        let _ = src.disconnect().await;
        planned.map_err(failure)
    })?;
    if cmd.dry_run {
        print!("{}", summary(&recovery));
        return Ok(());
    }
    let sql = recovery.script();
    match &cmd.output {
        Some(path) => {
            std::fs::write(path, sql).map_err(|e| {
                Failure::new(Kind::Runtime, format!("writing {}: {e}", path.display()))
            })?;
            eprintln!(
                "bintrail: wrote {}: {}",
                path.display(),
                recovery.headline()
            );
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(sql.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| Failure::new(Kind::Runtime, format!("writing the SQL: {e}")))?;
        }
    }
    Ok(())
}

/// Refusals are definite (exit 3); failures to read are runtime errors (exit 1).
fn failure(e: RecoverError) -> Failure {
    let kind = match e {
        RecoverError::Query(_) | RecoverError::Index(_) | RecoverError::Source(_) => Kind::Runtime,
        _ => Kind::Definite,
    };
    Failure::new(kind, format!("recover refused: {e}"))
}

/// The `--dry-run` report: the headline, each change with its statement kind, the notes.
fn summary(r: &Recovery) -> String {
    let mut out = format!(
        "would {}:\n",
        r.headline().replacen("reverses", "reverse", 1)
    );
    for (c, stmt) in r.changes.iter().zip(&r.statements) {
        let verb = stmt
            .as_deref()
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or("nothing");
        out.push_str(&format!("  {verb:<6} undoes {}\n", describe(c)));
    }
    for t in &r.tables {
        out.push_str(&format!(
            "rows of {}.{} are found by {}\n",
            t.schema,
            t.table,
            t.key_description()
        ));
    }
    for n in &r.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

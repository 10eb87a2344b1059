//! `bintrail reconstruct`: a table (or some rows) as it was at a moment, as CSV, JSON lines or
//! INSERT statements. Refusals exit with status 3: running again will not change the answer.

use std::io::Write;
use std::time::Duration;

use bintrail::encoding::{literal, SqlType};
use bintrail::history::live::LiveTable;
use bintrail::history::reconstruct::{self, Moment, ReconstructError, Request, RowSink, Target};
use bintrail::history::reversal::{push_comment, SESSION_BEGIN, SESSION_END};
use bintrail::history::{open_index, open_source};
use bintrail::position::Gtid;
use bintrail::sql::ident;
use bintrail::time::{now, parse_duration, parse_instant};
use serde_json::Value;

use super::{csv, runtime, Failure, Kind};
use crate::cli::{ReconstructCmd, ReconstructFormat};

/// INSERT statements carry this many rows each.
const ROWS_PER_INSERT: usize = 100;

/// Validates the flags, reconstructs, writes the rows and a summary line on stderr.
pub fn run(cmd: ReconstructCmd) -> Result<(), Failure> {
    let (index, tls, source) = cmd
        .index
        .into_config(Some(&cmd.source_dsn))
        .map_err(Failure::usage)?;
    let source = source.ok_or_else(|| Failure::usage("--source-dsn is required"))?;
    let (schema, table) = cmd
        .table
        .split_once('.')
        .filter(|(s, t)| !s.is_empty() && !t.is_empty())
        .map(|(s, t)| (s.to_string(), t.to_string()))
        .ok_or_else(|| {
            Failure::usage(format!(
                "--table {:?}: expected schema.table, e.g. shop.orders",
                cmd.table
            ))
        })?;
    let target = match (&cmd.as_of, &cmd.as_of_gtid) {
        (Some(t), None) => Target::Time(
            parse_instant(t, now()).map_err(|e| Failure::usage(format!("--as-of: {e}")))?,
        ),
        (None, Some(g)) => Target::Gtid(g.parse::<Gtid>().map_err(|e| {
            Failure::usage(format!(
                "--as-of-gtid {g:?}: {e} (uuid:N on MySQL, domain-server-seq on MariaDB)"
            ))
        })?),
        _ => {
            return Err(Failure::usage(
                "give one of --as-of TIME or --as-of-gtid GTID",
            ))
        }
    };
    let wait = parse_duration(&cmd.wait).map_err(|e| Failure::usage(format!("--wait: {e}")))?;
    let into = match (cmd.format, &cmd.into) {
        (ReconstructFormat::Sql, Some(into)) => Some(into_name(into)?),
        (ReconstructFormat::Sql, None) => {
            return Err(Failure::usage(
                "--format sql needs --into TABLE: the table the INSERT statements write (not the live table), e.g. --into shop.orders_at_1403",
            ))
        }
        (_, Some(_)) => return Err(Failure::usage("--into is only for --format sql")),
        (_, None) => None,
    };
    let req = Request {
        server_id: cmd.server_id,
        schema,
        table,
        target,
        pk: cmd.pk,
        where_sql: cmd.where_sql,
        wait: Duration::from_secs(wait),
        established_zone: super::established_zone(cmd.established_time_zone.as_deref())?,
    };

    let out = Output::open(cmd.output.as_deref())?;
    let mut writer = RowWriter {
        format: cmd.format,
        into: into.unwrap_or_default(),
        out,
        columns: Vec::new(),
        pending: Vec::new(),
        rows: 0,
    };
    let outcome = runtime()?.block_on(async {
        let mut idx = open_index(&index).await.map_err(super::open_failure)?;
        let (mut src, info) = open_source(&source, &tls)
            .await
            .map_err(super::open_failure)?;
        let archive =
            super::open_archive(cmd.archive.archive.as_deref(), &mut idx, &index.database).await?;
        let mut progress = |msg: String| eprintln!("bintrail: {msg}");
        let done = reconstruct::reconstruct(
            &mut idx,
            &mut src,
            &info,
            &req,
            &mut writer,
            &mut progress,
            archive.as_ref(),
        )
        .await;
        let _ = idx.disconnect().await;
        super::report_archive(archive.as_ref());
        let _ = src.disconnect().await;
        done.map_err(failure)
    })?;
    writer
        .finish()
        .map_err(|e| Failure::new(Kind::Runtime, format!("writing the output: {e}")))?;
    let out = writer.out;
    out.commit()?;
    let s = outcome.summary;
    eprintln!(
        "bintrail: {}.{} as of {}: {} rows ({} as they are now, {} restored from before images; {} live rows did not exist then or were different), from {} changes since",
        outcome.table.schema,
        outcome.table.table,
        outcome.moment.description,
        s.rows,
        s.unchanged,
        s.restored,
        s.absent,
        s.changes
    );
    for n in &outcome.notes {
        eprintln!("bintrail: note: {n}");
    }
    Ok(())
}

/// Refusals are definite (exit 3); failures to read or write are runtime errors (exit 1).
fn failure(e: ReconstructError) -> Failure {
    let kind = match e {
        ReconstructError::Index(_)
        | ReconstructError::Source(_)
        | ReconstructError::SourceEnd(_)
        | ReconstructError::Output(_)
        | ReconstructError::NotCaughtUp { .. }
        | ReconstructError::Busy(_) => Kind::Runtime,
        _ => Kind::Definite,
    };
    Failure::new(kind, format!("reconstruct refused: {e}"))
}

/// `--into`: `table` or `schema.table`, quoted.
fn into_name(text: &str) -> Result<String, Failure> {
    let parts: Vec<&str> = text.split('.').collect();
    match parts.as_slice() {
        [t] if !t.is_empty() => Ok(ident(t)),
        [s, t] if !s.is_empty() && !t.is_empty() => Ok(format!("{}.{}", ident(s), ident(t))),
        _ => Err(Failure::usage(format!(
            "--into {text:?}: expected table or schema.table"
        ))),
    }
}

/// Standard output, or a file written beside its final name and renamed when complete.
enum Output {
    Stdout(std::io::BufWriter<std::io::Stdout>),
    File {
        file: std::io::BufWriter<std::fs::File>,
        tmp: std::path::PathBuf,
        path: std::path::PathBuf,
    },
}

impl Output {
    fn open(path: Option<&std::path::Path>) -> Result<Output, Failure> {
        let Some(path) = path else {
            return Ok(Output::Stdout(std::io::BufWriter::new(std::io::stdout())));
        };
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".tmp-{}", std::process::id()));
        let tmp = path.with_file_name(name);
        let file = std::fs::File::create(&tmp)
            .map_err(|e| Failure::new(Kind::Runtime, format!("creating {}: {e}", tmp.display())))?;
        Ok(Output::File {
            file: std::io::BufWriter::new(file),
            tmp,
            path: path.to_path_buf(),
        })
    }

    fn commit(mut self) -> Result<(), Failure> {
        let io =
            |e: std::io::Error| Failure::new(Kind::Runtime, format!("writing the output: {e}"));
        self.flush().map_err(io)?;
        if let Output::File { file, tmp, path } = &mut self {
            file.get_ref().sync_all().map_err(io)?;
            std::fs::rename(&*tmp, &*path).map_err(io)?;
            // Renamed: nothing left for Drop to remove.
            *tmp = std::path::PathBuf::new();
            eprintln!("bintrail: wrote {}", path.display());
        }
        Ok(())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Output::File { tmp, .. } = self {
            if !tmp.as_os_str().is_empty() {
                let _ = std::fs::remove_file(tmp);
            }
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Stdout(w) => w.write(buf),
            Output::File { file, .. } => file.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Stdout(w) => w.flush(),
            Output::File { file, .. } => file.flush(),
        }
    }
}

/// Writes rows as they come: CSV or JSON lines one by one, SQL in INSERTs of
/// [`ROWS_PER_INSERT`] rows after a header naming the moment and the notes.
struct RowWriter {
    format: ReconstructFormat,
    /// `--into`, quoted.
    into: String,
    out: Output,
    /// (name, rule, nullable, generated) of each column, from `begin`.
    columns: Vec<(String, SqlType, bool, bool)>,
    /// SQL rows not yet written.
    pending: Vec<Vec<Value>>,
    rows: u64,
}

impl RowSink for RowWriter {
    fn begin(&mut self, t: &LiveTable, moment: &Moment, notes: &[String]) -> std::io::Result<()> {
        self.columns = t
            .columns
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    c.sql_type.unwrap_or(SqlType::Text),
                    c.nullable,
                    c.generated,
                )
            })
            .collect();
        match self.format {
            ReconstructFormat::Csv => {
                let names: Vec<String> = t.columns.iter().map(|c| csv::field(&c.name)).collect();
                write!(self.out, "{}\r\n", names.join(","))
            }
            ReconstructFormat::Json => Ok(()),
            ReconstructFormat::Sql => {
                let mut text = String::new();
                push_comment(
                    &mut text,
                    &format!(
                        "bintrail reconstruct: {}.{} as of {}",
                        t.schema, t.table, moment.description
                    ),
                );
                for n in notes {
                    push_comment(&mut text, &format!("note: {n}"));
                }
                push_comment(
                    &mut text,
                    &format!(
                        "Create the target first, e.g. CREATE TABLE {} LIKE {}.{};",
                        self.into,
                        ident(&t.schema),
                        ident(&t.table)
                    ),
                );
                text.push_str(SESSION_BEGIN);
                self.out.write_all(text.as_bytes())
            }
        }
    }

    fn row(&mut self, row: Vec<Value>) -> std::io::Result<()> {
        self.rows += 1;
        match self.format {
            ReconstructFormat::Csv => {
                let mut line = String::with_capacity(64);
                for (i, v) in row.iter().enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    push_csv_value(&mut line, v);
                }
                line.push_str("\r\n");
                self.out.write_all(line.as_bytes())
            }
            ReconstructFormat::Json => {
                // Keys in the table's column order, as `SELECT *` shows them.
                let mut line = String::from("{");
                for (i, ((name, ..), v)) in self.columns.iter().zip(&row).enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    line.push_str(&Value::String(name.clone()).to_string());
                    line.push(':');
                    line.push_str(&v.to_string());
                }
                line.push_str("}\n");
                self.out.write_all(line.as_bytes())
            }
            ReconstructFormat::Sql => {
                self.pending.push(row);
                if self.pending.len() == ROWS_PER_INSERT {
                    self.flush_sql()?;
                }
                Ok(())
            }
        }
    }
}

impl RowWriter {
    /// One INSERT of the pending rows (generated columns are left to the server).
    fn flush_sql(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let cols: Vec<usize> = (0..self.columns.len())
            .filter(|&i| !self.columns[i].3)
            .collect();
        let names: Vec<String> = cols.iter().map(|&i| ident(&self.columns[i].0)).collect();
        let mut stmt = format!("INSERT INTO {} ({}) VALUES\n", self.into, names.join(", "));
        for (n, row) in self.pending.iter().enumerate() {
            if n > 0 {
                stmt.push_str(",\n");
            }
            stmt.push('(');
            for (k, &i) in cols.iter().enumerate() {
                if k > 0 {
                    stmt.push_str(", ");
                }
                let (name, ty, nullable, _) = &self.columns[i];
                let lit = literal(*ty, *nullable, &row[i])
                    .map_err(|e| std::io::Error::other(format!("column {name}: {e}")))?;
                stmt.push_str(&lit);
            }
            stmt.push(')');
        }
        stmt.push_str(";\n");
        self.pending.clear();
        self.out.write_all(stmt.as_bytes())
    }

    /// The end of the output: SQL's last INSERT and its COMMIT.
    fn finish(&mut self) -> std::io::Result<()> {
        if self.format == ReconstructFormat::Sql {
            self.flush_sql()?;
            self.out.write_all(SESSION_END.as_bytes())?;
        }
        Ok(())
    }
}

/// Appends one CSV field: NULL empty, an empty string `""`, text as it is (quoted when it holds
/// a comma, quote or line break), other JSON values as their JSON text.
fn push_csv_value(line: &mut String, v: &Value) {
    match v {
        Value::Null => {}
        Value::String(s) if s.is_empty() => line.push_str("\"\""),
        Value::String(s) => csv::push_field(line, s),
        Value::Number(n) => {
            use std::fmt::Write as _;
            let _ = write!(line, "{n}");
        }
        other => csv::push_field(line, &other.to_string()),
    }
}

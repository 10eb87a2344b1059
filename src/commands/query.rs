//! `bintrail query`: the selected changes, oldest first, as a readable list, JSON lines (values
//! exactly as stored) or CSV.

use std::fmt::Write;
use std::io::Write as _;

use bintrail::change::ChangeKind;
use bintrail::history::open_index;
use bintrail::history::query::{fetch, StoredChange};
use bintrail::history::selection::Selection;
use bintrail::index::adopt::ValueForm;
use bintrail::time::now;
use serde_json::{Map, Value};

use super::{csv, runtime, Failure, Kind};
use crate::cli::{QueryCmd, QueryFormat};

/// Runs the query and prints the changes.
pub fn run(cmd: QueryCmd) -> Result<(), Failure> {
    let (index, _, _) = cmd.index.into_config(None).map_err(Failure::usage)?;
    let sel = Selection::new(cmd.selection.into_args(), now()).map_err(Failure::usage)?;
    let page = runtime()?.block_on(async {
        let mut conn = open_index(&index).await.map_err(super::open_failure)?;
        let archive =
            super::open_archive(cmd.archive.archive.as_deref(), &mut conn, &index.database).await?;
        let page = fetch(&mut conn, &sel, archive.as_ref())
            .await
            .map_err(|e| Failure::new(Kind::Runtime, e))?;
        let _ = conn.disconnect().await;
        super::report_archive(archive.as_ref());
        Ok::<_, Failure>(page)
    })?;
    let text = match cmd.format {
        QueryFormat::Table => table(&page.changes),
        QueryFormat::Json => page
            .changes
            .iter()
            .map(|c| serde_json::to_string(c).unwrap_or_default() + "\n")
            .collect(),
        QueryFormat::Csv => render_csv(&page.changes),
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::new(Kind::Runtime, format!("writing the output: {e}")))?;
    if page.more {
        eprintln!(
            "bintrail: more changes match; showing the newest {} (narrow the selection or raise --limit)",
            sel.limit
        );
    }
    Ok(())
}

/// One header line per change, then what it did: the changed columns of an update as
/// `before → after`, the whole row of an insert (`+`) or delete (`-`).
fn table(changes: &[StoredChange]) -> String {
    let mut out = String::new();
    for c in changes {
        let at = match &c.gtid {
            Some(g) => format!("gtid {g}"),
            None => format!("{}:{}", c.binlog_file, c.start_pos),
        };
        let _ = writeln!(
            out,
            "#{} {} UTC  {:<6}  {}.{}  pk {}  {at}{}",
            c.event_id,
            c.event_timestamp,
            c.event_type.name(),
            c.schema,
            c.table,
            c.pk_values,
            match c.value_form {
                ValueForm::Established => "  [established tool's value forms]",
                ValueForm::Bintrail => "",
            }
        );
        match c.event_type {
            ChangeKind::Update => {
                let (before, after) = (image(&c.row_before), image(&c.row_after));
                for col in c.changed_columns.iter().flatten() {
                    let _ = writeln!(
                        out,
                        "    {col}: {} → {}",
                        shown(before.get(col)),
                        shown(after.get(col))
                    );
                }
            }
            ChangeKind::Insert => {
                let _ = writeln!(out, "    + {}", row(&c.row_after));
            }
            ChangeKind::Delete => {
                let _ = writeln!(out, "    - {}", row(&c.row_before));
            }
        }
    }
    let _ = writeln!(out, "({} change(s), oldest first)", changes.len());
    out
}

fn image(m: &Option<Map<String, Value>>) -> Map<String, Value> {
    m.clone().unwrap_or_default()
}

fn shown(v: Option<&Value>) -> String {
    v.map_or("(absent)".to_string(), Value::to_string)
}

fn row(m: &Option<Map<String, Value>>) -> String {
    m.as_ref().map_or("(no image)".to_string(), |m| {
        m.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// RFC 4180 CSV with a header row; images and changed columns as JSON text. The last column,
/// `value_form`, says which era a row is from (`established` or `bintrail`): the images of the
/// two eras look alike but mean different things (an ENUM index and a label are both valid
/// JSON), and a CSV consumer has no other way to tell them apart.
fn render_csv(changes: &[StoredChange]) -> String {
    let mut out = String::from(
        "event_id,event_timestamp,stream_id,gtid,binlog_file,start_pos,end_pos,row_in_event,\
         connection_id,schema_name,table_name,event_type,pk_values,changed_columns,row_before,\
         row_after,schema_version,value_form\r\n",
    );
    let json = |v: &Option<_>| {
        v.as_ref()
            .map(|x: &Value| x.to_string())
            .unwrap_or_default()
    };
    for c in changes {
        let fields = [
            c.event_id.to_string(),
            c.event_timestamp.clone(),
            c.stream_id.to_string(),
            c.gtid.clone().unwrap_or_default(),
            c.binlog_file.clone(),
            c.start_pos.to_string(),
            c.end_pos.to_string(),
            c.row_in_event.to_string(),
            c.connection_id.map(|i| i.to_string()).unwrap_or_default(),
            c.schema.clone(),
            c.table.clone(),
            c.event_type.name().to_string(),
            c.pk_values.clone(),
            json(&c.changed_columns.clone().map(Value::from)),
            json(&c.row_before.clone().map(Value::Object)),
            json(&c.row_after.clone().map(Value::Object)),
            c.schema_version.to_string(),
            form_name(c.value_form).to_string(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv::field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// The era's name as the JSON output spells it.
fn form_name(f: ValueForm) -> &'static str {
    match f {
        ValueForm::Established => "established",
        ValueForm::Bintrail => "bintrail",
    }
}

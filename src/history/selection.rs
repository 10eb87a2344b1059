//! The filters that select changes (`query`, `recover`): raw flag values in, a validated
//! [`Selection`] out, every bad value rejected naming its flag before anything connects.

use crate::change::ChangeKind;
use crate::position::{gtid_list, Gtid, PositionError};
use crate::time::{format_utc, parse_instant, TimeError};

/// The most transactions one `--gtid` may name.
pub const MAX_GTIDS: u64 = 100_000;

/// The filters as given on the command line, before validation.
#[derive(Debug, Clone, Default)]
pub struct SelectionArgs {
    /// `--server-id`: only changes indexed by this stream.
    pub server_id: Option<u32>,
    /// `--schema`.
    pub schema: Option<String>,
    /// `--table`, `table` or `schema.table`.
    pub table: Option<String>,
    /// `--pk`, in the `pk_values` form (`12345`, `12345|2`).
    pub pk: Option<String>,
    /// `--since`.
    pub since: Option<String>,
    /// `--until`.
    pub until: Option<String>,
    /// `--event-type`: insert, update or delete.
    pub event_type: Option<String>,
    /// `--gtid`.
    pub gtid: Option<String>,
    /// `--changed-column`.
    pub changed_column: Option<String>,
    /// `--limit`.
    pub limit: u64,
}

/// Validated filters: which changes a query or a recovery is about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    /// Only this stream's changes.
    pub server_id: Option<u32>,
    /// Schema name.
    pub schema: Option<String>,
    /// Table name (always with `schema`).
    pub table: Option<String>,
    /// `pk_values` (always with `schema` and `table`).
    pub pk: Option<String>,
    /// Earliest event time, inclusive (Unix seconds, UTC).
    pub since: Option<i64>,
    /// Latest event time, inclusive.
    pub until: Option<i64>,
    /// Insert, update or delete.
    pub kind: Option<ChangeKind>,
    /// `--gtid` as given, canonical text (one GTID, a set or a range).
    pub gtid: Option<String>,
    /// Every GTID `--gtid` names, as the index stores them (empty: `gtid` is one GTID).
    pub gtids: Vec<String>,
    /// Name of a column the update changed.
    pub changed_column: Option<String>,
    /// At most this many changes (the newest).
    pub limit: u64,
}

/// Why the filters were rejected; each message names the flag.
#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    /// `--table` without a schema.
    #[error("--table '{0}' needs its schema: give --schema too, or --table schema.table")]
    TableWithoutSchema(String),
    /// `--table schema.table` and a different `--schema`.
    #[error("--table '{table}' names schema '{in_table}' but --schema is '{schema}'")]
    SchemaConflict {
        /// `--table`.
        table: String,
        /// The schema inside it.
        in_table: String,
        /// `--schema`.
        schema: String,
    },
    /// `--pk` without a table.
    #[error(
        "--pk needs --schema and --table: a primary key value means nothing without its table"
    )]
    PkWithoutTable,
    /// A time that does not parse.
    #[error("{flag}: {source}")]
    Time {
        /// The flag.
        flag: &'static str,
        /// Why.
        source: TimeError,
    },
    /// `--since` after `--until`.
    #[error("--since {since} is after --until {until}: nothing can match")]
    EmptyWindow {
        /// `--since`, UTC.
        since: String,
        /// `--until`, UTC.
        until: String,
    },
    /// A bad `--event-type`.
    #[error("--event-type '{0}': expected insert, update or delete")]
    EventType(String),
    /// A bad `--gtid`.
    #[error("--gtid: {0}")]
    Gtid(PositionError),
    /// `--changed-column` with inserts or deletes.
    #[error("--changed-column only matches updates, but --event-type is {0}")]
    ChangedColumnKind(&'static str),
    /// `--limit` out of range.
    #[error("--limit {0} is out of range: expected 1..=1000000")]
    Limit(u64),
}

impl Selection {
    /// Validates the filters; relative times count back from `now` (Unix seconds).
    pub fn new(args: SelectionArgs, now: i64) -> Result<Selection, SelectionError> {
        let (schema, table) = schema_and_table(args.schema, args.table)?;
        if args.pk.is_some() && table.is_none() {
            return Err(SelectionError::PkWithoutTable);
        }
        let time = |flag: &'static str, v: Option<String>| {
            v.map(|t| parse_instant(&t, now))
                .transpose()
                .map_err(|source| SelectionError::Time { flag, source })
        };
        let (since, until) = (time("--since", args.since)?, time("--until", args.until)?);
        if let (Some(s), Some(u)) = (since, until) {
            if s > u {
                return Err(SelectionError::EmptyWindow {
                    since: format_utc(s),
                    until: format_utc(u),
                });
            }
        }
        let kind = args.event_type.map(|t| parse_kind(&t)).transpose()?;
        if let (Some(k), Some(_)) = (kind, &args.changed_column) {
            if k != ChangeKind::Update {
                return Err(SelectionError::ChangedColumnKind(k.name()));
            }
        }
        let gtids = args
            .gtid
            .as_deref()
            .map(|g| gtid_list(g.trim(), MAX_GTIDS))
            .transpose()
            .map_err(SelectionError::Gtid)?
            .unwrap_or_default();
        let gtid = match gtids.as_slice() {
            [] => None,
            [one] => Some(one.to_string()),
            _ => args.gtid.map(|g| g.trim().to_string()),
        };
        let gtids: Vec<String> = if gtids.len() > 1 {
            gtids.iter().map(Gtid::to_string).collect()
        } else {
            Vec::new()
        };
        if !(1..=1_000_000).contains(&args.limit) {
            return Err(SelectionError::Limit(args.limit));
        }
        Ok(Selection {
            server_id: args.server_id,
            schema,
            table,
            pk: args.pk,
            since,
            until,
            kind,
            gtid,
            gtids,
            changed_column: args.changed_column,
            limit: args.limit,
        })
    }

    /// The filters as command-line flags, for headers and messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let mut add = |flag: &str, v: Option<String>| {
            if let Some(v) = v {
                parts.push(format!("{flag} {}", quote_arg(&v)));
            }
        };
        add("--server-id", self.server_id.map(|i| i.to_string()));
        add("--schema", self.schema.clone());
        add("--table", self.table.clone());
        add("--pk", self.pk.clone());
        add("--since", self.since.map(format_utc));
        add("--until", self.until.map(format_utc));
        add("--event-type", self.kind.map(|k| k.name().to_string()));
        add("--gtid", self.gtid.clone());
        add("--changed-column", self.changed_column.clone());
        if parts.is_empty() {
            "every change".to_string()
        } else {
            parts.join(" ")
        }
    }
}

/// Quotes a flag value for display when it has spaces or shell specials.
fn quote_arg(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:|,/@".contains(c))
    {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "'\\''"))
    }
}

fn schema_and_table(
    schema: Option<String>,
    table: Option<String>,
) -> Result<(Option<String>, Option<String>), SelectionError> {
    let Some(table) = table else {
        return Ok((schema, None));
    };
    match (table.split_once('.'), schema) {
        (Some((s, t)), None) => Ok((Some(s.to_string()), Some(t.to_string()))),
        (Some((s, t)), Some(schema)) if s == schema => Ok((Some(schema), Some(t.to_string()))),
        (Some((s, _)), Some(schema)) => Err(SelectionError::SchemaConflict {
            in_table: s.to_string(),
            table,
            schema,
        }),
        (None, Some(schema)) => Ok((Some(schema), Some(table))),
        (None, None) => Err(SelectionError::TableWithoutSchema(table)),
    }
}

fn parse_kind(text: &str) -> Result<ChangeKind, SelectionError> {
    match text.to_ascii_lowercase().as_str() {
        "insert" => Ok(ChangeKind::Insert),
        "update" => Ok(ChangeKind::Update),
        "delete" => Ok(ChangeKind::Delete),
        _ => Err(SelectionError::EventType(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> SelectionArgs {
        SelectionArgs {
            limit: 100,
            ..Default::default()
        }
    }

    fn err(f: impl FnOnce(&mut SelectionArgs)) -> String {
        let mut a = args();
        f(&mut a);
        Selection::new(a, 1_000_000).unwrap_err().to_string()
    }

    #[test]
    fn table_takes_its_schema_from_the_flag_or_a_dotted_name() {
        let mut a = args();
        a.table = Some("shop.orders".into());
        let s = Selection::new(a, 0).unwrap();
        assert_eq!(
            (s.schema.as_deref(), s.table.as_deref()),
            (Some("shop"), Some("orders"))
        );
        let mut a = args();
        a.schema = Some("shop".into());
        a.table = Some("orders".into());
        assert_eq!(
            Selection::new(a, 0).unwrap().table.as_deref(),
            Some("orders")
        );
    }

    #[test]
    fn each_bad_filter_names_its_flag() {
        assert!(err(|a| a.table = Some("orders".into())).contains("--table"));
        assert!(err(|a| {
            a.schema = Some("a".into());
            a.table = Some("b.orders".into());
        })
        .contains("--schema"));
        assert!(err(|a| a.pk = Some("1".into())).contains("--pk"));
        assert!(err(|a| a.since = Some("soon".into())).contains("--since"));
        assert!(err(|a| {
            a.since = Some("1h".into());
            a.until = Some("2h".into());
        })
        .contains("--until"));
        assert!(err(|a| a.event_type = Some("upsert".into())).contains("--event-type"));
        assert!(err(|a| a.gtid = Some("nope".into())).contains("--gtid"));
        assert!(err(|a| a.limit = 0).contains("--limit"));
        assert!(err(|a| {
            a.event_type = Some("insert".into());
            a.changed_column = Some("x".into());
        })
        .contains("--changed-column"));
    }

    #[test]
    fn describe_reads_back_as_flags() {
        let s = Selection {
            schema: Some("shop".into()),
            table: Some("orders".into()),
            since: Some(0),
            ..Default::default()
        };
        assert_eq!(
            s.describe(),
            "--schema shop --table orders --since '1970-01-01 00:00:00'"
        );
        assert_eq!(Selection::default().describe(), "every change");
    }
}

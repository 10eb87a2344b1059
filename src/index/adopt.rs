//! Taking over, in place, an index that the established Go tool created (`bintrail init
//! --adopt`): its layout is described in `reference/established-index.md`.
//!
//! # What is checked
//! `binlog_events` and `stream_state` must have exactly the established columns with their
//! data types ([`EVENTS_LAYOUT`], [`STATE_LAYOUT`]); anything else is refused with every
//! difference named (table, column, type), before a statement runs. An index that already has
//! bintrail's shape is left alone: a second `--adopt` plans nothing and says so.
//!
//! # What is added, and what it costs
//! * `binlog_events` gets bintrail's columns by one `ALGORITHM=INSTANT` ALTER (a change of the
//!   data dictionary only; no row is read or rewritten, whatever the table's size; the server
//!   refuses rather than falls back to a copy, so the promise holds). `stream_id` is added with
//!   the default 0 and `row_in_event` as NULL: every old row reads those values without being
//!   touched.
//! * bintrail's keys (`uk_change`, `k_table_pk`, `k_time`) by one `ALGORITHM=INPLACE,
//!   LOCK=NONE` ALTER: the table is read once to build them but not copied, and writes continue
//!   meanwhile. The established indexes stay, except that the index on `gtid` (`idx_gtid`) is
//!   renamed `k_gtid` in the same ALTER (metadata only): bintrail's GTID lookups name it in
//!   `FORCE INDEX` hints, and a second copy would cost every write.
//! * The established single-row `stream_state` is renamed to [`ESTABLISHED_STATE`] (kept as it
//!   was, so the Go tool's checkpoint can still be read, or renamed back), bintrail's tables are
//!   created empty, and the checkpoint is copied into bintrail's `stream_state` under the same
//!   server id, at the same file:pos or GTID set, with no transaction in flight.
//!
//! # Why old rows cannot collide with new ones, and how their era is marked
//! A bintrail change's identity is `uk_change` (stream_id, binlog_file, start_pos,
//! row_in_event, event_timestamp). A stream's id is its `--server-id`, never 0 (`config`
//! refuses 0), so `stream_id = 0` is free to mean "indexed by the established tool", and it
//! is also the era mark: such a row keeps the established value forms (ENUM as its index, SET
//! as its bitmask, TEXT as base64, …; see [`ValueForm`]). The established tool kept several
//! rows of one rows event under the same file and offset and no row ordinal, so old rows get
//! `row_in_event` NULL, which a unique key never compares equal: they are outside `uk_change`
//! and cannot make a new change look like a replay, nor block one another.
//!
//! # Idempotence
//! Every step is planned from what the index holds now, so a second run, or a run after one
//! that was interrupted, does only what is missing.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

use super::ddl::{self, BINLOG_EVENTS, STREAM_STATE};
use super::state;
use crate::position::{BinlogPosition, Checkpoint, GtidSet, ResumePoint};
use crate::sql::{ident, WRITER_SESSION_SETUP};

/// The name the established single-row checkpoint table is kept under after adoption.
pub const ESTABLISHED_STATE: &str = "established_stream_state";

/// Columns (name, `information_schema.COLUMNS.DATA_TYPE`) of the established `binlog_events`.
pub const EVENTS_LAYOUT: [(&str, &str); 16] = [
    ("event_id", "bigint"),
    ("binlog_file", "varchar"),
    ("start_pos", "bigint"),
    ("end_pos", "bigint"),
    ("event_timestamp", "datetime"),
    ("gtid", "varchar"),
    ("connection_id", "int"),
    ("schema_name", "varchar"),
    ("table_name", "varchar"),
    ("event_type", "tinyint"),
    ("pk_values", "varchar"),
    ("pk_hash", "varchar"),
    ("changed_columns", "json"),
    ("row_before", "json"),
    ("row_after", "json"),
    ("schema_version", "int"),
];

/// Columns of the established single-row `stream_state`.
pub const STATE_LAYOUT: [(&str, &str); 10] = [
    ("id", "int"),
    ("mode", "enum"),
    ("binlog_file", "varchar"),
    ("binlog_position", "bigint"),
    ("gtid_set", "text"),
    ("events_indexed", "bigint"),
    ("last_event_time", "datetime"),
    ("last_checkpoint", "datetime"),
    ("server_id", "int"),
    ("bintrail_id", "char"),
];

/// Which value forms a stored change's images use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueForm {
    /// bintrail's own encoding (README, "Value encoding").
    Bintrail,
    /// The established tool's: ENUM as the member's index, SET as its bitmask, TEXT as base64,
    /// BINARY as raw bytes, JSON as a string, BIGINT UNSIGNED above 2^63−1 negative,
    /// TIMESTAMP in the indexing host's zone.
    Established,
}

impl ValueForm {
    /// The form of a change stored under `stream_id` (0: the established tool's).
    pub fn of_stream(stream_id: u32) -> ValueForm {
        if stream_id == 0 {
            ValueForm::Established
        } else {
            ValueForm::Bintrail
        }
    }
}

/// Why an index cannot be adopted.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    /// A table is not in the established layout (nor in bintrail's).
    #[error(
        "{database}.{table} is not in the established layout: {problems}; nothing was changed"
    )]
    NotEstablished {
        /// Index database.
        database: String,
        /// The table.
        table: &'static str,
        /// Every difference, `column x is text, the established layout has varchar`.
        problems: String,
    },
    /// The established checkpoint cannot be converted.
    #[error("the established checkpoint in {database}.{table} cannot be converted: {what}; nothing was changed")]
    Checkpoint {
        /// Index database.
        database: String,
        /// The table holding it.
        table: &'static str,
        /// What is wrong with it.
        what: String,
    },
    /// The server refused a statement.
    #[error("index database {database}: {source}")]
    Server {
        /// Index database.
        database: String,
        /// The driver's error.
        #[source]
        source: mysql_async::Error,
    },
    /// The adopted index fails bintrail's own check.
    #[error(transparent)]
    Ddl(#[from] ddl::DdlError),
}

/// How a step is expected to run on the index server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    /// ALGORITHM=INSTANT: data dictionary only, independent of the table's size.
    Instant,
    /// ALGORITHM=INPLACE, LOCK=NONE: reads the table once to build keys; no copy, writes go on.
    InPlace,
    /// A new empty table, or a rename: data dictionary only.
    Metadata,
    /// One row written.
    Row,
}

/// One statement `--adopt` runs, with what it costs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The statement, as sent.
    pub sql: String,
    /// Its expected cost.
    pub cost: Cost,
}

/// `binlog_events`' size as `information_schema.TABLES` estimates it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableSize {
    /// TABLE_ROWS: InnoDB's sampled estimate, not a count.
    pub rows: u64,
    /// DATA_LENGTH: bytes of the clustered index (whole pages).
    pub data_bytes: u64,
    /// INDEX_LENGTH: bytes of the secondary indexes.
    pub index_bytes: u64,
}

/// What adoption would do, planned from what the index holds now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Index database.
    pub database: String,
    /// The statements, in order; empty when the index is already adopted.
    pub steps: Vec<Step>,
    /// `binlog_events`' estimated size.
    pub events_size: TableSize,
    /// The converted checkpoint (server id, resume point), when one is to be written.
    pub checkpoint: Option<(u32, String)>,
}

impl Plan {
    /// The plan as comments and statements: what `--dry-run` prints, and `--adopt` as it runs.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        let s = self.events_size;
        for step in &self.steps {
            let note = match step.cost {
                Cost::Instant => format!(
                    "instant (ALGORITHM=INSTANT): data dictionary only, the same for any size; \
                     binlog_events holds ~{} rows",
                    s.rows
                ),
                Cost::InPlace => format!(
                    "in place, no table copy (ALGORITHM=INPLACE, LOCK=NONE; writes continue): reads \
                     binlog_events once and sorts the new keys, so it takes time in proportion to its \
                     ~{} rows / ~{} of data (plus ~{} of existing indexes)",
                    s.rows,
                    human(s.data_bytes),
                    human(s.index_bytes)
                ),
                Cost::Metadata => "data dictionary only".to_string(),
                Cost::Row => "one row".to_string(),
            };
            out.push(format!("-- {note}"));
            out.push(format!("{};", step.sql));
        }
        out
    }
}

/// `bytes` in KiB, MiB or GiB, whichever keeps the number readable.
pub fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30)),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20)),
        b => format!("{} KiB", b.div_ceil(1 << 10)),
    }
}

/// Plans the adoption of `database`, refusing (before anything runs) an index whose tables
/// are neither in the established layout nor in bintrail's.
pub async fn plan(conn: &mut Conn, database: &str) -> Result<Plan, AdoptError> {
    let server = |source| AdoptError::Server {
        database: database.to_string(),
        source,
    };
    // MySQL caches information_schema.TABLES statistics for a day by default; ask for the
    // current estimate (MariaDB has no such cache, nor the variable).
    let _ = conn
        .query_drop("SET SESSION information_schema_stats_expiry = 0")
        .await;
    // The checkpoint's last event time is carried over as Unix seconds of a UTC DATETIME.
    conn.query_drop("SET SESSION time_zone = '+00:00'")
        .await
        .map_err(server)?;
    let mut steps = plan_events(conn, database).await?;
    let checkpoint = plan_state(conn, database, &mut steps).await?;
    Ok(Plan {
        database: database.into(),
        events_size: size(conn, database).await?,
        steps,
        checkpoint,
    })
}

/// The steps that give `binlog_events` bintrail's columns and keys, after checking that it is
/// in the established layout (unless its columns were added by an earlier run).
async fn plan_events(conn: &mut Conn, database: &str) -> Result<Vec<Step>, AdoptError> {
    let db = ident(database);
    let mut steps = Vec::new();
    let events = columns(conn, database, BINLOG_EVENTS).await?;
    if events.is_empty() {
        return Err(AdoptError::NotEstablished {
            database: database.into(),
            table: BINLOG_EVENTS,
            problems: "the table does not exist".into(),
        });
    }
    if !has(&events, "stream_id") {
        differences(database, BINLOG_EVENTS, &events, &EVENTS_LAYOUT)?;
        steps.push(Step {
            sql: format!(
                "ALTER TABLE {db}.`binlog_events` \
                 ADD COLUMN `stream_id` INT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'server id of the stream that indexed the change; 0: the established tool', \
                 ADD COLUMN `row_in_event` INT UNSIGNED NULL COMMENT 'index of the row inside its rows event; NULL: the established tool', \
                 ADD COLUMN `policy_version` INT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'fingerprint of the capture policy (capture_policies); 0: none', \
                 ALGORITHM=INSTANT"
            ),
            cost: Cost::Instant,
        });
    }
    if let Some(keys) = missing_keys(conn, database).await? {
        steps.push(Step {
            sql: format!("ALTER TABLE {db}.`binlog_events` {keys}, ALGORITHM=INPLACE, LOCK=NONE"),
            cost: Cost::InPlace,
        });
    }
    Ok(steps)
}

/// The steps that keep the established checkpoint table, create bintrail's tables and convert
/// the checkpoint; returns the converted checkpoint (server id, resume point), if one is written.
async fn plan_state(
    conn: &mut Conn,
    database: &str,
    steps: &mut Vec<Step>,
) -> Result<Option<(u32, String)>, AdoptError> {
    let server = |source| AdoptError::Server {
        database: database.to_string(),
        source,
    };
    let db = ident(database);
    let state_cols = columns(conn, database, STREAM_STATE).await?;
    let renamed = !columns(conn, database, ESTABLISHED_STATE).await?.is_empty();
    let established_state = has(&state_cols, "id");
    if established_state {
        differences(database, STREAM_STATE, &state_cols, &STATE_LAYOUT)?;
        if renamed {
            return Err(AdoptError::NotEstablished {
                database: database.into(),
                table: STREAM_STATE,
                problems: format!(
                    "both it and {ESTABLISHED_STATE} hold an established checkpoint; keep one"
                ),
            });
        }
        steps.push(Step {
            sql: format!("RENAME TABLE {db}.`stream_state` TO {db}.`{ESTABLISHED_STATE}`"),
            cost: Cost::Metadata,
        });
    }
    for table in ddl::other_tables() {
        let absent = if table == STREAM_STATE {
            state_cols.is_empty() || established_state
        } else {
            columns(conn, database, table).await?.is_empty()
        };
        if absent {
            steps.push(Step {
                sql: ddl::create_qualified(database, table).unwrap_or_default(),
                cost: Cost::Metadata,
            });
        }
    }
    let mut checkpoint = None;
    if established_state || renamed {
        let from = if established_state {
            STREAM_STATE
        } else {
            ESTABLISHED_STATE
        };
        if let Some((server_id, cp, events_indexed, last_event)) =
            read_checkpoint(conn, database, from).await?
        {
            let exists: Option<u32> = if established_state {
                None
            } else {
                conn.exec_first(
                    format!("SELECT server_id FROM {db}.`stream_state` WHERE server_id = ?"),
                    (server_id,),
                )
                .await
                .map_err(server)?
            };
            if exists.is_none() {
                let sql = state::upsert_sql(server_id, &cp, "", events_indexed, last_event);
                steps.push(Step {
                    sql: sql.replacen(
                        "INSERT INTO stream_state",
                        &format!("INSERT INTO {db}.`stream_state`"),
                        1,
                    ),
                    cost: Cost::Row,
                });
                checkpoint = Some((server_id, cp.resume.to_string()));
            }
        }
    }
    Ok(checkpoint)
}

/// Runs the plan's steps in order (in the writer's session: the checkpoint's literals are
/// written for it), then checks the result with bintrail's own check ([`ddl::ensure_ready`]).
pub async fn apply(conn: &mut Conn, plan: &Plan) -> Result<(), AdoptError> {
    let server = |source| AdoptError::Server {
        database: plan.database.clone(),
        source,
    };
    conn.query_drop(WRITER_SESSION_SETUP)
        .await
        .map_err(server)?;
    for step in &plan.steps {
        conn.query_drop(&step.sql).await.map_err(server)?;
    }
    ddl::ensure_ready(conn, &plan.database).await?;
    Ok(())
}

/// `(COLUMN_NAME, DATA_TYPE)` of a table; empty when it does not exist.
async fn columns(
    conn: &mut Conn,
    database: &str,
    table: &str,
) -> Result<Vec<(String, String)>, AdoptError> {
    conn.exec(
        "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        (database, table),
    )
    .await
    .map_err(|source| AdoptError::Server {
        database: database.into(),
        source,
    })
}

fn has(columns: &[(String, String)], name: &str) -> bool {
    columns.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
}

/// Refuses a table whose columns differ from `layout`, naming every difference.
fn differences(
    database: &str,
    table: &'static str,
    actual: &[(String, String)],
    layout: &[(&str, &str)],
) -> Result<(), AdoptError> {
    let problems = layout_problems(actual, layout);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(AdoptError::NotEstablished {
            database: database.into(),
            table,
            problems: problems.join(", "),
        })
    }
}

/// Each way `actual` differs from `layout`: missing columns, other types, extra columns.
pub fn layout_problems(actual: &[(String, String)], layout: &[(&str, &str)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, want) in layout {
        match actual.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            None => problems.push(format!("column {name} is missing")),
            Some((_, t)) if t.eq_ignore_ascii_case(want) => {}
            // MariaDB reports JSON columns as longtext.
            Some((_, t)) if *want == "json" && t.eq_ignore_ascii_case("longtext") => {}
            Some((_, t)) => problems.push(format!(
                "column {name} is {t}, the established layout has {want}"
            )),
        }
    }
    for (name, t) in actual {
        if !layout.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            problems.push(format!(
                "column {name} ({t}) is not in the established layout"
            ));
        }
    }
    problems
}

/// The `ADD …` clauses for bintrail's keys that `binlog_events` lacks, or `None`.
async fn missing_keys(conn: &mut Conn, database: &str) -> Result<Option<String>, AdoptError> {
    // (index name, its first column): an existing index on gtid serves k_gtid's lookups.
    let existing: Vec<(String, String)> = conn
        .exec(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND SEQ_IN_INDEX = 1",
            (database, BINLOG_EVENTS),
        )
        .await
        .map_err(|source| AdoptError::Server {
            database: database.into(),
            source,
        })?;
    let named = |n: &str| existing.iter().any(|(i, _)| i == n);
    let mut add = Vec::new();
    if !named("uk_change") {
        add.push("ADD UNIQUE KEY `uk_change` (`stream_id`, `binlog_file`, `start_pos`, `row_in_event`, `event_timestamp`)");
    }
    if !named("k_table_pk") {
        add.push("ADD KEY `k_table_pk` (`schema_name`, `table_name`, `pk_values`(32))");
    }
    if !named("k_time") {
        add.push("ADD KEY `k_time` (`event_timestamp`)");
    }
    let mut add: Vec<String> = add.into_iter().map(String::from).collect();
    if !named("k_gtid") {
        // bintrail's GTID lookups name k_gtid in FORCE INDEX hints; the established idx_gtid
        // is the same index (gtid, then the primary key), so it is renamed (a change of the
        // data dictionary only) rather than built twice and maintained twice on every write.
        match existing.iter().find(|(_, c)| c == "gtid") {
            Some((name, _)) => add.push(format!("RENAME INDEX {} TO `k_gtid`", ident(name))),
            None => add.push("ADD KEY `k_gtid` (`gtid`)".into()),
        }
    }
    Ok((!add.is_empty()).then(|| add.join(", ")))
}

/// The established checkpoint in `table`: (server id, checkpoint, events indexed, last event
/// time as Unix seconds), or `None` when the table holds no row (the Go stream never ran).
async fn read_checkpoint(
    conn: &mut Conn,
    database: &str,
    table: &'static str,
) -> Result<Option<(u32, Checkpoint, u64, Option<u32>)>, AdoptError> {
    let refuse = |what: String| AdoptError::Checkpoint {
        database: database.into(),
        table,
        what,
    };
    let rows: Vec<Row> = conn
        .query(format!(
            "SELECT CAST(mode AS CHAR), binlog_file, binlog_position, gtid_set, server_id, \
             events_indexed, CAST(UNIX_TIMESTAMP(last_event_time) AS UNSIGNED) FROM {}.`{table}`",
            ident(database)
        ))
        .await
        .map_err(|source| AdoptError::Server {
            database: database.into(),
            source,
        })?;
    let row = match rows.len() {
        0 => return Ok(None),
        1 => rows.into_iter().next().expect("one row"),
        n => {
            return Err(refuse(format!(
                "it holds {n} rows, the established tool writes one"
            )))
        }
    };
    type Cols = (
        Option<String>,
        Option<String>,
        Option<u64>,
        Option<String>,
        Option<u32>,
        Option<u64>,
        Option<u32>,
    );
    let (mode, file, pos, gtids, server_id, events, last_event): Cols =
        mysql_async::from_row_opt(row).map_err(|e| refuse(e.to_string()))?;
    let server_id = match server_id {
        Some(id) if id > 0 => id,
        other => {
            return Err(refuse(format!(
                "server_id is {}, but a stream checkpoint is kept under the stream's server id",
                other.map_or("NULL".into(), |i| i.to_string())
            )))
        }
    };
    let checkpoint = convert(mode.as_deref(), file, pos, gtids.as_deref()).map_err(refuse)?;
    Ok(Some((
        server_id,
        checkpoint,
        events.unwrap_or(0),
        last_event,
    )))
}

/// The bintrail checkpoint for an established one: the same position or GTID set, at a
/// transaction boundary (the established tool checkpoints after whole transactions), nothing
/// in flight, the binlog's creation time unknown.
pub fn convert(
    mode: Option<&str>,
    file: Option<String>,
    pos: Option<u64>,
    gtids: Option<&str>,
) -> Result<Checkpoint, String> {
    let position = BinlogPosition::new(file.clone().unwrap_or_default(), pos.unwrap_or(0));
    let resume = match mode {
        Some("position") => {
            if file.as_deref().is_none_or(str::is_empty) || pos.is_none_or(|p| p < 4) {
                return Err(format!(
                    "mode is position but the position is {:?}:{:?}",
                    file, pos
                ));
            }
            ResumePoint::Position(position.clone())
        }
        Some("gtid") => ResumePoint::Gtid(
            gtids
                .unwrap_or_default()
                .parse::<GtidSet>()
                .map_err(|e| format!("gtid_set: {e}"))?,
        ),
        other => return Err(format!("mode is {other:?}, expected position or gtid")),
    };
    Ok(Checkpoint::at(resume, position))
}

/// `binlog_events`' size estimate from `information_schema.TABLES`.
async fn size(conn: &mut Conn, database: &str) -> Result<TableSize, AdoptError> {
    let row: Option<(Option<u64>, Option<u64>, Option<u64>)> = conn
        .exec_first(
            "SELECT TABLE_ROWS, DATA_LENGTH, INDEX_LENGTH FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (database, BINLOG_EVENTS),
        )
        .await
        .map_err(|source| AdoptError::Server {
            database: database.into(),
            source,
        })?;
    let (rows, data, index) = row.unwrap_or_default();
    Ok(TableSize {
        rows: rows.unwrap_or(0),
        data_bytes: data.unwrap_or(0),
        index_bytes: index.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn a_table_in_another_layout_is_described_column_by_column() {
        let mut actual = cols(&EVENTS_LAYOUT);
        actual.retain(|(n, _)| n != "gtid");
        actual[10].1 = "text".into();
        actual.push(("note".into(), "varchar".into()));
        assert_eq!(
            layout_problems(&actual, &EVENTS_LAYOUT),
            vec![
                "column gtid is missing",
                "column pk_hash is text, the established layout has varchar",
                "column note (varchar) is not in the established layout",
            ]
        );
        assert!(layout_problems(&cols(&EVENTS_LAYOUT), &EVENTS_LAYOUT).is_empty());
    }

    #[test]
    fn established_checkpoints_convert_to_the_same_point_with_nothing_in_flight() {
        let cp = convert(
            Some("position"),
            Some("bin.000003".into()),
            Some(1234),
            None,
        )
        .unwrap();
        assert_eq!(
            cp.resume,
            ResumePoint::Position(BinlogPosition::new("bin.000003", 1234))
        );
        assert_eq!((cp.rows_done, cp.in_flight.clone()), (0, None));
        let set =
            "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5,\n4E11FA47-71CA-11E1-9E33-C80AA9429562:1";
        let cp = convert(
            Some("gtid"),
            Some("bin.000003".into()),
            Some(1234),
            Some(set),
        )
        .unwrap();
        assert_eq!(cp.resume, ResumePoint::Gtid(set.parse().unwrap()));
        assert!(convert(Some("position"), Some(String::new()), Some(4), None).is_err());
        assert!(convert(Some("gtid"), None, None, Some("nonsense:x")).is_err());
        assert!(convert(None, None, None, None).is_err());
    }

    #[test]
    fn sizes_are_shown_in_a_readable_unit() {
        assert_eq!(human(0), "0 KiB");
        assert_eq!(human(16_384), "16 KiB");
        assert_eq!(human(3 << 20), "3.0 MiB");
        assert_eq!(human(5 << 30), "5.0 GiB");
    }

    #[test]
    fn stream_zero_is_the_established_era() {
        assert_eq!(ValueForm::of_stream(0), ValueForm::Established);
        assert_eq!(ValueForm::of_stream(7), ValueForm::Bintrail);
    }
}

//! `bintrail init --adopt`: an index built in the established tool's layout (by SQL, from
//! `reference/established-index.md`), holding rows in its value forms for real changes of a
//! real source and its single-row checkpoint at the real position after them, is taken over in
//! place; the stream resumes exactly there (every later change once, no earlier one again);
//! `query --pk` finds both eras; a second run is a no-op; `--dry-run` writes nothing; a table
//! in another layout is refused with what differs.

use mysql_async::prelude::Queryable;
use serde_json::{json, Value};

use bintrail::index::ddl::{hours_from, partition_defs};

use crate::stream_basic::server_id;
use crate::support::stream::{del, ins, source_end, upd, Index, Row, Stream};
use crate::support::{base64, bintrail, unique, Flavor, TestServer};

/// The established `binlog_events` and `stream_state`, as its `init` creates them, plus two of
/// its other tables (to see that they are left alone).
fn established_ddl(db: &str, now: i64) -> String {
    format!(
        "CREATE DATABASE `{db}` DEFAULT CHARSET utf8mb4 COLLATE utf8mb4_unicode_ci;
         CREATE TABLE `{db}`.binlog_events (
           event_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
           binlog_file VARCHAR(255) NOT NULL,
           start_pos BIGINT UNSIGNED NOT NULL,
           end_pos BIGINT UNSIGNED NOT NULL,
           event_timestamp DATETIME NOT NULL,
           gtid VARCHAR(255) NULL,
           connection_id INT UNSIGNED NULL,
           schema_name VARCHAR(64) NOT NULL,
           table_name VARCHAR(64) NOT NULL,
           event_type TINYINT UNSIGNED NOT NULL,
           pk_values VARCHAR(512) NOT NULL,
           pk_hash VARCHAR(64) AS (SHA2(pk_values, 256)) STORED,
           changed_columns JSON NULL,
           row_before JSON NULL,
           row_after JSON NULL,
           schema_version INT UNSIGNED NOT NULL DEFAULT 0,
           PRIMARY KEY (event_id, event_timestamp),
           KEY idx_row_lookup (schema_name, table_name, event_timestamp),
           KEY idx_pk_hash (schema_name, table_name, pk_hash, event_timestamp),
           KEY idx_gtid (gtid),
           KEY idx_file_pos (binlog_file, start_pos)
         ) ENGINE=InnoDB
         PARTITION BY RANGE (TO_SECONDS(event_timestamp)) ({parts});
         CREATE TABLE `{db}`.stream_state (
           id INT UNSIGNED NOT NULL DEFAULT 1 PRIMARY KEY,
           mode ENUM('position','gtid') NOT NULL,
           binlog_file VARCHAR(255) NOT NULL,
           binlog_position BIGINT UNSIGNED NOT NULL,
           gtid_set TEXT NULL,
           events_indexed BIGINT UNSIGNED NOT NULL DEFAULT 0,
           last_event_time DATETIME NULL,
           last_checkpoint DATETIME NOT NULL,
           server_id INT UNSIGNED NOT NULL,
           bintrail_id CHAR(36) NULL,
           CHECK (id = 1)
         ) ENGINE=InnoDB;
         CREATE TABLE `{db}`.schema_snapshots (
           snapshot_id INT UNSIGNED NOT NULL,
           schema_name VARCHAR(64) NOT NULL,
           table_name VARCHAR(64) NOT NULL,
           column_name VARCHAR(64) NOT NULL,
           ordinal_position INT UNSIGNED NOT NULL,
           column_key VARCHAR(3) NOT NULL,
           data_type VARCHAR(64) NOT NULL,
           column_type TEXT NOT NULL,
           is_nullable VARCHAR(3) NOT NULL,
           column_default TEXT NULL,
           is_generated TINYINT NOT NULL DEFAULT 0,
           PRIMARY KEY (snapshot_id, schema_name, table_name, ordinal_position)
         ) ENGINE=InnoDB;
         CREATE TABLE `{db}`.index_state (
           binlog_file VARCHAR(255) NOT NULL PRIMARY KEY,
           events_indexed BIGINT UNSIGNED NOT NULL
         ) ENGINE=InnoDB",
        parts = partition_defs(&hours_from(now, 2))
    )
}

/// A rows event of the table in the source's binlog: (start, end, GTID).
#[derive(Debug, Clone)]
struct RowsEvent {
    start: u64,
    end: u64,
    gtid: Option<String>,
}

/// The rows events of `table` (`schema.table`) in `file` from `from` on, found with SHOW
/// BINLOG EVENTS: a table map names the table, the rows events after it are its.
async fn rows_events(source: &TestServer, file: &str, from: u64, table: &str) -> Vec<RowsEvent> {
    let mut conn = source.conn(None).await;
    let rows: Vec<mysql_async::Row> = conn
        .query(format!("SHOW BINLOG EVENTS IN '{file}' FROM {from}"))
        .await
        .unwrap();
    conn.disconnect().await.ok();
    let (mut out, mut gtid, mut ours) = (Vec::new(), None, false);
    for r in rows {
        let (kind, info): (String, String) = (r.get(2).unwrap(), r.get(5).unwrap());
        let (pos, end): (u64, u64) = (r.get(1).unwrap(), r.get(4).unwrap());
        match kind.as_str() {
            "Gtid" => {
                gtid = info
                    .split('\'')
                    .nth(1)
                    .map(str::to_string)
                    .filter(|g| g.contains(':'))
            }
            "Table_map" => ours = info.contains(&format!("({table})")),
            "Write_rows" | "Update_rows" | "Delete_rows" if ours => out.push(RowsEvent {
                start: pos,
                end,
                gtid: gtid.clone(),
            }),
            _ => {}
        }
    }
    out
}

/// One row in the established forms, as its stream would have written it: the change `r` of
/// the rows event `ev`, stamped `at` (UTC), under schema snapshot `snapshot`.
fn old_row(file: &str, ev: &RowsEvent, at: &str, r: &Row, snapshot: u32) -> String {
    let j = |v: &Value| match v {
        Value::Null => "NULL".to_string(),
        v => format!(
            "'{}'",
            v.to_string().replace('\\', "\\\\").replace('\'', "''")
        ),
    };
    let (schema, table) = r.table.split_once('.').unwrap();
    format!(
        "('{file}', {}, {}, '{at}', {}, NULL, '{schema}', '{table}', {}, '{}', {}, {}, {}, {snapshot})",
        ev.start,
        ev.end,
        ev.gtid
            .as_ref()
            .map_or("NULL".into(), |g| format!("'{g}'")),
        r.kind,
        r.pk.replace('\\', "\\\\"),
        j(&r.changed),
        j(&r.before),
        j(&r.after)
    )
}

/// The established row images of the fixture's rows (ENUM as its index, TEXT as base64, SET
/// as its bitmask; a BLOB is base64 in both eras).
#[allow(clippy::too_many_arguments)]
fn old_image(b: i64, a: &str, v: i64, e: u8, txt: &str, s: u8, bl: &[u8]) -> Value {
    json!({"b": b, "a": a, "v": v, "e": e, "txt": base64(txt.as_bytes()), "s": s, "bl": base64(bl)})
}

/// The same row in bintrail's forms.
#[allow(clippy::too_many_arguments)]
fn new_image(b: i64, a: &str, v: i64, e: &str, txt: &str, s: &str, bl: &[u8]) -> Value {
    json!({"b": b, "a": a, "v": v, "e": e, "txt": txt, "s": s, "bl": base64(bl)})
}

/// The established tool's snapshot `id` of the fixture's table: one row per column.
fn snapshot_rows(
    db: &str,
    id: u32,
    schema: &str,
    table: &str,
    cols: &[(&str, &str, &str, &str)],
) -> String {
    let values: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, (name, key, data_type, column_type))| {
            format!(
                "({id}, '{schema}', '{table}', '{name}', {}, '{key}', '{data_type}', '{}', 'YES', NULL, 0)",
                i + 1,
                column_type.replace('\'', "''")
            )
        })
        .collect();
    format!(
        "INSERT INTO `{db}`.schema_snapshots (snapshot_id, schema_name, table_name, column_name, \
         ordinal_position, column_key, data_type, column_type, is_nullable, column_default, \
         is_generated) VALUES {}",
        values.join(", ")
    )
}

/// The fixture table's columns as the established tool's snapshot 1 has them.
const T_COLUMNS: [(&str, &str, &str, &str); 7] = [
    ("b", "PRI", "int", "int"),
    ("a", "PRI", "varchar", "varchar(20)"),
    ("v", "", "int", "int"),
    ("e", "", "enum", "enum('x','y','z')"),
    ("txt", "", "text", "text"),
    ("s", "", "set", "set('p','q','r')"),
    ("bl", "", "blob", "blob"),
];

/// `bintrail init --adopt` with more flags; (success, stdout, stderr).
fn adopt(index: &Index, extra: &[&str]) -> (bool, String, String) {
    let dsn = index.dsn();
    let mut args = vec!["init", "--adopt", "--index-dsn", &dsn];
    args.extend_from_slice(extra);
    let out = bintrail(&args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Every column of every table of the index database: what `--dry-run` must leave alone.
async fn shape(index: &Index) -> Vec<(String, String, String)> {
    let mut conn = index.conn().await;
    let cols = conn
        .exec(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (&index.db,),
        )
        .await
        .unwrap();
    conn.disconnect().await.ok();
    cols
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_established_gtid_index_is_adopted_in_place_and_the_stream_resumes_exactly_there() {
    adopt_and_stream(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_established_position_index_is_adopted_in_place_and_the_stream_resumes_exactly_there() {
    adopt_and_stream(false).await;
}

/// The whole switch-over, with the established checkpoint in GTID or position mode.
async fn adopt_and_stream(gtid_mode: bool) {
    let source = TestServer::shared(Flavor::Mysql);
    let schema = unique("adopt");
    // The key (a, b) is declared out of column order: the established tool joins b|a, bintrail a|b.
    // ts_t and cs_t hold old values that convert only with help: a TIMESTAMP (the host's zone)
    // and TEXT in a character set other than UTF-8.
    source
        .exec(&format!(
            "CREATE DATABASE {schema}; CREATE DATABASE {schema}_chk; \
             CREATE TABLE {schema}.t (b INT, a VARCHAR(20), v INT, \
             e ENUM('x','y','z'), txt TEXT, s SET('p','q','r'), bl BLOB, PRIMARY KEY (a, b));
             CREATE TABLE {schema}.ts_t (id INT PRIMARY KEY, at TIMESTAMP(3) NULL);
             CREATE TABLE {schema}.cs_t (id INT PRIMARY KEY, txt TEXT CHARACTER SET cp1251);
             INSERT INTO {schema}.t VALUES (4, 'k|4', 40, 'z', 'pré', 'q', X'00FF01')"
        ))
        .await;
    // Row 4 predates the index: recover over both eras must bring it back exactly.
    let original = table_rows(source, &format!("{schema}.t")).await;
    let (before, _) = source_end(source).await;

    // The established tool's era: real changes, indexed by the fixture in its forms, stamped
    // 40, 30 and 20 minutes ago (in commit order), so that a moment between them exists.
    source
        .exec(&format!(
            "SET time_zone = '+00:00';
             INSERT INTO {schema}.t VALUES (1, 'k|1', 10, 'y', 'hello', 'p,r', X'0102'), \
             (2, 'k2', 20, 'x', 'bye', '', '');
             INSERT INTO {schema}.ts_t VALUES (1, '2026-01-01 08:00:00.250');
             INSERT INTO {schema}.cs_t VALUES (1, 'abc');
             UPDATE {schema}.t SET v = 11 WHERE a = 'k|1'"
        ))
        .await;
    let mid = table_rows(source, &format!("{schema}.t")).await;
    source
        .exec(&format!(
            "SET time_zone = '+00:00';
             UPDATE {schema}.t SET e = 'x', s = 'p,q', txt = 'pré2', bl = X'FF' WHERE a = 'k|4';
             UPDATE {schema}.ts_t SET at = '2026-06-01 12:00:00' WHERE id = 1;
             UPDATE {schema}.cs_t SET txt = 'abd' WHERE id = 1"
        ))
        .await;
    let (at, gtids) = source_end(source).await;
    assert_eq!(at.file, before.file, "the fixture expects one binlog file");
    let t = format!("{schema}.t");
    let events = rows_events(source, &at.file, before.pos, &t).await;
    assert_eq!(events.len(), 3, "{events:?}");
    let old = [
        ins(
            &t,
            "1|k\\|1",
            old_image(1, "k|1", 10, 2, "hello", 5, &[1, 2]),
        ),
        ins(&t, "2|k2", old_image(2, "k2", 20, 1, "bye", 0, b"")),
        upd(
            &t,
            "1|k\\|1",
            &["v"],
            old_image(1, "k|1", 10, 2, "hello", 5, &[1, 2]),
            old_image(1, "k|1", 11, 2, "hello", 5, &[1, 2]),
        ),
        upd(
            &t,
            "4|k\\|4",
            &["bl", "e", "s", "txt"],
            old_image(4, "k|4", 40, 3, "pré", 2, &[0, 255, 1]),
            old_image(4, "k|4", 40, 1, "pré2", 3, &[255]),
        ),
    ];
    // The host wrote TIMESTAMPs at +02:00; cp1251 text is base64 of its bytes like any TEXT.
    let (ts_t, cs_t) = (format!("{schema}.ts_t"), format!("{schema}.cs_t"));
    let ts_events = rows_events(source, &at.file, before.pos, &ts_t).await;
    let cs_events = rows_events(source, &at.file, before.pos, &cs_t).await;
    assert_eq!((ts_events.len(), cs_events.len()), (2, 2));
    let ts_old = [
        ins(
            &ts_t,
            "1",
            json!({"id": 1, "at": "2026-01-01 10:00:00.250"}),
        ),
        upd(
            &ts_t,
            "1",
            &["at"],
            json!({"id": 1, "at": "2026-01-01 10:00:00.250"}),
            json!({"id": 1, "at": "2026-06-01 14:00:00.000"}),
        ),
    ];
    let cs_old = [
        ins(&cs_t, "1", json!({"id": 1, "txt": base64(b"abc")})),
        upd(
            &cs_t,
            "1",
            &["txt"],
            json!({"id": 1, "txt": base64(b"abc")}),
            json!({"id": 1, "txt": base64(b"abd")}),
        ),
    ];
    let index = Index::uninitialised(TestServer::index());
    let id = server_id();
    let now = TestServer::index().unix_time().await as i64;
    let (then, later, latest) = (
        crate::recover::utc(now - 2400),
        crate::recover::utc(now - 1800),
        crate::recover::utc(now - 1200),
    );
    let mut conn = TestServer::index().conn(None).await;
    conn.query_drop(established_ddl(&index.db, now))
        .await
        .unwrap();
    // In commit order, as the established stream wrote them.
    let values: Vec<String> = [
        old_row(&at.file, &events[0], &then, &old[0], 1),
        old_row(&at.file, &events[0], &then, &old[1], 1),
        old_row(&at.file, &ts_events[0], &then, &ts_old[0], 2),
        old_row(&at.file, &cs_events[0], &then, &cs_old[0], 3),
        old_row(&at.file, &events[1], &later, &old[2], 1),
        old_row(&at.file, &events[2], &latest, &old[3], 1),
        old_row(&at.file, &ts_events[1], &latest, &ts_old[1], 2),
        old_row(&at.file, &cs_events[1], &latest, &cs_old[1], 3),
    ]
    .into();
    conn.query_drop(format!(
        "INSERT INTO `{db}`.binlog_events (binlog_file, start_pos, end_pos, event_timestamp, gtid, \
         connection_id, schema_name, table_name, event_type, pk_values, changed_columns, row_before, \
         row_after, schema_version) VALUES {}",
        values.join(", "),
        db = index.db
    ))
    .await
    .unwrap();
    conn.query_drop(snapshot_rows(&index.db, 1, &schema, "t", &T_COLUMNS))
        .await
        .unwrap();
    conn.query_drop(snapshot_rows(
        &index.db,
        2,
        &schema,
        "ts_t",
        &[
            ("id", "PRI", "int", "int"),
            ("at", "", "timestamp", "timestamp(3)"),
        ],
    ))
    .await
    .unwrap();
    conn.query_drop(snapshot_rows(
        &index.db,
        3,
        &schema,
        "cs_t",
        &[("id", "PRI", "int", "int"), ("txt", "", "text", "text")],
    ))
    .await
    .unwrap();
    conn.exec_drop(
        format!(
            "INSERT INTO `{}`.stream_state (id, mode, binlog_file, binlog_position, gtid_set, \
             events_indexed, last_event_time, last_checkpoint, server_id) \
             VALUES (1, ?, ?, ?, ?, 8, UTC_TIMESTAMP(), UTC_TIMESTAMP(), ?)",
            index.db
        ),
        (
            if gtid_mode { "gtid" } else { "position" },
            &at.file,
            at.pos,
            gtid_mode.then_some(&gtids),
            id,
        ),
    )
    .await
    .unwrap();
    conn.disconnect().await.ok();

    // --dry-run: every statement with its cost, and nothing written.
    let shape_before = shape(&index).await;
    let (ok, out, err) = adopt(&index, &["--dry-run"]);
    assert!(ok, "{out}\n{err}");
    eprintln!("init --adopt --dry-run:\n{out}");
    for expected in [
        "ALGORITHM=INSTANT",
        "-- instant (ALGORITHM=INSTANT)",
        "ALGORITHM=INPLACE, LOCK=NONE",
        "-- in place, no table copy",
        "rows",
        "RENAME TABLE",
        "CREATE TABLE IF NOT EXISTS",
        "INSERT INTO",
        "information_schema.TABLES",
        "dry run: nothing was changed",
    ] {
        assert!(out.contains(expected), "dry run lacks {expected:?}:\n{out}");
    }
    assert_eq!(
        shape(&index).await,
        shape_before,
        "--dry-run changed the index"
    );

    // Adopt, then again: the second is a no-op.
    let (ok, out, err) = adopt(&index, &[]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains(&format!("--server-id {id}")), "{out}");
    let adopted = shape(&index).await;
    let (ok, again, err) = adopt(&index, &[]);
    assert!(ok, "{again}\n{err}");
    assert!(again.contains("nothing to do"), "{again}");
    assert_eq!(shape(&index).await, adopted);
    for kept in [
        "established_stream_state",
        "schema_snapshots",
        "index_state",
    ] {
        assert!(adopted.iter().any(|(t, _, _)| t == kept), "{kept} is gone");
    }
    let mut conn = index.conn().await;
    let carried: Option<(bool, u64)> = conn
        .exec_first(
            "SELECT last_event_time IS NOT NULL, events_indexed FROM stream_state WHERE server_id = ?",
            (id,),
        )
        .await
        .unwrap();
    conn.disconnect().await.ok();
    assert_eq!(
        carried,
        Some((true, 8)),
        "last event time and count carried over"
    );
    let cp = index.checkpoint(id).await.expect("a converted checkpoint");
    assert_eq!(
        (
            cp.0.clone(),
            cp.1.as_deref()
                .map(|g| g.parse::<bintrail::position::GtidSet>().unwrap()),
            cp.2
        ),
        (at.clone(), gtid_mode.then(|| gtids.parse().unwrap()), 0)
    );

    // The stream resumes from the converted checkpoint; more changes follow.
    let stream = Stream::start(source, &index, id, &["--schemas".into(), schema.clone()]);
    source
        .exec(&format!(
            "UPDATE {schema}.t SET v = 12 WHERE a = 'k|1';
             INSERT INTO {schema}.t VALUES (3, 'k3', 30, 'z', 'new', 'r', '')"
        ))
        .await;
    // A moment after the switch-over: every change after it is stamped in a later second.
    let switched = crate::recover::source_clock(source).await;
    let after_switch = table_rows(source, &t).await;
    crate::recover::wait_for_next_second(source, switched).await;
    source
        .exec(&format!(
            "DELETE FROM {schema}.t WHERE a = 'k2';
             DELETE FROM {schema}.t WHERE a = 'k|4'"
        ))
        .await;
    index.wait_caught_up(source, id).await;
    let new: Vec<Row> = vec![
        upd(
            &t,
            "k\\|1|1",
            &["v"],
            new_image(1, "k|1", 11, "y", "hello", "p,r", &[1, 2]),
            new_image(1, "k|1", 12, "y", "hello", "p,r", &[1, 2]),
        ),
        ins(&t, "k3|3", new_image(3, "k3", 30, "z", "new", "r", b"")),
        del(&t, "k2|2", new_image(2, "k2", 20, "x", "bye", "", b"")),
        del(
            &t,
            "k\\|4|4",
            new_image(4, "k|4", 40, "x", "pré2", "p,q", &[255]),
        ),
    ];
    // Zero lost, zero doubled: the old era as it was, every later change once, none before the
    // checkpoint again.
    let of_t = |rows: Vec<Row>| -> Vec<Row> { rows.into_iter().filter(|r| r.table == t).collect() };
    crate::support::stream::assert_changes(&of_t(index.changes_of(0).await), &old);
    crate::support::stream::assert_changes(&index.changes_of(id).await, &new);
    let mut all = old.to_vec();
    all.extend(new.iter().cloned());
    crate::support::stream::assert_changes(&of_t(index.changes().await), &all);

    // query --pk (bintrail's key form) finds the old and the new rows of the key, old ones marked.
    let dsn = index.dsn();
    let out = bintrail(&[
        "query",
        "--index-dsn",
        &dsn,
        "--schema",
        &schema,
        "--table",
        "t",
        "--pk",
        "k\\|1|1",
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: Vec<(String, Option<String>)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["pk_values"].as_str().unwrap().to_string(),
                v["value_form"].as_str().map(str::to_string),
            )
        })
        .collect();
    let established = Some("established".to_string());
    assert_eq!(
        found,
        vec![
            ("1|k\\|1".to_string(), established.clone()),
            ("1|k\\|1".to_string(), established),
            ("k\\|1|1".to_string(), None),
        ]
    );
    let out = bintrail(&[
        "query",
        "--index-dsn",
        &dsn,
        "--schema",
        &schema,
        "--table",
        "t",
        "--pk",
        "k\\|1|1",
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        table.matches("[established tool's value forms]").count(),
        2,
        "{table}"
    );

    // CSV says the era too.
    let out = bintrail(&[
        "query",
        "--index-dsn",
        &dsn,
        "--schema",
        &schema,
        "--table",
        "t",
        "--pk",
        "k\\|1|1",
        "--format",
        "csv",
    ]);
    let csv = String::from_utf8_lossy(&out.stdout).to_string();
    let forms: Vec<&str> = csv.lines().map(|l| l.rsplit(',').next().unwrap()).collect();
    assert_eq!(
        forms,
        ["value_form", "established", "established", "bintrail"],
        "{csv}"
    );

    // reconstruct reads both eras. A moment before the oldest change of the table in either
    // is refused.
    let (code, _, err) = reconstruct(&index, source, &t, &crate::recover::utc(now - 3600), &[]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("older than the oldest change"), "{err}");

    // A moment inside the old era (after its second change, before its third): printed as JSON
    // and CSV in bintrail's value forms, and as INSERTs loaded into a copy, it is the table as
    // the source held it then (the before image of an old change and of new ones restored).
    let in_old_era = crate::recover::utc(now - 1500);
    let expected_mid = [
        new_image(1, "k|1", 11, "y", "hello", "p,r", &[1, 2]),
        new_image(2, "k2", 20, "x", "bye", "", b""),
        new_image(4, "k|4", 40, "z", "pré", "q", &[0, 255, 1]),
    ];
    let (code, out, err) = reconstruct(&index, source, &t, &in_old_era, &["--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(json_rows(&out, "a"), sorted(&expected_mid, "a"), "{err}");
    assert!(err.contains("indexed by the established tool"), "{err}");
    let (code, out, err) = reconstruct(&index, source, &t, &in_old_era, &[]);
    assert_eq!(code, Some(0), "{err}");
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    let (ab, fb) = (base64(&[1, 2]), base64(&[0, 255, 1]));
    let mut csv = vec![
        "b,a,v,e,txt,s,bl".to_string(),
        format!("1,k|1,11,y,hello,\"p,r\",{ab}"),
        "2,k2,20,x,bye,\"\",\"\"".to_string(),
        format!("4,k|4,40,z,pré,q,{fb}"),
    ];
    csv.sort();
    assert_eq!(lines, csv, "{out}");
    let copy = into_copy(
        &index,
        source,
        &t,
        &in_old_era,
        &format!("{schema}_chk.t_mid"),
    )
    .await;
    assert_eq!(copy, mid, "the old-era moment loaded into a copy");
    if let Some(g) = events[1].gtid.as_deref().filter(|_| gtid_mode) {
        // Right after an old transaction: the same state.
        let (code, out, err) = reconstruct_at(
            &index,
            source,
            &t,
            ("--as-of-gtid", g),
            &["--format", "json"],
        );
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(json_rows(&out, "a"), sorted(&expected_mid, "a"), "{err}");
        assert!(err.contains("indexed by the established tool"), "{err}");
    }

    // A moment after the switch-over, in the stream's era.
    let after = crate::recover::utc(switched);
    let (code, out, err) = reconstruct(&index, source, &t, &after, &["--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let expected_after = [
        new_image(1, "k|1", 12, "y", "hello", "p,r", &[1, 2]),
        new_image(2, "k2", 20, "x", "bye", "", b""),
        new_image(3, "k3", 30, "z", "new", "r", b""),
        new_image(4, "k|4", 40, "x", "pré2", "p,q", &[255]),
    ];
    assert_eq!(json_rows(&out, "a"), sorted(&expected_after, "a"), "{err}");
    let copy = into_copy(&index, source, &t, &after, &format!("{schema}_chk.t_after")).await;
    assert_eq!(
        copy, after_switch,
        "the moment after the switch-over loaded into a copy"
    );

    // An old TIMESTAMP the answer needs is refused without the host's zone, naming the flag,
    // and exact with it; at a moment after the old era's changes of the table it is not needed.
    let (code, _, err) = reconstruct(&index, source, &ts_t, &in_old_era, &["--format", "json"]);
    assert_eq!(code, Some(3), "{err}");
    for expected in [
        ts_t.as_str(),
        "column at (timestamp(3))",
        "a TIMESTAMP in the indexing host's time zone",
        "--established-time-zone",
    ] {
        assert!(err.contains(expected), "refusal lacks {expected:?}: {err}");
    }
    let zone = ["--format", "json", "--established-time-zone", "+02:00"];
    let (code, out, err) = reconstruct(&index, source, &ts_t, &in_old_era, &zone);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        json_rows(&out, "id"),
        vec![json!({"id": 1, "at": "2026-01-01 08:00:00.250"})],
        "{err}"
    );
    assert!(err.contains("+02:00 (--established-time-zone)"), "{err}");
    let since_old = crate::recover::utc(now - 600);
    let (code, out, err) = reconstruct(&index, source, &ts_t, &since_old, &["--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        json_rows(&out, "id"),
        vec![json!({"id": 1, "at": "2026-06-01 12:00:00.000"})],
        "{err}"
    );

    // Old TEXT of a column whose character set is not UTF-8 (nor latin1) is refused.
    let (code, _, err) = reconstruct(&index, source, &cs_t, &in_old_era, &zone);
    assert_eq!(code, Some(3), "{err}");
    for expected in [cs_t.as_str(), "column txt (text)", "cp1251"] {
        assert!(err.contains(expected), "refusal lacks {expected:?}: {err}");
    }

    // recover over both eras, applied to the source, restores the row that predates the index
    // exactly and removes the rows the changes made: the old era's values were converted
    // through schema_snapshots (ENUM index, SET bitmask, base64 TEXT; the composite key's
    // parts in the other order; a key holding `|`).
    let sql = crate::support::temp_dir("adopt").join("undo.sql");
    let out = bintrail(&[
        "recover",
        "--index-dsn",
        &dsn,
        "--source-dsn",
        &source.dsn(None),
        "--schema",
        &schema,
        "--table",
        "t",
        "--output",
        sql.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let script = std::fs::read_to_string(&sql).unwrap();
    assert!(
        script.contains("converted exactly through its schema_snapshots"),
        "{script}"
    );
    let (ok, err) = crate::recover::apply_sql(source, &sql);
    assert!(ok, "{err}\n{script}");
    assert_eq!(table_rows(source, &t).await, original, "{script}");

    // recover too: an old TIMESTAMP is refused without the host's zone, naming the table, the
    // column and the form, converted with it; a named zone is a usage error.
    let recover_ts = |extra: &[&str]| {
        let source_dsn = source.dsn(None);
        let mut args = vec![
            "recover",
            "--index-dsn",
            &dsn,
            "--source-dsn",
            &source_dsn,
            "--schema",
            &schema,
            "--table",
            "ts_t",
            "--dry-run",
        ];
        args.extend_from_slice(extra);
        let out = bintrail(&args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, _, err) = recover_ts(&[]);
    assert_eq!(code, Some(3), "{err}");
    for expected in [
        ts_t.as_str(),
        "column at (timestamp(3))",
        "a TIMESTAMP in the indexing host's time zone",
        "indexed by the established tool",
        "--established-time-zone",
    ] {
        assert!(err.contains(expected), "refusal lacks {expected:?}: {err}");
    }
    let (code, out, err) = recover_ts(&["--established-time-zone", "+02:00"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("converted exactly"), "{out}");
    let (code, _, err) = recover_ts(&["--established-time-zone", "Europe/Berlin"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("named zones are refused"), "{err}");
    assert_eq!(stream.stop().await, 0);
}

/// Every row of the fixture's table `table` (or a copy), every column, as the source returns
/// them.
async fn table_rows(source: &TestServer, table: &str) -> Vec<Vec<mysql_async::Value>> {
    let mut conn = source.conn(None).await;
    let rows: Vec<mysql_async::Row> = conn
        .query(format!(
            "SELECT b, a, v, CAST(e AS CHAR), CAST(s AS CHAR), txt, HEX(bl) FROM {table} ORDER BY a, b"
        ))
        .await
        .unwrap();
    conn.disconnect().await.ok();
    rows.into_iter().map(mysql_async::Row::unwrap).collect()
}

/// `bintrail reconstruct --table table --as-of moment` with more flags: (exit status, stdout,
/// stderr).
fn reconstruct(
    index: &Index,
    source: &TestServer,
    table: &str,
    moment: &str,
    extra: &[&str],
) -> (Option<i32>, String, String) {
    reconstruct_at(index, source, table, ("--as-of", moment), extra)
}

/// [`reconstruct`] with the moment's flag (`--as-of` or `--as-of-gtid`) and value.
fn reconstruct_at(
    index: &Index,
    source: &TestServer,
    table: &str,
    (how, moment): (&str, &str),
    extra: &[&str],
) -> (Option<i32>, String, String) {
    let (dsn, source_dsn) = (index.dsn(), source.dsn(None));
    let mut args = vec![
        "reconstruct",
        "--index-dsn",
        &dsn,
        "--source-dsn",
        &source_dsn,
        "--table",
        table,
        how,
        moment,
    ];
    args.extend_from_slice(extra);
    let out = bintrail(&args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `reconstruct --format sql --into copy` (a `CREATE TABLE … LIKE` copy of `table`), loaded
/// into the copy; the copy's rows.
async fn into_copy(
    index: &Index,
    source: &TestServer,
    table: &str,
    moment: &str,
    copy: &str,
) -> Vec<Vec<mysql_async::Value>> {
    source
        .exec(&format!("CREATE TABLE {copy} LIKE {table}"))
        .await;
    let file = crate::support::temp_dir("adopt").join(format!("{copy}.sql"));
    let path = file.to_str().unwrap();
    let flags = ["--format", "sql", "--into", copy, "--output", path];
    let (code, _, err) = reconstruct(index, source, table, moment, &flags);
    assert_eq!(code, Some(0), "{err}");
    let (ok, err) = crate::recover::apply_sql(source, &file);
    assert!(ok, "{err}");
    table_rows(source, copy).await
}

/// JSON lines as values, [`sorted`] by `key`.
fn json_rows(out: &str, key: &str) -> Vec<Value> {
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    sorted(&rows, key)
}

/// Rows sorted by the JSON text of their `key`.
fn sorted(rows: &[Value], key: &str) -> Vec<Value> {
    let mut rows = rows.to_vec();
    rows.sort_by_key(|r| r[key].to_string());
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_in_another_layout_is_refused_with_what_differs_and_left_alone() {
    let index = Index::uninitialised(TestServer::index());
    let now = TestServer::index().unix_time().await as i64;
    let ddl = established_ddl(&index.db, now)
        .replace(
            "pk_values VARCHAR(512) NOT NULL",
            "pk_values TEXT NOT NULL, note VARCHAR(10)",
        )
        .replace("gtid VARCHAR(255) NULL,", "")
        .replace("KEY idx_gtid (gtid),", "");
    let mut conn = TestServer::index().conn(None).await;
    conn.query_drop(ddl).await.unwrap();
    conn.disconnect().await.ok();
    let before = shape(&index).await;
    let (ok, out, err) = adopt(&index, &[]);
    assert!(!ok, "{out}");
    for expected in [
        "binlog_events is not in the established layout",
        "column gtid is missing",
        "column pk_values is text, the established layout has varchar",
        "column note (varchar) is not in the established layout",
        "nothing was changed",
    ] {
        assert!(err.contains(expected), "refusal lacks {expected:?}: {err}");
    }
    assert_eq!(shape(&index).await, before);
}

/// The established layout on a MariaDB 11.8 index server (its JSON columns are LONGTEXT with a
/// `json_valid` check there): `--dry-run` changes nothing, `--adopt` takes it over, a second
/// run is a no-op, the checkpoint (a MariaDB GTID position) is converted, and `query` reads
/// the old rows, marked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_established_index_on_a_mariadb_118_server_is_adopted_in_place() {
    let server = TestServer::index_of(Flavor::Mariadb118);
    let index = Index::uninitialised(server);
    let now = server.unix_time().await as i64;
    let mut conn = server.conn(None).await;
    conn.query_drop(established_ddl(&index.db, now))
        .await
        .unwrap();
    conn.query_drop(format!(
        "INSERT INTO `{db}`.binlog_events (binlog_file, start_pos, end_pos, event_timestamp, \
         gtid, schema_name, table_name, event_type, pk_values, row_after, schema_version) VALUES \
         ('binlog.000001', 4, 200, UTC_TIMESTAMP(), '0-1-5', 'shop', 'orders', 1, '7|a\\\\|b', \
         '{{\"id\": 7, \"e\": 2}}', 1);
         INSERT INTO `{db}`.stream_state (id, mode, binlog_file, binlog_position, gtid_set, \
         events_indexed, last_event_time, last_checkpoint, server_id) VALUES (1, 'gtid', \
         'binlog.000001', 200, '0-1-5', 1, UTC_TIMESTAMP(), UTC_TIMESTAMP(), 4242)",
        db = index.db
    ))
    .await
    .unwrap();
    conn.disconnect().await.ok();

    let before = shape(&index).await;
    let (ok, out, err) = adopt(&index, &["--dry-run"]);
    assert!(ok, "{out}\n{err}");
    for expected in [
        "ALGORITHM=INSTANT",
        "ALGORITHM=INPLACE, LOCK=NONE",
        "RENAME TABLE",
        "dry run: nothing was changed",
    ] {
        assert!(out.contains(expected), "dry run lacks {expected:?}:\n{out}");
    }
    assert_eq!(shape(&index).await, before, "--dry-run changed the index");

    let (ok, out, err) = adopt(&index, &[]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("--server-id 4242"), "{out}");
    let adopted = shape(&index).await;
    let (ok, again, err) = adopt(&index, &[]);
    assert!(ok, "{again}\n{err}");
    assert!(again.contains("nothing to do"), "{again}");
    assert_eq!(shape(&index).await, adopted);
    let mut conn = index.conn().await;
    let cp: Option<(String, String)> = conn
        .query_first("SELECT mode, gtid_set FROM stream_state WHERE server_id = 4242")
        .await
        .unwrap();
    conn.disconnect().await.ok();
    assert_eq!(cp, Some(("gtid".into(), "0-1-5".into())));

    let dsn = index.dsn();
    let out = bintrail(&[
        "query",
        "--index-dsn",
        &dsn,
        "--schema",
        "shop",
        "--table",
        "orders",
        "--format",
        "json",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert_eq!(rows[0]["value_form"], "established", "{text}");
    assert_eq!(rows[0]["stream_id"], 0, "{text}");
    assert_eq!(rows[0]["row_after"], json!({"id": 7, "e": 2}), "{text}");
}

//! `bintrail query`: each filter selects exactly the changes it names, JSON lines carry the
//! stored values exactly, table and CSV output are complete, and every filter combination that
//! matters is answered through an index (checked with EXPLAIN on a populated index).

use mysql_async::prelude::Queryable;
use serde_json::{json, Value};

use bintrail::change::ChangeKind;
use bintrail::fill_gap;
use bintrail::history::follow::{moves_sql, table_scan_sql, Trail};
use bintrail::history::order::{Order, Pos};
use bintrail::history::query::{select_sql, select_sql_following, SINCE_BOUND_SQL};
use bintrail::history::reconstruct as rc;
use bintrail::history::selection::Selection;
use bintrail::history::{recent, transactions};

use crate::stream_basic::server_id;
use crate::support::stream::{start_here, Index, Stream};
use crate::support::{bintrail, unique, Flavor, TestServer};

/// The demo's shop.orders workload (scripts/demo.sh) in schema `shop`.
pub async fn shop_workload(source: &TestServer, shop: &str) {
    source
        .exec(&format!(
            "INSERT INTO {shop}.orders VALUES
               (12345, 'Ada Lovelace', 'new', 99.90, '2026-11-25 14:00:00.000001', '{{\"gift\": true}}'),
               (12346, 'Alan Turing', 'new', 12.00, '2026-11-25 14:00:01', NULL);
             BEGIN;
               UPDATE {shop}.orders SET status = 'paid' WHERE id = 12345;
               UPDATE {shop}.orders SET amount = 0.00, note = '{{\"refund\": \"all\"}}' WHERE id = 12346;
             COMMIT;
             DELETE FROM {shop}.orders WHERE id = 12346;
             UPDATE {shop}.orders SET status = 'shipped' WHERE id = 12345"
        ))
        .await;
}

/// Creates `shop.orders` as scripts/demo.sh does.
pub async fn create_shop(source: &TestServer, shop: &str) {
    source
        .exec(&format!(
            "CREATE DATABASE {shop}; CREATE TABLE {shop}.orders (
               id BIGINT PRIMARY KEY, customer VARCHAR(40), status ENUM('new','paid','shipped'),
               amount DECIMAL(10,2), placed_at DATETIME(6), note JSON)"
        ))
        .await;
}

fn query(index: &Index, args: &[&str]) -> (String, String) {
    let dsn = index.dsn();
    let mut all = vec!["query", "--index-dsn", &dsn];
    all.extend_from_slice(args);
    let out = bintrail(&all);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(out.status.success(), "query {args:?}: {stderr}");
    (stdout, stderr)
}

/// (event_type, pk_values) of each JSON line.
fn kinds(lines: &str) -> Vec<(String, String)> {
    lines
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["event_type"].as_str().unwrap().to_string(),
                v["pk_values"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pair(kind: &str, pk: &str) -> (String, String) {
    (kind.to_string(), pk.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_filter_selects_exactly_its_changes_and_json_keeps_stored_values() {
    filters_select_their_changes(Index::new()).await;
}

crate::on_each_mariadb_index!(
    /// The same on a MariaDB index server (10.11 and 11.8).
    mariadb_index_each_filter_selects_exactly_its_changes,
    |flavor| filters_select_their_changes(Index::new_of(flavor))
);

async fn filters_select_their_changes(index: Index) {
    let source = TestServer::shared(Flavor::Mysql);
    let shop = unique("shop");
    create_shop(source, &shop).await;
    let id = server_id();
    let mut flags = start_here(source, true).await.flags();
    flags.extend(["--schemas".to_string(), shop.clone()]);
    let stream = Stream::start(source, &index, id, &flags);
    shop_workload(source, &shop).await;
    index.wait_caught_up(source, id).await;
    let mut conn = index.conn().await;
    let gtid: String = conn
        .query_first("SELECT gtid FROM binlog_events WHERE pk_values = '12346' AND event_type = 2")
        .await
        .unwrap()
        .unwrap();
    conn.disconnect().await.ok();

    let table = format!("{shop}.orders");
    let (all, _) = query(&index, &["--table", &table, "--format", "json"]);
    assert_eq!(
        kinds(&all),
        vec![
            pair("insert", "12345"),
            pair("insert", "12346"),
            pair("update", "12345"),
            pair("update", "12346"),
            pair("delete", "12346"),
            pair("update", "12345"),
        ]
    );
    // JSON lines carry the stored images exactly, as the index holds them.
    let stored = index.changes().await;
    for (line, row) in all.lines().zip(&stored) {
        let v: Value = serde_json::from_str(line).unwrap();
        let image = |x: &Value| if x.is_null() { Value::Null } else { x.clone() };
        assert_eq!(image(&v["row_before"]), row.before, "{line}");
        assert_eq!(image(&v["row_after"]), row.after, "{line}");
    }
    let first: Value = serde_json::from_str(all.lines().next().unwrap()).unwrap();
    assert_eq!(
        first["row_after"],
        json!({"id": 12345, "customer": "Ada Lovelace", "status": "new", "amount": "99.90",
               "placed_at": "2026-11-25 14:00:00.000001", "note": {"gift": true}})
    );

    let id_text = id.to_string();
    type Case<'a> = (Vec<&'a str>, Vec<(String, String)>);
    let cases: Vec<Case> = vec![
        (
            vec!["--schema", &shop, "--table", "orders", "--pk", "12345"],
            vec![
                pair("insert", "12345"),
                pair("update", "12345"),
                pair("update", "12345"),
            ],
        ),
        (
            vec!["--schema", &shop, "--event-type", "delete"],
            vec![pair("delete", "12346")],
        ),
        (
            vec!["--table", &table, "--changed-column", "amount"],
            vec![pair("update", "12346")],
        ),
        (
            vec!["--gtid", &gtid],
            vec![pair("update", "12345"), pair("update", "12346")],
        ),
        (vec!["--table", &table, "--since", "2099-01-01"], vec![]),
        (vec!["--table", &table, "--until", "2000-01-01"], vec![]),
        (
            vec![
                "--table",
                &table,
                "--since",
                "1h",
                "--until",
                "2099-01-01 00:00:00",
            ],
            kinds(&all),
        ),
        (
            vec!["--server-id", &id_text, "--limit", "2"],
            kinds(&all)[4..].to_vec(),
        ),
    ];
    for (args, expected) in cases {
        let mut a = args.clone();
        a.extend(["--format", "json"]);
        assert_eq!(kinds(&query(&index, &a).0), expected, "{args:?}");
    }
    let (_, more) = query(&index, &["--limit", "1"]);
    assert!(more.contains("more changes match"), "{more}");

    let (text, _) = query(&index, &["--table", &table, "--pk", "12345"]);
    assert!(text.contains("status: \"new\" → \"paid\""), "{text}");
    assert!(text.contains("status: \"paid\" → \"shipped\""), "{text}");
    assert!(text.contains("+ amount=\"99.90\""), "{text}");
    let (csv, _) = query(&index, &["--table", &table, "--format", "csv"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 7, "{csv}");
    assert!(lines[0].starts_with("event_id,event_timestamp,"), "{csv}");
    assert!(
        lines[1].contains(",insert,12345,,,\"{\"\"amount\"\":"),
        "{csv}"
    );
    assert_eq!(stream.stop().await, 0);
}

/// Fills an index with 20,000 synthetic changes over 10 schemas × 20 tables, two weeks, three
/// event types, then ANALYZE, so that the optimizer's choices are the ones a real index gets.
async fn populate(index: &Index, flavor: Flavor) {
    let mut conn = index.conn().await;
    let depth = match flavor {
        Flavor::Mysql => "SET SESSION cte_max_recursion_depth = 100000",
        Flavor::Mariadb | Flavor::Mariadb118 => "SET SESSION max_recursive_iterations = 100000",
    };
    conn.query_drop(depth).await.unwrap();
    conn.query_drop(
        "SET SESSION time_zone = '+00:00';
         INSERT INTO binlog_events (stream_id, binlog_file, start_pos, end_pos, row_in_event,
           event_timestamp, gtid, schema_name, table_name, event_type, pk_values, changed_columns,
           row_before, row_after, schema_version)
         WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 20000)
         SELECT 1 + n % 2, 'binlog.000001', n * 100, n * 100 + 50, 0,
           UTC_TIMESTAMP() - INTERVAL n MINUTE,
           CONCAT('3e11fa47-71ca-11e1-9e33-c80aa9429562:', n), CONCAT('s', n % 10),
           CONCAT('t', n % 20), 1 + n % 3, CAST(n AS CHAR),
           IF(n % 3 = 1, JSON_ARRAY('status'), NULL), JSON_OBJECT('id', n), JSON_OBJECT('id', n), 7
         FROM seq;
         INSERT INTO key_changes (stream_id, event_id, event_timestamp, schema_name, table_name,
           pk_before, pk_after)
         SELECT stream_id, event_id, event_timestamp, schema_name, table_name,
           CONCAT(pk_values, '-old'), pk_values FROM binlog_events WHERE event_id % 7 = 0;
         ANALYZE TABLE binlog_events, key_changes",
    )
    .await
    .unwrap();
    conn.disconnect().await.ok();
}

/// A SELECT and its parameters.
type Statement = (String, Vec<mysql_async::Value>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_filter_combination_is_answered_through_an_index() {
    lookups_use_an_index(Flavor::Mysql).await;
}

crate::on_each_mariadb_index!(
    /// The same lookups on a MariaDB index server (10.11 and 11.8) use the same keys.
    mariadb_index_answers_every_filter_combination_through_an_index,
    |flavor| lookups_use_an_index(flavor)
);

async fn lookups_use_an_index(flavor: Flavor) {
    let index = Index::new_of(flavor);
    populate(&index, flavor).await;
    let now = bintrail::time::now();
    let base = Selection {
        limit: 100,
        ..Default::default()
    };
    let table = Selection {
        schema: Some("s3".into()),
        table: Some("t13".into()),
        ..base.clone()
    };
    let pk = Selection {
        pk: Some("1233".into()),
        ..table.clone()
    };
    let window = Selection {
        since: Some(now - 7_200),
        until: Some(now - 3_600),
        ..base.clone()
    };
    let cases: Vec<(&str, Selection, &[&str])> = vec![
        ("--pk", pk.clone(), &["k_table_pk"]),
        (
            "--pk --event-type --changed-column",
            Selection {
                kind: Some(ChangeKind::Update),
                changed_column: Some("status".into()),
                ..pk.clone()
            },
            &["k_table_pk"],
        ),
        (
            "--pk --since",
            Selection {
                since: Some(now - 86_400),
                ..pk
            },
            &["k_table_pk"],
        ),
        (
            "--gtid",
            Selection {
                gtid: Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:77".into()),
                ..base.clone()
            },
            &["k_gtid"],
        ),
        (
            "--schema --table",
            table.clone(),
            &["k_table_pk", "PRIMARY"],
        ),
        (
            "--schema",
            Selection {
                schema: Some("s3".into()),
                ..base.clone()
            },
            &["k_table_pk", "PRIMARY"],
        ),
        ("--since --until", window.clone(), &["k_time", "PRIMARY"]),
        (
            "--since --until --schema --table",
            Selection {
                since: window.since,
                until: window.until,
                ..table.clone()
            },
            &["k_time", "k_table_pk", "PRIMARY"],
        ),
        (
            "--event-type",
            Selection {
                kind: Some(ChangeKind::Delete),
                ..base.clone()
            },
            &["PRIMARY"],
        ),
        (
            "--server-id",
            Selection {
                server_id: Some(2),
                ..base.clone()
            },
            &["PRIMARY"],
        ),
        ("no filter", base.clone(), &["PRIMARY"]),
    ];
    let mut statements: Vec<(&str, Statement, &[&str])> = cases
        .into_iter()
        .map(|(what, sel, keys)| (what, select_sql(&sel), keys))
        .collect();
    let trail: Trail = [
        ("1233".to_string(), Pos::START),
        ("77".to_string(), Pos::streamed(5_000)),
    ]
    .into();
    // An index with a filled gap: query's order puts its changes at the gap's place.
    let filled = Order::from_placed(vec![bintrail::index::gaps::Placed {
        gap_id: 1,
        server_id: 2,
        before: 100,
        first: 4_000,
        last: 4_100,
    }]);
    let following = Selection {
        pk: Some("1233".into()),
        ..table.clone()
    };
    statements.extend([
        (
            "--pk following a key change",
            select_sql_following(&following, &trail, None, &Order::default()),
            &["k_table_pk"][..],
        ),
        (
            "--pk in history order with a filled gap",
            select_sql_following(&following, &trail, None, &filled),
            &["k_table_pk"][..],
        ),
        (
            "no filter in history order with a filled gap",
            select_sql_following(&base, &Trail::new(), None, &filled),
            &["PRIMARY"][..],
        ),
        (
            "--since --table in history order with a filled gap",
            select_sql_following(
                &Selection {
                    since: window.since,
                    ..table.clone()
                },
                &Trail::new(),
                None,
                &filled,
            ),
            &["k_time", "k_table_pk", "PRIMARY"][..],
        ),
        (
            "--gtid set",
            select_sql(&Selection {
                gtid: Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:77-79".into()),
                gtids: (77..=79)
                    .map(|n| format!("3e11fa47-71ca-11e1-9e33-c80aa9429562:{n}"))
                    .collect(),
                ..base.clone()
            }),
            &["k_gtid"][..],
        ),
        (
            "key changes away from keys",
            moves_sql("s3", "t13", Some(1), &["1233-old", "13-old"]),
            &["k_before"][..],
        ),
        (
            "a keyless table's changes from an event on",
            table_scan_sql("s3", "t13", 1, 100),
            &["k_table_pk"][..],
        ),
    ]);
    // reconstruct's lookups.
    let gtid = "3e11fa47-71ca-11e1-9e33-c80aa9429562:77";
    let v = |items: Vec<mysql_async::Value>| items;
    let ts = bintrail::time::format_utc(now - 3_600);
    statements.extend([
        (
            "reconstruct: first change after a time",
            (
                rc::FIRST_AFTER_TIME.to_string(),
                v(vec![2.into(), ts.as_str().into()]),
            ),
            &["k_time"][..],
        ),
        (
            "reconstruct: first change after a time among a filled gap's",
            (
                rc::FIRST_AFTER_TIME_IN.to_string(),
                v(vec![
                    2.into(),
                    ts.as_str().into(),
                    4_000.into(),
                    4_100.into(),
                ]),
            ),
            &["k_time", "PRIMARY"][..],
        ),
        (
            "reconstruct: a change's GTID",
            (rc::GTID_OF_CHANGE.to_string(), v(vec![5.into(), 2.into()])),
            &["PRIMARY", "uk_change"][..],
        ),
        (
            "reconstruct: a transaction's start",
            (
                rc::TRANSACTION_START.to_string(),
                v(vec![gtid.into(), 2.into()]),
            ),
            &["k_gtid"][..],
        ),
        (
            "reconstruct: a transaction's end",
            (
                rc::TRANSACTION_END.to_string(),
                v(vec![gtid.into(), 2.into()]),
            ),
            &["k_gtid"][..],
        ),
        (
            "reconstruct: a change of the table before the cut",
            (
                rc::ANY_BEFORE_CUT.to_string(),
                v(vec!["s3".into(), "t13".into(), 2.into(), 5_000.into()]),
            ),
            &["k_table_pk", "PRIMARY", "uk_change"][..],
        ),
        (
            "reconstruct: the last change before the cut",
            (
                rc::LAST_BEFORE_CUT.to_string(),
                v(vec![2.into(), 5_000.into()]),
            ),
            &["PRIMARY", "uk_change"][..],
        ),
        (
            "reconstruct: the table's oldest change",
            (
                rc::OLDEST_OF_TABLE.to_string(),
                v(vec!["s3".into(), "t13".into(), 2.into()]),
            ),
            &["k_table_pk"][..],
        ),
        (
            "reconstruct: the table's changes from the cut",
            (
                rc::changes_sql(),
                v(vec!["s3".into(), "t13".into(), 2.into(), 5_000.into()]),
            ),
            &["k_table_pk", "PRIMARY", "uk_change"][..],
        ),
        (
            "reconstruct: the last change before the cut of either era",
            (
                rc::LAST_BEFORE_CUT_ERA.to_string(),
                v(vec![2.into(), 5_000.into()]),
            ),
            &["PRIMARY", "uk_change"][..],
        ),
        (
            "reconstruct: the table's changes from the cut in either era",
            (
                rc::era_changes_sql(),
                v(vec!["s3".into(), "t13".into(), 2.into(), 5_000.into()]),
            ),
            &["k_table_pk", "PRIMARY", "uk_change"][..],
        ),
    ]);
    // recover's checks and its time bound.
    statements.extend([
        (
            "recover: key changes from an event on",
            (
                recent::MOVES_SQL.to_string(),
                v(vec![2.into(), 5_000.into(), 20_001.into()]),
            ),
            &["PRIMARY"][..],
        ),
        (
            "recover: identities from an event on",
            (
                recent::CHANGES_SQL.to_string(),
                v(vec![5_000.into(), 20_001.into()]),
            ),
            &["PRIMARY"][..],
        ),
        (
            "recover: a transaction's changes before an event",
            (
                transactions::EARLIER_OF_TRANSACTION.to_string(),
                v(vec![gtid.into(), 5_000.into(), 2.into()]),
            ),
            &["k_gtid", "PRIMARY"][..],
        ),
        (
            "recover: the first change since a time",
            (
                SINCE_BOUND_SQL.to_string(),
                v(vec![ts.as_str().into(), 10_001.into()]),
            ),
            &["k_time"][..],
        ),
        (
            "--since --schema --table from a known first change",
            select_sql_following(
                &Selection {
                    since: window.since,
                    ..table.clone()
                },
                &Trail::new(),
                Some(5_000),
                &Order::default(),
            ),
            &["k_time", "k_table_pk", "PRIMARY"][..],
        ),
    ]);
    // index --fill-gap placing its range.
    let files = v(vec![
        2.into(),
        "binlog.000001".into(),
        "binlog.000002".into(),
        100.into(),
    ]);
    statements.extend([
        (
            "fill-gap: the range's changes in its files",
            (fill_gap::fill_ids_sql(2), files.clone()),
            &["uk_change"][..],
        ),
        (
            "fill-gap: the stream's changes among the fill's ids",
            (
                fill_gap::STREAM_IDS_SQL.replace(" LOCK IN SHARE MODE", ""),
                v(vec![4_000.into(), 4_100.into(), 2.into()]),
            ),
            &["PRIMARY"][..],
        ),
        (
            "fill-gap: markers recorded before the range's first change",
            (fill_gap::early_markers_sql(2), {
                let mut p = files;
                p.push(4_000.into());
                p
            }),
            &["uk_marker"][..],
        ),
    ]);
    let mut conn = index.conn().await;
    conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
    // MariaDB's EXPLAIN has the traditional columns (type, key) and no FORMAT=TRADITIONAL.
    let explain = match flavor {
        Flavor::Mysql => "EXPLAIN FORMAT=TRADITIONAL",
        Flavor::Mariadb | Flavor::Mariadb118 => "EXPLAIN",
    };
    // Every statement is checked before failing, so one run names every lookup that differs.
    let mut failures = Vec::new();
    for (what, (sql, params), keys) in statements {
        let plan: Vec<mysql_async::Row> =
            conn.exec(format!("{explain} {sql}"), params).await.unwrap();
        for row in plan {
            // NULL columns (MariaDB's "Impossible WHERE" rows, say) read as None.
            let text = |col: &str| row.get::<Option<String>, _>(col).flatten();
            let table = text("table");
            // A selection's picked (event_id, event_timestamp) pairs, materialized: reading
            // them back is not a scan of the index.
            let access = text("type");
            let by = text("ref");
            // The picked rows read by primary key, one each, is no scan either.
            let picked = access.as_deref() == Some("eq_ref")
                && by.as_deref().is_some_and(|r| r.starts_with("picked."));
            if picked || table.as_deref().is_some_and(|t| t.starts_with("<derived")) {
                continue;
            }
            let key = text("key");
            if access.as_deref() == Some("ALL") {
                failures.push(format!("{what} scans the table: {row:?}"));
            } else if !key.as_deref().is_some_and(|k| keys.contains(&k)) {
                failures.push(format!(
                    "{what} uses key {key:?}, expected one of {keys:?}: {row:?}"
                ));
            }
        }
    }
    conn.disconnect().await.ok();
    assert!(
        failures.is_empty(),
        "{flavor:?} index:\n{}",
        failures.join("\n")
    );
}

#[test]
fn bad_filters_are_usage_errors_naming_the_flag_before_any_connection() {
    let index = "mysql://idx:hunter2@127.0.0.1:1/bt";
    for (args, needle) in [
        (vec!["query", "--pk", "1"], "--pk"),
        (vec!["query", "--table", "orders"], "--table"),
        (vec!["query", "--since", "yesterday"], "--since"),
        (vec!["query", "--event-type", "upsert"], "--event-type"),
        (vec!["query", "--gtid", "x"], "--gtid"),
        (vec!["query", "--limit", "0"], "--limit"),
        (vec!["recover", "--table", "s.t"], "--source-dsn"),
        (vec!["rotate", "--retain", "forever"], "--retain"),
    ] {
        let mut all = args.clone();
        all.extend(["--index-dsn", index]);
        let out = bintrail(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected {needle} in {stderr}"
        );
        assert!(!stderr.contains("hunter2"), "{args:?} leaked the password");
    }
}

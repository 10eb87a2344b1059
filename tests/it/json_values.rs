//! JSON values that the index's own JSON column cannot hold as they are: numbers of a MariaDB
//! JSON document that no JSON number of the index keeps exactly (beyond 64-bit integers and
//! doubles, or beyond a double's range like `1e400`), and MySQL documents nested 100 containers
//! deep (MySQL's maximum; the row image object adds a level the index's column refuses). Each
//! is streamed by the real binary, compared whole (every stored image, `pk_values`,
//! `changed_columns`) with the `"json:"` form the README's "Value encoding" prescribes, and then
//! read back: the recovery SQL for the changes after the first inserts is applied to the source
//! and the table must be back to the same rows and checksum, so the stored form is proven to
//! give back exactly what the source held.

use mysql_async::prelude::Queryable;
use serde_json::{json, Value};

use crate::recover::{apply_sql, recover_since, snapshot, source_clock, wait_for_next_second};
use crate::stream_basic::server_id;
use crate::support::stream::{
    assert_changes, del, ins, source_end, start_here, upd, Index, Row, Stream,
};
use crate::support::{unique, Flavor, TestServer};
use crate::types::logged_error;

/// What one test streams: the table, the rows inserted before the window, the statements of
/// the window, and every change the index must then hold.
struct Case {
    create: &'static str,
    inserts: Vec<String>,
    window: Vec<String>,
    /// A session setting for the window's statements (e.g. partial JSON updates).
    window_session: &'static str,
    /// A binlog event type the window must have written (proof that the session setting took).
    window_event: Option<&'static str>,
    /// How many changes recover must undo.
    window_changes: usize,
    expected: fn(&str) -> Vec<Row>,
}

/// Streams `case` from `flavor`, compares the index with `case.expected`, then undoes the
/// window with `bintrail recover` and checks that the table is as it was before the window.
async fn stream_and_read_back(flavor: Flavor, case: Case) {
    let source = TestServer::shared(flavor);
    let db = unique("jsonv");
    let table = format!("{db}.t");
    source
        .exec(&format!(
            "CREATE DATABASE {db}; {}",
            case.create.replace("{t}", &table)
        ))
        .await;
    let index = Index::new();
    let id = server_id();
    let mut flags = start_here(source, true).await.flags();
    flags.extend(["--schemas".to_string(), db.clone()]);
    let stream = Stream::start(source, &index, id, &flags);
    let sql = |stmts: &[String]| stmts.join(";\n").replace("{t}", &table);
    source.exec(&sql(&case.inserts)).await;
    let before = snapshot(source, &table).await;
    let since = wait_for_next_second(source, source_clock(source).await).await;
    let (from, _) = source_end(source).await;
    source
        .exec(&format!("{}{}", case.window_session, sql(&case.window)))
        .await;
    if let Some(event) = case.window_event {
        let mut conn = source.conn(None).await;
        let types: Vec<String> = conn
            .query_map(
                format!("SHOW BINLOG EVENTS IN '{}' FROM {}", from.file, from.pos),
                |row: mysql_async::Row| row.get::<String, _>(2).unwrap_or_default(),
            )
            .await
            .unwrap();
        conn.disconnect().await.ok();
        assert!(types.iter().any(|t| t == event), "no {event} in {types:?}");
    }
    caught_up(flavor, source, &index, &stream).await;
    assert_changes(&index.changes_of(id).await, &(case.expected)(&table));
    assert_eq!(stream.stop().await, 0, "bintrail stream exit status");

    let (file, stderr) = recover_since(&index, source, &db, "t", since);
    let reverses = format!("reverses {} changes", case.window_changes);
    assert!(stderr.contains(&reverses), "{stderr}");
    let (ok, err) = apply_sql(source, &file);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(ok, "applying the recovery SQL failed: {err}\n{text}");
    let after = snapshot(source, &table).await;
    assert!(
        after.1 == before.1,
        "rows after recovery differ from the rows before the window\nbefore: {:?}\nafter: {:?}\n{text}",
        before.1,
        after.1
    );
    assert_eq!(after.0, before.0, "checksum after recovery");
}

/// Waits for the stream to catch up; when it logs an error or times out, fails with its log.
async fn caught_up(flavor: Flavor, source: &TestServer, index: &Index, stream: &Stream) {
    use futures_util::FutureExt;
    let wait = std::panic::AssertUnwindSafe(index.wait_caught_up(source, stream.server_id));
    tokio::select! {
        r = wait.catch_unwind() => if let Err(panic) = r {
            eprintln!("{flavor:?} stream log:\n{}", stream.log());
            std::panic::resume_unwind(panic);
        },
        log = logged_error(stream) => {
            panic!("{flavor:?}: bintrail stream failed before catching up:\n{log}")
        }
    }
}

/// MariaDB JSON text whose numbers no JSON number of the index keeps exactly, written compact
/// with sorted keys (so that the text recover writes back is byte for byte the same).
const WIDE: &str = "[12345678901234567890123,0.1000000000000000055511151231257827,\
                    18446744073709551616,1e400,-1e-400,1.5,18446744073709551615]";
const NESTED_WIDE: &str = r#"{"a":{"n":-99999999999999999999999.5},"s":"json:x"}"#;
/// Spellings MariaDB's `json_valid` accepts that are not standard JSON, or that JSON reads in
/// a way of its own: a duplicate key, an unknown escape, numbers spelled `1E2`, `1.`, `-0`.
const SPELLINGS: &str = r#"{"dup": {"k": 1, "k": 2}, "e": "\\x", "sp": [1E2, 1., -0, 0.10]}"#;

fn mariadb_case() -> Case {
    let q = |s: &str| format!("'{}'", s.replace('\'', "''"));
    Case {
        create: "CREATE TABLE {t} (id INT PRIMARY KEY, j JSON)",
        inserts: vec![format!(
            "INSERT INTO {{t}} VALUES (1, {}), (2, {}), (3, {})",
            q(WIDE),
            q(NESTED_WIDE),
            q(SPELLINGS)
        )],
        window: vec![
            "UPDATE {t} SET j = '[0]' WHERE id = 1".into(),
            "DELETE FROM {t} WHERE id = 2".into(),
            "INSERT INTO {t} VALUES (4, '[9e999]')".into(),
        ],
        window_session: "",
        window_event: None,
        window_changes: 3,
        expected: |t| {
            let wide = json!([
                "json:12345678901234567890123",
                "json:0.1000000000000000055511151231257827",
                "json:18446744073709551616",
                "json:1e400",
                "json:-1e-400",
                1.5,
                18446744073709551615u64
            ]);
            let nested =
                json!({"a": {"n": "json:-99999999999999999999999.5"}, "s": "json:\"json:x\""});
            let spellings = json!({
                "dup": "json:{\"k\": 1, \"k\": 2}",
                "e": "x",
                "sp": [100.0, 1.0, -0.0, 0.1],
            });
            vec![
                ins(t, "1", json!({"id": 1, "j": wide})),
                ins(t, "2", json!({"id": 2, "j": nested})),
                ins(t, "3", json!({"id": 3, "j": spellings})),
                upd(
                    t,
                    "1",
                    &["j"],
                    json!({"id": 1, "j": wide}),
                    json!({"id": 1, "j": [0]}),
                ),
                del(t, "2", json!({"id": 2, "j": nested})),
                ins(t, "4", json!({"id": 4, "j": ["json:9e999"]})),
            ]
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_json_numbers_beyond_the_index_are_stored_as_their_exact_text() {
    stream_and_read_back(Flavor::Mariadb, mariadb_case()).await;
}

/// Padding that keeps a partial update's diff smaller than the document, so that MySQL logs
/// the diff.
fn pad() -> String {
    "p".repeat(2000)
}

/// `{"k": [[…[ [1,<x>], {"deep":true} ]…]], "pad": …}`: arrays from level 2 down to level
/// `deepest - 1`, which holds two containers at level `deepest`.
fn deep_text(deepest: usize, x: &str) -> String {
    let n = deepest - 2;
    format!(
        r#"{{"k":{}[1,{x}],{{"deep":true}}{},"pad":"{}"}}"#,
        "[".repeat(n),
        "]".repeat(n),
        pad()
    )
}

/// The stored form of [`deep_text`]: the same document, except that containers at level 100
/// are strings of their JSON text after `json:`.
fn deep_stored(deepest: usize, x: &str) -> Value {
    let inner: Vec<Value> = if deepest >= 100 {
        vec![
            json!(format!("json:[1,{x}]")),
            json!("json:{\"deep\":true}"),
        ]
    } else {
        vec![
            serde_json::from_str(&format!("[1,{x}]")).unwrap(),
            json!({"deep": true}),
        ]
    };
    let mut v = Value::Array(inner);
    for _ in 0..deepest - 3 {
        v = Value::Array(vec![v]);
    }
    json!({"k": v, "pad": pad()})
}

fn mysql_case() -> Case {
    // $.k is level 2; deepest - 3 steps reach level deepest - 1, [0] its first level-100 array.
    let path = format!("$.k{}[0][1]", "[0]".repeat(100 - 3));
    Case {
        create: "CREATE TABLE {t} (id INT PRIMARY KEY, j JSON)",
        inserts: vec![
            format!(
                "INSERT INTO {{t}} VALUES (1, '{}')",
                deep_text(100, r#""x""#)
            ),
            format!(
                "INSERT INTO {{t}} VALUES (2, '{}')",
                deep_text(99, r#""x""#)
            ),
            // MySQL itself keeps 12345678901234567890123 as a double: a plain number.
            r#"INSERT INTO {t} VALUES (3, '{"big":12345678901234567890123,"s":"json:x"}')"#.into(),
        ],
        window: vec![
            format!("UPDATE {{t}} SET j = JSON_SET(j, '{path}', 2) WHERE id = 1"),
            "DELETE FROM {t} WHERE id = 2".into(),
        ],
        window_session: "SET SESSION binlog_row_value_options = 'PARTIAL_JSON';",
        window_event: Some("Update_rows_partial"),
        window_changes: 2,
        expected: |t| {
            let (d100, d99) = (deep_stored(100, r#""x""#), deep_stored(99, r#""x""#));
            vec![
                ins(t, "1", json!({"id": 1, "j": d100})),
                ins(t, "2", json!({"id": 2, "j": d99})),
                ins(
                    t,
                    "3",
                    json!({"id": 3, "j": {"big": 1.2345678901234568e22, "s": "json:\"json:x\""}}),
                ),
                upd(
                    t,
                    "1",
                    &["j"],
                    json!({"id": 1, "j": d100}),
                    json!({"id": 1, "j": deep_stored(100, "2")}),
                ),
                del(t, "2", json!({"id": 2, "j": d99})),
            ]
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_json_nested_to_the_maximum_depth_is_indexed_and_reads_back() {
    stream_and_read_back(Flavor::Mysql, mysql_case()).await;
}

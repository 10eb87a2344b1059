//! Privacy at capture: `--exclude-columns`, `--mask-columns`, `--truncate-columns`. A workload
//! writes unique sentinel strings into policed columns (a key column, a JSON column, a table
//! without a key among them), then provokes an oversize row; no sentinel may be anywhere the
//! stream writes: the index database (every row of every table), its logs in JSON and text, the
//! metrics page, `--dry-run` output. Masked values are found by value with `bintrail mask`, and
//! `recover` never writes a policed value back as if it were real.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use serde_json::{json, Value};

use crate::metrics::{http_get, metrics_addr};
use crate::recover::{source_clock, utc, wait_for_next_second};
use crate::service::ServiceStream;
use crate::stream_basic::server_id;
use crate::support::stream::{start_here, Index, Stream};
use crate::support::{bintrail, temp_dir, unique, wait_until, Flavor, TestServer};

/// The stored form of `value` under the key in `key_file`, from `bintrail mask`.
fn mask(key_file: &str, value: &str) -> String {
    let out = bintrail(&["mask", "--mask-key-file", key_file, value]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(text.starts_with("hmac:") && text.len() == 5 + 64, "{text}");
    text
}

/// Every row of every table of the index database, as text.
async fn dump(index: &Index) -> String {
    let mut conn = index.conn().await;
    let tables: Vec<String> = conn
        .exec(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
            (&index.db,),
        )
        .await
        .unwrap();
    let mut out = String::new();
    for t in tables {
        let rows: Vec<mysql_async::Row> = conn.query(format!("SELECT * FROM `{t}`")).await.unwrap();
        for row in rows {
            for v in row.unwrap() {
                match v {
                    mysql_async::Value::Bytes(b) => out.push_str(&String::from_utf8_lossy(&b)),
                    other => out.push_str(&format!("{other:?}")),
                }
                out.push('\t');
            }
            out.push('\n');
        }
    }
    conn.disconnect().await.ok();
    out
}

fn assert_clean(what: &str, text: &str, sentinel: &str) {
    assert!(
        !text.contains(sentinel),
        "a sentinel ({sentinel}) leaked into {what}:\n{text}"
    );
}

/// (row_before, row_after) of each change of `table`, in event_id order.
async fn images(index: &Index, table: &str) -> Vec<(Value, Value, Value)> {
    index
        .changes()
        .await
        .into_iter()
        .filter(|r| r.table.ends_with(&format!(".{table}")))
        .map(|r| (r.before, r.after, r.changed))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_policed_columns_never_reach_the_index_logs_metrics_or_dry_run() {
    policed_everywhere(Flavor::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_policed_columns_never_reach_the_index_logs_metrics_or_dry_run() {
    policed_everywhere(Flavor::Mariadb).await;
}

async fn policed_everywhere(flavor: Flavor) {
    // An index server of its own with a 1 MiB packet, so that one row can be made oversize.
    let index_server = TestServer::start(
        Flavor::Mysql,
        &["--skip-log-bin", "--max-allowed-packet=1M"],
    );
    let index = Index::on(&index_server);
    let source = TestServer::shared(flavor);
    let db = unique("prv");
    let s = unique("SNTL");
    source
        .exec(&format!(
            "CREATE DATABASE {db}; \
             CREATE TABLE {db}.accounts (id INT PRIMARY KEY, email VARCHAR(100), pw VARCHAR(100), \
               bio TEXT, doc JSON, note VARCHAR(20), pic LONGBLOB); \
             CREATE TABLE {db}.tokens (token VARCHAR(100) PRIMARY KEY, owner INT); \
             CREATE TABLE {db}.events (msg VARCHAR(100), secret VARCHAR(100), n INT)"
        ))
        .await;
    let dir = temp_dir("privacy");
    let key_path = dir.join("mask.key");
    std::fs::write(&key_path, "a test key of more than sixteen bytes\n").unwrap();
    let key = key_path.to_str().unwrap().to_string();
    let exclude = format!("{db}.accounts.pw,{db}.events.secret");
    let masks = format!("{db}.accounts.email,{db}.accounts.doc,{db}.tokens.token,{db}.events.msg");
    let truncate = format!("{db}.accounts.bio:4,{db}.nosuch.col:3");
    let start = start_here(source, true).await.flags();
    let mut flags: Vec<String> = start.clone();
    flags.extend([
        "--schemas".into(),
        db.clone(),
        "--exclude-columns".into(),
        exclude,
        "--mask-columns".into(),
        masks,
        "--truncate-columns".into(),
        truncate,
        "--mask-key-file".into(),
        key.clone(),
    ]);
    let id = server_id();
    let mut json_args: Vec<&str> = flags.iter().map(String::as_str).collect();
    json_args.extend(["--log-format", "json", "--metrics-addr", "127.0.0.1:0"]);
    let stream = ServiceStream::start(&source.dsn(None), &index.dsn(), id, &json_args, &[]);
    let addr = metrics_addr(&stream).await;

    let doc = format!(r#"{{"card":"{s}card1"}}"#);
    source
        .exec(&format!(
            "INSERT INTO {db}.accounts (id, email, pw, bio, doc, note) VALUES \
               (1, '{s}mail1', '{s}pw1', 'abcd{s}bio1', '{doc}', 'n1'), \
               (2, '{s}mail2', '{s}pw2', 'wxyz{s}bio2', NULL, 'n2')"
        ))
        .await;
    // A second boundary, for reconstruct --as-of between the inserts and the rest.
    let t0 = source_clock(source).await;
    wait_for_next_second(source, t0).await;
    let t1 = source_clock(source).await;
    wait_for_next_second(source, t1).await;
    source
        .exec(&format!(
            "UPDATE {db}.accounts SET email = '{s}mail1b', pw = '{s}pw1b', bio = 'efgh{s}bio1b', \
               note = 'n1b' WHERE id = 1; \
             DELETE FROM {db}.accounts WHERE id = 2; \
             INSERT INTO {db}.tokens VALUES ('{s}tok1', 1), ('{s}tok2', 2); \
             UPDATE {db}.tokens SET owner = 3 WHERE token = '{s}tok1'; \
             INSERT INTO {db}.events VALUES ('{s}msg1', '{s}secret1', 1)"
        ))
        .await;
    index.wait_caught_up(source, id).await;

    // Full images: excluded columns absent, masked ones as `bintrail mask` says, truncated cut.
    let m = |v: &str| mask(&key, v);
    let acc = images(&index, "accounts").await;
    let row1 = json!({"id": 1, "email": m(&format!("{s}mail1")), "bio": "abcd",
        "doc": m(&doc.replace(' ', "")), "note": "n1", "pic": null});
    let row1b = json!({"id": 1, "email": m(&format!("{s}mail1b")), "bio": "efgh",
        "doc": m(&doc.replace(' ', "")), "note": "n1b", "pic": null});
    let row2 = json!({"id": 2, "email": m(&format!("{s}mail2")), "bio": "wxyz",
        "doc": null, "note": "n2", "pic": null});
    assert_eq!(
        acc,
        vec![
            (Value::Null, row1.clone(), Value::Null),
            (Value::Null, row2.clone(), Value::Null),
            (row1, row1b, json!(["email", "bio", "note"])),
            (row2, Value::Null, Value::Null),
        ]
    );
    let ev = images(&index, "events").await;
    assert_eq!(
        ev,
        vec![(
            Value::Null,
            json!({"msg": m(&format!("{s}msg1")), "n": 1}),
            Value::Null
        )]
    );

    // A masked key is found by value through `bintrail mask`.
    let tok1 = m(&format!("{s}tok1"));
    let out = bintrail(&[
        "query",
        "--index-dsn",
        &index.dsn(),
        "--schema",
        &db,
        "--table",
        "tokens",
        "--pk",
        &tok1,
        "--format",
        "json",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(found.len(), 2, "insert and update of tok1: {text}");
    assert!(
        found.iter().all(|c| c["pk_values"] == json!(tok1)),
        "{text}"
    );

    // The metrics page.
    let (code, metrics) = http_get(&addr, "/metrics");
    assert_eq!(code, 200);
    assert_clean("the metrics page", &metrics, &s);

    // recover: the UPDATE leaves policed columns as the live row has them, and says so.
    let (index_dsn, source_dsn) = (index.dsn(), source.dsn(None));
    let recover = |extra: &[&str]| {
        let mut args = vec![
            "recover",
            "--index-dsn",
            &index_dsn,
            "--source-dsn",
            &source_dsn,
        ];
        let owned: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        args.extend(owned.iter().map(String::as_str));
        let out = bintrail(&args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, sql, err) = recover(&[
        "--schema",
        &db,
        "--table",
        "accounts",
        "--event-type",
        "update",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(sql.contains("SET `note` = 'n1' WHERE `id` = 1;"), "{sql}");
    for col in ["`email`", "`pw`", "`bio`", "`doc`"] {
        assert!(
            !sql.contains(&format!("{col} =")),
            "{col} must not be set: {sql}"
        );
    }
    assert!(sql.contains("UPDATE statements leave email (masked), pw (excluded), bio (truncated), doc (masked) as the live row has them"), "{sql}");
    // Restoring the deleted row would lose its policed columns: refused unless accepted.
    let delete = [
        "--schema",
        db.as_str(),
        "--table",
        "accounts",
        "--event-type",
        "delete",
    ];
    let (code, _, err) = recover(&delete);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("--restore-with-defaults"), "{err}");
    let mut accepted = delete.to_vec();
    accepted.push("--restore-with-defaults");
    let (code, sql, err) = recover(&accepted);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        sql.contains("INSERT INTO")
            && sql.contains("(`id`, `note`, `pic`) VALUES (2, 'n2', NULL);"),
        "{sql}"
    );
    assert!(
        sql.contains(
            "leave email (masked), pw (excluded), bio (truncated), doc (masked) to their defaults"
        ),
        "{sql}"
    );
    // A masked key cannot find the live row.
    let (code, _, err) = recover(&[
        "--schema",
        &db,
        "--table",
        "tokens",
        "--event-type",
        "update",
    ]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("key column(s) token (masked)"), "{err}");
    assert_clean("recover's output", &(sql + &err), &s);

    // reconstruct does not output masked or cut values as the state of the moment.
    let out = bintrail(&[
        "reconstruct",
        "--index-dsn",
        &index_dsn,
        "--source-dsn",
        &source_dsn,
        "--table",
        &format!("{db}.accounts"),
        "--as-of",
        &utc(t1),
        "--format",
        "json",
    ]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("captured under a privacy policy"), "{err}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // status lists the policy in force, the key by its id only.
    let out = bintrail(&["status", "--index-dsn", &index.dsn()]);
    let status = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        status.contains(&format!("mask {db}.accounts.email")),
        "{status}"
    );
    assert!(status.contains("key "), "{status}");
    assert!(!status.contains("a test key"), "{status}");

    // An oversize row (its pic alone exceeds the index's packet) stops the stream with exit 3.
    source
        .exec(&format!(
            "INSERT INTO {db}.accounts VALUES (7, '{s}mail7', '{s}pw7', '{s}bio7', NULL, 'n7', \
             REPEAT('x', 1536 * 1024))"
        ))
        .await;
    let log_path = stream.log_path();
    wait_until(
        Duration::from_secs(60),
        "the JSON stream to stop on the oversize row",
        || {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            async move {
                if log.contains("max_allowed_packet") {
                    Ok(())
                } else {
                    Err(log)
                }
            }
        },
    )
    .await;
    let json_log = std::fs::read_to_string(&log_path).unwrap();
    assert!(json_log.contains("max_allowed_packet"), "{json_log}");
    assert!(
        json_log.contains("nosuch.col:3"),
        "the unmatched pattern is warned about: {json_log}"
    );
    assert_clean("the JSON log", &json_log, &s);
    stream.stop().await;

    // The same in text format, from another stream reading the same history.
    let text_stream = Stream::start(source, &index, server_id(), &flags);
    let text_log_path = text_stream.log_path();
    let code = text_stream.exit_code().await;
    let text_log = std::fs::read_to_string(text_log_path).unwrap();
    assert_eq!(code, 3, "{text_log}");
    assert!(text_log.contains("max_allowed_packet"), "{text_log}");
    assert_clean("the text log", &text_log, &s);

    // --dry-run output, table and JSON.
    for format in ["table", "json"] {
        let mut args: Vec<&str> = vec!["stream", "--dry-run", "--format", format, "--source-dsn"];
        let (src, idx, sid) = (source.dsn(None), index.dsn(), server_id().to_string());
        args.extend([
            src.as_str(),
            "--index-dsn",
            idx.as_str(),
            "--server-id",
            sid.as_str(),
        ]);
        args.extend(flags.iter().map(String::as_str));
        let out = bintrail(&args);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "{all}");
        assert_clean("--dry-run output", &all, &s);
    }

    // Finally every row of every index table.
    let everything = dump(&index).await;
    assert!(
        everything.contains("hmac:"),
        "the dump holds the masked values"
    );
    assert_clean("the index database", &everything, &s);
}

#[test]
fn masking_without_a_key_and_a_bad_pattern_are_usage_errors() {
    let out = bintrail(&[
        "stream",
        "--source-dsn",
        "mysql://u@127.0.0.1:1",
        "--index-dsn",
        "mysql://u@127.0.0.1:1/i",
        "--server-id",
        "9",
        "--mask-columns",
        "a.b.c",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--mask-columns needs a key"));
    let out = bintrail(&[
        "stream",
        "--source-dsn",
        "mysql://u@127.0.0.1:1",
        "--index-dsn",
        "mysql://u@127.0.0.1:1/i",
        "--server-id",
        "9",
        "--exclude-columns",
        "a.b",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--exclude-columns 'a.b'"));
}

#[test]
fn service_install_carries_the_policy_and_the_key_file_path_not_the_key() {
    let root = temp_dir("privacy-svc");
    let key = root.join("mask.key");
    std::fs::write(&key, "SECRET-KEY-OF-MORE-THAN-16-BYTES").unwrap();
    let out = bintrail(&[
        "service",
        "install",
        "--server-id",
        "77",
        "--source-dsn",
        "mysql://repl@db1.example.com:3306/",
        "--index-dsn",
        "mysql://idx@index.example.com:3306/bintrail_index",
        "--root",
        root.to_str().unwrap(),
        "--exec",
        env!("CARGO_BIN_EXE_bintrail"),
        "--exclude-columns",
        "shop.customers.pw",
        "--mask-columns",
        "shop.customers.email",
        "--truncate-columns",
        "shop.customers.notes:20",
        "--mask-key-file",
        key.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = std::fs::read_to_string(root.join("etc/bintrail/stream-77.env")).unwrap();
    for line in [
        "BINTRAIL_EXCLUDE_COLUMNS=\"shop.customers.pw\"",
        "BINTRAIL_MASK_COLUMNS=\"shop.customers.email\"",
        "BINTRAIL_TRUNCATE_COLUMNS=\"shop.customers.notes:20\"",
        &format!(
            "BINTRAIL_MASK_KEY_FILE=\"{}\"",
            key.canonicalize().unwrap().display()
        ),
    ] {
        assert!(env.lines().any(|l| l == line), "{line} in:\n{env}");
    }
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/bintrail-stream-77.service"))
        .unwrap();
    assert!(!env.contains("SECRET-KEY") && !unit.contains("SECRET-KEY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_row_stops_the_stream_without_its_values() {
    let source = TestServer::shared(Flavor::Mysql);
    let index = Index::new();
    let db = unique("prvbad");
    let s = unique("SNTL");
    source
        .exec(&format!(
            "CREATE DATABASE {db}; \
             CREATE TABLE {db}.t (id INT PRIMARY KEY, email VARCHAR(100), pw VARCHAR(100))"
        ))
        .await;
    let mut flags = start_here(source, true).await.flags();
    flags.extend([
        "--schemas".into(),
        db.clone(),
        "--exclude-columns".into(),
        format!("{db}.t.pw"),
        "--mask-columns".into(),
        format!("{db}.t.email"),
    ]);
    let stream = ServiceStream::start(
        &source.dsn(None),
        &index.dsn(),
        server_id(),
        &flags.iter().map(String::as_str).collect::<Vec<_>>(),
        &[(
            "BINTRAIL_MASK_KEY",
            "a key given in the environment".to_string(),
        )],
    );
    // A row image that leaves columns out: the decoder refuses it (exit 3).
    source
        .exec(&format!(
            "INSERT INTO {db}.t VALUES (1, '{s}mail1', '{s}pw1'); \
             SET SESSION binlog_row_image = MINIMAL; \
             UPDATE {db}.t SET email = '{s}mail2', pw = '{s}pw2' WHERE id = 1"
        ))
        .await;
    let log_path = stream.log_path();
    let log = wait_until(
        Duration::from_secs(60),
        "the stream to refuse the row",
        || {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            async move {
                if log.contains("partial row image") {
                    Ok(log)
                } else {
                    Err(log)
                }
            }
        },
    )
    .await;
    assert!(
        log.contains(&format!("{db}.t")),
        "the error names the table: {log}"
    );
    assert_clean("the log of a refused row", &log, &s);
    stream.stop().await;
    assert_clean("the index database", &dump(&index).await, &s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_from_before_policies_gets_policy_version_and_capture_policies() {
    let source = TestServer::shared(Flavor::Mysql);
    let index = Index::new();
    {
        let mut conn = index.conn().await;
        conn.query_drop(
            "ALTER TABLE binlog_events DROP COLUMN policy_version; \
             ALTER TABLE xa_prepared DROP COLUMN policy_version; \
             DROP TABLE capture_policies",
        )
        .await
        .unwrap();
        conn.disconnect().await.ok();
    }
    let db = unique("prvold");
    source
        .exec(&format!(
            "CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY, note TEXT)"
        ))
        .await;
    let mut flags = start_here(source, true).await.flags();
    flags.extend([
        "--schemas".into(),
        db.clone(),
        "--truncate-columns".into(),
        format!("{db}.t.note:2"),
    ]);
    let id = server_id();
    let stream = Stream::start(source, &index, id, &flags);
    source
        .exec(&format!("INSERT INTO {db}.t VALUES (1, 'abcdef')"))
        .await;
    index.wait_caught_up(source, id).await;
    let mut conn = index.conn().await;
    let stored: Vec<(u32, String)> = conn
        .query("SELECT policy_version, row_after FROM binlog_events")
        .await
        .unwrap();
    let policies: Vec<(u32, String)> = conn
        .query("SELECT policy_version, policy FROM capture_policies")
        .await
        .unwrap();
    conn.disconnect().await.ok();
    assert_eq!(
        policies,
        vec![(stored[0].0, format!("truncate {db}.t.note:2\n"))]
    );
    assert_ne!(stored[0].0, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&stored[0].1).unwrap(),
        json!({"id": 1, "note": "ab"})
    );
    stream.stop().await;
}

//! Proof by random trials that `reconstruct` and `recover` give back exactly what a table held at
//! a moment. A seeded workload of multi-table transactions (inserts, updates that change the
//! key, deletes, NULLs, JSON, BLOB, DECIMAL and DATETIME values) runs against a table with a
//! primary key and one without (whose rows repeat), on a source of its own. At each moment (a
//! second boundary and a GTID boundary at once) the content of both tables is recorded. Then,
//! for every moment:
//! * `reconstruct --as-of TIME` and `--as-of-gtid GTID`, as INSERTs loaded into an empty copy of
//!   the table, equal the recorded rows, every column of every row;
//! * `recover --since` the moment, applied to a copy of the live tables, gives the recorded rows.
//!
//! `BINTRAIL_TRIAL_MOMENTS` (default 50) sets the number of moments and `BINTRAIL_TRIAL_SEED`
//! the seed (printed on failure).

use mysql_async::prelude::Queryable;

use crate::recover::{apply_sql, source_clock, utc, wait_for_next_second};
use crate::stream_basic::server_id;
use crate::support::stream::{start_here, Index, Stream};
use crate::support::{bintrail, temp_dir, Flavor, TestServer};

/// A small deterministic generator (xorshift64*), so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const COLUMNS: &str = "v INT NULL, d DECIMAL(12,3) NULL, j JSON NULL, b BLOB NULL, \
                       t DATETIME(3) NULL, s VARCHAR(30) NULL";

/// Values for the six columns, often NULL, drawn from small sets so that keyless rows repeat.
fn values(rng: &mut Rng) -> String {
    let mut v = Vec::new();
    let pick = |rng: &mut Rng, make: &dyn Fn(u64) -> String| {
        if rng.chance(20) {
            "NULL".to_string()
        } else {
            make(rng.below(4))
        }
    };
    v.push(pick(rng, &|n| n.to_string()));
    v.push(pick(rng, &|n| format!("'{n}.125'")));
    // Compact text with sorted keys: what MariaDB's JSON (a LONGTEXT) gives back.
    v.push(pick(rng, &|n| {
        format!("'{{\"a\":{n},\"b\":[1,\"x{n}\"]}}'")
    }));
    v.push(pick(rng, &|n| format!("X'00FF{n:02X}'")));
    v.push(pick(rng, &|n| {
        format!("'2024-01-0{} 03:04:05.12{n}'", n + 1)
    }));
    v.push(pick(rng, &|n| format!("'text {n}|\\\\'")));
    v.join(", ")
}

/// The workload's model of the keyed table: which ids exist.
struct Model {
    ids: Vec<i64>,
    next_id: i64,
}

/// One transaction: an insert first (so that it always changes a row and has a GTID with rows),
/// then up to three random statements on either table.
fn transaction(rng: &mut Rng, m: &mut Model, db: &str) -> String {
    let mut sql = vec!["BEGIN".to_string()];
    if rng.chance(50) {
        sql.push(format!(
            "INSERT INTO {db}.k VALUES ({}, {})",
            m.next_id,
            values(rng)
        ));
        m.ids.push(m.next_id);
        m.next_id += 1;
    } else {
        sql.push(format!("INSERT INTO {db}.nk VALUES ({})", values(rng)));
    }
    for _ in 0..rng.below(4) {
        let any = |rng: &mut Rng, m: &Model| m.ids[rng.below(m.ids.len() as u64) as usize];
        match rng.below(8) {
            0 => {
                sql.push(format!(
                    "INSERT INTO {db}.k VALUES ({}, {})",
                    m.next_id,
                    values(rng)
                ));
                m.ids.push(m.next_id);
                m.next_id += 1;
            }
            1 | 2 if !m.ids.is_empty() => {
                let id = any(rng, m);
                let set = values(rng)
                    .split(", ")
                    .zip(["v", "d", "j", "b", "t", "s"])
                    .map(|(val, col)| format!("{col} = {val}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                sql.push(format!("UPDATE {db}.k SET {set} WHERE id = {id}"));
            }
            3 if !m.ids.is_empty() => {
                // An update that changes the key.
                let id = any(rng, m);
                sql.push(format!(
                    "UPDATE {db}.k SET id = {}, v = 99 WHERE id = {id}",
                    m.next_id
                ));
                m.ids.retain(|&i| i != id);
                m.ids.push(m.next_id);
                m.next_id += 1;
            }
            4 if !m.ids.is_empty() => {
                let id = any(rng, m);
                sql.push(format!("DELETE FROM {db}.k WHERE id = {id}"));
                m.ids.retain(|&i| i != id);
            }
            5 => sql.push(format!("INSERT INTO {db}.nk VALUES ({})", values(rng))),
            6 => sql.push(format!(
                "UPDATE {db}.nk SET s = 'updated', v = {} WHERE v = {} LIMIT 1",
                rng.below(4),
                rng.below(4)
            )),
            _ => sql.push(format!(
                "DELETE FROM {db}.nk WHERE v = {} LIMIT 1",
                rng.below(4)
            )),
        }
    }
    sql.push("COMMIT".into());
    sql.join(";\n")
}

/// Every row of a table in a fixed order, every column as the server sends it.
async fn content(conn: &mut mysql_async::Conn, table: &str) -> Vec<Vec<mysql_async::Value>> {
    let order = if table.ends_with(".k") || table.contains(".k_") {
        "id"
    } else {
        "v, d, CAST(j AS CHAR), b, t, s"
    };
    let rows: Vec<mysql_async::Row> = conn
        .query(format!("SELECT * FROM {table} ORDER BY {order}"))
        .await
        .unwrap_or_else(|e| panic!("reading {table}: {e}"));
    rows.into_iter().map(|r| r.unwrap()).collect()
}

/// The last GTID the source committed (this source runs only the trial).
async fn last_gtid(conn: &mut mysql_async::Conn, flavor: Flavor) -> String {
    match flavor {
        Flavor::Mysql => {
            let set: String = conn
                .query_first("SELECT @@GLOBAL.gtid_executed")
                .await
                .unwrap()
                .unwrap();
            let set = set.replace('\n', "");
            let (uuid, ranges) = set.split_once(':').expect("uuid:ranges");
            let last = ranges.rsplit(['-', ':']).next().unwrap();
            format!("{uuid}:{last}")
        }
        Flavor::Mariadb | Flavor::Mariadb118 => conn
            .query_first("SELECT @@GLOBAL.gtid_binlog_pos")
            .await
            .unwrap()
            .unwrap(),
    }
}

struct MomentRecord {
    time: i64,
    gtid: String,
    k: Vec<Vec<mysql_async::Value>>,
    nk: Vec<Vec<mysql_async::Value>>,
}

async fn trials(flavor: Flavor) {
    let seed = env_u64("BINTRAIL_TRIAL_SEED", 0x5eed_b1a7);
    let moments = env_u64("BINTRAIL_TRIAL_MOMENTS", 50);
    let mut rng = Rng(seed | 1);
    let source = TestServer::start(flavor, &[]);
    let index = Index::new();
    let db = "trial";
    source
        .exec(&format!(
            "CREATE DATABASE {db}; CREATE DATABASE chk; \
             CREATE TABLE {db}.k (id INT PRIMARY KEY, {COLUMNS}); \
             CREATE TABLE {db}.nk ({COLUMNS}); CREATE TABLE chk.noise (n INT)"
        ))
        .await;
    let id = server_id();
    let mut flags = start_here(&source, true).await.flags();
    flags.extend(["--schemas".into(), db.into()]);
    let stream = Stream::start(&source, &index, id, &flags);

    let mut conn = source.conn(None).await;
    let mut model = Model {
        ids: Vec::new(),
        next_id: 1,
    };
    // A first history for both tables, so that every moment is after their oldest change.
    for _ in 0..5 {
        conn.query_drop(format!("INSERT INTO {db}.nk VALUES ({})", values(&mut rng)))
            .await
            .unwrap();
        let sql = format!(
            "INSERT INTO {db}.k VALUES ({}, {})",
            model.next_id,
            values(&mut rng)
        );
        conn.query_drop(sql).await.unwrap();
        model.ids.push(model.next_id);
        model.next_id += 1;
    }
    let mut records = Vec::new();
    for _ in 0..moments {
        for _ in 0..1 + rng.below(3) {
            let sql = transaction(&mut rng, &mut model, db);
            conn.query_drop(&sql)
                .await
                .unwrap_or_else(|e| panic!("seed {seed:#x}: {sql}: {e}"));
        }
        if records.len() % 3 == 2 {
            // A moment right after a transaction of a schema the stream does not index: it
            // has no change in the index, and its place is found from the next one that has.
            conn.query_drop(format!("INSERT INTO chk.noise VALUES ({})", records.len()))
                .await
                .unwrap();
        }
        let time = source_clock(&source).await;
        records.push(MomentRecord {
            time,
            gtid: last_gtid(&mut conn, flavor).await,
            k: content(&mut conn, &format!("{db}.k")).await,
            nk: content(&mut conn, &format!("{db}.nk")).await,
        });
        wait_for_next_second(&source, time).await;
    }
    let sql = transaction(&mut rng, &mut model, db);
    conn.query_drop(&sql).await.unwrap();
    index.wait_caught_up(&source, id).await;

    let dir = temp_dir("trials");
    for (n, r) in records.iter().enumerate() {
        let context = format!(
            "{} seed {seed:#x} moment {n} ({} / {})",
            flavor.name(),
            utc(r.time),
            r.gtid
        );
        for (table, expected) in [("k", &r.k), ("nk", &r.nk)] {
            for (how, value) in [("--as-of", utc(r.time)), ("--as-of-gtid", r.gtid.clone())] {
                let copy = format!("chk.{table}_{n}_{}", how.len());
                conn.query_drop(format!("CREATE TABLE {copy} LIKE {db}.{table}"))
                    .await
                    .unwrap();
                let file = dir.join(format!("{table}_{n}_{}.sql", how.len()));
                let out = bintrail(&[
                    "reconstruct",
                    "--index-dsn",
                    &index.dsn(),
                    "--source-dsn",
                    &source.dsn(None),
                    "--table",
                    &format!("{db}.{table}"),
                    how,
                    &value,
                    "--format",
                    "sql",
                    "--into",
                    &copy,
                    "--output",
                    file.to_str().unwrap(),
                ]);
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(
                    out.status.success(),
                    "{context}: reconstruct {table} {how}: {stderr}"
                );
                let (ok, err) = apply_sql(&source, &file);
                assert!(
                    ok,
                    "{context}: loading the reconstruction of {table}: {err}"
                );
                let got = content(&mut conn, &copy).await;
                assert_eq!(
                    &got, expected,
                    "{context}: reconstruct {how} of {table} differs from the recorded content ({stderr})"
                );
            }
        }

        // recover --since the second after the moment, applied to a copy of the live tables.
        conn.query_drop(
            "DROP TABLE IF EXISTS chk.k, chk.nk; \
             CREATE TABLE chk.k LIKE trial.k; INSERT INTO chk.k SELECT * FROM trial.k; \
             CREATE TABLE chk.nk LIKE trial.nk; INSERT INTO chk.nk SELECT * FROM trial.nk",
        )
        .await
        .unwrap();
        let file = dir.join(format!("undo_{n}.sql"));
        let out = bintrail(&[
            "recover",
            "--index-dsn",
            &index.dsn(),
            "--source-dsn",
            &source.dsn(None),
            "--schema",
            db,
            "--since",
            &utc(r.time + 1),
            "--limit",
            "1000000",
            "--output",
            file.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{context}: recover: {stderr}");
        let script = std::fs::read_to_string(&file)
            .unwrap()
            .replace("`trial`.", "`chk`.");
        std::fs::write(&file, script).unwrap();
        let (ok, err) = apply_sql(&source, &file);
        assert!(ok, "{context}: applying the recovery: {err}");
        assert_eq!(
            content(&mut conn, "chk.k").await,
            r.k,
            "{context}: recover of k"
        );
        assert_eq!(
            content(&mut conn, "chk.nk").await,
            r.nk,
            "{context}: recover of nk"
        );
    }
    conn.disconnect().await.ok();
    assert_eq!(stream.stop().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_reconstruct_and_recover_give_back_every_recorded_moment() {
    trials(Flavor::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_reconstruct_and_recover_give_back_every_recorded_moment() {
    trials(Flavor::Mariadb).await;
}

/// `reconstruct` of `db.t` with extra flags: (exit status, stdout, stderr).
fn reconstruct(
    index: &Index,
    source: &TestServer,
    table: &str,
    extra: &[&str],
) -> (i32, String, String) {
    let (index_dsn, dsn) = (index.dsn(), source.dsn(None));
    let mut args = vec![
        "reconstruct",
        "--index-dsn",
        &index_dsn,
        "--source-dsn",
        &dsn,
    ];
    args.extend(["--table", table]);
    args.extend_from_slice(extra);
    let out = bintrail(&args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// JSON lines as a sorted list of documents.
fn json_rows(stdout: &str) -> Vec<serde_json::Value> {
    let mut rows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    rows.sort_by_key(|r| r["id"].as_i64());
    rows
}

/// The formats and filters, and every refusal with its reason: a moment before the index's
/// history of the table, a recorded gap, a column renamed since, a TRUNCATE since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconstruct_formats_filters_and_refusals() {
    use serde_json::json;
    let source = TestServer::shared(Flavor::Mysql);
    let index = Index::new();
    let db = crate::support::unique("rc");
    let t = format!("{db}.t");
    source
        .exec(&format!(
            "CREATE DATABASE {db}; CREATE TABLE {t} (id INT PRIMARY KEY, v VARCHAR(20), n INT)"
        ))
        .await;
    let id = server_id();
    let mut flags = start_here(source, true).await.flags();
    flags.extend(["--schemas".into(), db.clone()]);
    let stream = Stream::start(source, &index, id, &flags);
    let t0 = source_clock(source).await;
    wait_for_next_second(source, t0).await;
    source
        .exec(&format!(
            "INSERT INTO {t} VALUES (1, 'a', 10), (2, 'b|c', 20), (3, NULL, 30)"
        ))
        .await;
    let t1 = source_clock(source).await;
    wait_for_next_second(source, t1).await;
    source
        .exec(&format!(
            "UPDATE {t} SET v = 'changed' WHERE id = 1; DELETE FROM {t} WHERE id = 2; \
             INSERT INTO {t} VALUES (4, 'd', 40); UPDATE {t} SET id = 5 WHERE id = 3"
        ))
        .await;
    index.wait_caught_up(source, id).await;
    let at_t1 = vec![
        json!({"id": 1, "v": "a", "n": 10}),
        json!({"id": 2, "v": "b|c", "n": 20}),
        json!({"id": 3, "v": null, "n": 30}),
    ];

    let (code, out, err) = reconstruct(
        &index,
        source,
        &t,
        &["--as-of", &utc(t1), "--format", "json"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(json_rows(&out), at_t1);
    assert!(
        err.contains("3 rows (0 as they are now, 3 restored"),
        "{err}"
    );

    let (code, out, err) = reconstruct(
        &index,
        source,
        &t,
        &["--as-of", &utc(t1), "--format", "json", "--pk", "b|c"],
    );
    assert_eq!(code, 3, "a key of one column given two values: {err}");
    assert!(err.contains("--pk"), "{err}");
    assert!(out.is_empty());
    let (code, out, err) = reconstruct(
        &index,
        source,
        &t,
        &["--as-of", &utc(t1), "--format", "json", "--pk", "2"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(json_rows(&out), vec![at_t1[1].clone()]);
    let (code, out, err) = reconstruct(
        &index,
        source,
        &t,
        &[
            "--as-of",
            &utc(t1),
            "--format",
            "json",
            "--where",
            "n >= 20",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(json_rows(&out), at_t1[1..].to_vec());
    let (code, out, err) = reconstruct(
        &index,
        source,
        &t,
        &["--as-of", &utc(t1), "--where", "id = 1"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "id,v,n\r\n1,a,10\r\n");

    // Usage errors name the flag.
    let (code, _, err) = reconstruct(
        &index,
        source,
        &t,
        &["--as-of", &utc(t1), "--format", "sql"],
    );
    assert_eq!(code, 2);
    assert!(err.contains("--into"), "{err}");
    let (code, _, err) = reconstruct(&index, source, &t, &["--as-of", "yesterday-ish"]);
    assert_eq!(code, 2);
    assert!(err.contains("--as-of"), "{err}");
    let (code, _, err) = reconstruct(&index, source, &t, &["--as-of-gtid", "not-a-gtid"]);
    assert_eq!(code, 2);
    assert!(err.contains("--as-of-gtid"), "{err}");

    // Before the index's first change of the table: nothing proves it was empty then.
    let (code, out, err) = reconstruct(&index, source, &t, &["--as-of", &utc(t0)]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("older than the oldest change the index holds"),
        "{err}"
    );
    assert!(out.is_empty(), "nothing written when refused: {out}");

    // A column added since: the state maps by name, and the note says so.
    source
        .exec(&format!("ALTER TABLE {t} ADD COLUMN w INT"))
        .await;
    let (code, out, err) = reconstruct(
        &index,
        source,
        &t,
        &["--as-of", &utc(t1), "--format", "json"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("columns added since the moment") && err.contains(": w"),
        "{err}"
    );
    let mut with_w = at_t1.clone();
    with_w.iter_mut().for_each(|r| r["w"] = json!(null));
    assert_eq!(json_rows(&out), with_w);

    // A column renamed since: the old values would be lost.
    source
        .exec(&format!("ALTER TABLE {t} RENAME COLUMN n TO m"))
        .await;
    let (code, _, err) = reconstruct(&index, source, &t, &["--as-of", &utc(t1)]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("n are gone and m, w are new"), "{err}");
    source
        .exec(&format!("ALTER TABLE {t} RENAME COLUMN m TO n"))
        .await;

    // A gap the stream recorded after the moment.
    let mut conn = index.conn().await;
    conn.exec_drop(
        "INSERT INTO stream_gaps (server_id, gap_from, gap_to, detected_at, reason) \
         VALUES (?, 'binlog.000001:4', 'binlog.000002:4', UTC_TIMESTAMP(3), 'test')",
        (id,),
    )
    .await
    .unwrap();
    let (code, _, err) = reconstruct(&index, source, &t, &["--as-of", &utc(t1)]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("skipped history after the moment"), "{err}");
    conn.query_drop("DELETE FROM stream_gaps").await.unwrap();
    conn.disconnect().await.ok();

    // TRUNCATE since the moment: its rows are gone without a change each.
    source.exec(&format!("TRUNCATE TABLE {t}")).await;
    index.wait_caught_up(source, id).await;
    let (code, _, err) = reconstruct(&index, source, &t, &["--as-of", &utc(t1)]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("TRUNCATE"), "{err}");
    assert_eq!(stream.stop().await, 0);
}

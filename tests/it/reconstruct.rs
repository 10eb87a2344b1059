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
        Flavor::Mariadb => conn
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
             CREATE TABLE {db}.nk ({COLUMNS})"
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

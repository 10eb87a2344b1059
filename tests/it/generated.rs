//! Generated columns on a MariaDB 11.8 source. 11.8 leaves generated columns (STORED and
//! VIRTUAL) out of UPDATE and DELETE row images even with `binlog_row_image=FULL`; INSERT
//! images keep them. bintrail stores such images without those columns (never a guessed value),
//! `recover` leaves them to the server, and `reconstruct` says which restored rows lack them
//! (its `--format sql` INSERTs leave them to the server, which computes them).

use mysql_async::prelude::Queryable;
use serde_json::json;

use crate::recover::{apply_sql, recover_since, snapshot, source_clock, wait_for_next_second};
use crate::stream_basic::server_id;
use crate::support::stream::{assert_changes, del, ins, start_here, upd, Index, Stream};
use crate::support::{bintrail, temp_dir, unique, Flavor, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb118_updates_and_deletes_without_generated_columns_are_indexed_and_restored() {
    let source = TestServer::shared(Flavor::Mariadb118);
    let db = unique("gen118");
    let table = format!("{db}.g");
    source
        .exec(&format!(
            "CREATE DATABASE {db}; CREATE TABLE {table} (id INT PRIMARY KEY, ii INT, \
             name VARCHAR(20), gs BIGINT AS (ii + 1) STORED, \
             gv VARCHAR(40) AS (CONCAT(name, ':', ii)) VIRTUAL, KEY k_gv (gv))"
        ))
        .await;
    let index = Index::new();
    let id = server_id();
    let mut flags = start_here(source, true).await.flags();
    flags.extend(["--schemas".to_string(), db.clone()]);
    let stream = Stream::start(source, &index, id, &flags);
    source
        .exec(&format!(
            "INSERT INTO {table} (id, ii, name) VALUES (1, 1, 'a'), (2, 2, 'b'), (3, 3, 'c')"
        ))
        .await;
    let mut conn = source.conn(None).await;
    let inserted: String = conn
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .unwrap()
        .unwrap();
    conn.disconnect().await.ok();
    let before = snapshot(source, &table).await;
    let since = wait_for_next_second(source, source_clock(source).await).await;
    source
        .exec(&format!(
            "UPDATE {table} SET ii = 10 WHERE id = 1; UPDATE {table} SET name = 'bb' WHERE id = 2; \
             DELETE FROM {table} WHERE id = 3"
        ))
        .await;
    index.wait_caught_up(source, id).await;

    // The full stored images: INSERTs with the generated columns, UPDATEs and DELETEs without
    // them (absent, not null), and changed_columns naming only what the images show.
    let full = |i: i64, ii: i64, name: &str| json!({"id": i, "ii": ii, "name": name, "gs": ii + 1, "gv": format!("{name}:{ii}")});
    let bare = |i: i64, ii: i64, name: &str| json!({"id": i, "ii": ii, "name": name});
    assert_changes(
        &index.changes_of(id).await,
        &[
            ins(&table, "1", full(1, 1, "a")),
            ins(&table, "2", full(2, 2, "b")),
            ins(&table, "3", full(3, 3, "c")),
            upd(&table, "1", &["ii"], bare(1, 1, "a"), bare(1, 10, "a")),
            upd(&table, "2", &["name"], bare(2, 2, "b"), bare(2, 2, "bb")),
            del(&table, "3", bare(3, 3, "c")),
        ],
    );

    // reconstruct as of the INSERT: the restored rows come from before images without gs and gv,
    // which it says; its INSERTs leave them to the server, which computes the exact rows.
    let copy = format!("{db}.g_copy");
    source
        .exec(&format!("CREATE TABLE {copy} LIKE {table}"))
        .await;
    let file = temp_dir("gen118").join("reconstruct.sql");
    let (index_dsn, source_dsn) = (index.dsn(), source.dsn(None));
    let out = bintrail(&[
        "reconstruct",
        "--index-dsn",
        &index_dsn,
        "--source-dsn",
        &source_dsn,
        "--table",
        &table,
        "--as-of-gtid",
        &inserted,
        "--format",
        "sql",
        "--into",
        &copy,
        "--output",
        file.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "reconstruct: {stderr}");
    assert!(
        stderr.contains(
            "3 restored row(s) come from before images without the generated column(s) gs, gv"
        ),
        "the note on the generated columns: {stderr}"
    );
    let (ok, err) = apply_sql(source, &file);
    assert!(ok, "loading the reconstruction: {err}");
    assert_eq!(
        snapshot(source, &copy).await.1,
        before.1,
        "the reconstructed rows"
    );

    // recover the UPDATEs and the DELETE: the exact rows, generated columns computed by the server.
    let (sql, stderr) = recover_since(&index, source, &db, "g", since);
    assert!(
        stderr.contains("reverses 3 changes (2 updates, 1 delete)"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&sql).unwrap();
    for generated in ["`gs`", "`gv`"] {
        assert!(
            !text.contains(generated),
            "{generated} in the recovery SQL:\n{text}"
        );
    }
    let (ok, err) = apply_sql(source, &sql);
    assert!(ok, "applying the recovery SQL failed: {err}\n{text}");
    let after = snapshot(source, &table).await;
    assert_eq!(after.1, before.1, "rows after recovery\n{text}");
    assert_eq!(after.0, before.0, "checksum after recovery");
    assert_eq!(stream.stop().await, 0);
}

/// What an image without its generated columns cannot do still stops the stream (exit 3) with
/// the reason: a table keyed by the digest of its whole image (no primary or NOT NULL unique
/// key), and any missing column that is not generated (a session with MINIMAL images).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb118_images_without_what_the_row_needs_stop_the_stream() {
    let source = TestServer::shared(Flavor::Mariadb118);
    let cases = [
        (
            "CREATE TABLE {t} (ii INT, gs BIGINT AS (ii + 1) STORED); \
             INSERT INTO {t} (ii) VALUES (1); UPDATE {t} SET ii = 2",
            vec![
                "leaves out the generated columns [\"gs\"]",
                "no primary key or NOT NULL unique key",
            ],
        ),
        (
            "CREATE TABLE {t} (id INT PRIMARY KEY, ii INT, gs BIGINT AS (ii + 1) STORED); \
             INSERT INTO {t} (id, ii) VALUES (1, 1); \
             SET SESSION binlog_row_image = 'MINIMAL'; UPDATE {t} SET ii = 2",
            vec!["partial row image, missing columns [\"ii\", \"gs\"]"],
        ),
    ];
    for (sql, wants) in cases {
        let db = unique("gen118");
        source.exec(&format!("CREATE DATABASE {db}")).await;
        let index = Index::new();
        let id = server_id();
        let mut flags = start_here(source, true).await.flags();
        flags.extend(["--schemas".to_string(), db.clone()]);
        let stream = Stream::start(source, &index, id, &flags);
        source.exec(&sql.replace("{t}", &format!("{db}.t"))).await;
        let log_path = stream.log_path();
        assert_eq!(stream.exit_code().await, 3, "a definite error: {sql}");
        let log = std::fs::read_to_string(log_path).unwrap();
        for want in wants {
            assert!(
                log.contains(want),
                "{want:?} not in the stream's log:\n{log}"
            );
        }
        let updates: Vec<_> = index
            .changes_of(id)
            .await
            .into_iter()
            .filter(|r| r.kind != 1)
            .collect();
        assert!(
            updates.is_empty(),
            "nothing of the update is indexed: {updates:?}"
        );
    }
}

//! `--schemas` and `--tables`: filtered changes never reach the index, and the checkpoint still
//! moves past them (the last transactions of the workload are filtered out for some streams).

use crate::stream_basic::{create_schemas, mixed_workload, server_id};
use crate::support::stream::{assert_changes, start_here, Index, Row, Stream};
use crate::support::{Flavor, TestServer};

async fn filters(flavor: Flavor) {
    let source = TestServer::shared(flavor);
    let (s1, s2) = create_schemas(source).await;
    let start = start_here(source, flavor == Flavor::Mysql).await;
    let tables = |schema: &str, names: &[&str]| -> Vec<String> {
        names.iter().map(|n| format!("{schema}.{n}")).collect()
    };
    let cases: Vec<(Vec<String>, Vec<String>)> = vec![
        (
            vec!["--schemas".into(), s2.clone()],
            tables(&s2, &["users", "events", "audit"]),
        ),
        (
            vec!["--tables".into(), format!("{s1}.orders,{s2}.users")],
            [tables(&s1, &["orders"]), tables(&s2, &["users"])].concat(),
        ),
        (
            vec![
                "--schemas".into(),
                s1.clone(),
                "--tables".into(),
                format!("{s1}.items"),
            ],
            tables(&s1, &["items"]),
        ),
    ];
    let mut runs = Vec::new();
    for (flags, keep) in cases {
        let index = Index::new();
        let id = server_id();
        let mut all = start.flags();
        all.extend(flags);
        let stream = Stream::start(source, &index, id, &all);
        runs.push((index, id, stream, keep));
    }
    let expected = mixed_workload(source, &s1, &s2).await;
    for (index, id, stream, keep) in runs {
        // Reaching the source's end proves that filtered transactions advance the checkpoint.
        index.wait_caught_up(source, id).await;
        let want: Vec<Row> = expected
            .iter()
            .filter(|r| keep.contains(&r.table))
            .cloned()
            .collect();
        assert!(!want.is_empty());
        assert_changes(&index.changes().await, &want);
        assert_eq!(stream.stop().await, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_filters_keep_only_the_selected_tables() {
    filters(Flavor::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_filters_keep_only_the_selected_tables() {
    filters(Flavor::Mariadb).await;
}

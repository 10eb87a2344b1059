//! The cold tier on S3: `rotate --archive s3://bucket/prefix` against moto in server mode on
//! loopback (from PyPI, in the tests' Python environment). The objects hold exactly the
//! changes `query` showed (listed, read whole and by range through the store, decoded with the
//! parquet crate); a crash between upload and record loses and doubles nothing; a missing
//! bucket and an unreachable endpoint are named; `archive verify` passes, then names an
//! overwritten and a deleted object; `recover` and `reconstruct` over the S3 archive give the
//! SQL and the rows they gave before the rotation.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use bintrail::archive::store::Store;
use bintrail::archive::writer::hex;

use bintrail::time::format_utc;

use crate::archive::{
    answer_of, ask_all, manifest, query, read_with_parquet_crate, reconstruct_args, recover_args,
    streamed_workload, text, Streamed, D, H,
};
use crate::support::stream::Index;
use crate::support::{bintrail_cmd, repo_root, temp_dir, unique, wait_until, TestServer};

const BUCKET: &str = "bintrail-cold";
const LOCATION: &str = "s3://bintrail-cold/tier/one";

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// moto's S3 on 127.0.0.1, stopped when dropped.
struct Moto {
    child: Child,
    python: PathBuf,
    port: u16,
}

impl Moto {
    /// Starts moto on a free port; `None` (the test is skipped, and says so) only when the
    /// Python environment with moto cannot be provisioned.
    async fn start() -> Option<Moto> {
        let out = Command::new(repo_root().join("scripts/archive-venv.sh"))
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/archive-venv.sh");
        if !out.status.success() {
            eprintln!(
                "SKIPPED: moto could not be installed (scripts/archive-venv.sh: {})",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        let python = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let port = free_port();
        let log = temp_dir("moto").join("moto.log");
        let child = Command::new(python.with_file_name("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start moto_server");
        let moto = Moto {
            child,
            python,
            port,
        };
        wait_until(Duration::from_secs(60), "moto to listen", || async {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .map(|_| ())
                .map_err(|e| format!("{e}; {}", std::fs::read_to_string(&log).unwrap_or_default()))
        })
        .await;
        Some(moto)
    }

    /// The environment bintrail reads S3 settings from.
    fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn create_bucket(&self, name: &str) {
        let out = Command::new(&self.python)
            .args([
                "-c",
                "import boto3, sys; boto3.client('s3', endpoint_url=sys.argv[1], \
                 aws_access_key_id='testing', aws_secret_access_key='testing', \
                 region_name='us-east-1').create_bucket(Bucket=sys.argv[2])",
                &format!("http://127.0.0.1:{}", self.port),
                name,
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `bintrail ARGS` with exactly `env` as its AWS settings.
fn run(args: &[&str], env: &[(String, String)], crash_at: Option<&str>) -> Output {
    let mut cmd = bintrail_cmd(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    if let Some(name) = crash_at {
        cmd.env("BINTRAIL_TEST_FAILPOINT", name);
    }
    cmd.stdin(Stdio::null()).output().expect("run bintrail")
}

fn rotate(index: &Index, location: &str, env: &[(String, String)], crash: Option<&str>) -> Output {
    let dsn = index.dsn();
    let args = [
        "rotate",
        "--index-dsn",
        &dsn,
        "--retain",
        "2d",
        "--archive",
        location,
    ];
    run(&args, env, crash)
}

fn verify(index: &Index, env: &[(String, String)]) -> Output {
    let dsn = index.dsn();
    run(
        &[
            "archive",
            "verify",
            "--index-dsn",
            &dsn,
            "--archive",
            LOCATION,
        ],
        env,
        None,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_archive_holds_exactly_the_changes_survives_a_crash_and_verify_names_bad_objects() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    moto.create_bucket(BUCKET);
    let env = moto.env();
    let store = Store::open_with(LOCATION, &|k| {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    })
    .unwrap();

    let schema = unique("arch_s3");
    let Streamed {
        index,
        stream,
        before,
        ..
    } = streamed_workload(TestServer::index(), &schema, &[]).await;

    // A bucket that does not exist, an endpoint that does not answer: named, nothing dropped.
    let nosuch = rotate(&index, "s3://no-such-bucket/x", &env, None);
    assert_eq!(nosuch.status.code(), Some(3), "{}", text(&nosuch));
    let said = text(&nosuch);
    assert!(
        said.contains("NoSuchBucket") && said.contains("create it"),
        "{said}"
    );
    assert!(
        said.contains("/no-such-bucket/x/schema%3D"),
        "the URL is named: {said}"
    );
    let mut closed = env.clone();
    closed[3].1 = format!("http://127.0.0.1:{}", free_port());
    let unreachable = rotate(&index, LOCATION, &closed, None);
    assert_eq!(unreachable.status.code(), Some(1), "{}", text(&unreachable));
    assert!(
        text(&unreachable).contains("no answer after 4 attempts"),
        "{}",
        text(&unreachable)
    );
    assert!(manifest(&index).await.is_empty());
    assert_eq!(query(&index, &schema), before, "nothing dropped");

    // Crash after the first object is uploaded, before it is recorded; the rerun finishes.
    let crashed = rotate(&index, LOCATION, &env, Some("archive-written"));
    assert!(!crashed.status.success(), "{}", text(&crashed));
    assert_eq!(store.list("").await.unwrap().len(), 1);
    assert!(manifest(&index).await.is_empty());
    assert_eq!(query(&index, &schema), before, "nothing dropped");
    let done = rotate(&index, LOCATION, &env, None);
    assert!(done.status.success(), "{}", text(&done));
    assert!(
        text(&done).contains("dropped 4 partition(s)"),
        "{}",
        text(&done)
    );
    assert!(text(&done).contains(LOCATION), "{}", text(&done));

    let after = query(&index, &schema);
    let archived: BTreeMap<u64, Value> = before
        .iter()
        .filter(|(id, _)| !after.contains_key(id))
        .map(|(id, v)| (*id, v.clone()))
        .collect();
    assert_eq!(archived.len(), 8, "{after:#?}");

    // Exactly the recorded objects: the crashed run's upload was replaced, not doubled.
    let recorded = manifest(&index).await;
    assert_eq!(recorded.len(), 5, "{recorded:?}");
    let objects = store.list("").await.unwrap();
    let paths: Vec<String> = recorded.iter().map(|(p, _)| p.clone()).collect();
    let listed: Vec<String> = objects.iter().map(|o| o.path.clone()).collect();
    assert_eq!(listed, paths);

    // bintrail reads the S3 archive as if it were in the index: the same answer as before.
    let dsn = index.dsn();
    let read = run(
        &[
            "query",
            "--index-dsn",
            &dsn,
            "--schema",
            &schema,
            "--limit",
            "100000",
            "--format",
            "json",
            "--archive",
            LOCATION,
        ],
        &env,
        None,
    );
    assert!(read.status.success(), "{}", text(&read));
    let seen: BTreeMap<u64, Value> = String::from_utf8_lossy(&read.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["event_id"].as_u64().unwrap(), v)
        })
        .collect();
    assert_eq!(seen, before, "query --archive s3://…");
    assert!(
        String::from_utf8_lossy(&read.stderr).contains("bintrail: archive: files read: "),
        "{}",
        text(&read)
    );

    // Read back whole (decoded by the parquet crate), by range, and by size.
    let mirror = temp_dir("s3-mirror");
    for o in &objects {
        let bytes = store.get(&o.path).await.unwrap().unwrap();
        assert_eq!(bytes.len() as u64, o.bytes, "{}", o.path);
        assert_eq!(store.head(&o.path).await.unwrap(), Some(o.bytes));
        let tail = store.get_range(&o.path, o.bytes - 4, 4).await.unwrap();
        assert_eq!(tail, b"PAR1", "{}: the footer's magic", o.path);
        let file = mirror.join(&o.path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, bytes).unwrap();
    }
    assert_eq!(read_with_parquet_crate(&mirror), archived, "parquet crate");

    // verify: sound, then an overwritten and a deleted object, each named.
    let ok = verify(&index, &env);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        text(&ok).contains("5 file(s), 8 change(s)"),
        "{}",
        text(&ok)
    );
    let garbage = b"not a parquet file".to_vec();
    let staged = store.stage(&paths[0]).unwrap();
    std::fs::write(staged.path(), &garbage).unwrap();
    let sha = hex(&Sha256::digest(&garbage));
    store
        .commit(staged, &paths[0], garbage.len() as u64, &sha)
        .await
        .unwrap();
    store.delete(&paths[1]).await.unwrap();
    assert_eq!(store.head(&paths[1]).await.unwrap(), None);
    let bad = verify(&index, &env);
    assert_eq!(bad.status.code(), Some(3), "{}", text(&bad));
    let said = text(&bad);
    assert!(
        said.contains(&format!("{}: 18 bytes, the manifest records", paths[0])),
        "{said}"
    );
    assert!(said.contains(&format!("{}: missing", paths[1])), "{said}");
    assert!(!said.contains(&format!("{}:", paths[2])), "{said}");

    assert_eq!(stream.stop().await, 0);
    std::fs::remove_dir_all(&mirror).ok();
}

/// `recover` and `reconstruct` with `--archive s3://…` answer after a rotation exactly what
/// they answered from the index before it: the same undo SQL (or the same refusal), the same
/// rows as of a moment, whole or of one key, by time and by GTID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_archive_recover_and_reconstruct_answer_as_before_the_rotation() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let (bucket, location) = ("bintrail-cold-undo", "s3://bintrail-cold-undo/tier");
    moto.create_bucket(bucket);
    let env = moto.env();
    let source = TestServer::shared(crate::support::Flavor::Mysql);
    let schema = unique("arch_s3rr");
    let Streamed {
        index,
        stream,
        now: n,
        before,
    } = streamed_workload(TestServer::index(), &schema, &[]).await;

    let hour = |t: i64| t.div_euclid(H) * H;
    let t1 = hour(n - 3 * D) + 60;
    let t3 = hour(n - 2 * D) - 5 * H + 10;
    let gtid = before
        .values()
        .find(|c| c["event_timestamp"] == format_utc(t1 + 120))
        .and_then(|c| c["gtid"].as_str())
        .expect("the archived update's GTID")
        .to_string();
    let (dsn, src) = (index.dsn(), source.dsn(None));
    let table = format!("{schema}.t");
    let until = format_utc(t3 + 5);
    let (t1_after_update, t3_before) = (format_utc(t1 + 125), format_utc(t3 - 1));
    let recover = |extra: &[&str]| recover_args(&dsn, &src, extra);
    let reconstruct = |extra: &[&str]| reconstruct_args(&dsn, &src, &table, extra);
    let commands: Vec<Vec<String>> = vec![
        recover(&[
            "--table",
            &table,
            "--pk",
            "1",
            "--allow-partial-transactions",
        ]),
        recover(&["--table", &table, "--pk", "1"]),
        recover(&[
            "--table",
            &table,
            "--pk",
            "1",
            "--until",
            &until,
            "--allow-partial-transactions",
        ]),
        recover(&["--table", &table, "--since", &t3_before]),
        recover(&["--schema", &schema, "--allow-partial-transactions"]),
        reconstruct(&["--as-of", &t1_after_update]),
        reconstruct(&["--as-of-gtid", &gtid]),
        reconstruct(&["--as-of", &t3_before, "--pk", "4"]),
        reconstruct(&["--as-of", &t3_before]),
    ];
    let ask = |archive: Option<&str>| {
        ask_all(&commands, |args| {
            let mut args = args.to_vec();
            if let Some(location) = archive {
                args.extend(["--archive", location]);
            }
            let out = run(&args, &env, None);
            answer_of(
                out.status.success(),
                &String::from_utf8_lossy(&out.stdout),
                &String::from_utf8_lossy(&out.stderr),
            )
        })
    };
    let expected = ask(None);
    assert!(
        expected.iter().filter(|(ok, _)| *ok).count() == 7,
        "{expected:#?}"
    );
    assert!(
        expected[1].1.contains("partial"),
        "the refusal for half a transaction: {}",
        expected[1].1
    );

    let done = rotate(&index, location, &env, None);
    assert!(done.status.success(), "{}", text(&done));
    assert_eq!(query(&index, &schema).len(), 2, "8 changes moved to S3");
    let without = ask(None);
    assert_ne!(
        without, expected,
        "without --archive the archived changes are not seen"
    );
    let with = ask(Some(location));
    for (i, (want, got)) in expected.iter().zip(&with).enumerate() {
        assert_eq!(want, got, "after rotation to S3: {:?}", commands[i]);
    }
    assert_eq!(stream.stop().await, 0);
}

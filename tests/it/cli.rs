//! The command-line contract: `--help` documents every flag, and every bad input exits with
//! status 2 before any connection, naming the flag and never showing a password.

use crate::support::{bintrail, temp_dir};

const SOURCE: &str = "mysql://repl:hunter2@127.0.0.1:1/";
const INDEX: &str = "mysql://idx:hunter2@127.0.0.1:1/bt";

#[test]
fn stream_help_lists_every_flag_with_its_env_var() {
    let out = bintrail(&["stream", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "source-dsn",
        "index-dsn",
        "server-id",
        "schemas",
        "tables",
        "batch-size",
        "checkpoint-interval",
        "ssl-mode",
        "ssl-ca",
        "ssl-cert",
        "ssl-key",
        "index-ssl-mode",
        "index-ssl-ca",
        "index-ssl-cert",
        "index-ssl-key",
        "reset",
        "start-file",
        "start-pos",
        "start-gtid",
        "log-format",
    ] {
        assert!(
            help.contains(&format!("--{flag}")),
            "--{flag} missing from help:\n{help}"
        );
        let env = format!("BINTRAIL_{}", flag.to_uppercase().replace('-', "_"));
        assert!(help.contains(&env), "{env} missing from help:\n{help}");
    }
    for default in [
        "[default: 1000]",
        "[default: 10]",
        "[default: preferred]",
        "[default: auto]",
    ] {
        assert!(help.contains(default), "{default} missing from help");
    }
    assert!(help.contains("disabled, preferred, required, verify-ca, verify-full"));
}

/// Runs `stream` with valid required flags plus `extra`, expecting exit 2 and a message that
/// mentions `needle`.
fn rejects(extra: &[&str], needle: &str) {
    let mut args = vec![
        "stream",
        "--source-dsn",
        SOURCE,
        "--index-dsn",
        INDEX,
        "--server-id",
        "42",
    ];
    args.extend_from_slice(extra);
    let out = bintrail(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{extra:?}: expected '{needle}' in: {stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "{extra:?} leaked the password: {stderr}"
    );
    assert!(out.stdout.is_empty(), "{extra:?} printed to stdout");
}

#[test]
fn bad_numbers_name_their_flag() {
    rejects(&["--batch-size", "0"], "--batch-size");
    rejects(&["--batch-size", "abc"], "--batch-size");
    rejects(&["--checkpoint-interval", "0"], "--checkpoint-interval");
    rejects(&["--server-id", "0"], "--server-id");
    rejects(&["--server-id", "4294967296"], "--server-id");
}

#[test]
fn bad_choices_and_filters_name_their_flag() {
    rejects(&["--ssl-mode", "bogus"], "--ssl-mode");
    rejects(&["--tables", "orders"], "--tables");
    rejects(&["--tables", "a.b", "--schemas", "c"], "can never match");
}

#[test]
fn impossible_combinations_are_rejected() {
    rejects(&["--start-pos", "4"], "--start-file");
    rejects(
        &["--start-gtid", "0-1-1", "--start-file", "binlog.000001"],
        "--start-gtid",
    );
    rejects(&["--ssl-mode", "verify-ca"], "--ssl-ca");
    rejects(&["--start-gtid", "not-a-gtid"], "--start-gtid");
}

#[test]
fn unreadable_ca_names_the_path() {
    let dir = temp_dir("cli");
    let missing = dir.join("missing-ca.pem");
    rejects(
        &[
            "--ssl-mode",
            "verify-ca",
            "--ssl-ca",
            missing.to_str().unwrap(),
        ],
        "missing-ca.pem",
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn malformed_dsns_are_rejected_without_the_password() {
    for dsn in ["repl:hunter2@127.0.0.1", "mysql://repl:hunter2@host:99999/"] {
        let out = bintrail(&[
            "stream",
            "--source-dsn",
            dsn,
            "--index-dsn",
            INDEX,
            "--server-id",
            "42",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{dsn}: {stderr}");
        assert!(stderr.contains("--source-dsn"), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
    let out = bintrail(&[
        "stream",
        "--source-dsn",
        SOURCE,
        "--index-dsn",
        "mysql://idx:hunter2@h:1/",
        "--server-id",
        "42",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--index-dsn") && stderr.contains("names no database"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn flags_can_come_from_the_environment() {
    let out = crate::support::bintrail_cmd(&["stream"])
        .env("BINTRAIL_SOURCE_DSN", SOURCE)
        .env("BINTRAIL_INDEX_DSN", INDEX)
        .env("BINTRAIL_SERVER_ID", "42")
        .env("BINTRAIL_BATCH_SIZE", "abc")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--batch-size"), "{stderr}");
}

#[test]
fn missing_required_flags_exit_2() {
    let out = bintrail(&["stream"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--source-dsn"), "{stderr}");
}

/// A `BINTRAIL_RESET` left in an environment file used to wipe the checkpoint on every restart
/// of the unit; now it is refused before any connection, with what to do instead.
#[test]
fn a_reset_from_the_environment_is_refused() {
    let out = crate::support::bintrail_cmd(&[
        "stream",
        "--source-dsn",
        SOURCE,
        "--index-dsn",
        INDEX,
        "--server-id",
        "42",
    ])
    .env("BINTRAIL_RESET", "true")
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("BINTRAIL_RESET is set in the environment")
            && stderr.contains("run `bintrail stream --reset ...` once by hand"),
        "{stderr}"
    );
}

/// Runs `stream` with these DSNs and `extra`; expects exit 2 and `needle` in stderr.
fn rejects_dsns(source: &str, index: &str, extra: &[&str], needle: &str) {
    let mut args = vec![
        "stream",
        "--source-dsn",
        source,
        "--index-dsn",
        index,
        "--server-id",
        "42",
    ];
    args.extend_from_slice(extra);
    let out = bintrail(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{source} {index} {extra:?}: {stderr}"
    );
    assert!(stderr.contains(needle), "expected '{needle}' in: {stderr}");
    assert!(!stderr.contains("hunter2"), "password leaked: {stderr}");
}

#[test]
fn dsn_parameters_are_honoured_or_refused_never_ignored() {
    let go_index = "idx:hunter2@tcp(127.0.0.1:1)/bt";
    // A Go-driver tls config registered in the Go program: no meaning here.
    rejects_dsns(
        "repl:hunter2@tcp(127.0.0.1:1)/?tls=custom",
        INDEX,
        &[],
        "--source-dsn: the parameter 'tls=custom' names a TLS configuration registered in the Go program",
    );
    rejects_dsns(
        SOURCE,
        "idx:hunter2@tcp(127.0.0.1:1)/bt?tls=my-ca",
        &[],
        "--index-dsn: the parameter 'tls=my-ca'",
    );
    rejects_dsns(
        "mysql://repl:hunter2@127.0.0.1:1/?ssl-mode=SOMETIMES",
        INDEX,
        &[],
        "the parameter 'ssl-mode=SOMETIMES' is not a mode",
    );
    // A DSN and a flag that disagree.
    rejects_dsns(
        "repl:hunter2@tcp(127.0.0.1:1)/?tls=skip-verify",
        INDEX,
        &["--ssl-mode", "verify-full"],
        "the parameter 'tls=skip-verify' means --ssl-mode required, but --ssl-mode verify-full was given",
    );
    // tls=true checks the chain and the name, so it needs the CA.
    rejects_dsns(
        "repl:hunter2@tcp(127.0.0.1:1)/?tls=true",
        go_index,
        &[],
        "--ssl-mode verify-full needs --ssl-ca",
    );
    // Any other parameter is refused, on either form and either DSN.
    for (source, index, name) in [
        (
            "repl:hunter2@tcp(127.0.0.1:1)/?parseTime=true",
            INDEX,
            "parseTime",
        ),
        (
            SOURCE,
            "mysql://idx:hunter2@127.0.0.1:1/bt?charset=utf8mb4",
            "charset",
        ),
        (
            SOURCE,
            "mysql://idx:hunter2@127.0.0.1:1/bt?ssl-ca=/x.pem",
            "ssl-ca",
        ),
    ] {
        rejects_dsns(source, index, &[], &format!("has the parameter '{name}'"));
    }
    // The read-side commands parse them the same way.
    let out = bintrail(&[
        "query",
        "--index-dsn",
        "mysql://idx:hunter2@127.0.0.1:1/bt?timeout=5s",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has the parameter 'timeout'"));
}

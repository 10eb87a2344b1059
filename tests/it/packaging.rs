//! The unit, the environment file and the Debian package: `bintrail service install` writes a
//! unit that `systemd-analyze verify` accepts without a warning and an environment file only
//! root can read, refuses what `stream` would refuse, and `scripts/package-deb.sh` builds a .deb
//! with the binary, the unit template, an example environment file and the README.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::support::{bintrail, repo_root, temp_dir};

const BIN: &str = env!("CARGO_BIN_EXE_bintrail");

fn install(root: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "service",
        "install",
        "--server-id",
        "42",
        "--source-dsn",
        "mysql://repl:S3c$ret\"pw@db1.example.com:3306/",
        "--index-dsn",
        "mysql://idx:Idx%40pw@index.example.com:3306/bintrail_index",
        "--root",
        root.to_str().unwrap(),
        "--exec",
        BIN,
    ];
    args.extend_from_slice(extra);
    bintrail(&args)
}

fn text(out: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn service_install_writes_a_verified_unit_and_a_private_env_file() {
    let root = temp_dir("unit");
    let out = install(
        &root,
        &[
            "--schemas",
            "shop,billing",
            "--metrics-addr",
            "127.0.0.1:9187",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("systemctl enable --now bintrail-stream-42"),
        "{stdout}"
    );
    assert!(
        stdout.contains("journalctl -u bintrail-stream-42"),
        "{stdout}"
    );

    let unit_path = root.join("etc/systemd/system/bintrail-stream-42.service");
    let env_path = root.join("etc/bintrail/stream-42.env");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let env = std::fs::read_to_string(&env_path).unwrap();
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=60",
        "Restart=on-failure",
        "RestartPreventExitStatus=2 3",
        "TimeoutStopSec=120",
        "EnvironmentFile=/etc/bintrail/stream-42.env",
        &format!("ExecStart={BIN} stream --server-id 42"),
        "User=bintrail",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "unit lacks {line:?}:\n{unit}"
        );
    }
    assert!(
        !unit.contains("S3c") && !unit.contains("Idx"),
        "no password in the unit:\n{unit}"
    );
    let mode = std::fs::metadata(&env_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the environment file holds passwords");
    for line in [
        r#"BINTRAIL_SOURCE_DSN="mysql://repl@db1.example.com:3306/""#,
        r#"BINTRAIL_SOURCE_PASSWORD="S3c\$ret\"pw""#,
        r#"BINTRAIL_INDEX_DSN="mysql://idx@index.example.com:3306/bintrail_index""#,
        r#"BINTRAIL_INDEX_PASSWORD="Idx@pw""#,
        r#"BINTRAIL_SCHEMAS="shop,billing""#,
        r#"BINTRAIL_METRICS_ADDR="127.0.0.1:9187""#,
        r#"BINTRAIL_SSL_MODE="preferred""#,
        r#"BINTRAIL_INDEX_SSL_MODE="preferred""#,
    ] {
        assert!(
            env.lines().any(|l| l == line),
            "env file lacks {line:?}:\n{env}"
        );
    }

    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit_path)
        .output()
        .expect("systemd-analyze (package systemd; scripts/provision.sh installs it)");
    assert!(
        verify.status.success() && verify.stdout.is_empty() && verify.stderr.is_empty(),
        "systemd-analyze verify must pass without a warning: {}",
        text(&verify)
    );
    // The sandbox: systemd's own exposure score, 0 (locked down) .. 10 (unprotected).
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20"])
        .arg(&unit_path)
        .output()
        .unwrap();
    assert!(
        security.status.success(),
        "exposure above 2.0: {}",
        text(&security)
    );

    // A second install refuses to overwrite, unless --force.
    let again = install(&root, &[]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert!(install(&root, &["--force"]).status.success());
}

#[test]
fn service_install_validates_like_stream_and_writes_nothing_on_error() {
    let root = temp_dir("unit-bad");
    for (extra, expect) in [
        (&["--batch-size", "0"][..], "--batch-size"),
        (&["--reset"][..], "--reset"),
        (&["--start-pos", "4"][..], "--start-pos"),
        (&["--ssl-mode", "verify-ca"][..], "--ssl-ca"),
    ] {
        let out = install(&root, extra);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{extra:?}: {stderr}");
        assert!(!stderr.contains("S3c"), "no password in errors: {stderr}");
    }
    assert!(!root.join("etc").exists(), "nothing written");
}

#[test]
fn deb_package_holds_the_binary_unit_template_env_example_and_readme() {
    let out_dir = temp_dir("deb");
    let built = Command::new("bash")
        .arg(repo_root().join("scripts/package-deb.sh"))
        .args(["--binary", BIN, "--out", out_dir.to_str().unwrap()])
        .args(["--version", "0.1.0~test", "--compression", "none"])
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", text(&built));
    let deb = String::from_utf8_lossy(&built.stdout).trim().to_string();
    assert!(deb.ends_with("bintrail_0.1.0~test_amd64.deb"), "{deb}");

    let contents = Command::new("dpkg-deb")
        .args(["-c", &deb])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&contents.stdout);
    for (mode, path) in [
        ("-rwxr-xr-x root/root", "./usr/bin/bintrail"),
        (
            "-rw-r--r-- root/root",
            "./usr/share/bintrail/bintrail-stream.service.in",
        ),
        (
            "-rw-r--r-- root/root",
            "./usr/share/doc/bintrail/examples/stream.env.example",
        ),
        ("-rw-r--r-- root/root", "./usr/share/doc/bintrail/README.md"),
        ("-rw-r--r-- root/root", "./usr/share/doc/bintrail/copyright"),
        ("-rw-r--r-- root/root", "./usr/lib/sysusers.d/bintrail.conf"),
    ] {
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with(mode) && l.ends_with(path)),
            "{path} ({mode}) missing:\n{listing}"
        );
    }
    // The packaged binary is stripped; the build it came from keeps its debug sections.
    let unpacked = temp_dir("deb-x");
    let x = Command::new("dpkg-deb")
        .args(["-x", &deb, unpacked.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(x.status.success(), "{}", text(&x));
    let sections = |path: &str| {
        let out = Command::new("readelf")
            .args(["-S", "-W", path])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let packaged = sections(unpacked.join("usr/bin/bintrail").to_str().unwrap());
    assert!(packaged.contains(".text"), "{packaged}");
    assert!(
        !packaged.contains(".debug_line")
            && !packaged.contains(".debug_info")
            && !packaged.contains(".symtab"),
        "the packaged binary is not stripped:\n{packaged}"
    );
    assert!(
        sections(BIN).contains(".debug_"),
        "the build itself was stripped"
    );
    std::fs::remove_dir_all(&unpacked).ok();
    let info = Command::new("dpkg-deb")
        .args(["-I", &deb])
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    for field in [
        "Package: bintrail",
        "Version: 0.1.0~test",
        "Architecture: amd64",
        "Section: database",
        "Depends: libc6 (>= 2.",
    ] {
        assert!(info.contains(field), "{field} missing:\n{info}");
    }
    assert!(info.contains("postinst"), "{info}");

    // The packaged template is the one `service install` uses.
    let x = temp_dir("deb-x");
    let extracted = Command::new("dpkg-deb")
        .args(["-x", &deb])
        .arg(&x)
        .status()
        .unwrap();
    assert!(extracted.success());
    let packaged =
        std::fs::read_to_string(x.join("usr/share/bintrail/bintrail-stream.service.in")).unwrap();
    let source =
        std::fs::read_to_string(repo_root().join("packaging/bintrail-stream.service.in")).unwrap();
    assert_eq!(packaged, source);
    let version = Command::new(x.join("usr/bin/bintrail"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("bintrail "));
    std::fs::remove_dir_all(&x).ok();
    std::fs::remove_dir_all(&out_dir).ok();
}

//! `bintrail service install`: one command to turn a stream's flags into its systemd unit
//! `bintrail-stream-<ID>.service` and environment file `stream-<ID>.env`.
//!
//! The flags are validated by the same [`StreamConfig::new`] as `bintrail stream`, so a unit is
//! never written for settings the stream would refuse. Passwords go to the environment file
//! (created 0600 before anything is written into it), never into the unit. The unit text comes
//! from `packaging/bintrail-stream.service.in`, the same template the Debian package ships.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use bintrail::config::{StreamArgs, StreamConfig};
use bintrail::dsn::Dsn;
use bintrail::percent;

use super::{Failure, Kind};
use crate::cli::{ServiceCmd, ServiceInstallCmd};

/// The unit template; `@UNIT@`, `@SERVER_ID@`, `@ENV_FILE@` and `@BINTRAIL@` are filled in.
pub const UNIT_TEMPLATE: &str = include_str!("../../packaging/bintrail-stream.service.in");

/// Runs a `service` subcommand.
pub fn run(cmd: ServiceCmd) -> Result<(), Failure> {
    match cmd {
        ServiceCmd::Install(cmd) => install(cmd),
    }
}

fn install(cmd: ServiceInstallCmd) -> Result<(), Failure> {
    if cmd.stream.dry_run {
        return Err(Failure::usage(
            "--dry-run cannot go into a unit (it reads to the end of binlog and exits): run `bintrail stream --dry-run ...` by hand instead",
        ));
    }
    if cmd.stream.reset {
        return Err(Failure::usage(
            "--reset cannot go into a unit (every restart would clear the checkpoint): run `bintrail stream --reset ...` once by hand instead",
        ));
    }
    let exec = cmd.exec.display().to_string();
    if !cmd.exec.is_absolute()
        || exec.contains(|c: char| c.is_whitespace() || "\"'\\%$;".contains(c))
    {
        return Err(Failure::usage(format!(
            "--exec '{exec}' must be an absolute path without spaces, quotes or %$;\\ (it goes into ExecStart= as is)"
        )));
    }
    let metrics_addr = cmd.stream.metrics_addr;
    let args = cmd.stream.into_args();
    let config = StreamConfig::new(args.clone()).map_err(Failure::usage)?;
    let id = config.server_id;
    let unit_name = format!("bintrail-stream-{id}");
    let env_path = format!("/etc/bintrail/stream-{id}.env");
    let unit = UNIT_TEMPLATE
        .replace("@UNIT@", &unit_name)
        .replace("@SERVER_ID@", &id.to_string())
        .replace("@ENV_FILE@", &env_path)
        .replace("@BINTRAIL@", &exec);
    let env = env_file(&config, &args, metrics_addr)?;

    let unit_file = under(
        &cmd.root,
        &format!("/etc/systemd/system/{unit_name}.service"),
    );
    let env_file = under(&cmd.root, &env_path);
    for path in [&unit_file, &env_file] {
        if path.exists() && !cmd.force {
            return Err(Failure::usage(format!(
                "{} exists: add --force to replace it",
                path.display()
            )));
        }
    }
    write_file(&env_file, &env, 0o600)?;
    write_file(&unit_file, &unit, 0o644)?;
    println!("wrote {}", unit_file.display());
    println!(
        "wrote {} (mode 0600: it holds the passwords)",
        env_file.display()
    );
    println!("next: systemctl daemon-reload && systemctl enable --now {unit_name}");
    println!("logs: journalctl -u {unit_name}");
    Ok(())
}

/// `path` (absolute) under `root`.
fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Writes `text` to `path` with `mode`, creating the parent directories. The mode is set when
/// the file is created and again after (an existing file keeps its old mode otherwise), before
/// any byte is written.
fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |e: std::io::Error| {
        Failure::new(
            Kind::Runtime,
            format!("cannot write {}: {e}", path.display()),
        )
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(fail)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)
}

/// The environment file: every setting of the stream as `BINTRAIL_*`, passwords apart.
fn env_file(
    config: &StreamConfig,
    args: &StreamArgs,
    metrics_addr: Option<std::net::SocketAddr>,
) -> Result<String, Failure> {
    let mut out = format!(
        "# bintrail stream {id}: settings of bintrail-stream-{id}.service, written by\n\
         # `bintrail service install`. Keep this file mode 0600: it holds passwords.\n\
         # Any `bintrail stream` flag can be set as BINTRAIL_<FLAG>; the unit passes --server-id.\n",
        id = config.server_id
    );
    let mut set = |key: &str, value: &str| -> Result<(), Failure> {
        if value.contains(['\n', '\r', '\0']) {
            return Err(Failure::usage(format!(
                "the value for {key} contains a line break or NUL, which an environment file cannot hold"
            )));
        }
        let _ = writeln!(out, "{key}={}", quote(value));
        Ok(())
    };
    set("BINTRAIL_SOURCE_DSN", &dsn_without_password(&config.source))?;
    if let Some(p) = &config.source.password {
        set("BINTRAIL_SOURCE_PASSWORD", p.expose())?;
    }
    set(
        "BINTRAIL_INDEX_DSN",
        &dsn_without_password(&config.index.dsn),
    )?;
    if let Some(p) = &config.index.dsn.password {
        set("BINTRAIL_INDEX_PASSWORD", p.expose())?;
    }
    for (key, value) in [
        ("BINTRAIL_SCHEMAS", &args.schemas),
        ("BINTRAIL_TABLES", &args.tables),
        ("BINTRAIL_START_FILE", &args.start_file),
        ("BINTRAIL_START_GTID", &args.start_gtid),
    ] {
        if let Some(v) = value {
            set(key, v)?;
        }
    }
    if let Some(pos) = args.start_pos {
        set("BINTRAIL_START_POS", &pos.to_string())?;
    }
    set("BINTRAIL_BATCH_SIZE", &config.batch_size.to_string())?;
    let interval = config.checkpoint_interval.as_secs().to_string();
    set("BINTRAIL_CHECKPOINT_INTERVAL", &interval)?;
    let heartbeat = config.heartbeat_interval.as_secs().to_string();
    set("BINTRAIL_HEARTBEAT_INTERVAL", &heartbeat)?;
    set("BINTRAIL_ON_GAP", &args.on_gap)?;
    // The index's setting is written as resolved (its defaults taken from the source's), so
    // the file says what each connection uses.
    set("BINTRAIL_SSL_MODE", config.tls.mode.as_str())?;
    set("BINTRAIL_INDEX_SSL_MODE", config.index.tls.mode.as_str())?;
    for (key, path) in [
        ("BINTRAIL_SSL_CA", &config.tls.ca),
        ("BINTRAIL_SSL_CERT", &config.tls.cert),
        ("BINTRAIL_SSL_KEY", &config.tls.key),
        ("BINTRAIL_INDEX_SSL_CA", &config.index.tls.ca),
        ("BINTRAIL_INDEX_SSL_CERT", &config.index.tls.cert),
        ("BINTRAIL_INDEX_SSL_KEY", &config.index.tls.key),
    ] {
        if let Some(path) = path {
            // The service runs in /; a relative path would point elsewhere.
            let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            set(key, &abs.display().to_string())?;
        }
    }
    if let Some(addr) = metrics_addr {
        set("BINTRAIL_METRICS_ADDR", &addr.to_string())?;
    }
    for (key, value) in [
        ("BINTRAIL_EXCLUDE_COLUMNS", &args.policy.exclude),
        ("BINTRAIL_MASK_COLUMNS", &args.policy.mask),
        ("BINTRAIL_TRUNCATE_COLUMNS", &args.policy.truncate),
    ] {
        if let Some(v) = value {
            set(key, v)?;
        }
    }
    // The key file by its path (the unit runs in /); a key given in the environment goes into
    // this 0600 file like the passwords, never into the unit.
    if let Some(path) = &args.policy.key_file {
        let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
        set("BINTRAIL_MASK_KEY_FILE", &abs.display().to_string())?;
    }
    if let Some(key) = &args.policy.key {
        set("BINTRAIL_MASK_KEY", key)?;
    }
    Ok(out)
}

/// A DSN in URL form without its password (which goes into its own variable).
fn dsn_without_password(dsn: &Dsn) -> String {
    let user = if dsn.user.is_empty() {
        String::new()
    } else {
        format!("{}@", percent::encode(&dsn.user))
    };
    let host = if dsn.host.contains(':') {
        format!("[{}]", dsn.host)
    } else {
        dsn.host.clone()
    };
    let db = dsn
        .database
        .as_deref()
        .map(percent::encode)
        .unwrap_or_default();
    format!("mysql://{user}{host}:{}/{db}", dsn.port)
}

/// A double-quoted value for a systemd EnvironmentFile (systemd.exec(5)): inside double quotes
/// systemd unescapes `\"`, `\\`, `` \` `` and `\$` and expands nothing. The same text is also a
/// valid shell word.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\' | '`' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_what_systemd_unescapes() {
        assert_eq!(quote(r#"a"b\c$d`e f'g"#), r#""a\"b\\c\$d\`e f'g""#);
    }

    #[test]
    fn dsn_loses_only_its_password() {
        let dsn = Dsn::parse("mysql://r%40pl:s3cr%3At@[::1]:3307/my%20db").unwrap();
        let text = dsn_without_password(&dsn);
        assert_eq!(text, "mysql://r%40pl@[::1]:3307/my%20db");
        let back = Dsn::parse(&text).unwrap();
        assert_eq!(
            (back.user, back.host, back.port),
            (dsn.user, dsn.host, dsn.port)
        );
        assert_eq!(back.database, dsn.database);
        assert!(back.password.is_none());
    }
}

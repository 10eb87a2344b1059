//! Data source names: the only place a DSN is parsed or printed.
//!
//! Two forms are accepted because DBAs bring both: the URL form
//! `mysql://user:pass@host:3306/db` and the Go-driver form `user:pass@tcp(host:3306)/db`
//! (the one the established bintrail used). A password never leaves this module in clear text
//! except through [`Secret::expose`], which only the connection code calls; every `Display` and
//! `Debug` of a [`Dsn`] or a [`Secret`] prints `<redacted>`.

use std::fmt;

use crate::percent;

/// A secret string (a password) that never prints itself.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The clear text, for handing to the MySQL client and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A parsed connection target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dsn {
    /// User name (may be empty, in which case the server decides).
    pub user: String,
    /// Password, if the DSN or the environment gave one.
    pub password: Option<Secret>,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port; 3306 when the DSN does not say.
    pub port: u16,
    /// Database (schema) name, if any.
    pub database: Option<String>,
    /// A TLS parameter of the DSN (`tls=…`, `ssl-mode=…`), as (name, value): `tls.rs` decides
    /// what it means. Every other parameter is refused when parsing.
    pub tls_param: Option<(String, String)>,
}

/// Why a DSN could not be parsed. Messages never contain the password.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DsnError {
    /// The string matches neither accepted form.
    #[error("'{shown}' is not a DSN: expected mysql://user:pass@host:3306/db or user:pass@tcp(host:3306)/db")]
    Form {
        /// The input with any password replaced by `<redacted>`.
        shown: String,
    },
    /// The port is not a number from 1 to 65535.
    #[error("'{shown}' has port '{port}', expected a number from 1 to 65535")]
    Port {
        /// The input with any password replaced by `<redacted>`.
        shown: String,
        /// The port text as given.
        port: String,
    },
    /// A query parameter bintrail does not use (refused rather than ignored).
    #[error("'{shown}' has the parameter '{name}', which bintrail does not take from a DSN: remove it (TLS is the only DSN parameter taken, as tls=… or ssl-mode=…; everything else is a flag)")]
    Parameter {
        /// The input with any password replaced by `<redacted>`.
        shown: String,
        /// The parameter's name.
        name: String,
    },
    /// Two TLS parameters in one DSN.
    #[error("'{shown}' has two TLS parameters ('{first}' and '{second}'): keep one")]
    TwoTls {
        /// The input with any password replaced by `<redacted>`.
        shown: String,
        /// The first.
        first: String,
        /// The second.
        second: String,
    },
    /// A `%xx` escape in the URL form is malformed.
    #[error("'{shown}' has a malformed %-escape in its {part}")]
    Escape {
        /// The input with any password replaced by `<redacted>`.
        shown: String,
        /// Which part (user, password, database).
        part: &'static str,
    },
}

const DEFAULT_PORT: u16 = 3306;

impl Dsn {
    /// Parses either accepted DSN form.
    pub fn parse(input: &str) -> Result<Dsn, DsnError> {
        let input = input.trim();
        let shown = redact(input);
        let form = || DsnError::Form {
            shown: shown.clone(),
        };
        if let Some(rest) = input.strip_prefix("mysql://") {
            parse_url(rest, &shown)
        } else if input.contains("@tcp(") || input.starts_with("tcp(") {
            parse_go(input, &shown)
        } else {
            Err(form())
        }
    }

    /// The DSN in URL form with the password replaced by `<redacted>`, for logs and messages.
    pub fn redacted(&self) -> String {
        let pass = if self.password.is_some() {
            ":<redacted>"
        } else {
            ""
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let db = self.database.as_deref().unwrap_or("");
        format!(
            "mysql://{}{}@{}:{}/{}",
            self.user, pass, host, self.port, db
        )
    }

    /// `host:port`, as shown in messages about connecting.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl fmt::Display for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Replaces the password of anything that looks like a DSN with `<redacted>`, even when the rest
/// of it is malformed, so that error messages can quote what the user typed.
pub fn redact(input: &str) -> String {
    let (scheme, rest) = match input.strip_prefix("mysql://") {
        Some(rest) => ("mysql://", rest),
        None => ("", input),
    };
    match rest.rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            match userinfo.find(':') {
                Some(colon) => format!("{scheme}{}:<redacted>{}", &userinfo[..colon], &rest[at..]),
                None => input.to_string(),
            }
        }
        None => input.to_string(),
    }
}

fn split_userinfo(
    userinfo: &str,
    shown: &str,
    unescape: bool,
) -> Result<(String, Option<Secret>), DsnError> {
    let decode = |s: &str, part: &'static str| {
        if unescape {
            percent::decode(s).ok_or(DsnError::Escape {
                shown: shown.to_string(),
                part,
            })
        } else {
            Ok(s.to_string())
        }
    };
    match userinfo.split_once(':') {
        Some((user, pass)) => Ok((
            decode(user, "user")?,
            Some(Secret::new(decode(pass, "password")?)),
        )),
        None => Ok((decode(userinfo, "user")?, None)),
    }
}

/// The names a TLS parameter goes by: the Go driver's `tls`, and MySQL connectors' `ssl-mode`.
const TLS_PARAMS: [&str; 4] = ["tls", "ssl-mode", "ssl_mode", "sslmode"];

/// The query string's parameters: the one TLS parameter, if any; anything else is refused.
fn parse_params(query: &str, shown: &str) -> Result<Option<(String, String)>, DsnError> {
    let mut tls: Option<(String, String)> = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent::decode(value).ok_or(DsnError::Escape {
            shown: shown.to_string(),
            part: "parameters",
        })?;
        if !TLS_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(name)) {
            return Err(DsnError::Parameter {
                shown: shown.to_string(),
                name: name.to_string(),
            });
        }
        if let Some((first, _)) = &tls {
            return Err(DsnError::TwoTls {
                shown: shown.to_string(),
                first: first.clone(),
                second: name.to_string(),
            });
        }
        tls = Some((name.to_ascii_lowercase(), value));
    }
    Ok(tls)
}

fn parse_url(rest: &str, shown: &str) -> Result<Dsn, DsnError> {
    let form = || DsnError::Form {
        shown: shown.to_string(),
    };
    let rest = rest.split('#').next().unwrap_or("");
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let tls_param = parse_params(query, shown)?;
    let (userinfo, hostpart) = match rest.rfind('@') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => ("", rest),
    };
    let (user, password) = split_userinfo(userinfo, shown, true)?;
    let (hostport, db) = match hostpart.split_once('/') {
        Some((hp, db)) => (hp, db),
        None => (hostpart, ""),
    };
    let (host, port) = split_host_port(hostport, shown)?;
    if host.is_empty() {
        return Err(form());
    }
    let database = if db.is_empty() {
        None
    } else {
        Some(percent::decode(db).ok_or(DsnError::Escape {
            shown: shown.to_string(),
            part: "database",
        })?)
    };
    Ok(Dsn {
        user,
        password,
        host,
        port,
        database,
        tls_param,
    })
}

fn parse_go(input: &str, shown: &str) -> Result<Dsn, DsnError> {
    let form = || DsnError::Form {
        shown: shown.to_string(),
    };
    let (userinfo, rest) = match input.rfind("@tcp(") {
        Some(at) => (&input[..at], &input[at + 1..]),
        None => ("", input),
    };
    let rest = rest.strip_prefix("tcp(").ok_or_else(form)?;
    let (hostport, after) = rest.split_once(')').ok_or_else(form)?;
    let (after, query) = after.split_once('?').unwrap_or((after, ""));
    let tls_param = parse_params(query, shown)?;
    let db = match after {
        "" | "/" => None,
        s => Some(s.strip_prefix('/').ok_or_else(form)?.to_string()),
    };
    let (user, password) = split_userinfo(userinfo, shown, false)?;
    let (host, port) = split_host_port(hostport, shown)?;
    if host.is_empty() {
        return Err(form());
    }
    Ok(Dsn {
        user,
        password,
        host,
        port,
        database: db,
        tls_param,
    })
}

fn split_host_port(hostport: &str, shown: &str) -> Result<(String, u16), DsnError> {
    let parse_port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or(DsnError::Port {
                shown: shown.to_string(),
                port: p.to_string(),
            })
    };
    if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or(DsnError::Form {
            shown: shown.to_string(),
        })?;
        let port = match after.strip_prefix(':') {
            Some(p) => parse_port(p)?,
            None => DEFAULT_PORT,
        };
        return Ok((host.to_string(), port));
    }
    match hostport.rsplit_once(':') {
        Some((host, port)) => Ok((host.to_string(), parse_port(port)?)),
        None => Ok((hostport.to_string(), DEFAULT_PORT)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dsn(user: &str, pass: Option<&str>, host: &str, port: u16, db: Option<&str>) -> Dsn {
        Dsn {
            user: user.into(),
            password: pass.map(Secret::new),
            host: host.into(),
            port,
            database: db.map(Into::into),
            tls_param: None,
        }
    }

    #[test]
    fn url_and_go_forms_parse_to_the_same_dsn() {
        let want = dsn("repl", Some("s3cr:t@x"), "db1", 3307, Some("idx"));
        assert_eq!(
            Dsn::parse("mysql://repl:s3cr%3At%40x@db1:3307/idx").unwrap(),
            want
        );
        assert_eq!(Dsn::parse("repl:s3cr:t@x@tcp(db1:3307)/idx").unwrap(), want);
    }

    #[test]
    fn missing_parts_take_defaults() {
        assert_eq!(
            Dsn::parse("mysql://root@127.0.0.1").unwrap(),
            dsn("root", None, "127.0.0.1", 3306, None)
        );
        assert_eq!(
            Dsn::parse("root@tcp(localhost)/").unwrap(),
            dsn("root", None, "localhost", 3306, None)
        );
        assert_eq!(
            Dsn::parse("mysql://u:@[::1]:13306/d").unwrap(),
            dsn("u", Some(""), "::1", 13306, Some("d"))
        );
    }

    #[test]
    fn a_tls_parameter_is_kept_and_any_other_refused() {
        let d = Dsn::parse("mysql://u:@[::1]:13306/d?ssl-mode=VERIFY_CA").unwrap();
        assert_eq!(d.tls_param, Some(("ssl-mode".into(), "VERIFY_CA".into())));
        let d = Dsn::parse("u:pw@tcp(db:3306)/?tls=skip-verify").unwrap();
        assert_eq!(d.tls_param, Some(("tls".into(), "skip-verify".into())));
        assert_eq!(d.database, None);
        for bad in [
            "u:hunter2@tcp(db:3306)/x?parseTime=true",
            "mysql://u:hunter2@db/x?tls=true&charset=utf8mb4",
        ] {
            let err = Dsn::parse(bad).unwrap_err().to_string();
            assert!(err.contains("has the parameter '"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        let err = Dsn::parse("mysql://u@db/x?tls=true&sslmode=disabled").unwrap_err();
        assert!(err.to_string().contains("two TLS parameters"), "{err}");
    }

    #[test]
    fn malformed_dsn_errors_never_show_the_password() {
        for bad in [
            "repl:hunter2@db1:3306/x",
            "mysql://repl:hunter2@db1:99999/x",
            "mysql://repl:hunter2@/x",
            "repl:hunter2@tcp(db1:3306",
            "mysql://repl:hunter2%zz@db1/x",
        ] {
            let err = Dsn::parse(bad).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{bad} -> {err}");
            assert!(err.contains("<redacted>"), "{bad} -> {err}");
        }
    }

    #[test]
    fn display_and_debug_redact_the_password() {
        let d = Dsn::parse("mysql://repl:hunter2@db1/x").unwrap();
        assert_eq!(d.to_string(), "mysql://repl:<redacted>@db1:3306/x");
        assert!(!format!("{d:?}").contains("hunter2"));
    }
}

//! TLS for the source and index connections: the only place TLS is decided.
//!
//! `--ssl-mode` keeps MySQL's meanings (`mysql --ssl-mode`): `disabled` is plaintext;
//! `preferred` uses TLS when the server offers it and otherwise falls back to plaintext with a
//! warning; `required` insists on TLS but checks no certificate; `verify-ca` checks the chain
//! against `--ssl-ca`; `verify-full` checks the chain and the host name. `--ssl-cert`/`--ssl-key`
//! present a client certificate. Every path is checked for readability when the config is built,
//! so a typo fails before any connection is tried.
//!
//! # How the modes map onto mysql_async + rustls (TLS 1.2 and 1.3, ring provider)
//! - `preferred`, `required`: `danger_accept_invalid_certs`, so no certificate is checked.
//! - `verify-ca`: built-in roots off, `--ssl-ca` as the only root, `danger_skip_domain_validation`:
//!   rustls checks the chain (signatures, validity period, key usage) and only a name error is
//!   forgiven, so a certificate that names no host at all (MySQL's auto-generated one: a CN that
//!   is not a host name, no subjectAltName) is accepted when `--ssl-ca` issued it. Nothing here
//!   looks at the certificate's names for this mode. That flag is inert in the published
//!   mysql_async 0.37.1 on rustls 0.23 (it matched the error's text, which rustls changed:
//!   mysql_async issue #404); bintrail builds it with the upstream fix through
//!   `[patch.crates-io]`, see `vendor/mysql_async/PATCHED.md`.
//! - `verify-full`: built-in roots off, `--ssl-ca` as the only root, chain and host name checked
//!   (DNS name or IP address subjectAltName).

use std::fmt;
use std::path::{Path, PathBuf};

use mysql_async::{ClientIdentity, SslOpts};

/// MySQL's `--ssl-mode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plaintext only.
    Disabled,
    /// TLS when offered, else plaintext with a warning.
    #[default]
    Preferred,
    /// TLS or fail; no certificate check.
    Required,
    /// TLS with the certificate chain checked against the CA.
    VerifyCa,
    /// TLS with the chain and the server's host name checked.
    VerifyFull,
}

impl SslMode {
    /// All modes, in the order they are documented.
    pub const ALL: [SslMode; 5] = [
        SslMode::Disabled,
        SslMode::Preferred,
        SslMode::Required,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ];

    /// The flag value (`verify-ca`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disabled => "disabled",
            SslMode::Preferred => "preferred",
            SslMode::Required => "required",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl SslMode {
    /// The mode a DSN's TLS parameter means, or why it has no clear one. The Go driver's `tls`:
    /// `true` checks the chain and the host name (`verify-full`), `skip-verify` encrypts without
    /// checks (`required`), `preferred` and `false` are `preferred` and `disabled`; any other
    /// value names a configuration registered in the Go program (`mysql.RegisterTLSConfig`),
    /// which bintrail cannot see. `ssl-mode` takes MySQL's names (`VERIFY_IDENTITY` is
    /// `verify-full`).
    pub fn from_dsn_param(
        flag: &'static str,
        name: &str,
        value: &str,
    ) -> Result<SslMode, TlsError> {
        let refuse = |why: &'static str| TlsError::DsnParameter {
            flag,
            param: format!("{name}={value}"),
            why,
        };
        if name == "tls" {
            return match value.to_ascii_lowercase().as_str() {
                "true" => Ok(SslMode::VerifyFull),
                "skip-verify" => Ok(SslMode::Required),
                "preferred" => Ok(SslMode::Preferred),
                "false" => Ok(SslMode::Disabled),
                _ => Err(refuse(
                    "names a TLS configuration registered in the Go program (mysql.RegisterTLSConfig), which bintrail cannot see: remove it and give --ssl-mode, --ssl-ca, --ssl-cert and --ssl-key (--index-ssl-* for the index)",
                )),
            };
        }
        let value_norm = value.to_ascii_lowercase().replace('_', "-");
        match value_norm.as_str() {
            "verify-identity" => Ok(SslMode::VerifyFull),
            v => v.parse().map_err(|_| {
                refuse("is not a mode: expected DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY")
            }),
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SslMode {
    type Err = TlsError;
    fn from_str(s: &str) -> Result<Self, TlsError> {
        SslMode::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| TlsError::Mode {
                flag: SOURCE_FLAGS.mode,
                value: s.to_string(),
            })
    }
}

/// The names of one connection's four TLS flags, for messages.
#[derive(Debug, PartialEq, Eq)]
pub struct Flags {
    /// `--ssl-mode` or `--index-ssl-mode`.
    pub mode: &'static str,
    /// `--ssl-ca` or `--index-ssl-ca`.
    pub ca: &'static str,
    /// `--ssl-cert` or `--index-ssl-cert`.
    pub cert: &'static str,
    /// `--ssl-key` or `--index-ssl-key`.
    pub key: &'static str,
}

/// The source connection's flags (also the index's defaults).
pub static SOURCE_FLAGS: Flags = Flags {
    mode: "--ssl-mode",
    ca: "--ssl-ca",
    cert: "--ssl-cert",
    key: "--ssl-key",
};

/// The index connection's own flags.
pub static INDEX_FLAGS: Flags = Flags {
    mode: "--index-ssl-mode",
    ca: "--index-ssl-ca",
    cert: "--index-ssl-cert",
    key: "--index-ssl-key",
};

/// A validated TLS setting of one connection (the source's, or the index's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// Which flags gave it (named in messages): the index's setting taken whole from the
    /// source's flags names those.
    pub flags: &'static Flags,
    /// The index's setting, taken whole from `--ssl-*` (messages say so).
    pub inherited: bool,
    /// The mode.
    pub mode: SslMode,
    /// CA certificate (PEM) for verify-ca / verify-full.
    pub ca: Option<PathBuf>,
    /// Client certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// Client private key (PEM).
    pub key: Option<PathBuf>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            flags: &SOURCE_FLAGS,
            inherited: false,
            mode: SslMode::default(),
            ca: None,
            cert: None,
            key: None,
        }
    }
}

/// Why a TLS setting was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlsError {
    /// Not one of the five modes.
    #[error("{flag} '{value}' is not a mode: expected disabled, preferred, required, verify-ca or verify-full")]
    Mode {
        /// The flag.
        flag: &'static str,
        /// The value given.
        value: String,
    },
    /// verify-ca / verify-full without a CA.
    #[error(
        "{flag} {mode} needs {ca_flag} (the CA certificate that signed the server's certificate)"
    )]
    MissingCa {
        /// The mode flag.
        flag: &'static str,
        /// The CA flag.
        ca_flag: &'static str,
        /// The mode given.
        mode: SslMode,
    },
    /// Only one of cert and key.
    #[error("{given} and {missing} go together: {given} was given without {missing}")]
    HalfIdentity {
        /// The flag given.
        given: &'static str,
        /// The flag missing.
        missing: &'static str,
    },
    /// A file that cannot be read.
    #[error("{flag} '{path}' cannot be read: {reason}")]
    Unreadable {
        /// The flag.
        flag: &'static str,
        /// The path given.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// A file that is readable but holds no usable PEM item.
    #[error("{flag} '{path}' holds no {what} in PEM form ({reason})")]
    NotPem {
        /// The flag.
        flag: &'static str,
        /// The path given.
        path: String,
        /// What was expected in it.
        what: &'static str,
        /// What the PEM reader said.
        reason: String,
    },
    /// A DSN's TLS parameter without a clear meaning.
    #[error("{flag}: the parameter '{param}' {why}")]
    DsnParameter {
        /// The DSN's flag.
        flag: &'static str,
        /// The parameter as given.
        param: String,
        /// Why it is refused and what to do.
        why: &'static str,
    },
    /// A DSN's TLS parameter and the mode flag saying different things.
    #[error("{flag}: the parameter '{param}' means {mode_flag} {dsn_mode}, but {mode_flag} {flag_mode} was given: keep one")]
    DsnConflict {
        /// The DSN's flag.
        flag: &'static str,
        /// The parameter as given.
        param: String,
        /// The mode flag.
        mode_flag: &'static str,
        /// The DSN's mode.
        dsn_mode: SslMode,
        /// The flag's mode.
        flag_mode: SslMode,
    },
    /// A certificate option with `--ssl-mode disabled`.
    #[error("{flag} was given with {mode_flag} disabled: drop it or choose another {mode_flag}")]
    UnusedWithDisabled {
        /// The mode flag.
        mode_flag: &'static str,
        /// The flag.
        flag: &'static str,
    },
}

impl TlsConfig {
    /// Validates the source connection's mode and files (`--ssl-*`).
    pub fn new(
        mode: SslMode,
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<TlsConfig, TlsError> {
        TlsConfig::with_flags(&SOURCE_FLAGS, mode, ca, cert, key)
    }

    /// The index connection's setting: each `--index-ssl-*` flag not given takes the source's
    /// value, so a command line written before the index had flags of its own keeps its meaning.
    /// Two exceptions keep that rule from producing nonsense: the client certificate and key
    /// are one pair (either both the index's own or both the source's), and with
    /// `--index-ssl-mode disabled` nothing of the source's certificates is taken.
    pub fn for_index(
        source: &TlsConfig,
        mode: Option<SslMode>,
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<TlsConfig, TlsError> {
        if (&mode, &ca, &cert, &key) == (&None, &None, &None, &None) {
            return Ok(TlsConfig {
                inherited: true,
                ..source.clone()
            });
        }
        let mode = mode.unwrap_or(source.mode);
        let inherit = mode != SslMode::Disabled;
        let ca = ca.or_else(|| source.ca.clone().filter(|_| inherit));
        let (cert, key) = match (cert, key) {
            (None, None) if inherit => (source.cert.clone(), source.key.clone()),
            own => own,
        };
        TlsConfig::with_flags(&INDEX_FLAGS, mode, ca, cert, key)
    }

    /// Validates a mode and its files, naming `flags` in every message.
    pub fn with_flags(
        flags: &'static Flags,
        mode: SslMode,
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<TlsConfig, TlsError> {
        if mode == SslMode::Disabled {
            for (flag, value) in [(flags.ca, &ca), (flags.cert, &cert), (flags.key, &key)] {
                if value.is_some() {
                    return Err(TlsError::UnusedWithDisabled {
                        mode_flag: flags.mode,
                        flag,
                    });
                }
            }
        }
        if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && ca.is_none() {
            return Err(TlsError::MissingCa {
                flag: flags.mode,
                ca_flag: flags.ca,
                mode,
            });
        }
        match (&cert, &key) {
            (Some(_), None) => {
                return Err(TlsError::HalfIdentity {
                    given: flags.cert,
                    missing: flags.key,
                })
            }
            (None, Some(_)) => {
                return Err(TlsError::HalfIdentity {
                    given: flags.key,
                    missing: flags.cert,
                })
            }
            _ => {}
        }
        for (flag, path, is_key) in [
            (flags.ca, &ca, false),
            (flags.cert, &cert, false),
            (flags.key, &key, true),
        ] {
            if let Some(path) = path {
                check_readable(flag, path)?;
                check_pem(flag, path, is_key)?;
            }
        }
        Ok(TlsConfig {
            flags,
            inherited: false,
            mode,
            ca,
            cert,
            key,
        })
    }

    /// The short form of [`outcome`](Self::outcome), for `systemctl status`: the mode, or
    /// `plaintext`.
    pub fn short_outcome(&self, used_tls: bool) -> &'static str {
        if used_tls {
            self.mode.as_str()
        } else {
            "plaintext"
        }
    }

    /// What TLS a connection opened with this setting ended up with, for the start-up log:
    /// `verify-ca`, …, or `plaintext` (mode `disabled`, or `preferred` against a server that
    /// offers no TLS). `used_tls` says whether the connection that succeeded asked for TLS.
    pub fn outcome(&self, used_tls: bool) -> String {
        match (self.mode, used_tls) {
            (SslMode::Disabled, _) => "plaintext (disabled)".to_string(),
            (mode, false) => format!("plaintext ({mode}: the server offers no TLS)"),
            (mode @ (SslMode::VerifyCa | SslMode::VerifyFull), true) => format!(
                "{mode} (CA {})",
                self.ca
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
            (mode, true) => format!("{mode} (TLS, certificate not checked)"),
        }
    }

    /// The mysql_async TLS options for a first connection attempt, or `None` for plaintext.
    ///
    /// For `preferred` this asks for TLS without checks; the connection code retries in
    /// plaintext (and warns) when the server does not offer TLS.
    pub fn ssl_opts(&self) -> Option<SslOpts> {
        let base = SslOpts::default();
        let opts = match self.mode {
            SslMode::Disabled => return None,
            SslMode::Preferred | SslMode::Required => base
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
            SslMode::VerifyCa => base
                .with_danger_skip_domain_validation(true)
                .with_disable_built_in_roots(true),
            SslMode::VerifyFull => base.with_disable_built_in_roots(true),
        };
        let opts = match &self.ca {
            Some(ca) => opts.with_root_certs(vec![ca.clone().into()]),
            None => opts,
        };
        let identity = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                Some(ClientIdentity::new(cert.clone().into(), key.clone().into()))
            }
            _ => None,
        };
        Some(opts.with_client_identity(identity))
    }

    /// Whether a server without TLS may be used in plaintext.
    pub fn allows_plaintext_fallback(&self) -> bool {
        self.mode == SslMode::Preferred
    }

    /// What to tell the user about a TLS failure when connecting to `host`.
    pub fn explain(&self, failure: &TlsFailure, host: &str) -> String {
        let why = self.explain_failure(failure, host);
        if self.inherited {
            format!("{why} (the index connection uses the --ssl-* settings unless --index-ssl-mode, --index-ssl-ca, --index-ssl-cert or --index-ssl-key give its own)")
        } else {
            why
        }
    }

    fn explain_failure(&self, failure: &TlsFailure, host: &str) -> String {
        let mode = self.mode;
        let (mode_flag, ca_flag) = (self.flags.mode, self.flags.ca);
        let ca = self
            .ca
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        match failure {
            TlsFailure::NotOffered => format!(
                "the server does not offer TLS, and {mode_flag} {mode} requires it: enable TLS on the server, or use {mode_flag} preferred to allow plaintext"
            ),
            // verify-ca forgives name errors in the (patched) driver, so this cannot happen
            // unless bintrail was built without that patch.
            TlsFailure::WrongName { .. } if mode == SslMode::VerifyCa => format!(
                "the server's TLS certificate does not name '{host}', and this bintrail build checked the name under {mode_flag} {mode}, which must not: it was built without the mysql_async patch in vendor/mysql_async (see PATCHED.md there); use {mode_flag} required until it is rebuilt"
            ),
            TlsFailure::WrongName { presented, .. } if presented.is_empty() => format!(
                "the server's TLS certificate has no subjectAltName, so it names no host (MySQL's auto-generated certificate is such a one); {mode_flag} {mode} checks the host name and cannot accept it (rustls ignores the CN): give the server a certificate whose subjectAltName lists '{host}', or use {mode_flag} verify-ca to check only the chain"
            ),
            TlsFailure::WrongName { presented, .. } => format!(
                "the server's TLS certificate is not valid for the host name '{host}' (it is valid for {}); {mode_flag} {mode} checks the host name: connect by a name the certificate lists, or use {mode_flag} verify-ca to check only the chain",
                presented.iter().map(|n| display_name(n)).collect::<Vec<_>>().join(", ")
            ),
            TlsFailure::UnknownIssuer => format!(
                "the server's TLS certificate was not issued by the CA in {ca_flag} '{ca}' ({mode_flag} {mode}): give the CA that signed the server's certificate"
            ),
            TlsFailure::BadSignature => format!(
                "the server's TLS certificate was not issued by the CA in {ca_flag} '{ca}' ({mode_flag} {mode}): that CA has the name of the certificate's issuer but not its key (another CA of the same name; MySQL's auto-generated CAs all share one name): give the CA that signed the server's certificate"
            ),
            TlsFailure::BadCertificate(why) => {
                format!("the server's TLS certificate was refused ({mode_flag} {mode}): {why}")
            }
            TlsFailure::Other(why) => format!("TLS failed ({mode_flag} {mode}): {why}"),
        }
    }
}

/// A TLS failure of a connection attempt, classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsFailure {
    /// The server does not offer TLS at all.
    NotOffered,
    /// The certificate chain is not checked yet, but the name did not match: `presented` are the
    /// certificate's subjectAltNames as rustls/webpki render them.
    WrongName {
        /// The name checked.
        expected: String,
        /// The names the certificate carries.
        presented: Vec<String>,
    },
    /// The chain does not lead to a trusted root (`--ssl-ca`).
    UnknownIssuer,
    /// The CA in `--ssl-ca` has the name of the certificate's issuer but not its key: another
    /// CA of the same name (every MySQL server's auto-generated CA has the same name).
    BadSignature,
    /// Another certificate problem (expired, bad signature, …).
    BadCertificate(String),
    /// Anything else about TLS (handshake, unreadable client key, …).
    Other(String),
}

/// Classifies `e` if it is a TLS failure.
pub fn tls_failure(e: &mysql_async::Error) -> Option<TlsFailure> {
    use mysql_async::{DriverError, Error, IoError};
    let rustls_error = match e {
        Error::Driver(DriverError::NoClientSslFlagFromServer) => {
            return Some(TlsFailure::NotOffered)
        }
        Error::Driver(DriverError::NoKeyFound) => {
            return Some(TlsFailure::Other(
                "no private key found in --ssl-key".into(),
            ))
        }
        Error::Io(IoError::Tls(mysql_async::TlsError::Tls(e))) => e,
        Error::Io(IoError::Tls(other)) => return Some(TlsFailure::Other(other.to_string())),
        Error::Io(IoError::Io(io)) => io.get_ref()?.downcast_ref::<rustls::Error>()?,
        _ => return None,
    };
    Some(classify(rustls_error))
}

fn classify(e: &rustls::Error) -> TlsFailure {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(C::NotValidForNameContext {
            expected,
            presented,
        }) => TlsFailure::WrongName {
            expected: expected.to_str().into_owned(),
            presented: presented.clone(),
        },
        rustls::Error::InvalidCertificate(C::NotValidForName) => TlsFailure::WrongName {
            expected: String::new(),
            presented: Vec::new(),
        },
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => TlsFailure::UnknownIssuer,
        rustls::Error::InvalidCertificate(C::BadSignature) => TlsFailure::BadSignature,
        rustls::Error::InvalidCertificate(other) => TlsFailure::BadCertificate(other.to_string()),
        other => TlsFailure::Other(other.to_string()),
    }
}

/// `DnsName("db.example.com")` → `db.example.com`, `IpAddress(10.0.0.1)` → `10.0.0.1`.
fn display_name(presented: &str) -> String {
    let inner = presented
        .strip_prefix("DnsName(\"")
        .and_then(|r| r.strip_suffix("\")"))
        .or_else(|| {
            presented
                .strip_prefix("IpAddress(")
                .and_then(|r| r.strip_suffix(')'))
        });
    inner.unwrap_or(presented).to_string()
}

/// The CA and client certificate must hold PEM certificates, the key a PEM private key, so
/// that a wrong file is a usage error naming the flag rather than a TLS failure at connect time.
fn check_pem(flag: &'static str, path: &Path, is_key: bool) -> Result<(), TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (what, result) = if is_key {
        ("private key", PrivateKeyDer::from_pem_file(path).map(drop))
    } else {
        let first = CertificateDer::pem_file_iter(path).and_then(|mut it| {
            it.next()
                .unwrap_or(Err(rustls::pki_types::pem::Error::NoItemsFound))
        });
        ("certificate", first.map(drop))
    };
    result.map_err(|e| TlsError::NotPem {
        flag,
        path: path.display().to_string(),
        what,
        reason: format!("{e:?}"),
    })
}

fn check_readable(flag: &'static str, path: &Path) -> Result<(), TlsError> {
    std::fs::File::open(path)
        .and_then(|f| {
            if f.metadata()?.is_dir() {
                Err(std::io::Error::other("it is a directory"))
            } else {
                Ok(())
            }
        })
        .map_err(|e| TlsError::Unreadable {
            flag,
            path: path.display().to_string(),
            reason: e.to_string(),
        })
}

/// The TLS client config of HTTPS to object storage (`--archive s3://…`): the public web PKI
/// roots (`webpki-roots`, the Mozilla set mysql_async already builds in), the chain and the host
/// name always checked. A private S3-compatible server over HTTPS needs a certificate from a
/// public CA; plain `http://` endpoints (`AWS_ENDPOINT_URL`) use no TLS at all.
pub fn https_client_config() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_parses_from_its_flag_value() {
        for m in SslMode::ALL {
            assert_eq!(m.as_str().parse::<SslMode>().unwrap(), m);
        }
        assert!("bogus".parse::<SslMode>().is_err());
    }

    #[test]
    fn verify_modes_need_a_ca() {
        for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
            assert_eq!(
                TlsConfig::new(mode, None, None, None),
                Err(TlsError::MissingCa {
                    flag: "--ssl-mode",
                    ca_flag: "--ssl-ca",
                    mode
                })
            );
        }
    }

    #[test]
    fn unreadable_ca_is_rejected_with_its_path() {
        let err = TlsConfig::new(
            SslMode::VerifyCa,
            Some("/nonexistent/ca.pem".into()),
            None,
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn cert_without_key_is_rejected() {
        assert!(matches!(
            TlsConfig::new(SslMode::Required, None, Some("/etc/hostname".into()), None),
            Err(TlsError::HalfIdentity { .. })
        ));
    }

    /// A file holding one PEM certificate block (its DER is not checked here).
    fn pem_file() -> PathBuf {
        let path = std::env::temp_dir().join(format!("bintrail-tls-{}.pem", std::process::id()));
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        path
    }

    #[test]
    fn a_file_without_pem_content_is_refused_with_its_flag() {
        let err = TlsConfig::new(SslMode::VerifyCa, Some("/etc/hostname".into()), None, None)
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--ssl-ca '/etc/hostname' holds no certificate in PEM form"),
            "{err}"
        );
        assert!(TlsConfig::new(SslMode::VerifyCa, Some(pem_file()), None, None).is_ok());
    }

    #[test]
    fn verify_full_name_failures_say_what_the_certificate_names() {
        let wrong = TlsFailure::WrongName {
            expected: "127.0.0.1".into(),
            presented: vec![
                "DirectoryName".into(),
                "DnsName(\"*.db.example\")".into(),
                "IpAddress(10.9.9.9)".into(),
            ],
        };
        let full = TlsConfig::new(SslMode::VerifyFull, Some(pem_file()), None, None).unwrap();
        let msg = full.explain(&wrong, "127.0.0.1");
        assert!(
            msg.contains("not valid for the host name '127.0.0.1'"),
            "{msg}"
        );
        assert!(msg.contains("*.db.example, 10.9.9.9"), "{msg}");
        let none = TlsFailure::WrongName {
            expected: "127.0.0.1".into(),
            presented: vec![],
        };
        let msg = full.explain(&none, "h");
        assert!(
            msg.contains("has no subjectAltName")
                && msg.contains("or use --ssl-mode verify-ca to check only the chain"),
            "{msg}"
        );
        let ca = TlsConfig::new(SslMode::VerifyCa, Some(pem_file()), None, None).unwrap();
        let msg = ca.explain(&none, "h");
        assert!(
            msg.contains("built without the mysql_async patch"),
            "verify-ca never checks the name: {msg}"
        );
    }

    #[test]
    fn rustls_name_errors_are_classified_by_variant_not_text() {
        let e =
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
                expected: rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
                presented: vec!["DnsName(\"other.example\")".into()],
            });
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let err = mysql_async::Error::Io(mysql_async::IoError::Io(io));
        assert!(matches!(
            tls_failure(&err),
            Some(TlsFailure::WrongName { expected, .. }) if expected == "127.0.0.1"
        ));
    }

    #[test]
    fn the_process_default_provider_is_ring_with_tls_1_2_and_1_3() {
        // mysql_async builds its config with ClientConfig::builder(), which picks the provider
        // from the crate features and panics if both ring and aws-lc-rs are compiled in.
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        // builder() offers DEFAULT_VERSIONS; TLS 1.2 is in it only with the `tls12` feature.
        let versions: Vec<_> = rustls::DEFAULT_VERSIONS.iter().map(|v| v.version).collect();
        assert!(
            versions.contains(&rustls::ProtocolVersion::TLSv1_2),
            "{versions:?}"
        );
        assert!(
            versions.contains(&rustls::ProtocolVersion::TLSv1_3),
            "{versions:?}"
        );
        let ring = rustls::crypto::ring::default_provider();
        let names = |p: &rustls::crypto::CryptoProvider| -> Vec<_> {
            p.cipher_suites.iter().map(|s| s.suite()).collect()
        };
        assert_eq!(names(config.crypto_provider()), names(&ring));
    }

    #[test]
    fn dsn_tls_parameters_map_onto_the_modes_or_are_refused() {
        let m = |name, value| SslMode::from_dsn_param("--source-dsn", name, value);
        assert_eq!(m("tls", "true"), Ok(SslMode::VerifyFull));
        assert_eq!(m("tls", "skip-verify"), Ok(SslMode::Required));
        assert_eq!(m("tls", "preferred"), Ok(SslMode::Preferred));
        assert_eq!(m("tls", "false"), Ok(SslMode::Disabled));
        assert_eq!(m("ssl-mode", "VERIFY_CA"), Ok(SslMode::VerifyCa));
        assert_eq!(m("sslmode", "VERIFY_IDENTITY"), Ok(SslMode::VerifyFull));
        assert_eq!(m("ssl_mode", "disabled"), Ok(SslMode::Disabled));
        let custom = m("tls", "custom").unwrap_err().to_string();
        assert!(
            custom
                .starts_with("--source-dsn: the parameter 'tls=custom' names a TLS configuration"),
            "{custom}"
        );
        assert!(m("ssl-mode", "sometimes").is_err());
    }

    #[test]
    fn disabled_has_no_tls_options() {
        let cfg = TlsConfig::new(SslMode::Disabled, None, None, None).unwrap();
        assert!(cfg.ssl_opts().is_none());
        let cfg = TlsConfig::new(SslMode::Preferred, None, None, None).unwrap();
        assert!(cfg.ssl_opts().is_some());
        assert!(cfg.allows_plaintext_fallback());
    }
}

//! TLS for the source and index connections: the only place TLS is decided.
//!
//! `--ssl-mode` keeps MySQL's meanings (`mysql --ssl-mode`): `disabled` is plaintext;
//! `preferred` uses TLS when the server offers it and otherwise falls back to plaintext with a
//! warning; `required` insists on TLS but checks no certificate; `verify-ca` checks the chain
//! against `--ssl-ca`; `verify-full` checks the chain and the host name. `--ssl-cert`/`--ssl-key`
//! present a client certificate. Every path is checked for readability when the config is built,
//! so a typo fails before any connection is tried.

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
                value: s.to_string(),
            })
    }
}

/// A validated TLS setting, shared by the source and index connections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// The mode.
    pub mode: SslMode,
    /// CA certificate (PEM) for verify-ca / verify-full.
    pub ca: Option<PathBuf>,
    /// Client certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// Client private key (PEM).
    pub key: Option<PathBuf>,
}

/// Why a TLS setting was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlsError {
    /// Not one of the five modes.
    #[error("--ssl-mode '{value}' is not a mode: expected disabled, preferred, required, verify-ca or verify-full")]
    Mode {
        /// The value given.
        value: String,
    },
    /// verify-ca / verify-full without a CA.
    #[error("--ssl-mode {mode} needs --ssl-ca (the CA certificate that signed the server's certificate)")]
    MissingCa {
        /// The mode given.
        mode: SslMode,
    },
    /// Only one of cert and key.
    #[error("--ssl-cert and --ssl-key go together: {given} was given without {missing}")]
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
    /// A certificate option with `--ssl-mode disabled`.
    #[error("{flag} was given with --ssl-mode disabled: drop it or choose another --ssl-mode")]
    UnusedWithDisabled {
        /// The flag.
        flag: &'static str,
    },
}

impl TlsConfig {
    /// Validates a mode and its files.
    pub fn new(
        mode: SslMode,
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<TlsConfig, TlsError> {
        if mode == SslMode::Disabled {
            for (flag, value) in [
                ("--ssl-ca", &ca),
                ("--ssl-cert", &cert),
                ("--ssl-key", &key),
            ] {
                if value.is_some() {
                    return Err(TlsError::UnusedWithDisabled { flag });
                }
            }
        }
        if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && ca.is_none() {
            return Err(TlsError::MissingCa { mode });
        }
        match (&cert, &key) {
            (Some(_), None) => {
                return Err(TlsError::HalfIdentity {
                    given: "--ssl-cert",
                    missing: "--ssl-key",
                })
            }
            (None, Some(_)) => {
                return Err(TlsError::HalfIdentity {
                    given: "--ssl-key",
                    missing: "--ssl-cert",
                })
            }
            _ => {}
        }
        for (flag, path) in [
            ("--ssl-ca", &ca),
            ("--ssl-cert", &cert),
            ("--ssl-key", &key),
        ] {
            if let Some(path) = path {
                check_readable(flag, path)?;
            }
        }
        Ok(TlsConfig {
            mode,
            ca,
            cert,
            key,
        })
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
                Err(TlsError::MissingCa { mode })
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

    #[test]
    fn disabled_has_no_tls_options() {
        let cfg = TlsConfig::new(SslMode::Disabled, None, None, None).unwrap();
        assert!(cfg.ssl_opts().is_none());
        let cfg = TlsConfig::new(SslMode::Preferred, None, None, None).unwrap();
        assert!(cfg.ssl_opts().is_some());
        assert!(cfg.allows_plaintext_fallback());
    }
}

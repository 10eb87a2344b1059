//! `--ssl-mode` with MySQL's meanings, against MySQL 9.7 with certificates made here by the
//! `openssl` CLI (a CA, a server certificate for localhost/127.0.0.1, one for another name, a
//! client certificate, and an unrelated CA), and against MariaDB without TLS. The client is the
//! real binary: `bintrail init` for the matrix, `bintrail stream` for one end-to-end run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mysql_async::prelude::Queryable;

use crate::service::ServiceStream;
use crate::support::{bintrail, temp_dir, unique, wait_until, Flavor, TestServer};

const TLS_PASSWORD: &str = "tls-Secret-1";
const X509_PASSWORD: &str = "x509-Secret-1";

/// Certificates for the tests, in one directory.
struct Certs {
    dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl CLI");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Certs {
    fn generate() -> Certs {
        let dir = temp_dir("certs");
        for ca in ["ca", "other-ca"] {
            openssl(
                &dir,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-keyout",
                    &format!("{ca}-key.pem"),
                    "-out",
                    &format!("{ca}.pem"),
                    "-subj",
                    &format!("/CN=bintrail test {ca}"),
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            );
        }
        let leaf = |name: &str, cn: &str, ext: &str| {
            std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
            openssl(
                &dir,
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    &format!("/CN={cn}"),
                    "-keyout",
                    &format!("{name}-key.pem"),
                    "-out",
                    &format!("{name}.csr"),
                ],
            );
            openssl(
                &dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-days",
                    "2",
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca-key.pem",
                    "-CAcreateserial",
                    "-extfile",
                    &format!("{name}.ext"),
                    "-out",
                    &format!("{name}-cert.pem"),
                ],
            );
        };
        let server = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n";
        leaf(
            "server",
            "localhost",
            &format!("{server}subjectAltName=DNS:localhost,IP:127.0.0.1\n"),
        );
        leaf(
            "elsewhere",
            "db.example.com",
            &format!("{server}subjectAltName=DNS:db.example.com\n"),
        );
        leaf(
            "client",
            "bintrail",
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
        );
        Certs { dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }
}

/// `bintrail init` as `user` against `host:port`; returns (exit code, stderr).
fn init(user: &str, password: &str, host: &str, port: u16, tls: &[&str]) -> (i32, String) {
    let dsn = format!("mysql://{user}:{password}@{host}:{port}/tls_idx");
    let mut args = vec!["init", "--index-dsn", &dsn];
    args.extend_from_slice(tls);
    let out = bintrail(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !stderr.contains(password) || password.is_empty(),
        "password leaked: {stderr}"
    );
    (out.status.code().unwrap_or(-1), stderr)
}

fn ok(what: &str, (code, stderr): (i32, String)) {
    assert_eq!(code, 0, "{what} should connect: {stderr}");
}

fn fails(what: &str, (code, stderr): (i32, String), says: &str) {
    assert_ne!(code, 0, "{what} should fail");
    assert!(
        stderr.contains(says),
        "{what}: expected {says:?} in: {stderr}"
    );
}

async fn use_server_cert(server: &TestServer, certs: &Certs, name: &str) {
    server
        .exec(&format!(
            "SET GLOBAL ssl_cert = '{}', ssl_key = '{}'; ALTER INSTANCE RELOAD TLS",
            certs.path(&format!("{name}-cert.pem")),
            certs.path(&format!("{name}-key.pem"))
        ))
        .await;
}

#[tokio::test]
async fn ssl_modes_keep_mysql_meanings_against_mysql_9_7() {
    let certs = Certs::generate();
    let (ca, cert, key) = (
        format!("--ssl-ca={}", certs.path("ca.pem")),
        format!("--ssl-cert={}", certs.path("server-cert.pem")),
        format!("--ssl-key={}", certs.path("server-key.pem")),
    );
    let server = TestServer::start(Flavor::Mysql, &[&ca, &cert, &key]);
    let port = server.port;
    server
        .exec(&format!(
            "CREATE USER 'tls_user'@'%' IDENTIFIED WITH caching_sha2_password BY '{TLS_PASSWORD}' REQUIRE SSL;
             GRANT ALL ON *.* TO 'tls_user'@'%';
             CREATE USER 'x509_user'@'%' IDENTIFIED BY '{X509_PASSWORD}' REQUIRE X509;
             GRANT ALL ON *.* TO 'x509_user'@'%'"
        ))
        .await;
    let ca_file = certs.path("ca.pem");
    let other_ca = certs.path("other-ca.pem");
    let (client_cert, client_key) = (certs.path("client-cert.pem"), certs.path("client-key.pem"));
    let tls = |user: &str, pw: &str, host: &str, flags: &[&str]| init(user, pw, host, port, flags);
    let u = ("tls_user", TLS_PASSWORD);

    // disabled: plaintext (the REQUIRE SSL account is refused, root without a password is not).
    fails(
        "disabled",
        tls(u.0, u.1, "127.0.0.1", &["--ssl-mode", "disabled"]),
        "cannot connect",
    );
    ok(
        "disabled as root",
        tls("root", "", "127.0.0.1", &["--ssl-mode", "disabled"]),
    );
    // preferred / required: TLS without checks (a REQUIRE SSL account gets in).
    ok(
        "preferred",
        tls(u.0, u.1, "127.0.0.1", &["--ssl-mode", "preferred"]),
    );
    ok(
        "required",
        tls(u.0, u.1, "127.0.0.1", &["--ssl-mode", "required"]),
    );
    // verify-ca / verify-full with the right CA, by IP and by name.
    ok(
        "verify-ca",
        tls(
            u.0,
            u.1,
            "127.0.0.1",
            &["--ssl-mode", "verify-ca", "--ssl-ca", &ca_file],
        ),
    );
    ok(
        "verify-full by IP",
        tls(
            u.0,
            u.1,
            "127.0.0.1",
            &["--ssl-mode", "verify-full", "--ssl-ca", &ca_file],
        ),
    );
    ok(
        "verify-full by name",
        tls(
            u.0,
            u.1,
            "localhost",
            &["--ssl-mode", "verify-full", "--ssl-ca", &ca_file],
        ),
    );
    // The wrong CA.
    for mode in ["verify-ca", "verify-full"] {
        fails(
            &format!("{mode} with another CA"),
            tls(
                u.0,
                u.1,
                "127.0.0.1",
                &["--ssl-mode", mode, "--ssl-ca", &other_ca],
            ),
            "was not issued by the CA in --ssl-ca",
        );
    }
    // TLS 1.2 and TLS 1.3 each on their own.
    for version in ["TLSv1.2", "TLSv1.3"] {
        server
            .exec(&format!(
                "SET GLOBAL tls_version = '{version}'; ALTER INSTANCE RELOAD TLS"
            ))
            .await;
        ok(
            version,
            tls(
                u.0,
                u.1,
                "127.0.0.1",
                &["--ssl-mode", "verify-full", "--ssl-ca", &ca_file],
            ),
        );
    }
    server
        .exec("SET GLOBAL tls_version = 'TLSv1.2,TLSv1.3'; ALTER INSTANCE RELOAD TLS")
        .await;

    // A certificate for another name: only verify-full minds.
    use_server_cert(&server, &certs, "elsewhere").await;
    fails(
        "verify-full, certificate for another name",
        tls(
            u.0,
            u.1,
            "127.0.0.1",
            &["--ssl-mode", "verify-full", "--ssl-ca", &ca_file],
        ),
        "certificate is not valid for the host name '127.0.0.1' (it is valid for db.example.com)",
    );
    ok(
        "verify-ca, certificate for another name",
        tls(
            u.0,
            u.1,
            "127.0.0.1",
            &["--ssl-mode", "verify-ca", "--ssl-ca", &ca_file],
        ),
    );
    ok(
        "required, certificate for another name",
        tls(u.0, u.1, "127.0.0.1", &["--ssl-mode", "required"]),
    );
    // verify-ca skips only the name: a certificate of the right CA that is not for servers
    // (the client certificate: extendedKeyUsage clientAuth; no subjectAltName) is refused.
    use_server_cert(&server, &certs, "client").await;
    fails(
        "verify-ca, a certificate not for servers",
        tls(
            u.0,
            u.1,
            "127.0.0.1",
            &["--ssl-mode", "verify-ca", "--ssl-ca", &ca_file],
        ),
        "the server's TLS certificate was refused (--ssl-mode verify-ca): certificate does not allow extended key usage",
    );
    ok(
        "required, a certificate not for servers",
        tls(u.0, u.1, "127.0.0.1", &["--ssl-mode", "required"]),
    );
    use_server_cert(&server, &certs, "server").await;

    // A REQUIRE X509 account gets in only with the client certificate.
    let full = ["--ssl-mode", "verify-full", "--ssl-ca", &ca_file];
    fails(
        "X509 without a client certificate",
        tls("x509_user", X509_PASSWORD, "127.0.0.1", &full),
        "--ssl-cert",
    );
    let with_cert = [
        &full[..],
        &["--ssl-cert", &client_cert, "--ssl-key", &client_key],
    ]
    .concat();
    ok(
        "X509 with the client certificate",
        tls("x509_user", X509_PASSWORD, "127.0.0.1", &with_cert),
    );

    // And a whole stream over verify-full with the client certificate: source and index on this
    // server (caching_sha2_password over TLS).
    let db = unique("tls");
    server
        .exec(&format!(
            "CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(10))"
        ))
        .await;
    let source_dsn = format!("mysql://x509_user:{X509_PASSWORD}@localhost:{port}/");
    let index_dsn = format!("mysql://x509_user:{X509_PASSWORD}@127.0.0.1:{port}/tls_idx");
    let stream = ServiceStream::start(&source_dsn, &index_dsn, 4301, &with_cert, &[]);
    wait_until(Duration::from_secs(60), "the stream to start", || async {
        let log = stream.log();
        if log.contains("streaming") {
            Ok(())
        } else {
            Err(log)
        }
    })
    .await;
    server
        .exec(&format!("INSERT INTO {db}.t VALUES (1, 'a'), (2, 'b')"))
        .await;
    wait_until(Duration::from_secs(30), "2 changes over TLS", || async {
        let mut conn = server.conn(Some("tls_idx")).await;
        let n: Option<u64> = conn
            .exec_first(
                "SELECT COUNT(*) FROM binlog_events WHERE schema_name = ?",
                (db.as_str(),),
            )
            .await
            .unwrap();
        conn.disconnect().await.ok();
        if n == Some(2) {
            Ok(())
        } else {
            Err(format!("{n:?}; log: {}", stream.log()))
        }
    })
    .await;
    let log = stream.log();
    assert!(!log.contains(X509_PASSWORD), "password in the log: {log}");
    assert_eq!(stream.stop().await, 0);
    std::fs::remove_dir_all(&certs.dir).ok();
}

#[tokio::test]
async fn a_server_without_tls_is_plaintext_only_when_preferred() {
    // The MariaDB build here offers no TLS; the index (MySQL) does.
    let mariadb = TestServer::shared(Flavor::Mariadb);
    let index = crate::support::stream::Index::new();
    let stream = ServiceStream::start(
        &mariadb.dsn(None),
        &index.dsn(),
        4302,
        &["--ssl-mode", "preferred"],
        &[],
    );
    let log = wait_until(Duration::from_secs(60), "the stream to start", || async {
        let log = stream.log();
        if log.contains("streaming") {
            Ok(log)
        } else {
            Err(log)
        }
    })
    .await;
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("server does not offer TLS; connecting in plaintext")
            && l.contains("role=\"source\"")),
        "preferred connects and warns: {log}"
    );
    assert_eq!(stream.stop().await, 0);

    let out = bintrail(&[
        "stream",
        "--source-dsn",
        &mariadb.dsn(None),
        "--index-dsn",
        &index.dsn(),
        "--server-id",
        "4303",
        "--ssl-mode",
        "required",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "a definite error, no retry loop: {stderr}"
    );
    assert!(
        stderr.contains("cannot connect to the source")
            && stderr
                .contains("the server does not offer TLS, and --ssl-mode required requires it"),
        "{stderr}"
    );
}

/// Runs `bintrail args…`; returns (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = bintrail(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test]
async fn source_and_index_with_different_cas_each_verified_with_its_own() {
    // Two servers, each with a CA of its own: the source's and the index's certificates are
    // issued by different CAs, so one --ssl-ca cannot verify both.
    let (source_certs, index_certs) = (Certs::generate(), Certs::generate());
    let server_flags = |c: &Certs| {
        [
            format!("--ssl-ca={}", c.path("ca.pem")),
            format!("--ssl-cert={}", c.path("server-cert.pem")),
            format!("--ssl-key={}", c.path("server-key.pem")),
        ]
    };
    let (sf, xf) = (server_flags(&source_certs), server_flags(&index_certs));
    let source = TestServer::start(Flavor::Mysql, &[&sf[0], &sf[1], &sf[2]]);
    let index_server =
        TestServer::start(Flavor::Mysql, &[&xf[0], &xf[1], &xf[2], "--skip-log-bin"]);
    let (source_ca, index_ca) = (source_certs.path("ca.pem"), index_certs.path("ca.pem"));
    let idx_db = unique("tls_idx");
    let index_dsn = format!("mysql://root@127.0.0.1:{}/{idx_db}", index_server.port);
    let source_dsn = source.dsn(None);
    let tls = [
        "--ssl-mode",
        "verify-ca",
        "--ssl-ca",
        &source_ca,
        "--index-ssl-mode",
        "verify-full",
        "--index-ssl-ca",
        &index_ca,
    ];
    let index_tls = &tls[4..];

    // The source's CA alone (what one --ssl-mode for both meant) cannot verify the index.
    let (code, _, stderr) = run(&[
        &["init", "--index-dsn", &index_dsn][..],
        &["--ssl-mode", "verify-ca", "--ssl-ca", &source_ca],
    ]
    .concat());
    assert_eq!(code, 3, "a definite error: {stderr}");
    assert!(
        stderr.contains("cannot connect to the index")
            && stderr.contains(&format!(
                "was not issued by the CA in --ssl-ca '{source_ca}' (--ssl-mode verify-ca)"
            ))
            && stderr.contains("unless --index-ssl-mode, --index-ssl-ca"),
        "names the CA file and the index's own flags: {stderr}"
    );
    let (code, _, stderr) = run(&[
        &["init", "--index-dsn", &index_dsn][..],
        &[
            "--index-ssl-mode",
            "verify-full",
            "--index-ssl-ca",
            &source_ca,
        ],
    ]
    .concat());
    assert_eq!(code, 3, "a definite error: {stderr}");
    assert!(
        stderr.contains(&format!(
            "was not issued by the CA in --index-ssl-ca '{source_ca}' (--index-ssl-mode verify-full)"
        )),
        "{stderr}"
    );
    let (code, _, stderr) = run(&[&["init", "--index-dsn", &index_dsn][..], index_tls].concat());
    assert_eq!(code, 0, "init with the index's own CA: {stderr}");

    let db = unique("tls2");
    source
        .exec(&format!(
            "CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(10))"
        ))
        .await;
    let stream = ServiceStream::start(&source_dsn, &index_dsn, 4311, &tls, &[]);
    let log = wait_until(Duration::from_secs(60), "the stream to start", || async {
        let log = stream.log();
        if log.contains("streaming") {
            Ok(log)
        } else {
            Err(log)
        }
    })
    .await;
    assert!(
        log.lines().any(|l| l.contains("connected")
            && l.contains(&format!("source_tls=verify-ca (CA {source_ca})"))
            && l.contains(&format!("index_tls=verify-full (CA {index_ca})"))),
        "the log says which TLS each connection has: {log}"
    );
    source
        .exec(&format!("INSERT INTO {db}.t VALUES (1, 'a'), (2, 'b')"))
        .await;
    wait_until(Duration::from_secs(30), "2 changes", || async {
        let mut conn = index_server.conn(Some(&idx_db)).await;
        let n: Option<u64> = conn
            .exec_first(
                "SELECT COUNT(*) FROM binlog_events WHERE schema_name = ?",
                (db.as_str(),),
            )
            .await
            .unwrap();
        conn.disconnect().await.ok();
        if n == Some(2) {
            Ok(())
        } else {
            Err(format!("{n:?}; log: {}", stream.log()))
        }
    })
    .await;
    assert_eq!(stream.stop().await, 0);

    // The read side, each with the index's own TLS flags (and the source's for --source-dsn).
    let idx = ["--index-dsn", index_dsn.as_str()];
    let src = ["--source-dsn", source_dsn.as_str()];
    let (code, out, err) = run(&[&["status"][..], &idx, &src, &tls].concat());
    assert_eq!(code, 0, "status: {err}");
    assert!(out.contains("4311"), "status shows the stream: {out}");
    let table = ["--schema", db.as_str(), "--table", "t"];
    let (code, out, err) =
        run(&[&["query"][..], &idx, &table, &tls, &["--format", "json"]].concat());
    assert_eq!((code, out.lines().count()), (0, 2), "query: {out}{err}");
    let (code, out, err) = run(&[&["recover"][..], &idx, &src, &table, &tls].concat());
    assert_eq!(code, 0, "recover: {err}");
    assert!(
        out.contains("DELETE FROM"),
        "recover writes the undo: {out}"
    );
    let (code, _, err) = run(&[&["rotate"][..], &idx, index_tls, &["--dry-run"]].concat());
    assert_eq!(code, 0, "rotate: {err}");
    // And each refuses the source's CA for the index, naming it.
    for cmd in ["status", "query", "rotate"] {
        let (code, _, err) = run(&[
            &[cmd][..],
            &idx,
            &["--ssl-mode", "verify-ca", "--ssl-ca", &source_ca],
        ]
        .concat());
        assert_eq!(code, 3, "{cmd} with the source's CA for the index: {err}");
        assert!(
            err.contains("cannot connect to the index")
                && err.contains(&format!("not issued by the CA in --ssl-ca '{source_ca}'")),
            "{cmd}: {err}"
        );
    }
    std::fs::remove_dir_all(&source_certs.dir).ok();
    std::fs::remove_dir_all(&index_certs.dir).ok();
}

#[tokio::test]
async fn a_tls_parameter_in_a_dsn_is_honoured() {
    // MariaDB here offers no TLS: the default (preferred) connects in plaintext, so a
    // tls=skip-verify that is honoured (required) is refused, and one ignored would connect.
    let mariadb = TestServer::shared(Flavor::Mariadb);
    let db = unique("dsn_tls");
    let plain = format!("root@tcp(127.0.0.1:{})/{db}", mariadb.port);
    let (code, _, err) = run(&["init", "--index-dsn", &plain]);
    assert_eq!(code, 0, "without the parameter: {err}");
    let (code, _, err) = run(&["init", "--index-dsn", &format!("{plain}?tls=skip-verify")]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("the DSN's TLS parameter sets the connection's --index-ssl-mode")
            && err.contains("tls=skip-verify")
            && err.contains(
                "the server does not offer TLS, and --index-ssl-mode required requires it"
            ),
        "{err}"
    );
    let (code, _, err) = run(&[
        "init",
        "--index-dsn",
        &format!(
            "mysql://root@127.0.0.1:{}/{db}?ssl-mode=DISABLED",
            mariadb.port
        ),
    ]);
    assert_eq!(code, 0, "ssl-mode=DISABLED: {err}");
}

/// What `openssl x509 -text` says about a certificate file.
fn describe_cert(path: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(path)
        .output()
        .expect("openssl CLI");
    assert!(out.status.success(), "openssl x509 {}", path.display());
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test]
async fn verify_ca_accepts_mysqls_auto_generated_certificate_on_both_connections() {
    // A stock MySQL: the CA and server certificate it generated in its data dir at first start.
    let server = TestServer::shared(Flavor::Mysql);
    let auto_ca = server.data_dir().join("ca.pem").display().to_string();
    let leaf = describe_cert(&server.data_dir().join("server-cert.pem"));
    assert!(
        leaf.contains("Auto_Generated_Server_Certificate")
            && !leaf.contains("Subject Alternative Name"),
        "the case under test is a certificate that names no host: {leaf}"
    );
    // A second stock MySQL with certificates of its own: its CA has the first's name and
    // another key.
    let other = TestServer::start(Flavor::Mysql, &["--skip-log-bin"]);
    other.regenerate_certificates();
    let other_ca = other.data_dir().join("ca.pem").display().to_string();
    assert_ne!(
        std::fs::read(&auto_ca).unwrap(),
        std::fs::read(&other_ca).unwrap(),
        "two CAs"
    );
    let certs = Certs::generate();
    let unrelated_ca = certs.path("other-ca.pem");
    let port = server.port;
    let root_init = |host: &str, flags: &[&str]| init("root", "", host, port, flags);

    // The index connection, by the source's flags and by its own.
    for host in ["127.0.0.1", "localhost"] {
        ok(
            &format!("verify-ca by {host}"),
            root_init(host, &["--ssl-mode", "verify-ca", "--ssl-ca", &auto_ca]),
        );
    }
    ok(
        "--index-ssl-mode verify-ca",
        root_init(
            "127.0.0.1",
            &["--index-ssl-mode", "verify-ca", "--index-ssl-ca", &auto_ca],
        ),
    );
    for (what, ca) in [
        ("an unrelated CA", &unrelated_ca),
        ("another server's", &other_ca),
    ] {
        fails(
            &format!("verify-ca with {what}"),
            root_init("127.0.0.1", &["--ssl-mode", "verify-ca", "--ssl-ca", ca]),
            &format!("was not issued by the CA in --ssl-ca '{ca}' (--ssl-mode verify-ca)"),
        );
        fails(
            &format!("--index-ssl-mode verify-ca with {what}"),
            root_init(
                "127.0.0.1",
                &["--index-ssl-mode", "verify-ca", "--index-ssl-ca", ca],
            ),
            &format!(
                "was not issued by the CA in --index-ssl-ca '{ca}' (--index-ssl-mode verify-ca)"
            ),
        );
    }
    fails(
        "verify-ca with another auto-generated CA",
        root_init(
            "127.0.0.1",
            &["--ssl-mode", "verify-ca", "--ssl-ca", &other_ca],
        ),
        "another CA of the same name",
    );
    // verify-full keeps checking the name, which this certificate does not have.
    fails(
        "verify-full with the auto-generated certificate",
        root_init(
            "127.0.0.1",
            &["--ssl-mode", "verify-full", "--ssl-ca", &auto_ca],
        ),
        "the server's TLS certificate has no subjectAltName, so it names no host",
    );

    // The source connection: a stream from this server into an index on the other, each
    // connection verified with its own server's auto-generated CA.
    let db = unique("tls_auto");
    server
        .exec(&format!(
            "CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(10))"
        ))
        .await;
    let idx_db = unique("tls_auto_idx");
    let index_dsn = format!("mysql://root@127.0.0.1:{}/{idx_db}", other.port);
    let source_dsn = server.dsn(None);
    let tls = [
        "--ssl-mode",
        "verify-ca",
        "--ssl-ca",
        &auto_ca,
        "--index-ssl-mode",
        "verify-ca",
        "--index-ssl-ca",
        &other_ca,
    ];
    let (code, _, err) = run(&[&["init", "--index-dsn", &index_dsn][..], &tls[4..]].concat());
    assert_eq!(code, 0, "init the index: {err}");
    let stream = ServiceStream::start(&source_dsn, &index_dsn, 4321, &tls, &[]);
    let log = wait_until(Duration::from_secs(60), "the stream to start", || async {
        let log = stream.log();
        if log.contains("streaming") {
            Ok(log)
        } else {
            Err(log)
        }
    })
    .await;
    assert!(
        log.lines().any(|l| l.contains("connected")
            && l.contains(&format!("source_tls=verify-ca (CA {auto_ca})"))
            && l.contains(&format!("index_tls=verify-ca (CA {other_ca})"))),
        "the log says which TLS each connection has: {log}"
    );
    server
        .exec(&format!("INSERT INTO {db}.t VALUES (1, 'a'), (2, 'b')"))
        .await;
    wait_until(Duration::from_secs(30), "2 changes", || async {
        let mut conn = other.conn(Some(&idx_db)).await;
        let n: Option<u64> = conn
            .exec_first(
                "SELECT COUNT(*) FROM binlog_events WHERE schema_name = ?",
                (db.as_str(),),
            )
            .await
            .unwrap();
        conn.disconnect().await.ok();
        if n == Some(2) {
            Ok(())
        } else {
            Err(format!("{n:?}; log: {}", stream.log()))
        }
    })
    .await;
    assert_eq!(stream.stop().await, 0);

    // The read side's source connection, with the right CA and with the other server's.
    let base = [
        "status",
        "--index-dsn",
        &index_dsn,
        "--source-dsn",
        &source_dsn,
    ];
    let (code, out, err) = run(&[&base[..], &tls].concat());
    assert_eq!(code, 0, "status with --source-dsn: {err}");
    assert!(out.contains("4321"), "status shows the stream: {out}");
    let wrong = [&tls[..2], &["--ssl-ca", &other_ca], &tls[4..]].concat();
    let (code, _, err) = run(&[&base[..], &wrong].concat());
    assert_eq!(code, 3, "a definite error: {err}");
    assert!(
        err.contains("cannot connect to the source")
            && err.contains(&format!(
                "was not issued by the CA in --ssl-ca '{other_ca}' (--ssl-mode verify-ca)"
            )),
        "names the source's CA file: {err}"
    );
    std::fs::remove_dir_all(&certs.dir).ok();
}

//! The archive on S3 (or any S3-compatible service): objects under `s3://bucket/prefix/`,
//! addressed by the same relative paths as files under a directory.
//!
//! # Invariants
//! * **An object appears whole or not at all**: a single `PUT` is atomic in S3 (a reader
//!   sees the old object, or none, until the new one is complete; a failed upload leaves
//!   nothing), so a file goes up in one `PUT` with its SHA-256 as `x-amz-content-sha256`,
//!   which S3 checks against the bytes it received before storing them. One `PUT` carries up
//!   to 5 GiB; an hour of one table's changes, compressed, is far below that, and a larger
//!   file is refused before it is sent ([`MAX_PUT_BYTES`]) rather than split.
//! * **Transient failures are retried, the others explained**: an unreachable endpoint, a
//!   timeout, a reset connection and 5xx/429 answers are retried [`ATTEMPTS`] times with
//!   backoff; what is left is an error naming the method, the URL, what S3 said and what to
//!   do about it ([`hint`]).
//! * Configuration comes from the environment, as the AWS tools read it:
//!   `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` (or
//!   `AWS_DEFAULT_REGION`, else `us-east-1`), and `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`
//!   for another endpoint, which is then addressed path-style (`http://host:port/bucket/key`).

use std::io;
use std::path::Path;
use std::time::Duration;

use super::http::{self, Endpoint, Response};
use super::sigv4::{self, Credentials, EMPTY_SHA256};
use super::{Object, StoreError};
use crate::time::now;

/// The largest object one `PUT` may carry (S3's limit).
pub const MAX_PUT_BYTES: u64 = 5 << 30;

/// Tries per request, the first included.
pub const ATTEMPTS: u32 = 4;

/// The pause before the first retry; each further one is 4 times longer (0.25 s, 1 s, 4 s).
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// A bucket and prefix, with the endpoint and credentials to reach them.
#[derive(Debug, Clone)]
pub struct S3 {
    endpoint: Endpoint,
    path_style: bool,
    bucket: String,
    /// The key prefix without leading or trailing `/`; may be empty.
    prefix: String,
    region: String,
    creds: Credentials,
}

impl S3 {
    /// The store of `url` (`s3://bucket[/prefix]`), configured from `env` (the process
    /// environment, or a map in tests).
    pub fn from_env(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<S3, StoreError> {
        let usage = |what: String| StoreError::Config {
            location: url.to_string(),
            what,
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| usage("an S3 location is written s3://bucket/prefix".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
        if bucket.len() < 3 || bucket.len() > 63 || !bucket.chars().all(valid) {
            return Err(usage(format!(
                "{bucket:?} is not a bucket name (3 to 63 lower-case letters, digits, '-' and '.')"
            )));
        }
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        let (Some(access_key), Some(secret_key)) =
            (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
        else {
            return Err(usage(
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary \
                 credentials): bintrail reads S3 credentials from the environment only"
                    .into(),
            ));
        };
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        let (endpoint, path_style) =
            match var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL")) {
                Some(e) => (parse_endpoint(&e).map_err(usage)?, true),
                None => {
                    // A dotted bucket name does not match the wildcard certificate of the
                    // virtual host, so it is addressed path-style.
                    let path_style = bucket.contains('.');
                    let host = if path_style {
                        format!("s3.{region}.amazonaws.com")
                    } else {
                        format!("{bucket}.s3.{region}.amazonaws.com")
                    };
                    let endpoint = Endpoint {
                        tls: true,
                        host,
                        port: 443,
                    };
                    (endpoint, path_style)
                }
            };
        Ok(S3 {
            endpoint,
            path_style,
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            region,
            creds: Credentials {
                access_key,
                secret_key,
                session_token: var("AWS_SESSION_TOKEN"),
            },
        })
    }

    /// `s3://bucket/prefix`.
    pub fn location(&self) -> String {
        match self.prefix.as_str() {
            "" => format!("s3://{}", self.bucket),
            p => format!("s3://{}/{p}", self.bucket),
        }
    }

    fn key(&self, rel: &str) -> String {
        match self.prefix.as_str() {
            "" => rel.to_string(),
            p => format!("{p}/{rel}"),
        }
    }

    /// The request path (encoded) of object `key`, or of the bucket when `key` is empty.
    fn path(&self, key: &str) -> String {
        let raw = match (self.path_style, key) {
            (true, "") => format!("/{}", self.bucket),
            (true, k) => format!("/{}/{k}", self.bucket),
            (false, k) => format!("/{k}"),
        };
        sigv4::encode_path(&raw)
    }

    /// The URL of object `key`, for messages.
    fn url(&self, key: &str) -> String {
        format!("{}{}", self.endpoint.url(), self.path(key))
    }

    /// Uploads the local file `file` (`bytes` long, SHA-256 `sha256`) as object `rel`.
    pub async fn put_file(
        &self,
        rel: &str,
        file: &Path,
        bytes: u64,
        sha256: &str,
    ) -> Result<(), StoreError> {
        let key = self.key(rel);
        if bytes > MAX_PUT_BYTES {
            return Err(StoreError::TooLarge {
                url: self.url(&key),
                bytes,
            });
        }
        let r = self
            .request("PUT", &key, &[], None, Some((file, bytes)), sha256, None)
            .await?;
        self.expect(r, "PUT", &key, &[200])
    }

    /// Downloads object `rel` into `file`; `false` when there is no such object.
    pub async fn get_to_file(&self, rel: &str, file: &Path) -> Result<bool, StoreError> {
        let key = self.key(rel);
        let r = self
            .request("GET", &key, &[], None, None, EMPTY_SHA256, Some(file))
            .await?;
        if r.status == 404 {
            return Ok(false);
        }
        self.expect(r, "GET", &key, &[200]).map(|()| true)
    }

    /// `len` bytes of object `rel` from byte `start` (fewer at its end).
    pub async fn get_range(&self, rel: &str, start: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        let key = self.key(rel);
        if len == 0 {
            return Ok(Vec::new());
        }
        let range = format!("bytes={start}-{}", start + len - 1);
        let mut r = self
            .request("GET", &key, &[], Some(range), None, EMPTY_SHA256, None)
            .await?;
        let body = std::mem::take(&mut r.body);
        self.expect(r, "GET", &key, &[200, 206])?;
        Ok(body)
    }

    /// The size of object `rel`, or `None` when there is none.
    pub async fn head(&self, rel: &str) -> Result<Option<u64>, StoreError> {
        let key = self.key(rel);
        let r = self
            .request("HEAD", &key, &[], None, None, EMPTY_SHA256, None)
            .await?;
        if r.status == 404 {
            return Ok(None);
        }
        let size = r.header("content-length").and_then(|v| v.parse().ok());
        self.expect(r, "HEAD", &key, &[200])?;
        Ok(Some(size.unwrap_or(0)))
    }

    /// Deletes object `rel` (nothing when there is none).
    pub async fn delete(&self, rel: &str) -> Result<(), StoreError> {
        let key = self.key(rel);
        let r = self
            .request("DELETE", &key, &[], None, None, EMPTY_SHA256, None)
            .await?;
        self.expect(r, "DELETE", &key, &[200, 204, 404])
    }

    /// Every object whose relative path starts with `rel_prefix`, by path.
    pub async fn list(&self, rel_prefix: &str) -> Result<Vec<Object>, StoreError> {
        let root = self.key("");
        let prefix = format!("{root}{rel_prefix}");
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("list-type", "2"), ("prefix", prefix.as_str())];
            if let Some(t) = &token {
                query.push(("continuation-token", t.as_str()));
            }
            let mut r = self
                .request("GET", "", &query, None, None, EMPTY_SHA256, None)
                .await?;
            let body = String::from_utf8_lossy(&std::mem::take(&mut r.body)).into_owned();
            self.expect(r, "GET", "", &[200])?;
            for contents in elements(&body, "Contents") {
                let (Some(key), Some(size)) = (element(contents, "Key"), element(contents, "Size"))
                else {
                    continue;
                };
                if let Some(rel) = key.strip_prefix(&root) {
                    out.push(Object {
                        path: rel.to_string(),
                        bytes: size.parse().unwrap_or(0),
                    });
                }
            }
            token = element(&body, "NextContinuationToken");
            if element(&body, "IsTruncated").as_deref() != Some("true") || token.is_none() {
                break;
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// `Ok` when `r`'s status is one of `ok`, else the error S3 gave.
    fn expect(&self, r: Response, method: &str, key: &str, ok: &[u16]) -> Result<(), StoreError> {
        if ok.contains(&r.status) {
            return Ok(());
        }
        Err(self.refused(r, method, key))
    }

    /// The error of a response S3 refused.
    fn refused(&self, r: Response, method: &str, key: &str) -> StoreError {
        let body = String::from_utf8_lossy(&r.body);
        let code = element(&body, "Code").unwrap_or_else(|| format!("HTTP {}", r.status));
        let message = element(&body, "Message").unwrap_or_default();
        StoreError::S3 {
            method: method.to_string(),
            url: self.url(key),
            status: r.status,
            hint: hint(&code, r.status),
            code,
            message,
        }
    }

    /// Signs and sends one request, retrying transient failures.
    #[allow(clippy::too_many_arguments)]
    async fn request(
        &self,
        method: &str,
        key: &str,
        query: &[(&str, &str)],
        range: Option<String>,
        body: Option<(&Path, u64)>,
        payload_sha256: &str,
        into: Option<&Path>,
    ) -> Result<Response, StoreError> {
        let path = self.path(key);
        let target = match sigv4::canonical_query(query) {
            q if q.is_empty() => path.clone(),
            q => format!("{path}?{q}"),
        };
        let mut last_error = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                let pause = FIRST_BACKOFF * 4u32.pow(attempt - 1);
                tracing::warn!(method, url = %self.url(key), attempt, retry_in_ms = pause.as_millis() as u64, error = %last_error.as_ref().map_or(String::new(), |e: &Failed| e.to_string()), "S3 request failed; retrying");
                tokio::time::sleep(pause).await;
            }
            let amz_date = sigv4::amz_date(now());
            let mut headers: Vec<(&str, String)> = vec![
                ("host", self.endpoint.host_header()),
                ("x-amz-content-sha256", payload_sha256.to_string()),
                ("x-amz-date", amz_date.clone()),
            ];
            if let Some(t) = &self.creds.session_token {
                headers.push(("x-amz-security-token", t.clone()));
            }
            if let Some(r) = &range {
                headers.push(("range", r.clone()));
            }
            let auth = sigv4::sign(
                &self.creds,
                &self.region,
                &amz_date,
                &sigv4::Request {
                    method,
                    path: &path,
                    query,
                    headers: &headers,
                    payload_sha256,
                },
            );
            headers.retain(|(k, _)| *k != "host");
            headers.push(("authorization", auth));
            let req = http::Request {
                method,
                target: &target,
                headers,
                body,
            };
            match http::send(&self.endpoint, &req, into).await {
                Ok(r) if r.status >= 500 || r.status == 429 => {
                    last_error = Some(Failed::Status(r));
                }
                Ok(r) => return Ok(r),
                Err(e) => last_error = Some(Failed::Io(e)),
            }
        }
        match last_error {
            Some(Failed::Status(r)) => Err(self.refused(r, method, key)),
            Some(Failed::Io(source)) => Err(StoreError::Unreachable {
                method: method.to_string(),
                url: self.url(key),
                attempts: ATTEMPTS,
                source,
            }),
            None => unreachable!("ATTEMPTS is at least 1"),
        }
    }
}

/// A failed attempt.
enum Failed {
    Status(Response),
    Io(io::Error),
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::Status(r) => write!(f, "HTTP {}", r.status),
            Failed::Io(e) => write!(f, "{e}"),
        }
    }
}

/// What to do about an S3 error code.
pub fn hint(code: &str, status: u16) -> &'static str {
    match code {
        "NoSuchBucket" => "the bucket does not exist: create it, or correct the bucket in --archive s3://BUCKET/prefix",
        "InvalidAccessKeyId" => "the endpoint does not know AWS_ACCESS_KEY_ID: check the key, and AWS_ENDPOINT_URL if it is not AWS",
        "SignatureDoesNotMatch" => "check AWS_SECRET_ACCESS_KEY (it must belong to AWS_ACCESS_KEY_ID)",
        "ExpiredToken" | "InvalidToken" | "TokenRefreshRequired" => "the temporary credentials expired: refresh AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN",
        "AccessDenied" | "AllAccessDisabled" => "the credentials may not do this: rotate needs s3:PutObject, archive verify s3:GetObject, both s3:ListBucket, on the bucket and prefix",
        "PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException" => "the bucket is in another region: set AWS_REGION to the bucket's region",
        "RequestTimeTooSkewed" => "this machine's clock is too far off: synchronise it (NTP)",
        "BadDigest" | "XAmzContentSHA256Mismatch" => "the bytes S3 received differ from the file: the network or the disk corrupted them; run again",
        _ if status >= 500 || status == 429 => "the service kept failing; run again later",
        _ => "see the S3 error code in the S3 API reference",
    }
}

/// `http[s]://host[:port][/]` as an endpoint.
fn parse_endpoint(url: &str) -> Result<Endpoint, String> {
    let bad =
        || format!("AWS_ENDPOINT_URL {url:?} is not http://host[:port] or https://host[:port]");
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad());
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') || authority.contains('@') {
        return Err(bad());
    }
    let default = if tls { 443 } else { 80 };
    // `[::1]:9000`: the brackets delimit an IPv6 address, whose colons are not the port's.
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            match after.strip_prefix(':') {
                Some(p) => (host, p.parse::<u16>().map_err(|_| bad())?),
                None if after.is_empty() => (host, default),
                None => return Err(bad()),
            }
        }
        None => match authority.split_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
            None => (authority, default),
        },
    };
    let host = host.to_string();
    Ok(Endpoint { tls, host, port })
}

/// The text of the first `<name>…</name>` in `xml`, entities decoded.
fn element(xml: &str, name: &str) -> Option<String> {
    elements(xml, name).next().map(unescape)
}

/// The inner text of every `<name>…</name>` in `xml`, in order. S3's XML has no attributes on
/// these elements and never nests an element in one of the same name.
fn elements<'a>(xml: &'a str, name: &str) -> impl Iterator<Item = &'a str> + 'a {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let len = rest[start..].find(&close)?;
        let inner = &rest[start..start + len];
        rest = &rest[start + len + close.len()..];
        Some(inner)
    })
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    const KEYS: [(&str, &str); 2] = [("AWS_ACCESS_KEY_ID", "AK"), ("AWS_SECRET_ACCESS_KEY", "SK")];

    #[test]
    fn an_endpoint_override_is_addressed_path_style() {
        let mut vars = KEYS.to_vec();
        vars.push(("AWS_ENDPOINT_URL", "http://127.0.0.1:5000/"));
        let s3 = S3::from_env("s3://bkt/cold/tier/", &env(&vars)).unwrap();
        assert_eq!(s3.location(), "s3://bkt/cold/tier");
        assert_eq!(
            s3.url(&s3.key("schema=a/x.parquet")),
            "http://127.0.0.1:5000/bkt/cold/tier/schema%3Da/x.parquet"
        );
        assert_eq!(s3.region, "us-east-1");
    }

    #[test]
    fn aws_itself_is_addressed_by_virtual_host_in_the_region() {
        let mut vars = KEYS.to_vec();
        vars.push(("AWS_DEFAULT_REGION", "eu-west-1"));
        let s3 = S3::from_env("s3://bkt", &env(&vars)).unwrap();
        assert_eq!(
            s3.url(&s3.key("a")),
            "https://bkt.s3.eu-west-1.amazonaws.com/a"
        );
        let dotted = S3::from_env("s3://b.k.t/p", &env(&vars)).unwrap();
        assert_eq!(
            dotted.url(&dotted.key("a")),
            "https://s3.eu-west-1.amazonaws.com/b.k.t/p/a"
        );
    }

    #[test]
    fn missing_credentials_and_bad_names_say_what_to_set() {
        let e = S3::from_env("s3://bkt/p", &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("AWS_ACCESS_KEY_ID"), "{e}");
        let e = S3::from_env("s3://Bad_Bucket/p", &env(&KEYS))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a bucket name"), "{e}");
        let mut vars = KEYS.to_vec();
        vars.push(("AWS_ENDPOINT_URL", "localhost:9000"));
        let e = S3::from_env("s3://bkt", &env(&vars))
            .unwrap_err()
            .to_string();
        assert!(e.contains("AWS_ENDPOINT_URL"), "{e}");
    }

    #[test]
    fn list_results_and_errors_are_read_from_s3_xml() {
        let xml = "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>p/a&amp;b</Key>\
                   <Size>12</Size></Contents><Contents><Key>p/c</Key><Size>3</Size></Contents>\
                   <NextContinuationToken>t=1</NextContinuationToken></ListBucketResult>";
        let keys: Vec<String> = elements(xml, "Contents")
            .filter_map(|c| element(c, "Key"))
            .collect();
        assert_eq!(keys, vec!["p/a&b", "p/c"]);
        assert_eq!(
            element(xml, "NextContinuationToken").as_deref(),
            Some("t=1")
        );
        let err = "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>";
        assert_eq!(element(err, "Code").as_deref(), Some("NoSuchBucket"));
        assert!(hint("NoSuchBucket", 404).contains("create it"));
        assert!(hint("InternalError", 500).contains("later"));
    }
}

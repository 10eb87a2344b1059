//! AWS Signature Version 4 for S3 requests (header-based, payload hash in
//! `x-amz-content-sha256`), as the S3 API reference describes it
//! ("Authenticating Requests: Using the Authorization Header").
//!
//! # Invariants
//! * The canonical URI is the request path with every byte outside the unreserved set
//!   (`A-Z a-z 0-9 - _ . ~`) and `/` percent-encoded once (S3 does not double-encode, unlike
//!   the other services), and the canonical query has every name and value encoded the same
//!   way, `/` included, sorted by name. The path sent on the wire is the same string, so what
//!   is signed is what is sent.
//! * Every header handed to [`sign`] is signed (names lower-cased, sorted, values trimmed):
//!   the caller decides which ones (`host`, `range`, `x-amz-*`), never the signer.
//! * Checked against the worked examples of the S3 documentation (tests below).

use ring::hmac;
use sha2::{Digest, Sha256};

use crate::archive::writer::hex;

/// The SHA-256 of an empty payload, which GET, HEAD, DELETE and LIST send.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Credentials: an access key, its secret and, for temporary credentials, a session token.
#[derive(Clone)]
pub struct Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_key: String,
    /// `AWS_SESSION_TOKEN`, sent as `x-amz-security-token`.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret and the token never reach a log line.
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// One request to sign.
pub struct Request<'a> {
    /// `GET`, `PUT`, …
    pub method: &'a str,
    /// The path, already encoded by [`encode_path`].
    pub path: &'a str,
    /// Query parameters, not encoded.
    pub query: &'a [(&'a str, &'a str)],
    /// Headers to sign (must include `host`, `x-amz-date`, `x-amz-content-sha256`).
    pub headers: &'a [(&'a str, String)],
    /// Hex SHA-256 of the body.
    pub payload_sha256: &'a str,
}

/// The `Authorization` header value for `req` at `amz_date` (`YYYYMMDDTHHMMSSZ`).
pub fn sign(creds: &Credentials, region: &str, amz_date: &str, req: &Request) -> String {
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    headers.sort();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        req.path,
        canonical_query(req.query),
        canonical_headers,
        signed,
        req.payload_sha256
    );
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = mac(
        format!("AWS4{}", creds.secret_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [region, "s3", "aws4_request"] {
        key = mac(&key, part.as_bytes());
    }
    let signature = hex(&mac(&key, to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
        creds.access_key
    )
}

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

/// The query string as signed and sent: sorted by name, names and values encoded.
pub fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (encode(k, true), encode(v, true)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A path as signed and sent: every byte but the unreserved ones and `/` encoded.
pub fn encode_path(path: &str) -> String {
    encode(path, false)
}

fn encode(text: &str, slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if !slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `YYYYMMDDTHHMMSSZ` for Unix time `t`.
pub fn amz_date(t: i64) -> String {
    let s = crate::time::format_utc(t);
    // "YYYY-MM-DD HH:MM:SS"
    format!(
        "{}{}{}T{}{}{}Z",
        &s[0..4],
        &s[5..7],
        &s[8..10],
        &s[11..13],
        &s[14..16],
        &s[17..19]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked examples of the S3 API reference, "Signature Calculations for the
    // Authorization Header: Transferring Payload in a Single Chunk (AWS Signature Version 4)".
    fn example() -> Credentials {
        Credentials {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    #[test]
    fn the_documented_get_object_with_a_range_signs_as_documented() {
        let headers = [
            ("Host", "examplebucket.s3.amazonaws.com".to_string()),
            ("Range", "bytes=0-9".to_string()),
            ("x-amz-content-sha256", EMPTY_SHA256.to_string()),
            ("x-amz-date", "20130524T000000Z".to_string()),
        ];
        let auth = sign(
            &example(),
            "us-east-1",
            "20130524T000000Z",
            &Request {
                method: "GET",
                path: "/test.txt",
                query: &[],
                headers: &headers,
                payload_sha256: EMPTY_SHA256,
            },
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn the_documented_list_objects_signs_as_documented() {
        let headers = [
            ("host", "examplebucket.s3.amazonaws.com".to_string()),
            ("x-amz-content-sha256", EMPTY_SHA256.to_string()),
            ("x-amz-date", "20130524T000000Z".to_string()),
        ];
        let auth = sign(
            &example(),
            "us-east-1",
            "20130524T000000Z",
            &Request {
                method: "GET",
                path: "/",
                query: &[("prefix", "J"), ("max-keys", "2")],
                headers: &headers,
                payload_sha256: EMPTY_SHA256,
            },
        );
        assert!(
            auth.ends_with(
                "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
            ),
            "{auth}"
        );
    }

    #[test]
    fn hive_paths_are_encoded_once_and_query_values_fully() {
        assert_eq!(
            encode_path("/b/p/schema=a%2Fb/hour=01/x.parquet"),
            "/b/p/schema%3Da%252Fb/hour%3D01/x.parquet"
        );
        assert_eq!(
            canonical_query(&[("prefix", "p/schema=x"), ("list-type", "2")]),
            "list-type=2&prefix=p%2Fschema%3Dx"
        );
        assert_eq!(amz_date(1_369_353_600), "20130524T000000Z");
    }
}

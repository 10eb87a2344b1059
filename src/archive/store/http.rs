//! The smallest HTTP/1.1 client S3 needs: one request per connection (`Connection: close`),
//! over TCP or TLS (tokio-rustls, the web PKI roots of `webpki-roots`, both already built for
//! the MySQL connections), a request body streamed from a file, a response body read into
//! memory or streamed into a file.
//!
//! # Invariants
//! * Every connect, handshake, read and write has its own deadline ([`IO_TIMEOUT`]), so a
//!   stalled peer becomes an error ([`std::io::ErrorKind::TimedOut`]) instead of a hang, however
//!   large the body.
//! * A response body is delimited the three ways HTTP/1.1 allows: `Content-Length`,
//!   `Transfer-Encoding: chunked`, or the end of the connection; HEAD, 204 and 304 have none.
//!   A body shorter than its `Content-Length` is an error, never a short object.
//! * Status handling is the caller's: every complete response is `Ok`.

use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The deadline of one network step (connect, handshake, one read, one write).
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Where requests go: scheme, host and port of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https` or `http`.
    pub tls: bool,
    /// Host name or IP address.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Endpoint {
    /// `https://host` or `http://host:port`, for messages.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.host_header())
    }

    /// The `Host` header value: the host, an IPv6 address in brackets, and a port other than
    /// the scheme's.
    pub fn host_header(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// A request: method, path with query, headers, and the body.
pub struct Request<'a> {
    /// `GET`, `PUT`, `HEAD`, `DELETE`.
    pub method: &'a str,
    /// Path and query, encoded.
    pub target: &'a str,
    /// Headers (without `Host`, `Content-Length` and `Connection`, which are added).
    pub headers: Vec<(&'a str, String)>,
    /// A file sent as the body, with its length.
    pub body: Option<(&'a Path, u64)>,
}

/// A response; `body` is empty when it went into a file.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body (unless it was streamed into a file).
    pub body: Vec<u8>,
}

impl Response {
    /// The value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// `f` under [`IO_TIMEOUT`].
async fn timed<T>(what: &str, f: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    match tokio::time::timeout(IO_TIMEOUT, f).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no progress in {}s while {what}", IO_TIMEOUT.as_secs()),
        )),
    }
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| Arc::new(crate::tls::https_client_config()))
        .clone()
}

async fn connect(ep: &Endpoint) -> io::Result<Box<dyn Conn>> {
    let tcp = timed(
        "connecting",
        TcpStream::connect((ep.host.as_str(), ep.port)),
    )
    .await?;
    tcp.set_nodelay(true)?;
    if !ep.tls {
        return Ok(Box::new(tcp));
    }
    let name = rustls::pki_types::ServerName::try_from(ep.host.clone())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let tls = tokio_rustls::TlsConnector::from(tls_config());
    Ok(Box::new(
        timed("in the TLS handshake", tls.connect(name, tcp)).await?,
    ))
}

/// Sends `req` to `ep` and reads the response; a 2xx body goes into `into` when given.
pub async fn send(ep: &Endpoint, req: &Request<'_>, into: Option<&Path>) -> io::Result<Response> {
    let mut conn = connect(ep).await?;
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        req.method,
        req.target,
        ep.host_header(),
        req.body.map_or(0, |(_, n)| n)
    );
    for (k, v) in &req.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let sent = send_request(&mut conn, &head, req.body).await;
    let mut reader = BufReader::new(conn);
    if let Err(e) = sent {
        // A server may answer before it has read the whole body (S3 does for a missing bucket
        // or refused credentials) and close: its answer says more than the broken pipe.
        return match read_head(&mut reader).await {
            Ok((status, headers)) if status >= 300 => {
                let mut body = Vec::new();
                let _ = timed_copy(&mut (&mut reader).take(64 << 10), &mut body).await;
                Ok(Response {
                    status,
                    headers,
                    body,
                })
            }
            _ => Err(e),
        };
    }
    let (status, headers) = read_head(&mut reader).await?;
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if req.method == "HEAD" || status == 204 || status == 304 {
        return Ok(response);
    }
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let length = match response.header("content-length") {
        Some(v) => Some(
            v.trim()
                .parse::<u64>()
                .map_err(|_| bad(format!("Content-Length {v:?}")))?,
        ),
        None => None,
    };
    let mut body = Vec::new();
    {
        let mut sink: Box<dyn AsyncWrite + Unpin + Send + '_> = match into {
            Some(path) if (200..300).contains(&status) => {
                Box::new(tokio::fs::File::create(path).await?)
            }
            _ => Box::new(&mut body),
        };
        if chunked {
            read_chunked(&mut reader, &mut sink).await?;
        } else if let Some(n) = length {
            let copied = timed_copy(&mut (&mut reader).take(n), &mut sink).await?;
            if copied != n {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the body ended after {copied} of {n} bytes"),
                ));
            }
        } else {
            timed_copy(&mut reader, &mut sink).await?;
        }
        sink.flush().await?;
    }
    response.body = body;
    Ok(response)
}

/// Writes the request head and streams the body file.
async fn send_request(
    conn: &mut Box<dyn Conn>,
    head: &str,
    body: Option<(&Path, u64)>,
) -> io::Result<()> {
    timed("sending the request", conn.write_all(head.as_bytes())).await?;
    if let Some((path, len)) = body {
        let mut file = tokio::fs::File::open(path).await?;
        let mut buf = vec![0u8; 256 << 10];
        let mut sent = 0u64;
        while sent < len {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{} shrank while it was sent", path.display()),
                ));
            }
            timed("sending the body", conn.write_all(&buf[..n])).await?;
            sent += n as u64;
        }
    }
    timed("sending the request", conn.flush()).await
}

fn bad(what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed HTTP response: {what}"),
    )
}

/// Copies `from` to `to`, each read under the deadline.
async fn timed_copy(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin + ?Sized),
) -> io::Result<u64> {
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        let n = timed("reading the response", from.read(&mut buf)).await?;
        if n == 0 {
            return Ok(total);
        }
        to.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}

/// One line, without its CRLF, at most 64 KiB.
async fn line(reader: &mut (impl tokio::io::AsyncBufRead + Unpin)) -> io::Result<String> {
    let mut buf = Vec::new();
    let n = timed(
        "reading the response",
        (&mut *reader).take(65_536).read_until(b'\n', &mut buf),
    )
    .await?;
    if n == 0 || !buf.ends_with(b"\n") {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection closed inside the response head",
        ));
    }
    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buf.pop();
    }
    String::from_utf8(buf).map_err(|_| bad("a header is not UTF-8".into()))
}

async fn read_head(
    reader: &mut (impl tokio::io::AsyncBufRead + Unpin),
) -> io::Result<(u16, Vec<(String, String)>)> {
    loop {
        let status_line = line(reader).await?;
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| bad(format!("status line {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let l = line(reader).await?;
            if l.is_empty() {
                break;
            }
            let (k, v) = l
                .split_once(':')
                .ok_or_else(|| bad(format!("header line {l:?}")))?;
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        // An interim 100 Continue comes before the real response.
        if status != 100 {
            return Ok((status, headers));
        }
    }
}

async fn read_chunked(
    reader: &mut (impl tokio::io::AsyncBufRead + Unpin),
    sink: &mut (impl AsyncWrite + Unpin + ?Sized),
) -> io::Result<()> {
    loop {
        let size_line = line(reader).await?;
        let size = size_line.split(';').next().unwrap_or("").trim();
        let size =
            u64::from_str_radix(size, 16).map_err(|_| bad(format!("chunk size {size_line:?}")))?;
        if size == 0 {
            // Trailers up to the empty line.
            while !line(reader).await?.is_empty() {}
            return Ok(());
        }
        let copied = timed_copy(&mut (&mut *reader).take(size), sink).await?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the body ended inside a chunk",
            ));
        }
        if !line(reader).await?.is_empty() {
            return Err(bad("no CRLF after a chunk".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunked_bodies_and_their_trailers_are_decoded() {
        let wire: &[u8] =
            b"4\r\nWiki\r\n6;x=y\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nT: 1\r\n\r\n";
        let mut reader = BufReader::new(wire);
        let mut out = Vec::new();
        read_chunked(&mut reader, &mut out).await.unwrap();
        assert_eq!(out, b"Wikipedia in \r\n\r\nchunks.");
    }

    #[tokio::test]
    async fn a_100_continue_is_skipped_and_header_names_lower_cased() {
        let wire: &[u8] =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Type: application/xml\r\n\r\n";
        let mut reader = BufReader::new(wire);
        let (status, headers) = read_head(&mut reader).await.unwrap();
        assert_eq!(status, 404);
        assert_eq!(
            headers,
            vec![("content-type".into(), "application/xml".into())]
        );
    }
}

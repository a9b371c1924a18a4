//! A small blocking client for virtnetd's API.
//!
//! Plain HTTP/1.1 over [`std::os::unix::net::UnixStream`]: one request per connection
//! (`Connection: close`), request bodies sent with `Content-Length`, answers read with
//! `Content-Length`, `chunked` transfer coding or up to the end of the stream. Every read and
//! write has a timeout and the whole exchange has a deadline, so a stuck daemon cannot hang
//! the CLI.
//!
//! ```no_run
//! use virtnet_api::client::Client;
//! let client = Client::new("/run/virtnet/virtnet.sock");
//! for net in client.list()? {
//!     println!("{} {}", net.name, net.active);
//! }
//! # Ok::<(), virtnet_api::client::ClientError>(())
//! ```

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::{
    paths, ApiError, AutostartRequest, BridgeStatus, ChangeResult, DestroyRequest, DestroyResult,
    ErrorCode, NetworkDetail, NetworkSummary, DEFAULT_RUN_DIR, SOCKET_NAME, XML_MEDIA_TYPE,
};

/// Default time allowed for one request, from connecting to the last byte of the answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest response head (status line and headers) accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest response body accepted.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// The default socket path, `/run/virtnet/virtnet.sock`.
pub fn default_socket_path() -> PathBuf {
    Path::new(DEFAULT_RUN_DIR).join(SOCKET_NAME)
}

/// What can go wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be connected (daemon not running, wrong path, permissions).
    #[error("failed to connect to the daemon at {}: {}{}", path.display(), os_message(source), connect_hint(source))]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The connection failed or timed out while talking to the daemon.
    #[error("lost the connection to the daemon at {}: {}", path.display(), os_message(source))]
    Io {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The daemon answered something that is not valid HTTP or not the expected body.
    #[error("unexpected answer from the daemon: {0}")]
    Protocol(String),
    /// The daemon refused the request.
    #[error("{error}")]
    Api {
        /// HTTP status of the answer.
        status: u16,
        /// The decoded error body.
        error: ApiError,
    },
}

impl ClientError {
    /// The API error, when the daemon answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            ClientError::Api { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The API error code, when the daemon answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        self.api().map(|e| e.code)
    }

    /// True when the daemon could not be reached at all.
    pub fn is_connect(&self) -> bool {
        matches!(self, ClientError::Connect { .. })
    }
}

/// An I/O error's message without Rust's ` (os error N)` suffix, as `strerror` words it.
pub fn os_message(e: &io::Error) -> String {
    let s = e.to_string();
    match (e.raw_os_error(), s.rfind(" (os error ")) {
        (Some(_), Some(i)) => s[..i].to_string(),
        _ => s,
    }
}

fn connect_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => " (is virtnetd running?)",
        io::ErrorKind::PermissionDenied => {
            " (only root may change networks; --readonly reads through the read-only socket)"
        }
        _ => "",
    }
}

/// A network definition in libvirt XML with the ETag of the record it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlDocument {
    /// The libvirt XML.
    pub xml: String,
    /// The `ETag` header, quotes included (send it back verbatim in `If-Match`).
    pub etag: Option<String>,
}

/// A raw answer: status, headers and body.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// The first header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Blocking client for one daemon socket.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    timeout: Duration,
}

impl Client {
    /// A client for the daemon listening on `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        Client {
            socket: socket.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets the time allowed for one request.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET /v1/networks`: every network, sorted by name.
    pub fn list(&self) -> Result<Vec<NetworkSummary>, ClientError> {
        let resp = self.checked("GET", paths::NETWORKS, &[], None)?;
        decode(&resp)
    }

    /// `GET /v1/unreadable-networks`: stored network records the daemon set aside at start
    /// because it could not read them.
    pub fn unreadable_networks(&self) -> Result<Vec<crate::UnreadableNetwork>, ClientError> {
        let resp = self.checked("GET", crate::UNREADABLE_NETWORKS, &[], None)?;
        decode(&resp)
    }

    /// `GET /v1/networks/{id}`: state and definition (`inactive`: the persistent definition).
    pub fn get(&self, id: &str, inactive: bool) -> Result<NetworkDetail, ClientError> {
        let mut path = paths::network(id);
        if inactive {
            path.push_str("?inactive=true");
        }
        let resp = self.checked("GET", &path, &[("Accept", "application/json")], None)?;
        let mut detail: NetworkDetail = decode(&resp)?;
        if let Some(etag) = resp.header("etag") {
            if detail.etag.is_empty() {
                detail.etag = etag.to_string();
            }
        }
        Ok(detail)
    }

    /// `GET /v1/networks/{id}?format=xml`: the libvirt XML and its ETag.
    pub fn get_xml(&self, id: &str, inactive: bool) -> Result<XmlDocument, ClientError> {
        let mut path = paths::network(id);
        path.push_str("?format=xml");
        if inactive {
            path.push_str("&inactive=true");
        }
        let resp = self.checked("GET", &path, &[("Accept", XML_MEDIA_TYPE)], None)?;
        let xml = String::from_utf8(resp.body.clone())
            .map_err(|_| ClientError::Protocol("the XML is not valid UTF-8".into()))?;
        Ok(XmlDocument {
            xml,
            etag: resp.header("etag").map(str::to_string),
        })
    }

    /// `POST path` with an XML body; the JSON answer decoded.
    pub(crate) fn post_xml<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        xml: &str,
    ) -> Result<T, ClientError> {
        let resp = self.checked(
            "POST",
            path,
            &[("Content-Type", XML_MEDIA_TYPE)],
            Some(xml.as_bytes()),
        )?;
        decode(&resp)
    }

    /// `POST /v1/networks`: defines (or redefines) a persistent network.
    pub fn define(&self, xml: &str) -> Result<ChangeResult, ClientError> {
        self.post_xml(paths::NETWORKS, xml)
    }

    /// `POST /v1/networks?transient=true`: creates and starts a transient network.
    pub fn create(&self, xml: &str) -> Result<ChangeResult, ClientError> {
        self.post_xml(&format!("{}?transient=true", paths::NETWORKS), xml)
    }

    /// `DELETE /v1/networks/{id}`: removes the persistent definition.
    pub fn undefine(&self, id: &str) -> Result<ChangeResult, ClientError> {
        let resp = self.checked("DELETE", &paths::network(id), &[], None)?;
        decode(&resp)
    }

    /// `POST /v1/networks/{id}/start`: starts an inactive persistent network.
    pub fn start(&self, id: &str) -> Result<ChangeResult, ClientError> {
        let resp = self.checked("POST", &paths::start(id), &[], None)?;
        decode(&resp)
    }

    /// `POST /v1/networks/{id}/update`: changes one section of the definition (`net-update`);
    /// neither `live` nor `config` means the live network when it is active, else the
    /// persistent definition (virsh's `--current`).
    pub fn update(
        &self,
        id: &str,
        request: &crate::UpdateRequest,
    ) -> Result<ChangeResult, ClientError> {
        self.send_json("POST", &paths::update(id), request)
    }

    /// `POST /v1/destroy`: stops active networks, all in one go.
    pub fn destroy(&self, ids: &[String]) -> Result<DestroyResult, ClientError> {
        let request = DestroyRequest {
            networks: ids.to_vec(),
        };
        self.send_json("POST", paths::DESTROY, &request)
    }

    /// `GET /v1/bridges`: virtnet's bridges and their ports.
    pub fn bridges(&self) -> Result<Vec<BridgeStatus>, ClientError> {
        let resp = self.checked("GET", paths::BRIDGES, &[], None)?;
        decode(&resp)
    }

    /// `PUT /v1/networks/{id}/autostart`.
    pub fn set_autostart(&self, id: &str, autostart: bool) -> Result<ChangeResult, ClientError> {
        self.send_json(
            "PUT",
            &paths::autostart(id),
            &AutostartRequest { autostart },
        )
    }

    /// `PUT /v1/networks/{id}` with `If-Match: etag`: replaces the persistent definition.
    pub fn edit(&self, id: &str, xml: &str, etag: &str) -> Result<ChangeResult, ClientError> {
        let resp = self.checked(
            "PUT",
            &paths::network(id),
            &[("Content-Type", XML_MEDIA_TYPE), ("If-Match", etag)],
            Some(xml.as_bytes()),
        )?;
        decode(&resp)
    }

    /// Sends a JSON body and decodes the JSON answer.
    pub(crate) fn send_json<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let resp = self.checked(
            method,
            path,
            &[("Content-Type", "application/json")],
            Some(&body),
        )?;
        decode(&resp)
    }

    /// Sends a request and turns a non-2xx answer into [`ClientError::Api`].
    pub(crate) fn checked(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Response, ClientError> {
        let resp = self.request(method, path, headers, body)?;
        if (200..300).contains(&resp.status) {
            Ok(resp)
        } else {
            Err(api_error(&resp))
        }
    }

    /// Sends one request and reads the whole answer, whatever its status.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Response, ClientError> {
        let deadline = Instant::now() + self.timeout;
        let mut stream =
            UnixStream::connect(&self.socket).map_err(|source| ClientError::Connect {
                path: self.socket.clone(),
                source,
            })?;
        let io_err = |source: io::Error| ClientError::Io {
            path: self.socket.clone(),
            source,
        };
        stream
            .set_write_timeout(Some(self.timeout))
            .map_err(io_err)?;
        stream
            .set_read_timeout(Some(self.timeout))
            .map_err(io_err)?;

        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nUser-Agent: virtnet/{}\r\n", env!("CARGO_PKG_VERSION"));
        for (name, value) in headers {
            if name.contains(['\r', '\n']) || value.contains(['\r', '\n']) {
                return Err(ClientError::Protocol(format!(
                    "refusing to send header {name} with a line break"
                )));
            }
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let body = body.unwrap_or_default();
        if !body.is_empty() || matches!(method, "POST" | "PUT") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(body);
        stream.write_all(&out).map_err(io_err)?;
        stream.flush().map_err(io_err)?;

        let mut reader = DeadlineReader {
            stream,
            deadline,
            timeout: self.timeout,
        };
        read_response(&mut reader).map_err(|e| match e {
            ReadError::Io(source) => io_err(source),
            ReadError::Protocol(m) => ClientError::Protocol(m),
        })
    }
}

/// Decodes a JSON body.
pub(crate) fn decode<T: DeserializeOwned>(resp: &Response) -> Result<T, ClientError> {
    serde_json::from_slice(&resp.body)
        .map_err(|e| ClientError::Protocol(format!("cannot decode the answer: {e}")))
}

/// Builds the error for a non-2xx answer: the `ApiError` body when there is one.
fn api_error(resp: &Response) -> ClientError {
    let error = serde_json::from_slice::<ApiError>(&resp.body).unwrap_or_else(|_| {
        let code = match resp.status {
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            409 => ErrorCode::Conflict,
            412 => ErrorCode::EtagMismatch,
            413 => ErrorCode::PayloadTooLarge,
            428 => ErrorCode::PreconditionRequired,
            400..=499 => ErrorCode::BadRequest,
            507 => ErrorCode::NoSpace,
            _ => ErrorCode::Internal,
        };
        let text = String::from_utf8_lossy(&resp.body);
        let text = text.trim();
        let message = if text.is_empty() {
            format!("the daemon answered HTTP status {}", resp.status)
        } else {
            format!(
                "the daemon answered HTTP status {}: {}",
                resp.status,
                text.chars().take(200).collect::<String>()
            )
        };
        ApiError::new(code, message)
    });
    ClientError::Api {
        status: resp.status,
        error,
    }
}

enum ReadError {
    Io(io::Error),
    Protocol(String),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> ReadError {
        ReadError::Io(e)
    }
}

fn protocol(msg: impl Into<String>) -> ReadError {
    ReadError::Protocol(msg.into())
}

/// A reader that gives up once the request's deadline has passed.
struct DeadlineReader {
    stream: UnixStream,
    deadline: Instant,
    timeout: Duration,
}

impl Read for DeadlineReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let now = Instant::now();
        if now >= self.deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no complete answer within {} seconds",
                    self.timeout.as_secs_f64()
                ),
            ));
        }
        let left = (self.deadline - now).max(Duration::from_millis(1));
        self.stream.set_read_timeout(Some(left))?;
        match self.stream.read(buf) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no complete answer within {} seconds",
                        self.timeout.as_secs_f64()
                    ),
                ))
            }
            r => r,
        }
    }
}

/// Buffered reading on top of any reader, with the parsing the answer needs.
struct Buffered<'a, R: Read> {
    inner: &'a mut R,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
}

impl<'a, R: Read> Buffered<'a, R> {
    fn fill(&mut self) -> Result<bool, ReadError> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.inner.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads one CRLF- (or LF-) terminated line, without the terminator.
    fn line(&mut self, limit: usize) -> Result<String, ReadError> {
        loop {
            if let Some(i) = self.available().iter().position(|&b| b == b'\n') {
                let raw = &self.buf[self.pos..self.pos + i];
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                let line = String::from_utf8(raw.to_vec())
                    .map_err(|_| protocol("a header line is not valid UTF-8"))?;
                self.pos += i + 1;
                return Ok(line);
            }
            if self.available().len() > limit {
                return Err(protocol("the response head is too large"));
            }
            if !self.fill()? {
                return Err(protocol("the daemon closed the connection mid-answer"));
            }
        }
    }

    fn exact(&mut self, n: usize, out: &mut Vec<u8>) -> Result<(), ReadError> {
        let mut left = n;
        while left > 0 {
            if self.available().is_empty() && !self.fill()? {
                return Err(protocol("the daemon closed the connection mid-body"));
            }
            let take = left.min(self.available().len());
            out.extend_from_slice(&self.buf[self.pos..self.pos + take]);
            self.pos += take;
            left -= take;
        }
        Ok(())
    }

    fn read_to_end(&mut self, out: &mut Vec<u8>) -> Result<(), ReadError> {
        loop {
            out.extend_from_slice(self.available());
            self.pos = self.buf.len();
            if out.len() > MAX_RESPONSE_BYTES {
                return Err(protocol("the answer is too large"));
            }
            if !self.fill()? {
                return Ok(());
            }
        }
    }
}

fn read_response<R: Read>(reader: &mut R) -> Result<Response, ReadError> {
    let mut r = Buffered {
        inner: reader,
        buf: Vec::new(),
        pos: 0,
        eof: false,
    };
    // Status line; skip interim 1xx answers.
    let (status, headers) = loop {
        let status_line = r.line(MAX_HEAD_BYTES)?;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            return Err(protocol(format!("bad status line {status_line:?}")));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .filter(|s| (100..1000).contains(s))
            .ok_or_else(|| protocol(format!("bad status line {status_line:?}")))?;
        let mut headers = Vec::new();
        let mut head_bytes = status_line.len();
        loop {
            let line = r.line(MAX_HEAD_BYTES)?;
            head_bytes += line.len() + 2;
            if head_bytes > MAX_HEAD_BYTES {
                return Err(protocol("the response head is too large"));
            }
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| protocol(format!("bad header line {line:?}")))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
        if (100..200).contains(&status) {
            continue;
        }
        break (status, headers);
    };
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let mut body = Vec::new();
    if status == 204 || status == 304 {
        // No body.
    } else if find("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    {
        loop {
            let line = r.line(1024)?;
            let size_text = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| protocol(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !r.line(MAX_HEAD_BYTES)?.is_empty() {}
                break;
            }
            if body.len() + size > MAX_RESPONSE_BYTES {
                return Err(protocol("the answer is too large"));
            }
            r.exact(size, &mut body)?;
            if !r.line(16)?.is_empty() {
                return Err(protocol("a chunk is not followed by CRLF"));
            }
        }
    } else if let Some(len) = find("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| protocol(format!("bad Content-Length {len:?}")))?;
        if len > MAX_RESPONSE_BYTES {
            return Err(protocol("the answer is too large"));
        }
        r.exact(len, &mut body)?;
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn parse(raw: &[u8]) -> Result<Response, String> {
        let mut cursor = io::Cursor::new(raw.to_vec());
        read_response(&mut cursor).map_err(|e| match e {
            ReadError::Io(e) => e.to_string(),
            ReadError::Protocol(m) => m,
        })
    }

    #[test]
    fn parses_content_length() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"3\"\r\n\r\nhello").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"hello");
        assert_eq!(r.header("ETag"), Some("\"3\""));
    }

    #[test]
    fn parses_chunked() {
        let r = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n")
            .unwrap();
        assert_eq!(r.body, b"abcde");
    }

    #[test]
    fn parses_to_eof_and_skips_continue() {
        let r = parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\n\r\n{}").unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.body, b"{}");
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert!(parse(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Len").is_err());
    }

    #[test]
    fn decodes_api_errors_and_falls_back() {
        let body = br#"{"code":"not-found","message":"Network not found: no network with matching name 'x'"}"#;
        let resp = Response {
            status: 404,
            headers: vec![],
            body: body.to_vec(),
        };
        let e = api_error(&resp);
        assert_eq!(e.code(), Some(ErrorCode::NotFound));
        assert_eq!(
            e.to_string(),
            "Network not found: no network with matching name 'x'"
        );
        let resp = Response {
            status: 502,
            headers: vec![],
            body: b"bad gateway".to_vec(),
        };
        let e = api_error(&resp);
        assert_eq!(e.code(), Some(ErrorCode::Internal));
        assert_eq!(
            e.to_string(),
            "the daemon answered HTTP status 502: bad gateway"
        );
    }

    #[test]
    fn connect_error_names_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("virtnet.sock");
        let e = Client::new(&sock).list().unwrap_err();
        assert!(e.is_connect());
        assert_eq!(
            e.to_string(),
            format!(
                "failed to connect to the daemon at {}: No such file or directory (is virtnetd running?)",
                sock.display()
            )
        );
    }

    #[test]
    fn talks_to_a_server() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("virtnet.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head and the 11-byte body.
            while !req.windows(4).any(|w| w == b"\r\n\r\n") || !req.ends_with(b"<network/>") {
                let n = conn.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            let body = br#"{"code":"etag-mismatch","message":"stale"}"#;
            let head = format!(
                "HTTP/1.1 412 Precondition Failed\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            conn.write_all(head.as_bytes()).unwrap();
            conn.write_all(body).unwrap();
            String::from_utf8(req).unwrap()
        });
        let e = Client::new(&sock)
            .edit("my net", "<network/>", "\"7\"")
            .unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::EtagMismatch));
        let req = server.join().unwrap();
        assert!(
            req.starts_with("PUT /v1/networks/my%20net HTTP/1.1\r\n"),
            "{req}"
        );
        assert!(req.contains("If-Match: \"7\"\r\n"));
        assert!(req.contains("Content-Length: 10\r\n"));
    }

    #[test]
    fn times_out() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("virtnet.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let server = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_millis(600));
            drop(conn);
        });
        let e = Client::new(&sock)
            .with_timeout(Duration::from_millis(200))
            .list()
            .unwrap_err();
        assert!(e.to_string().contains("no complete answer within"), "{e}");
        server.join().unwrap();
    }
}

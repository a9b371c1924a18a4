//! Test harness: real `virtnetd` processes with private directories, and a minimal HTTP/1.1
//! client over the unix socket.

#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

pub use virtnet_testkit::shared_dir;

/// The text of `shared/examples/<name>`.
pub fn example(name: &str) -> String {
    let path = shared_dir().join("examples").join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

pub use virtnet_testkit::network_xml as net_xml;

/// Private state and run directories for one or more daemons.
pub struct Dirs {
    pub tmp: tempfile::TempDir,
    pub state: PathBuf,
    pub run: PathBuf,
}

impl Dirs {
    pub fn new() -> Dirs {
        let tmp = tempfile::Builder::new()
            .prefix("vnd")
            .tempdir()
            .expect("tempdir");
        let state = tmp.path().join("state");
        let run = tmp.path().join("run");
        Dirs { tmp, state, run }
    }

    pub fn socket(&self) -> PathBuf {
        self.run.join("virtnet.sock")
    }
}

/// A running daemon; killed when dropped.
pub struct Daemon {
    pub child: Child,
    pub socket: PathBuf,
    pub stderr: PathBuf,
}

/// Starts `virtnetd` with these directories and extra arguments, without waiting.
pub fn spawn_raw(state: &Path, run: &Path, extra: &[&str], log_name: &str) -> (Child, PathBuf) {
    let log_dir = state.parent().unwrap_or(state).to_path_buf();
    fs::create_dir_all(&log_dir).expect("log dir");
    let stderr_path = log_dir.join(log_name);
    let stderr = fs::File::create(&stderr_path).expect("stderr file");
    // Each daemon gets a private, empty network namespace (`unshare --net` then exec, so the
    // PID is virtnetd's): it reconciles the kernel at start and must never touch the host's.
    let child = Command::new("unshare")
        .args(["--net", "--"])
        .arg(env!("CARGO_BIN_EXE_virtnetd"))
        .arg("--state-dir")
        .arg(state)
        .arg("--run-dir")
        .arg(run)
        // Never the host's /run/libvirt.
        .arg("--libvirt-run-dir")
        .arg(run.join("libvirt"))
        .arg("--log-level")
        .arg("debug")
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn virtnetd");
    (child, stderr_path)
}

impl Daemon {
    /// Starts a daemon on `dirs` and waits until it answers.
    pub fn start(dirs: &Dirs) -> Daemon {
        Daemon::start_with(dirs, &[])
    }

    pub fn start_with(dirs: &Dirs, extra: &[&str]) -> Daemon {
        let (child, stderr) = spawn_raw(&dirs.state, &dirs.run, extra, "virtnetd.log");
        let mut daemon = Daemon {
            child,
            socket: dirs.socket(),
            stderr,
        };
        daemon.wait_ready();
        daemon
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("virtnetd exited early ({status}): {}", self.log());
            }
            if self.socket.exists() {
                if let Ok(resp) = try_request(&self.socket, "GET", "/v1/networks", &[], b"") {
                    if resp.status == 200 {
                        return;
                    }
                }
            }
            if Instant::now() > deadline {
                panic!("virtnetd did not become ready: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGKILL, and reap.
    pub fn kill9(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// SIGTERM, and wait for the exit status (at most 30 s).
    pub fn terminate(mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit()
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                panic!("virtnetd did not exit: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        request(&self.socket, method, path, headers, body)
    }

    pub fn get(&self, path: &str) -> Resp {
        self.req("GET", path, &[], b"")
    }

    pub fn define(&self, xml: &str) -> Resp {
        self.req(
            "POST",
            "/v1/networks",
            &[("Content-Type", "application/xml")],
            xml.as_bytes(),
        )
    }

    pub fn create(&self, xml: &str) -> Resp {
        self.req(
            "POST",
            "/v1/networks?transient=true",
            &[("Content-Type", "application/xml")],
            xml.as_bytes(),
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("bad JSON ({e}) in {} answer: {}", self.status, self.text()))
    }

    /// The `ApiError` of an error answer, checking that its code fits the status.
    pub fn error(&self) -> virtnet_api::ApiError {
        let e: virtnet_api::ApiError = self.json();
        assert_eq!(
            e.code.http_status(),
            self.status,
            "code/status mismatch: {e:?}"
        );
        e
    }
}

/// One request on a fresh connection.
pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    try_request(socket, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Writes a request head (with Content-Length) and returns the connection.
pub fn send_head(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    content_length: usize,
) -> std::io::Result<UnixStream> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Length: {content_length}\r\n"
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    Ok(stream)
}

pub fn try_request(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let mut stream = send_head(socket, method, path, headers, body.len())?;
    // The server may answer (413) and close before reading everything: keep going and read.
    let _ = stream.write_all(body);
    read_response(&mut stream)
}

/// Reads one response until the server closes the connection.
///
/// A server that closes while part of the request is still unread makes Linux report
/// ECONNRESET to the client once the data it did send has been read: that is the end of the
/// answer, not a failure.
pub fn read_response(stream: &mut UnixStream) -> std::io::Result<Resp> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !raw.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> std::io::Result<Resp> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            bad(&format!(
                "no header end in {:?}",
                String::from_utf8_lossy(raw)
            ))
        })?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad("head not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("empty"))?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(status_line))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body).ok_or_else(|| bad("bad chunked body"))?;
    }
    Ok(Resp {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

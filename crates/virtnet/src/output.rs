//! Printing the way virsh prints, and the errors a command ends with.
//!
//! virsh has two print functions: `vshPrint` (always) and `vshPrintExtra` (not with `-q`).
//! Errors go to stderr as `error: <text>`, one line per message: first virsh's own line
//! (`failed to get network 'foo'`), then the library's (`Network not found: ...`).

use std::cell::Cell;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;

use virtnet_api::client::{os_message, Client, ClientError};
use virtnet_api::ErrorCode;

/// Largest XML file read: the daemon's body limit (virsh reads up to 10 MiB, but a larger file
/// than the daemon accepts is better refused here, with the limit named, than sent).
pub const MAX_XML_FILE: u64 = virtnet_api::MAX_BODY_BYTES as u64;

/// What every command gets: the API client and the output settings.
pub struct Ctx {
    /// The API client.
    pub client: Client,
    /// `-q`: no table headers, no informational messages.
    pub quiet: bool,
    write_failed: Cell<bool>,
}

impl Ctx {
    /// A context.
    pub fn new(client: Client, quiet: bool) -> Ctx {
        Ctx {
            client,
            quiet,
            write_failed: Cell::new(false),
        }
    }

    /// `vshPrint`: output that `-q` keeps.
    pub fn print(&self, text: &str) {
        let mut out = io::stdout().lock();
        if out
            .write_all(text.as_bytes())
            .and_then(|_| out.flush())
            .is_err()
        {
            self.write_failed.set(true);
        }
    }

    /// `vshPrintExtra`: informational output that `-q` drops.
    pub fn extra(&self, text: &str) {
        if !self.quiet {
            self.print(text);
        }
    }

    /// Prints a value as pretty JSON and a newline.
    pub fn json<T: serde::Serialize>(&self, value: &T) -> Result<(), Failure> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| Failure::msg(format!("cannot encode JSON: {e}")))?;
        self.print(&text);
        self.print("\n");
        Ok(())
    }

    /// A warning the daemon sent with a successful answer.
    pub fn warn(&self, text: &str) {
        let _ = io::stdout().flush();
        eprintln!("warning: {text}");
    }

    /// True when writing to stdout failed (closed pipe, full disk).
    pub fn write_failed(&self) -> bool {
        self.write_failed.get()
    }
}

/// How a command failed: the `error:` lines to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Messages, printed one per line as `error: <message>`.
    pub messages: Vec<String>,
    /// The daemon could not be reached: virsh would not have run the command at all, so no
    /// blank line follows.
    pub connect: bool,
}

impl Failure {
    /// A failure with one message.
    pub fn msg(message: impl Into<String>) -> Failure {
        Failure {
            messages: vec![message.into()],
            connect: false,
        }
    }

    /// A failure with no message of its own (the user gave up an edit).
    pub fn silent() -> Failure {
        Failure {
            messages: Vec::new(),
            connect: false,
        }
    }

    /// The client's error alone.
    pub fn client(err: &ClientError) -> Failure {
        Failure {
            messages: vec![err.to_string()],
            connect: err.is_connect(),
        }
    }

    /// virsh's own line, then the client's error (just the latter when the daemon is down).
    pub fn with_context(context: impl Into<String>, err: &ClientError) -> Failure {
        if err.is_connect() {
            return Failure::client(err);
        }
        Failure {
            messages: vec![context.into(), err.to_string()],
            connect: false,
        }
    }

    /// A failed lookup of a network by name or UUID (`virshCommandOptNetwork`).
    pub fn lookup(id: &str, err: &ClientError) -> Failure {
        Failure::with_context(format!("failed to get network '{id}'"), err)
    }

    /// An operation on a network that failed: a missing network fails as virsh's lookup
    /// does, anything else with virsh's line for the operation.
    pub fn operation(id: &str, context: impl Into<String>, err: &ClientError) -> Failure {
        if err.code() == Some(ErrorCode::NotFound) {
            Failure::lookup(id, err)
        } else {
            Failure::with_context(context, err)
        }
    }

    /// Prints the messages to stderr.
    pub fn report(&self) {
        let _ = io::stdout().flush();
        let mut err = io::stderr().lock();
        for m in &self.messages {
            let _ = writeln!(err, "error: {m}");
        }
        let _ = err.flush();
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.messages.join("\n"))
    }
}

/// Reads an XML file like virsh's `virFileReadAll`, with its error wording.
pub fn read_xml_file(path: &Path) -> Result<String, Failure> {
    let shown = path.display();
    let file = std::fs::File::open(path)
        .map_err(|e| Failure::msg(format!("Failed to open file '{shown}': {}", os_message(&e))))?;
    let mut bytes = Vec::new();
    file.take(MAX_XML_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::msg(format!("Failed to read file '{shown}': {}", os_message(&e))))?;
    if bytes.len() as u64 > MAX_XML_FILE {
        return Err(Failure::msg(format!(
            "Failed to read file '{shown}': File too large (network definitions are limited \
             to {MAX_XML_FILE} bytes)"
        )));
    }
    String::from_utf8(bytes).map_err(|_| {
        Failure::msg(format!(
            "Failed to read file '{shown}': Invalid or incomplete multibyte or wide character"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtnet_api::ApiError;

    fn api(code: ErrorCode, message: &str) -> ClientError {
        ClientError::Api {
            status: code.http_status(),
            error: ApiError::new(code, message),
        }
    }

    #[test]
    fn lookup_failure_is_two_lines_like_virsh() {
        let e = api(
            ErrorCode::NotFound,
            "Network not found: no network with matching name 'foo'",
        );
        let f = Failure::operation("foo", "Failed to undefine network foo", &e);
        assert_eq!(
            f.messages,
            vec![
                "failed to get network 'foo'".to_string(),
                "Network not found: no network with matching name 'foo'".to_string()
            ]
        );
        let e = api(ErrorCode::Conflict, "network is busy");
        let f = Failure::operation("foo", "Failed to undefine network foo", &e);
        assert_eq!(f.messages[0], "Failed to undefine network foo");
    }

    #[test]
    fn connect_failure_is_one_line() {
        let e = ClientError::Connect {
            path: "/run/virtnet/virtnet.sock".into(),
            source: io::Error::from_raw_os_error(libc::ENOENT),
        };
        let f = Failure::lookup("foo", &e);
        assert!(f.connect);
        assert_eq!(
            f.messages,
            vec!["failed to connect to the daemon at /run/virtnet/virtnet.sock: No such file or directory (is virtnetd running?)".to_string()]
        );
    }

    #[test]
    fn file_errors_name_the_file() {
        let f = read_xml_file(Path::new("/nonexistent/net.xml")).unwrap_err();
        assert_eq!(
            f.messages,
            vec!["Failed to open file '/nonexistent/net.xml': No such file or directory"]
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bin.xml");
        std::fs::write(&p, [0xff, 0xfe, b'<']).unwrap();
        assert!(read_xml_file(&p).unwrap_err().messages[0].contains("multibyte"));
        let f = read_xml_file(dir.path()).unwrap_err();
        assert!(
            f.messages[0].ends_with("Is a directory"),
            "{:?}",
            f.messages
        );
    }
}

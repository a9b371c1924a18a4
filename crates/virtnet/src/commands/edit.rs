//! `net-edit`: virsh's edit loop (`tools/virsh-edit.c`) over the API's ETag-guarded PUT.
//!
//! 1. look the network up and fetch its persistent XML (`--inactive`) with its ETag;
//! 2. write it to a temporary file and run `$VISUAL`/`$EDITOR` (default `vi`) on it through
//!    `sh -c`;
//! 3. unchanged text: `Network NAME XML configuration not changed.`;
//! 4. otherwise PUT it with `If-Match`. A refused definition, or a 412 because someone changed
//!    the network meanwhile (the current definition is fetched again), asks
//!    `... Try again? [y,n,f,?]:` on a terminal: `y` reopens the editor on the user's text, `f`
//!    sends the same text again, `n` gives up. Without a terminal the command fails.
//!
//! virsh's net-edit has no `i` (its `EDIT_RELAX` is only defined for domains), so the prompt
//! offers `[y,n,f,?]` exactly as virsh's does for networks.

use std::io::{self, Read, Write};
use std::path::Path;
use std::process::Command;

use virtnet_api::client::{os_message, XmlDocument};
use virtnet_api::ErrorCode;

use crate::output::{read_xml_file, Ctx, Failure};

/// Message of virsh's prompt after a refused definition.
const FAILED: &str = "Failed.";
/// Message of virsh's prompt after a concurrent change.
const CHANGED: &str = "The XML configuration was changed by another user.";

/// `net-edit NETWORK`.
pub fn net_edit(ctx: &Ctx, id: &str) -> Result<(), Failure> {
    let detail = ctx
        .client
        .get(id, true)
        .map_err(|e| Failure::lookup(id, &e))?;
    let name = detail.summary.name.clone();
    // Address the network by UUID from now on: it does not change under an edit.
    let key = detail.summary.uuid.to_string();
    let mut doc = fetch(ctx, &key, id)?;

    let mut tmp = tempfile::Builder::new()
        .prefix("virtnet")
        .suffix(".xml")
        .tempfile()
        .map_err(|e| {
            Failure::msg(format!(
                "failed to create temporary file: {}",
                os_message(&e)
            ))
        })?;
    tmp.write_all(doc.xml.as_bytes())
        .and_then(|_| tmp.flush())
        .map_err(|e| {
            Failure::msg(format!(
                "{}: failed to write temporary file: {}",
                tmp.path().display(),
                os_message(&e)
            ))
        })?;
    let path = tmp.path().to_path_buf();

    'reedit: loop {
        run_editor(&path)?;
        let edited = read_xml_file(&path)?;
        if edited == doc.xml {
            ctx.extra(&format!("Network {name} XML configuration not changed.\n"));
            return Ok(());
        }
        loop {
            let etag = doc.etag.clone().unwrap_or_default();
            let (msg, error) = match ctx.client.edit(&key, &edited, &etag) {
                Ok(result) => {
                    ctx.extra(&format!(
                        "Network {} XML configuration edited.\n",
                        result.network.name
                    ));
                    for w in &result.warnings {
                        ctx.warn(w);
                    }
                    return Ok(());
                }
                Err(e) if e.is_connect() => return Err(Failure::client(&e)),
                Err(e) if e.code() == Some(ErrorCode::NotFound) => {
                    return Err(Failure::lookup(id, &e))
                }
                Err(e) if e.code() == Some(ErrorCode::EtagMismatch) => {
                    Failure::msg(format!(
                        "network {name} was changed while you were editing; your edit was not applied"
                    ))
                    .report();
                    doc = fetch(ctx, &key, id)?;
                    (CHANGED, None)
                }
                Err(e) => (FAILED, Some(e.to_string())),
            };
            if !stdin_is_tty() {
                return Err(match error {
                    Some(error) => Failure {
                        messages: vec![format!("Failed to edit network {name}"), error],
                        connect: false,
                    },
                    // Already reported.
                    None => Failure::silent(),
                });
            }
            if let Some(error) = error {
                Failure::msg(error).report();
            }
            match ask_reedit(ctx, msg) {
                Answer::Yes => continue 'reedit,
                Answer::Force => continue,
                Answer::No => return Err(Failure::silent()),
            }
        }
    }
}

/// The persistent XML and its ETag.
fn fetch(ctx: &Ctx, key: &str, id: &str) -> Result<XmlDocument, Failure> {
    let doc = ctx
        .client
        .get_xml(key, true)
        .map_err(|e| Failure::lookup(id, &e))?;
    if doc.etag.is_none() {
        return Err(Failure::msg(
            "the daemon sent no ETag with the definition; cannot edit safely",
        ));
    }
    Ok(doc)
}

/// The editor virsh would run: `$VISUAL`, else `$EDITOR`, else `vi`.
pub fn editor() -> String {
    ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "vi".to_string())
}

/// Runs the editor on `path` through `sh -c` (EDITOR may carry options, as in virsh); the file
/// name is passed as `$1` so no character in it can reach the shell.
fn run_editor(path: &Path) -> Result<(), Failure> {
    let editor = editor();
    let shown = format!("{editor} {}", path.display());
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(path)
        .status()
        .map_err(|e| {
            Failure::msg(format!(
                "Cannot run child process ({shown}): {}",
                os_message(&e)
            ))
        })?;
    if status.success() {
        return Ok(());
    }
    use std::os::unix::process::ExitStatusExt;
    Err(Failure::msg(match (status.code(), status.signal()) {
        (Some(code), _) => format!("Child process ({shown}) unexpected exit status {code}"),
        (None, Some(sig)) => format!("Child process ({shown}) unexpected fatal signal {sig}"),
        (None, None) => format!("Child process ({shown}) failed"),
    }))
}

fn stdin_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(libc::STDIN_FILENO) == 1 }
}

/// The user's answer to virsh's "Try again?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Yes,
    No,
    Force,
}

/// Puts the terminal on stdin in raw mode for as long as it lives (`vshTTYMakeRaw`).
struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    fn enter() -> Option<RawMode> {
        // SAFETY: termios is plain data; tcgetattr fills it in or fails.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut saved) != 0 {
                return None;
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSAFLUSH, &raw) != 0 {
                return None;
            }
            Some(RawMode { saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the attributes read in `enter`.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSAFLUSH, &self.saved);
        }
    }
}

/// virsh's `vshAskReedit` without the relax option: one key, no Enter needed.
fn ask_reedit(ctx: &Ctx, msg: &str) -> Answer {
    let Some(raw) = RawMode::enter() else {
        Failure::msg(msg).report();
        return Answer::No;
    };
    let answer = loop {
        ctx.print(&format!("\r{msg} Try again? [y,n,f,?]: "));
        let mut byte = [0u8; 1];
        match io::stdin().lock().read(&mut byte) {
            Ok(1) => {}
            // End of input or an error: nobody can answer, so give up.
            _ => break Answer::No,
        }
        match byte[0].to_ascii_lowercase() {
            b'?' => ctx.print(
                "\r\n\
                 y - yes, start editor again\r\n\
                 n - no, throw away my changes\r\n\
                 f - force, try to redefine again\r\n\
                 ? - print this help\r\n",
            ),
            b'y' => break Answer::Yes,
            b'n' => break Answer::No,
            b'f' => break Answer::Force,
            // Ctrl-C and Ctrl-D in raw mode arrive as bytes: treat them as "no".
            0x03 | 0x04 => break Answer::No,
            _ => {}
        }
    };
    drop(raw);
    ctx.print("\r\n");
    answer
}

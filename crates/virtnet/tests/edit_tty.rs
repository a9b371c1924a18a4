//! `net-edit` on a terminal: virsh's "Try again?" prompt, driven through a pseudo-terminal.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{example, Daemon};

/// A child process whose stdin, stdout and stderr are the slave side of a pty.
struct OnPty {
    child: Child,
    master: File,
    seen: String,
}

impl OnPty {
    fn spawn(mut cmd: std::process::Command) -> OnPty {
        let mut master: libc::c_int = -1;
        let mut slave: libc::c_int = -1;
        // SAFETY: openpty writes two descriptors we then own.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just opened by openpty and are owned here only.
        let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let child = cmd
            .stdin(Stdio::from(slave.try_clone().expect("dup")))
            .stdout(Stdio::from(slave.try_clone().expect("dup")))
            .stderr(Stdio::from(slave))
            .spawn()
            .expect("spawn virtnet on a pty");
        drop(cmd);
        OnPty {
            child,
            master,
            seen: String::new(),
        }
    }

    /// Reads until `needle` has been seen (after what was already consumed) or 20 s pass.
    fn expect(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.seen.contains(needle) {
                let at = self.seen.find(needle).unwrap_or(0) + needle.len();
                self.seen.drain(..at);
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {needle:?}; the terminal shows {:?}",
                self.seen
            );
            let mut pfd = libc::pollfd {
                fd: self.master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as libc::c_int) };
            if n <= 0 {
                continue;
            }
            let mut buf = [0u8; 4096];
            match self.master.read(&mut buf) {
                Ok(0) | Err(_) => panic!(
                    "the terminal closed before {needle:?} appeared; it showed {:?}",
                    self.seen
                ),
                Ok(n) => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    }

    fn send(&mut self, keys: &str) {
        self.master
            .write_all(keys.as_bytes())
            .expect("write to pty");
    }

    fn wait(mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // Drain output so the child never blocks on a full pty.
            let mut pfd = libc::pollfd {
                fd: self.master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, 50) } > 0 {
                let mut buf = [0u8; 4096];
                if let Ok(n) = self.master.read(&mut buf) {
                    self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("virtnet did not exit; the terminal shows {:?}", self.seen);
            }
        }
    }
}

fn define_default(d: &Daemon) {
    let path = example("default-nat.xml");
    let out = d.run(&["-q", "net-define", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// An editor that breaks the address the first time and makes a valid change the second.
fn two_step_editor(d: &Daemon) -> String {
    let counter = d.dir.path().join("editor-runs");
    let script = d.script(
        "two-step",
        &format!(
            "if [ -e '{c}' ]; then\n\
               sed -i \"s/address='192.168.122.300'/address='192.168.122.1'/; s/192.168.122.254/192.168.122.222/\" \"$1\"\n\
             else\n\
               touch '{c}'\n\
               sed -i \"s/address='192.168.122.1'/address='192.168.122.300'/\" \"$1\"\n\
             fi",
            c = counter.display()
        ),
    );
    script.display().to_string()
}

#[test]
fn refused_edit_asks_and_reopens_the_editor() {
    let d = Daemon::start();
    define_default(&d);
    let mut cmd = d.cmd(&["net-edit", "default"]);
    cmd.env("EDITOR", two_step_editor(&d));
    let mut pty = OnPty::spawn(cmd);

    pty.expect("error: ");
    pty.expect("Failed. Try again? [y,n,f,?]: ");
    pty.send("?");
    pty.expect("y - yes, start editor again\r\nn - no, throw away my changes\r\nf - force, try to redefine again\r\n? - print this help\r\n");
    pty.expect("Failed. Try again? [y,n,f,?]: ");
    pty.send("y");
    pty.expect("Network default XML configuration edited.");
    assert_eq!(pty.wait(), 0);

    let xml = d.run(&["net-dumpxml", "default"]);
    assert!(
        xml.stdout.contains("end='192.168.122.222'"),
        "{}",
        xml.stdout
    );
    assert!(
        xml.stdout.contains("address='192.168.122.1'"),
        "{}",
        xml.stdout
    );
}

#[test]
fn refused_edit_answer_no_gives_up() {
    let d = Daemon::start();
    define_default(&d);
    let mut cmd = d.cmd(&["net-edit", "default"]);
    cmd.env("EDITOR", two_step_editor(&d));
    let mut pty = OnPty::spawn(cmd);
    pty.expect("Failed. Try again? [y,n,f,?]: ");
    pty.send("n");
    assert_eq!(pty.wait(), 1);
    let xml = d.run(&["net-dumpxml", "default"]);
    assert!(
        xml.stdout.contains("end='192.168.122.254'"),
        "{}",
        xml.stdout
    );
}

#[test]
fn concurrent_change_asks_and_force_applies() {
    let d = Daemon::start();
    define_default(&d);
    let other = d.file(
        "other.xml",
        &std::fs::read_to_string(example("default-nat.xml"))
            .expect("example")
            .replace("192.168.122.254", "192.168.122.100"),
    );
    let editor = d.script(
        "race",
        &format!(
            "'{}' -q net-define '{}'\nsed -i \"s/start='192.168.122.2'/start='192.168.122.10'/\" \"$1\"",
            common::virtnet_bin().display(),
            other.display()
        ),
    );
    let mut cmd = d.cmd(&["net-edit", "default"]);
    cmd.env("EDITOR", editor);
    let mut pty = OnPty::spawn(cmd);
    pty.expect(
        "error: network default was changed while you were editing; your edit was not applied",
    );
    pty.expect("The XML configuration was changed by another user. Try again? [y,n,f,?]: ");
    pty.send("f");
    pty.expect("Network default XML configuration edited.");
    assert_eq!(pty.wait(), 0);
    // The user's text won, on top of the fresh ETag.
    let xml = d.run(&["net-dumpxml", "default"]);
    assert!(
        xml.stdout
            .contains("<range start='192.168.122.10' end='192.168.122.254'/>"),
        "{}",
        xml.stdout
    );
}

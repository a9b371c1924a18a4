//! A command run on a pseudo-terminal, as a user at a terminal runs it: for what a program
//! does only on a terminal (prompts, progress lines).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A child process whose stdin, stdout and stderr are the slave side of a pty.
pub struct OnPty {
    child: Child,
    master: File,
    seen: String,
}

impl OnPty {
    /// Starts `cmd` with a new pty as its terminal (stdin, stdout and stderr).
    pub fn spawn(mut cmd: std::process::Command) -> OnPty {
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
    pub fn expect(&mut self, needle: &str) {
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

    /// Types `keys` at the terminal.
    pub fn send(&mut self, keys: &str) {
        self.master
            .write_all(keys.as_bytes())
            .expect("write to pty");
    }

    /// Waits (up to 20 s, reading the terminal meanwhile) for the exit status.
    pub fn wait(self) -> i32 {
        self.finish().0
    }

    /// Waits (up to 20 s) for the exit status, with what the terminal showed that no
    /// [`OnPty::expect`] consumed (everything, when nothing was expected), escapes and all.
    pub fn finish(mut self) -> (i32, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // Drain output so the child never blocks on a full pty.
            self.read_within(50);
            if let Some(status) = self.child.try_wait().expect("wait") {
                // What the child wrote just before it exited may still be in the pty.
                self.drain();
                return (status.code().unwrap_or(-1), std::mem::take(&mut self.seen));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("virtnet did not exit; the terminal shows {:?}", self.seen);
            }
        }
    }

    /// Reads what the terminal shows until nothing more comes within 50 ms.
    fn drain(&mut self) {
        while self.read_within(50) {}
    }

    /// Reads one chunk if one arrives within `ms`; false when none did (or the pty closed).
    fn read_within(&mut self, ms: i32) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
            return false;
        }
        let mut buf = [0u8; 4096];
        match self.master.read(&mut buf) {
            Ok(n) if n > 0 => {
                self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                true
            }
            _ => false,
        }
    }
}

impl Drop for OnPty {
    /// A test that failed half way must not leave its command running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

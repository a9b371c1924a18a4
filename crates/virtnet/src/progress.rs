//! One line of progress on a terminal, for the commands that take long enough to need it.
//!
//! The line goes to stderr and is redrawn in place (`\r`, then "erase to end of line"), so
//! what a script reads on stdout is the same with or without it. It is off with `-q`, when
//! stderr is not a terminal (a pipe, a file, a journal) and with `TERM=dumb`: nothing then
//! writes a carriage return or an escape sequence anywhere.

use std::cell::Cell;
use std::io::{self, IsTerminal, Write};

/// Carriage return and "erase in line" (ECMA-48 EL, to the end): clears the line in place.
const CLEAR: &str = "\r\x1b[K";

/// A progress line on stderr, cleared when dropped.
pub struct Progress {
    on: bool,
    drawn: Cell<bool>,
}

impl Progress {
    /// A progress line, shown only when `quiet` is off and stderr is a capable terminal.
    pub fn new(quiet: bool) -> Progress {
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        Progress {
            on: !quiet && !dumb && io::stderr().is_terminal(),
            drawn: Cell::new(false),
        }
    }

    /// Whether anything is drawn at all.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Replaces the line with `text` (one line: kept short by the callers).
    pub fn show(&self, text: &str) {
        if self.on {
            let mut err = io::stderr().lock();
            let _ = write!(err, "{CLEAR}{text}");
            let _ = err.flush();
            self.drawn.set(true);
        }
    }

    /// Erases the line, so that a message printed next starts on a clean line.
    pub fn clear(&self) {
        if self.drawn.replace(false) {
            let mut err = io::stderr().lock();
            let _ = write!(err, "{CLEAR}");
            let _ = err.flush();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

/// `n` out of `total` as "n/total", padded so the line does not jitter as it counts.
pub fn count(n: usize, total: usize) -> String {
    let width = total.to_string().len();
    format!("{n:>width$}/{total}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_padded_to_the_total_width() {
        assert_eq!(count(7, 500), "  7/500");
        assert_eq!(count(500, 500), "500/500");
        assert_eq!(count(1, 1), "1/1");
    }

    #[test]
    fn quiet_draws_nothing() {
        let p = Progress::new(true);
        assert!(!p.is_on());
        p.show("x");
        assert!(!p.drawn.get());
    }
}

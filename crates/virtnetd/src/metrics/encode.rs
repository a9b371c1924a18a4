//! The Prometheus text exposition format, version 0.0.4, written by hand: a family's `# HELP`
//! and `# TYPE` lines, then its samples, with label values escaped as the format requires.
//!
//! About sixty lines do what the scrape needs; a client library would add a registry of
//! long-lived metric objects that the daemon, which reads its counters from the parts that own
//! them at scrape time, has no use for.

use std::fmt::{Display, Write as _};

use virtnet_dns::{HistogramSnapshot, LATENCY_BUCKETS};

/// The media type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only ever goes up (name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets (`_bucket`, `_sum`, `_count`).
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Label names and values of one sample.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

/// The text being written.
#[derive(Debug, Default)]
pub struct Encoder {
    out: String,
}

impl Encoder {
    /// An encoder whose text has room for `bytes` (a scrape knows the last one's size).
    pub fn with_capacity(bytes: usize) -> Encoder {
        Encoder {
            out: String::with_capacity(bytes),
        }
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines. Its samples must follow before the
    /// next family starts.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: Labels<'_>, value: impl Display) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// One sample of the current family whose labels were written once by [`label_set`]
    /// (a port's five labels serve its nine families, and scrape after scrape).
    pub fn sample_with(&mut self, name: &str, label_set: &str, value: u64) {
        self.out.push_str(name);
        self.out.push_str(label_set);
        self.value(value);
    }

    /// One sample of the current family whose first labels were written once by
    /// [`label_list`] (`prefix`: a network's three labels serve its dozens of samples),
    /// followed by `more`, escaped here.
    pub fn sample_after(&mut self, name: &str, prefix: &str, more: Labels<'_>, value: u64) {
        self.out.push_str(name);
        self.out.push('{');
        self.out.push_str(prefix);
        for (label, v) in more {
            write_label(&mut self.out, true, label, v);
        }
        self.out.push('}');
        self.value(value);
    }

    /// ` value` and the line's end: integers without the formatting machinery (tens of
    /// thousands of them per scrape).
    fn value(&mut self, value: u64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut v = value;
        loop {
            at -= 1;
            // `v % 10` is below 10: the cast keeps it whole.
            digits[at] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.out.push(' ');
        // Only ASCII digits were written.
        self.out
            .push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
        self.out.push('\n');
    }

    /// The `_bucket`, `_sum` and `_count` samples of one histogram series.
    pub fn histogram(&mut self, name: &str, labels: Labels<'_>, h: &HistogramSnapshot) {
        for (bound, count) in LATENCY_BUCKETS.iter().zip(h.cumulative) {
            let _ = write!(self.out, "{name}_bucket");
            self.labels(labels, Some(&bound.to_string()));
            let _ = writeln!(self.out, " {count}");
        }
        let _ = write!(self.out, "{name}_bucket");
        self.labels(labels, Some("+Inf"));
        let _ = writeln!(self.out, " {}", h.count);
        let _ = write!(self.out, "{name}_sum");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {}", h.sum_ns as f64 / 1e9);
        let _ = write!(self.out, "{name}_count");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {}", h.count);
    }

    /// `{a="x",b="y"}` (nothing when there are no labels), with `le` last when given.
    fn labels(&mut self, labels: Labels<'_>, le: Option<&str>) {
        write_labels(&mut self.out, labels, le);
    }

    /// The exposition.
    pub fn finish(self) -> String {
        self.out
    }
}

/// `labels` as written after a sample's name: `{a="x",b="y"}`.
pub fn label_set(labels: Labels<'_>) -> String {
    let mut out = String::new();
    write_labels(&mut out, labels, None);
    out
}

/// `labels` without the braces, `a="x",b="y"`: the start of a label set that
/// [`Encoder::sample_after`] completes.
pub fn label_list(labels: Labels<'_>) -> String {
    let mut out = String::new();
    write_labels(&mut out, labels, None);
    // Written as `{…}`: the braces come off (nothing when there are no labels).
    if out.len() >= 2 {
        out.pop();
        out.remove(0);
    }
    out
}

fn write_labels(out: &mut String, labels: Labels<'_>, le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let all = labels.iter().copied().chain(le.map(|v| ("le", v)));
    for (i, (name, value)) in all.enumerate() {
        write_label(out, i > 0, name, value);
    }
    out.push('}');
}

/// `name="value"`, after a comma when it is not the first label.
fn write_label(out: &mut String, comma: bool, name: &str, value: &str) {
    if comma {
        out.push(',');
    }
    out.push_str(name);
    out.push_str("=\"");
    escape_into(out, value);
    out.push('"');
}

/// A label value as the format wants it: backslash, double quote and newline escaped.
fn escape_into(out: &mut String, value: &str) {
    let mut rest = value;
    while let Some(at) = rest.find(['\\', '"', '\n']) {
        out.push_str(&rest[..at]);
        out.push_str(match rest.as_bytes()[at] {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            _ => "\\n",
        });
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_histograms_are_cumulative() {
        let mut e = Encoder::default();
        e.family("virtnet_x_total", Kind::Counter, "A \\ help\nline.");
        e.sample("virtnet_x_total", &[("network", "a\"b\\c\nd")], 3);
        let h = virtnet_dns::Histogram::default();
        h.observe(std::time::Duration::from_millis(2));
        e.family("virtnet_y_seconds", Kind::Histogram, "Y.");
        e.histogram("virtnet_y_seconds", &[("verb", "GET")], &h.snapshot());
        let text = e.finish();
        assert!(text.starts_with(
            "# HELP virtnet_x_total A \\\\ help\\nline.\n# TYPE virtnet_x_total counter\n\
             virtnet_x_total{network=\"a\\\"b\\\\c\\nd\"} 3\n"
        ));
        assert!(text.contains("virtnet_y_seconds_bucket{verb=\"GET\",le=\"0.001\"} 0\n"));
        assert!(text.contains("virtnet_y_seconds_bucket{verb=\"GET\",le=\"0.0025\"} 1\n"));
        assert!(text.contains("virtnet_y_seconds_bucket{verb=\"GET\",le=\"+Inf\"} 1\n"));
        assert!(text.contains("virtnet_y_seconds_sum{verb=\"GET\"} 0.002\n"));
        assert!(text.contains("virtnet_y_seconds_count{verb=\"GET\"} 1\n"));
    }

    #[test]
    fn integers_are_written_whole() {
        let mut e = Encoder::default();
        for v in [0, 7, 10, 1234567890, u64::MAX] {
            e.sample_with("m", "{}", v);
        }
        e.sample_after("n", "a=\"1\"", &[("b", "q\"")], 42);
        assert_eq!(
            e.finish(),
            "m{} 0\nm{} 7\nm{} 10\nm{} 1234567890\nm{} 18446744073709551615\n\
             n{a=\"1\",b=\"q\\\"\"} 42\n"
        );
    }
}

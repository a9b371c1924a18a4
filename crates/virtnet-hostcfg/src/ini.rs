//! A line-preserving reader/writer for the INI dialects of NetworkManager keyfiles and systemd
//! units: `[Section]` headers (which may repeat), `key=value` entries (which may repeat), `#` and
//! `;` comments. Everything not touched is written back exactly as read.

use std::path::Path;

use crate::HostCfgError;

/// One line inside a section (or before the first one).
#[derive(Clone, Debug)]
pub(crate) enum Line {
    /// `key=value`; `raw` is the line as read (or as generated).
    Entry {
        key: String,
        value: String,
        raw: String,
    },
    /// A comment, a blank line, or anything else kept verbatim.
    Other(String),
}

/// A section: its name, its header line as read, and its lines.
#[derive(Clone, Debug)]
pub(crate) struct Section {
    pub name: String,
    pub header: String,
    pub lines: Vec<Line>,
}

/// A parsed file.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ini {
    pub preamble: Vec<Line>,
    pub sections: Vec<Section>,
}

impl Section {
    /// A new empty section.
    pub fn new(name: &str) -> Section {
        Section {
            name: name.to_string(),
            header: format!("[{name}]"),
            lines: Vec::new(),
        }
    }

    /// The entries, in order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.lines.iter().filter_map(|l| match l {
            Line::Entry { key, value, .. } => Some((key.as_str(), value.as_str())),
            Line::Other(_) => None,
        })
    }

    /// The last value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .last()
    }

    /// Every value of `key`.
    pub fn get_all(&self, key: &str) -> Vec<&str> {
        self.entries()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .collect()
    }

    /// Appends `key=value` after the last entry (before trailing blank lines and comments).
    pub fn push(&mut self, key: &str, value: &str) {
        let at = self
            .lines
            .iter()
            .rposition(|l| matches!(l, Line::Entry { .. }))
            .map(|i| i + 1)
            .unwrap_or_else(|| {
                self.lines
                    .iter()
                    .position(|l| matches!(l, Line::Other(s) if s.trim().is_empty()))
                    .unwrap_or(self.lines.len())
            });
        self.lines.insert(
            at,
            Line::Entry {
                key: key.to_string(),
                value: value.to_string(),
                raw: format!("{key}={value}"),
            },
        );
    }

    /// Sets `key` to `value`: the first occurrence is rewritten, the others removed; appended when absent.
    pub fn set(&mut self, key: &str, value: &str) {
        let mut done = false;
        self.lines.retain_mut(|l| match l {
            Line::Entry {
                key: k,
                value: v,
                raw,
            } if k == key => {
                if done {
                    return false;
                }
                done = true;
                *v = value.to_string();
                *raw = format!("{key}={value}");
                true
            }
            _ => true,
        });
        if !done {
            self.push(key, value);
        }
    }

    /// Removes every entry whose key satisfies `pred`; returns the removed (key, value, raw line).
    pub fn take(&mut self, pred: impl Fn(&str) -> bool) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        self.lines.retain(|l| match l {
            Line::Entry { key, value, raw } if pred(key) => {
                out.push((key.clone(), value.clone(), raw.clone()));
                false
            }
            _ => true,
        });
        out
    }
}

impl Ini {
    /// Parses `text`; `path` names the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Ini, HostCfgError> {
        let mut ini = Ini::default();
        for (n, raw) in text.lines().enumerate() {
            let t = raw.trim();
            if t.starts_with('[') {
                let Some(end) = t.find(']') else {
                    return Err(HostCfgError::Parse {
                        path: path.to_path_buf(),
                        line: Some(n + 1),
                        reason: "section header without `]`".into(),
                    });
                };
                ini.sections.push(Section {
                    name: t[1..end].trim().to_string(),
                    header: raw.to_string(),
                    lines: Vec::new(),
                });
                continue;
            }
            let line = if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
                Line::Other(raw.to_string())
            } else if let Some((k, v)) = t.split_once('=') {
                Line::Entry {
                    key: k.trim().to_string(),
                    value: v.trim().to_string(),
                    raw: raw.to_string(),
                }
            } else {
                Line::Other(raw.to_string())
            };
            match ini.sections.last_mut() {
                Some(s) => s.lines.push(line),
                None => ini.preamble.push(line),
            }
        }
        Ok(ini)
    }

    /// The sections called `name`.
    pub fn sections<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Section> + 'a {
        self.sections.iter().filter(move |s| s.name == name)
    }

    /// The first section called `name`.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The first section called `name`, created at the end when absent.
    pub fn section_mut(&mut self, name: &str) -> &mut Section {
        let i = match self.sections.iter().position(|s| s.name == name) {
            Some(i) => i,
            None => {
                if let Some(last) = self.sections.last_mut() {
                    if !matches!(last.lines.last(), Some(Line::Other(s)) if s.trim().is_empty()) {
                        last.lines.push(Line::Other(String::new()));
                    }
                }
                self.sections.push(Section::new(name));
                self.sections.len() - 1
            }
        };
        &mut self.sections[i]
    }

    /// The last value of `key` in the first section `section`.
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.section(section).and_then(|s| s.get(key))
    }

    /// Removes the sections whose name satisfies `pred`, returning them.
    pub fn take_sections(&mut self, pred: impl Fn(&str) -> bool) -> Vec<Section> {
        let (out, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.sections)
            .into_iter()
            .partition(|s| pred(&s.name));
        self.sections = keep;
        out
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |l: &Line| {
            match l {
                Line::Entry { raw, .. } => out.push_str(raw),
                Line::Other(s) => out.push_str(s),
            }
            out.push('\n');
        };
        for l in &self.preamble {
            line(l);
        }
        for s in &self.sections {
            line(&Line::Other(s.header.clone()));
            for l in &s.lines {
                line(l);
            }
        }
        out
    }
}

/// Renders sections built from scratch: `[Name]`, entries, a blank line between sections.
pub(crate) fn render_sections(sections: &[Section]) -> String {
    let mut out = String::new();
    for (i, s) in sections.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&s.header);
        out.push('\n');
        for l in &s.lines {
            match l {
                Line::Entry { raw, .. } => out.push_str(raw),
                Line::Other(t) => out.push_str(t),
            }
            out.push('\n');
        }
        while out.ends_with("\n\n") {
            out.pop();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_edit() {
        let text = "# top\n[connection]\nid=Wired\n  # note\ninterface-name = eth0\n\n[ipv4]\nmethod=auto\n";
        let mut ini = Ini::parse(Path::new("/x"), text).unwrap();
        assert_eq!(ini.render(), text);
        assert_eq!(ini.get("connection", "interface-name"), Some("eth0"));
        ini.section_mut("connection").set("master", "br0");
        ini.take_sections(|n| n == "ipv4");
        assert_eq!(
            ini.render(),
            "# top\n[connection]\nid=Wired\n  # note\ninterface-name = eth0\nmaster=br0\n\n"
        );
    }
}

//! A table renderer that prints what virsh's `vshTable` prints.
//!
//! Layout (libvirt `tools/vsh-table.c`):
//! - every cell is printed as one space and the cell; every cell but the last of a row is then
//!   padded with `column width - cell width + 2` spaces, so columns are separated by three
//!   spaces and lines carry no trailing blanks;
//! - under the header, a line of `column width + 3` dashes per column;
//! - without the header (`-q`), column widths are computed from the data rows only;
//! - control characters, and a backslash that starts `\x`, are shown as `\xNN` (4 columns
//!   wide); double-width characters count 2 columns, zero-width ones 0.

use unicode_width::UnicodeWidthChar;

/// A table: one header row and data rows with the same number of cells.
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; missing cells are empty and extra cells are dropped, so the table always
    /// stays rectangular.
    pub fn push<S: Into<String>>(&mut self, row: impl IntoIterator<Item = S>) {
        let mut row: Vec<String> = row.into_iter().map(Into::into).collect();
        row.resize(self.header.len(), String::new());
        self.rows.push(row);
    }

    /// Number of data rows.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// The table as text; `header` false is virsh's `-q`.
    pub fn render(&self, header: bool) -> String {
        let ncols = self.header.len();
        let encode = |row: &[String]| -> Vec<(String, usize)> {
            row.iter().map(|c| safe_encode(c)).collect()
        };
        let head = encode(&self.header);
        let rows: Vec<Vec<(String, usize)>> = self.rows.iter().map(|r| encode(r)).collect();

        let mut widths = vec![0usize; ncols];
        let measured = rows.iter().chain(std::iter::once(&head).filter(|_| header));
        for row in measured {
            for (w, (_, cw)) in widths.iter_mut().zip(row) {
                *w = (*w).max(*cw);
            }
        }

        let mut out = String::new();
        if header {
            print_row(&mut out, &head, &widths);
            for w in &widths {
                out.push_str(&"-".repeat(w + 3));
            }
            out.push('\n');
        }
        for row in &rows {
            print_row(&mut out, row, &widths);
        }
        out
    }
}

fn print_row(out: &mut String, row: &[(String, usize)], widths: &[usize]) {
    let last = row.len().saturating_sub(1);
    for (i, ((text, width), max)) in row.iter().zip(widths).enumerate() {
        out.push(' ');
        out.push_str(text);
        if i < last {
            out.push_str(&" ".repeat(max - width + 2));
        }
    }
    out.push('\n');
}

/// Encodes a cell the way `vshTableSafeEncode` does and returns it with its display width.
pub fn safe_encode(s: &str) -> (String, usize) {
    let mut out = String::with_capacity(s.len());
    let mut width = 0;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_control() || (c == '\\' && chars.peek() == Some(&'x')) {
            out.push_str(&format!("\\x{:02x}", c as u32));
            width += 4;
        } else if c.is_control() {
            // A non-printable multibyte character: virsh formats each byte as a *signed* char
            // into a 5-byte buffer, so every byte comes out as `\xff`. Reproduced as is.
            for _ in 0..c.len_utf8() {
                out.push_str("\\xff");
                width += 4;
            }
        } else {
            out.push(c);
            width += c.width().unwrap_or(0);
        }
    }
    (out, width)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net_table(rows: &[[&str; 4]]) -> Table {
        let mut t = Table::new(["Name", "State", "Autostart", "Persistent"]);
        for r in rows {
            t.push(r.iter().copied());
        }
        t
    }

    #[test]
    fn virsh_net_list_default() {
        // `virsh net-list --all` on a fresh libvirt host.
        let t = net_table(&[["default", "inactive", "no", "yes"]]);
        assert_eq!(
            t.render(true),
            " Name      State      Autostart   Persistent\n\
             ----------------------------------------------\n \
             default   inactive   no          yes\n"
        );
    }

    #[test]
    fn virsh_net_list_empty() {
        let t = net_table(&[]);
        assert_eq!(t.len(), 0);
        assert_eq!(
            t.render(true),
            " Name   State   Autostart   Persistent\n\
             ----------------------------------------\n"
        );
        assert_eq!(t.render(false), "");
    }

    #[test]
    fn virsh_net_list_several() {
        let t = net_table(&[
            ["default", "active", "yes", "yes"],
            ["isolated-long-name", "inactive", "no", "yes"],
            ["tmp", "active", "no", "no"],
        ]);
        let expected = " Name                 State      Autostart   Persistent\n\
                        ---------------------------------------------------------\n \
                        default              active     yes         yes\n \
                        isolated-long-name   inactive   no          yes\n \
                        tmp                  active     no          no\n";
        assert_eq!(t.render(true), expected);
    }

    #[test]
    fn quiet_widths_ignore_the_header() {
        // vshTableGetColumnsWidths starts at row 1 when the header is not printed.
        let t = net_table(&[
            ["a", "active", "no", "yes"],
            ["bb", "inactive", "yes", "no"],
        ]);
        assert_eq!(
            t.render(false),
            " a    active     no    yes\n bb   inactive   yes   no\n"
        );
    }

    #[test]
    fn dash_line_is_width_plus_three_per_column() {
        let t = Table::new(["Id", "Name", "State"]);
        let out = t.render(true);
        let dashes = out.lines().nth(1).unwrap();
        assert_eq!(dashes.len(), (2 + 3) + (4 + 3) + (5 + 3));
        assert!(dashes.chars().all(|c| c == '-'));
    }

    #[test]
    fn control_characters_and_backslash_x_are_escaped() {
        assert_eq!(safe_encode("a\tb"), ("a\\x09b".to_string(), 6));
        assert_eq!(safe_encode("a\\xb"), ("a\\x5cxb".to_string(), 7));
        assert_eq!(safe_encode("a\\yb"), ("a\\yb".to_string(), 4));
        assert_eq!(safe_encode("\u{7f}"), ("\\x7f".to_string(), 4));
        assert_eq!(safe_encode("\u{85}"), ("\\xff\\xff".to_string(), 8));
    }

    #[test]
    fn wide_and_zero_width_characters() {
        assert_eq!(safe_encode("网络"), ("网络".to_string(), 4));
        assert_eq!(safe_encode("e\u{301}"), ("e\u{301}".to_string(), 1));
        let mut t = Table::new(["Name", "State"]);
        t.push(["网络", "active"]);
        t.push(["ab", "inactive"]);
        assert_eq!(
            t.render(true),
            " Name   State\n------------------\n 网络   active\n ab     inactive\n"
        );
    }

    #[test]
    fn rows_are_kept_rectangular() {
        let mut t = Table::new(["A", "B"]);
        t.push(["x"]);
        t.push(["y", "z", "extra"]);
        // The empty last cell still gets the separator of the cell before it, as in virsh.
        assert_eq!(t.render(false), " x   \n y   z\n");
    }
}

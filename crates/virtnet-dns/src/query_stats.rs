//! Queries counted by question type and response code, read from the wire bytes (the query's
//! first question and the reply's header) so that counting costs no decoding.

use std::sync::atomic::{AtomicU64, Ordering};

/// Question types counted by name; any other is counted as `other`.
pub const QTYPES: [(u16, &str); 10] = [
    (1, "A"),
    (28, "AAAA"),
    (12, "PTR"),
    (33, "SRV"),
    (16, "TXT"),
    (15, "MX"),
    (5, "CNAME"),
    (2, "NS"),
    (6, "SOA"),
    (255, "ANY"),
];

/// Label of questions of a type not in [`QTYPES`] (or with no readable question).
const OTHER: &str = "other";

/// Response codes by value (RFC 1035, 2136); 11..15 by number.
const RCODES: [&str; 16] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE", "RCODE11", "RCODE12", "RCODE13", "RCODE14", "RCODE15",
];

/// Label of queries that got no answer (dropped: malformed beyond FORMERR, or too many
/// forwards in flight).
const NO_REPLY: &str = "none";

const TYPE_SLOTS: usize = QTYPES.len() + 1;
const RCODE_SLOTS: usize = RCODES.len() + 1;

/// Counters by (question type, response code).
#[derive(Debug)]
pub(crate) struct QueryCounts {
    cells: [[AtomicU64; RCODE_SLOTS]; TYPE_SLOTS],
}

impl Default for QueryCounts {
    fn default() -> Self {
        QueryCounts {
            cells: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }
}

/// The slot of the first question's type in `query` (the wire message); `other` when it has
/// none or it cannot be read.
pub(crate) fn qtype_slot(query: &[u8]) -> usize {
    let other = QTYPES.len();
    if query.len() < 12 || u16::from_be_bytes([query[4], query[5]]) == 0 {
        return other;
    }
    // Walk the question's name: labels up to the root label (a pointer cannot occur in a
    // query's first name, but ends it as well).
    let mut i = 12;
    while let Some(&len) = query.get(i) {
        if len == 0 {
            i += 1;
            break;
        }
        if len & 0xc0 != 0 {
            i += 2;
            break;
        }
        i += 1 + usize::from(len);
    }
    match query.get(i..i + 2) {
        Some(t) => {
            let t = u16::from_be_bytes([t[0], t[1]]);
            QTYPES.iter().position(|(v, _)| *v == t).unwrap_or(other)
        }
        None => other,
    }
}

/// The slot of the response code of `reply`; "none" when there is no reply.
pub(crate) fn rcode_slot(reply: &[u8]) -> usize {
    match reply.get(3) {
        Some(b) => usize::from(b & 0x0f),
        None => RCODES.len(),
    }
}

impl QueryCounts {
    /// Counts one query of type slot `qtype` answered with `reply` (empty: no answer).
    pub(crate) fn count(&self, qtype: usize, reply: &[u8]) {
        self.cells[qtype.min(TYPE_SLOTS - 1)][rcode_slot(reply)].fetch_add(1, Ordering::Relaxed);
    }

    /// The non-zero counters as (question type, response code, count).
    pub(crate) fn read(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut out = Vec::new();
        for (t, row) in self.cells.iter().enumerate() {
            let qtype = QTYPES.get(t).map_or(OTHER, |(_, name)| name);
            for (r, cell) in row.iter().enumerate() {
                let n = cell.load(Ordering::Relaxed);
                if n > 0 {
                    out.push((qtype, RCODES.get(r).copied().unwrap_or(NO_REPLY), n));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `vm1.example. AAAA` as a client sends it.
    const QUERY: &[u8] = &[
        0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'v', b'm', b'1', 7, b'e', b'x', b'a',
        b'm', b'p', b'l', b'e', 0, 0, 28, 0, 1,
    ];

    #[test]
    fn the_question_type_and_rcode_are_read_from_the_wire() {
        assert_eq!(QTYPES[qtype_slot(QUERY)].1, "AAAA");
        assert_eq!(qtype_slot(&QUERY[..20]), QTYPES.len(), "truncated: other");
        let counts = QueryCounts::default();
        let mut nx = QUERY.to_vec();
        nx[2] |= 0x80;
        nx[3] = 0x83;
        counts.count(qtype_slot(QUERY), &nx);
        counts.count(qtype_slot(QUERY), &[]);
        assert_eq!(
            counts.read(),
            vec![("AAAA", "NXDOMAIN", 1), ("AAAA", "none", 1)]
        );
    }
}

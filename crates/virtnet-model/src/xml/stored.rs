//! The form a definition is stored in, and the promise that goes with it: what virtnet accepts
//! it can always read back.
//!
//! A definition is stored as its normalised XML ([`super::format`]), which can be larger than
//! the document the client sent: `>` is written `&gt;` (four times the bytes), and every
//! element goes on its own indented line (one more XML node per element). A definition whose
//! normalised form breaks the input limits is therefore refused when it is defined or updated
//! ([`checked_xml`]), so that `net-dumpxml | net-define` always works; and the store reads its
//! own records without the input limits ([`Limits::STORED`]), so that a limit lowered in a
//! later version never makes a stored network unreadable.

use roxmltree::{Document, Node};

use super::load::{load, scan, Input, Limits, MAX_ATTRIBUTES, MAX_NODES};
use super::parse::parse_network_with;
use super::MAX_XML_BYTES;
use crate::error::{ErrorKind, ModelError, Result};
use crate::network::Network;

/// The normalised XML of `net`, checked to be a document [`Network::from_xml`] accepts and that
/// reads back. The error names the element that takes most of the document and the limit.
pub(crate) fn checked_xml(net: &Network) -> Result<String> {
    let xml = super::format::format_network(net);
    if xml.len() > MAX_XML_BYTES {
        return Err(over_limit(&xml, Measure::Bytes));
    }
    match parse_network_with(&xml, Limits::INPUT) {
        Ok(_) => Ok(xml),
        // Size was checked above, and depth and attributes per element do not depend on the
        // limits: an XML-level refusal here is the node or attribute count.
        Err(e) if e.kind == ErrorKind::Xml => {
            let measure = if scan(xml.as_bytes()).attributes > MAX_ATTRIBUTES {
                Measure::Attributes
            } else {
                Measure::Nodes
            };
            Err(over_limit(&xml, measure))
        }
        Err(e) => Err(ModelError {
            reason: format!(
                "the definition does not read back from its stored form: {}",
                e.reason
            ),
            ..e
        }),
    }
}

/// How much of the input limits a definition's stored form takes: what lets a change that
/// only appends to a definition (a port forward) be checked without writing the definition
/// out again.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StoredSize {
    /// Bytes.
    pub bytes: usize,
    /// Elements (the stored form has as many line-break text nodes again).
    pub elements: usize,
    /// Attributes, namespace declarations included.
    pub attributes: usize,
}

/// The share of each limit below which [`StoredSize::well_within_limits`] holds: the margin
/// covers how the pre-scan and the parser may count a document differently.
const WELL_WITHIN_PERCENT: usize = 95;

impl StoredSize {
    /// The size of the stored form `xml`.
    pub(crate) fn of(xml: &str) -> StoredSize {
        let shape = scan(xml.as_bytes());
        StoredSize {
            bytes: xml.len(),
            elements: shape.elements,
            attributes: shape.attributes,
        }
    }

    /// True when every measure is clearly inside its input limit (nodes counted as two per
    /// element, plus the document): a definition of this size needs no full check. Near a
    /// limit, only writing the definition out and reading it back decides
    /// ([`Network::to_checked_xml`](crate::Network::to_checked_xml)).
    pub fn well_within_limits(&self) -> bool {
        let within = |used: usize, limit: usize| used * 100 <= limit * WELL_WITHIN_PERCENT;
        within(self.bytes, MAX_XML_BYTES)
            && within(2 * self.elements + 2, MAX_NODES as usize)
            && within(self.attributes, MAX_ATTRIBUTES)
    }

    /// This size with `other` added.
    pub fn plus(self, other: StoredSize) -> StoredSize {
        StoredSize {
            bytes: self.bytes + other.bytes,
            elements: self.elements + other.elements,
            attributes: self.attributes + other.attributes,
        }
    }

    /// This size with `other` taken away (never below zero).
    pub fn minus(self, other: StoredSize) -> StoredSize {
        StoredSize {
            bytes: self.bytes.saturating_sub(other.bytes),
            elements: self.elements.saturating_sub(other.elements),
            attributes: self.attributes.saturating_sub(other.attributes),
        }
    }
}

/// What a stored document exceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    Bytes,
    Nodes,
    Attributes,
}

impl Measure {
    /// The size of `node` (with everything inside it) in this measure.
    fn of(self, node: Node) -> usize {
        match self {
            Measure::Bytes => node.range().len(),
            Measure::Nodes => node.descendants().count(),
            Measure::Attributes => node.descendants().map(|n| n.attributes().len()).sum(),
        }
    }

    /// The limit and how the stored form grows in this measure, for the message.
    fn describe(self) -> (usize, &'static str, &'static str) {
        match self {
            Measure::Bytes => (
                MAX_XML_BYTES,
                "bytes",
                "characters such as '<', '>' and '&' are stored escaped ('&lt;', '&gt;', \
                 '&amp;')",
            ),
            Measure::Nodes => (
                MAX_NODES as usize,
                "XML nodes",
                "the stored form puts each element on its own indented line, and each line \
                 break is a node too",
            ),
            Measure::Attributes => (MAX_ATTRIBUTES, "attributes", "every attribute counts"),
        }
    }
}

/// The refusal of a definition whose stored form `xml` is over the limit in `measure`.
fn over_limit(xml: &str, measure: Measure) -> ModelError {
    let (limit, unit, why) = measure.describe();
    // The stored form is virtnet's own output, so it parses without limits.
    let Ok(doc) = load(xml, Limits::STORED, Input::Document) else {
        return ModelError::invalid(
            "",
            format!("the definition's stored form is over the limit of {limit} {unit}"),
        );
    };
    let total = match measure {
        Measure::Bytes => xml.len(),
        other => other.of(doc.root()),
    };
    let (field, share) = largest_part(&doc, measure);
    let part = if field.is_empty() {
        String::new()
    } else {
        format!("; {field} takes {share} of them")
    };
    ModelError::invalid(
        field,
        format!(
            "the stored form of this definition would have {total} {unit}, more than the \
             limit of {limit}{part} ({why})"
        ),
    )
}

/// The field path of the element holding most of the document in `measure`: from the root,
/// go down into the largest child element as long as it holds more than half of its parent.
/// Returns the path (empty when no child dominates) and that element's size.
fn largest_part(doc: &Document, measure: Measure) -> (String, usize) {
    let mut node = doc.root_element();
    let mut path: Vec<String> = Vec::new();
    let mut size = measure.of(node);
    while let Some((child, child_size)) = node
        .children()
        .filter(Node::is_element)
        .map(|c| (c, measure.of(c)))
        .max_by_key(|(_, s)| *s)
    {
        if child_size * 2 <= size {
            break;
        }
        path.push(step_name(node, child));
        node = child;
        size = child_size;
    }
    (path.join("."), size)
}

/// The path step of `child` under `parent`: its name, indexed (`ip[0]`) when it is one of a
/// list, as the parser names fields.
fn step_name(parent: Node, child: Node) -> String {
    let name = child.tag_name().name();
    let same: Vec<Node> = parent
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == name)
        .collect();
    let listed = parent.parent().is_some_and(|p| p.is_root())
        && matches!(name, "ip" | "route" | "portgroup");
    if same.len() > 1 || listed {
        let index = same.iter().position(|c| *c == child).unwrap_or(0);
        format!("{name}[{index}]")
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(body: &str) -> Network {
        Network::from_xml(&format!("<network><name>n</name>{body}</network>"))
            .unwrap_or_else(|e| panic!("parse: {e}"))
    }

    #[test]
    fn a_description_that_grows_when_escaped_is_refused_naming_it() {
        let net = network(&format!(
            "<description>{}</description>",
            ">".repeat(400_000)
        ));
        let e = checked_xml(&net).expect_err("refused");
        assert_eq!(e.field, "description", "{e}");
        assert!(e.reason.contains("1048576"), "{e}");
        assert!(e.reason.contains("&gt;"), "{e}");
    }

    #[test]
    fn hosts_that_grow_when_indented_are_refused_naming_the_dhcp_block() {
        let hosts: String = (0..10_500u32)
            .map(|i| {
                format!(
                    "<host mac='52:54:00:00:{:02x}:{:02x}' ip='10.{}.{}.{}'/>",
                    i / 256,
                    i % 256,
                    (i + 2) / 65536,
                    ((i + 2) / 256) % 256,
                    (i + 2) % 256
                )
            })
            .collect();
        let net = network(&format!(
            "<ip address='10.0.0.1' prefix='8'><dhcp>{hosts}</dhcp></ip>"
        ));
        let e = checked_xml(&net).expect_err("refused");
        assert_eq!(e.field, "ip[0].dhcp", "{e}");
        assert!(e.reason.contains("20000"), "{e}");
    }

    #[test]
    fn an_ordinary_definition_reads_back() {
        let net = network("<bridge name='br0'/><ip address='10.0.0.1' prefix='24'/>");
        let xml = checked_xml(&net).expect("accepted");
        let back = Network::from_stored_xml(&xml).expect("reads back");
        assert_eq!(checked_xml(&back).ok(), Some(xml));
    }

    #[test]
    fn a_forward_line_is_what_one_more_forward_adds_to_the_stored_size() {
        let forward = |port: u16, to: &str| -> crate::portforward::PortForward {
            serde_json::from_str(&format!(
                "{{\"proto\": \"tcp\", \"ports\": {{\"start\": {port}, \"end\": {port}}}, \
                 \"to\": {to}}}"
            ))
            .expect("forward")
        };
        let mut net = network("<ip address='10.0.0.1' prefix='24'/>");
        net.forwards
            .push(forward(80, "{\"address\": \"10.0.0.5\"}"));
        for (port, to) in [
            (8080, "{\"address\": \"10.0.0.5\"}"),
            (8443, "{\"name\": \"web.example\"}"),
        ] {
            let before = net.stored_size();
            let f = forward(port, to);
            let added = f.stored_size();
            net.forwards.push(f);
            assert_eq!(before.plus(added), net.stored_size());
            assert_eq!(net.stored_size().minus(added), before);
        }
        assert!(net.stored_size().well_within_limits());
        let xml = checked_xml(&net).expect("accepted");
        assert_eq!(StoredSize::of(&xml), net.stored_size());
    }

    #[test]
    fn near_a_limit_is_not_well_within_it() {
        let at = |bytes, elements, attributes| StoredSize {
            bytes,
            elements,
            attributes,
        };
        assert!(at(1000, 100, 100).well_within_limits());
        assert!(!at(MAX_XML_BYTES, 100, 100).well_within_limits());
        assert!(!at(1000, MAX_NODES as usize / 2, 100).well_within_limits());
        assert!(!at(1000, 100, MAX_ATTRIBUTES).well_within_limits());
    }
}

//! The one XML loader of the crate: every input (a `<network>` document, a guest
//! `<interface>`, the element of a `net-update`, a stored definition) is read by [`load`] with
//! one set of limits: size, XML nodes, nesting depth, attributes per element and per document,
//! and no DTD. A linear pre-scan ([`scan`]) refuses deep nesting and overlong attribute lists
//! before the XML parser spends any work on them. Only [`Limits::STORED`] lifts the size limits,
//! for virtnet's own records.

use roxmltree::{Document, ParsingOptions};

use crate::error::{ErrorKind, ModelError, Result};

/// Most XML nodes accepted in one document.
pub(crate) const MAX_NODES: u32 = 20_000;
/// Deepest element nesting accepted (metadata included).
pub(crate) const MAX_DEPTH: usize = 64;
/// Most attributes accepted on one element. No libvirt network element has more than a
/// handful; the limit also bounds the XML parser's duplicate-attribute check, which is
/// quadratic in the attributes of one element.
pub(crate) const MAX_ELEMENT_ATTRIBUTES: usize = 64;
/// Most attributes accepted in one document (a static host has three; 20,000 nodes hold at
/// most 10,000 hosts).
pub(crate) const MAX_ATTRIBUTES: usize = 4 * MAX_NODES as usize;
/// What a document is read with: the input limits for what clients send, none for the
/// store's own records (see [`Limits::STORED`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Largest document, in bytes.
    max_bytes: Option<usize>,
    /// Most XML nodes (elements, texts, comments) in the document.
    max_nodes: Option<u32>,
    /// Most attributes in the document.
    max_attributes: Option<usize>,
}

impl Limits {
    /// What a client may send: bounded size, nodes and attributes.
    pub(crate) const INPUT: Limits = Limits {
        max_bytes: Some(super::MAX_XML_BYTES),
        max_nodes: Some(MAX_NODES),
        max_attributes: Some(MAX_ATTRIBUTES),
    };
    /// What virtnet wrote itself: no size limits, so a record that was accepted is never
    /// refused later (its normalised form may be larger than its input, `>` becoming `&gt;`).
    /// DTDs, deep nesting and overlong attribute lists stay refused: the parser's safety does
    /// not depend on who wrote the file.
    pub(crate) const STORED: Limits = Limits {
        max_bytes: None,
        max_nodes: None,
        max_attributes: None,
    };
}

/// What is being read, which the errors name: a whole document (field ``) or the element of
/// a `net-update` (field: the section, e.g. `ip-dhcp-host`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Input<'a> {
    /// A `<network>` document (or a guest `<interface>`).
    Document,
    /// The one element a `net-update` of `section` carries.
    Update {
        /// The section's name, the field of every error.
        section: &'a str,
    },
}

impl Input<'_> {
    /// The field errors are reported on.
    fn field(&self) -> &str {
        match self {
            Input::Document => "",
            Input::Update { section } => section,
        }
    }

    /// What the input is called in errors.
    fn noun(&self) -> &'static str {
        match self {
            Input::Document => "document",
            Input::Update { .. } => "update XML",
        }
    }

    fn error(&self, reason: impl Into<String>) -> ModelError {
        ModelError::invalid(self.field(), reason).with_kind(ErrorKind::Xml)
    }
}

/// Parses `text` with `limits`, after a linear pre-scan that refuses deep nesting, too many
/// elements and too many attributes before the XML parser spends any work on them. Errors are
/// of kind [`ErrorKind::Xml`] on the field `input` names.
pub(crate) fn load<'t>(text: &'t str, limits: Limits, input: Input) -> Result<Document<'t>> {
    let noun = input.noun();
    if let Some(max) = limits.max_bytes {
        if text.len() > max {
            return Err(input.error(format!(
                "{noun} is {} bytes; the limit is {max} bytes",
                text.len()
            )));
        }
    }
    if text.trim().is_empty() {
        return Err(input.error(format!("{noun} is empty")));
    }
    let shape = scan(text.as_bytes());
    // roxmltree recurses per nesting level, so deep documents must be refused before it runs.
    if shape.max_depth > MAX_DEPTH {
        return Err(input.error(format!(
            "elements are nested more than {MAX_DEPTH} levels deep"
        )));
    }
    if shape.max_element_attributes > MAX_ELEMENT_ATTRIBUTES {
        return Err(input.error(format!(
            "an element has {} attributes; the limit is {MAX_ELEMENT_ATTRIBUTES}",
            shape.max_element_attributes
        )));
    }
    if let Some(max) = limits.max_attributes {
        if shape.attributes > max {
            return Err(input.error(format!(
                "{noun} has {} attributes; the limit is {max}",
                shape.attributes
            )));
        }
    }
    // Every element is a node, so this refuses early what the parser would refuse anyway.
    let max_nodes = limits.max_nodes.unwrap_or(u32::MAX);
    let too_many_nodes = || format!("{noun} has more than {max_nodes} XML nodes");
    if shape.elements > max_nodes as usize {
        return Err(input.error(too_many_nodes()));
    }
    let opts = ParsingOptions {
        allow_dtd: false,
        nodes_limit: max_nodes,
    };
    Document::parse_with_options(text, opts).map_err(|e| {
        let reason = match (e, input) {
            (roxmltree::Error::DtdDetected, Input::Document) => {
                "DTDs and entity declarations are not accepted in network XML".to_string()
            }
            (roxmltree::Error::DtdDetected, Input::Update { .. }) => {
                "DTDs and entity declarations are not accepted in update XML".to_string()
            }
            (roxmltree::Error::NodesLimitReached, _) => too_many_nodes(),
            (other, Input::Document) => format!("malformed XML: {other}"),
            (other, Input::Update { .. }) => format!("malformed update XML: {other}"),
        };
        input.error(reason)
    })
}

/// What the pre-scan found out about a document's markup.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Deepest element nesting.
    pub max_depth: usize,
    /// Start tags (elements).
    pub elements: usize,
    /// Attributes in all start tags.
    pub attributes: usize,
    /// Most attributes on one start tag.
    pub max_element_attributes: usize,
}

/// A linear scan over the tags of `xml` that skips comments, processing instructions, CDATA
/// and declarations, and quoted attribute values, counting nesting, elements and attributes
/// (one per quoted value). It stops at the first thing it cannot make sense of, which the XML
/// parser then rejects.
pub(crate) fn scan(xml: &[u8]) -> Shape {
    let find = |from: usize, pat: &[u8]| {
        xml[from.min(xml.len())..]
            .windows(pat.len())
            .position(|w| w == pat)
            .map(|p| from + p + pat.len())
    };
    let mut shape = Shape::default();
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(off) = xml[i..].iter().position(|b| *b == b'<') {
        i += off;
        let rest = &xml[i..];
        let skip_to = if rest.starts_with(b"<!--") {
            find(i + 4, b"-->")
        } else if rest.starts_with(b"<![CDATA[") {
            find(i + 9, b"]]>")
        } else if rest.starts_with(b"<?") {
            find(i + 2, b"?>")
        } else if rest.starts_with(b"<!") {
            find(i + 2, b">")
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            find(i + 2, b">")
        } else {
            // A start tag: find its end outside quoted attribute values.
            let mut j = i + 1;
            let mut quote = None;
            let mut attributes = 0usize;
            while j < xml.len() {
                match (quote, xml[j]) {
                    (None, b'"' | b'\'') => {
                        quote = Some(xml[j]);
                        attributes += 1;
                    }
                    (Some(q), c) if c == q => quote = None,
                    (None, b'>') => break,
                    _ => {}
                }
                j += 1;
            }
            if j >= xml.len() {
                return shape;
            }
            shape.elements += 1;
            shape.attributes += attributes;
            shape.max_element_attributes = shape.max_element_attributes.max(attributes);
            if xml[j - 1] != b'/' {
                depth += 1;
                shape.max_depth = shape.max_depth.max(depth);
            }
            Some(j + 1)
        };
        match skip_to {
            Some(next) => i = next,
            None => return shape,
        }
    }
    shape
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_counts_depth_outside_quotes() {
        let deep = format!("{}{}", "<a>".repeat(10_000), "</a>".repeat(10_000));
        assert!(scan(deep.as_bytes()).max_depth > MAX_DEPTH);
        assert_eq!(
            scan(b"<portgroup name='a'><vlan><tag id='1'/></vlan></portgroup>").max_depth,
            2
        );
        assert_eq!(scan(b"<a x='/>'><b/></a>").max_depth, 1);
    }

    /// A document and an update element are held to the same limits; only the wording and
    /// the field of the error differ.
    #[test]
    fn documents_and_update_elements_share_the_limits() {
        let update = Input::Update {
            section: "ip-dhcp-host",
        };
        let deep = format!(
            "<host>{}{}</host>",
            "<a>".repeat(MAX_DEPTH),
            "</a>".repeat(MAX_DEPTH)
        );
        let wide = format!("<host>{}</host>", "<a/>".repeat(MAX_NODES as usize));
        let dtd = "<!DOCTYPE h [<!ENTITY a 'x'>]><host name='&a;'/>";
        for input in [Input::Document, update] {
            for (text, says) in [
                (deep.as_str(), "nested more than 64"),
                (wide.as_str(), "more than 20000 XML nodes"),
                (dtd, "DTDs"),
                ("", "empty"),
                ("<host", "malformed"),
            ] {
                let e = load(text, Limits::INPUT, input).expect_err(says);
                assert_eq!(e.kind, ErrorKind::Xml, "{e}");
                assert_eq!(e.field, input.field(), "{e}");
                assert!(e.reason.contains(says), "{says}: {e}");
            }
        }
        let e = load(
            &"x".repeat(super::super::MAX_XML_BYTES + 1),
            Limits::INPUT,
            update,
        )
        .expect_err("too big");
        assert!(e.reason.starts_with("update XML is 1048577 bytes"), "{e}");
    }
}

//! The model's error type: every error names the field it is about and why.

/// What kind of problem a [`ModelError`] reports; stable, so the API can map it to a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The document is not well-formed XML, is too large or too deep, or uses a DTD.
    Xml,
    /// The XML is well-formed but a value or structure is not valid for a network.
    Invalid,
    /// The definition clashes with another network (name, UUID, bridge).
    Conflict,
    /// The definition asks for something virtnet does not do (e.g. running dnsmasq).
    Unsupported,
}

/// An error about a network definition: the field path (`ip[0].dhcp.range[1].end`), the
/// offending value when there is one, and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{}", self.render())]
pub struct ModelError {
    /// What kind of error this is.
    pub kind: ErrorKind,
    /// Path of the offending element or attribute, e.g. `ip[0].dhcp.range[1].end`; empty for
    /// document-level errors.
    pub field: String,
    /// The offending value, if any.
    pub value: Option<String>,
    /// Why it is wrong.
    pub reason: String,
}

impl ModelError {
    /// An [`ErrorKind::Invalid`] error.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ModelError {
        ModelError {
            kind: ErrorKind::Invalid,
            field: field.into(),
            value: None,
            reason: reason.into(),
        }
    }

    /// An [`ErrorKind::Invalid`] error showing the bad value.
    pub fn bad_value(
        field: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> ModelError {
        ModelError {
            kind: ErrorKind::Invalid,
            field: field.into(),
            value: Some(value.into()),
            reason: reason.into(),
        }
    }

    /// Replaces the kind.
    pub fn with_kind(mut self, kind: ErrorKind) -> ModelError {
        self.kind = kind;
        self
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if !self.field.is_empty() {
            out.push_str(&self.field);
            if let Some(v) = &self.value {
                out.push_str(&format!(" '{}'", truncate(v, 80)));
            }
            out.push_str(": ");
        } else if let Some(v) = &self.value {
            out.push_str(&format!("'{}': ", truncate(v, 80)));
        }
        out.push_str(&self.reason);
        out
    }
}

/// Shortens a value for an error message so hostile input cannot flood a terminal.
fn truncate(s: &str, max: usize) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if clean.chars().count() <= max {
        clean
    } else {
        let head: String = clean.chars().take(max).collect();
        format!("{head}…")
    }
}

/// Result alias for the model.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_field_value_and_reason() {
        let e = ModelError::bad_value("uuid", "49a0ceb-x", "not a valid UUID");
        assert_eq!(e.to_string(), "uuid '49a0ceb-x': not a valid UUID");
        let long = "a".repeat(500);
        let e = ModelError::bad_value("name", long, "too long");
        assert!(e.to_string().len() < 120);
    }
}

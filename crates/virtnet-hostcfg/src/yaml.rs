//! A small block-style YAML emitter for netplan files (yaml-rust2 parses; this writes in the shape
//! admins and netplan's documentation use: two-space indentation, block mappings and sequences,
//! plain scalars wherever YAML allows them).

use yaml_rust2::Yaml;

/// Emits `doc` as block-style YAML, no `---` header.
pub(crate) fn emit(doc: &Yaml) -> Result<String, String> {
    let mut out = String::new();
    match doc {
        Yaml::Hash(h) if !h.is_empty() => emit_hash(&mut out, h, 0, None)?,
        Yaml::Array(a) if !a.is_empty() => emit_array(&mut out, a, 0)?,
        other => {
            out.push_str(&scalar(other)?);
            out.push('\n');
        }
    }
    Ok(out)
}

fn pad(n: usize) -> String {
    " ".repeat(n)
}

/// Writes a mapping at `indent`; when `first_prefix` is given the first key goes right after it
/// on the current line (for `- key: value` items).
fn emit_hash(
    out: &mut String,
    h: &yaml_rust2::yaml::Hash,
    indent: usize,
    first_prefix: Option<&str>,
) -> Result<(), String> {
    for (i, (k, v)) in h.iter().enumerate() {
        match (i, first_prefix) {
            (0, Some(p)) => out.push_str(p),
            _ => out.push_str(&pad(indent)),
        }
        out.push_str(&scalar(k)?);
        out.push(':');
        match v {
            Yaml::Hash(inner) if !inner.is_empty() => {
                out.push('\n');
                emit_hash(out, inner, indent + 2, None)?;
            }
            Yaml::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                emit_array(out, inner, indent + 2)?;
            }
            Yaml::Null => out.push('\n'),
            other => {
                out.push(' ');
                out.push_str(&scalar(other)?);
                out.push('\n');
            }
        }
    }
    Ok(())
}

fn emit_array(out: &mut String, a: &[Yaml], indent: usize) -> Result<(), String> {
    for item in a {
        match item {
            Yaml::Hash(h) if !h.is_empty() => {
                let prefix = format!("{}- ", pad(indent));
                emit_hash(out, h, indent + 2, Some(&prefix))?;
            }
            Yaml::Array(inner) if !inner.is_empty() => {
                out.push_str(&pad(indent));
                out.push_str("-\n");
                emit_array(out, inner, indent + 2)?;
            }
            other => {
                out.push_str(&pad(indent));
                out.push_str("- ");
                out.push_str(&scalar(other)?);
                out.push('\n');
            }
        }
    }
    Ok(())
}

fn scalar(v: &Yaml) -> Result<String, String> {
    Ok(match v {
        Yaml::String(s) => string(s),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Real(r) => r.clone(),
        Yaml::Boolean(b) => b.to_string(),
        Yaml::Null => "~".into(),
        Yaml::Hash(h) if h.is_empty() => "{}".into(),
        Yaml::Array(a) if a.is_empty() => "[]".into(),
        Yaml::Hash(_) | Yaml::Array(_) => return Err("a mapping or sequence used as a key".into()),
        Yaml::Alias(_) => return Err("YAML aliases are not supported".into()),
        Yaml::BadValue => return Err("bad YAML value".into()),
    })
}

/// A string as a plain scalar when that reads back as the same string, else double-quoted.
fn string(s: &str) -> String {
    let plain = !s.is_empty()
        && s.trim() == s
        && !s.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@`".contains(c))
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.ends_with(':')
        && !s.chars().any(|c| c.is_control())
        && matches!(Yaml::from_str(s), Yaml::String(_))
        // YAML 1.1 readers take `52:54:00:12:34:56` for a base-60 number.
        && !(s.contains(':') && s.chars().all(|c| c.is_ascii_digit() || ":._+-".contains(c)));
    if plain {
        return s.to_string();
    }
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            c if c.is_control() => q.push_str(&format!("\\x{:02x}", c as u32 & 0xff)),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use yaml_rust2::YamlLoader;

    #[test]
    fn round_trips() {
        let src = "network:\n  version: 2\n  ethernets:\n    eth0:\n      dhcp4: no\n      addresses:\n        - 10.0.0.2/24\n        - \"2001:db8::2/64\"\n      routes:\n        - to: default\n          via: 10.0.0.1\n      nameservers:\n        addresses: [1.1.1.1]\n      match: {}\n      label: \"123\"\n";
        let doc = &YamlLoader::load_from_str(src).unwrap()[0];
        let out = emit(doc).unwrap();
        let back = &YamlLoader::load_from_str(&out).unwrap()[0];
        assert_eq!(doc, back, "{out}");
        assert!(out.contains("      dhcp4: no\n"), "{out}");
        assert!(
            out.contains("        - to: default\n          via: 10.0.0.1\n"),
            "{out}"
        );
        assert!(out.contains("label: \"123\""), "{out}");
    }
}

//! The headers of the host's nftables chains (`nft -j list chains`): family, table, name,
//! hook and policy, without their rules. virtnetd reads them to warn about other tables whose
//! `policy drop` still drops what virtnet accepts (an accept is final only in its own table).

use crate::error::{HostError, Result};
use crate::nft::Nftables;

/// One chain as `nft list chains` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHeader {
    /// Address family of its table (`inet`, `ip`, `bridge`…).
    pub family: String,
    /// Its table.
    pub table: String,
    /// The chain's name.
    pub name: String,
    /// The hook of a base chain (`forward`, `input`…); `None` for a regular chain.
    pub hook: Option<String>,
    /// The policy of a base chain (`accept`, `drop`); `None` for a regular chain.
    pub policy: Option<String>,
}

impl ChainHeader {
    /// A base chain `name` of the table `family table`, on `hook` with `policy`.
    pub fn base(family: &str, table: &str, name: &str, hook: &str, policy: &str) -> Self {
        ChainHeader {
            hook: Some(hook.into()),
            policy: Some(policy.into()),
            ..ChainHeader::regular(family, table, name)
        }
    }

    /// A regular chain `name` (no hook, no policy) of the table `family table`.
    pub fn regular(family: &str, table: &str, name: &str) -> Self {
        ChainHeader {
            family: family.into(),
            table: table.into(),
            name: name.into(),
            hook: None,
            policy: None,
        }
    }
}

impl Nftables {
    /// Lists the header of every chain of every table (one `list chains`, in JSON). Reads
    /// only the headers, never the rules, so its cost does not grow with the host's ruleset.
    pub fn chain_headers(&mut self) -> Result<Vec<ChainHeader>> {
        self.set_json(true);
        let listing = self.run("list chains");
        self.set_json(false);
        parse_chain_headers(&listing?)
    }
}

/// The chains of a JSON listing (`{"nftables": [{"metainfo": …}, {"chain": {…}}, …]}`).
fn parse_chain_headers(listing: &str) -> Result<Vec<ChainHeader>> {
    let json: serde_json::Value = serde_json::from_str(listing)
        .map_err(|e| HostError::msg("parse nft chain listing", "", e.to_string()))?;
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let items = json["nftables"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    Ok(items
        .iter()
        .filter_map(|i| i.get("chain"))
        .map(|c| ChainHeader {
            family: text(&c["family"]).unwrap_or_default(),
            table: text(&c["table"]).unwrap_or_default(),
            name: text(&c["name"]).unwrap_or_default(),
            hook: text(&c["hook"]),
            policy: text(&c["policy"]),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_and_regular_chains_are_told_apart() {
        let listing = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "handle": 1,
                       "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
            {"chain": {"family": "inet", "table": "virtnet", "name": "guest_in", "handle": 2}}]}"#;
        let chains = parse_chain_headers(listing).unwrap();
        assert_eq!(
            chains,
            vec![
                ChainHeader::base("ip", "filter", "FORWARD", "forward", "drop"),
                ChainHeader::regular("inet", "virtnet", "guest_in"),
            ]
        );
    }

    #[test]
    fn a_listing_that_is_not_json_is_an_error() {
        let e = parse_chain_headers("table ip filter {").unwrap_err();
        assert!(
            e.to_string().starts_with("parse nft chain listing: "),
            "{e}"
        );
    }
}

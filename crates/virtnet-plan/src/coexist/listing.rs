//! Reading another table from nft's JSON listing (`nft -j list table FAMILY NAME`) into the
//! reduced form the analysis needs ([`ForeignTable`]).

use serde_json::Value;

use super::{ForeignChain, ForeignRule, ForeignTable, Match, Side, Verdict};

/// A JSON listing that is not what nft writes.
#[derive(Debug, thiserror::Error)]
#[error("cannot read nft's listing of table {table}: {reason}")]
pub struct ListingError {
    /// `family name` of the table.
    pub table: String,
    /// What was wrong.
    pub reason: String,
}

/// Reads the listing of the table `family name` (its chains, then its rules, as nft lists
/// them; sets, maps and other objects are skipped).
pub fn parse_table(family: &str, name: &str, json: &str) -> Result<ForeignTable, ListingError> {
    let err = |reason: String| ListingError {
        table: format!("{family} {name}"),
        reason,
    };
    let value: Value = serde_json::from_str(json).map_err(|e| err(e.to_string()))?;
    let items = value["nftables"]
        .as_array()
        .ok_or_else(|| err("no \"nftables\" array".into()))?;
    let mut table = ForeignTable {
        family: family.into(),
        name: name.into(),
        chains: Vec::new(),
    };
    for item in items {
        if let Some(c) = item.get("chain") {
            table.chains.push(ForeignChain {
                name: text(&c["name"]),
                hook: c["hook"].as_str().map(str::to_string),
                policy: c["policy"].as_str().map(str::to_string),
                rules: Vec::new(),
            });
        } else if let Some(r) = item.get("rule") {
            let chain = text(&r["chain"]);
            let Some(c) = table.chains.iter_mut().find(|c| c.name == chain) else {
                return Err(err(format!("rule of unlisted chain {chain}")));
            };
            c.rules.push(parse_rule(r));
        }
    }
    Ok(table)
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// One rule: its matches, its verdict; counters, logs and comments are not matches.
fn parse_rule(r: &Value) -> ForeignRule {
    let mut rule = ForeignRule {
        handle: r["handle"].as_u64().unwrap_or_default(),
        comment: r["comment"].as_str().map(str::to_string),
        matches: Vec::new(),
        verdict: None,
    };
    for stmt in r["expr"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let Some((key, body)) = stmt.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        match key.as_str() {
            "match" => rule.matches.push(parse_match(body)),
            "counter" | "log" | "notrack" => {}
            // iptables' `-m comment` shows as an xt match; it matches everything.
            "xt" if body["name"] == "comment" => {}
            "accept" => rule.verdict = Some(Verdict::Accept),
            "drop" => rule.verdict = Some(Verdict::Drop),
            "reject" => rule.verdict = Some(Verdict::Reject),
            "return" => rule.verdict = Some(Verdict::Return),
            "jump" => rule.verdict = Some(Verdict::Jump(text(&body["target"]))),
            "goto" => rule.verdict = Some(Verdict::Goto(text(&body["target"]))),
            "queue" | "continue" => rule.verdict = Some(Verdict::Other),
            // Anything else (limits, sets, NAT, marks…) may or may not hold.
            _ => rule.matches.push(Match::Other),
        }
    }
    rule
}

/// `{"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "virbr0"}` and the like.
fn parse_match(m: &Value) -> Match {
    let negated = match m["op"].as_str() {
        Some("==" | "in") => false,
        Some("!=") => true,
        _ => return Match::Other,
    };
    let Some(names) = strings(&m["right"]) else {
        return Match::Other;
    };
    let left = &m["left"];
    match (left["meta"]["key"].as_str(), left["ct"]["key"].as_str()) {
        (Some("iifname"), _) => Match::Ifname {
            side: Side::In,
            negated,
            names,
        },
        (Some("oifname"), _) => Match::Ifname {
            side: Side::Out,
            negated,
            names,
        },
        (_, Some("state")) => Match::CtState {
            negated,
            states: names,
        },
        _ => Match::Other,
    }
}

/// A string, an array of strings, or an anonymous set of strings.
fn strings(v: &Value) -> Option<Vec<String>> {
    if let Some(s) = v.as_str() {
        return Some(vec![s.to_string()]);
    }
    let items = v.as_array().or_else(|| v["set"].as_array())?;
    items
        .iter()
        .map(|i| i.as_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coexist::{obstacles, Guarded};

    /// As `nft -j list table ip filter` prints Docker's filter table (iptables-nft 1.8.9).
    const DOCKER: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
      {"table": {"family": "ip", "name": "filter", "handle": 1}},
      {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "handle": 1, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
      {"chain": {"family": "ip", "table": "filter", "name": "DOCKER-USER", "handle": 2}},
      {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "handle": 4, "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"jump": {"target": "DOCKER-USER"}}]}},
      {"rule": {"family": "ip", "table": "filter", "chain": "DOCKER-USER", "handle": 5, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "virbr0"}}, {"xt": {"type": "match", "name": "comment"}}, {"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}},
      {"rule": {"family": "ip", "table": "filter", "chain": "DOCKER-USER", "handle": 6, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}], "comment": "virtnet:default"}},
      {"rule": {"family": "ip", "table": "filter", "chain": "DOCKER-USER", "handle": 3, "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"return": null}]}}]}"#;

    #[test]
    fn docker_listing_is_read_and_its_accepts_count() {
        let t = parse_table("ip", "filter", DOCKER).unwrap();
        assert_eq!(t.chains.len(), 2);
        assert_eq!(t.chains[1].rules.len(), 3);
        assert_eq!(
            t.chains[1].rules[1].comment.as_deref(),
            Some("virtnet:default")
        );
        let g = Guarded {
            network: "default".into(),
            bridge: "virbr0".into(),
            forwards: true,
            inbound: false,
            ipv4: true,
            ipv6: false,
        };
        assert_eq!(obstacles(&[t], &g), vec![]);
    }

    #[test]
    fn a_rule_of_a_chain_never_listed_is_an_error() {
        let e = parse_table(
            "inet",
            "x",
            r#"{"nftables": [{"rule": {"chain": "c", "handle": 1, "expr": []}}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read nft's listing of table inet x: rule of unlisted chain c"
        );
    }
}

//! Living beside other firewalls: which chains of *other* nftables tables would drop a
//! network's guest traffic, and the scoped accepts that let it through in that table's own
//! terms. Pure: the caller lists the tables (`virtnet-host`) and applies the fixes.
//!
//! In nftables an `accept` ends a packet's walk through one base chain only; every other base
//! chain on the same hook still sees the packet, and its `drop` (policy or rule) is final.
//! So virtnet's own table cannot accept past Docker's `FORWARD` policy drop or a host
//! firewall's input policy drop: the accept must go into *that* table's chain. The accepts
//! virtnet adds there are scoped to its bridge (`iifname`/`oifname`) and say nothing more
//! than "this traffic is virtnet's business": what guests may actually do is still decided by
//! virtnet's own table, whose input and forward chains reject everything not allowed, and an
//! accept elsewhere cannot override those rejects.
//!
//! The analysis walks each foreign `input`/`forward` base chain the way the kernel would for
//! three kinds of packets (a guest's request to the host, a guest's new outbound connection,
//! a reply to a guest), following `jump`/`goto` into the table's regular chains. A rule
//! counts only when every match is known to hold (interface names, `ct state`); a rule with
//! any other match (`ct state invalid drop`, `tcp dport 22 accept`) might not apply and is
//! passed over. So a drop reported here is one guest traffic certainly meets; an accept
//! behind a condition the analysis cannot judge is not taken for one.

use std::fmt;

mod listing;
pub use listing::{parse_table, ListingError};

/// The prefix of the comment on every rule virtnet adds to another table.
pub const COMMENT_PREFIX: &str = "virtnet:";

/// The comment that tags the accepts added for `network` (`virtnet:<network>`). A network
/// name may hold any character but `/` (as in libvirt); the comment goes into an nft script
/// between double quotes, which nft cannot escape, so every byte outside `[A-Za-z0-9_.:-]` is
/// written `%XX`: a name cannot end the string and add rules of its own.
pub fn comment(network: &str) -> String {
    let mut out = String::from(COMMENT_PREFIX);
    for b in network.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How deep `jump`s are followed (the kernel allows 16 levels).
const MAX_DEPTH: usize = 16;

/// A table of someone else's, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignTable {
    /// Its family (`ip`, `ip6`, `inet`).
    pub family: String,
    /// Its name.
    pub name: String,
    /// Its chains, base and regular, with their rules in order.
    pub chains: Vec<ForeignChain>,
}

/// A chain of a foreign table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignChain {
    /// Its name.
    pub name: String,
    /// The hook of a base chain.
    pub hook: Option<String>,
    /// The policy of a base chain.
    pub policy: Option<String>,
    /// Its rules, in order.
    pub rules: Vec<ForeignRule>,
}

/// A rule, reduced to what decides whether guest traffic meets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignRule {
    /// The rule's handle.
    pub handle: u64,
    /// The rule's comment (nft's own; iptables' `-m comment` is not visible in nft's listing).
    pub comment: Option<String>,
    /// Its matches (statements without a verdict, such as counters, are left out).
    pub matches: Vec<Match>,
    /// Its verdict, if any.
    pub verdict: Option<Verdict>,
}

/// Which interface a name match looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    /// `iifname`.
    In,
    /// `oifname`.
    Out,
}

/// A match of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// `iifname`/`oifname` `==` (or `!=` when `negated`) one of `names` (`*` suffix: prefix).
    Ifname {
        /// Which interface.
        side: Side,
        /// `!=`.
        negated: bool,
        /// The names compared with.
        names: Vec<String>,
    },
    /// `ct state` is one of `states` (`!=` when `negated`).
    CtState {
        /// `!=`.
        negated: bool,
        /// `new`, `established`, `related`, `invalid`, `untracked`.
        states: Vec<String>,
    },
    /// Anything else: may or may not hold for guest traffic.
    Other,
}

/// The verdict of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `reject`.
    Reject,
    /// `return`.
    Return,
    /// `jump CHAIN`.
    Jump(String),
    /// `goto CHAIN`.
    Goto(String),
    /// Anything else (`queue`, `continue`…): passed over.
    Other,
}

/// A running network whose guest traffic must get through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guarded {
    /// The network's name.
    pub network: String,
    /// Its bridge.
    pub bridge: String,
    /// It forwards traffic (nat, route, open): the forward hook matters, not only input.
    pub forwards: bool,
    /// New connections from outside reach its guests (its port forwards): those must get
    /// through the forward hook too.
    pub inbound: bool,
    /// It has IPv4 addresses: `ip` tables matter.
    pub ipv4: bool,
    /// It has IPv6 addresses: `ip6` tables matter (Docker 27 sets ip6tables' `FORWARD` policy
    /// drop too, which must not refuse an IPv4-only network).
    pub ipv6: bool,
}

impl Guarded {
    /// Whether tables of `family` see this network's guest traffic.
    fn sees(&self, family: &str) -> bool {
        match family {
            "ip" => self.ipv4,
            "ip6" => self.ipv6,
            "inet" => self.ipv4 || self.ipv6,
            _ => false,
        }
    }
}

/// The guest traffic a chain is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    /// A guest's request to the host (DHCP, DNS), on the input hook.
    ToHost,
    /// A guest's new connection through the host, on the forward hook.
    FromGuests,
    /// Replies to guests' connections, on the forward hook.
    ToGuests,
    /// New connections from outside to guests, on the forward hook: a routed network's
    /// guests, and a NAT network's through its port forwards.
    IntoGuests,
}

impl Direction {
    /// The hook this traffic passes.
    pub fn hook(self) -> &'static str {
        match self {
            Direction::ToHost => "input",
            Direction::FromGuests | Direction::ToGuests | Direction::IntoGuests => "forward",
        }
    }

    /// What is lost when this traffic is dropped.
    pub fn describe(self) -> &'static str {
        match self {
            Direction::ToHost => "guests' DHCP and DNS requests to the host",
            Direction::FromGuests => "guests' forwarded traffic",
            Direction::ToGuests => "replies forwarded to guests",
            Direction::IntoGuests => "new connections forwarded to guests (port forwards)",
        }
    }

    /// The side of the bridge in this traffic.
    fn bridge_side(self) -> Side {
        match self {
            Direction::ToHost | Direction::FromGuests => Side::In,
            Direction::ToGuests | Direction::IntoGuests => Side::Out,
        }
    }

    /// The conntrack state of this traffic.
    fn ct_state(self) -> &'static str {
        match self {
            Direction::ToHost | Direction::FromGuests | Direction::IntoGuests => "new",
            Direction::ToGuests => "established",
        }
    }
}

/// What drops the traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    /// The base chain's `policy drop`.
    Policy,
    /// A terminal `drop`/`reject` rule the traffic certainly meets.
    Rule {
        /// The chain holding it (the base chain or one it jumps to).
        chain: String,
        /// Its handle.
        handle: u64,
        /// The rule as nft would show it (the parts that matter).
        text: String,
    },
}

/// A chain of another table that drops a network's guest traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Obstacle {
    /// The table's family.
    pub family: String,
    /// The table.
    pub table: String,
    /// The base chain.
    pub chain: String,
    /// The traffic dropped.
    pub direction: Direction,
    /// What drops it.
    pub blocker: Blocker,
    /// The bridge whose traffic it is.
    pub bridge: String,
    /// Where the accept goes to let it through.
    pub fix: Fix,
}

impl fmt::Display for Obstacle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Obstacle {
            family,
            table,
            chain,
            ..
        } = self;
        match &self.blocker {
            Blocker::Policy => write!(
                f,
                "chain {chain} (hook {hook}) of table {family} {table} has policy drop",
                hook = self.direction.hook()
            )?,
            Blocker::Rule {
                chain: holder,
                handle,
                text,
            } => {
                write!(f, "rule '{text}' (handle {handle}) in chain {holder}")?;
                if holder != chain {
                    write!(f, ", jumped to from chain {chain},")?;
                }
                write!(
                    f,
                    " (hook {hook}) of table {family} {table} drops everything it meets",
                    hook = self.direction.hook()
                )?;
            }
        }
        write!(
            f,
            ": {} on bridge {} accepted by virtnet are still dropped there",
            self.direction.describe(),
            self.bridge
        )
    }
}

/// The accept that lets one kind of guest traffic through another table's chain.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fix {
    /// A rule inserted at the head of an nft table's base chain, tagged with the network's
    /// comment (`script`: one nft command).
    Nft {
        /// `family table chain`, where the rule goes.
        place: String,
        /// The `insert rule …` command.
        script: String,
        /// The rule's match, to recognise it in a listing (`iifname "virbr0"`).
        ifname: (Side, String),
    },
    /// A rule inserted first into a chain of an iptables-nft table, through iptables itself
    /// (that table belongs to iptables: a rule made by nft could be one iptables cannot
    /// show). In Docker's `filter` table, the chain is `DOCKER-USER`, the hook Docker keeps
    /// for its users, which its `FORWARD` chain jumps to first.
    Iptables {
        /// `iptables-nft` or `ip6tables-nft`.
        program: String,
        /// The table (`filter`).
        table: String,
        /// The chain (`DOCKER-USER`, `FORWARD`, `INPUT`).
        chain: String,
        /// The rule's specification (`-i virbr0 -m comment --comment virtnet:default -j ACCEPT`).
        spec: Vec<String>,
    },
}

impl Fix {
    /// Where the accept goes, for messages: `chain DOCKER-USER of table ip filter (iptables)`.
    pub fn place(&self) -> String {
        match self {
            Fix::Nft { place, .. } => place.clone(),
            Fix::Iptables {
                program,
                table,
                chain,
                ..
            } => {
                let family = if program.starts_with("ip6") {
                    "ip6"
                } else {
                    "ip"
                };
                format!("chain {chain} of table {family} {table} (through {program})")
            }
        }
    }

    /// The rule, for messages.
    pub fn rule(&self) -> String {
        match self {
            Fix::Nft { script, .. } => script.clone(),
            Fix::Iptables {
                program,
                table,
                chain,
                spec,
            } => format!("{program} -t {table} -I {chain} 1 {}", spec.join(" ")),
        }
    }
}

/// The other tables' chains that drop some of `g`'s guest traffic. virtnet's own tables
/// must not be in `tables`.
pub fn obstacles(tables: &[ForeignTable], g: &Guarded) -> Vec<Obstacle> {
    let mut directions = vec![Direction::ToHost];
    if g.forwards {
        directions.extend([Direction::FromGuests, Direction::ToGuests]);
    }
    if g.inbound {
        directions.push(Direction::IntoGuests);
    }
    let mut out = Vec::new();
    for table in tables.iter().filter(|t| g.sees(&t.family)) {
        for chain in &table.chains {
            for &d in &directions {
                if chain.hook.as_deref() != Some(d.hook()) {
                    continue;
                }
                let blocker = match walk(table, chain, d, &g.bridge, 0) {
                    Outcome::Accepted => continue,
                    Outcome::Dropped(b) => b,
                    Outcome::FellThrough if chain.policy.as_deref() == Some("drop") => {
                        Blocker::Policy
                    }
                    Outcome::FellThrough => continue,
                };
                out.push(Obstacle {
                    family: table.family.clone(),
                    table: table.name.clone(),
                    chain: chain.name.clone(),
                    direction: d,
                    blocker,
                    bridge: g.bridge.clone(),
                    fix: fix(table, chain, d, g),
                });
            }
        }
    }
    out
}

/// Whether a table is iptables-nft's: one of its tables, holding its built-in chains.
pub fn is_iptables_table(table: &ForeignTable) -> bool {
    const BUILTIN: [&str; 5] = ["INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"];
    matches!(table.family.as_str(), "ip" | "ip6")
        && matches!(
            table.name.as_str(),
            "filter" | "mangle" | "raw" | "security" | "nat"
        )
        && table
            .chains
            .iter()
            .filter(|c| c.hook.is_some())
            .all(|c| BUILTIN.contains(&c.name.as_str()))
}

/// Docker's hook for its users' rules.
pub const DOCKER_USER: &str = "DOCKER-USER";

/// The accept that lets `d` through `chain` of `table`.
fn fix(table: &ForeignTable, chain: &ForeignChain, d: Direction, g: &Guarded) -> Fix {
    let side = d.bridge_side();
    let tag = comment(&g.network);
    if is_iptables_table(table) {
        let target = if d.hook() == "forward" && table.chains.iter().any(|c| c.name == DOCKER_USER)
        {
            DOCKER_USER
        } else {
            chain.name.as_str()
        };
        return iptables_fix(table, target, side, g);
    }
    let key = if side == Side::In {
        "iifname"
    } else {
        "oifname"
    };
    let place = format!("{} {} {}", table.family, table.name, chain.name);
    Fix::Nft {
        script: format!(
            "insert rule {place} {key} \"{}\" accept comment \"{tag}\"\n",
            g.bridge
        ),
        place: format!(
            "chain {} of table {} {}",
            chain.name, table.family, table.name
        ),
        ifname: (side, g.bridge.clone()),
    }
}

/// The accept for `g`'s bridge on `side` in `chain` of iptables' `table`.
fn iptables_fix(table: &ForeignTable, chain: &str, side: Side, g: &Guarded) -> Fix {
    let program = if table.family == "ip6" {
        "ip6tables-nft"
    } else {
        "iptables-nft"
    };
    let flag = if side == Side::In { "-i" } else { "-o" };
    let tag = comment(&g.network);
    Fix::Iptables {
        program: program.into(),
        table: table.name.clone(),
        chain: chain.into(),
        spec: [
            flag,
            &g.bridge,
            "-m",
            "comment",
            "--comment",
            &tag,
            "-j",
            "ACCEPT",
        ]
        .map(String::from)
        .to_vec(),
    }
}

/// Every accept virtnet may have put into an iptables table for `g` (in `INPUT`, `FORWARD`
/// or `DOCKER-USER`, either side): iptables' listing through nft does not show comments, so
/// removing them after a restart of the daemon tries each (`iptables -C`).
pub fn iptables_accepts(table: &ForeignTable, g: &Guarded) -> Vec<Fix> {
    if !is_iptables_table(table) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for chain in ["INPUT", "FORWARD", DOCKER_USER] {
        if table.chains.iter().any(|c| c.name == chain) {
            for side in [Side::In, Side::Out] {
                out.push(iptables_fix(table, chain, side, g));
            }
        }
    }
    out
}

/// The handles of the rules tagged for `network` in an nft table, by chain: what removing its
/// accepts deletes.
pub fn tagged_rules(table: &ForeignTable, network: &str) -> Vec<(String, u64)> {
    let tag = comment(network);
    table
        .chains
        .iter()
        .flat_map(|c| {
            c.rules
                .iter()
                .filter(|r| r.comment.as_deref() == Some(tag.as_str()))
                .map(|r| (c.name.clone(), r.handle))
        })
        .collect()
}

/// The script deleting rules by handle from `table`, one transaction.
pub fn delete_rules_script(table: &ForeignTable, rules: &[(String, u64)]) -> String {
    rules
        .iter()
        .map(|(chain, handle)| {
            format!(
                "delete rule {} {} {chain} handle {handle}\n",
                table.family, table.name
            )
        })
        .collect()
}

/// The end of a walk through a chain.
enum Outcome {
    Accepted,
    Dropped(Blocker),
    FellThrough,
}

/// Walks `chain` as the kernel would for traffic `d` on `bridge`.
fn walk(
    table: &ForeignTable,
    chain: &ForeignChain,
    d: Direction,
    bridge: &str,
    depth: usize,
) -> Outcome {
    for rule in &chain.rules {
        if !rule.matches.iter().all(|m| holds(m, d, bridge)) {
            continue;
        }
        let target = match &rule.verdict {
            Some(Verdict::Accept) => return Outcome::Accepted,
            Some(Verdict::Drop | Verdict::Reject) => {
                return Outcome::Dropped(Blocker::Rule {
                    chain: chain.name.clone(),
                    handle: rule.handle,
                    text: rule_text(rule),
                })
            }
            Some(Verdict::Return) => return Outcome::FellThrough,
            Some(Verdict::Jump(t) | Verdict::Goto(t)) => t,
            Some(Verdict::Other) | None => continue,
        };
        let Some(next) = table.chains.iter().find(|c| &c.name == target) else {
            continue;
        };
        if depth >= MAX_DEPTH {
            continue;
        }
        match walk(table, next, d, bridge, depth + 1) {
            Outcome::FellThrough if matches!(rule.verdict, Some(Verdict::Jump(_))) => continue,
            other => return other,
        }
    }
    Outcome::FellThrough
}

/// Whether a match certainly holds for traffic `d` on `bridge`. A name match on the other
/// side of the traffic (an uplink virtnet does not know) does not certainly hold.
fn holds(m: &Match, d: Direction, bridge: &str) -> bool {
    match m {
        Match::Ifname {
            side,
            negated,
            names,
        } => {
            if *side != d.bridge_side() {
                // The other interface (an uplink, or none on input): unknown.
                return false;
            }
            names.iter().any(|n| name_matches(n, bridge)) != *negated
        }
        Match::CtState { negated, states } => states.iter().any(|s| s == d.ct_state()) != *negated,
        Match::Other => false,
    }
}

/// nft's interface name match: exact, or a prefix when the pattern ends in `*`.
fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// A rule as nft shows it, from what the analysis keeps of it.
fn rule_text(rule: &ForeignRule) -> String {
    let mut parts: Vec<String> = rule
        .matches
        .iter()
        .map(|m| match m {
            Match::Ifname {
                side,
                negated,
                names,
            } => {
                let key = if *side == Side::In {
                    "iifname"
                } else {
                    "oifname"
                };
                let op = if *negated { "!= " } else { "" };
                format!("{key} {op}{}", quoted_set(names))
            }
            Match::CtState { negated, states } => {
                let op = if *negated { "!= " } else { "" };
                format!("ct state {op}{}", states.join(","))
            }
            Match::Other => "…".into(),
        })
        .collect();
    parts.push(match &rule.verdict {
        Some(Verdict::Reject) => "reject".into(),
        _ => "drop".into(),
    });
    parts.join(" ")
}

fn quoted_set(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    if quoted.len() == 1 {
        quoted.concat()
    } else {
        format!("{{ {} }}", quoted.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(name: &str, hook: &str, policy: &str, rules: Vec<ForeignRule>) -> ForeignChain {
        ForeignChain {
            name: name.into(),
            hook: Some(hook.into()),
            policy: Some(policy.into()),
            rules,
        }
    }

    fn rule(handle: u64, matches: Vec<Match>, verdict: Verdict) -> ForeignRule {
        ForeignRule {
            handle,
            comment: None,
            matches,
            verdict: Some(verdict),
        }
    }

    fn iif(name: &str) -> Match {
        Match::Ifname {
            side: Side::In,
            negated: false,
            names: vec![name.into()],
        }
    }

    fn nat(bridge: &str) -> Guarded {
        Guarded {
            network: "default".into(),
            bridge: bridge.into(),
            forwards: true,
            inbound: false,
            ipv4: true,
            ipv6: false,
        }
    }

    fn docker_filter() -> ForeignTable {
        ForeignTable {
            family: "ip".into(),
            name: "filter".into(),
            chains: vec![
                base(
                    "FORWARD",
                    "forward",
                    "drop",
                    vec![rule(4, vec![], Verdict::Jump(DOCKER_USER.into()))],
                ),
                ForeignChain {
                    name: DOCKER_USER.into(),
                    hook: None,
                    policy: None,
                    rules: vec![rule(5, vec![], Verdict::Return)],
                },
            ],
        }
    }

    #[test]
    fn docker_forward_drop_is_fixed_in_docker_user_through_iptables() {
        let found = obstacles(&[docker_filter()], &nat("virbr0"));
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            found[0].to_string(),
            "chain FORWARD (hook forward) of table ip filter has policy drop: guests' \
             forwarded traffic on bridge virbr0 accepted by virtnet are still dropped there"
        );
        assert_eq!(
            found[0].fix.rule(),
            "iptables-nft -t filter -I DOCKER-USER 1 -i virbr0 -m comment --comment \
             virtnet:default -j ACCEPT"
        );
        assert_eq!(found[1].direction, Direction::ToGuests);
    }

    #[test]
    fn accepts_in_the_jumped_chain_clear_the_obstacle() {
        let mut t = docker_filter();
        t.chains[1]
            .rules
            .insert(0, rule(7, vec![iif("virbr0")], Verdict::Accept));
        t.chains[1].rules.insert(
            0,
            rule(
                8,
                vec![Match::CtState {
                    negated: false,
                    states: vec!["established".into(), "related".into()],
                }],
                Verdict::Accept,
            ),
        );
        assert_eq!(obstacles(&[t.clone()], &nat("virbr0")), vec![]);
        // Another bridge is still dropped.
        assert_eq!(obstacles(&[t], &nat("virbr1")).len(), 1);
    }

    #[test]
    fn ufw_style_input_drop_is_fixed_by_an_nft_accept_at_the_head() {
        let t = ForeignTable {
            family: "inet".into(),
            name: "ufw".into(),
            chains: vec![base(
                "input",
                "input",
                "drop",
                vec![
                    rule(2, vec![iif("lo")], Verdict::Accept),
                    rule(3, vec![Match::Other], Verdict::Accept),
                ],
            )],
        };
        let found = obstacles(&[t], &nat("virbr0"));
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].fix.rule(),
            "insert rule inet ufw input iifname \"virbr0\" accept comment \"virtnet:default\"\n"
        );
        assert!(found[0].to_string().starts_with(
            "chain input (hook input) of table inet ufw has policy drop: guests' DHCP"
        ));
    }

    /// ufw's forward chain: policy drop, replies accepted. A NAT network's own guests go out
    /// (once their new connections are let through), but a port forward's new connections
    /// into a guest are dropped too: found, and fixed on the bridge's way out, only when the
    /// network forwards ports into its guests.
    #[test]
    fn a_forward_drop_that_passes_replies_still_blocks_port_forwards() {
        let t = ForeignTable {
            family: "inet".into(),
            name: "ufw".into(),
            chains: vec![base(
                "forward",
                "forward",
                "drop",
                vec![rule(
                    2,
                    vec![Match::CtState {
                        negated: false,
                        states: vec!["established".into(), "related".into()],
                    }],
                    Verdict::Accept,
                )],
            )],
        };
        let without: Vec<Direction> = obstacles(std::slice::from_ref(&t), &nat("virbr0"))
            .iter()
            .map(|o| o.direction)
            .collect();
        assert_eq!(without, vec![Direction::FromGuests]);
        let with_forwards = Guarded {
            inbound: true,
            ..nat("virbr0")
        };
        let found = obstacles(&[t], &with_forwards);
        let into: Vec<&Obstacle> = found
            .iter()
            .filter(|o| o.direction == Direction::IntoGuests)
            .collect();
        assert_eq!(into.len(), 1, "{found:?}");
        assert_eq!(
            into[0].fix.rule(),
            "insert rule inet ufw forward oifname \"virbr0\" accept comment \"virtnet:default\"\n"
        );
        assert!(into[0].to_string().contains("port forwards"), "{}", into[0]);
    }

    #[test]
    fn a_terminal_reject_is_named_and_a_conditional_one_is_not() {
        let t = ForeignTable {
            family: "inet".into(),
            name: "host".into(),
            chains: vec![base(
                "in",
                "input",
                "accept",
                vec![
                    rule(2, vec![Match::Other], Verdict::Drop),
                    rule(3, vec![], Verdict::Reject),
                ],
            )],
        };
        let g = Guarded {
            forwards: false,
            ..nat("virbr0")
        };
        let found = obstacles(&[t], &g);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].to_string().starts_with(
                "rule 'reject' (handle 3) in chain in (hook input) of table inet host drops"
            ),
            "{}",
            found[0]
        );
    }

    #[test]
    fn isolated_networks_ignore_forward_chains_and_prefix_patterns_match() {
        let t = ForeignTable {
            family: "ip".into(),
            name: "fw".into(),
            chains: vec![
                base("f", "forward", "drop", vec![]),
                base(
                    "i",
                    "input",
                    "drop",
                    vec![rule(1, vec![iif("virbr*")], Verdict::Accept)],
                ),
            ],
        };
        let g = Guarded {
            forwards: false,
            ..nat("virbr3")
        };
        assert_eq!(obstacles(&[t], &g), vec![]);
    }

    #[test]
    fn an_ip6_drop_does_not_concern_an_ipv4_only_network() {
        let mut t = docker_filter();
        t.family = "ip6".into();
        assert_eq!(obstacles(&[t.clone()], &nat("virbr0")), vec![]);
        let dual = Guarded {
            ipv6: true,
            ..nat("virbr0")
        };
        let found = obstacles(&[t], &dual);
        assert_eq!(found.len(), 2);
        assert!(found[0]
            .fix
            .rule()
            .starts_with("ip6tables-nft -t filter -I DOCKER-USER 1"));
    }

    #[test]
    fn a_network_name_cannot_escape_the_comment() {
        assert_eq!(comment("default"), "virtnet:default");
        let evil = "x\" ; add rule inet ufw input accept ; #";
        let tag = comment(evil);
        assert_eq!(
            tag,
            "virtnet:x%22%20%3B%20add%20rule%20inet%20ufw%20input%20accept%20%3B%20%23"
        );
        let t = ForeignTable {
            family: "inet".into(),
            name: "ufw".into(),
            chains: vec![base("input", "input", "drop", vec![])],
        };
        let g = Guarded {
            network: evil.into(),
            ..nat("virbr0")
        };
        let script = obstacles(&[t], &g)[0].fix.rule();
        assert_eq!(script.matches('"').count(), 4, "{script}");
    }

    #[test]
    fn iptables_tables_are_recognised_by_their_builtin_chains() {
        assert!(is_iptables_table(&docker_filter()));
        let mut t = docker_filter();
        t.chains[0].name = "forward".into();
        assert!(!is_iptables_table(&t));
    }
}

//! Living beside other firewalls (issue 14, item 3): Docker's iptables `FORWARD` policy
//! drop, a host firewall's input policy drop (ufw, a hand-written table), firewalld.
//!
//! An accept in virtnet's table does not stop another base chain's drop, so guest traffic
//! another table would drop is either let through *in that table* (`--firewall-integration`:
//! scoped accepts, [`virtnet_plan::coexist`]) or the network is not started at all, with an
//! error naming the table, chain and policy or rule in the way — never started broken. The
//! default is off: an administrator does not expect virtnet to edit other tables unasked.
//!
//! The accepts are tagged `virtnet:<network>` and follow the network: inserted at its start
//! (and at the daemon's start for networks that run), re-inserted when the other firewall
//! re-creates its table or chain (the ruleset watcher calls [`Coexist::ruleset_changed`]
//! after a burst of announcements that touched a table not virtnet's: no polling), removed
//! at its stop. With integration off the watcher logs a table that appears later in the way.
//!
//! `Coexist` has its own lock and its own libnftables handle: the watcher never waits for the
//! kernel layer's lock that a `net-start` holds. Lock order: kernel, then coexist.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::process::Command;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{info, warn};
use virtnet_api::{DoctorAction, DoctorChain, DoctorFirewalld, DoctorReport, DoctorTable};
use virtnet_host::{ChainHeader, NftSets, Nftables};
use virtnet_plan::coexist::{
    delete_rules_script, iptables_accepts, obstacles, parse_table, tagged_rules, Fix, ForeignChain,
    ForeignTable, Guarded, Obstacle, DOCKER_USER,
};
use virtnet_plan::firewall::{NetworkFirewall, TABLE_NAME};
use virtnet_plan::NetworkPlan;

use super::{firewalld, host};
use crate::error::{Error, Result};
use crate::sync::lock;

/// How many changes `virtnet doctor` remembers.
const HISTORY: usize = 64;

/// virtnet's own tables: never analysed as foreign, shown by `doctor`.
const OWN_TABLES: [(&str, &str); 2] =
    [("inet", TABLE_NAME), ("bridge", virtnet_plan::spoof::TABLE)];

/// What guest traffic of a plan must get through.
pub fn guarded(plan: &NetworkPlan) -> Guarded {
    Guarded {
        network: plan.network.clone(),
        bridge: plan.bridge.name.clone(),
        forwards: !matches!(plan.mode, virtnet_model::ForwardMode::None),
        inbound: false,
        ipv4: plan.addresses.iter().any(|a| a.address.is_ipv4()),
        ipv6: plan.addresses.iter().any(|a| a.address.is_ipv6()),
    }
}

/// What guest traffic of a running network with port forwards must get through: its own,
/// and the new connections its forwards send into its guests.
pub fn guarded_with_forwards(network: &str, fw: &NetworkFirewall) -> Guarded {
    Guarded {
        network: network.to_string(),
        bridge: fw.bridge.clone(),
        forwards: !matches!(fw.mode, virtnet_model::ForwardMode::None),
        inbound: true,
        ipv4: !fw.v4.is_empty(),
        ipv6: !fw.v6.is_empty(),
    }
}

/// The coexistence state, shared by the kernel layer and the ruleset watcher.
pub struct Coexist {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Coexist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coexist").finish_non_exhaustive()
    }
}

struct Inner {
    nft: Nftables,
    /// For single-table look-ups; kept open (see [`Inner::table_handle`]).
    sets: Option<NftSets>,
    integration: bool,
    /// Running networks, by name.
    guarded: BTreeMap<String, Guarded>,
    /// The accepts in place, by network.
    placed: BTreeMap<String, BTreeSet<Fix>>,
    /// The zone each bridge was put into by firewalld, by network.
    zoned: BTreeMap<String, (String, String)>,
    /// Obstacles already logged while integration is off (not logged again per burst).
    warned: BTreeSet<String>,
    history: VecDeque<DoctorAction>,
    /// firewalld's state, found for the firewalld table of that handle: asked again only
    /// when firewalld re-created its table (a start, a reload), as firewall-cmd is slow.
    firewalld: Option<(u64, firewalld::State)>,
    /// The handle of firewalld's table when the bridges were last put into its zone.
    zoned_for: Option<u64>,
}

impl Coexist {
    /// A coexistence layer with its own libnftables handle, integration off.
    pub fn open() -> Result<Coexist> {
        Ok(Coexist {
            inner: Mutex::new(Inner {
                nft: Nftables::new().map_err(host("open libnftables"))?,
                sets: Some(NftSets::open().map_err(host("open nfnetlink"))?),
                integration: false,
                guarded: BTreeMap::new(),
                placed: BTreeMap::new(),
                zoned: BTreeMap::new(),
                warned: BTreeSet::new(),
                history: VecDeque::new(),
                firewalld: None,
                zoned_for: None,
            }),
        })
    }

    /// `--firewall-integration`.
    pub fn set_integration(&self, on: bool) {
        lock(&self.inner).integration = on;
    }

    /// Before a network is built: with integration off, a table that would drop its guest
    /// traffic refuses the start (nothing is changed); with it on, nothing to check yet.
    pub fn check(&self, g: &Guarded) -> Result<()> {
        let mut inner = lock(&self.inner);
        if inner.integration {
            return Ok(());
        }
        let tables = inner.foreign_tables()?;
        let found = obstacles(&tables, g);
        if found.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = found.iter().map(Obstacle::to_string).collect();
        Err(Error::conflict(format!(
            "network '{}' would not work: {}. An accept in virtnet's table does not override \
             another table's drop; start virtnetd with --firewall-integration to let virtnet \
             add accepts for bridge {} there, or accept that bridge's traffic in that chain \
             yourself",
            g.network,
            list.join("; "),
            g.bridge
        )))
    }

    /// After a network's firewall is in place: records it as running, lets its traffic
    /// through other tables (integration on) and puts its bridge in firewalld's zone. Returns
    /// what was changed, for the client. An error means some table still drops its traffic.
    pub fn guard(&self, g: &Guarded) -> Result<Vec<String>> {
        let mut inner = lock(&self.inner);
        inner.guarded.insert(g.network.clone(), g.clone());
        let mut notes = inner.zone(g, false);
        if inner.integration {
            notes.extend(inner.let_through(g, "inserted")?);
        }
        Ok(notes)
    }

    /// Whether `network` is running with its port forwards' connections let in already
    /// (see [`super::Kernel::let_forwards_in`]): then a further forward needs no new look.
    pub fn lets_in(&self, network: &str) -> bool {
        lock(&self.inner)
            .guarded
            .get(network)
            .is_some_and(|g| g.inbound)
    }

    /// Networks that stopped: their accepts and zone bindings are removed.
    pub fn release(&self, networks: &[&str]) {
        let mut inner = lock(&self.inner);
        for network in networks {
            let g = inner.guarded.remove(*network);
            inner.remove_accepts(network, g.as_ref());
            let prefix = format!("{network}: ");
            inner.warned.retain(|w| !w.starts_with(&prefix));
            if let Some((zone, bridge)) = inner.zoned.remove(*network) {
                firewalld::unbind(&zone, &bridge);
            }
        }
    }

    /// After a burst of ruleset changes that touched another table: puts back accepts the
    /// other firewall deleted (integration on) or logs tables newly in the way (off); and
    /// re-binds bridges to firewalld's zone after a reload.
    pub fn ruleset_changed(&self) {
        let mut inner = lock(&self.inner);
        if inner.guarded.is_empty() {
            return;
        }
        let networks: Vec<Guarded> = inner.guarded.values().cloned().collect();
        // firewalld re-created its table: it started, or reloaded and forgot its runtime
        // bindings. The bridges go (back) into its zone, once per new table.
        let firewalld_table = inner.table_handle("inet", firewalld::TABLE);
        if firewalld_table.is_some() && firewalld_table != inner.zoned_for {
            for g in &networks {
                for note in inner.zone(g, true) {
                    warn!(network = %g.network, "{note}");
                }
            }
            inner.zoned_for = firewalld_table;
        }
        let tables = match inner.foreign_tables() {
            Ok(t) => t,
            Err(e) => {
                warn!(error = %e, "cannot list the other nftables tables");
                return;
            }
        };
        if inner.integration {
            inner.prefer_docker_user(&tables);
        }
        for g in &networks {
            let found = obstacles(&tables, g);
            if found.is_empty() {
                continue;
            }
            if inner.integration {
                match inner.let_through(g, "re-applied") {
                    Ok(done) if !done.is_empty() => {
                        info!(network = %g.network, accepts = ?done, "accepts re-applied after the ruleset changed")
                    }
                    Ok(_) => {}
                    Err(e) => warn!(network = %g.network, error = %e, "cannot re-apply accepts"),
                }
                continue;
            }
            for o in found {
                let text = o.to_string();
                if inner.warned.insert(format!("{}: {text}", g.network)) {
                    warn!(network = %g.network, "another table now drops guest traffic: {text} (start virtnetd with --firewall-integration to let virtnet add accepts there)");
                }
            }
        }
    }

    /// `virtnet doctor`: what was found, what was done.
    pub fn doctor(&self, needed_tables: &[Option<bool>; 2]) -> Result<DoctorReport> {
        let mut inner = lock(&self.inner);
        let headers = inner
            .nft
            .chain_headers()
            .map_err(host("list nftables chains"))?;
        let tables = inner.foreign_tables_from(&headers)?;
        let mut own_tables = Vec::new();
        for ((family, name), needed) in OWN_TABLES.iter().zip(needed_tables) {
            own_tables.push(DoctorTable {
                table: format!("{family} {name}"),
                present: headers
                    .iter()
                    .any(|c| c.family == *family && c.table == *name)
                    || inner.table_handle(family, name).is_some(),
                needed: *needed,
            });
        }
        let docker_chains = headers
            .iter()
            .filter(|c| c.name.starts_with("DOCKER"))
            .map(|c| format!("{} {} {}", c.family, c.table, c.name))
            .collect();
        let found: Vec<(String, Obstacle)> = inner
            .guarded
            .values()
            .flat_map(|g| {
                obstacles(&tables, g)
                    .into_iter()
                    .map(|o| (g.network.clone(), o))
            })
            .collect();
        let mut foreign_chains = Vec::new();
        for t in &tables {
            for c in t.chains.iter().filter(|c| c.hook.is_some()) {
                let hook = c.hook.clone().unwrap_or_default();
                if hook != "input" && hook != "forward" {
                    continue;
                }
                foreign_chains.push(DoctorChain {
                    table: format!("{} {}", t.family, t.name),
                    chain: c.name.clone(),
                    hook,
                    policy: c.policy.clone().unwrap_or_default(),
                    blocks: found
                        .iter()
                        .filter(|(_, o)| {
                            o.family == t.family && o.table == t.name && o.chain == c.name
                        })
                        .map(|(n, o)| format!("{n}: {o}"))
                        .collect(),
                    accepts: inner
                        .placed
                        .iter()
                        .flat_map(|(n, fixes)| fixes.iter().map(move |f| (n, f)))
                        .filter(|(_, f)| fix_for_chain(f, t, c))
                        .map(|(n, f)| format!("{n}: {}", f.rule().trim_end()))
                        .collect(),
                });
            }
        }
        let state = inner.firewalld();
        let zone = match &state {
            firewalld::State::Running { zone } => zone.clone(),
            _ => None,
        };
        Ok(DoctorReport {
            firewall_integration: inner.integration,
            own_tables,
            foreign_chains,
            docker_chains,
            firewalld: DoctorFirewalld {
                state: state.label().into(),
                zone,
                bridges: inner.zoned.values().map(|(_, b)| b.clone()).collect(),
            },
            actions: inner.history.iter().cloned().collect(),
        })
    }
}

/// Whether a fix lets traffic through base chain `c` of table `t` (directly, or through
/// Docker's `DOCKER-USER`, which `FORWARD` jumps to).
fn fix_for_chain(f: &Fix, t: &ForeignTable, c: &ForeignChain) -> bool {
    match f {
        Fix::Nft { place, .. } => {
            *place == format!("chain {} of table {} {}", c.name, t.family, t.name)
        }
        Fix::Iptables { chain, .. } => {
            fix_in_table(f, t)
                && (*chain == c.name || (chain == DOCKER_USER && c.name == "FORWARD"))
        }
    }
}

/// Whether a fix goes into table `t`.
fn fix_in_table(f: &Fix, t: &ForeignTable) -> bool {
    match f {
        Fix::Nft { place, .. } => place.ends_with(&format!("of table {} {}", t.family, t.name)),
        Fix::Iptables { program, table, .. } => {
            *table == t.name && (t.family == "ip6") == program.starts_with("ip6")
        }
    }
}

impl Inner {
    /// Every table of someone else's with an input or forward base chain, listed whole.
    fn foreign_tables(&mut self) -> Result<Vec<ForeignTable>> {
        let headers = self
            .nft
            .chain_headers()
            .map_err(host("list nftables chains"))?;
        self.foreign_tables_from(&headers)
    }

    fn foreign_tables_from(&mut self, headers: &[ChainHeader]) -> Result<Vec<ForeignTable>> {
        // firewalld's table answers to its zones (see `firewalld`), not to rules of ours.
        let zoned = matches!(
            self.firewalld(),
            firewalld::State::Running { zone: Some(_) }
        );
        let mut names: Vec<(String, String)> = headers
            .iter()
            .filter(|c| matches!(c.hook.as_deref(), Some("input" | "forward")))
            .filter(|c| matches!(c.family.as_str(), "ip" | "ip6" | "inet"))
            .filter(|c| !OWN_TABLES.contains(&(c.family.as_str(), c.table.as_str())))
            .filter(|c| !(zoned && c.family == "inet" && c.table == firewalld::TABLE))
            .map(|c| (c.family.clone(), c.table.clone()))
            .collect();
        names.sort();
        names.dedup();
        let mut tables = Vec::with_capacity(names.len());
        for (family, name) in names {
            self.nft.set_json(true);
            let listing = self.nft.run(&format!("list table {family} {name}"));
            self.nft.set_json(false);
            let listing = match listing {
                Ok(l) => l,
                // Deleted between the two listings: nothing of it is in the way any more.
                Err(_) => continue,
            };
            tables.push(
                parse_table(&family, &name, &listing).map_err(|e| Error::failed(e.to_string()))?,
            );
        }
        Ok(tables)
    }

    /// firewalld's state (see [`Inner::firewalld`]'s cache).
    fn firewalld(&mut self) -> firewalld::State {
        let Some(handle) = self.table_handle("inet", firewalld::TABLE) else {
            self.firewalld = None;
            return firewalld::detect(false);
        };
        if let Some((cached, state)) = &self.firewalld {
            if *cached == handle {
                return state.clone();
            }
        }
        let state = firewalld::detect(true);
        self.firewalld = Some((handle, state.clone()));
        state
    }

    /// The handle of table `family name`, if it exists: one `NFT_MSG_GETTABLE` for that
    /// table (libnftables' `list tables` would load every set element of virtnet's tables
    /// first, on every `net-start`: starts grew with the number of networks).
    ///
    /// Asked over the one nfnetlink socket `Inner` keeps open, never a fresh one: the kernel
    /// answers the close of any nfnetlink socket by taking nftables' commit mutex and waiting
    /// there for the pending clean-up of deleted rules and elements (an RCU grace period,
    /// 10–25 ms here). Meanwhile every nftables transaction on the host waits, and so does
    /// every device rename or creation (nftables hears of those under RTNL): a socket opened
    /// and closed for each `net-start` and `net-destroy` stalled the attaches and detaches
    /// running beside them by that much.
    fn table_handle(&mut self, family: &str, name: &str) -> Option<u64> {
        let code = virtnet_host::nft_set::nfproto(family)?;
        if self.sets.is_none() {
            self.sets = NftSets::open().ok();
        }
        let answer = self.sets.as_mut()?.table_handle(code, name);
        match answer {
            Ok(handle) => handle,
            Err(e) => {
                // A socket in a bad state (a lost answer) is replaced at the next look.
                warn!(error = %e, "cannot look up nftables table {family} {name}");
                self.sets = None;
                None
            }
        }
    }

    /// Inserts the accepts `g` needs, checks that nothing is in the way any more, records
    /// them. Returns what was inserted.
    fn let_through(&mut self, g: &Guarded, action: &str) -> Result<Vec<String>> {
        let tables = self.foreign_tables()?;
        let found = obstacles(&tables, g);
        // Names come from the kernel and go into an nft script unquoted: only plain ones.
        if let Some(o) = found
            .iter()
            .find(|o| !plain_name(&o.table) || !plain_name(&o.chain))
        {
            return Err(Error::conflict(format!(
                "network '{}' would not work: {o}; virtnet does not write rules into a table \
                 or chain whose name is not plain ([A-Za-z0-9_.-])",
                g.network
            )));
        }
        let mut done = Vec::new();
        let mut nft_script = String::new();
        let mut fixes: BTreeSet<Fix> = found.iter().map(|o| o.fix.clone()).collect();
        for fix in &fixes {
            match fix {
                Fix::Nft { .. } if nft_present(&tables, fix, &g.network) => {}
                Fix::Nft { script, .. } => {
                    nft_script.push_str(script);
                    done.push(fix.clone());
                }
                Fix::Iptables { .. } => {
                    if iptables(fix, "-C").is_err() {
                        iptables(fix, "-I").map_err(|e| {
                            Error::failed(format!("add an accept to {}: {e}", fix.place()))
                        })?;
                        done.push(fix.clone());
                    }
                }
            }
        }
        if !nft_script.is_empty() {
            self.nft
                .run(&nft_script)
                .map_err(host("add accepts to another table"))?;
        }
        let left = obstacles(&self.foreign_tables()?, g);
        if !left.is_empty() {
            let list: Vec<String> = left.iter().map(Obstacle::to_string).collect();
            return Err(Error::conflict(format!(
                "network '{}' would not work: {} (virtnet's accepts there did not help: the \
                 drop comes before them)",
                g.network,
                list.join("; ")
            )));
        }
        let at = now();
        for fix in &done {
            self.remember(DoctorAction {
                at,
                network: g.network.clone(),
                action: action.into(),
                place: fix.place(),
                rule: fix.rule().trim_end().into(),
            });
        }
        let placed = self.placed.entry(g.network.clone()).or_default();
        placed.append(&mut fixes);
        Ok(done
            .iter()
            .map(|f| {
                format!(
                    "accepted bridge {}'s traffic in {} (--firewall-integration)",
                    g.bridge,
                    f.place()
                )
            })
            .collect())
    }

    /// Moves accepts placed in iptables' `FORWARD` into `DOCKER-USER` once Docker made that
    /// chain (Docker sets the policy drop first and makes its chains after, so a watcher
    /// waking in between finds no `DOCKER-USER` yet). Docker's hook is where its users'
    /// rules belong: Docker keeps that chain and jumps to it before its own rules.
    fn prefer_docker_user(&mut self, tables: &[ForeignTable]) {
        let mut moves = Vec::new();
        for (network, fixes) in &self.placed {
            for fix in fixes {
                let Fix::Iptables { table, chain, .. } = fix else {
                    continue;
                };
                let docker = tables.iter().any(|t| {
                    fix_in_table(fix, t)
                        && t.name == *table
                        && t.chains.iter().any(|c| c.name == DOCKER_USER)
                });
                if chain == "FORWARD" && docker {
                    moves.push((network.clone(), fix.clone()));
                }
            }
        }
        for (network, old) in moves {
            let Fix::Iptables {
                program,
                table,
                spec,
                ..
            } = &old
            else {
                continue;
            };
            let new = Fix::Iptables {
                program: program.clone(),
                table: table.clone(),
                chain: DOCKER_USER.into(),
                spec: spec.clone(),
            };
            if iptables(&new, "-C").is_err() {
                if let Err(e) = iptables(&new, "-I") {
                    warn!(%network, error = %e, "cannot add an accept to {}", new.place());
                    continue;
                }
            }
            while iptables(&old, "-C").is_ok() {
                if iptables(&old, "-D").is_err() {
                    break;
                }
            }
            let at = now();
            self.remember(removed(&network, &old, at));
            self.remember(DoctorAction {
                at,
                network: network.clone(),
                action: "re-applied".into(),
                place: new.place(),
                rule: new.rule(),
            });
            let placed = self.placed.entry(network).or_default();
            placed.remove(&old);
            placed.insert(new);
        }
    }

    /// Removes the accepts of `network`: tagged rules in nft tables (found by their comment,
    /// so leftovers of an earlier run go too), iptables rules by their specification.
    fn remove_accepts(&mut self, network: &str, g: Option<&Guarded>) {
        let placed = self.placed.remove(network).unwrap_or_default();
        let at = now();
        let tables = match self.foreign_tables() {
            Ok(t) => t,
            Err(e) => {
                warn!(%network, error = %e, "cannot list tables to remove virtnet's accepts");
                Vec::new()
            }
        };
        let own: Vec<&Fix> = placed
            .iter()
            .filter(|f| matches!(f, Fix::Iptables { .. }))
            .collect();
        let mut candidates: BTreeSet<Fix> = BTreeSet::new();
        if own.is_empty() {
            // Nothing placed by this run, maybe by an earlier one (a crash, a restart).
            if let Some(g) = g {
                candidates.extend(tables.iter().flat_map(|t| iptables_accepts(t, g)));
            }
        } else if iptables_restore_delete(&own).is_ok() {
            // What this run placed, in one iptables-restore per program.
            for fix in &own {
                self.remember(removed(network, fix, at));
            }
        } else {
            // Some are gone already: one by one.
            candidates.extend(own.into_iter().cloned());
        }
        for fix in &candidates {
            let mut found = placed.contains(fix);
            while iptables(fix, "-C").is_ok() {
                found = true;
                if let Err(e) = iptables(fix, "-D") {
                    warn!(%network, error = %e, "cannot remove an accept from {}", fix.place());
                    break;
                }
            }
            if found {
                self.remember(removed(network, fix, at));
            }
        }
        for t in &tables {
            let rules = tagged_rules(t, network);
            if rules.is_empty() {
                continue;
            }
            match self.nft.run(&delete_rules_script(t, &rules)) {
                Ok(_) => {
                    for fix in placed.iter().filter(|f| fix_in_table(f, t)) {
                        self.remember(removed(network, fix, at));
                    }
                }
                Err(e) => {
                    warn!(%network, error = %e, "cannot remove virtnet's accepts from table {} {}", t.family, t.name)
                }
            }
        }
    }

    /// Puts `g`'s bridge into firewalld's zone when firewalld runs. Returns a note for the
    /// client when that cannot be done.
    /// `again`: after firewalld re-created its table (recorded as re-applied).
    fn zone(&mut self, g: &Guarded, again: bool) -> Vec<String> {
        let firewalld::State::Running { zone } = self.firewalld() else {
            return Vec::new();
        };
        let Some(zone) = zone else {
            return vec![format!(
                "firewalld runs but has neither the '{}' nor the '{}' zone: install \
                 contrib/firewalld/virtnet.xml as /etc/firewalld/zones/virtnet.xml and reload \
                 firewalld, or bridge {}'s traffic may be rejected by firewalld",
                firewalld::ZONE,
                firewalld::LIBVIRT_ZONE,
                g.bridge
            )];
        };
        if !firewalld::bind(&zone, &g.bridge) {
            return vec![format!(
                "cannot put bridge {} into firewalld's zone '{zone}'",
                g.bridge
            )];
        }
        // firewalld's table as it was when this binding was made (see `ruleset_changed`).
        self.zoned_for = self.firewalld.as_ref().map(|(handle, _)| *handle);
        let first = self
            .zoned
            .insert(g.network.clone(), (zone.clone(), g.bridge.clone()))
            .is_none();
        if first || again {
            self.remember(DoctorAction {
                at: now(),
                network: g.network.clone(),
                action: if first { "zone" } else { "re-applied" }.into(),
                place: format!("firewalld zone {zone}"),
                rule: format!("firewall-cmd --zone={zone} --change-interface={}", g.bridge),
            });
        }
        Vec::new()
    }

    fn remember(&mut self, action: DoctorAction) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(action);
    }
}

fn removed(network: &str, fix: &Fix, at: u64) -> DoctorAction {
    DoctorAction {
        at,
        network: network.into(),
        action: "removed".into(),
        place: fix.place(),
        rule: fix.rule().trim_end().into(),
    }
}

/// Whether the accept of an nft fix is already in its chain (tagged for `network`, same
/// interface match), so that re-applying never duplicates it.
fn nft_present(tables: &[ForeignTable], fix: &Fix, network: &str) -> bool {
    let Fix::Nft {
        place,
        ifname: (side, bridge),
        ..
    } = fix
    else {
        return false;
    };
    let tag = virtnet_plan::coexist::comment(network);
    tables.iter().any(|t| {
        t.chains.iter().any(|c| {
            *place == format!("chain {} of table {} {}", c.name, t.family, t.name)
                && c.rules.iter().any(|r| {
                    r.comment.as_deref() == Some(tag.as_str())
                        && r.matches.iter().any(|m| {
                            matches!(m, virtnet_plan::coexist::Match::Ifname { side: s, negated: false, names }
                                if s == side && names.iter().any(|n| n == bridge))
                        })
                })
        })
    })
}

/// Runs `iptables-nft -w -t TABLE OP CHAIN [1] SPEC` (`-C` check, `-I` insert first, `-D`
/// delete). The error is iptables' message.
fn iptables(fix: &Fix, op: &str) -> std::result::Result<(), String> {
    let Some((program, table, chain, spec)) = iptables_parts(fix) else {
        return Err("not an iptables rule".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(["-w", "-t", table, op, chain]);
    if op == "-I" {
        cmd.arg("1");
    }
    let out = cmd
        .args(spec)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// An iptables accept's program, table, chain and rule specification; `None` for an nft rule.
fn iptables_parts(fix: &Fix) -> Option<(&str, &str, &str, &[String])> {
    match fix {
        Fix::Iptables {
            program,
            table,
            chain,
            spec,
        } => Some((program, table, chain, spec)),
        Fix::Nft { .. } => None,
    }
}

/// Deletes iptables rules with one `iptables-nft-restore --noflush` per program and table:
/// one transaction each, which fails whole when a rule is missing.
fn iptables_restore_delete(fixes: &[&Fix]) -> std::result::Result<(), String> {
    use std::io::Write;
    let mut batches: BTreeMap<(String, String), String> = BTreeMap::new();
    for fix in fixes {
        let Some((program, table, chain, spec)) = iptables_parts(fix) else {
            continue;
        };
        let text = batches
            .entry((program.to_string(), table.to_string()))
            .or_default();
        text.push_str(&format!("-D {chain} {}\n", spec.join(" ")));
    }
    for ((program, table), lines) in batches {
        let mut child = Command::new(format!("{program}-restore"))
            .arg("--noflush")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("{program}-restore: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(format!("*{table}\n{lines}COMMIT\n").as_bytes())
                .map_err(|e| format!("{program}-restore: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("{program}-restore: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
    }
    Ok(())
}

/// A table or chain name nft reads unquoted without surprises.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

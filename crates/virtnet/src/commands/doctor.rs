//! `doctor`: the other firewalls virtnetd found on the host and what it did about them.

use virtnet_api::DoctorReport;

use crate::output::{Ctx, Failure};

/// `doctor [--json]`.
pub fn doctor(ctx: &Ctx, json: bool) -> Result<(), Failure> {
    let report = ctx.client.doctor().map_err(|e| Failure::client(&e))?;
    if json {
        return ctx.json(&report);
    }
    ctx.print(&render(&report));
    Ok(())
}

/// The report as text, one section per finding.
fn render(r: &DoctorReport) -> String {
    let mut out = String::new();
    let on = if r.firewall_integration { "on" } else { "off" };
    out.push_str(&format!("Firewall integration: {on}\n"));
    out.push_str("virtnet's tables:\n");
    for t in &r.own_tables {
        let state = if t.present { "present" } else { "absent" };
        let need = match t.needed {
            Some(true) => ", needed",
            Some(false) => ", not needed",
            None => "",
        };
        out.push_str(&format!("  {}: {state}{need}\n", t.table));
    }
    out.push_str("Other tables' input and forward chains:\n");
    if r.foreign_chains.is_empty() {
        out.push_str("  none\n");
    }
    for c in &r.foreign_chains {
        out.push_str(&format!(
            "  {} {} (hook {}, policy {}): ",
            c.table, c.chain, c.hook, c.policy
        ));
        if c.blocks.is_empty() {
            out.push_str("lets guest traffic through\n");
        } else {
            out.push_str("DROPS GUEST TRAFFIC\n");
            for b in &c.blocks {
                out.push_str(&format!("    {b}\n"));
            }
        }
        for a in &c.accepts {
            out.push_str(&format!("    accept placed by virtnet: {a}\n"));
        }
    }
    let docker = if r.docker_chains.is_empty() {
        "none".to_string()
    } else {
        r.docker_chains.join(", ")
    };
    out.push_str(&format!("Docker chains: {docker}\n"));
    out.push_str(&format!("firewalld: {}", r.firewalld.state));
    if let Some(zone) = &r.firewalld.zone {
        out.push_str(&format!(", zone {zone}"));
    }
    if !r.firewalld.bridges.is_empty() {
        out.push_str(&format!(", bridges {}", r.firewalld.bridges.join(" ")));
    }
    out.push('\n');
    out.push_str("Changes made to other firewalls:\n");
    if r.actions.is_empty() {
        out.push_str("  none\n");
    }
    for a in &r.actions {
        out.push_str(&format!(
            "  {} {} in {} for network {}: {}\n",
            super::leases::local_time(a.at),
            a.action,
            a.place,
            a.network,
            a.rule
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtnet_api::{DoctorChain, DoctorFirewalld, DoctorTable};

    #[test]
    fn a_blocking_chain_and_the_accepts_placed_are_shown() {
        let report = DoctorReport {
            firewall_integration: false,
            own_tables: vec![DoctorTable {
                table: "inet virtnet".into(),
                present: true,
                needed: Some(true),
            }],
            foreign_chains: vec![DoctorChain {
                table: "ip filter".into(),
                chain: "FORWARD".into(),
                hook: "forward".into(),
                policy: "drop".into(),
                blocks: vec!["default: chain FORWARD … has policy drop".into()],
                accepts: vec![],
            }],
            docker_chains: vec!["ip filter DOCKER-USER".into()],
            firewalld: DoctorFirewalld {
                state: "not running".into(),
                zone: None,
                bridges: vec![],
            },
            actions: vec![],
        };
        assert_eq!(
            render(&report),
            "Firewall integration: off\n\
             virtnet's tables:\n  inet virtnet: present, needed\n\
             Other tables' input and forward chains:\n\
             \x20 ip filter FORWARD (hook forward, policy drop): DROPS GUEST TRAFFIC\n\
             \x20   default: chain FORWARD … has policy drop\n\
             Docker chains: ip filter DOCKER-USER\n\
             firewalld: not running\n\
             Changes made to other firewalls:\n  none\n"
        );
    }
}

//! `net-info`, `net-uuid`, `net-name`, `net-dumpxml`.

use virtnet_api::client::ClientError;
use virtnet_api::{ApiError, ErrorCode, NetworkSummary};

use crate::output::{Ctx, Failure};

/// The lines of `virsh net-info` (`%-15s %s`).
pub fn info_text(net: &NetworkSummary) -> String {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let mut lines = vec![
        ("Name:", net.name.clone()),
        ("UUID:", net.uuid.to_string()),
        ("Active:", yes_no(net.active).to_string()),
        ("Persistent:", yes_no(net.persistent).to_string()),
        ("Autostart:", yes_no(net.autostart).to_string()),
    ];
    if let Some(bridge) = &net.bridge {
        lines.push(("Bridge:", bridge.clone()));
    }
    lines
        .into_iter()
        .map(|(k, v)| format!("{k:<15} {v}\n"))
        .collect()
}

/// `net-info NETWORK [--json]`.
pub fn net_info(ctx: &Ctx, id: &str, json: bool) -> Result<(), Failure> {
    let detail = ctx
        .client
        .get(id, false)
        .map_err(|e| Failure::lookup(id, &e))?;
    if json {
        return ctx.json(&detail.summary);
    }
    ctx.print(&info_text(&detail.summary));
    Ok(())
}

fn not_found(what: &str, id: &str) -> ClientError {
    ClientError::Api {
        status: 404,
        error: ApiError::new(
            ErrorCode::NotFound,
            format!("Network not found: no network with matching {what} '{id}'"),
        ),
    }
}

/// `net-uuid NAME`: by name only, as virsh looks it up.
pub fn net_uuid(ctx: &Ctx, name: &str) -> Result<(), Failure> {
    let detail = ctx
        .client
        .get(name, false)
        .map_err(|e| Failure::lookup(name, &e))?;
    if detail.summary.name != name {
        // The daemon matched a UUID; virsh's net-uuid only looks names up.
        return Err(Failure::lookup(name, &not_found("name", name)));
    }
    ctx.print(&format!("{}\n", detail.summary.uuid));
    Ok(())
}

/// `net-name UUID`: by UUID only, as virsh looks it up.
pub fn net_name(ctx: &Ctx, uuid: &str) -> Result<(), Failure> {
    let lookup_failed = || Failure::msg(format!("failed to get network '{uuid}'"));
    // virsh only tries a lookup when the argument has the length of a UUID string.
    if uuid.len() != 36 {
        return Err(lookup_failed());
    }
    let Ok(parsed) = uuid::Uuid::parse_str(uuid) else {
        let mut f = lookup_failed();
        f.messages.push(
            "invalid argument: uuidstr in virNetworkLookupByUUIDString must be a valid UUID"
                .to_string(),
        );
        return Err(f);
    };
    let detail = ctx
        .client
        .get(uuid, false)
        .map_err(|e| Failure::lookup(uuid, &e))?;
    if detail.summary.uuid != parsed {
        return Err(Failure::lookup(uuid, &not_found("uuid", uuid)));
    }
    ctx.print(&format!("{}\n", detail.summary.name));
    Ok(())
}

/// `net-dumpxml NETWORK [--inactive] [--json]`.
pub fn net_dumpxml(ctx: &Ctx, id: &str, inactive: bool, json: bool) -> Result<(), Failure> {
    if json {
        let detail = ctx
            .client
            .get(id, inactive)
            .map_err(|e| Failure::lookup(id, &e))?;
        return ctx.json(&detail.definition);
    }
    let doc = ctx
        .client
        .get_xml(id, inactive)
        .map_err(|e| Failure::lookup(id, &e))?;
    ctx.print(&doc.xml);
    if !doc.xml.ends_with('\n') {
        ctx.print("\n");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtnet_model::ForwardMode;

    #[test]
    fn info_layout_matches_virsh() {
        let net = NetworkSummary {
            name: "default".into(),
            uuid: "c6b8b176-175f-4957-a84e-d2283850eeb7".parse().unwrap(),
            active: true,
            persistent: true,
            autostart: false,
            bridge: Some("virbr0".into()),
            forward_mode: ForwardMode::Nat,
        };
        assert_eq!(
            info_text(&net),
            "Name:           default\n\
             UUID:           c6b8b176-175f-4957-a84e-d2283850eeb7\n\
             Active:         yes\n\
             Persistent:     yes\n\
             Autostart:      no\n\
             Bridge:         virbr0\n"
        );
        let net = NetworkSummary {
            bridge: None,
            ..net
        };
        assert!(!info_text(&net).contains("Bridge"));
    }
}

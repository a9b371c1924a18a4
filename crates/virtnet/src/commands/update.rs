//! `net-update`: changes one section of a network (virsh's `cmdNetworkUpdate`).

use std::path::Path;

use virtnet_api::UpdateRequest;
use virtnet_model::{UpdateCommand, UpdateSection};

use crate::cli::NetUpdateArgs;
use crate::output::{read_xml_file, Ctx, Failure};

/// What virsh prints after "Updated network NAME ": which definitions the update changed.
/// Neither `--live` nor `--config` (or `--current`) means the live network when it is active,
/// else the persistent definition.
pub fn affected(live: bool, config: bool, active: bool) -> &'static str {
    match (config, live) {
        (true, true) => "persistent config and live state",
        (true, false) => "persistent config",
        (false, true) => "live state",
        (false, false) if active => "live state",
        (false, false) => "persistent config",
    }
}

/// Checks the command line as virsh does, before anything is sent: the command and section
/// names, `--current` alone, the XML element (a literal starting with `<`, else a file name).
pub fn request(args: &NetUpdateArgs) -> Result<UpdateRequest, Failure> {
    let command: UpdateCommand = args.command.parse().map_err(|_| {
        Failure::msg(format!(
            "unrecognized command name '{}' (expected add, add-first, add-last, delete or \
             modify)",
            args.command
        ))
    })?;
    let section: UpdateSection = args.section.parse().map_err(|_| {
        let names: Vec<&str> = UpdateSection::ALL.iter().map(|s| s.as_str()).collect();
        Failure::msg(format!(
            "unrecognized section name '{}' (expected one of {})",
            args.section,
            names.join(", ")
        ))
    })?;
    for (flag, set) in [("live", args.live), ("config", args.config)] {
        if args.current && set {
            return Err(Failure::msg(format!(
                "Options --current and --{flag} are mutually exclusive"
            )));
        }
    }
    let parent_index = match args.parent_index {
        None => None,
        Some(n) if n < 0 => None,
        Some(n) => Some(
            usize::try_from(n)
                .map_err(|_| Failure::msg(format!("malformed parent-index argument '{n}'")))?,
        ),
    };
    let xml = if args.xml.starts_with('<') {
        args.xml.clone()
    } else {
        read_xml_file(Path::new(&args.xml))?
    };
    Ok(UpdateRequest {
        command: command.as_str().to_string(),
        section: section.as_str().to_string(),
        xml,
        parent_index,
        live: args.live,
        config: args.config,
    })
}

/// `net-update NETWORK COMMAND SECTION XML [--parent-index N] [--live] [--config] [--current]`.
pub fn net_update(ctx: &Ctx, args: &NetUpdateArgs) -> Result<(), Failure> {
    let id = args.network.as_str();
    let req = request(args)?;
    let result = ctx
        .client
        .update(id, &req)
        .map_err(|e| Failure::operation(id, format!("Failed to update network {id}"), &e))?;
    ctx.extra(&format!(
        "Updated network {} {}\n",
        result.network.name,
        affected(args.live, args.config, result.network.active)
    ));
    for w in &result.warnings {
        ctx.warn(w);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(command: &str, section: &str, xml: &str) -> NetUpdateArgs {
        NetUpdateArgs {
            network: "default".into(),
            command: command.into(),
            section: section.into(),
            xml: xml.into(),
            parent_index: None,
            config: false,
            live: false,
            current: false,
        }
    }

    #[test]
    fn virsh_affected_wording() {
        assert_eq!(
            affected(true, true, false),
            "persistent config and live state"
        );
        assert_eq!(affected(false, true, true), "persistent config");
        assert_eq!(affected(true, false, false), "live state");
        assert_eq!(affected(false, false, true), "live state");
        assert_eq!(affected(false, false, false), "persistent config");
    }

    #[test]
    fn names_are_checked_before_sending() {
        let e = request(&args("append", "ip-dhcp-host", "<host/>")).unwrap_err();
        assert!(
            e.messages[0].starts_with("unrecognized command name 'append'"),
            "{e}"
        );
        let e = request(&args("add", "dhcp-host", "<host/>")).unwrap_err();
        assert!(
            e.messages[0].starts_with("unrecognized section name 'dhcp-host'"),
            "{e}"
        );
        let r = request(&args("add", "ip-dhcp-host", "<host/>")).unwrap();
        assert_eq!((r.command.as_str(), r.parent_index), ("add", None));
    }

    #[test]
    fn current_is_exclusive_and_index_minus_one_is_automatic() {
        let mut a = args("delete", "dns-txt", "<txt name='a'/>");
        a.current = true;
        a.live = true;
        let e = request(&a).unwrap_err();
        assert_eq!(
            e.messages,
            ["Options --current and --live are mutually exclusive"]
        );
        a.live = false;
        a.parent_index = Some(-1);
        assert_eq!(request(&a).unwrap().parent_index, None);
        a.parent_index = Some(2);
        assert_eq!(request(&a).unwrap().parent_index, Some(2));
    }

    #[test]
    fn xml_not_starting_with_lt_is_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("host.xml");
        std::fs::write(&p, "<host mac='52:54:00:00:00:01' ip='192.168.122.5'/>\n").unwrap();
        let r = request(&args("add", "ip-dhcp-host", &p.display().to_string())).unwrap();
        assert!(r.xml.starts_with("<host mac="), "{}", r.xml);
        let e = request(&args("add", "ip-dhcp-host", " <host/>")).unwrap_err();
        assert!(
            e.messages[0].starts_with("Failed to open file ' <host/>'"),
            "{e}"
        );
    }
}

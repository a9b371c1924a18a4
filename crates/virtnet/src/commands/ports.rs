//! Guest ports: `attach-interface`, `detach-interface`, `attach-device`, `detach-device`,
//! `update-device`, `port-list`, `domif-setlink`, `domif-getlink`, `domiflist` and
//! `domifaddr`, with virsh's wording and layouts.
//!
//! virtnet has no domains of its own: a "domain" is the name its ports were created for, and a
//! domain without ports does not exist (`failed to get domain 'NAME'`, virsh's one-line lookup
//! error: `virshLookupDomainInternal` resets the library error before reporting).

use std::path::Path;

use serde::Serialize;
use virtnet_api::client::ClientError;
use virtnet_api::{AddressSource, ErrorCode, InterfaceAddress, Port, PortRequest};
use virtnet_model::{GuestInterface, InterfaceSource, MacAddr};

use crate::cli::{
    AttachInterfaceArgs, DetachInterfaceArgs, DeviceFileArgs, DomifSetlinkArgs, DomifaddrArgs,
};
use crate::output::{read_xml_file, Ctx, Failure};
use crate::table::Table;

/// virsh `tools/virsh-domain.c` (cmdAttachInterface).
const ATTACHED_INTERFACE: &str = "Interface attached successfully\n";
/// virsh `tools/virsh-domain.c` (cmdDetachInterface).
const DETACHED_INTERFACE: &str = "Interface detached successfully\n";
/// virsh `tools/virsh-domain.c` (cmdAttachDevice).
const ATTACHED_DEVICE: &str = "Device attached successfully\n";
/// virsh `tools/virsh-domain.c` (cmdDetachDevice).
const DETACHED_DEVICE: &str = "Device detached successfully\n";
/// virsh `tools/virsh-domain.c` (cmdUpdateDevice, cmdDomIfSetLink).
const UPDATED_DEVICE: &str = "Device updated successfully\n";

/// The dashes under `domifaddr`'s header: virsh prints two literals of 49 and 30 dashes.
const DOMIFADDR_DASHES: usize = 49 + 30;

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

/// Resolves virsh's data arguments, each given either by option (`--domain vm`) or by position:
/// positional values fill, in order, the slots not given by option (virsh's `vshCmdParse`).
fn slots(
    verb: &str,
    named: &[(&str, Option<&String>)],
    positional: &[String],
) -> Result<Vec<String>, Failure> {
    let mut rest = positional.iter();
    let mut out = Vec::with_capacity(named.len());
    for (name, given) in named {
        let value = match given {
            Some(v) => Some((*v).clone()),
            None => rest.next().cloned(),
        };
        match value {
            None => {
                return Err(Failure::msg(format!(
                    "command '{verb}' requires <{name}> option"
                )))
            }
            Some(v) if v.is_empty() => {
                return Err(Failure::msg(format!(
                    "Failed to get option '{name}': Option argument is empty"
                )))
            }
            Some(v) => out.push(v),
        }
    }
    if let Some(extra) = rest.next() {
        return Err(Failure::msg(format!("unexpected data '{extra}'")));
    }
    Ok(out)
}

/// `TYPE SOURCE` of `attach-interface` as a port source; virtnet connects `network` and
/// `bridge` interfaces only, and refuses other types with virsh's message for unknown ones.
fn interface_source(kind: &str, source: &str) -> Result<InterfaceSource, Failure> {
    match kind {
        "network" => Ok(InterfaceSource::Network(source.to_string())),
        "bridge" => Ok(InterfaceSource::Bridge(source.to_string())),
        _ => Err(Failure::msg(format!(
            "No support for {kind} in command 'attach-interface'"
        ))),
    }
}

/// The interface type of a source, as domain XML spells it (`domiflist`'s Type column).
fn source_kind(source: &InterfaceSource) -> &'static str {
    match source {
        InterfaceSource::Network(_) => "network",
        InterfaceSource::Bridge(_) => "bridge",
    }
}

/// The network or bridge name of a source.
fn source_name(source: &InterfaceSource) -> &str {
    match source {
        InterfaceSource::Network(n) | InterfaceSource::Bridge(n) => n,
    }
}

/// A random guest MAC, `52:54:00:xx:xx:xx`, as libvirt generates one (`virDomainNetGenerateMAC`
/// with QEMU's OUI).
pub fn random_mac() -> String {
    MacAddr::random_qemu().to_string()
}

/// A guest MAC given on the command line, checked as libvirt's interface parser checks it and
/// normalised to lower case. The errors are libvirt's (`virDomainNetDefParseXML`).
fn guest_mac(text: &str) -> Result<String, String> {
    let mac: MacAddr = text
        .parse()
        .map_err(|_| format!("XML error: unable to parse mac address '{text}'"))?;
    if mac.is_multicast() {
        return Err(format!(
            "XML error: expected unicast mac address, found multicast '{text}'"
        ));
    }
    Ok(mac.to_string())
}

/// Whether two MAC strings name the same address (`virMacAddrCompare`: case and leading zeros
/// do not matter); unparsable strings match nothing.
fn same_mac(a: &str, b: &str) -> bool {
    match (a.parse::<MacAddr>(), b.parse::<MacAddr>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Lookups
// ---------------------------------------------------------------------------------------------

/// virsh's lookup failure for a domain.
fn no_domain(domain: &str) -> Failure {
    Failure::msg(format!("failed to get domain '{domain}'"))
}

/// The ports of `domain`, which must have at least one (else it does not exist).
fn domain_ports(ctx: &Ctx, domain: &str) -> Result<Vec<Port>, Failure> {
    let ports = ctx
        .client
        .domain_ports(domain)
        .map_err(|e| match e.code() {
            Some(ErrorCode::NotFound) => no_domain(domain),
            _ => Failure::client(&e),
        })?;
    let ports: Vec<Port> = ports.into_iter().filter(|p| p.domain == domain).collect();
    if ports.is_empty() {
        return Err(no_domain(domain));
    }
    Ok(ports)
}

/// virsh's line for a failed operation, then the daemon's reason.
fn failed(context: impl Into<String>, e: &ClientError) -> Failure {
    Failure::with_context(context, e)
}

/// A failure of virsh's own checks: its specific line, then the operation's line (the order of
/// `virshDomainDetachInterface`'s errors and `cmdDetachInterface`'s cleanup).
fn failed_then(first: impl Into<String>, context: impl Into<String>) -> Failure {
    Failure {
        messages: vec![first.into(), context.into()],
        connect: false,
    }
}

/// A failure with virsh's operation line first and the library's reason after it.
fn failed_because(context: impl Into<String>, reason: impl Into<String>) -> Failure {
    Failure {
        messages: vec![context.into(), reason.into()],
        connect: false,
    }
}

/// The port a device XML designates among a domain's ports: by MAC when the XML has one, else
/// the only port (libvirt's `virDomainNetFindIdx`). The errors are libvirt's.
fn match_device<'a>(ports: &'a [Port], iface: &GuestInterface) -> Result<&'a Port, String> {
    let mac = iface.mac.map(|m| m.to_string());
    let found: Vec<&Port> = ports
        .iter()
        .filter(|p| mac.as_deref().is_none_or(|m| same_mac(&p.mac, m)))
        .collect();
    match (found.as_slice(), mac) {
        ([one], _) => Ok(one),
        ([], Some(m)) => Err(format!(
            "device not found: no device matching MAC address {m} found"
        )),
        ([], None) => Err("device not found: no matching network device was found".into()),
        (_, Some(m)) => Err(format!(
            "operation failed: multiple devices matching MAC address {m} found"
        )),
        (_, None) => Err(
            "operation failed: multiple matching network devices found; the XML must give \
             the interface's MAC address"
                .into(),
        ),
    }
}

/// How `domif-setlink` and `domif-getlink` name an interface: a MAC address, else a tap name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IfaceRef {
    /// The guest MAC, normalised.
    Mac(String),
    /// The tap (target dev) name.
    Dev(String),
}

impl IfaceRef {
    fn parse(text: &str) -> IfaceRef {
        match text.parse::<MacAddr>() {
            Ok(m) => IfaceRef::Mac(m.to_string()),
            Err(_) => IfaceRef::Dev(text.to_string()),
        }
    }

    fn matches(&self, port: &Port) -> bool {
        match self {
            IfaceRef::Mac(m) => same_mac(&port.mac, m),
            IfaceRef::Dev(d) => port.name == *d,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Layouts
// ---------------------------------------------------------------------------------------------

/// `port-list`'s table.
fn ports_table(ports: &[Port]) -> Table {
    let mut table = Table::new([
        "Name", "Domain", "Source", "Bridge", "MAC", "Model", "State",
    ]);
    for p in ports {
        table.push([
            p.name.clone(),
            p.domain.clone(),
            source_name(&p.source).to_string(),
            p.bridge.clone(),
            p.mac.clone(),
            p.model.clone().unwrap_or_else(|| "-".into()),
            link_state(p.link_up).to_string(),
        ]);
    }
    table
}

fn link_state(up: bool) -> &'static str {
    if up {
        "up"
    } else {
        "down"
    }
}

/// `domiflist`'s table (virsh `cmdDomiflist`: `-` for what the XML lacks).
fn domiflist_table(ports: &[Port]) -> Table {
    let mut table = Table::new(["Interface", "Type", "Source", "Model", "MAC"]);
    for p in ports {
        table.push([
            p.name.clone(),
            source_kind(&p.source).to_string(),
            source_name(&p.source).to_string(),
            p.model.clone().unwrap_or_else(|| "-".into()),
            p.mac.clone(),
        ]);
    }
    table
}

/// One `domiflist --json` entry.
#[derive(Debug, Serialize)]
struct DomIf<'a> {
    interface: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    source: &'a str,
    model: Option<&'a str>,
    mac: &'a str,
}

/// `domifaddr`'s header (virsh `cmdDomIfAddr`, printed with `vshPrintExtra`).
fn domifaddr_header() -> String {
    format!(
        " {:<10} {:<20} {:<8}     {}\n{}\n",
        "Name",
        "MAC address",
        "Protocol",
        "Address",
        "-".repeat(DOMIFADDR_DASHES)
    )
}

/// `domifaddr`'s rows: per interface, its addresses; the name and MAC only on the first unless
/// `full` (`-` on the others). Addresses of one interface are grouped in the order the
/// interfaces first appear.
fn domifaddr_rows(addrs: &[InterfaceAddress], full: bool) -> String {
    let mut order: Vec<&str> = Vec::new();
    for a in addrs {
        if !order.contains(&a.name.as_str()) {
            order.push(&a.name);
        }
    }
    let mut out = String::new();
    for name in order {
        for (j, a) in addrs.iter().filter(|a| a.name == name).enumerate() {
            let address = format!("{:<12} {}/{}", a.protocol, a.address, a.prefix);
            let (n, m) = if full || j == 0 {
                (a.name.as_str(), a.mac.as_str())
            } else {
                ("-", "-")
            };
            out.push_str(&format!(" {n:<10} {m:<17}    {address}\n"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Verbs
// ---------------------------------------------------------------------------------------------

/// `attach-interface DOMAIN TYPE SOURCE [--target NAME] [--mac MAC] [--model MODEL]`: creates
/// the port and prints virsh's line, then the tap's name on its own line (alone with `-q`, so
/// scripts can capture it).
pub fn attach_interface(ctx: &Ctx, a: &AttachInterfaceArgs) -> Result<(), Failure> {
    let v = slots(
        "attach-interface",
        &[
            ("domain", a.by_name.domain.as_ref()),
            ("type", a.by_name.kind.as_ref()),
            ("source", a.source.as_ref()),
        ],
        &a.args,
    )?;
    let request = attach_request(&v[0], &v[1], &v[2], a)?;
    let port = ctx
        .client
        .create_port(&request)
        .map_err(|e| failed("Failed to attach interface", &e))?;
    ctx.extra(ATTACHED_INTERFACE);
    ctx.print(&format!("{}\n", port.name));
    Ok(())
}

/// The port request of `attach-interface`, checked before anything is sent.
fn attach_request(
    domain: &str,
    kind: &str,
    source: &str,
    a: &AttachInterfaceArgs,
) -> Result<PortRequest, Failure> {
    virtnet_api::check_domain_name(domain)
        .map_err(|e| failed_because("Failed to attach interface", format!("domain: {e}")))?;
    let source = interface_source(kind, source)?;
    let mac = match &a.mac {
        Some(m) => guest_mac(m).map_err(|e| failed_because("Failed to attach interface", e))?,
        None => random_mac(),
    };
    if a.target.as_deref() == Some("") {
        return Err(Failure::msg(
            "Failed to get option 'target': Option argument is empty",
        ));
    }
    let (owner_uid, owner_gid) = match &a.owner {
        Some(o) => owner(o).map_err(|e| failed_because("Failed to attach interface", e))?,
        None => (None, None),
    };
    Ok(PortRequest {
        domain: domain.to_string(),
        source,
        mac,
        model: a.model.clone().filter(|m| !m.is_empty()),
        target: a.target.clone(),
        owner_uid,
        owner_gid,
        queues: a.queues,
        // QEMU sets the tap's vnet-header flag itself when it attaches.
        vnet_hdr: false,
        helper: false,
        no_spoof_check: a.no_spoof_check,
        isolated: a.isolated,
    })
}

/// `USER[:GROUP]` by name (from the host's passwd/group databases) or number.
fn owner(spec: &str) -> Result<(Option<u32>, Option<u32>), String> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = id_of(user, "/etc/passwd").ok_or_else(|| format!("owner: unknown user '{user}'"))?;
    let gid = match group {
        Some(g) => {
            Some(id_of(g, "/etc/group").ok_or_else(|| format!("owner: unknown group '{g}'"))?)
        }
        None => None,
    };
    Ok((Some(uid), gid))
}

/// A numeric id, or the id of a name in a passwd-style file (`name:x:id:…`).
fn id_of(name: &str, db: &str) -> Option<u32> {
    if let Ok(id) = name.parse() {
        return Some(id);
    }
    std::fs::read_to_string(db).ok()?.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then(|| f.nth(1)?.parse().ok())?
    })
}

/// `detach-interface DOMAIN TYPE [--mac MAC]`.
pub fn detach_interface(ctx: &Ctx, a: &DetachInterfaceArgs) -> Result<(), Failure> {
    let v = slots(
        "detach-interface",
        &[
            ("domain", a.by_name.domain.as_ref()),
            ("type", a.by_name.kind.as_ref()),
        ],
        &a.args,
    )?;
    // One request when the daemon finds exactly one such port (the usual case); when it
    // does not (none, several, a MAC or type it cannot read), nothing was deleted and the
    // ports are looked up here to say why in virsh's words.
    match ctx.client.delete_guest_port(&v[0], &v[1], a.mac.as_deref()) {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.code(),
                Some(ErrorCode::NotFound | ErrorCode::Conflict | ErrorCode::Invalid)
            ) =>
        {
            let ports = domain_ports(ctx, &v[0])?;
            let port = pick_for_detach(&ports, &v[1], a.mac.as_deref())
                .map_err(|e| failed_then(e, "Failed to detach interface"))?;
            ctx.client
                .delete_port(&port.name)
                .map_err(|e| failed("Failed to detach interface", &e))?;
        }
        Err(e) => return Err(failed("Failed to detach interface", &e)),
    }
    ctx.extra(DETACHED_INTERFACE);
    Ok(())
}

/// The port `detach-interface` removes, with virsh's errors (`virshDomainDetachInterface`).
fn pick_for_detach<'a>(
    ports: &'a [Port],
    kind: &str,
    mac: Option<&str>,
) -> Result<&'a Port, String> {
    let typed: Vec<&Port> = ports
        .iter()
        .filter(|p| source_kind(&p.source) == kind)
        .collect();
    if typed.is_empty() {
        return Err(format!("No interface found whose type is {kind}"));
    }
    let Some(mac) = mac else {
        if typed.len() > 1 {
            return Err(format!(
                "Domain has {} interfaces. Please specify which one to detach using --mac",
                typed.len()
            ));
        }
        return Ok(typed[0]);
    };
    let matching: Vec<&Port> = typed
        .into_iter()
        .filter(|p| same_mac(&p.mac, mac))
        .collect();
    match matching.as_slice() {
        [one] => Ok(one),
        [] => Err(format!("No interface with MAC address {mac} was found")),
        _ => Err(format!(
            "Domain has multiple interfaces matching MAC address {mac}. You must use \
             detach-device and specify the device pci address to remove it."
        )),
    }
}

/// Reads and parses the `<interface>` of a device verb; failures under virsh's line for it.
fn read_interface(file: &str, context: &str) -> Result<GuestInterface, Failure> {
    let text = read_xml_file(Path::new(file))?;
    GuestInterface::from_xml(&text).map_err(|e| failed_because(context, e.to_string()))
}

/// `attach-device DOMAIN FILE`: a port for the guest `<interface>` in FILE.
pub fn attach_device(ctx: &Ctx, a: &DeviceFileArgs) -> Result<(), Failure> {
    let v = slots(
        "attach-device",
        &[("domain", a.domain.as_ref()), ("file", a.file.as_ref())],
        &a.args,
    )?;
    let (domain, file) = (&v[0], &v[1]);
    let context = format!("Failed to attach device from {file}");
    let iface = read_interface(file, &context)?;
    let request = PortRequest {
        domain: domain.clone(),
        source: iface.source,
        mac: iface.mac.map_or_else(random_mac, |m| m.to_string()),
        model: iface.model,
        target: iface.target,
        owner_uid: None,
        owner_gid: None,
        queues: None,
        vnet_hdr: false,
        helper: false,
        no_spoof_check: false,
        isolated: false,
    };
    ctx.client
        .create_port(&request)
        .map_err(|e| failed(context, &e))?;
    ctx.extra(ATTACHED_DEVICE);
    Ok(())
}

/// `detach-device DOMAIN FILE`: removes the port of the `<interface>` in FILE (by MAC).
pub fn detach_device(ctx: &Ctx, a: &DeviceFileArgs) -> Result<(), Failure> {
    let v = slots(
        "detach-device",
        &[("domain", a.domain.as_ref()), ("file", a.file.as_ref())],
        &a.args,
    )?;
    let (domain, file) = (&v[0], &v[1]);
    let ports = domain_ports(ctx, domain)?;
    let context = format!("Failed to detach device from {file}");
    let iface = read_interface(file, &context)?;
    let port = match_device(&ports, &iface).map_err(|e| failed_because(&context, e))?;
    ctx.client
        .delete_port(&port.name)
        .map_err(|e| failed(context, &e))?;
    ctx.extra(DETACHED_DEVICE);
    Ok(())
}

/// `update-device DOMAIN FILE`: the `<interface>` in FILE names a port by MAC; a new source
/// moves the port live (NAT network to bridge and back, without restarting the guest).
pub fn update_device(ctx: &Ctx, a: &DeviceFileArgs) -> Result<(), Failure> {
    let v = slots(
        "update-device",
        &[("domain", a.domain.as_ref()), ("file", a.file.as_ref())],
        &a.args,
    )?;
    let (domain, file) = (&v[0], &v[1]);
    let ports = domain_ports(ctx, domain)?;
    let context = format!("Failed to update device from {file}");
    let iface = read_interface(file, &context)?;
    let port = match_device(&ports, &iface).map_err(|e| failed_because(&context, e))?;
    check_update(port, &iface).map_err(|e| failed_because(&context, e))?;
    if port.source != iface.source {
        ctx.client
            .move_port(&port.name, iface.source.clone())
            .map_err(|e| failed(context, &e))?;
    }
    ctx.extra(UPDATED_DEVICE);
    Ok(())
}

/// What a live update cannot change, refused as libvirt's `qemuDomainChangeNet` refuses it.
fn check_update(port: &Port, iface: &GuestInterface) -> Result<(), String> {
    if let Some(model) = &iface.model {
        if port.model.as_deref() != Some(model.as_str()) {
            return Err(format!(
                "Operation not supported: cannot modify network device model from {} to {model}",
                port.model.as_deref().unwrap_or("default")
            ));
        }
    }
    if let Some(target) = &iface.target {
        if *target != port.name {
            return Err(
                "Operation not supported: cannot modify network device tap name".to_string(),
            );
        }
    }
    Ok(())
}

/// `port-list [--domain D] [--json]`.
pub fn port_list(ctx: &Ctx, domain: Option<&str>, json: bool) -> Result<(), Failure> {
    let mut ports = ctx.client.ports(domain).map_err(|e| Failure::client(&e))?;
    if let Some(d) = domain {
        ports.retain(|p| p.domain == d);
    }
    ports.sort_by(|a, b| a.name.cmp(&b.name));
    if json {
        return ctx.json(&ports);
    }
    ctx.print(&ports_table(&ports).render(!ctx.quiet));
    Ok(())
}

/// `domif-setlink DOMAIN INTERFACE STATE`.
pub fn domif_setlink(ctx: &Ctx, a: &DomifSetlinkArgs) -> Result<(), Failure> {
    let up = match a.state.as_str() {
        "up" => true,
        "down" => false,
        other => return Err(Failure::msg(format!("invalid link state '{other}'"))),
    };
    let ports = domain_ports(ctx, &a.domain)?;
    let port = setlink_target(&ports, &a.interface)?;
    ctx.client
        .set_port_link(&port.name, up)
        .map_err(|e| failed("Failed to update interface link state", &e))?;
    ctx.extra(UPDATED_DEVICE);
    Ok(())
}

/// The port `domif-setlink` changes: by MAC, else by tap name (case-insensitive, as virsh
/// compares); the first match wins.
fn setlink_target<'a>(ports: &'a [Port], iface: &str) -> Result<&'a Port, Failure> {
    let wanted = IfaceRef::parse(iface);
    let found = ports.iter().find(|p| match &wanted {
        IfaceRef::Mac(_) => wanted.matches(p),
        IfaceRef::Dev(d) => p.name.eq_ignore_ascii_case(d),
    });
    found.ok_or_else(|| {
        let element = match wanted {
            IfaceRef::Mac(_) => "mac",
            IfaceRef::Dev(_) => "target",
        };
        Failure::msg(format!("interface ({element}: {iface}) not found"))
    })
}

/// `domif-getlink DOMAIN INTERFACE`: `<interface> <state>`. virsh prints it without a newline;
/// the blank line it prints after every command ends the line (with `-q`, nothing does).
pub fn domif_getlink(ctx: &Ctx, domain: &str, iface: &str) -> Result<(), Failure> {
    let ports = domain_ports(ctx, domain)?;
    ctx.print(&getlink_line(&ports, iface)?);
    Ok(())
}

fn getlink_line(ports: &[Port], iface: &str) -> Result<String, Failure> {
    let wanted = IfaceRef::parse(iface);
    // virsh's XPath: the normalised MAC, or the tap name as given.
    let found: Vec<&Port> = ports
        .iter()
        .filter(|p| wanted.matches(p) || p.name == iface)
        .collect();
    match found.as_slice() {
        [one] => Ok(format!("{iface} {}", link_state(one.link_up))),
        [] => Err(Failure::msg(match wanted {
            IfaceRef::Mac(m) => format!("Interface (mac: {m}) not found."),
            IfaceRef::Dev(d) => format!("Interface (dev: {d}) not found."),
        })),
        _ => Err(Failure::msg("multiple matching interfaces found")),
    }
}

/// `domiflist DOMAIN [--json]`.
pub fn domiflist(ctx: &Ctx, domain: &str, json: bool) -> Result<(), Failure> {
    let mut ports = domain_ports(ctx, domain)?;
    ports.sort_by(|a, b| a.name.cmp(&b.name));
    if json {
        let entries: Vec<DomIf<'_>> = ports
            .iter()
            .map(|p| DomIf {
                interface: &p.name,
                kind: source_kind(&p.source),
                source: source_name(&p.source),
                model: p.model.as_deref(),
                mac: &p.mac,
            })
            .collect();
        return ctx.json(&entries);
    }
    ctx.print(&domiflist_table(&ports).render(!ctx.quiet));
    Ok(())
}

/// `--source` of `domifaddr`: virsh's names, of which virtnet serves `lease` and `arp`.
fn address_source(text: Option<&str>) -> Result<Option<AddressSource>, Failure> {
    match text {
        None | Some("lease") => Ok(Some(AddressSource::Lease)),
        Some("arp") => Ok(Some(AddressSource::Arp)),
        // virsh knows it; virtnet has no guest agent channel.
        Some("agent") => Ok(None),
        Some(other) => Err(Failure::msg(format!("Unknown data source '{other}'"))),
    }
}

/// `domifaddr DOMAIN [INTERFACE] [--full] [--source lease|arp] [--json]`: virsh's own printf
/// layout (not a vshTable).
pub fn domifaddr(ctx: &Ctx, a: &DomifaddrArgs) -> Result<(), Failure> {
    let source = address_source(a.source.as_deref())?;
    domain_ports(ctx, &a.domain)?;
    const CONTEXT: &str = "Failed to query for interfaces addresses";
    let Some(source) = source else {
        return Err(failed_because(
            CONTEXT,
            "argument unsupported: virtnet has no guest agent; use --source lease or \
             --source arp",
        ));
    };
    let mut addrs = ctx
        .client
        .domain_addresses(&a.domain, source)
        .map_err(|e| failed(CONTEXT, &e))?;
    if let Some(name) = &a.interface {
        addrs.retain(|x| x.name == *name);
    }
    if a.json {
        return ctx.json(&addrs);
    }
    ctx.extra(&domifaddr_header());
    ctx.print(&domifaddr_rows(&addrs, a.full));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    use crate::cli::{Cli, Command};

    fn port(name: &str, source: InterfaceSource, mac: &str, model: Option<&str>) -> Port {
        Port {
            name: name.into(),
            domain: "vm1".into(),
            source,
            bridge: "virbr0".into(),
            mac: mac.into(),
            tap_mac: "fe:54:00:00:00:01".into(),
            model: model.map(Into::into),
            link_up: true,
            mtu: 1500,
            owner_uid: None,
            owner_gid: None,
            queues: 1,
            vnet_hdr: false,
            port_uuid: None,
            spoof_check: false,
            isolated: false,
            spoof_drops: None,
        }
    }

    fn net(n: &str) -> InterfaceSource {
        InterfaceSource::Network(n.into())
    }

    fn br(n: &str) -> InterfaceSource {
        InterfaceSource::Bridge(n.into())
    }

    fn addr(name: &str, mac: &str, proto: &str, ip: &str, prefix: u8) -> InterfaceAddress {
        InterfaceAddress {
            name: name.into(),
            mac: mac.into(),
            protocol: proto.into(),
            address: ip.into(),
            prefix,
        }
    }

    fn parse(args: &[&str]) -> Command {
        let mut all = vec!["virtnet"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all) {
            Ok(cli) => cli.command,
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    #[test]
    fn domiflist_is_virshs_table() {
        let ports = [
            port("vnet0", net("default"), "52:54:00:c3:28:f8", Some("e1000")),
            port("vnet1", br("br0"), "52:54:00:9b:c8:ef", None),
        ];
        assert_eq!(
            domiflist_table(&ports).render(true),
            " Interface   Type      Source    Model   MAC\n\
             ------------------------------------------------------------\n \
             vnet0       network   default   e1000   52:54:00:c3:28:f8\n \
             vnet1       bridge    br0       -       52:54:00:9b:c8:ef\n"
        );
        assert_eq!(
            domiflist_table(&ports[..1]).render(false),
            " vnet0   network   default   e1000   52:54:00:c3:28:f8\n"
        );
    }

    #[test]
    fn domiflist_matches_a_real_virsh_capture() {
        // `virsh domiflist debian10-01` (libvirt 7), columns and widths as printed.
        let ports = [
            port("vnet0", net("default"), "52:54:00:c3:28:f8", Some("e1000")),
            port(
                "vnet1",
                net("isolated"),
                "52:54:00:9b:c8:ef",
                Some("virtio"),
            ),
        ];
        assert_eq!(
            domiflist_table(&ports).render(true),
            " Interface   Type      Source     Model    MAC\n\
             --------------------------------------------------------------\n \
             vnet0       network   default    e1000    52:54:00:c3:28:f8\n \
             vnet1       network   isolated   virtio   52:54:00:9b:c8:ef\n"
        );
    }

    #[test]
    fn port_list_table() {
        let mut down = port("vnet1", br("br0"), "52:54:00:9b:c8:ef", None);
        down.link_up = false;
        down.bridge = "br0".into();
        let ports = [
            port("vnet0", net("default"), "52:54:00:c3:28:f8", Some("virtio")),
            down,
        ];
        assert_eq!(
            ports_table(&ports).render(true),
            " Name    Domain   Source    Bridge   MAC                 Model    State\n\
             -------------------------------------------------------------------------\n \
             vnet0   vm1      default   virbr0   52:54:00:c3:28:f8   virtio   up\n \
             vnet1   vm1      br0       br0      52:54:00:9b:c8:ef   -        down\n"
        );
    }

    #[test]
    fn domifaddr_header_is_virshs_printf() {
        let h = domifaddr_header();
        let mut lines = h.lines();
        assert_eq!(
            lines.next(),
            Some(" Name       MAC address          Protocol     Address")
        );
        let dashes = lines.next().unwrap_or_default();
        assert_eq!(dashes.len(), 79);
        assert!(dashes.chars().all(|c| c == '-'));
        assert_eq!(lines.next(), None);
    }

    #[test]
    fn domifaddr_rows_dash_repeated_name_and_mac() {
        let addrs = [
            addr("vnet0", "52:54:00:12:0e:f7", "ipv4", "192.168.122.45", 24),
            addr("vnet0", "52:54:00:12:0e:f7", "ipv6", "fd00::45", 64),
            addr("vnet1", "52:54:00:aa:bb:cc", "ipv4", "10.0.0.9", 0),
        ];
        assert_eq!(
            domifaddr_rows(&addrs, false),
            concat!(
                " vnet0      52:54:00:12:0e:f7    ipv4         192.168.122.45/24\n",
                " -          -                    ipv6         fd00::45/64\n",
                " vnet1      52:54:00:aa:bb:cc    ipv4         10.0.0.9/0\n",
            )
        );
        assert_eq!(
            domifaddr_rows(&addrs, true),
            concat!(
                " vnet0      52:54:00:12:0e:f7    ipv4         192.168.122.45/24\n",
                " vnet0      52:54:00:12:0e:f7    ipv6         fd00::45/64\n",
                " vnet1      52:54:00:aa:bb:cc    ipv4         10.0.0.9/0\n",
            )
        );
        assert_eq!(domifaddr_rows(&[], false), "");
    }

    #[test]
    fn domifaddr_groups_an_interfaces_addresses() {
        // Addresses of one interface arriving apart are still printed together.
        let addrs = [
            addr("vnet0", "52:54:00:00:00:01", "ipv4", "192.168.122.2", 24),
            addr("vnet1", "52:54:00:00:00:02", "ipv4", "192.168.122.3", 24),
            addr("vnet0", "52:54:00:00:00:01", "ipv4", "192.168.122.4", 24),
        ];
        let rows = domifaddr_rows(&addrs, false);
        let names: Vec<&str> = rows
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert_eq!(names, ["vnet0", "-", "vnet1"]);
    }

    #[test]
    fn domifaddr_long_names_push_columns_like_printf() {
        let addrs = [addr(
            "a-very-long-tap",
            "52:54:00:00:00:01",
            "ipv4",
            "192.168.1.1",
            24,
        )];
        assert_eq!(
            domifaddr_rows(&addrs, false),
            " a-very-long-tap 52:54:00:00:00:01    ipv4         192.168.1.1/24\n"
        );
    }

    #[test]
    fn random_macs_have_qemus_prefix() {
        for _ in 0..64 {
            let mac = random_mac();
            assert!(mac.starts_with("52:54:00:"), "{mac}");
            assert_eq!(mac.len(), 17, "{mac}");
            let parsed: MacAddr = mac.parse().expect("a valid MAC");
            assert!(!parsed.is_multicast());
            assert_eq!(parsed.to_string(), mac, "lower case, two digits per octet");
        }
        let distinct: std::collections::HashSet<String> = (0..32).map(|_| random_mac()).collect();
        assert!(distinct.len() > 1, "random MACs repeat: {distinct:?}");
    }

    #[test]
    fn owners_by_name_or_number() {
        assert_eq!(owner("65534"), Ok((Some(65534), None)));
        assert_eq!(owner("0:0"), Ok((Some(0), Some(0))));
        assert_eq!(owner("root:root"), Ok((Some(0), Some(0))));
        assert!(owner("no-such-user-here").unwrap_err().contains("owner"));
        assert!(owner("root:no-such-group").unwrap_err().contains("group"));
    }

    #[test]
    fn attach_interface_refuses_other_types() {
        let e = interface_source("direct", "eth0").unwrap_err();
        assert_eq!(
            e.messages,
            ["No support for direct in command 'attach-interface'"]
        );
        assert_eq!(
            interface_source("network", "default").ok(),
            Some(net("default"))
        );
        assert_eq!(interface_source("bridge", "br0").ok(), Some(br("br0")));
    }

    fn attach_args(args: &[&str]) -> AttachInterfaceArgs {
        let mut all = vec!["attach-interface"];
        all.extend_from_slice(args);
        match parse(&all) {
            Command::AttachInterface(a) => a,
            other => panic!("{other:?}"),
        }
    }

    fn attach_slots(a: &AttachInterfaceArgs) -> Result<Vec<String>, Failure> {
        slots(
            "attach-interface",
            &[
                ("domain", a.by_name.domain.as_ref()),
                ("type", a.by_name.kind.as_ref()),
                ("source", a.source.as_ref()),
            ],
            &a.args,
        )
    }

    #[test]
    fn attach_interface_takes_data_by_position_or_option() {
        for args in [
            &["vm1", "network", "default"][..],
            &[
                "--domain", "vm1", "--type", "network", "--source", "default",
            ],
            &["--type", "network", "vm1", "default"],
            &["vm1", "--source", "default", "network", "--persistent"],
        ] {
            let a = attach_args(args);
            assert_eq!(
                attach_slots(&a).ok(),
                Some(vec!["vm1".into(), "network".into(), "default".into()]),
                "{args:?}"
            );
        }
        let a = attach_args(&["vm1", "network"]);
        assert_eq!(
            attach_slots(&a).unwrap_err().messages,
            ["command 'attach-interface' requires <source> option"]
        );
        let a = attach_args(&["vm1", "network", "default", "extra"]);
        assert_eq!(
            attach_slots(&a).unwrap_err().messages,
            ["unexpected data 'extra'"]
        );
        let a = attach_args(&["", "network", "default"]);
        assert_eq!(
            attach_slots(&a).unwrap_err().messages,
            ["Failed to get option 'domain': Option argument is empty"]
        );
    }

    #[test]
    fn attach_request_fills_in_a_mac_and_checks_a_given_one() {
        let a = attach_args(&["vm1", "bridge", "br0", "--model", "virtio", "--config"]);
        let r = attach_request("vm1", "bridge", "br0", &a).expect("request");
        assert_eq!(r.source, br("br0"));
        assert!(r.mac.starts_with("52:54:00:"), "{}", r.mac);
        assert_eq!(r.model.as_deref(), Some("virtio"));
        assert_eq!(r.target, None);

        let a = attach_args(&[
            "vm1",
            "network",
            "n",
            "--mac",
            "52:54:00:AB:CD:0E",
            "--target",
            "tap7",
        ]);
        let r = attach_request("vm1", "network", "n", &a).expect("request");
        assert_eq!(r.mac, "52:54:00:ab:cd:0e");
        assert_eq!(r.target.as_deref(), Some("tap7"));

        let a = attach_args(&["vm1", "network", "n", "--mac", "52:54:zz:00:00:01"]);
        assert_eq!(
            attach_request("vm1", "network", "n", &a)
                .unwrap_err()
                .messages,
            [
                "Failed to attach interface",
                "XML error: unable to parse mac address '52:54:zz:00:00:01'"
            ]
        );
        let a = attach_args(&["vm1", "network", "n", "--mac", "01:00:5e:00:00:01"]);
        assert_eq!(
            attach_request("vm1", "network", "n", &a)
                .unwrap_err()
                .messages[1],
            "XML error: expected unicast mac address, found multicast '01:00:5e:00:00:01'"
        );
        let a = attach_args(&["vm1", "ethernet", "n"]);
        assert_eq!(
            attach_request("vm1", "ethernet", "n", &a)
                .unwrap_err()
                .messages,
            ["No support for ethernet in command 'attach-interface'"]
        );
    }

    #[test]
    fn detach_interface_picks_like_virsh() {
        let ports = [
            port("vnet0", net("default"), "52:54:00:00:00:01", None),
            port("vnet1", net("default"), "52:54:00:00:00:02", None),
            port("vnet2", br("br0"), "52:54:00:00:00:03", None),
        ];
        assert_eq!(
            pick_for_detach(&ports, "network", None).unwrap_err(),
            "Domain has 2 interfaces. Please specify which one to detach using --mac"
        );
        assert_eq!(
            pick_for_detach(&ports, "network", Some("52:54:00:00:00:02")).map(|p| &p.name),
            Ok(&"vnet1".to_string())
        );
        // virMacAddrCompare: case and leading zeros do not matter.
        assert_eq!(
            pick_for_detach(&ports, "network", Some("52:54:0:0:0:2")).map(|p| &p.name),
            Ok(&"vnet1".to_string())
        );
        assert_eq!(
            pick_for_detach(&ports, "bridge", None).map(|p| &p.name),
            Ok(&"vnet2".to_string())
        );
        assert_eq!(
            pick_for_detach(&ports, "bridge", Some("52:54:00:00:00:01")).unwrap_err(),
            "No interface with MAC address 52:54:00:00:00:01 was found"
        );
        assert_eq!(
            pick_for_detach(&ports, "direct", None).unwrap_err(),
            "No interface found whose type is direct"
        );
        let twins = [
            port("vnet0", br("br0"), "52:54:00:00:00:01", None),
            port("vnet1", br("br0"), "52:54:00:00:00:01", None),
        ];
        assert!(pick_for_detach(&twins, "bridge", Some("52:54:00:00:00:01"))
            .unwrap_err()
            .starts_with("Domain has multiple interfaces matching MAC address 52:54:00:00:00:01."));
        let f = failed_then(
            pick_for_detach(&ports, "network", None).unwrap_err(),
            "Failed to detach interface",
        );
        assert_eq!(f.messages[1], "Failed to detach interface");
    }

    fn example(name: &str) -> GuestInterface {
        let path = virtnet_testkit::shared_dir().join("examples").join(name);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        GuestInterface::from_xml(&text).expect("the example parses")
    }

    #[test]
    fn device_xml_matches_its_port_by_mac() {
        let nat = example("guest-interface-nat.xml");
        let bridge = example("guest-interface-bridge.xml");
        assert_eq!(nat.source, net("default"));
        assert_eq!(bridge.source, br("virbr1"));
        let ports = [
            port(
                "vnet0",
                net("default"),
                "52:54:00:12:0E:F7",
                Some("rtl8139"),
            ),
            port("vnet1", net("default"), "52:54:00:00:00:02", None),
        ];
        let hit = match_device(&ports, &bridge).map(|p| p.name.as_str());
        assert_eq!(hit, Ok("vnet0"));
        assert_eq!(check_update(&ports[0], &bridge), Ok(()));
        assert_ne!(ports[0].source, bridge.source, "update-device moves it");

        let mut other = bridge.clone();
        other.model = Some("virtio".into());
        assert_eq!(
            check_update(&ports[0], &other).unwrap_err(),
            "Operation not supported: cannot modify network device model from rtl8139 to virtio"
        );
        other.model = None;
        other.target = Some("vnet9".into());
        assert!(check_update(&ports[0], &other).is_err());

        let mut stranger = bridge.clone();
        stranger.mac = "52:54:00:99:99:99".parse().ok();
        assert_eq!(
            match_device(&ports, &stranger).unwrap_err(),
            "device not found: no device matching MAC address 52:54:00:99:99:99 found"
        );
        let mut anonymous = bridge;
        anonymous.mac = None;
        assert!(match_device(&ports, &anonymous).is_err());
        assert_eq!(
            match_device(&ports[..1], &anonymous).map(|p| p.name.as_str()),
            Ok("vnet0")
        );
    }

    #[test]
    fn setlink_and_getlink_find_by_mac_or_name() {
        let mut down = port("vnet1", net("default"), "52:54:00:00:00:02", None);
        down.link_up = false;
        let ports = [
            port("vnet0", net("default"), "52:54:00:00:00:01", None),
            down,
        ];
        assert_eq!(
            setlink_target(&ports, "52:54:00:00:00:02").map(|p| p.name.as_str()),
            Ok("vnet1")
        );
        assert_eq!(
            setlink_target(&ports, "VNET0").map(|p| p.name.as_str()),
            Ok("vnet0")
        );
        assert_eq!(
            setlink_target(&ports, "vnet7").unwrap_err().messages,
            ["interface (target: vnet7) not found"]
        );
        assert_eq!(
            setlink_target(&ports, "52:54:00:00:00:09")
                .unwrap_err()
                .messages,
            ["interface (mac: 52:54:00:00:00:09) not found"]
        );

        assert_eq!(getlink_line(&ports, "vnet0").ok(), Some("vnet0 up".into()));
        assert_eq!(
            getlink_line(&ports, "52:54:00:00:00:02").ok(),
            Some("52:54:00:00:00:02 down".into())
        );
        assert_eq!(
            getlink_line(&ports, "vnet7").unwrap_err().messages,
            ["Interface (dev: vnet7) not found."]
        );
        assert_eq!(
            getlink_line(&ports, "52:54:00:00:00:0A")
                .unwrap_err()
                .messages,
            ["Interface (mac: 52:54:00:00:00:0a) not found."]
        );
    }

    #[test]
    fn domifaddr_sources() {
        assert_eq!(address_source(None).ok(), Some(Some(AddressSource::Lease)));
        assert_eq!(
            address_source(Some("lease")).ok(),
            Some(Some(AddressSource::Lease))
        );
        assert_eq!(
            address_source(Some("arp")).ok(),
            Some(Some(AddressSource::Arp))
        );
        assert_eq!(address_source(Some("agent")).ok(), Some(None));
        assert_eq!(
            address_source(Some("dhcp")).unwrap_err().messages,
            ["Unknown data source 'dhcp'"]
        );
    }

    #[test]
    fn verbs_parse_with_virshs_names() {
        assert!(matches!(
            parse(&["domif-setlink", "vm1", "vnet0", "down", "--persistent"]),
            Command::DomifSetlink(_)
        ));
        assert!(matches!(
            parse(&["domif-getlink", "vm1", "vnet0"]),
            Command::DomifGetlink(_)
        ));
        assert!(matches!(
            parse(&["domiflist", "vm1"]),
            Command::Domiflist(_)
        ));
        assert!(matches!(
            parse(&["domifaddr", "vm1", "vnet0", "--full", "--source", "arp"]),
            Command::Domifaddr(_)
        ));
        assert!(matches!(
            parse(&["port-list", "--domain", "vm1", "--json"]),
            Command::PortList(_)
        ));
        for verb in ["attach-device", "detach-device", "update-device"] {
            let c = parse(&[verb, "vm1", "/tmp/nic.xml", "--live"]);
            assert!(
                matches!(
                    c,
                    Command::AttachDevice(_) | Command::DetachDevice(_) | Command::UpdateDevice(_)
                ),
                "{verb}"
            );
        }
        assert!(matches!(
            parse(&[
                "detach-interface",
                "vm1",
                "network",
                "--mac",
                "52:54:00:00:00:01"
            ]),
            Command::DetachInterface(_)
        ));
    }
}

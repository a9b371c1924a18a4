//! Writing a [`Network`] in libvirt's normalised form (what `virsh net-dumpxml` prints):
//! libvirt's element order, two-space indentation, single-quoted attributes, lower-case MACs,
//! and the defaults libvirt always prints (`stp='on' delay='0'` on bridges networks own).

use std::fmt::Display;

use crate::network::*;

/// An indenting XML writer that escapes like libvirt's `virBufferEscapeString`.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) out: String,
    depth: usize,
}

/// Attributes of one element; `None` values are left out.
pub(crate) type Attrs<'a> = &'a [(&'a str, Option<String>)];

impl Writer {
    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    fn start_tag(&mut self, name: &str, attrs: Attrs) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        for (k, v) in attrs {
            if let Some(v) = v {
                self.out.push(' ');
                self.out.push_str(k);
                self.out.push_str("='");
                escape_into(&mut self.out, v);
                self.out.push('\'');
            }
        }
    }

    /// `<name attrs/>`
    pub(crate) fn empty(&mut self, name: &str, attrs: Attrs) {
        self.start_tag(name, attrs);
        self.out.push_str("/>\n");
    }

    /// `<name attrs>` and one level deeper.
    pub(crate) fn open(&mut self, name: &str, attrs: Attrs) {
        self.start_tag(name, attrs);
        self.out.push_str(">\n");
        self.depth += 1;
    }

    /// `</name>` one level up.
    pub(crate) fn close(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    /// `<name>text</name>`
    pub(crate) fn text(&mut self, name: &str, text: &str) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        escape_into(&mut self.out, text);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    /// Raw, already well-formed XML lines at the current indentation.
    fn raw(&mut self, xml: &str) {
        for line in xml.lines() {
            self.indent();
            self.out.push_str(line.trim_start());
            self.out.push('\n');
        }
    }
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
}

pub(crate) fn some(v: impl Display) -> Option<String> {
    Some(v.to_string())
}

pub(crate) fn opt<T: Display>(v: &Option<T>) -> Option<String> {
    v.as_ref().map(ToString::to_string)
}

pub(crate) fn yes_no(v: Option<bool>) -> Option<String> {
    v.map(|b| if b { "yes" } else { "no" }.to_string())
}

pub(crate) fn format_network(net: &Network) -> String {
    let mut w = Writer {
        out: String::new(),
        depth: 0,
    };
    let mut root: Vec<(&str, Option<String>)> = Vec::new();
    if !net.dnsmasq_options.is_empty() {
        root.push(("xmlns:dnsmasq", some(super::parse::DNSMASQ_NS)));
    }
    if !net.host_access.is_empty() || !net.forwards.is_empty() || net.overlay.is_some() {
        root.push(("xmlns:virtnet", some(super::parse::VIRTNET_NS)));
    }
    root.push(("ipv6", net.ipv6.then(|| "yes".to_string())));
    root.push(("trustGuestRxFilters", yes_no(net.trust_guest_rx_filters)));
    w.open("network", &root);
    w.text("name", &net.name);
    if let Some(uuid) = net.uuid {
        w.text("uuid", &uuid.to_string());
    }
    if let Some(t) = &net.title {
        w.text("title", t);
    }
    if let Some(d) = &net.description {
        w.text("description", d);
    }
    if let Some(m) = &net.metadata {
        w.open("metadata", &[]);
        w.raw(m);
        w.close("metadata");
    }
    format_forward(&mut w, &net.forward);
    format_bridge(&mut w, net);
    if let Some(mtu) = net.mtu {
        w.empty("mtu", &[("size", some(mtu))]);
    }
    if let Some(mac) = net.mac {
        w.empty("mac", &[("address", some(mac))]);
    }
    if let Some(d) = &net.domain {
        w.empty(
            "domain",
            &[
                ("name", some(&d.name)),
                ("localOnly", yes_no(d.local_only)),
                ("register", yes_no(d.register)),
            ],
        );
    }
    if let Some(dns) = &net.dns {
        format_dns(&mut w, dns);
    }
    if let Some(v) = &net.vlan {
        format_vlan(&mut w, v);
    }
    if let Some(b) = &net.bandwidth {
        format_bandwidth(&mut w, b);
    }
    for ip in &net.ips {
        format_ip(&mut w, ip);
    }
    for r in &net.routes {
        w.empty(
            "route",
            &[
                ("family", r.family.map(|f| f.as_str().to_string())),
                ("address", some(r.address)),
                ("netmask", opt(&r.netmask)),
                ("prefix", opt(&r.prefix)),
                ("gateway", some(r.gateway)),
                ("metric", opt(&r.metric)),
            ],
        );
    }
    if let Some(vp) = &net.virtualport {
        format_virtualport(&mut w, vp);
    }
    for pg in &net.portgroups {
        w.open(
            "portgroup",
            &[
                ("name", some(&pg.name)),
                ("default", pg.default.then(|| "yes".to_string())),
                ("trustGuestRxFilters", yes_no(pg.trust_guest_rx_filters)),
            ],
        );
        if let Some(v) = &pg.vlan {
            format_vlan(&mut w, v);
        }
        if let Some(vp) = &pg.virtualport {
            format_virtualport(&mut w, vp);
        }
        if let Some(b) = &pg.bandwidth {
            format_bandwidth(&mut w, b);
        }
        w.close("portgroup");
    }
    if let Some(iso) = net.port_isolated {
        w.empty("port", &[("isolated", yes_no(Some(iso)))]);
    }
    if !net.dnsmasq_options.is_empty() {
        w.open("dnsmasq:options", &[]);
        for o in &net.dnsmasq_options {
            w.empty("dnsmasq:option", &[("value", some(o))]);
        }
        w.close("dnsmasq:options");
    }
    if !net.host_access.is_empty() {
        w.open("virtnet:host-access", &[]);
        for a in &net.host_access {
            w.empty(
                "virtnet:allow",
                &[("proto", some(a.proto.as_str())), ("port", some(a.port))],
            );
        }
        w.close("virtnet:host-access");
    }
    format_forwards(&mut w, &net.forwards);
    if let Some(o) = &net.overlay {
        w.empty(
            "virtnet:overlay",
            &[
                ("type", some(o.kind.as_str())),
                ("vni", some(o.vni)),
                ("underlay", opt(&o.underlay)),
                ("local", opt(&o.local)),
                ("dstport", opt(&o.dstport)),
            ],
        );
    }
    w.close("network");
    w.out
}

/// `<virtnet:forwards>`, one `<virtnet:forward>` per port forward.
fn format_forwards(w: &mut Writer, forwards: &[crate::portforward::PortForward]) {
    if forwards.is_empty() {
        return;
    }
    w.open("virtnet:forwards", &[]);
    for f in forwards {
        format_port_forward(w, f);
    }
    w.close("virtnet:forwards");
}

fn format_port_forward(w: &mut Writer, f: &crate::portforward::PortForward) {
    w.empty(
        "virtnet:forward",
        &[
            ("proto", some(f.proto.as_str())),
            ("port", some(f.ports)),
            ("listen", opt(&f.listen)),
            ("to", some(&f.to)),
            ("to-port", opt(&f.to_port)),
        ],
    );
}

/// The line one more forward adds to the stored form of a definition that has forwards
/// (inside `<network><virtnet:forwards>`, so two levels deep).
pub(crate) fn format_forward_line(f: &crate::portforward::PortForward) -> String {
    let mut w = Writer {
        out: String::new(),
        depth: 2,
    };
    format_port_forward(&mut w, f);
    w.out
}

fn format_forward(w: &mut Writer, f: &Forward) {
    if f.mode == ForwardMode::None {
        return;
    }
    let attrs = [
        ("dev", f.dev().map(str::to_string)),
        ("mode", some(f.mode)),
        ("managed", yes_no(f.managed)),
    ];
    let nat_has_content = f
        .nat
        .as_ref()
        .is_some_and(|n| n.ipv6 == Some(true) || n.address.is_some() || n.port.is_some());
    let short = !nat_has_content
        && f.driver.is_none()
        && f.pf.is_none()
        && f.interfaces.is_empty()
        && f.addresses.is_empty();
    if short {
        w.empty("forward", &attrs);
        return;
    }
    w.open("forward", &attrs);
    if let Some(nat) = f.nat.as_ref().filter(|_| nat_has_content) {
        let nat_attrs = [("ipv6", nat.ipv6.filter(|v| *v).map(|_| "yes".to_string()))];
        if nat.address.is_none() && nat.port.is_none() {
            w.empty("nat", &nat_attrs);
        } else {
            w.open("nat", &nat_attrs);
            if let Some(a) = nat.address {
                w.empty("address", &[("start", some(a.start)), ("end", some(a.end))]);
            }
            if let Some(p) = nat.port {
                w.empty("port", &[("start", some(p.start)), ("end", some(p.end))]);
            }
            w.close("nat");
        }
    }
    if let Some(d) = &f.driver {
        w.empty("driver", &[("name", some(d))]);
    }
    if let Some(pf) = &f.pf {
        w.empty("pf", &[("dev", some(pf))]);
    }
    for i in &f.interfaces {
        w.empty("interface", &[("dev", some(i))]);
    }
    for a in &f.addresses {
        w.empty(
            "address",
            &[
                ("type", some("pci")),
                ("domain", some(format!("{:#06x}", a.domain))),
                ("bus", some(format!("{:#04x}", a.bus))),
                ("slot", some(format!("{:#04x}", a.slot))),
                ("function", some(format!("{:#x}", a.function))),
            ],
        );
    }
    w.close("forward");
}

fn format_bridge(w: &mut Writer, net: &Network) {
    let own = net.forward.mode.has_own_bridge();
    let b = net.bridge.clone().unwrap_or_default();
    if !own && b.name.is_none() && b.mac_table_manager.is_none() {
        return;
    }
    let (stp, delay) = if own {
        (
            some(if b.stp.unwrap_or(true) { "on" } else { "off" }),
            some(b.delay.unwrap_or(0)),
        )
    } else {
        (None, None)
    };
    w.empty(
        "bridge",
        &[
            ("name", b.name.clone()),
            ("zone", b.zone.clone()),
            ("stp", stp),
            ("delay", delay),
            (
                "macTableManager",
                b.mac_table_manager.map(|m| {
                    match m {
                        MacTableManager::Kernel => "kernel",
                        MacTableManager::Libvirt => "libvirt",
                    }
                    .to_string()
                }),
            ),
        ],
    );
}

fn format_dns(w: &mut Writer, dns: &Dns) {
    if dns.is_empty() {
        return;
    }
    let attrs = [
        ("enable", yes_no(dns.enable)),
        ("forwardPlainNames", yes_no(dns.forward_plain_names)),
    ];
    if dns.forwarders.is_empty()
        && dns.txts.is_empty()
        && dns.srvs.is_empty()
        && dns.hosts.is_empty()
    {
        w.empty("dns", &attrs);
        return;
    }
    w.open("dns", &attrs);
    for f in &dns.forwarders {
        w.empty(
            "forwarder",
            &[
                ("domain", f.domain.clone()),
                ("addr", opt(&f.addr)),
                ("port", opt(&f.port)),
            ],
        );
    }
    for t in &dns.txts {
        w.empty("txt", &[("name", some(&t.name)), ("value", some(&t.value))]);
    }
    for s in &dns.srvs {
        w.empty(
            "srv",
            &[
                ("service", some(&s.service)),
                ("protocol", some(&s.protocol)),
                ("domain", s.domain.clone()),
                ("target", s.target.clone()),
                ("port", opt(&s.port)),
                ("priority", opt(&s.priority)),
                ("weight", opt(&s.weight)),
            ],
        );
    }
    for h in &dns.hosts {
        w.open("host", &[("ip", some(h.ip))]);
        for name in &h.hostnames {
            w.text("hostname", name);
        }
        w.close("host");
    }
    w.close("dns");
}

pub(crate) fn format_vlan(w: &mut Writer, v: &Vlan) {
    w.open("vlan", &[("trunk", yes_no(v.trunk))]);
    for t in &v.tags {
        w.empty(
            "tag",
            &[("id", some(t.id)), ("nativeMode", t.native_mode.clone())],
        );
    }
    w.close("vlan");
}

fn format_bandwidth(w: &mut Writer, b: &Bandwidth) {
    format_bandwidth_with(w, b, &[]);
}

/// `<bandwidth attrs>` with its rates (a network port's carries `classID`).
pub(crate) fn format_bandwidth_with(w: &mut Writer, b: &Bandwidth, attrs: Attrs) {
    if b.inbound.is_none() && b.outbound.is_none() {
        return;
    }
    w.open("bandwidth", attrs);
    for (name, rate) in [("inbound", &b.inbound), ("outbound", &b.outbound)] {
        if let Some(r) = rate {
            w.empty(
                name,
                &[
                    ("average", opt(&r.average)),
                    ("peak", opt(&r.peak)),
                    ("floor", opt(&r.floor)),
                    ("burst", opt(&r.burst)),
                ],
            );
        }
    }
    w.close("bandwidth");
}

pub(crate) fn format_virtualport(w: &mut Writer, vp: &VirtualPort) {
    let attrs = [("type", vp.kind.clone())];
    if vp.parameters.is_empty() {
        w.empty("virtualport", &attrs);
        return;
    }
    w.open("virtualport", &attrs);
    let params: Vec<(&str, Option<String>)> = super::parse::VIRTUALPORT_PARAMS
        .iter()
        .map(|p| {
            let v = vp
                .parameters
                .iter()
                .find(|(k, _)| k == p)
                .map(|(_, v)| v.clone());
            (*p, v)
        })
        .collect();
    w.empty("parameters", &params);
    w.close("virtualport");
}

fn format_lease(w: &mut Writer, lease: &Lease) {
    let unit = (lease.expiry != 0).then(|| lease.unit.as_str().to_string());
    w.empty("lease", &[("expiry", some(lease.expiry)), ("unit", unit)]);
}

fn format_ip(w: &mut Writer, ip: &IpDef) {
    w.open(
        "ip",
        &[
            ("family", ip.family.map(|f| f.as_str().to_string())),
            ("address", some(ip.address)),
            ("netmask", opt(&ip.netmask)),
            ("prefix", opt(&ip.prefix)),
            ("localPtr", yes_no(ip.local_ptr)),
        ],
    );
    if let Some(root) = &ip.tftp_root {
        w.empty("tftp", &[("root", some(root))]);
    }
    if let Some(dhcp) = &ip.dhcp {
        if !dhcp.ranges.is_empty() || !dhcp.hosts.is_empty() || dhcp.bootp.is_some() {
            w.open("dhcp", &[]);
            for r in &dhcp.ranges {
                let attrs = [("start", some(r.start)), ("end", some(r.end))];
                match &r.lease {
                    None => w.empty("range", &attrs),
                    Some(l) => {
                        w.open("range", &attrs);
                        format_lease(w, l);
                        w.close("range");
                    }
                }
            }
            for h in &dhcp.hosts {
                let attrs = [
                    ("mac", opt(&h.mac)),
                    ("id", h.id.clone()),
                    ("name", h.name.clone()),
                    ("ip", some(h.ip)),
                ];
                match &h.lease {
                    None => w.empty("host", &attrs),
                    Some(l) => {
                        w.open("host", &attrs);
                        format_lease(w, l);
                        w.close("host");
                    }
                }
            }
            if let Some(b) = &dhcp.bootp {
                w.empty(
                    "bootp",
                    &[("file", some(&b.file)), ("server", b.server.clone())],
                );
            }
            w.close("dhcp");
        }
    }
    w.close("ip");
}

//! Golden tests: the plan of every example network in `shared/examples` and of libvirt's
//! firewall test inputs, rendered as text and compared with `tests/golden/*.plan`; and the
//! host-device plan (or refusal) of every example and libvirt `xml-in` network in `bridge`,
//! `private`, `vepa`, `passthrough` or `hostdev` mode.
//!
//! Set `VIRTNET_UPDATE_GOLDEN=1` to rewrite the files after a deliberate change, then review
//! the diff like any other code change.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use virtnet_model::{Bridge, Network};
use virtnet_plan::firewall::{rebuild_script, start_script, stop_any_script, stop_script};
use virtnet_plan::{plan, plan_external, ExternalPlan, NetworkPlan};
use virtnet_testkit::{read_corpus_file, shared_dir};

fn render(p: &NetworkPlan) -> String {
    let mut s = String::new();
    let b = &p.bridge;
    let mac = b
        .mac
        .map(|m| {
            m.iter()
                .map(|o| format!("{o:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        })
        .unwrap_or_else(|| "(kernel)".into());
    let _ = writeln!(s, "# network {} (mode {})", p.network, p.mode);
    let _ = writeln!(
        s,
        "bridge {} mac {} mtu {} stp {} forward_delay_cs {} alias {:?}",
        b.name,
        mac,
        b.mtu.map(|m| m.to_string()).unwrap_or_else(|| {
            if p.vxlan.is_some() {
                "(underlay's less the VXLAN overhead)".into()
            } else {
                "(kernel)".into()
            }
        }),
        if b.stp { "on" } else { "off" },
        b.forward_delay_cs,
        b.alias
    );
    if let Some(v) = &p.vxlan {
        let _ = writeln!(
            s,
            "vxlan {} vni {} dstport {} local {} underlay {} nolearning master {} alias {:?}",
            v.name,
            v.vni,
            v.dstport,
            v.local
                .map(|a| a.to_string())
                .unwrap_or_else(|| "(underlay's address)".into()),
            v.underlay.as_deref().unwrap_or("(none)"),
            b.name,
            v.alias
        );
    }
    for a in &p.addresses {
        let _ = writeln!(s, "address {}/{}", a.address, a.prefix);
    }
    for r in &p.routes {
        let _ = writeln!(
            s,
            "route {}/{} via {} metric {:?}",
            r.destination, r.prefix, r.gateway, r.metric
        );
    }
    for c in &p.sysctls {
        let _ = writeln!(s, "sysctl {} = {}", c.key, c.value);
    }
    match &p.firewall {
        None => s.push_str("\n# firewall: none (open)\n"),
        Some(fw) => {
            s.push_str("\n# nft: start\n");
            s.push_str(&start_script(fw));
            s.push_str("\n# nft: stop\n");
            s.push_str(&stop_script(fw));
            s.push_str("\n# nft: stop (whatever is left)\n");
            s.push_str(&stop_any_script(fw));
        }
    }
    s
}

/// The `.xml` files in `dir`, sorted by path.
fn xml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    files.sort();
    files
}

fn inputs() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let dirs = [
        ("example", shared_dir().join("examples")),
        (
            "libvirt9",
            shared_dir().join("conformance/libvirt-9.0/firewall"),
        ),
        (
            "libvirt-nft",
            shared_dir().join("conformance/libvirt-nftables"),
        ),
    ];
    for (tag, dir) in dirs {
        let files = xml_files(&dir);
        assert!(!files.is_empty(), "no XML in {}", dir.display());
        for f in files {
            let stem = f.file_stem().unwrap().to_string_lossy().to_string();
            out.push((format!("{tag}-{stem}"), f));
        }
    }
    out
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn plans_match_golden_files() {
    let update = std::env::var_os("VIRTNET_UPDATE_GOLDEN").is_some();
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut examples = Vec::new();
    for (name, path) in inputs() {
        let xml = read_corpus_file(&path);
        let Ok(mut net) = Network::from_xml(&xml) else {
            continue; // not a network document (e.g. a guest <interface>)
        };
        if !net.forward.mode.has_own_bridge() {
            continue; // host bridges and macvtap are issue 6's
        }
        if net.bridge_name().is_none() {
            // What define would assign on an empty host.
            net.bridge.get_or_insert_with(Bridge::default).name = Some("virbr0".into());
        }
        let p = plan(&net).unwrap_or_else(|e| panic!("{name}: {e}"));
        let text = render(&p);
        if name.starts_with("example-") {
            examples.push(p.clone());
        }
        check_golden(&name, &text, update, &mut failures);
        checked += 1;
    }
    // The whole table as the daemon installs it at start-up with every example running.
    let firewalls: Vec<_> = examples
        .iter()
        .filter_map(|p| p.firewall.as_ref())
        .collect();
    assert!(
        firewalls.len() >= 4,
        "examples with a firewall: {}",
        firewalls.len()
    );
    let text = rebuild_script(&firewalls);
    let file = golden_dir().join("rebuild-examples.nft");
    if update {
        std::fs::write(&file, &text).unwrap();
    } else if std::fs::read_to_string(&file).ok().as_deref() != Some(text.as_str()) {
        failures.push(format!(
            "rebuild: differs from {}\n--- got\n{text}",
            file.display()
        ));
    }
    assert!(checked >= 15, "only {checked} networks planned");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A host-device network's plan as text: the bridge its guests join, or the NICs and mode of
/// their macvtap ports, or why virtnet refuses it.
fn render_external(net: &Network) -> String {
    let mut s = format!("# network {} (mode {})\n", net.name, net.forward.mode);
    match plan_external(net) {
        Ok(ExternalPlan::HostBridge { bridge }) => {
            let _ = writeln!(s, "host bridge {bridge}: ports are taps enslaved to it");
        }
        Ok(ExternalPlan::Direct { devs, mode }) => {
            let _ = writeln!(
                s,
                "macvtap mode {mode} on the first existing of: {}",
                devs.join(" ")
            );
        }
        Err(e) => {
            // The message leads with the field the refusal is about.
            assert!(e.to_string().starts_with(e.field()), "{e}");
            let _ = writeln!(s, "refused: {e}");
        }
    }
    s
}

#[test]
fn external_plans_match_golden_files() {
    let update = std::env::var_os("VIRTNET_UPDATE_GOLDEN").is_some();
    let dirs = [
        ("example", shared_dir().join("examples")),
        (
            "libvirt9-xml",
            shared_dir().join("conformance/libvirt-9.0/xml-in"),
        ),
    ];
    let mut rendered = Vec::new();
    for (tag, dir) in dirs {
        let files = xml_files(&dir);
        for f in files {
            let Ok(net) = Network::from_xml(&read_corpus_file(&f)) else {
                continue; // not a network document, or one the model refuses
            };
            if net.forward.mode.has_own_bridge() {
                continue; // planned by plans_match_golden_files
            }
            let stem = f.file_stem().unwrap().to_string_lossy().to_string();
            rendered.push((format!("{tag}-{stem}"), render_external(&net)));
        }
    }
    let mut failures = Vec::new();
    for (name, text) in &rendered {
        let file = golden_dir().join(format!("{name}.plan"));
        if update {
            std::fs::write(&file, text).unwrap();
            continue;
        }
        match std::fs::read_to_string(&file) {
            Ok(want) if &want == text => {}
            Ok(want) => failures.push(format!(
                "{name}: differs from {}\n--- want\n{want}\n--- got\n{text}",
                file.display()
            )),
            Err(e) => failures.push(format!("{name}: {}: {e}", file.display())),
        }
    }
    // Both examples, and libvirt's host bridge, direct, vepa, private, passthrough and hostdev
    // documents.
    assert!(
        rendered.len() >= 10,
        "only {} host-device networks",
        rendered.len()
    );
    let all: String = rendered.iter().map(|(_, t)| t.as_str()).collect();
    for kind in [
        "host bridge",
        "mode bridge on",
        "mode vepa",
        "mode private",
        "refused",
    ] {
        assert!(all.contains(kind), "no host-device plan with {kind:?}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// An overlay network (`<virtnet:overlay>`): the bridge with the VNI's anycast MAC and the
/// VXLAN device after it; its MTU is left to the start (the underlay's less 50) unless
/// `<mtu>` is given.
#[test]
fn overlay_plan_matches_golden_file() {
    let update = std::env::var_os("VIRTNET_UPDATE_GOLDEN").is_some();
    let cases = [
        (
            "overlay-evpn",
            "<network xmlns:virtnet='urn:virtnet:network:1'><name>stretch</name>\
             <forward mode='nat'/><bridge name='vnbr0'/>\
             <ip address='10.77.0.1' prefix='24'><dhcp><range start='10.77.0.10' end='10.77.0.99'/></dhcp></ip>\
             <virtnet:overlay type='evpn' vni='4242' underlay='eth0'/></network>",
        ),
        (
            "overlay-evpn-mtu-local",
            "<network xmlns:virtnet='urn:virtnet:network:1'><name>stretch6</name>\
             <bridge name='vnbr1'/><mtu size='1400'/><mac address='52:54:00:0a:0b:0c'/>\
             <ip family='ipv6' address='fd77::1' prefix='64'/>\
             <virtnet:overlay type='evpn' vni='77' local='2001:db8::7' dstport='4790'/></network>",
        ),
    ];
    let mut failures = Vec::new();
    for (name, xml) in cases {
        let net = Network::from_xml(xml).unwrap_or_else(|e| panic!("{name}: {e}"));
        let p = plan(&net).unwrap_or_else(|e| panic!("{name}: {e}"));
        let text = render(&p);
        check_golden(name, &text, update, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Compares a rendered plan with its golden file `<name>.plan` (or writes the file when
/// `update`); a difference or a missing file is added to `failures`.
fn check_golden(name: &str, text: &str, update: bool, failures: &mut Vec<String>) {
    let file = golden_dir().join(format!("{name}.plan"));
    if update {
        std::fs::write(&file, text).unwrap();
        return;
    }
    match std::fs::read_to_string(&file) {
        Ok(want) if want == text => {}
        Ok(want) => failures.push(format!(
            "{name}: differs from {}\n--- want\n{want}\n--- got\n{text}",
            file.display()
        )),
        Err(e) => failures.push(format!("{name}: {}: {e}", file.display())),
    }
}

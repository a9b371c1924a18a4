//! Golden, detection, comparison, apply/revert and hostile-input tests for virtnet-hostcfg.
//!
//! Goldens live in `tests/golden/<method>-<case>.txt`; regenerate them with
//! `VIRTNET_UPDATE_GOLDEN=1 cargo test -p virtnet-hostcfg`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use virtnet_hostcfg::{
    apply, describe, detect, render, revert, Addressing, BridgePlan, Detected, HostCfgError, Method,
};

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

fn fixture(method: &str, case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(method)
        .join(case)
}

fn plan(iface: &str, bridge: &str, addressing: Addressing) -> BridgePlan {
    BridgePlan {
        iface: iface.into(),
        bridge: bridge.into(),
        stp: false,
        delay: 0,
        mac: Some(MAC),
        mtu: None,
        addressing,
    }
}

/// Copies a fixture tree into a fresh temporary root.
fn copy_tree(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dst = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            fs::create_dir_all(&dst).unwrap();
            copy_tree(&entry.path(), &dst);
        } else {
            fs::copy(entry.path(), &dst).unwrap();
        }
    }
}

/// Every regular file under `root` with its bytes and mode.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (Vec<u8>, u32)>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(root, &e.path(), out);
            } else {
                let m = fs::symlink_metadata(e.path()).unwrap();
                out.insert(
                    e.path().strip_prefix(root).unwrap().to_path_buf(),
                    (
                        fs::read(e.path()).unwrap_or_default(),
                        m.permissions().mode(),
                    ),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn check_golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.txt"));
    if std::env::var_os("VIRTNET_UPDATE_GOLDEN").is_some() {
        fs::write(&path, actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing golden {}; run with VIRTNET_UPDATE_GOLDEN=1",
            path.display()
        )
    });
    assert_eq!(
        expected, actual,
        "golden {name} differs (VIRTNET_UPDATE_GOLDEN=1 regenerates it)"
    );
}

const CASES: [(Method, &str); 10] = [
    (Method::Ifupdown, "static"),
    (Method::Ifupdown, "dhcp"),
    (Method::Netplan, "static"),
    (Method::Netplan, "dhcp"),
    (Method::NetworkManager, "static"),
    (Method::NetworkManager, "dhcp"),
    (Method::Networkd, "static"),
    (Method::Networkd, "dhcp"),
    (Method::Ifcfg, "static"),
    (Method::Ifcfg, "dhcp"),
];

fn detected(root: &Path) -> Detected {
    detect(root, "eth0").unwrap().expect("eth0 is configured")
}

#[test]
fn golden_per_method() {
    for (method, case) in CASES {
        let root = fixture(method.name(), case);
        let d = detected(&root);
        assert_eq!(d.method, method, "{method} {case}");
        let mut p = plan("eth0", "br0", d.addressing.clone());
        if case == "static" {
            p.mtu = Some(9000);
        }
        let change = render(method, &p, &d, &root).unwrap();
        let mut out = format!(
            "# detected: {} {:?}\n# files: {}\n# addressing: {:?}\n\n",
            d.method,
            d.files,
            d.files.len(),
            d.addressing
        );
        out.push_str(&describe(&change));
        check_golden(&format!("{}-{case}", method.name()), &out);
    }
}

#[test]
fn detected_addressing() {
    let statics = Addressing::Static {
        addresses: vec![
            ("192.0.2.10".parse().unwrap(), 24),
            ("2001:db8::10".parse().unwrap(), 64),
        ],
        gateway: Some("192.0.2.1".parse().unwrap()),
        dns: vec!["192.0.2.53".parse().unwrap()],
    };
    for (method, case) in CASES {
        let d = detected(&fixture(method.name(), case));
        if case == "dhcp" {
            assert_eq!(d.addressing, Addressing::Dhcp, "{method}");
            continue;
        }
        match (method, &d.addressing) {
            // The ifupdown fixture also has an IPv6 name server; ifcfg has no IPv6 address.
            (Method::Ifupdown, Addressing::Static { addresses, dns, .. }) => {
                assert_eq!(addresses.len(), 2);
                assert_eq!(dns.len(), 2);
            }
            (
                Method::Ifcfg,
                Addressing::Static {
                    addresses,
                    gateway,
                    dns,
                },
            ) => {
                assert_eq!(addresses, &vec![("192.0.2.10".parse().unwrap(), 24)]);
                assert_eq!(*gateway, Some("192.0.2.1".parse().unwrap()));
                assert_eq!(dns.len(), 1);
            }
            _ => assert_eq!(d.addressing, statics, "{method}"),
        }
    }
}

#[test]
fn detection_of_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(detect(tmp.path(), "eth0").unwrap(), None);
    // Files of every method that mention other interfaces only.
    for (method, case) in CASES {
        copy_tree(&fixture(method.name(), case), tmp.path());
    }
    // (they mention eth0 too: ambiguity) — so look for an interface nobody configures.
    assert_eq!(detect(tmp.path(), "xyz7").unwrap(), None);
    // An ifupdown file not sourced by /etc/network/interfaces does not count.
    let t2 = tempfile::tempdir().unwrap();
    fs::create_dir_all(t2.path().join("etc/network/interfaces.d")).unwrap();
    fs::write(
        t2.path().join("etc/network/interfaces"),
        "auto lo\niface lo inet loopback\n",
    )
    .unwrap();
    fs::write(
        t2.path().join("etc/network/interfaces.d/eth0"),
        "iface eth0 inet dhcp\n",
    )
    .unwrap();
    assert_eq!(detect(t2.path(), "eth0").unwrap(), None);
}

#[test]
fn ambiguity_names_both_files() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixture("ifupdown", "static"), tmp.path());
    copy_tree(&fixture("ifcfg", "dhcp"), tmp.path());
    let err = detect(tmp.path(), "eth0").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, HostCfgError::Ambiguous { .. }), "{msg}");
    assert!(msg.contains("/etc/network/interfaces"), "{msg}");
    assert!(
        msg.contains("/etc/sysconfig/network-scripts/ifcfg-eth0"),
        "{msg}"
    );
}

#[test]
fn apply_then_revert_restores_every_byte() {
    for (method, case) in CASES {
        let tmp = tempfile::tempdir().unwrap();
        copy_tree(&fixture(method.name(), case), tmp.path());
        if method == Method::NetworkManager {
            for f in fs::read_dir(tmp.path().join("etc/NetworkManager/system-connections")).unwrap()
            {
                fs::set_permissions(f.unwrap().path(), fs::Permissions::from_mode(0o600)).unwrap();
            }
        }
        let before = snapshot(tmp.path());
        let d = detected(tmp.path());
        let change = render(
            method,
            &plan("eth0", "br0", d.addressing.clone()),
            &d,
            tmp.path(),
        )
        .unwrap();
        apply(tmp.path(), &change).unwrap();
        for (p, text) in &change.write {
            let real = tmp.path().join(p.strip_prefix("/").unwrap());
            assert_eq!(&fs::read_to_string(&real).unwrap(), text, "{}", p.display());
            let mode = fs::metadata(&real).unwrap().permissions().mode() & 0o777;
            let created = !change.backup.iter().any(|(b, _)| b == p);
            if created && (method == Method::NetworkManager || method == Method::Netplan) {
                assert_eq!(mode, 0o600, "{method}: {}", p.display());
            }
        }
        for p in &change.remove {
            assert!(!tmp.path().join(p.strip_prefix("/").unwrap()).exists());
        }
        // Applying twice is refused while the first is in place.
        assert!(matches!(
            apply(tmp.path(), &change),
            Err(HostCfgError::State { .. })
        ));
        revert(tmp.path(), "br0").unwrap();
        assert_eq!(before, snapshot(tmp.path()), "{method} {case}");
        assert!(matches!(
            revert(tmp.path(), "br0"),
            Err(HostCfgError::State { .. })
        ));
    }
}

#[test]
fn apply_refuses_a_file_changed_since_render() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixture("ifcfg", "static"), tmp.path());
    let d = detected(tmp.path());
    let change = render(
        Method::Ifcfg,
        &plan("eth0", "br0", d.addressing.clone()),
        &d,
        tmp.path(),
    )
    .unwrap();
    let eth0 = tmp.path().join("etc/sysconfig/network-scripts/ifcfg-eth0");
    fs::write(&eth0, "DEVICE=eth0\nBOOTPROTO=dhcp\n").unwrap();
    let before = snapshot(tmp.path());
    let err = apply(tmp.path(), &change).unwrap_err();
    assert!(matches!(err, HostCfgError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("ifcfg-eth0"));
    assert_eq!(before, snapshot(tmp.path()));
}

#[test]
fn render_from_scratch_for_each_method() {
    for method in Method::ALL {
        let tmp = tempfile::tempdir().unwrap();
        let d = Detected {
            method,
            files: vec![],
            addressing: Addressing::Dhcp,
        };
        let change = render(
            method,
            &plan("eth0", "br0", Addressing::Dhcp),
            &d,
            tmp.path(),
        )
        .unwrap();
        assert!(change.backup.is_empty(), "{method}");
        apply(tmp.path(), &change).unwrap();
        let again = detect(tmp.path(), "eth0").unwrap().expect("now configured");
        assert_eq!(again.method, method);
        assert_eq!(
            again.addressing,
            Addressing::None,
            "{method}: the NIC has no address"
        );
        let br = detect(tmp.path(), "br0")
            .unwrap()
            .expect("bridge configured");
        assert_eq!(br.addressing, Addressing::Dhcp, "{method}");
        revert(tmp.path(), "br0").unwrap();
        assert_eq!(detect(tmp.path(), "eth0").unwrap(), None, "{method}");
    }
}

#[test]
fn rendered_configuration_reads_back() {
    // After apply, the bridge has the addressing the NIC had, and the NIC none.
    for (method, case) in CASES {
        let tmp = tempfile::tempdir().unwrap();
        copy_tree(&fixture(method.name(), case), tmp.path());
        let d = detected(tmp.path());
        let change = render(
            method,
            &plan("eth0", "br0", d.addressing.clone()),
            &d,
            tmp.path(),
        )
        .unwrap();
        apply(tmp.path(), &change).unwrap();
        let nic = detected(tmp.path());
        assert_eq!(nic.addressing, Addressing::None, "{method} {case}");
        let br = detect(tmp.path(), "br0")
            .unwrap()
            .expect("bridge configured");
        assert_eq!(br.method, method);
        assert_eq!(br.addressing, d.addressing, "{method} {case}");
        // Rendering again is refused: the bridge exists.
        assert!(render(
            method,
            &plan("eth0", "br0", d.addressing.clone()),
            &nic,
            tmp.path()
        )
        .is_err());
    }
}

// --- Comparison with the hand-written shapes in tests/fixtures/examples (from shared/examples/host-config).

fn shell_vars(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

fn example(name: &str) -> String {
    fs::read_to_string(fixture("examples", name)).unwrap()
}

fn written<'a>(change: &'a virtnet_hostcfg::Change, host: &str) -> &'a str {
    &change
        .write
        .iter()
        .find(|(p, _)| p == Path::new(host))
        .unwrap_or_else(|| panic!("{host} not written: {:?}", change.write))
        .1
}

#[test]
fn ifcfg_matches_the_hand_written_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("etc/sysconfig/network-scripts");
    fs::create_dir_all(&dir).unwrap();
    // The NIC as it was before the admin bridged it.
    fs::write(
        dir.join("ifcfg-eth0"),
        "DEVICE=\"eth0\"\nNM_CONTROLLED=\"no\"\nONBOOT=\"yes\"\nTYPE=Ethernet\nBOOTPROTO=static\nIPADDR=10.0.112.39\nNETMASK=255.255.255.0\nGATEWAY=10.0.112.1\nDEFROUTE=yes\nNAME=\"System eth0\"\nHWADDR=44:37:e6:4a:62:ad\n",
    )
    .unwrap();
    let d = detected(tmp.path());
    let mut p = plan("eth0", "br0", d.addressing.clone());
    p.mac = None;
    let change = render(Method::Ifcfg, &p, &d, tmp.path()).unwrap();
    for (file, host) in [
        ("ifcfg-br0", "/etc/sysconfig/network-scripts/ifcfg-br0"),
        ("ifcfg-eth0", "/etc/sysconfig/network-scripts/ifcfg-eth0"),
    ] {
        let want = shell_vars(&example(file));
        let got = shell_vars(written(&change, host));
        for (k, v) in &want {
            assert_eq!(got.get(k), Some(v), "{file}: {k}\n{got:?}");
        }
    }
    // The bridge file: only the keys of the example plus the bridge's STP and delay.
    let got = shell_vars(written(&change, "/etc/sysconfig/network-scripts/ifcfg-br0"));
    let extra: Vec<&String> = got
        .keys()
        .filter(|k| !shell_vars(&example("ifcfg-br0")).contains_key(*k))
        .collect();
    assert_eq!(extra, ["DELAY", "NM_CONTROLLED", "STP"], "{got:?}");
}

#[test]
fn ifupdown_matches_the_hand_written_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let net = tmp.path().join("etc/network");
    fs::create_dir_all(net.join("interfaces.d")).unwrap();
    fs::write(
        net.join("interfaces"),
        "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n",
    )
    .unwrap();
    fs::write(
        net.join("interfaces.d/enp3s0"),
        "auto enp3s0\niface enp3s0 inet static\n  address 192.168.100.100\n  broadcast 192.168.100.255\n  netmask 255.255.255.0\n  gateway 192.168.100.1\n",
    )
    .unwrap();
    let d = detect(tmp.path(), "enp3s0").unwrap().unwrap();
    let mut p = plan("enp3s0", "virbr1", d.addressing.clone());
    p.mac = None;
    let change = render(Method::Ifupdown, &p, &d, tmp.path()).unwrap();
    let text = written(&change, "/etc/network/interfaces.d/enp3s0");
    let stanza = |t: &str, head: &str| -> Vec<String> {
        let mut lines: Vec<String> = t
            .lines()
            .skip_while(|l| !l.starts_with(head))
            .skip(1)
            .take_while(|l| l.starts_with(' ') || l.starts_with('\t'))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        lines.sort();
        lines
    };
    let ex = example("interfaces.d-virbr1");
    assert!(text.contains("auto virbr1\n"), "{text}");
    assert!(text.contains("iface enp3s0 inet manual\n"), "{text}");
    assert_eq!(
        stanza(text, "iface virbr1 inet static"),
        stanza(&ex, "iface virbr1 inet static"),
        "{text}"
    );
}

#[test]
fn netplan_matches_the_hand_written_shape() {
    use yaml_rust2::{Yaml, YamlLoader};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("etc/netplan");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("01-bridge.yaml"),
        "network:\n  version: 2\n  renderer: networkd\n  ethernets:\n    enp3s0:\n      addresses:\n        - 192.168.100.240/24\n      gateway4: 192.168.100.1\n      nameservers:\n          addresses: [192.168.100.1, 8.8.8.8]\n",
    )
    .unwrap();
    let d = detect(tmp.path(), "enp3s0").unwrap().unwrap();
    let mut p = plan("enp3s0", "virbr1", d.addressing.clone());
    p.mac = None;
    let change = render(Method::Netplan, &p, &d, tmp.path()).unwrap();
    let got =
        &YamlLoader::load_from_str(written(&change, "/etc/netplan/01-bridge.yaml")).unwrap()[0];
    let want = &YamlLoader::load_from_str(&example("netplan-01-bridge.yaml")).unwrap()[0];
    let (g, w) = (&got["network"], &want["network"]);
    assert_eq!(g["version"], w["version"]);
    assert_eq!(g["renderer"], w["renderer"]);
    // `dhcp4: no` in the example, `dhcp4: false` here: the same to netplan.
    assert_eq!(w["ethernets"]["enp3s0"]["dhcp4"].as_str(), Some("no"));
    assert_eq!(g["ethernets"]["enp3s0"]["dhcp4"], Yaml::Boolean(false));
    assert!(g["ethernets"]["enp3s0"]["addresses"].is_badvalue());
    let (gb, wb) = (&g["bridges"]["virbr1"], &w["bridges"]["virbr1"]);
    for k in ["interfaces", "addresses", "nameservers"] {
        assert_eq!(gb[k], wb[k], "{k}");
    }
    // The example's deprecated `gateway4` is written as netplan now documents it.
    assert_eq!(gb["routes"][0]["to"].as_str(), Some("default"));
    assert_eq!(gb["routes"][0]["via"], wb["gateway4"]);
    assert_eq!(gb["parameters"]["stp"], Yaml::Boolean(false));
    assert_eq!(gb["parameters"]["forward-delay"], Yaml::Integer(0));
}

// --- Hostile inputs.

#[test]
fn huge_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("etc/netplan");
    fs::create_dir_all(&dir).unwrap();
    let mut big =
        String::from("network:\n  version: 2\n  ethernets:\n    eth0:\n      dhcp4: true\n");
    while big.len() < 3 << 20 {
        big.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    fs::write(dir.join("99-big.yaml"), big).unwrap();
    let err = detect(tmp.path(), "eth0").unwrap_err();
    assert!(matches!(err, HostCfgError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("99-big.yaml"), "{err}");
}

#[test]
fn binary_garbage_is_refused_or_ignored_without_panic() {
    let mut garbage = Vec::new();
    let mut x: u32 = 0x1234_5678;
    for _ in 0..65536 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        garbage.push((x >> 24) as u8);
    }
    for (dir, name) in [
        ("etc/netplan", "50-x.yaml"),
        ("etc/NetworkManager/system-connections", "x.nmconnection"),
        ("etc/systemd/network", "x.network"),
        ("etc/sysconfig/network-scripts", "ifcfg-eth0"),
        ("etc/network", "interfaces"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join(dir)).unwrap();
        fs::write(tmp.path().join(dir).join(name), &garbage).unwrap();
        let err = detect(tmp.path(), "eth0").unwrap_err();
        assert!(err.to_string().contains(name), "{err}");
        // Text garbage: no panic, whatever the verdict.
        let text: String = garbage
            .iter()
            .map(|b| (b % 94 + 32) as char)
            .collect::<String>()
            .replace('=', "\n=");
        fs::write(tmp.path().join(dir).join(name), text).unwrap();
        let _ = detect(tmp.path(), "eth0");
    }
    // YAML of the wrong shape is not an error for netplan detection.
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir_all(tmp.path().join("etc/netplan")).unwrap();
    fs::write(tmp.path().join("etc/netplan/1.yaml"), "network: [1, 2]\n").unwrap();
    assert_eq!(detect(tmp.path(), "eth0").unwrap(), None);
    fs::write(
        tmp.path().join("etc/netplan/1.yaml"),
        "network: {ethernets: {eth0: &a {dhcp4: true}, eth1: *a}}\n",
    )
    .unwrap();
    let _ = detect(tmp.path(), "eth0");
}

#[test]
fn symlink_outside_root_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(
        outside.path().join("secret.yaml"),
        "network:\n  ethernets:\n    eth0:\n      dhcp4: true\n",
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("etc/netplan");
    fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.yaml"), dir.join("50-x.yaml")).unwrap();
    let err = detect(tmp.path(), "eth0").unwrap_err();
    assert!(matches!(err, HostCfgError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("outside the root"), "{err}");

    // A whole directory symlinked outside.
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir_all(tmp.path().join("etc")).unwrap();
    std::os::unix::fs::symlink(outside.path(), tmp.path().join("etc/netplan")).unwrap();
    assert!(detect(tmp.path(), "eth0").is_err());

    // apply refuses to write through a symlink that leads outside.
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixture("ifcfg", "dhcp"), tmp.path());
    let d = detected(tmp.path());
    let change = render(
        Method::Ifcfg,
        &plan("eth0", "br0", Addressing::Dhcp),
        &d,
        tmp.path(),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("ifcfg-br0"),
        tmp.path().join("etc/sysconfig/network-scripts/ifcfg-br0"),
    )
    .unwrap();
    assert!(apply(tmp.path(), &change).is_err());
    assert!(!outside.path().join("ifcfg-br0").exists());
}

#[test]
fn names_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(
        detect(tmp.path(), "../../etc"),
        Err(HostCfgError::InvalidName { .. })
    ));
    assert!(matches!(
        revert(tmp.path(), "../x"),
        Err(HostCfgError::InvalidName { .. })
    ));
}

//! What QEMU's own command line says about the NIC being connected: its `mac=` and model.
//!
//! QEMU tells its helper and scripts only the bridge or the tap's name, but the guest's MAC
//! is on QEMU's command line (`/proc/<pid>/cmdline`), which virtnet records with the port
//! (leases and `domifaddr` are found by MAC). The NIC is found through its backend when it
//! can be (`-netdev bridge,id=n0,br=virbr0` + `-device virtio-net-pci,netdev=n0,mac=…`, or
//! `-netdev tap,id=n0,ifname=tap0,…`; also `-nic bridge,br=…,mac=…`), else when exactly one
//! NIC on the command line has a `mac=`. Both `key=value,…` (with `,,` for a comma) and the
//! JSON syntax (`-device '{"driver":…}'`) are read.

use std::path::Path;

/// A network backend (`-netdev`, `-nic`, or a legacy `-net` other than `nic`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// `id=`.
    pub id: Option<String>,
    /// The type: `bridge`, `tap`, `user` …
    pub kind: String,
    /// `br=` (bridge backends; QEMU's default is `br0`).
    pub bridge: Option<String>,
    /// `ifname=` (tap backends).
    pub ifname: Option<String>,
}

/// A guest NIC (`-device` with `netdev=` or `mac=`, `-nic`, legacy `-net nic`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// The backend's id (`netdev=`); for `-nic`, the backend is in [`Nic::inline`].
    pub netdev: Option<String>,
    /// `mac=` (`macaddr=` for `-net nic`).
    pub mac: Option<String>,
    /// The device model (`virtio-net-pci`, `e1000` …).
    pub driver: Option<String>,
    /// The backend of a `-nic`, declared in the same option.
    pub inline: Option<Backend>,
}

impl Nic {
    /// The model as virtnet records it: `virtio` for the virtio-net devices, else the driver.
    pub fn model(&self) -> Option<String> {
        let d = self.driver.as_deref()?;
        let d = if d == "virtio" || d.starts_with("virtio-net") {
            "virtio"
        } else {
            d
        };
        let ok = !d.is_empty()
            && d.len() <= 32
            && d.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        ok.then(|| d.to_string())
    }
}

/// The NICs and backends of a QEMU command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QemuCmdline {
    /// Backends.
    pub backends: Vec<Backend>,
    /// NICs.
    pub nics: Vec<Nic>,
}

/// `key=value,…` (QEMU's QemuOpts syntax; `,,` is a comma) or a JSON object, as pairs. A
/// first element without `=` is given the key `implied`.
fn options(arg: &str, implied: &str) -> Vec<(String, String)> {
    let trimmed = arg.trim_start();
    if trimmed.starts_with('{') {
        let Ok(serde_json::Value::Object(map)) = serde_json::from_str(trimmed) else {
            return Vec::new();
        };
        return map
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect();
    }
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = arg.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                cur.push(',');
            } else {
                parts.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
        .into_iter()
        .enumerate()
        .filter(|(_, p)| !p.is_empty())
        .map(|(i, p)| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None if i == 0 => (implied.to_string(), p),
            None => (p, "on".to_string()),
        })
        .collect()
}

fn get(opts: &[(String, String)], key: &str) -> Option<String> {
    opts.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

fn backend(opts: &[(String, String)], kind_key: &str) -> Backend {
    Backend {
        id: get(opts, "id"),
        kind: get(opts, kind_key)
            .or_else(|| get(opts, "type"))
            .unwrap_or_default(),
        bridge: get(opts, "br"),
        ifname: get(opts, "ifname"),
    }
}

impl QemuCmdline {
    /// Reads QEMU's arguments (without the program name, or with it: it is skipped like any
    /// word that is no option of interest).
    pub fn parse(args: &[String]) -> QemuCmdline {
        let mut out = QemuCmdline::default();
        let mut words = args.iter();
        while let Some(word) = words.next() {
            let opt = word.strip_prefix("--").or_else(|| word.strip_prefix('-'));
            let Some(opt) = opt else { continue };
            if !matches!(opt, "device" | "netdev" | "nic" | "net") {
                continue;
            }
            let Some(value) = words.next() else { break };
            match opt {
                "device" => {
                    let o = options(value, "driver");
                    let (netdev, mac) = (get(&o, "netdev"), get(&o, "mac"));
                    if netdev.is_some() || mac.is_some() {
                        out.nics.push(Nic {
                            netdev,
                            mac,
                            driver: get(&o, "driver"),
                            inline: None,
                        });
                    }
                }
                "netdev" => out.backends.push(backend(&options(value, "type"), "type")),
                "nic" => {
                    let o = options(value, "type");
                    out.nics.push(Nic {
                        netdev: None,
                        mac: get(&o, "mac"),
                        driver: get(&o, "model"),
                        inline: Some(backend(&o, "type")),
                    });
                }
                _ => {
                    let o = options(value, "type");
                    if get(&o, "type").as_deref() == Some("nic") {
                        out.nics.push(Nic {
                            netdev: get(&o, "netdev"),
                            mac: get(&o, "macaddr"),
                            driver: get(&o, "model"),
                            inline: None,
                        });
                    } else {
                        out.backends.push(backend(&o, "type"));
                    }
                }
            }
        }
        out
    }

    /// The NIC whose backend `is_ours` picks, when exactly one NIC's backend is picked; else,
    /// when no backend is picked at all, the only NIC with a `mac=` if there is exactly one.
    pub fn our_nic(&self, is_ours: impl Fn(&Backend) -> bool) -> Option<&Nic> {
        let ids: Vec<&str> = self
            .backends
            .iter()
            .filter(|b| is_ours(b))
            .filter_map(|b| b.id.as_deref())
            .collect();
        let matched: Vec<&Nic> = self
            .nics
            .iter()
            .filter(|n| match (&n.inline, &n.netdev) {
                (Some(b), _) => is_ours(b),
                (None, Some(id)) => ids.contains(&id.as_str()),
                (None, None) => false,
            })
            .collect();
        match matched.len() {
            1 => Some(matched[0]),
            0 => {
                let with_mac: Vec<&Nic> = self.nics.iter().filter(|n| n.mac.is_some()).collect();
                (with_mac.len() == 1).then(|| with_mac[0])
            }
            _ => None,
        }
    }
}

/// Picks bridge backends on `bridge` (QEMU's default bridge is `br0`).
pub fn on_bridge(bridge: &str) -> impl Fn(&Backend) -> bool + '_ {
    move |b| b.kind == "bridge" && b.bridge.as_deref().unwrap_or("br0") == bridge
}

/// Picks tap backends named `tap`.
pub fn on_tap(tap: &str) -> impl Fn(&Backend) -> bool + '_ {
    move |b| b.kind == "tap" && b.ifname.as_deref() == Some(tap)
}

/// The arguments of process `pid`, empty when they cannot be read.
pub fn process_args(pid: u32) -> Vec<String> {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return Vec::new();
    };
    raw.split(|b| *b == 0)
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .skip_while(String::is_empty)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

/// The parent of process `pid`, from `/proc/<pid>/stat`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so cut at the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The QEMU process that ran us: the nearest of our parent and its ancestors (four levels,
/// for a helper given as a shell command or a script wrapped in another) whose program is
/// named `qemu…`; the parent itself when none is. Returns its pid and arguments.
pub fn find_qemu() -> (u32, Vec<String>) {
    let ppid = std::os::unix::process::parent_id();
    let mut pid = ppid;
    for _ in 0..4 {
        let args = process_args(pid);
        let is_qemu = args.first().is_some_and(|a0| {
            Path::new(a0)
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("qemu"))
        });
        if is_qemu {
            return (pid, args);
        }
        match parent_of(pid) {
            Some(p) if p > 1 => pid = p,
            _ => break,
        }
    }
    (ppid, process_args(ppid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &[&str]) -> QemuCmdline {
        QemuCmdline::parse(&line.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn mac_on_bridge(line: &[&str], br: &str) -> Option<String> {
        parse(line)
            .our_nic(on_bridge(br))
            .and_then(|n| n.mac.clone())
    }

    #[test]
    fn options_split_on_single_commas_and_imply_the_first_key() {
        assert_eq!(
            options("tap,id=n0,ifname=a,,b,vhost", "type"),
            vec![
                ("type".into(), "tap".into()),
                ("id".into(), "n0".into()),
                ("ifname".into(), "a,b".into()),
                ("vhost".into(), "on".into()),
            ]
        );
        assert_eq!(
            options(
                r#"{"driver":"virtio-net-pci","netdev":"n0","mac":"52:54:00:00:00:01","addr":3}"#,
                "driver"
            ),
            vec![
                ("addr".into(), "3".into()),
                ("driver".into(), "virtio-net-pci".into()),
                ("mac".into(), "52:54:00:00:00:01".into()),
                ("netdev".into(), "n0".into()),
            ]
        );
        assert!(options("{not json", "driver").is_empty());
    }

    #[test]
    fn the_nic_is_found_through_its_bridge_backend() {
        let line = [
            "qemu-system-x86_64",
            "-m",
            "256",
            "-netdev",
            "bridge,id=n0,br=virbr0,helper=/usr/libexec/virtnet-bridge-helper",
            "-device",
            "virtio-net-pci,netdev=n0,mac=52:54:00:aa:bb:01",
            "-netdev",
            "bridge,id=n1,br=br-lab",
            "--device",
            "e1000,netdev=n1,mac=52:54:00:aa:bb:02",
        ];
        assert_eq!(
            mac_on_bridge(&line, "virbr0").as_deref(),
            Some("52:54:00:aa:bb:01")
        );
        let nic = parse(&line)
            .our_nic(on_bridge("br-lab"))
            .cloned()
            .expect("found");
        assert_eq!(nic.mac.as_deref(), Some("52:54:00:aa:bb:02"));
        assert_eq!(nic.model().as_deref(), Some("e1000"));
        // QEMU's default bridge is br0.
        let line = [
            "qemu",
            "-netdev",
            "bridge,id=x",
            "-device",
            "virtio-net-pci,netdev=x,mac=52:54:00:00:00:09",
        ];
        assert_eq!(
            mac_on_bridge(&line, "br0").as_deref(),
            Some("52:54:00:00:00:09")
        );
    }

    #[test]
    fn the_nic_is_found_through_its_tap_backend_and_nic_and_json() {
        let line = [
            "qemu",
            "-netdev",
            r#"{"type":"tap","id":"t0","ifname":"tap7","script":"/usr/libexec/virtnet-ifup"}"#,
            "-device",
            r#"{"driver":"virtio-net-pci","netdev":"t0","mac":"52:54:00:00:00:07"}"#,
            "-nic",
            "bridge,br=virbr0,mac=52:54:00:00:00:08,model=virtio",
        ];
        let c = parse(&line);
        let nic = c.our_nic(on_tap("tap7")).expect("tap7's NIC");
        assert_eq!(nic.mac.as_deref(), Some("52:54:00:00:00:07"));
        assert_eq!(nic.model().as_deref(), Some("virtio"));
        let nic = c.our_nic(on_bridge("virbr0")).expect("the -nic");
        assert_eq!(nic.mac.as_deref(), Some("52:54:00:00:00:08"));
        assert_eq!(nic.model().as_deref(), Some("virtio"));
    }

    #[test]
    fn without_a_matching_backend_only_a_single_mac_counts() {
        // One NIC with a MAC, on a backend that does not say its bridge here (-net hub).
        let one = [
            "qemu",
            "-net",
            "nic,macaddr=52:54:00:00:00:05,model=rtl8139",
            "-net",
            "user",
        ];
        assert_eq!(
            mac_on_bridge(&one, "virbr0").as_deref(),
            Some("52:54:00:00:00:05")
        );
        let two = [
            "qemu",
            "-device",
            "e1000,mac=52:54:00:00:00:01",
            "-device",
            "e1000,mac=52:54:00:00:00:02",
        ];
        assert_eq!(mac_on_bridge(&two, "virbr0"), None);
        // Our NIC has no mac=: another NIC's MAC is not taken.
        let ours_bare = [
            "qemu",
            "-netdev",
            "bridge,id=n0,br=virbr0",
            "-device",
            "virtio-net-pci,netdev=n0",
            "-netdev",
            "user,id=u",
            "-device",
            "e1000,netdev=u,mac=52:54:00:00:00:03",
        ];
        assert_eq!(mac_on_bridge(&ours_bare, "virbr0"), None);
        // Two NICs on the same bridge: ambiguous.
        let both = [
            "qemu",
            "-netdev",
            "bridge,id=a,br=virbr0",
            "-device",
            "virtio-net-pci,netdev=a,mac=52:54:00:00:00:01",
            "-netdev",
            "bridge,id=b,br=virbr0",
            "-device",
            "virtio-net-pci,netdev=b,mac=52:54:00:00:00:02",
        ];
        assert_eq!(mac_on_bridge(&both, "virbr0"), None);
        assert_eq!(mac_on_bridge(&["qemu"], "virbr0"), None);
        assert_eq!(mac_on_bridge(&["qemu", "-device"], "virbr0"), None);
    }

    #[test]
    fn models_are_recorded_sanely() {
        let nic = |d: &str| Nic {
            netdev: None,
            mac: None,
            driver: Some(d.to_string()),
            inline: None,
        };
        assert_eq!(
            nic("virtio-net-pci-non-transitional").model().as_deref(),
            Some("virtio")
        );
        assert_eq!(nic("rtl8139").model().as_deref(), Some("rtl8139"));
        assert_eq!(nic("bad model").model(), None);
    }

    #[test]
    fn our_own_process_is_readable() {
        let args = process_args(std::process::id());
        assert!(!args.is_empty());
        assert!(parent_of(std::process::id()).is_some());
    }
}

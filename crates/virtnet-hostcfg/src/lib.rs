//! Reads and rewrites the host's own network configuration so that a NIC moved onto a bridge by
//! `virtnet iface-bridge` is still on that bridge after a reboot.
//!
//! Five configuration methods are understood: Debian's ifupdown (`/etc/network/interfaces`),
//! netplan (`/etc/netplan/*.yaml`), NetworkManager keyfiles
//! (`/etc/NetworkManager/system-connections/*.nmconnection`), systemd-networkd
//! (`/etc/systemd/network/*.network`) and RHEL's initscripts
//! (`/etc/sysconfig/network-scripts/ifcfg-*`).
//!
//! The crate is pure: it never touches the network, and the only I/O it does is reading and
//! writing files under a root directory handed to it (`/` in production, a temporary directory in
//! tests). Every path it returns or accepts in [`Detected`] and [`Change`] is a *host* path (for
//! example `/etc/network/interfaces`), interpreted relative to that root.
//!
//! The flow is [`detect`] → [`render`] → [`describe`] (for `--dry-run`) or [`apply`], and
//! [`revert`] for `iface-unbridge`.

#![warn(missing_docs)]

mod fsutil;
mod ifcfg;
mod ifupdown;
mod ini;
mod netplan;
mod networkd;
mod nm;
mod store;
mod yaml;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

pub use store::{apply, revert};

/// The directories under which [`apply`] and [`revert`] write, create or remove files (host
/// paths): each method's configuration directory, then where the originals are saved. A
/// sandbox around the daemon (systemd's `ReadWritePaths=`) must leave them writable. ifupdown
/// also rewrites a file that `/etc/network/interfaces` `source`s from another directory, if
/// the NIC's stanza is there: such a host adds that directory itself.
pub const WRITTEN_DIRS: [&str; 6] = [
    ifupdown::DIR,
    netplan::DIR,
    nm::DIR,
    networkd::DIR,
    ifcfg::DIR,
    store::STATE,
];

/// How a host configures its network interfaces at boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// Debian's ifupdown: `/etc/network/interfaces` and the files it `source`s.
    Ifupdown,
    /// netplan: `/etc/netplan/*.yaml`.
    Netplan,
    /// NetworkManager keyfiles: `/etc/NetworkManager/system-connections/*.nmconnection`.
    NetworkManager,
    /// systemd-networkd: `/etc/systemd/network/*.network` and `*.netdev`.
    Networkd,
    /// RHEL initscripts (and NetworkManager's ifcfg-rh plugin): `/etc/sysconfig/network-scripts/ifcfg-*`.
    Ifcfg,
}

impl Method {
    /// A short stable name (`ifupdown`, `netplan`, `networkmanager`, `networkd`, `ifcfg`), also the
    /// name of the fixtures directory in the tests.
    pub fn name(self) -> &'static str {
        match self {
            Method::Ifupdown => "ifupdown",
            Method::Netplan => "netplan",
            Method::NetworkManager => "networkmanager",
            Method::Networkd => "networkd",
            Method::Ifcfg => "ifcfg",
        }
    }

    /// Every method, in the order [`detect`] looks at them.
    pub const ALL: [Method; 5] = [
        Method::Ifupdown,
        Method::Netplan,
        Method::NetworkManager,
        Method::Networkd,
        Method::Ifcfg,
    ];
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How an interface gets its IP configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addressing {
    /// DHCPv4 (IPv6, when configured, is carried over as the host had it: SLAAC/DHCPv6 settings
    /// move to the bridge verbatim where the format allows it).
    Dhcp,
    /// Fixed addresses.
    Static {
        /// Addresses with their prefix length, IPv4 and IPv6 mixed, in the order configured.
        addresses: Vec<(IpAddr, u8)>,
        /// The default gateway, if any.
        gateway: Option<IpAddr>,
        /// Name servers, in order.
        dns: Vec<IpAddr>,
    },
    /// No address at all (the interface is only brought up).
    None,
}

/// What [`detect`] found: the method that configures an interface and the files that mention it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detected {
    /// The configuration method.
    pub method: Method,
    /// The files (host paths) that mention the interface, in the order the method reads them.
    pub files: Vec<PathBuf>,
    /// The addressing those files give the interface.
    pub addressing: Addressing,
}

/// What to make persistent: `iface` enslaved to `bridge`, with the NIC's addressing on the bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgePlan {
    /// The NIC (or bond, or VLAN) that becomes a bridge port.
    pub iface: String,
    /// The bridge to create.
    pub bridge: String,
    /// Spanning tree on or off.
    pub stp: bool,
    /// Forward delay in seconds.
    pub delay: u32,
    /// The MAC address for the bridge: the NIC's, so that a DHCP server keyed on the MAC hands out
    /// the same address to the bridge.
    pub mac: Option<[u8; 6]>,
    /// The MTU for the NIC (the bridge follows its only port).
    pub mtu: Option<u32>,
    /// The addressing the bridge takes over.
    pub addressing: Addressing,
}

/// A set of file changes: what [`render`] produces, [`describe`] prints and [`apply`] performs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// The bridge this change is for: names the backup directory of [`apply`] and [`revert`].
    pub bridge: String,
    /// Files to write (host path, full new contents), created or replaced.
    pub write: Vec<(PathBuf, String)>,
    /// Files to remove (host paths).
    pub remove: Vec<PathBuf>,
    /// The original contents of every existing file that is replaced or removed, as read at render
    /// time. [`apply`] refuses to go on when a file changed since.
    pub backup: Vec<(PathBuf, String)>,
}

/// Errors of this crate; each names the file (or the interface) concerned and the reason.
#[derive(Debug, thiserror::Error)]
pub enum HostCfgError {
    /// Reading, writing or listing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file (real path under the root).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be understood.
    #[error("{path}{}: {reason}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Parse {
        /// The file (host path).
        path: PathBuf,
        /// The 1-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
    /// A file was refused: too large, not text, a symlink leading outside the root, not a regular file.
    #[error("{path}: refused: {reason}")]
    Refused {
        /// The file (host path).
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Two methods both configure the interface.
    #[error("{iface} is configured by both {first_method} ({first}) and {second_method} ({second}); remove one before bridging")]
    Ambiguous {
        /// The interface.
        iface: String,
        /// The first method.
        first_method: Method,
        /// A file of the first method that mentions the interface.
        first: PathBuf,
        /// The second method.
        second_method: Method,
        /// A file of the second method that mentions the interface.
        second: PathBuf,
    },
    /// The configuration cannot be rewritten as asked.
    #[error("{path}: cannot bridge: {reason}")]
    Unsupported {
        /// The file concerned (host path).
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An interface or bridge name that cannot be used.
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A file changed between [`render`] and [`apply`], or a file to create already exists.
    #[error("{path}: changed since the change was rendered: {reason}")]
    Conflict {
        /// The file (host path).
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// [`apply`] was called for a bridge that already has backups, or [`revert`] for one that has none.
    #[error("{dir}: {reason}")]
    State {
        /// The backup directory (real path).
        dir: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Which method configures `iface` on the host whose filesystem root is `root` (tests pass a
/// temporary directory; production `/`).
///
/// Looks at `/etc/network/interfaces` and what it `source`s / `source-directory`s (stanzas
/// `iface`, `auto`, `allow-*` naming the interface); `/etc/netplan/*.yaml` with the interface
/// under `ethernets` (or `bonds`, `vlans`, also by `set-name`); NetworkManager keyfiles with
/// `interface-name=`; networkd `.network` files whose `[Match] Name=` matches the interface
/// (globs included); `ifcfg-<iface>` or any `ifcfg-*` with `DEVICE=<iface>`.
///
/// Returns `None` when nothing mentions the interface (the daemon then restores the bridge itself
/// at boot), and [`HostCfgError::Ambiguous`] naming a file of each when two methods do.
pub fn detect(root: &Path, iface: &str) -> Result<Option<Detected>, HostCfgError> {
    check_name(iface)?;
    let mut found: Vec<Detected> = Vec::new();
    for method in Method::ALL {
        let hit = match method {
            Method::Ifupdown => ifupdown::detect(root, iface)?,
            Method::Netplan => netplan::detect(root, iface)?,
            Method::NetworkManager => nm::detect(root, iface)?,
            Method::Networkd => networkd::detect(root, iface)?,
            Method::Ifcfg => ifcfg::detect(root, iface)?,
        };
        if let Some((files, addressing)) = hit {
            if !files.is_empty() {
                found.push(Detected {
                    method,
                    files,
                    addressing,
                });
            }
        }
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(HostCfgError::Ambiguous {
            iface: iface.to_string(),
            first_method: found[0].method,
            first: found[0].files[0].clone(),
            second_method: found[1].method,
            second: found[1].files[0].clone(),
        }),
    }
}

/// The files to write (full new contents) and to remove so that, after a reboot, `plan.bridge`
/// exists with `plan.iface` enslaved and the NIC's addressing on the bridge.
///
/// `detected` is what [`detect`] returned for `plan.iface`; its `files` may be empty to write a
/// configuration from scratch for `method` (a host where nothing mentioned the NIC). `method` must
/// be `detected.method` otherwise. The files are read again under `root`; their current contents
/// go into [`Change::backup`].
pub fn render(
    method: Method,
    plan: &BridgePlan,
    detected: &Detected,
    root: &Path,
) -> Result<Change, HostCfgError> {
    check_name(&plan.iface)?;
    check_name(&plan.bridge)?;
    if plan.iface == plan.bridge {
        return Err(HostCfgError::InvalidName {
            name: plan.bridge.clone(),
            reason: "the bridge and the interface have the same name".into(),
        });
    }
    if method != detected.method && !detected.files.is_empty() {
        return Err(HostCfgError::Unsupported {
            path: detected.files[0].clone(),
            reason: format!(
                "{} configures {}, not {}",
                detected.method, plan.iface, method
            ),
        });
    }
    if let Addressing::Static { addresses, .. } = &plan.addressing {
        for (addr, prefix) in addresses {
            let max = if addr.is_ipv4() { 32 } else { 128 };
            if *prefix > max {
                return Err(HostCfgError::InvalidName {
                    name: format!("{addr}/{prefix}"),
                    reason: format!("prefix longer than {max}"),
                });
            }
        }
    }
    let mut change = match method {
        Method::Ifupdown => ifupdown::render(plan, detected, root)?,
        Method::Netplan => netplan::render(plan, detected, root)?,
        Method::NetworkManager => nm::render(plan, detected, root)?,
        Method::Networkd => networkd::render(plan, detected, root)?,
        Method::Ifcfg => ifcfg::render(plan, detected, root)?,
    };
    change.bridge = plan.bridge.clone();
    change.write.sort_by(|a, b| a.0.cmp(&b.0));
    change.remove.sort();
    change.backup.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(change)
}

/// What `--dry-run` prints: each file to write with a header line `# <path>` followed by its new
/// contents, then a `# remove <path>` line per file to remove.
pub fn describe(change: &Change) -> String {
    let mut out = String::new();
    for (path, text) in &change.write {
        out.push_str(&format!("# {}\n", path.display()));
        out.push_str(text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
        out.push('\n');
    }
    for path in &change.remove {
        out.push_str(&format!("# remove {}\n", path.display()));
    }
    out
}

/// Refuses names that cannot be Linux interface names or would be unsafe in a file name.
pub(crate) fn check_name(name: &str) -> Result<(), HostCfgError> {
    let bad = |reason: &str| {
        Err(HostCfgError::InvalidName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    // virtnet's one interface-name rule first (Linux's, nftables-safe)…
    if let Err(reason) = virtnet_ifname::check(name) {
        return bad(&reason.to_string());
    }
    // …then what the configuration files this crate writes can hold unquoted (ifupdown reads
    // `#` as a comment, netplan YAML and NetworkManager keyfiles have their own syntax): a
    // narrower character set, not another copy of the rule.
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.@+".contains(&b))
    {
        return bad("only letters, digits and - _ . @ + are accepted");
    }
    Ok(())
}

/// `aa:bb:cc:dd:ee:ff`, lower case (the model's MAC address form).
pub(crate) fn fmt_mac(mac: &[u8; 6]) -> String {
    virtnet_model::MacAddr(*mac).to_string()
}

/// The dotted netmask of an IPv4 prefix length (the model's prefix arithmetic).
pub(crate) fn netmask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(virtnet_model::subnet::prefix_mask_v4(prefix))
}

/// The prefix length of a dotted IPv4 netmask, if contiguous.
pub(crate) fn mask_to_prefix(mask: &str) -> Option<u8> {
    let m: Ipv4Addr = mask.trim().parse().ok()?;
    let bits = u32::from(m);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// The broadcast address of an IPv4 network.
pub(crate) fn broadcast(addr: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    virtnet_model::Subnet::ipv4_ends(addr, prefix).1
}

/// Parses `addr/prefix` (or a bare address: /32 or /128).
pub(crate) fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let s = s.trim();
    match s.split_once('/') {
        Some((a, p)) => {
            let addr: IpAddr = a.trim().parse().ok()?;
            let prefix: u8 = p.trim().parse().ok()?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            (prefix <= max).then_some((addr, prefix))
        }
        None => {
            let addr: IpAddr = s.parse().ok()?;
            Some((addr, if addr.is_ipv4() { 32 } else { 128 }))
        }
    }
}

/// Builds an [`Addressing::Static`] or `None` from what a parser collected.
pub(crate) fn static_or_none(
    addresses: Vec<(IpAddr, u8)>,
    gateway: Option<IpAddr>,
    dns: Vec<IpAddr>,
) -> Addressing {
    if addresses.is_empty() {
        Addressing::None
    } else {
        Addressing::Static {
            addresses,
            gateway,
            dns,
        }
    }
}

/// A deterministic UUID (version 4 layout) derived from a string, so rendering is reproducible.
pub(crate) fn stable_uuid(seed: &str) -> String {
    fn fnv(seed: &str, basis: u64) -> u64 {
        let mut h = basis;
        for b in seed.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }
    let hi = fnv(seed, 0xcbf2_9ce4_8422_2325);
    let lo = fnv(seed, 0x8422_2325_cbf2_9ce4 ^ hi);
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&hi.to_be_bytes());
    b[8..].copy_from_slice(&lo.to_be_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(netmask(24).to_string(), "255.255.255.0");
        assert_eq!(netmask(0).to_string(), "0.0.0.0");
        assert_eq!(netmask(32).to_string(), "255.255.255.255");
        assert_eq!(mask_to_prefix("255.255.255.0"), Some(24));
        assert_eq!(mask_to_prefix("255.0.255.0"), None);
        assert_eq!(mask_to_prefix("255.255.255.255"), Some(32));
        assert_eq!(
            broadcast("10.0.112.39".parse().unwrap(), 24).to_string(),
            "10.0.112.255"
        );
    }

    #[test]
    fn names() {
        assert!(check_name("br0").is_ok());
        assert!(check_name("../etc").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name("").is_err());
        assert!(check_name("abcdefghijklmnop").is_err());
        // Issue 12: what the shared rule refuses is refused here too.
        for bad in ["br*", "br\"0", "br:0", "..", "a b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn uuid_is_stable_and_well_formed() {
        let a = stable_uuid("br0");
        assert_eq!(a, stable_uuid("br0"));
        assert_ne!(a, stable_uuid("br1"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}

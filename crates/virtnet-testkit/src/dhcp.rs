//! DHCP clients in guest namespaces: busybox `udhcpc` with an event script that applies the
//! lease to the guest's interface only; and dnsmasq as a LAN's DHCP server or a DNS server.

use std::path::{Path, PathBuf};

use crate::topology::Guest;
use crate::{Netns, NsChild};

/// Writes `text` to `path` as an executable (0755) script.
pub fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write script {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod script {}: {e}", path.display()));
}

/// ISC `dhclient -6`'s event script for a guest namespace: applies a bound address to the
/// interface (nothing else), removes it when released or expired, and logs each event to
/// `<script>.log` as `REASON addr=ADDR dns=SERVERS search=DOMAINS`.
pub const DHCLIENT6_SCRIPT: &str = "#!/bin/sh\n\
echo \"$reason addr=$new_ip6_address dns=$new_dhcp6_name_servers search=$new_dhcp6_domain_search\" >> \"$0.log\"\n\
case \"$reason\" in\n\
  BOUND6|RENEW6|REBIND6|REBOOT6)\n\
    [ -n \"$new_ip6_address\" ] && ip -6 addr replace \"$new_ip6_address/128\" dev \"$interface\" nodad ;;\n\
  RELEASE6|EXPIRE6|STOP6)\n\
    [ -n \"$old_ip6_address\" ] && ip -6 addr del \"$old_ip6_address/128\" dev \"$interface\" ;;\n\
esac\n\
exit 0\n";

/// A udhcpc event script in `dir` that applies the lease to the interface (and nothing else:
/// no resolv.conf, no routes outside the guest's namespace), and logs each lease with its
/// options to `<script>.log`.
pub fn udhcpc_script(dir: &Path) -> PathBuf {
    let path = dir.join("udhcpc.sh");
    write_script(
        &path,
        "#!/bin/sh\ncase \"$1\" in\n  bound|renew)\n    ip addr flush dev \"$interface\"\n    \
         ip addr add \"$ip/$mask\" dev \"$interface\"\n    \
         echo \"$1 $ip $mask router=$router dns=$dns domain=$domain hostname=$hostname lease=$lease mtu=$mtu boot_file=$boot_file siaddr=$siaddr\" >> \"$0.log\"\n    ;;\n  \
         deconfig) ip addr flush dev \"$interface\" ;;\nesac\nexit 0\n",
    );
    path
}

impl Guest {
    /// Runs busybox udhcpc once on `eth0` with the event `script` (see [`udhcpc_script`]),
    /// sending `hostname`: a lease is obtained, then udhcpc exits without releasing it.
    /// Returns udhcpc's output; panics when no lease is obtained.
    pub fn udhcpc(&self, script: &Path, hostname: &str) -> String {
        self.ns().run_ok(udhcpc_args(script, Some(hostname), 5))
    }

    /// Like [`Guest::udhcpc`] with `tries` discovers and no hostname, for a test that expects
    /// no lease as much as one: true when a lease was obtained.
    pub fn try_udhcpc(&self, script: &Path, tries: u32) -> bool {
        self.ns()
            .exec(udhcpc_args(script, None, tries))
            .status
            .success()
    }
}

/// busybox udhcpc's arguments for one lease on `eth0` (`tries` discovers one second apart),
/// with the event `script`, sending `hostname` when given.
fn udhcpc_args(script: &Path, hostname: Option<&str>, tries: u32) -> Vec<String> {
    let mut args: Vec<String> = ["busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t"]
        .map(String::from)
        .to_vec();
    args.extend([tries.to_string(), "-T".into(), "1".into()]);
    if let Some(hostname) = hostname {
        args.extend(["-x".into(), format!("hostname:{hostname}")]);
    }
    args.extend(["-s".into(), script.to_string_lossy().into_owned()]);
    args
}

/// A DHCP-only dnsmasq on `iface` of `ns` (a LAN's server, not virtnet's): leases from `range`
/// (`first,last,netmask,lease-time`) with `router` as option 3, its lease file at `leases`.
/// It is stopped when the returned child is dropped.
pub fn lan_dhcp_server(
    ns: &Netns,
    iface: &str,
    range: &str,
    router: &str,
    leases: &Path,
) -> NsChild {
    ns.spawn([
        "dnsmasq",
        "--no-daemon",
        "--conf-file=/dev/null",
        "--port=0",
        &format!("--interface={iface}"),
        "--bind-interfaces",
        &format!("--dhcp-range={range}"),
        &format!("--dhcp-option=3,{router}"),
        &format!("--dhcp-leasefile={}", leases.display()),
        "--pid-file=",
    ])
}

/// A dnsmasq DNS server in `ns` on `listen` only, answering from its `extra` options (no
/// resolv.conf, no hosts file). It is stopped when the returned child is dropped.
pub fn dns_server(ns: &Netns, listen: &str, extra: &[&str]) -> NsChild {
    let listen = format!("--listen-address={listen}");
    let mut args = vec![
        "dnsmasq",
        "--no-daemon",
        "--no-resolv",
        "--no-hosts",
        "--conf-file=/dev/null",
        "--bind-interfaces",
        &listen,
    ];
    args.extend_from_slice(extra);
    args.extend(["--pid-file=", "--user=root"]);
    ns.spawn(args)
}

//! Who the port is for: the guest ("domain") and its NIC's MAC address and model.
//!
//! - domain: `$VIRTNET_DOMAIN`, else `qemu-<pid of QEMU>`;
//! - MAC: `$VIRTNET_MAC`, else the `mac=` of our NIC on QEMU's command line (see
//!   [`crate::cmdline`]), else a random `52:54:00:xx:xx:xx`. A random MAC is only a label:
//!   QEMU gives a NIC without `mac=` its own default (`52:54:00:12:34:56` for the first), so
//!   give QEMU a `mac=` (or `$VIRTNET_MAC`) when leases and `domifaddr` should find the guest;
//! - model: the NIC's device (`virtio` for virtio-net), when the NIC was found.
//!
//! Both variables are read even by the setuid helper: they only label the caller's own port,
//! and virtnetd checks them as it checks any client's request.

use virtnet_model::MacAddr;

use crate::cmdline::{find_qemu, Backend, QemuCmdline};
use crate::Error;

/// The guest's name.
pub const DOMAIN_ENV: &str = "VIRTNET_DOMAIN";
/// The guest NIC's MAC address.
pub const MAC_ENV: &str = "VIRTNET_MAC";
/// Longest domain name accepted from the environment.
pub const MAX_DOMAIN: usize = 64;

/// Where the MAC came from (for the helper's messages and the tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacSource {
    /// `$VIRTNET_MAC`.
    Env,
    /// QEMU's command line.
    Cmdline,
    /// Made up.
    Random,
}

/// The port's labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The guest's name.
    pub domain: String,
    /// The guest NIC's MAC (`aa:bb:cc:dd:ee:ff`).
    pub mac: String,
    /// Where the MAC came from.
    pub mac_source: MacSource,
    /// The NIC model, when known.
    pub model: Option<String>,
}

/// Checks a domain name given in the environment: 1 to 64 printable characters.
pub fn check_domain(domain: &str) -> Result<(), Error> {
    if domain.is_empty()
        || domain.chars().count() > MAX_DOMAIN
        || domain.chars().any(|c| c.is_control())
    {
        return Err(Error::new(format!(
            "${DOMAIN_ENV}: `{}' is not 1 to {MAX_DOMAIN} printable characters",
            domain.escape_debug()
        )));
    }
    Ok(())
}

/// Parses a guest MAC: a unicast address, written back in lower case.
pub fn check_mac(what: &str, mac: &str) -> Result<String, Error> {
    let parsed: MacAddr = mac
        .trim()
        .parse()
        .map_err(|_| Error::new(format!("{what}: `{mac}' is not a MAC address")))?;
    if parsed.0[0] & 1 == 1 {
        return Err(Error::new(format!(
            "{what}: `{mac}' is a multicast address"
        )));
    }
    Ok(parsed.to_string())
}

/// A random `52:54:00:xx:xx:xx` (QEMU's prefix), from the kernel's random source.
pub fn random_mac() -> Result<String, Error> {
    let mut bytes = [0u8; 3];
    // SAFETY: getrandom writes at most bytes.len() bytes into the live buffer.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        return Err(Error::new(format!(
            "getrandom: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(MacAddr([0x52, 0x54, 0x00, bytes[0], bytes[1], bytes[2]]).to_string())
}

/// The labels from the environment and QEMU's command line; `is_ours` picks our NIC's
/// backend (see [`crate::cmdline::on_bridge`], [`crate::cmdline::on_tap`]).
pub fn identify(is_ours: impl Fn(&Backend) -> bool) -> Result<Identity, Error> {
    let (qemu_pid, args) = find_qemu();
    let cmdline = QemuCmdline::parse(&args);
    let nic = cmdline.our_nic(is_ours);
    let domain = match std::env::var(DOMAIN_ENV) {
        Ok(d) if !d.is_empty() => {
            check_domain(&d)?;
            d
        }
        _ => format!("qemu-{qemu_pid}"),
    };
    let from_cmdline = nic.and_then(|n| n.mac.as_deref());
    let (mac, mac_source) = match std::env::var(MAC_ENV) {
        Ok(m) if !m.is_empty() => (check_mac(&format!("${MAC_ENV}"), &m)?, MacSource::Env),
        _ => match from_cmdline {
            Some(m) => (check_mac("QEMU's mac=", m)?, MacSource::Cmdline),
            None => (random_mac()?, MacSource::Random),
        },
    };
    Ok(Identity {
        domain,
        mac,
        mac_source,
        model: nic.and_then(|n| n.model()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_from_the_environment_are_checked() {
        assert!(check_domain("vm1").is_ok());
        assert!(check_domain("ünïcode vm").is_ok());
        assert!(check_domain("").is_err());
        assert!(check_domain("a\nb").is_err());
        assert!(check_domain(&"x".repeat(65)).is_err());
    }

    #[test]
    fn macs_are_checked_and_normalised() {
        assert_eq!(
            check_mac("m", "52:54:00:AB:cd:01").ok().as_deref(),
            Some("52:54:00:ab:cd:01")
        );
        assert!(check_mac("m", "01:00:5e:00:00:01").is_err());
        assert!(check_mac("m", "nonsense").is_err());
    }

    #[test]
    fn random_macs_use_qemus_prefix() {
        let a = random_mac().expect("random");
        assert!(a.starts_with("52:54:00:"), "{a}");
        assert!(check_mac("m", &a).is_ok());
    }
}

//! `virtnet-bridge-helper`: QEMU's `-netdev bridge,br=BRIDGE,helper=…` protocol, with the tap
//! made by virtnetd as a port instead of by the helper itself.
//!
//! QEMU creates a unix socket pair, runs `HELPER --use-vnet --fd=N --br=BRIDGE` (its own
//! order; a helper given as a command with spaces runs through `/bin/sh -c`, and then
//! `--br=` is added only when the command has none), receives one descriptor sent with
//! `SCM_RIGHTS` alongside one data byte, and waits for the helper: an exit status other than 0
//! fails the netdev ("bridge helper failed"), whatever was sent. The helper's stderr is QEMU's.
//!
//! The steps, in order:
//!
//! 1. check that `--fd` is a socket, read the ACL as the calling user and refuse a bridge it
//!    does not allow ("access denied by acl file", as QEMU's helper says);
//! 2. open `/dev/net/tun` (still privileged: the device node is often root's only);
//! 3. find the network whose bridge it is and ask virtnetd for a helper port: domain, MAC and
//!    model from [`crate::identity`], owned by the calling user's uid alone (no group, so
//!    that no one else can attach to it before the helper does), `vnet_hdr` when QEMU asked
//!    for it and the kernel has it. virtnetd refuses a "bridge" that is not one (a tap on no
//!    bridge would be routed by the host outside every firewall rule) and a user past the
//!    per-user limit of helper ports;
//! 4. attach the descriptor to the port's tap by name (`TUNSETIFF`, `IFF_TAP | IFF_NO_PI`
//!    (`| IFF_VNET_HDR`)) as the calling user, so the kernel checks that the tap is theirs;
//! 5. clear the tap's persistence and send the descriptor; any failure after the port was made
//!    deletes the port again.
//!
//! See the crate documentation for why the tap is not persistent.

use std::os::fd::AsRawFd;
use std::path::PathBuf;

use virtnet_api::{Port, PortRequest};

use crate::acl::Acl;
use crate::cmdline::on_bridge;
use crate::daemon::{client, link_exists, source_for_bridge};
use crate::identity::identify;
use crate::privilege::{as_real_user, trusted_env, Ids};
use crate::tun::{
    attach, check_socket, features, open_tun, send_fd, set_persist, IFF_NO_PI, IFF_TAP,
    IFF_VNET_HDR,
};
use crate::{Error, HelperArgs};

/// The ACL file.
pub const ACL_PATH: &str = "/etc/virtnet/bridge.conf";
/// Names another ACL file, except in secure-execution mode (setuid).
pub const ACL_ENV: &str = "VIRTNET_BRIDGE_CONF";

/// The ACL file to read: `$VIRTNET_BRIDGE_CONF` when trusted, else [`ACL_PATH`].
pub fn acl_path() -> PathBuf {
    trusted_env(ACL_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(ACL_PATH))
}

/// Checks the bridge against the ACL, read with the calling user's permissions.
pub fn check_acl(bridge: &str) -> Result<(), Error> {
    let path = acl_path();
    let acl = as_real_user(|| Acl::load(&path, &|p| std::fs::read_to_string(p)))??;
    if !acl.allows(bridge) {
        return Err(Error::new(format!(
            "access denied by acl file {} for bridge `{bridge}'",
            path.display()
        )));
    }
    Ok(())
}

/// Does what QEMU asked: a port on `args.bridge`, its tap's descriptor sent on `args.fd`.
/// Returns the port.
pub fn run(args: &HelperArgs) -> Result<Port, Error> {
    check_socket(args.fd)?;
    check_acl(&args.bridge)?;
    let ids = Ids::current();
    let tun = open_tun()?;
    let vnet_hdr = args.use_vnet && features(&tun).is_ok_and(|f| f & (IFF_VNET_HDR as u32) != 0);
    let who = identify(on_bridge(&args.bridge))?;
    let client = client();
    let source = source_for_bridge(&client, &args.bridge)?;
    let port = client
        .create_port(&PortRequest {
            domain: who.domain,
            source,
            mac: who.mac,
            model: who.model,
            target: None,
            owner_uid: Some(ids.uid),
            owner_gid: None,
            queues: None,
            vnet_hdr,
            helper: true,
            no_spoof_check: false,
            isolated: false,
        })
        .map_err(|e| Error::new(format!("virtnetd refused the port: {e}")))?;
    if let Err(e) = hand_over(&tun, &port, args.fd) {
        if let Err(undo) = client.delete_port(&port.name) {
            eprintln!(
                "virtnet-bridge-helper: warning: cannot delete port {} again: {undo}",
                port.name
            );
        }
        return Err(e);
    }
    Ok(port)
}

/// Steps 4 and 5: attach, make non-persistent, send.
fn hand_over(tun: &std::fs::File, port: &Port, sock: i32) -> Result<(), Error> {
    if !link_exists(&port.name) {
        return Err(Error::new(format!(
            "virtnetd made tap {}, which is not in this network namespace: QEMU must run in \
             virtnetd's",
            port.name
        )));
    }
    let mut flags = IFF_TAP | IFF_NO_PI;
    if port.vnet_hdr {
        flags |= IFF_VNET_HDR;
    }
    as_real_user(|| attach(tun, &port.name, flags))??;
    set_persist(tun, false)?;
    send_fd(sock, tun.as_raw_fd())?;
    Ok(())
}

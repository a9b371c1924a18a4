//! # virtnet-qemu
//!
//! QEMU without libvirt on a virtnet host: three small programs that give a QEMU guest a
//! port (a tap on a network's bridge) managed by virtnetd. The full recipes are in
//! `docs/QEMU.md`.
//!
//! - **`virtnet-bridge-helper`** ([`helper`]): a drop-in for `qemu-bridge-helper`, for
//!   `-netdev bridge,id=n0,br=virbr0,helper=/usr/libexec/virtnet-bridge-helper`. Installed
//!   setuid root, it lets an unprivileged QEMU use the bridges `/etc/virtnet/bridge.conf`
//!   allows (same syntax as `/etc/qemu/bridge.conf`, see [`acl`]). The tap is made by
//!   virtnetd, owned by the calling user, recorded as a port of the guest, and its descriptor
//!   is handed to QEMU.
//! - **`virtnet-ifup`** / **`virtnet-ifdown`** ([`script`]): QEMU's `script=`/`downscript=`
//!   for `-netdev tap,ifname=…`: the tap QEMU made is adopted into a network, and released.
//! - (No program needed) a port made beforehand with
//!   `virtnet attach-interface vm1 network default --mac … -q`, which prints the tap's name,
//!   used with `-netdev tap,ifname=vnet0,script=no,downscript=no`.
//!
//! ## Why the helper's taps are not persistent
//!
//! virtnetd makes every port's tap persistent (`TUNSETPERSIST 1`), so that it outlives the
//! daemon. A tap handed to QEMU by the helper is made non-persistent right after it is
//! attached (`TUNSETPERSIST 0` on the descriptor sent): it then lives exactly as long as
//! QEMU holds it, as with `qemu-bridge-helper`. The alternative, a persistent tap, would leave
//! one `vnetN` on the bridge per QEMU run, and the user who ran QEMU cannot remove it (the
//! daemon's socket is root's); nothing runs when QEMU exits to do it for them (QEMU waits for
//! its helper to exit, and a watcher process left behind would be a setuid program's
//! long-lived child).
//!
//! virtnetd reaps the helper's ports on its own (a sweeper thread, every second): a port
//! whose tap is gone (QEMU exited) is forgotten, and a port whose tap is still persistent a
//! few seconds after it was made is deleted with its tap. The latter is a helper that was
//! killed between virtnetd making the tap and `TUNSETPERSIST 0`: without the sweeper, that
//! tap would stay for good, owned by the user, who could pile them up. A user also holds at
//! most `virtnetd --helper-ports-per-user` helper ports at a time (default 32).
//!
//! Adopted taps (`virtnet-ifup`) belong to QEMU, which deletes them; `virtnet-ifdown` forgets
//! the port first. Ports made beforehand with `attach-interface` stay persistent and stay
//! until `detach-interface`, as virtnet ports do.

#![warn(missing_docs)]

pub mod acl;
pub mod args;
pub mod cmdline;
pub mod daemon;
pub mod helper;
pub mod identity;
pub mod privilege;
pub mod script;
pub mod tun;

pub use args::{HelperArgs, Parsed, ScriptArgs, ScriptMode};

/// An error, as one line for the program's stderr (QEMU shows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Error {
        Error(message.into())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error(e.to_string())
    }
}

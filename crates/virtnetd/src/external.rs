//! Networks on host devices: libvirt's `forward mode='bridge'` with `<bridge name='br0'/>`
//! (guests join an existing host bridge; virtnet adds no address, DHCP or firewall there) and
//! the direct modes (`bridge`, `vepa`, `private`, `passthrough` with `<interface dev>`), whose
//! guests get a macvtap device on a host NIC. Such a network builds nothing in the kernel when
//! it starts: it only checks that its device is there. Its ports are made per guest.

use virtnet_api::ErrorCode;
use virtnet_host::MacvtapMode;
use virtnet_model::{ForwardMode, Network};

use crate::error::{Error, Result};
use crate::kernel::Kernel;

/// Where the guests of a host-device network are attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attachment {
    /// An existing host bridge: ports are taps enslaved to it.
    Bridge(String),
    /// Host NICs: each port is a macvtap device on one of them.
    Macvtap {
        /// The NICs (`<forward dev>` / `<interface dev>`), in order of preference.
        devs: Vec<String>,
        /// The macvtap mode.
        mode: MacvtapMode,
    },
}

/// The attachment of a network on a host device; an error for modes virtnet cannot run
/// (`hostdev` needs PCI passthrough of virtual functions).
pub fn attachment(net: &Network) -> Result<Attachment> {
    let mode = net.forward.mode;
    if mode == ForwardMode::Bridge {
        if let Some(bridge) = net.bridge_name() {
            return Ok(Attachment::Bridge(bridge.to_string()));
        }
    }
    let macvtap = match mode {
        ForwardMode::Bridge => MacvtapMode::Bridge,
        ForwardMode::Vepa => MacvtapMode::Vepa,
        ForwardMode::Private => MacvtapMode::Private,
        ForwardMode::Passthrough => MacvtapMode::Passthrough,
        other => {
            return Err(Error::api(
                ErrorCode::Unsupported,
                format!("forward.mode: virtnet cannot run '{other}' networks (PCI passthrough)"),
            ))
        }
    };
    let mut devs: Vec<String> = net.forward.interfaces.clone();
    if devs.is_empty() {
        devs.extend(net.forward.dev().map(str::to_string));
    }
    if devs.is_empty() {
        return Err(Error::api(
            ErrorCode::Invalid,
            format!(
                "forward.interface: a '{mode}' network needs a <bridge name> or an \
                 <interface dev> to attach its guests to"
            ),
        ));
    }
    Ok(Attachment::Macvtap {
        devs,
        mode: macvtap,
    })
}

/// Checks, at start, that the device a host-device network uses exists.
pub fn check(kernel: &mut Kernel, net: &Network) -> Result<()> {
    match attachment(net)? {
        Attachment::Bridge(bridge) => {
            if !kernel.is_bridge(&bridge)? {
                return Err(Error::api(
                    ErrorCode::Conflict,
                    format!(
                        "network '{}': host bridge '{bridge}' does not exist",
                        net.name
                    ),
                ));
            }
        }
        Attachment::Macvtap { devs, .. } => {
            let mut found = false;
            for dev in &devs {
                found |= kernel.link_index(dev)?.is_some();
            }
            if !found {
                return Err(Error::api(
                    ErrorCode::Conflict,
                    format!(
                        "network '{}': none of its host interfaces ({}) exists",
                        net.name,
                        devs.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

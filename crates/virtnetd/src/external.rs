//! Networks on host devices: libvirt's `forward mode='bridge'` with `<bridge name='br0'/>`
//! (guests join an existing host bridge; virtnet adds no address, DHCP or firewall there) and
//! the direct modes (`bridge`, `vepa`, `private`, `passthrough` with `<interface dev>`), whose
//! guests get a macvtap device on a host NIC. Such a network builds nothing in the kernel when
//! it starts: it only checks that its device is there. Its ports are made per guest.
//!
//! Which device a network uses is its plan ([`virtnet_plan::plan_external`], pure and
//! golden-tested); this module turns the plan into `virtnet-host`'s terms and checks the
//! kernel at start.

use virtnet_api::ErrorCode;
use virtnet_host::MacvtapMode;
use virtnet_model::Network;
use virtnet_plan::{plan_external, DirectMode, ExternalPlan, ExternalPlanError};

use crate::error::{Error, Result};
use crate::kernel::Kernel;

/// Where the guests of a host-device network are attached: its plan
/// ([`virtnet_plan::ExternalPlan`]) in the terms of `virtnet-host`.
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
/// (`hostdev` needs PCI passthrough of virtual functions) and for direct networks without a
/// NIC.
pub fn attachment(net: &Network) -> Result<Attachment> {
    Ok(match plan_external(net).map_err(refusal)? {
        ExternalPlan::HostBridge { bridge } => Attachment::Bridge(bridge),
        ExternalPlan::Direct { devs, mode } => Attachment::Macvtap {
            devs,
            mode: macvtap_mode(mode),
        },
    })
}

/// The API error of a network the plan refuses: a mode virtnet cannot run is unsupported, a
/// direct network without a NIC is invalid.
fn refusal(e: ExternalPlanError) -> Error {
    let code = match e {
        ExternalPlanError::OwnBridge(_) | ExternalPlanError::Unsupported(_) => {
            ErrorCode::Unsupported
        }
        ExternalPlanError::NoDevice(_) => ErrorCode::Invalid,
    };
    Error::api(code, e.to_string())
}

fn macvtap_mode(mode: DirectMode) -> MacvtapMode {
    match mode {
        DirectMode::Bridge => MacvtapMode::Bridge,
        DirectMode::Vepa => MacvtapMode::Vepa,
        DirectMode::Private => MacvtapMode::Private,
        DirectMode::Passthrough => MacvtapMode::Passthrough,
    }
}

/// Checks, at start, that the device a host-device network uses exists (its plan's host
/// bridge, or at least one of its NICs).
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

//! Networks on host devices: libvirt's `forward mode='bridge'` with `<bridge name='br0'/>`
//! (guests join an existing host bridge; virtnet adds no address, DHCP or firewall there) and
//! the direct modes (`bridge`, `vepa`, `private`, `passthrough` with `<interface dev>`), whose
//! guests get a macvtap device on a host NIC. Such a network builds nothing in the kernel when
//! it starts: it only checks that its device is there. Its ports are made per guest.
//!
//! Which device a network uses is its plan ([`virtnet_plan::plan_external`], pure and
//! golden-tested); this module turns the plan into `virtnet-host`'s terms and checks the
//! kernel at start.

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

/// The error of a network the plan refuses: a mode virtnet cannot run is unsupported, a
/// direct network without a NIC is rejected.
fn refusal(e: ExternalPlanError) -> Error {
    match e {
        ExternalPlanError::OwnBridge(_) | ExternalPlanError::Unsupported(_) => Error::Unsupported {
            what: e.to_string(),
        },
        ExternalPlanError::NoDevice(_) => Error::rejected(e.to_string()),
    }
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
                return Err(Error::conflict(format!(
                    "network '{}': host bridge '{bridge}' does not exist",
                    net.name
                )));
            }
        }
        Attachment::Macvtap { devs, .. } => {
            let mut found = false;
            for dev in &devs {
                found |= kernel.link_index(dev)?.is_some();
            }
            if !found {
                return Err(Error::conflict(format!(
                    "network '{}': none of its host interfaces ({}) exists",
                    net.name,
                    devs.join(", ")
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(xml: &str) -> Network {
        Network::from_xml(xml).unwrap_or_else(|e| panic!("{e}"))
    }

    fn refused(xml: &str) -> virtnet_api::ApiError {
        match attachment(&net(xml)) {
            Err(e) => crate::api::errors::to_api(&e),
            Ok(a) => panic!("accepted: {a:?}"),
        }
    }

    #[test]
    fn the_plan_becomes_host_terms() {
        let n =
            net("<network><name>h</name><forward mode='bridge'/><bridge name='br0'/></network>");
        assert_eq!(attachment(&n).ok(), Some(Attachment::Bridge("br0".into())));
        let n = net(
            "<network><name>p</name><forward mode='private'><interface dev='eth1'/>\
             <interface dev='eth2'/></forward></network>",
        );
        assert_eq!(
            attachment(&n).ok(),
            Some(Attachment::Macvtap {
                devs: vec!["eth1".into(), "eth2".into()],
                mode: MacvtapMode::Private,
            })
        );
    }

    /// The codes and messages clients saw before the plan moved into `virtnet-plan`.
    #[test]
    fn refusals_keep_their_codes_and_messages() {
        let e = refused(
            "<network><name>d</name><forward mode='hostdev'>\
             <address type='pci' domain='0x0000' bus='0x03' slot='0x00' function='0x1'/>\
             </forward></network>",
        );
        assert_eq!(e.code, virtnet_api::ErrorCode::Unsupported);
        assert_eq!(
            e.message,
            "forward.mode: virtnet cannot run 'hostdev' networks (PCI passthrough)"
        );
        let e = refused("<network><name>v</name><forward mode='vepa'/></network>");
        assert_eq!(e.code, virtnet_api::ErrorCode::Invalid);
        assert_eq!(
            e.message,
            "forward.interface: a 'vepa' network needs a <bridge name> or an <interface dev> \
             to attach its guests to"
        );
    }
}

//! A guest NIC as libvirt's domain XML describes it (`<interface type='network|bridge'>`):
//! the input that attaches a guest to a virtnet network (`attach-interface`, port creation).

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::mac::MacAddr;
use crate::network::PciAddress;

/// Where a guest NIC is connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type", content = "name")]
pub enum InterfaceSource {
    /// `type='network'`, `<source network='default'/>`: a virtnet network by name.
    Network(String),
    /// `type='bridge'`, `<source bridge='br0'/>`: a bridge by device name.
    Bridge(String),
}

/// A guest `<interface>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestInterface {
    /// What it is connected to.
    pub source: InterfaceSource,
    /// `<mac address>` of the guest NIC.
    pub mac: Option<MacAddr>,
    /// `<model type>` (virtio, e1000, rtl8139…).
    pub model: Option<String>,
    /// `<target dev>`: the host-side tap name.
    pub target: Option<String>,
    /// `<address type='pci'>` of the NIC inside the guest.
    pub address: Option<PciAddress>,
}

impl GuestInterface {
    /// Parses a libvirt `<interface>` element of type `network` or `bridge`. Elements of the
    /// domain format that do not concern the network side (`<driver>`, `<rom>`, `<boot>` …) are
    /// accepted and ignored, since this is one fragment of a larger document.
    pub fn from_xml(text: &str) -> Result<GuestInterface> {
        crate::xml::parse::parse_interface(text)
    }
}

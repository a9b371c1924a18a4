//! A guest NIC as libvirt's domain XML describes it (`<interface type='network|bridge'>`):
//! the input that attaches a guest to a virtnet network (`attach-interface`, port creation).

use serde::{Deserialize, Serialize};

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

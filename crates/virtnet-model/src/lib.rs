//! # virtnet-model
//!
//! The libvirt network XML model used by every other part of virtnet. Pure: no I/O, no clocks
//! beyond random UUID/MAC generation.
//!
//! - [`Network`] and its parts are the typed definition (serde-serialisable for the API and the
//!   store).
//! - [`Network::from_xml`] parses libvirt network XML and applies the checks libvirt applies
//!   while parsing; hostile documents (DTDs, entity expansion, huge or deeply nested input) are
//!   refused with a clear error.
//! - [`Network::to_xml`] writes libvirt's normalised form (`virsh net-dumpxml`).
//! - [`update::apply_update`] is `net-update`: one section changed in place, with libvirt's
//!   matching and duplicate rules.
//! - [`define::prepare`] is what `net-define` adds: generated UUID/MAC/bridge name, the
//!   rules libvirt checks at define time, and uniqueness against the other networks.
//!
//! - [`NetworkPort`] is libvirt's `<networkport>`: a guest NIC as the hypervisor daemon
//!   announces it, with the `<plug>` the network answers.
//!
//! Every error is a [`ModelError`] naming the field (`ip[0].dhcp.range[1].end`) and the reason.

pub mod define;
pub mod error;
pub mod interface;
pub mod mac;
pub mod network;
pub mod networkport;
pub mod overlay;
pub mod portforward;
mod rules;
pub mod subnet;
pub mod update;
mod xml;

/// The interface-name rule (Linux's, narrowed to names safe in nftables and file names), one
/// implementation for every crate: see [`virtnet_ifname`].
pub mod ifname {
    pub use virtnet_ifname::{check, IfName, Invalid, IFNAMSIZ_MAX};
}

pub use error::{ErrorKind, ModelError, Result};
pub use ifname::IfName;
pub use interface::{GuestInterface, InterfaceSource};
pub use mac::MacAddr;
pub use network::*;
pub use networkport::{DirectPlugMode, NetworkPort, Plug};
pub use overlay::{Overlay, OverlayType};
pub use portforward::{ForwardPorts, ForwardTarget, PortForward};
pub use subnet::Subnet;
pub use update::{apply_update, UpdateCommand, UpdateSection};
pub use xml::stored::StoredSize;
pub use xml::MAX_XML_BYTES;

impl GuestInterface {
    /// Parses a libvirt `<interface>` element of type `network` or `bridge`. Elements of the
    /// domain format that do not concern the network side (`<driver>`, `<rom>`, `<boot>` …) are
    /// accepted and ignored, since this is one fragment of a larger document.
    pub fn from_xml(text: &str) -> Result<GuestInterface> {
        xml::parse::parse_interface(text)
    }
}

impl Network {
    /// Parses a libvirt `<network>` document and checks it the way libvirt's parser does.
    pub fn from_xml(text: &str) -> Result<Network> {
        xml::parse::parse_network(text)
    }

    /// Parses a definition virtnet stored itself: the same reader and checks as
    /// [`Network::from_xml`], without its size, node and attribute limits (a definition's
    /// normalised form may be larger than the document it was defined with, and a record once
    /// accepted must stay readable). DTDs and deep nesting are refused all the same.
    pub fn from_stored_xml(text: &str) -> Result<Network> {
        xml::parse::parse_network_with(text, xml::load::Limits::STORED)
    }

    /// The normalised XML of this definition (what the store keeps and `net-dumpxml` prints),
    /// checked to be a document [`Network::from_xml`] accepts: a definition or update whose
    /// stored form would be over the input limits is refused with the element that takes
    /// most of it (`description`, `ip[0].dhcp`) and the limit.
    pub fn to_checked_xml(&self) -> Result<String> {
        xml::stored::checked_xml(self)
    }

    /// The size of this definition's stored form (written out and counted: as costly as
    /// [`Network::to_xml`]).
    pub fn stored_size(&self) -> StoredSize {
        StoredSize::of(&xml::format::format_network(self))
    }

    /// Serialises in libvirt's normalised form: element order, defaults and attribute spelling
    /// of `virsh net-dumpxml`.
    pub fn to_xml(&self) -> String {
        xml::format::format_network(self)
    }
}

impl PortForward {
    /// What this forward adds to the stored form of a definition that already has forwards:
    /// one `<virtnet:forward>` line.
    pub fn stored_size(&self) -> StoredSize {
        StoredSize::of(&xml::format::format_forward_line(self))
    }
}

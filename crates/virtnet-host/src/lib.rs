//! virtnet's "apply and observe" layer: a small, synchronous API over the
//! host's networking.
//!
//! - [`Netlink`]: rtnetlink links (bridges: create, update, batched delete),
//!   addresses and main-table routes, read back as plain structs; macvtap
//!   devices on host NICs.
//! - [`HostView`]: the host's routes and addresses, dumped once and then
//!   followed from the kernel's notifications.
//! - [`sysctl`]: `/proc/sys` read and write-if-different.
//! - [`Nftables`]: in-process libnftables; one script = one atomic
//!   transaction; [`Nftables::chain_headers`] lists the chains' headers.
//! - [`tap`]: persistent tap devices for guest ports.
//! - [`ping`]: ICMP echo on one device (a raw socket bound to a link).
//! - [`nft_counters`]: named counters and set-element counters over nfnetlink (metrics);
//! - [`conntrack`]: the source-NATed connections, from one ctnetlink dump (metrics);
//! - [`snapshot`]: a NIC's addresses, routes, MTU, MAC and state as one
//!   value, and the restore of a NIC to it (its errors name the step and
//!   keep the [`HostError`], or say that the NIC is gone).
//!
//! Everything here acts in the network namespace of the thread that opened
//! the socket or context (for [`sysctl`]: of the calling thread), which is
//! how the tests run against fresh namespaces without touching the host.
//! Every failure is a [`HostError`] naming the operation and its target and
//! keeping the kernel's errno ([`HostError::errno`]).
//!
//! Building needs the system libnftables (Debian `libnftables-dev`; at run
//! time `libnftables1`).

#![warn(missing_docs)]

pub mod arp_watch;
pub mod conntrack;
mod error;
mod host_view;
pub mod link_brief;
mod netlink;
mod nft;
mod nft_chains;
pub mod nft_counters;
pub mod nft_set;
pub mod nft_watch;
mod nl_dump;
pub mod ping;
mod poll;
pub mod snapshot;
pub mod sysctl;
pub mod tap;

pub use error::{HostError, Result};
pub use host_view::HostView;
pub use netlink::{link_stats, LinkKey};
pub use netlink::{
    Address, BridgeInfo, BridgeSpec, Change, Drained, Link, LinkEvent, LinkEvents, LinkStats,
    LinkWatch, LinkWatchSwitch, MacvtapMode, Monitor, Neighbour, Netlink, PortSettings, Route,
    RouteSpec, VxlanSpec,
};
pub use netlink::{
    AddressEntry, RouteEntry, FOREVER, IFA_F_NODAD, RTPROT_DHCP, RTPROT_KERNEL, RT_TABLE_LOCAL,
};
pub use nft::Nftables;
pub use nft_chains::ChainHeader;
pub use nft_set::{Field, NftSets, SetChange, SetElement};

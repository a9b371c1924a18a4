//! The one thing ports need to know about networks: which bridge (or host NIC) serves a
//! network's guests now. The network registry answers it; ports never call the registry
//! otherwise, and are told when a network starts ([`super::Ports::network_started`]).

use crate::error::Result;

/// How an active network's guests are attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serving {
    /// A tap on this bridge (the network's own, or the host bridge it forwards to).
    Bridge(String),
    /// A macvtap device on the first of these host NICs that exists (a direct network).
    Macvtap {
        /// The network's NICs, in order of preference.
        devs: Vec<String>,
        /// The macvtap mode.
        mode: virtnet_host::MacvtapMode,
    },
}

/// "Which bridge serves network N": a read-only view of the active networks.
pub trait BridgeDirectory: Send + Sync {
    /// How the guests of the active network `name` attach; refused when there is no such
    /// network, it is not active, or it has no bridge for guests.
    fn serving(&self, network: &str) -> Result<Serving>;
    /// The bridge a network shows in listings (also when it is inactive), if any.
    fn shown_bridge(&self, network: &str) -> Option<String>;
    /// The running definition of an active network (its mode, addresses and `<port
    /// isolated>`, for the ports' protection); `None` when it is not active.
    fn live_network(&self, _network: &str) -> Option<std::sync::Arc<virtnet_model::Network>> {
        None
    }
}

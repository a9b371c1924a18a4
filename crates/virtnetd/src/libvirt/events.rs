//! Network lifecycle events for libvirt clients: the callbacks a connection registered with
//! `CONNECT_NETWORK_EVENT_REGISTER_ANY`, and the `NETWORK_EVENT_LIFECYCLE` messages (type 2,
//! `VIR_NET_MESSAGE`) the registry's changes become, one per matching callback, as libvirt's
//! daemon sends them.

use std::collections::BTreeMap;

use virtnet_libvirt_rpc::remote::{
    LifecycleEvent, NetworkEventLifecycleMsg, NonnullNetwork, PROC_NETWORK_EVENT_LIFECYCLE,
    REMOTE_PROGRAM, REMOTE_PROTOCOL_VERSION,
};
use virtnet_libvirt_rpc::{frame, remote, Header, MessageType, Status};

use crate::services::{Lifecycle, LifecycleKind};

/// Most callbacks one connection may hold (each costs a little per event).
pub const MAX_CALLBACKS: usize = 64;

/// The event callbacks of one connection.
#[derive(Debug, Default)]
pub struct Callbacks {
    last: i32,
    /// Callback id → the UUID of the one network it watches, or every network.
    registered: BTreeMap<i32, Option<[u8; 16]>>,
}

impl Callbacks {
    /// Registers a callback; `None` when the connection already holds [`MAX_CALLBACKS`].
    pub fn register(&mut self, network: Option<&NonnullNetwork>) -> Option<i32> {
        if self.registered.len() >= MAX_CALLBACKS {
            return None;
        }
        self.last = self.last.checked_add(1)?;
        self.registered.insert(self.last, network.map(|n| n.uuid));
        Some(self.last)
    }

    /// Removes a callback; false when it was not registered.
    pub fn deregister(&mut self, id: i32) -> bool {
        self.registered.remove(&id).is_some()
    }

    /// Whether any callback is registered.
    pub fn is_empty(&self) -> bool {
        self.registered.is_empty()
    }

    /// The frames one change becomes on this connection.
    pub fn frames(&self, change: &Lifecycle) -> Vec<Vec<u8>> {
        let uuid = *change.uuid.as_bytes();
        self.registered
            .iter()
            .filter(|(_, only)| only.is_none_or(|u| u == uuid))
            .map(|(&callback_id, _)| {
                let msg = NetworkEventLifecycleMsg {
                    callback_id,
                    net: NonnullNetwork {
                        name: change.name.clone(),
                        uuid,
                    },
                    event: event_type(change.kind) as i32,
                    detail: 0,
                };
                frame::build_frame(&event_header(), &remote::encode(&msg))
            })
            .collect()
    }
}

fn event_type(kind: LifecycleKind) -> LifecycleEvent {
    match kind {
        LifecycleKind::Defined => LifecycleEvent::Defined,
        LifecycleKind::Undefined => LifecycleEvent::Undefined,
        LifecycleKind::Started => LifecycleEvent::Started,
        LifecycleKind::Stopped => LifecycleEvent::Stopped,
    }
}

/// The header of an event message (libvirt's daemon sends them with serial 1).
fn event_header() -> Header {
    Header {
        prog: REMOTE_PROGRAM,
        vers: REMOTE_PROTOCOL_VERSION,
        proc_: PROC_NETWORK_EVENT_LIFECYCLE,
        kind: MessageType::Message,
        serial: 1,
        status: Status::Ok,
    }
}

//! Ports of libvirt's hypervisor daemon (`virNetworkPortCreateXML`): wire types, paths and
//! client calls (`virtnet net-port-create`, `net-port-list`, `net-port-dumpxml`,
//! `net-port-delete`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::client::{decode, Client, ClientError};
use crate::paths::{escape, network};

/// One port of the hypervisor daemon: its network, UUID and `<networkport>` XML (plug
/// included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkPortInfo {
    /// The network it is on.
    pub network: String,
    /// The port's UUID.
    pub uuid: String,
    /// Its `<networkport>` document.
    pub xml: String,
}

/// `GET`/`PUT /v1/network-ports/{uuid}/parameters`: the port's bandwidth as libvirt's typed
/// parameters (`inbound.average`, `inbound.peak`, `inbound.floor`, `inbound.burst`,
/// `outbound.average`, `outbound.peak`, `outbound.burst`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkPortParameters {
    /// Values by name; 0 means unset.
    pub parameters: BTreeMap<String, u64>,
}

/// Root of the ports by UUID.
pub const NETWORK_PORTS: &str = "/v1/network-ports";

/// The ports of one network (`POST` creates one).
pub fn network_ports_path(network_id: &str) -> String {
    format!("{}/network-ports", network(network_id))
}

/// One port by UUID.
pub fn network_port_path(uuid: &str) -> String {
    format!("{NETWORK_PORTS}/{}", escape(uuid))
}

impl Client {
    /// `POST /v1/networks/{network}/network-ports?flags=N` with a `<networkport>` body: records
    /// the port and answers with its plug filled in.
    pub fn create_network_port(
        &self,
        network_id: &str,
        xml: &str,
        flags: u32,
    ) -> Result<NetworkPortInfo, ClientError> {
        self.post_xml(
            &format!("{}?flags={flags}", network_ports_path(network_id)),
            xml,
        )
    }

    /// `GET /v1/networks/{network}/network-ports`: the network's ports.
    pub fn network_ports(&self, network_id: &str) -> Result<Vec<NetworkPortInfo>, ClientError> {
        let resp = self.checked("GET", &network_ports_path(network_id), &[], None)?;
        decode(&resp)
    }

    /// `GET /v1/network-ports/{uuid}`: one port.
    pub fn network_port(&self, uuid: &str) -> Result<NetworkPortInfo, ClientError> {
        let resp = self.checked("GET", &network_port_path(uuid), &[], None)?;
        decode(&resp)
    }

    /// `DELETE /v1/network-ports/{uuid}`: forgets the port (the hypervisor's tap stays).
    pub fn delete_network_port(&self, uuid: &str) -> Result<(), ClientError> {
        self.checked("DELETE", &network_port_path(uuid), &[], None)?;
        Ok(())
    }

    /// `GET /v1/network-ports/{uuid}/parameters`: the port's bandwidth parameters.
    pub fn network_port_parameters(
        &self,
        uuid: &str,
    ) -> Result<NetworkPortParameters, ClientError> {
        let resp = self.checked(
            "GET",
            &format!("{}/parameters", network_port_path(uuid)),
            &[],
            None,
        )?;
        decode(&resp)
    }

    /// `PUT /v1/network-ports/{uuid}/parameters`: replaces the port's bandwidth parameters.
    pub fn set_network_port_parameters(
        &self,
        uuid: &str,
        parameters: &NetworkPortParameters,
    ) -> Result<NetworkPortParameters, ClientError> {
        self.send_json(
            "PUT",
            &format!("{}/parameters", network_port_path(uuid)),
            parameters,
        )
    }
}

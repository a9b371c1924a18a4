//! `REMOTE_PROGRAM`'s types and procedures for the network daemon (`remote_protocol.x`): the
//! connection procedures libvirt's clients call on every connection, every network procedure,
//! the network events and the network-port procedures.

use crate::error::RpcError;
use crate::frame::{Header, MessageType, Status};
use crate::xdr::{List, Reader, Writer, Xdr};
use crate::{xdr_struct, DecodeError};

/// `REMOTE_PROGRAM`.
pub const REMOTE_PROGRAM: u32 = 0x2000_8086;
/// `REMOTE_PROTOCOL_VERSION`.
pub const REMOTE_PROTOCOL_VERSION: u32 = 1;
/// `REMOTE_NETWORK_LIST_MAX`.
pub const NETWORK_LIST_MAX: u32 = 16_384;
/// `REMOTE_NETWORK_PORT_LIST_MAX`.
pub const NETWORK_PORT_LIST_MAX: u32 = 16_384;
/// `REMOTE_AUTH_TYPE_LIST_MAX`.
pub const AUTH_TYPE_LIST_MAX: u32 = 20;
/// `REMOTE_NETWORK_DHCP_LEASES_MAX`.
pub const NETWORK_DHCP_LEASES_MAX: u32 = 65_536;
/// `REMOTE_NETWORK_PORT_PARAMETERS_MAX`.
pub const NETWORK_PORT_PARAMETERS_MAX: u32 = 16;
/// `REMOTE_CONNECT_IDENTITY_PARAMS_MAX`.
pub const CONNECT_IDENTITY_PARAMS_MAX: u32 = 20;

/// `remote_auth_type`: `REMOTE_AUTH_NONE`.
pub const AUTH_NONE: i32 = 0;

/// `virConnectListAllNetworksFlags`.
pub mod list_flags {
    /// `VIR_CONNECT_LIST_NETWORKS_INACTIVE`.
    pub const INACTIVE: u32 = 1;
    /// `VIR_CONNECT_LIST_NETWORKS_ACTIVE`.
    pub const ACTIVE: u32 = 2;
    /// `VIR_CONNECT_LIST_NETWORKS_PERSISTENT`.
    pub const PERSISTENT: u32 = 4;
    /// `VIR_CONNECT_LIST_NETWORKS_TRANSIENT`.
    pub const TRANSIENT: u32 = 8;
    /// `VIR_CONNECT_LIST_NETWORKS_AUTOSTART`.
    pub const AUTOSTART: u32 = 16;
    /// `VIR_CONNECT_LIST_NETWORKS_NO_AUTOSTART`.
    pub const NO_AUTOSTART: u32 = 32;
}

/// `VIR_NETWORK_XML_INACTIVE` (`virNetworkXMLFlags`).
pub const NETWORK_XML_INACTIVE: u32 = 1;

/// `virNetworkUpdateFlags`.
pub mod update_flags {
    /// `VIR_NETWORK_UPDATE_AFFECT_LIVE`.
    pub const LIVE: u32 = 1;
    /// `VIR_NETWORK_UPDATE_AFFECT_CONFIG`.
    pub const CONFIG: u32 = 2;
}

/// `virNetworkEventID`: `VIR_NETWORK_EVENT_ID_LIFECYCLE`.
pub const NETWORK_EVENT_ID_LIFECYCLE: i32 = 0;

/// `virNetworkEventLifecycleType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum LifecycleEvent {
    /// `VIR_NETWORK_EVENT_DEFINED`.
    Defined = 0,
    /// `VIR_NETWORK_EVENT_UNDEFINED`.
    Undefined = 1,
    /// `VIR_NETWORK_EVENT_STARTED`.
    Started = 2,
    /// `VIR_NETWORK_EVENT_STOPPED`.
    Stopped = 3,
}

/// `virTypedParameterType` numbers of [`TypedParamValue`].
mod param_type {
    pub const INT: i32 = 1;
    pub const UINT: i32 = 2;
    pub const LLONG: i32 = 3;
    pub const ULLONG: i32 = 4;
    pub const DOUBLE: i32 = 5;
    pub const BOOLEAN: i32 = 6;
    pub const STRING: i32 = 7;
}

/// `remote_typed_param_value`.
#[derive(Debug, Clone, PartialEq)]
pub enum TypedParamValue {
    /// `VIR_TYPED_PARAM_INT`.
    Int(i32),
    /// `VIR_TYPED_PARAM_UINT`.
    UInt(u32),
    /// `VIR_TYPED_PARAM_LLONG`.
    LLong(i64),
    /// `VIR_TYPED_PARAM_ULLONG`.
    ULLong(u64),
    /// `VIR_TYPED_PARAM_DOUBLE`.
    Double(f64),
    /// `VIR_TYPED_PARAM_BOOLEAN`.
    Boolean(i32),
    /// `VIR_TYPED_PARAM_STRING`.
    String(String),
}

impl Default for TypedParamValue {
    fn default() -> Self {
        TypedParamValue::Int(0)
    }
}

impl Xdr for TypedParamValue {
    fn encode(&self, w: &mut Writer) {
        match self {
            TypedParamValue::Int(v) => {
                w.i32(param_type::INT);
                w.i32(*v)
            }
            TypedParamValue::UInt(v) => {
                w.i32(param_type::UINT);
                w.u32(*v)
            }
            TypedParamValue::LLong(v) => {
                w.i32(param_type::LLONG);
                v.encode(w)
            }
            TypedParamValue::ULLong(v) => {
                w.i32(param_type::ULLONG);
                w.u64(*v)
            }
            TypedParamValue::Double(v) => {
                w.i32(param_type::DOUBLE);
                v.encode(w)
            }
            TypedParamValue::Boolean(v) => {
                w.i32(param_type::BOOLEAN);
                w.i32(*v)
            }
            TypedParamValue::String(v) => {
                w.i32(param_type::STRING);
                v.encode(w)
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.i32()? {
            param_type::INT => TypedParamValue::Int(r.i32()?),
            param_type::UINT => TypedParamValue::UInt(r.u32()?),
            param_type::LLONG => TypedParamValue::LLong(i64::decode(r)?),
            param_type::ULLONG => TypedParamValue::ULLong(r.u64()?),
            param_type::DOUBLE => TypedParamValue::Double(f64::decode(r)?),
            param_type::BOOLEAN => TypedParamValue::Boolean(r.i32()?),
            param_type::STRING => TypedParamValue::String(String::decode(r)?),
            n => return Err(DecodeError::BadDiscriminant(n)),
        })
    }
    const MIN_SIZE: usize = 8;
}

xdr_struct! {
    /// `remote_nonnull_domain` (only inside errors, unused).
    pub struct NonnullDomain {
        /// Name.
        pub name: String,
        /// UUID.
        pub uuid: [u8; 16],
        /// Id.
        pub id: i32,
    }

    /// `remote_nonnull_network`: a network handle.
    pub struct NonnullNetwork {
        /// Name.
        pub name: String,
        /// UUID.
        pub uuid: [u8; 16],
    }

    /// `remote_nonnull_network_port`: a network port handle.
    pub struct NonnullNetworkPort {
        /// The port's network.
        pub net: NonnullNetwork,
        /// The port's UUID.
        pub uuid: [u8; 16],
    }

    /// `remote_typed_param`.
    pub struct TypedParam {
        /// Parameter name.
        pub field: String,
        /// Value.
        pub value: TypedParamValue,
    }

    /// `remote_network_dhcp_lease`.
    pub struct DhcpLease {
        /// Interface (the network's bridge).
        pub iface: String,
        /// Expiry, seconds since the epoch.
        pub expirytime: i64,
        /// `VIR_IP_ADDR_TYPE_IPV4` (0) or `_IPV6` (1).
        pub type_: i32,
        /// Client MAC.
        pub mac: Option<String>,
        /// IAID (DHCPv6).
        pub iaid: Option<String>,
        /// Address.
        pub ipaddr: String,
        /// Prefix length.
        pub prefix: u32,
        /// Client host name.
        pub hostname: Option<String>,
        /// Client id.
        pub clientid: Option<String>,
    }

    /// `remote_connect_open_args`.
    pub struct ConnectOpenArgs {
        /// URI (`network:///system`), possibly absent.
        pub name: Option<String>,
        /// `virConnectFlags`.
        pub flags: u32,
    }
    /// `remote_connect_supports_feature_args`.
    pub struct SupportsFeatureArgs {
        /// `virDrvFeature`.
        pub feature: i32,
    }
    /// `remote_connect_supports_feature_ret`.
    pub struct SupportsFeatureRet {
        /// 1 when supported.
        pub supported: i32,
    }
    /// `remote_connect_get_type_ret`.
    pub struct GetTypeRet {
        /// Driver type.
        pub type_: String,
    }
    /// `remote_connect_get_version_ret`.
    pub struct GetVersionRet {
        /// Version (major * 1,000,000 + minor * 1,000 + micro).
        pub hv_ver: u64,
    }
    /// `remote_connect_get_lib_version_ret`.
    pub struct GetLibVersionRet {
        /// Version (major * 1,000,000 + minor * 1,000 + micro).
        pub lib_ver: u64,
    }
    /// `remote_connect_get_hostname_ret`.
    pub struct GetHostnameRet {
        /// Host name.
        pub hostname: String,
    }
    /// `remote_connect_get_uri_ret`.
    pub struct GetUriRet {
        /// URI.
        pub uri: String,
    }
    /// `remote_connect_get_capabilities_ret`.
    pub struct GetCapabilitiesRet {
        /// Capabilities XML.
        pub capabilities: String,
    }
    /// `remote_connect_is_secure_ret`.
    pub struct IsSecureRet {
        /// 1 when secure.
        pub secure: i32,
    }
    /// `remote_auth_list_ret`.
    pub struct AuthListRet {
        /// `remote_auth_type`s.
        pub types: List<i32, AUTH_TYPE_LIST_MAX>,
    }
    /// `remote_connect_set_identity_args`.
    pub struct SetIdentityArgs {
        /// Identity fields.
        pub params: List<TypedParam, CONNECT_IDENTITY_PARAMS_MAX>,
        /// Flags.
        pub flags: u32,
    }
    /// `remote_connect_num_of_networks_ret` and `..._defined_networks_ret`.
    pub struct NumRet {
        /// Count.
        pub num: i32,
    }
    /// `remote_connect_list_networks_args` and `..._defined_networks_args`.
    pub struct ListNamesArgs {
        /// Most names wanted.
        pub maxnames: i32,
    }
    /// `remote_connect_list_networks_ret` and `..._defined_networks_ret`.
    pub struct ListNamesRet {
        /// Names.
        pub names: List<String, NETWORK_LIST_MAX>,
    }
    /// `remote_network_lookup_by_uuid_args`.
    pub struct LookupByUuidArgs {
        /// UUID.
        pub uuid: [u8; 16],
    }
    /// `remote_network_lookup_by_name_args`.
    pub struct LookupByNameArgs {
        /// Name.
        pub name: String,
    }
    /// Every `remote_network_*_ret` that is one network handle.
    pub struct NetRet {
        /// The network.
        pub net: NonnullNetwork,
    }
    /// `remote_network_create_xml_args` and `remote_network_define_xml_args`.
    pub struct XmlArgs {
        /// Network XML.
        pub xml: String,
    }
    /// `remote_network_create_xml_flags_args` and `remote_network_define_xml_flags_args`.
    pub struct XmlFlagsArgs {
        /// Network XML.
        pub xml: String,
        /// Flags.
        pub flags: u32,
    }
    /// Every `remote_network_*_args` that is one network handle.
    pub struct NetArgs {
        /// The network.
        pub net: NonnullNetwork,
    }
    /// `remote_network_update_args`.
    pub struct UpdateArgs {
        /// The network.
        pub net: NonnullNetwork,
        /// `virNetworkUpdateCommand` (see `VIR_DRV_FEATURE_NETWORK_UPDATE_HAS_CORRECT_ORDER`).
        pub command: u32,
        /// `virNetworkUpdateSection`.
        pub section: u32,
        /// Index of the `<ip>` (-1: any).
        pub parent_index: i32,
        /// The element.
        pub xml: String,
        /// `virNetworkUpdateFlags`.
        pub flags: u32,
    }
    /// `remote_network_get_xml_desc_args`.
    pub struct GetXmlDescArgs {
        /// The network.
        pub net: NonnullNetwork,
        /// `VIR_NETWORK_XML_INACTIVE`.
        pub flags: u32,
    }
    /// Every `..._ret` that is one XML document.
    pub struct XmlRet {
        /// XML.
        pub xml: String,
    }
    /// `remote_network_get_bridge_name_ret`.
    pub struct BridgeNameRet {
        /// Bridge.
        pub name: String,
    }
    /// `remote_network_get_autostart_ret`.
    pub struct AutostartRet {
        /// 1 when autostarted.
        pub autostart: i32,
    }
    /// `remote_network_set_autostart_args`.
    pub struct SetAutostartArgs {
        /// The network.
        pub net: NonnullNetwork,
        /// 1 to autostart.
        pub autostart: i32,
    }
    /// `remote_network_is_active_ret`.
    pub struct IsActiveRet {
        /// 1 when active.
        pub active: i32,
    }
    /// `remote_network_is_persistent_ret`.
    pub struct IsPersistentRet {
        /// 1 when persistent.
        pub persistent: i32,
    }
    /// `remote_connect_list_all_networks_args`.
    pub struct ListAllNetworksArgs {
        /// 0: only the count.
        pub need_results: i32,
        /// `virConnectListAllNetworksFlags`.
        pub flags: u32,
    }
    /// `remote_connect_list_all_networks_ret`.
    pub struct ListAllNetworksRet {
        /// Networks.
        pub nets: List<NonnullNetwork, NETWORK_LIST_MAX>,
        /// Count.
        pub ret: u32,
    }
    /// `remote_connect_network_event_register_any_args`.
    pub struct EventRegisterAnyArgs {
        /// `virNetworkEventID`.
        pub event_id: i32,
        /// Only this network's events, when given.
        pub net: Option<NonnullNetwork>,
    }
    /// `remote_connect_network_event_register_any_ret` and `..._deregister_any_args`.
    pub struct CallbackId {
        /// The registration.
        pub callback_id: i32,
    }
    /// `remote_network_event_lifecycle_msg`.
    pub struct NetworkEventLifecycleMsg {
        /// The registration it is for.
        pub callback_id: i32,
        /// The network.
        pub net: NonnullNetwork,
        /// [`LifecycleEvent`].
        pub event: i32,
        /// Always 0 for networks.
        pub detail: i32,
    }
    /// `remote_network_get_dhcp_leases_args`.
    pub struct GetDhcpLeasesArgs {
        /// The network.
        pub net: NonnullNetwork,
        /// Only this MAC's leases.
        pub mac: Option<String>,
        /// 0: only the count.
        pub need_results: i32,
        /// Flags.
        pub flags: u32,
    }
    /// `remote_network_get_dhcp_leases_ret`.
    pub struct GetDhcpLeasesRet {
        /// Leases.
        pub leases: List<DhcpLease, NETWORK_DHCP_LEASES_MAX>,
        /// Count.
        pub ret: u32,
    }
    /// `remote_network_list_all_ports_args`.
    pub struct ListAllPortsArgs {
        /// The network.
        pub network: NonnullNetwork,
        /// 0: only the count.
        pub need_results: i32,
        /// Flags.
        pub flags: u32,
    }
    /// `remote_network_list_all_ports_ret`.
    pub struct ListAllPortsRet {
        /// Ports.
        pub ports: List<NonnullNetworkPort, NETWORK_PORT_LIST_MAX>,
        /// Count.
        pub ret: u32,
    }
    /// `remote_network_port_lookup_by_uuid_args`.
    pub struct PortLookupByUuidArgs {
        /// The network.
        pub network: NonnullNetwork,
        /// The port's UUID.
        pub uuid: [u8; 16],
    }
    /// Every `remote_network_port_*_ret` that is one port handle.
    pub struct PortRet {
        /// The port.
        pub port: NonnullNetworkPort,
    }
    /// `remote_network_port_create_xml_args`.
    pub struct PortCreateXmlArgs {
        /// The network.
        pub network: NonnullNetwork,
        /// `<networkport>` XML.
        pub xml: String,
        /// Flags.
        pub flags: u32,
    }
    /// `remote_network_port_set_parameters_args`.
    pub struct PortSetParametersArgs {
        /// The port.
        pub port: NonnullNetworkPort,
        /// Parameters (bandwidth).
        pub params: List<TypedParam, NETWORK_PORT_PARAMETERS_MAX>,
        /// Flags.
        pub flags: u32,
    }
    /// `remote_network_port_get_parameters_args`.
    pub struct PortGetParametersArgs {
        /// The port.
        pub port: NonnullNetworkPort,
        /// Parameters the caller has room for.
        pub nparams: i32,
        /// Flags.
        pub flags: u32,
    }
    /// `remote_network_port_get_parameters_ret`.
    pub struct PortGetParametersRet {
        /// Parameters.
        pub params: List<TypedParam, NETWORK_PORT_PARAMETERS_MAX>,
        /// Count.
        pub nparams: i32,
    }
    /// `remote_network_port_get_xml_desc_args` and `remote_network_port_delete_args`.
    pub struct PortFlagsArgs {
        /// The port.
        pub port: NonnullNetworkPort,
        /// Flags.
        pub flags: u32,
    }
}

/// Declares the procedures: their numbers, wire names, argument and return types.
macro_rules! procedures {
    ($( $variant:ident = $num:literal, $wire:literal, $args:ty, $ret:ty; )*) => {
        /// A `remote_procedure` this crate has types for.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(i32)]
        pub enum Procedure { $( #[doc = concat!("`REMOTE_PROC_", $wire, "`")] $variant = $num ),* }

        impl Procedure {
            /// The procedure of a number.
            pub fn from_i32(n: i32) -> Option<Procedure> {
                match n { $( $num => Some(Procedure::$variant), )* _ => None }
            }
            /// The name in `remote_protocol.x`, without `REMOTE_PROC_`.
            pub fn wire_name(self) -> &'static str {
                match self { $( Procedure::$variant => $wire ),* }
            }
        }

        /// A call's arguments, typed by procedure.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Call { $( #[doc = concat!("`REMOTE_PROC_", $wire, "`")] $variant($args) ),* }

        impl Call {
            /// Its procedure.
            pub fn procedure(&self) -> Procedure {
                match self { $( Call::$variant(_) => Procedure::$variant ),* }
            }
            /// Decodes a call's body; every byte must belong to it.
            pub fn decode(proc_: i32, body: &[u8]) -> Result<Call, DecodeError> {
                let mut r = Reader::new(body);
                let call = match Procedure::from_i32(proc_) {
                    $( Some(Procedure::$variant) => Call::$variant(<$args>::decode(&mut r)?), )*
                    None => return Err(DecodeError::UnknownProcedure(proc_)),
                };
                r.finish()?;
                Ok(call)
            }
            /// Encodes the body.
            pub fn encode(&self) -> Vec<u8> {
                let mut w = Writer::new();
                match self { $( Call::$variant(a) => a.encode(&mut w) ),* }
                w.into_bytes()
            }
        }

        /// A successful reply's result, typed by procedure.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Reply { $( #[doc = concat!("`REMOTE_PROC_", $wire, "`")] $variant($ret) ),* }

        impl Reply {
            /// Its procedure.
            pub fn procedure(&self) -> Procedure {
                match self { $( Reply::$variant(_) => Procedure::$variant ),* }
            }
            /// Decodes a reply's body; every byte must belong to it.
            pub fn decode(proc_: i32, body: &[u8]) -> Result<Reply, DecodeError> {
                let mut r = Reader::new(body);
                let reply = match Procedure::from_i32(proc_) {
                    $( Some(Procedure::$variant) => Reply::$variant(<$ret>::decode(&mut r)?), )*
                    None => return Err(DecodeError::UnknownProcedure(proc_)),
                };
                r.finish()?;
                Ok(reply)
            }
            /// Encodes the body.
            pub fn encode(&self) -> Vec<u8> {
                let mut w = Writer::new();
                match self { $( Reply::$variant(a) => a.encode(&mut w) ),* }
                w.into_bytes()
            }
        }
    };
}

procedures! {
    ConnectOpen = 1, "CONNECT_OPEN", ConnectOpenArgs, ();
    ConnectClose = 2, "CONNECT_CLOSE", (), ();
    ConnectGetType = 3, "CONNECT_GET_TYPE", (), GetTypeRet;
    ConnectGetVersion = 4, "CONNECT_GET_VERSION", (), GetVersionRet;
    ConnectGetCapabilities = 7, "CONNECT_GET_CAPABILITIES", (), GetCapabilitiesRet;
    ConnectListDefinedNetworks = 36, "CONNECT_LIST_DEFINED_NETWORKS", ListNamesArgs, ListNamesRet;
    ConnectListNetworks = 38, "CONNECT_LIST_NETWORKS", ListNamesArgs, ListNamesRet;
    NetworkCreate = 39, "NETWORK_CREATE", NetArgs, ();
    NetworkCreateXml = 40, "NETWORK_CREATE_XML", XmlArgs, NetRet;
    NetworkDefineXml = 41, "NETWORK_DEFINE_XML", XmlArgs, NetRet;
    NetworkDestroy = 42, "NETWORK_DESTROY", NetArgs, ();
    NetworkGetXmlDesc = 43, "NETWORK_GET_XML_DESC", GetXmlDescArgs, XmlRet;
    NetworkGetAutostart = 44, "NETWORK_GET_AUTOSTART", NetArgs, AutostartRet;
    NetworkGetBridgeName = 45, "NETWORK_GET_BRIDGE_NAME", NetArgs, BridgeNameRet;
    NetworkLookupByName = 46, "NETWORK_LOOKUP_BY_NAME", LookupByNameArgs, NetRet;
    NetworkLookupByUuid = 47, "NETWORK_LOOKUP_BY_UUID", LookupByUuidArgs, NetRet;
    NetworkSetAutostart = 48, "NETWORK_SET_AUTOSTART", SetAutostartArgs, ();
    NetworkUndefine = 49, "NETWORK_UNDEFINE", NetArgs, ();
    ConnectNumOfDefinedNetworks = 50, "CONNECT_NUM_OF_DEFINED_NETWORKS", (), NumRet;
    ConnectNumOfNetworks = 52, "CONNECT_NUM_OF_NETWORKS", (), NumRet;
    ConnectGetHostname = 59, "CONNECT_GET_HOSTNAME", (), GetHostnameRet;
    ConnectSupportsFeature = 60, "CONNECT_SUPPORTS_FEATURE", SupportsFeatureArgs, SupportsFeatureRet;
    AuthList = 66, "AUTH_LIST", (), AuthListRet;
    ConnectGetUri = 110, "CONNECT_GET_URI", (), GetUriRet;
    ConnectIsSecure = 149, "CONNECT_IS_SECURE", (), IsSecureRet;
    NetworkIsActive = 152, "NETWORK_IS_ACTIVE", NetArgs, IsActiveRet;
    NetworkIsPersistent = 153, "NETWORK_IS_PERSISTENT", NetArgs, IsPersistentRet;
    ConnectGetLibVersion = 157, "CONNECT_GET_LIB_VERSION", (), GetLibVersionRet;
    ConnectListAllNetworks = 283, "CONNECT_LIST_ALL_NETWORKS", ListAllNetworksArgs, ListAllNetworksRet;
    NetworkUpdate = 291, "NETWORK_UPDATE", UpdateArgs, ();
    ConnectNetworkEventRegisterAny = 313, "CONNECT_NETWORK_EVENT_REGISTER_ANY", EventRegisterAnyArgs, CallbackId;
    ConnectNetworkEventDeregisterAny = 314, "CONNECT_NETWORK_EVENT_DEREGISTER_ANY", CallbackId, ();
    NetworkGetDhcpLeases = 341, "NETWORK_GET_DHCP_LEASES", GetDhcpLeasesArgs, GetDhcpLeasesRet;
    ConnectRegisterCloseCallback = 360, "CONNECT_REGISTER_CLOSE_CALLBACK", (), ();
    ConnectUnregisterCloseCallback = 361, "CONNECT_UNREGISTER_CLOSE_CALLBACK", (), ();
    NetworkListAllPorts = 404, "NETWORK_LIST_ALL_PORTS", ListAllPortsArgs, ListAllPortsRet;
    NetworkPortLookupByUuid = 405, "NETWORK_PORT_LOOKUP_BY_UUID", PortLookupByUuidArgs, PortRet;
    NetworkPortCreateXml = 406, "NETWORK_PORT_CREATE_XML", PortCreateXmlArgs, PortRet;
    NetworkPortGetParameters = 407, "NETWORK_PORT_GET_PARAMETERS", PortGetParametersArgs, PortGetParametersRet;
    NetworkPortSetParameters = 408, "NETWORK_PORT_SET_PARAMETERS", PortSetParametersArgs, ();
    NetworkPortGetXmlDesc = 409, "NETWORK_PORT_GET_XML_DESC", PortFlagsArgs, XmlRet;
    NetworkPortDelete = 410, "NETWORK_PORT_DELETE", PortFlagsArgs, ();
    ConnectSetIdentity = 419, "CONNECT_SET_IDENTITY", SetIdentityArgs, ();
    NetworkDefineXmlFlags = 432, "NETWORK_DEFINE_XML_FLAGS", XmlFlagsArgs, NetRet;
    NetworkCreateXmlFlags = 437, "NETWORK_CREATE_XML_FLAGS", XmlFlagsArgs, NetRet;
}

/// `REMOTE_PROC_NETWORK_EVENT_LIFECYCLE`: sent as a message (type 2), never called.
pub const PROC_NETWORK_EVENT_LIFECYCLE: i32 = 315;

/// `KEEPALIVE_PROGRAM`.
pub const KEEPALIVE_PROGRAM: u32 = 0x6b65_6570;
/// `KEEPALIVE_PROTOCOL_VERSION`.
pub const KEEPALIVE_PROTOCOL_VERSION: u32 = 1;

/// `keepalive_procedure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Keepalive {
    /// `KEEPALIVE_PROC_PING`.
    Ping = 1,
    /// `KEEPALIVE_PROC_PONG`.
    Pong = 2,
}

/// A decoded message's body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A call of `REMOTE_PROGRAM`.
    Call(Call),
    /// A successful reply.
    Reply(Reply),
    /// An error reply.
    Error(RpcError),
    /// A lifecycle event.
    Event(NetworkEventLifecycleMsg),
    /// A keepalive message (no body).
    Keepalive(Keepalive),
}

/// A whole message: header and typed body.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The header.
    pub header: Header,
    /// The body.
    pub body: Body,
}

impl Message {
    /// Decodes a message from its header and body bytes.
    pub fn decode(header: Header, body: &[u8]) -> Result<Message, DecodeError> {
        let decoded = match header.prog {
            REMOTE_PROGRAM => match (header.kind, header.status) {
                (MessageType::Call, _) => Body::Call(Call::decode(header.proc_, body)?),
                (MessageType::Reply, Status::Error) => {
                    let mut r = Reader::new(body);
                    let e = RpcError::decode(&mut r)?;
                    r.finish()?;
                    Body::Error(e)
                }
                (MessageType::Reply, _) => Body::Reply(Reply::decode(header.proc_, body)?),
                (MessageType::Message, _) if header.proc_ == PROC_NETWORK_EVENT_LIFECYCLE => {
                    let mut r = Reader::new(body);
                    let e = NetworkEventLifecycleMsg::decode(&mut r)?;
                    r.finish()?;
                    Body::Event(e)
                }
                (kind, _) => return Err(DecodeError::BadEnum("type", kind as i32)),
            },
            KEEPALIVE_PROGRAM => {
                Reader::new(body).finish()?;
                match header.proc_ {
                    1 => Body::Keepalive(Keepalive::Ping),
                    2 => Body::Keepalive(Keepalive::Pong),
                    n => return Err(DecodeError::UnknownProcedure(n)),
                }
            }
            prog => return Err(DecodeError::UnknownProgram(prog)),
        };
        Ok(Message {
            header,
            body: decoded,
        })
    }

    /// Decodes a whole frame (length word included).
    pub fn decode_frame(frame: &[u8]) -> Result<Message, DecodeError> {
        let (header, body) = crate::frame::split_frame(frame)?;
        Message::decode(header, body)
    }

    /// The body's encoding.
    pub fn encode_body(&self) -> Vec<u8> {
        match &self.body {
            Body::Call(c) => c.encode(),
            Body::Reply(r) => r.encode(),
            Body::Error(e) => encode(e),
            Body::Event(e) => encode(e),
            Body::Keepalive(_) => Vec::new(),
        }
    }

    /// The whole frame (length word included).
    pub fn encode_frame(&self) -> Vec<u8> {
        crate::frame::build_frame(&self.header, &self.encode_body())
    }
}

/// Encodes one XDR value.
pub fn encode<T: Xdr>(value: &T) -> Vec<u8> {
    let mut w = Writer::new();
    value.encode(&mut w);
    w.into_bytes()
}

//! The command line, as clap types. Verb names, options and help texts follow `virsh`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Manage virtnet virtual networks (virsh-compatible network verbs).
#[derive(Debug, Parser)]
#[command(
    name = "virtnet",
    version,
    about = "Manage virtnet virtual networks with virsh-compatible verbs",
    long_about = "virtnet talks to virtnetd over its unix socket and offers virsh's network \
                  verbs (net-list, net-define, net-edit, ...) with virsh's output, plus --json.",
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Socket of the virtnetd API.
    #[arg(
        short = 'c',
        long = "connect",
        value_name = "PATH",
        env = "VIRTNET_SOCKET",
        hide_env_values = true,
        default_value = "/run/virtnet/virtnet.sock",
        global = true
    )]
    pub connect: PathBuf,

    /// Read-only connection (virsh -r): use the read-only socket, virtnet-ro.sock, next to the
    /// --connect one; open to users who may not change networks, it answers reads only.
    #[arg(short = 'r', long = "readonly", global = true)]
    pub readonly: bool,

    /// Quiet mode: no table headers and no informational messages (virsh -q).
    #[arg(short = 'q', long = "quiet", global = true)]
    pub quiet: bool,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The socket to talk to: `--connect`, or with `--readonly` the read-only socket in the
    /// same directory.
    pub fn socket(&self) -> PathBuf {
        if self.readonly {
            self.connect.with_file_name(virtnet_api::RO_SOCKET_NAME)
        } else {
            self.connect.clone()
        }
    }
}

/// The verbs.
#[derive(Debug, Subcommand)]
#[command(rename_all = "kebab-case")]
pub enum Command {
    /// List networks.
    NetList(NetListArgs),
    /// Network information.
    NetInfo(NetInfoArgs),
    /// Convert a network name to network UUID.
    NetUuid(NetNameArg),
    /// Convert a network UUID to network name.
    NetName(NetUuidArg),
    /// Network information in XML.
    NetDumpxml(NetDumpxmlArgs),
    /// Define an inactive persistent virtual network or modify an existing persistent one from
    /// an XML file.
    NetDefine(FileArg),
    /// Create a network from an XML file.
    NetCreate(FileArg),
    /// Start one or more (previously defined) inactive networks, in the order given; a progress
    /// line counts them on a terminal.
    NetStart(NetworksArg),
    /// Destroy (stop) one or more networks.
    NetDestroy(NetworksArg),
    /// List virtnet's bridges and their interfaces (brctl show).
    IfaceBridges(JsonArg),
    /// Create a bridge device and attach an existing network device to it; virtnetd checks
    /// connectivity and rolls back by itself when the check fails.
    IfaceBridge(IfaceBridgeArgs),
    /// Undefine a bridge device after detaching its device(s) (one made by iface-bridge).
    IfaceUnbridge(IfaceUnbridgeArgs),
    /// Keep a change iface-bridge made with --confirm-timeout.
    IfaceConfirm(IfaceConfirmArgs),
    /// Print lease info for a given network.
    NetDhcpLeases(NetDhcpLeasesArgs),
    /// Network events: wait for DHCP lease events and print them.
    NetEvent(NetEventArgs),
    /// Undefine a persistent network.
    NetUndefine(NetworkArg),
    /// Autostart a network.
    NetAutostart(NetAutostartArgs),
    /// Edit XML configuration for a network.
    NetEdit(NetworkArg),
    /// Update parts of an existing network's configuration.
    NetUpdate(NetUpdateArgs),
    /// Attach network interface (a port on a network's bridge, or on a bridge).
    AttachInterface(AttachInterfaceArgs),
    /// Detach network interface.
    DetachInterface(DetachInterfaceArgs),
    /// Attach device from an XML file (a guest <interface>).
    AttachDevice(DeviceFileArgs),
    /// Detach device from an XML file (a guest <interface>).
    DetachDevice(DeviceFileArgs),
    /// Update device from an XML file: moves a guest <interface> to another network or
    /// bridge, live.
    UpdateDevice(DeviceFileArgs),
    /// List the guest ports (taps) virtnet manages.
    PortList(PortListArgs),
    /// Set link state of a virtual interface.
    DomifSetlink(DomifSetlinkArgs),
    /// Get link state of a virtual interface.
    DomifGetlink(DomifGetlinkArgs),
    /// List all domain virtual interfaces.
    Domiflist(DomiflistArgs),
    /// Get network interfaces' addresses for a running domain.
    Domifaddr(DomifaddrArgs),
    /// Create a network port from an XML file (as libvirt's hypervisor daemon does).
    NetPortCreate(NetPortCreateArgs),
    /// List the network ports of a network (those libvirt's hypervisor daemon announced).
    NetPortList(NetPortListArgs),
    /// Network port information in XML.
    NetPortDumpxml(NetPortArgs),
    /// Delete the specified network port (the hypervisor's tap is left as it is).
    NetPortDelete(NetPortArgs),
    /// Forward a host port to a guest of a NAT or routed network.
    ForwardAdd(ForwardAddArgs),
    /// List port forwards.
    ForwardList(ForwardListArgs),
    /// Remove a port forward.
    ForwardDel(ForwardDelArgs),
    /// Show the other firewalls virtnetd found (tables whose drop would hit guest traffic,
    /// Docker's chains, firewalld) and what it did about them.
    Doctor(JsonArg),
    /// Print the web console's access token (root only; virtnetd must run with --web-listen).
    WebToken(WebTokenArgs),
    /// Set this host's place in the BGP EVPN fabric; virtnetd (re)starts its own FRR with it.
    FabricSet(FabricSetArgs),
    /// Show the fabric's BGP sessions (state, uptime, routes received) and the VNIs FRR knows.
    FabricStatus(JsonArg),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Print the manual page (roff), or write one page per command into a directory.
    Man(ManArgs),
}

/// `net-list`.
#[derive(Debug, Args)]
pub struct NetListArgs {
    /// List inactive networks.
    #[arg(long)]
    pub inactive: bool,
    /// List inactive & active networks.
    #[arg(long)]
    pub all: bool,
    /// List persistent networks.
    #[arg(long)]
    pub persistent: bool,
    /// List transient networks.
    #[arg(long)]
    pub transient: bool,
    /// List networks with autostart enabled.
    #[arg(long)]
    pub autostart: bool,
    /// List networks with autostart disabled.
    #[arg(long = "no-autostart")]
    pub no_autostart: bool,
    /// List uuid's only.
    #[arg(long)]
    pub uuid: bool,
    /// List network names only.
    #[arg(long)]
    pub name: bool,
    /// List table (default).
    #[arg(long)]
    pub table: bool,
    /// Show network title.
    #[arg(long)]
    pub title: bool,
    /// Print the networks as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `net-info`.
#[derive(Debug, Args)]
pub struct NetInfoArgs {
    /// Network name or uuid.
    #[arg(value_name = "NETWORK", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub network: String,
    /// Print the information as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One or more networks given by name or UUID.
#[derive(Debug, Args)]
pub struct NetworksArg {
    /// Network names or uuids.
    #[arg(value_name = "NETWORK", required = true, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub networks: Vec<String>,
}

/// Arguments of `web-token`.
#[derive(Debug, Args)]
pub struct WebTokenArgs {
    /// Print the login URL (`http://ADDR:PORT/login?token=…`) instead of the bare token.
    #[arg(long, conflicts_with = "json")]
    pub url: bool,
    /// Print token, listen address and login URL as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `fabric-set`.
#[derive(Debug, Args)]
pub struct FabricSetArgs {
    /// The fabric's autonomous system number (the same on every host: iBGP), 1..4294967295.
    #[arg(long, value_name = "N")]
    pub asn: u64,
    /// BGP router id (an IPv4 address, usually the underlay address).
    #[arg(long, value_name = "ADDR")]
    pub router_id: String,
    /// The interface facing the other hosts.
    #[arg(long, value_name = "IFACE")]
    pub underlay: String,
    /// An iBGP peer (another host); repeat for each.
    #[arg(long = "peer", value_name = "ADDR")]
    pub peers: Vec<String>,
    /// A route reflector; repeat for redundant reflectors. This host's own router id among
    /// them makes it a reflector (the peers are its clients); otherwise it is their client.
    #[arg(long = "route-reflector", value_name = "ADDR")]
    pub route_reflectors: Vec<String>,
    /// Print the recorded fabric as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Only a `--json` switch.
#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `iface-bridge`.
#[derive(Debug, Args)]
pub struct IfaceBridgeArgs {
    /// Existing interface name.
    pub iface: String,
    /// New bridge device name.
    pub bridge: String,
    /// Do not enable STP for this bridge. Without it STP is on, but only turned on once
    /// the interface is a port, so the interface keeps forwarding (no outage); ports added
    /// later wait out the forward delay twice.
    #[arg(long = "no-stp")]
    pub no_stp: bool,
    /// Number of seconds to squelch traffic on newly connected ports.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub delay: u32,
    /// Address that must answer afterwards (default: the default route's gateway).
    #[arg(long, value_name = "ADDR")]
    pub check: Option<std::net::IpAddr>,
    /// Keep the change only if iface-confirm comes within N seconds.
    #[arg(long = "confirm-timeout", value_name = "N")]
    pub confirm_timeout: Option<u32>,
    /// Only print what would be done.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `iface-unbridge`.
#[derive(Debug, Args)]
pub struct IfaceUnbridgeArgs {
    /// Current bridge device name.
    pub bridge: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `iface-confirm`.
#[derive(Debug, Args)]
pub struct IfaceConfirmArgs {
    /// The bridge waiting for a confirmation.
    pub bridge: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A network given by name or UUID.
#[derive(Debug, Args)]
pub struct NetworkArg {
    /// Network name or uuid.
    #[arg(value_name = "NETWORK", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub network: String,
}

/// A network given by name.
#[derive(Debug, Args)]
pub struct NetNameArg {
    /// Network name.
    #[arg(value_name = "NETWORK", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub network: String,
}

/// A network given by UUID.
#[derive(Debug, Args)]
pub struct NetUuidArg {
    /// Network uuid.
    #[arg(value_name = "NETWORK", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub network: String,
}

/// `net-dumpxml`.
#[derive(Debug, Args)]
pub struct NetDumpxmlArgs {
    /// Network name or uuid.
    #[arg(value_name = "NETWORK", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub network: String,
    /// Show inactive defined XML.
    #[arg(long)]
    pub inactive: bool,
    /// Print the definition as JSON instead of XML.
    #[arg(long)]
    pub json: bool,
}

/// `net-define` / `net-create`.
#[derive(Debug, Args)]
pub struct FileArg {
    /// File containing an XML network description.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `net-autostart`.
#[derive(Debug, Args)]
pub struct NetAutostartArgs {
    /// Network name or uuid.
    #[arg(value_name = "NETWORK", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub network: String,
    /// Disable autostarting.
    #[arg(long)]
    pub disable: bool,
}

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to generate the script for.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// Shells with completion scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// `man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write virtnet.1 and one virtnet-VERB.1 per verb into this directory instead of printing
    /// virtnet.1.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// `forward-add`.
#[derive(Debug, Args)]
pub struct ForwardAddArgs {
    /// Network name or UUID.
    #[arg(value_name = "NETWORK", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub network: String,
    /// Protocol: tcp or udp.
    #[arg(long)]
    pub proto: String,
    /// Host port, or range P-Q.
    #[arg(long)]
    pub port: String,
    /// Host address to listen on (default: every host address not on a virtnet bridge).
    #[arg(long)]
    pub listen: Option<String>,
    /// Guest address or name, with an optional port or range: GUEST[:PORT[-PORT]]
    /// (an IPv6 address with a port in brackets: [fd00::5]:80).
    #[arg(long)]
    pub to: String,
}

/// `forward-list`.
#[derive(Debug, Args)]
pub struct ForwardListArgs {
    /// Only this network's forwards.
    #[arg(value_name = "NETWORK")]
    pub network: Option<String>,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `forward-del`.
#[derive(Debug, Args)]
pub struct ForwardDelArgs {
    /// Network name or UUID.
    #[arg(value_name = "NETWORK", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub network: String,
    /// Protocol: tcp or udp.
    #[arg(long)]
    pub proto: String,
    /// A host port of the forward.
    #[arg(long)]
    pub port: u16,
    /// The forward's listen address (default: the forward on every host address).
    #[arg(long)]
    pub listen: Option<String>,
}

/// `net-dhcp-leases`.
#[derive(Debug, Args)]
pub struct NetDhcpLeasesArgs {
    /// Network name or UUID.
    #[arg(value_name = "NETWORK", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub network: String,
    /// MAC address: only this client's leases.
    #[arg(long)]
    pub mac: Option<String>,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `net-event`.
#[derive(Debug, Args)]
pub struct NetEventArgs {
    /// Only events of this network.
    #[arg(long, value_name = "NETWORK")]
    pub network: Option<String>,
    /// Loop until the timeout or interrupt, rather than one event.
    #[arg(long = "loop")]
    pub looping: bool,
    /// Timeout in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Show a timestamp before each event.
    #[arg(long)]
    pub timestamp: bool,
}

/// `net-update`.
#[derive(Debug, Args)]
pub struct NetUpdateArgs {
    /// Network name or uuid.
    #[arg(value_name = "NETWORK", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub network: String,
    /// Type of update (add-first, add-last (add), delete, or modify).
    #[arg(value_name = "COMMAND")]
    pub command: String,
    /// Which section of network configuration to update (ip-dhcp-host, ip-dhcp-range,
    /// forward-interface, portgroup, dns-host, dns-txt, dns-srv).
    #[arg(value_name = "SECTION")]
    pub section: String,
    /// Name of file containing xml (or, if it starts with '<', the complete xml element).
    #[arg(value_name = "XML")]
    pub xml: String,
    /// Which parent object to search through (the n-th <ip> for ip-dhcp-*; -1: automatic).
    #[arg(long = "parent-index", value_name = "N", allow_negative_numbers = true)]
    pub parent_index: Option<i64>,
    /// Affect next network startup (the persistent definition).
    #[arg(long)]
    pub config: bool,
    /// Affect running network.
    #[arg(long)]
    pub live: bool,
    /// Affect current state of network.
    #[arg(long)]
    pub current: bool,
}

/// `attach-interface DOMAIN TYPE SOURCE`. Like virsh, the data arguments may also be given by
/// name (`--domain vm --type network --source default`), in any mix with positional ones.
#[derive(Debug, Args)]
pub struct AttachInterfaceArgs {
    /// DOMAIN, TYPE (network or bridge) and SOURCE (network name or bridge device), in this
    /// order, for those not given by option.
    #[arg(value_name = "DOMAIN TYPE SOURCE", num_args = 0..)]
    pub args: Vec<String>,
    #[command(flatten)]
    pub by_name: DomainTypeOptions,
    /// Source of network interface: the network's name or the bridge's device name.
    #[arg(long, value_name = "SOURCE")]
    pub source: Option<String>,
    /// Target device name of the tap (default the next free vnetN).
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
    /// MAC address (default a random 52:54:00:xx:xx:xx).
    #[arg(long, value_name = "MAC")]
    pub mac: Option<String>,
    /// Model type (virtio, e1000, rtl8139...).
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Owner of the tap, so that an unprivileged QEMU can open it: USER[:GROUP], by name or
    /// number (virtnet's addition to virsh's verb).
    #[arg(long, value_name = "USER[:GROUP]")]
    pub owner: Option<String>,
    /// Queues of the tap (more than 1: multiqueue, for virtio-net with several vCPUs).
    #[arg(long, value_name = "N")]
    pub queues: Option<u32>,
    /// Let the guest send any source MAC and address (ports of nat, route and isolated
    /// networks otherwise carry only the guest's own MAC, leases and link-local addresses).
    #[arg(long)]
    pub no_spoof_check: bool,
    /// Isolate the port (`<port isolated='yes'/>`): it reaches the host and the outside but
    /// no other isolated port.
    #[arg(long)]
    pub isolated: bool,
    /// `--persistent`, `--config`, `--live`, `--current`.
    #[command(flatten)]
    pub scope: DeviceScopeFlags,
}

/// `--domain` and `--type` of `attach-interface` and `detach-interface`.
#[derive(Debug, Args)]
pub struct DomainTypeOptions {
    /// Domain name.
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// Network interface type: network or bridge.
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,
}

/// `--persistent`, `--config`, `--live` and `--current` of `attach-interface`,
/// `detach-interface` and the device verbs: accepted for virsh compatibility (virtnet ports are live).
#[derive(Debug, Args)]
pub struct DeviceScopeFlags {
    /// Make live change persistent (accepted; virtnet ports are live).
    #[arg(long)]
    pub persistent: bool,
    /// Affect next boot (accepted).
    #[arg(long)]
    pub config: bool,
    /// Affect running domain (accepted; the default).
    #[arg(long)]
    pub live: bool,
    /// Affect current domain (accepted; the default).
    #[arg(long)]
    pub current: bool,
}

/// `detach-interface DOMAIN TYPE [--mac MAC]`.
#[derive(Debug, Args)]
pub struct DetachInterfaceArgs {
    /// DOMAIN and TYPE (network or bridge), in this order, for those not given by option.
    #[arg(value_name = "DOMAIN TYPE", num_args = 0..)]
    pub args: Vec<String>,
    #[command(flatten)]
    pub by_name: DomainTypeOptions,
    /// MAC address of the interface to detach.
    #[arg(long, value_name = "MAC")]
    pub mac: Option<String>,
    #[command(flatten)]
    pub scope: DeviceScopeFlags,
}

/// `attach-device` / `detach-device` / `update-device DOMAIN FILE`.
#[derive(Debug, Args)]
pub struct DeviceFileArgs {
    /// DOMAIN and FILE (XML of a guest <interface>), in this order, for those not given by
    /// option.
    #[arg(value_name = "DOMAIN FILE", num_args = 0..)]
    pub args: Vec<String>,
    /// Domain name.
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// XML file.
    #[arg(long, value_name = "FILE")]
    pub file: Option<String>,
    #[command(flatten)]
    pub scope: DeviceScopeFlags,
    /// Force device update (accepted; update-device only).
    #[arg(long)]
    pub force: bool,
}

/// `port-list`.
#[derive(Debug, Args)]
pub struct PortListArgs {
    /// Only this domain's ports.
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// Print the ports as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `domif-setlink DOMAIN INTERFACE STATE`.
#[derive(Debug, Args)]
pub struct DomifSetlinkArgs {
    /// Domain name.
    #[arg(value_name = "DOMAIN", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub domain: String,
    /// Interface device (tap name or MAC address).
    #[arg(value_name = "INTERFACE", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub interface: String,
    /// New state of the device: up or down.
    #[arg(value_name = "STATE")]
    pub state: String,
    /// Affect next boot (accepted; virtnet ports are live).
    #[arg(long, alias = "persistent")]
    pub config: bool,
}

/// `domif-getlink DOMAIN INTERFACE`.
#[derive(Debug, Args)]
pub struct DomifGetlinkArgs {
    /// Domain name.
    #[arg(value_name = "DOMAIN", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub domain: String,
    /// Interface device (tap name or MAC address).
    #[arg(value_name = "INTERFACE", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub interface: String,
    /// Get persistent interface state (accepted; virtnet ports are live).
    #[arg(long, alias = "persistent")]
    pub config: bool,
}

/// `net-port-create NETWORK FILE`.
#[derive(Debug, Args)]
pub struct NetPortCreateArgs {
    /// Network name or uuid.
    #[arg(value_name = "NETWORK", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub network: String,
    /// File containing an XML network port description.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Validate the XML document against the schema (virtnet's reader always is strict).
    #[arg(long)]
    pub validate: bool,
    /// Reclaim a port the hypervisor already has (its plug is given in the XML).
    #[arg(long)]
    pub reclaim: bool,
}

/// `net-port-list NETWORK`.
#[derive(Debug, Args)]
pub struct NetPortListArgs {
    /// Network name or uuid.
    #[arg(value_name = "NETWORK", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub network: String,
    /// List UUIDs only.
    #[arg(long)]
    pub uuid: bool,
    /// Print the ports as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `net-port-dumpxml NETWORK PORT`, `net-port-delete NETWORK PORT`.
#[derive(Debug, Args)]
pub struct NetPortArgs {
    /// Network name or uuid.
    #[arg(value_name = "NETWORK", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub network: String,
    /// Port UUID.
    #[arg(value_name = "PORT", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub port: String,
}

/// `domiflist DOMAIN`.
#[derive(Debug, Args)]
pub struct DomiflistArgs {
    /// Domain name.
    #[arg(value_name = "DOMAIN", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub domain: String,
    /// Get inactive rather than running configuration (accepted; virtnet ports are live).
    #[arg(long)]
    pub inactive: bool,
    /// Print the interfaces as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `domifaddr DOMAIN [INTERFACE]`.
#[derive(Debug, Args)]
pub struct DomifaddrArgs {
    /// Domain name.
    #[arg(value_name = "DOMAIN", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub domain: String,
    /// Network interface name: only this interface's addresses.
    #[arg(value_name = "INTERFACE")]
    pub interface: Option<String>,
    /// Always display names and MACs of interfaces.
    #[arg(long)]
    pub full: bool,
    /// Address source: 'lease' or 'arp' (virsh's 'agent' needs a guest agent).
    #[arg(long, value_name = "SOURCE")]
    pub source: Option<String>,
    /// Print the addresses as JSON.
    #[arg(long)]
    pub json: bool,
}

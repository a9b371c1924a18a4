//! `virtnetd`: arguments, logging, runtime and exit status.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use tracing_subscriber::EnvFilter;
use virtnetd::server::{Config, Daemon, Shutdown};
use virtnetd::Error;

/// The virtnet daemon: manages virtual networks for KVM guests.
#[derive(Debug, Parser)]
#[command(name = "virtnetd", version, about)]
struct Args {
    /// Directory of persistent state (the store).
    #[arg(long, value_name = "DIR", default_value = virtnet_api::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// Directory of runtime files (the API sockets: virtnet.sock, read-write, and
    /// virtnet-ro.sock, read-only).
    #[arg(long, value_name = "DIR", default_value = virtnet_api::DEFAULT_RUN_DIR)]
    run_dir: PathBuf,
    /// Group (name or number) owning the read-write socket; its members may change networks
    /// besides root (checked on each connection by the peer's credentials). Default: root only.
    #[arg(long, value_name = "GROUP")]
    socket_group: Option<String>,
    /// Group (name or number) owning the read-only socket, which is then mode 0660. Default:
    /// mode 0666, every local user may list networks, definitions and leases.
    #[arg(long, value_name = "GROUP")]
    ro_socket_group: Option<String>,
    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives
    /// (`virtnetd=debug,info`).
    #[arg(long, value_name = "FILTER", default_value = "info")]
    log_level: String,
    /// File holding the kernel boot id (tests point it elsewhere to simulate a reboot).
    #[arg(long, hide = true, default_value = "/proc/sys/kernel/random/boot_id")]
    boot_id_file: PathBuf,
    /// Where the host's DNS resolvers are listed; networks without a `<forwarder>` forward
    /// their guests' queries there.
    #[arg(long, value_name = "FILE", default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// Port of the networks' DNS servers (53; tests and benchmarks may move it).
    #[arg(long, value_name = "PORT", default_value_t = 53, hide = true)]
    dns_port: u16,
    /// Root of the filesystem whose network configuration `iface-bridge` writes (tests use a
    /// scratch directory instead of the host's /etc).
    #[arg(long, value_name = "DIR", default_value = "/", hide = true)]
    host_config_root: PathBuf,
    /// Most ports the setuid bridge helper (`virtnet-bridge-helper`) may hold for one user at
    /// a time.
    #[arg(long, value_name = "N", default_value_t = virtnetd::ports::DEFAULT_HELPER_PORTS_PER_USER)]
    helper_ports_per_user: u32,
    /// Directory of libvirt's sockets: virtnetd serves libvirt's network daemon protocol on
    /// `virtnetworkd-sock` (read-write) and `virtnetworkd-sock-ro` (read-only) there, for
    /// virsh, virt-manager and the hypervisor daemon.
    #[arg(long, value_name = "DIR", default_value = virtnetd::libvirt::DEFAULT_RUN_DIR)]
    libvirt_run_dir: PathBuf,
    /// Do not serve libvirt's sockets.
    #[arg(long)]
    no_libvirt_sockets: bool,
    /// Group (name or number) whose members may use libvirt's read-write socket besides root.
    #[arg(long, value_name = "GROUP")]
    libvirt_socket_group: Option<String>,
    /// Let guest traffic through other firewalls' tables: when another table's input or
    /// forward chain would drop it (Docker's iptables FORWARD policy drop, ufw, a host
    /// firewall), add accepts scoped to virtnet's bridges there (in Docker's DOCKER-USER
    /// chain for Docker), tagged "virtnet:<network>", re-added when that table is re-created
    /// and removed when the network stops. Off by default: virtnet then edits no table but
    /// its own, and refuses to start a network such a table would break, naming it.
    #[arg(long)]
    firewall_integration: bool,
    /// Serve the web console on this TCP address (`127.0.0.1:8080`, `[::1]:8080`). Off by
    /// default. Every request needs the token `virtnet web-token` prints (new at each start),
    /// also on 127.0.0.1; the console can start, stop and define networks.
    #[arg(long, value_name = "ADDR:PORT")]
    web_listen: Option<std::net::SocketAddr>,
    /// Print virtnetd's manual page (roff, section 8) and exit (the Debian package ships it).
    #[arg(long, hide = true)]
    man: bool,
    /// Also serve Prometheus metrics (`GET /metrics`, nothing else, read-only, no
    /// authentication) on this TCP address, e.g. 127.0.0.1:9176. Off by default; the API
    /// sockets always serve `/metrics`.
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// FRR pathspace (FRR's `-N`) of virtnet's own zebra and bgpd, run in virtnetd's network
    /// namespace once a fabric is set (`virtnet fabric-set`): their configuration, pid files
    /// and vty sockets live in /var/run/frr/NAME/, and `vtysh -N NAME` talks to them. Several
    /// virtnetd in several namespaces need distinct names. An operator's own FRR (no
    /// pathspace) is never touched.
    #[arg(long, value_name = "NAME", default_value = virtnetd::fabric::DEFAULT_PATHSPACE)]
    frr_pathspace: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.man {
        return print_man_page();
    }
    let filter = match EnvFilter::try_new(&args.log_level) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: invalid --log-level '{}': {e}", args.log_level);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, as every virtnet binary reports a fatal error (the log goes to the same
            // stderr, so it is not repeated there).
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes the manual page, virtnetd(8), generated from the arguments above, to stdout.
fn print_man_page() -> ExitCode {
    let man = clap_mangen::Man::new(Args::command()).section("8");
    match man.render(&mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the manual page: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The gid of a `--socket-group`-like flag's value, if given.
fn group_flag(flag: &str, value: Option<&str>) -> Result<Option<u32>, Error> {
    value
        .map(virtnetd::access::lookup_group)
        .transpose()
        .map_err(|e| Error::Startup(format!("--{flag}: {e}")))
}

fn run(args: Args) -> Result<(), Error> {
    let socket_gid = group_flag("socket-group", args.socket_group.as_deref())?;
    let ro_socket_gid = group_flag("ro-socket-group", args.ro_socket_group.as_deref())?;
    virtnetd::fabric::check_pathspace(&args.frr_pathspace)
        .map_err(|e| Error::Startup(format!("--frr-pathspace: {e}")))?;
    let libvirt_gid = group_flag("libvirt-socket-group", args.libvirt_socket_group.as_deref())?;
    let config = Config {
        state_dir: args.state_dir,
        run_dir: args.run_dir,
        boot_id_file: args.boot_id_file,
        services: virtnetd::services::ServiceOptions {
            resolv_conf: args.resolv_conf,
            dns_port: args.dns_port,
            tftp_port: 69,
            host_config_root: args.host_config_root,
        },
        helper_ports: virtnetd::ports::HelperPortPolicy {
            per_user: args.helper_ports_per_user,
            ..Default::default()
        },
        socket_gid,
        ro_socket_gid,
        libvirt: virtnetd::libvirt::LibvirtConfig {
            run_dir: (!args.no_libvirt_sockets).then_some(args.libvirt_run_dir),
            socket_gid: libvirt_gid,
        },
        firewall_integration: args.firewall_integration,
        web_listen: args.web_listen,
        metrics_listen: args.metrics_listen,
        frr_pathspace: args.frr_pathspace,
    };
    // Before anything opens a descriptor: every running network keeps a few sockets.
    virtnetd::limits::raise_open_files_logged();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("virtnetd")
        .build()
        .map_err(|e| Error::Io {
            context: "cannot start the async runtime".into(),
            source: e,
        })?;
    let served = runtime.block_on(async {
        // Signals first: a stop request during start-up is then a clean stop, not a kill.
        let shutdown = Shutdown::install()?;
        // Start-up is synchronous (locks, store, socket) and nothing else runs yet.
        let mut daemon = Daemon::start(&config)?;
        let served = daemon.serve(shutdown.wait()).await;
        Ok::<_, Error>((daemon, served))
    });
    // Commits still running on the blocking pool finish before the store is closed.
    runtime.shutdown_timeout(Duration::from_secs(30));
    let (daemon, served) = served?;
    daemon.close();
    served
}

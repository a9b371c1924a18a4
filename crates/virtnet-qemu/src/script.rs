//! `virtnet-ifup` / `virtnet-ifdown`: QEMU's `script=` and `downscript=` hooks for
//! `-netdev tap,ifname=TAP,script=/usr/libexec/virtnet-ifup,downscript=/usr/libexec/virtnet-ifdown`.
//!
//! QEMU (running as root: it creates the tap itself) runs the script with the tap's name as
//! its only argument and QEMU's environment, after creating the tap and before the guest
//! starts; the down script runs when the NIC goes away, while the tap still exists, and QEMU
//! deletes the tap when it closes it afterwards.
//!
//! - up: the tap is adopted by virtnetd (`create_port` with `target` = the tap): attached to
//!   the network `$VIRTNET_NETWORK` (default `default`), or to the host bridge
//!   `$VIRTNET_BRIDGE` when only that is set, with the domain and MAC of
//!   [`crate::identity`]. When a port of that name exists already (made beforehand with
//!   `virtnet attach-interface --target TAP`, or left over by a QEMU that was killed), it is
//!   moved to that network, which also attaches the new tap to its bridge.
//! - down: the port is deleted; an adopted tap is only detached (QEMU deletes it). A port
//!   that does not exist is not an error.

use virtnet_api::{ErrorCode, Port, PortRequest};
use virtnet_model::InterfaceSource;

use crate::cmdline::on_tap;
use crate::daemon::client;
use crate::identity::identify;
use crate::privilege::trusted_env;
use crate::Error;

/// The network to attach to.
pub const NETWORK_ENV: &str = "VIRTNET_NETWORK";
/// A host bridge to attach to instead (when no network is named).
pub const BRIDGE_ENV: &str = "VIRTNET_BRIDGE";
/// The network used when neither is set.
pub const DEFAULT_NETWORK: &str = "default";

/// Where the port goes, from the environment.
pub fn source() -> InterfaceSource {
    let var = |n: &str| trusted_env(n).map(|v| v.to_string_lossy().into_owned());
    match (var(NETWORK_ENV), var(BRIDGE_ENV)) {
        (Some(n), _) => InterfaceSource::Network(n),
        (None, Some(b)) => InterfaceSource::Bridge(b),
        (None, None) => InterfaceSource::Network(DEFAULT_NETWORK.to_string()),
    }
}

/// `script=`: adopts `tap` into the network (or re-attaches the port of that name).
pub fn up(tap: &str) -> Result<Port, Error> {
    let client = client();
    let source = source();
    let exists = client
        .ports(None)
        .map_err(|e| Error::new(format!("cannot list virtnet's ports: {e}")))?
        .iter()
        .any(|p| p.name == tap);
    if exists {
        return client
            .move_port(tap, source)
            .map_err(|e| Error::new(format!("cannot re-attach port {tap}: {e}")));
    }
    let who = identify(on_tap(tap))?;
    client
        .create_port(&PortRequest {
            domain: who.domain,
            source,
            mac: who.mac,
            model: who.model,
            target: Some(tap.to_string()),
            owner_uid: None,
            owner_gid: None,
            helper: false,
            no_spoof_check: false,
            isolated: false,
            queues: None,
            vnet_hdr: false,
        })
        .map_err(|e| Error::new(format!("virtnetd refused to adopt {tap}: {e}")))
}

/// `downscript=`: forgets the port `tap` (detaching an adopted tap). `Ok(None)` when there
/// was no such port.
pub fn down(tap: &str) -> Result<Option<Port>, Error> {
    match client().delete_port(tap) {
        Ok(p) => Ok(Some(p)),
        Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(None),
        Err(e) => Err(Error::new(format!("cannot delete port {tap}: {e}"))),
    }
}

/// The scripts' `main`: parses the command line (`forced`: the binary's own mode, which
/// `--up`/`--down` still override), runs, reports on stderr (QEMU shows it) and returns the
/// exit status (QEMU fails the netdev when `script=` fails, and only warns for `downscript=`).
pub fn main(forced: Option<crate::ScriptMode>) -> std::process::ExitCode {
    use crate::args::SCRIPT_USAGE;
    use crate::{Parsed, ScriptArgs, ScriptMode};
    use std::process::ExitCode;

    let mut argv = std::env::args_os();
    let argv0 = match forced {
        Some(ScriptMode::Down) => "virtnet-ifdown".into(),
        Some(ScriptMode::Up) => "virtnet-ifup".into(),
        None => argv.next().unwrap_or_else(|| "virtnet-ifup".into()),
    };
    if forced.is_some() {
        argv.next();
    }
    let rest: Vec<std::ffi::OsString> = argv.collect();
    let name = std::path::Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "virtnet-ifup".into());
    let args = match ScriptArgs::parse(&argv0, &rest) {
        Ok(Parsed::Run(a)) => a,
        Ok(Parsed::Help) => {
            println!("{SCRIPT_USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{name}: {e}\n{SCRIPT_USAGE}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match args.mode {
        ScriptMode::Up => up(&args.tap).map(|p| {
            format!(
                "{} attached to {} (domain {}, MAC {})",
                p.name, p.bridge, p.domain, p.mac
            )
        }),
        ScriptMode::Down => down(&args.tap).map(|p| match p {
            Some(p) => format!("{} detached from {}", p.name, p.bridge),
            None => format!("{} was no virtnet port", args.tap),
        }),
    };
    match outcome {
        Ok(msg) => {
            eprintln!("{name}: {msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

//! The fabric (issue 17): this host's place in a BGP EVPN fabric of KVM hosts.
//!
//! `fabric-set` (`PUT /v1/fabric`) validates and records the fabric in the store (table
//! `fabric`), renders FRR's configuration from it ([`render`]) and makes virtnet's own FRR
//! instance run it ([`frr`]: `zebra` and `bgpd` under the pathspace `--frr-pathspace`, in
//! virtnetd's network namespace). `fabric-status` asks that instance through `vtysh`
//! ([`status`]). FRR does the BGP; virtnet never reimplements it (`docs/FABRIC.md`).
//!
//! The record is the desired state: at start-up virtnetd adopts the daemons its predecessor
//! left running when they run the recorded fabric (else restarts them), and ends them when
//! no fabric is recorded; at shutdown it leaves them running, as it leaves the networks.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use virtnet_api::{Fabric, FabricRequest, FabricSettings, FabricStatus};

use crate::error::{Error, Result};
use crate::store::Store;
use crate::sync::lock;

pub mod frr;
pub mod render;
pub mod status;

use frr::Frr;

/// FRR's pathspace when `--frr-pathspace` is not given.
pub const DEFAULT_PATHSPACE: &str = "virtnet";
/// Longest pathspace: its sockets' paths (`/var/run/frr/<name>/zserv.api`) stay well within a
/// unix socket's 108 bytes.
const MAX_PATHSPACE: usize = 48;

/// How virtnetd runs FRR (`virtnetd --frr-pathspace`).
#[derive(Debug, Clone)]
pub struct FrrOptions {
    /// FRR's pathspace (`-N`) of virtnet's daemons.
    pub pathspace: String,
    /// virtnetd's run directory (the daemons' logs go to `<run-dir>/frr/`).
    pub run_dir: PathBuf,
}

/// Checks a pathspace name: letters, digits, `-` and `_` (it becomes a directory name and an
/// argument of FRR's daemons).
pub fn check_pathspace(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_PATHSPACE
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a pathspace name (1 to {MAX_PATHSPACE} letters, digits, '-', '_')"
        ))
    }
}

/// Tells whether an interface exists in virtnetd's namespace.
pub type LinkExists = fn(&str) -> bool;

/// The fabric part of the daemon: the record and virtnet's FRR instance.
pub struct FabricControl {
    store: Arc<Store>,
    frr: Frr,
    link_exists: LinkExists,
    /// The recorded fabric; the lock also orders changes (one `fabric-set` at a time).
    record: Mutex<Option<Fabric>>,
    /// Set at shutdown: the watchdog ([`FabricControl::watch`]) then restarts nothing.
    stopping: AtomicBool,
}

/// How often the watchdog looks for a dead FRR daemon.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

impl std::fmt::Debug for FabricControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FabricControl")
            .field("pathspace", &self.frr.pathspace())
            .finish_non_exhaustive()
    }
}

impl FabricControl {
    /// Reads the recorded fabric from `store`. Starts nothing (see [`FabricControl::restore`]).
    pub fn open(
        store: Arc<Store>,
        options: &FrrOptions,
        link_exists: LinkExists,
    ) -> Result<FabricControl> {
        let record: Option<Fabric> = store.fabric()?;
        Ok(FabricControl {
            store,
            frr: Frr::new(&options.pathspace, &options.run_dir),
            link_exists,
            record: Mutex::new(record),
            stopping: AtomicBool::new(false),
        })
    }

    /// Start-up: with a fabric recorded, adopts the daemons the previous virtnetd left running
    /// when they run its configuration, else (re)starts them; without one, ends what a
    /// previous virtnetd left. A failure is logged: the daemon serves its networks anyway,
    /// and `fabric-status` shows FRR not running.
    pub fn restore(&self) {
        let record = lock(&self.record);
        let Some(fabric) = record.as_ref() else {
            self.frr.end_stale();
            return;
        };
        match self.apply(fabric) {
            Ok(()) => tracing::info!(pathspace = %self.frr.pathspace(), "fabric restored"),
            Err(error) => tracing::error!(%error, "cannot start FRR for the recorded fabric"),
        }
    }

    /// `GET /v1/fabric`.
    pub fn settings(&self) -> FabricSettings {
        FabricSettings {
            pathspace: self.frr.pathspace().to_string(),
            fabric: lock(&self.record).clone(),
        }
    }

    /// `PUT /v1/fabric` (`fabric-set`): validates, records durably, then (re)starts FRR with
    /// the new configuration. Bad input changes nothing. When FRR cannot be started the
    /// record stays (it is the desired state; the next start retries) and the error says so.
    pub fn set(&self, request: &FabricRequest) -> Result<FabricSettings> {
        let fabric = validate(request, self.link_exists)?;
        let mut record = lock(&self.record);
        self.store.put_fabric(&fabric)?;
        let old = record.replace(fabric.clone());
        if let Some(commands) = old.and_then(|old| render::neighbour_changes(&old, &fabric)) {
            let conf = render::bgpd_conf(&frr_hostname(self.frr.pathspace()), &fabric);
            match self.frr.reconfigure(&conf, &commands) {
                Ok(()) => {
                    return Ok(FabricSettings {
                        pathspace: self.frr.pathspace().to_string(),
                        fabric: Some(fabric),
                    })
                }
                // Restarting bgpd below applies the whole configuration instead.
                Err(error) => tracing::warn!(%error, "cannot change bgpd in place: restarting it"),
            }
        }
        self.apply(&fabric).map_err(|e| {
            Error::failed(format!(
                "the fabric is recorded but FRR could not run it: {e}"
            ))
        })?;
        Ok(FabricSettings {
            pathspace: self.frr.pathspace().to_string(),
            fabric: Some(fabric),
        })
    }

    /// `GET /v1/fabric/status` (`fabric-status`): the sessions and VNIs from FRR itself.
    pub fn status(&self) -> FabricStatus {
        let fabric = lock(&self.record).clone();
        let mut out = FabricStatus {
            pathspace: self.frr.pathspace().to_string(),
            running: fabric.is_some() && self.frr.running(),
            fabric,
            peers: Vec::new(),
            vnis: Vec::new(),
            error: None,
        };
        if !out.running {
            return out;
        }
        let asked = self
            .frr
            .vtysh("show bgp l2vpn evpn summary json")
            .and_then(|json| {
                status::parse_summary(&json)
                    .map_err(|e| Error::failed(format!("cannot read bgpd's summary: {e}")))
            })
            .and_then(|peers| {
                let json = self.frr.vtysh("show evpn vni json")?;
                let vnis = status::parse_vnis(&json)
                    .map_err(|e| Error::failed(format!("cannot read zebra's VNIs: {e}")))?;
                Ok((peers, vnis))
            });
        match asked {
            Ok((peers, vnis)) => {
                out.peers = peers;
                out.vnis = vnis;
            }
            Err(e) => out.error = Some(e.to_string()),
        }
        out
    }

    /// At virtnetd's exit: FRR's daemons stay for the next virtnetd (see `frr.rs`).
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _record = lock(&self.record);
        self.frr.leave_running();
    }

    /// Starts the watchdog: a daemon that died (a crash, an operator's `kill`) is started
    /// again within [`WATCH_INTERVAL`] with the recorded fabric (docs/FABRIC.md: what the
    /// restart costs this host's guests). It ends with the daemon.
    pub fn watch(self: &Arc<Self>) {
        let this = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("frr-watch".into())
            .spawn(move || loop {
                std::thread::sleep(WATCH_INTERVAL);
                let Some(this) = this.upgrade() else { return };
                if this.stopping.load(Ordering::SeqCst) {
                    return;
                }
                this.revive();
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot watch FRR's daemons");
        }
    }

    /// Starts FRR's daemons again when a fabric is recorded and one of them is gone.
    fn revive(&self) {
        let record = lock(&self.record);
        let Some(fabric) = record.as_ref() else {
            return;
        };
        if self.stopping.load(Ordering::SeqCst) || self.frr.running() {
            return;
        }
        tracing::warn!(pathspace = %self.frr.pathspace(), "an FRR daemon is gone: starting it again");
        if let Err(error) = self.apply(fabric) {
            tracing::error!(%error, "cannot start FRR for the recorded fabric");
        }
    }

    /// Renders `fabric` and makes FRR run it.
    fn apply(&self, fabric: &Fabric) -> Result<()> {
        let host = frr_hostname(self.frr.pathspace());
        self.frr.apply(
            &render::zebra_conf(&host),
            &render::bgpd_conf(&host, fabric),
        )
    }
}

/// The name FRR announces to its peers: the host's name, with the pathspace when it is not
/// the default one (several namespaced hosts on one machine share the host name).
fn frr_hostname(pathspace: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or_else(|| "virtnet".to_string());
    if pathspace == DEFAULT_PATHSPACE {
        host
    } else {
        format!("{host}-{pathspace}")
    }
}

/// Checks a `fabric-set` request; the error names the field and the reason.
pub fn validate(request: &FabricRequest, link_exists: LinkExists) -> Result<Fabric> {
    let asn = u32::try_from(request.asn)
        .ok()
        .filter(|&a| a != 0)
        .ok_or_else(|| {
            Error::invalid(
                "asn",
                format!("{} is not an AS number (1..4294967295)", request.asn),
            )
        })?;
    let router_id: Ipv4Addr = request.router_id.trim().parse().map_err(|_| {
        Error::invalid(
            "router_id",
            format!("'{}' is not an IPv4 address", request.router_id),
        )
    })?;
    if router_id.is_unspecified() || router_id.is_broadcast() || router_id.is_multicast() {
        return Err(Error::invalid(
            "router_id",
            format!("{router_id} cannot identify a router"),
        ));
    }
    let underlay = request.underlay.trim();
    if underlay.is_empty() || !link_exists(underlay) {
        return Err(Error::invalid(
            "underlay",
            format!("no interface '{underlay}' in virtnetd's network namespace"),
        ));
    }
    let mut peers = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, text) in request.peers.iter().enumerate() {
        let field = format!("peers[{i}]");
        let peer = neighbour_address(&field, text)?;
        if peer == IpAddr::V4(router_id) {
            return Err(Error::invalid(
                field,
                format!("{peer} is this host's router id"),
            ));
        }
        if !seen.insert(peer) {
            return Err(Error::invalid(field, format!("{peer} is listed twice")));
        }
        peers.push(peer);
    }
    let mut route_reflectors = Vec::new();
    for (i, text) in request.route_reflectors.iter().enumerate() {
        let field = format!("route_reflectors[{i}]");
        let rr = neighbour_address(&field, text)?;
        if route_reflectors.contains(&rr) {
            return Err(Error::invalid(field, format!("{rr} is listed twice")));
        }
        route_reflectors.push(rr);
    }
    Ok(Fabric {
        asn,
        router_id,
        underlay: underlay.to_string(),
        peers,
        route_reflectors,
    })
}

/// A neighbour's address: a unicast IP address.
fn neighbour_address(field: &str, text: &str) -> Result<IpAddr> {
    let addr: IpAddr = text
        .trim()
        .parse()
        .map_err(|_| Error::invalid(field, format!("'{text}' is not an IP address")))?;
    if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() {
        return Err(Error::invalid(
            field,
            format!("{addr} is not a neighbour's unicast address"),
        ));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> FabricRequest {
        FabricRequest {
            asn: 65000,
            router_id: "10.201.0.1".into(),
            underlay: "eth1".into(),
            peers: vec!["10.201.0.2".into()],
            route_reflectors: Vec::new(),
        }
    }

    fn eth1_only(name: &str) -> bool {
        name == "eth1"
    }

    fn refusal(r: FabricRequest) -> String {
        validate(&r, eth1_only).expect_err("refused").to_string()
    }

    #[test]
    fn a_valid_request_is_recorded_as_given() {
        let f = validate(&request(), eth1_only).expect("valid");
        assert_eq!(f.asn, 65000);
        assert_eq!(f.router_id, Ipv4Addr::new(10, 201, 0, 1));
        assert_eq!(f.peers, vec!["10.201.0.2".parse::<IpAddr>().expect("ip")]);
        let four_byte = FabricRequest {
            asn: 4_294_967_295,
            ..request()
        };
        assert_eq!(
            validate(&four_byte, eth1_only).expect("valid").asn,
            u32::MAX
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        assert!(refusal(FabricRequest {
            asn: 0,
            ..request()
        })
        .starts_with("asn: 0 is not"));
        assert!(refusal(FabricRequest {
            asn: 4_294_967_296,
            ..request()
        })
        .starts_with("asn: "));
        assert!(refusal(FabricRequest {
            router_id: "fe80::1".into(),
            ..request()
        })
        .starts_with("router_id: 'fe80::1' is not an IPv4 address"));
        assert!(refusal(FabricRequest {
            underlay: "eth9".into(),
            ..request()
        })
        .starts_with("underlay: no interface 'eth9'"));
        assert!(refusal(FabricRequest {
            peers: vec!["10.201.0.2".into(), "nope".into()],
            ..request()
        })
        .starts_with("peers[1]: 'nope' is not an IP address"));
        assert!(refusal(FabricRequest {
            peers: vec!["10.201.0.1".into()],
            ..request()
        })
        .starts_with("peers[0]: 10.201.0.1 is this host's router id"));
        assert!(refusal(FabricRequest {
            peers: vec!["10.201.0.2".into(), "10.201.0.2".into()],
            ..request()
        })
        .contains("listed twice"));
        assert!(refusal(FabricRequest {
            route_reflectors: vec!["224.0.0.1".into()],
            ..request()
        })
        .starts_with("route_reflectors[0]: "));
    }

    #[test]
    fn pathspace_names_are_checked() {
        assert!(check_pathspace("virtnet-h1_2").is_ok());
        for bad in ["", "a/b", "..", "a b", &"x".repeat(49)] {
            assert!(check_pathspace(bad).is_err(), "{bad:?}");
        }
    }
}

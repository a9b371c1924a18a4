//! The host's persistent network configuration (`virtnet-hostcfg`): a kept bridge is written
//! there so it survives a reboot; `iface-unbridge` reverts it.

use super::record::Record;
use super::HostBridges;

/// Said when no host configuration mentions the NIC.
pub(super) const NOT_DETECTED: &str =
    "the host's network configuration method was not detected (no \
    ifupdown, netplan, NetworkManager, systemd-networkd or ifcfg file mentions the interface): \
    virtnetd re-creates the bridge when it starts after a reboot";

impl HostBridges {
    /// The host configuration change that makes the bridge survive a reboot, `None` when no
    /// method configures the NIC (then virtnetd re-creates the bridge at start).
    pub(super) fn host_config(
        &self,
        rec: &Record,
    ) -> std::result::Result<Option<(virtnet_hostcfg::Method, virtnet_hostcfg::Change)>, String>
    {
        let root = &self.config_root;
        let detected = virtnet_hostcfg::detect(root, &rec.iface).map_err(|e| e.to_string())?;
        let Some(detected) = detected else {
            return Ok(None);
        };
        let plan = virtnet_hostcfg::BridgePlan {
            iface: rec.iface.clone(),
            bridge: rec.bridge.clone(),
            stp: rec.stp,
            delay: rec.delay,
            mac: rec.nic.mac,
            mtu: Some(rec.nic.mtu),
            addressing: detected.addressing.clone(),
        };
        let change = virtnet_hostcfg::render(detected.method, &plan, &detected, root)
            .map_err(|e| e.to_string())?;
        Ok(Some((detected.method, change)))
    }

    /// Writes the kept bridge into the host's configuration; failures become warnings (the
    /// running bridge is fine, and virtnetd restores it at start when nothing was written).
    pub(super) fn persist(&self, rec: &mut Record) {
        match self.host_config(rec) {
            Ok(Some((method, change))) => {
                match virtnet_hostcfg::apply(&self.config_root, &change) {
                    Ok(()) => {
                        let files: Vec<String> = change
                            .write
                            .iter()
                            .map(|(p, _)| p.display().to_string())
                            .collect();
                        rec.persisted = Some(method.name().to_string());
                        rec.config = Some(format!(
                            "written to the host's {} configuration: {}",
                            method.name(),
                            files.join(", ")
                        ));
                    }
                    Err(e) => rec.warnings.push(format!(
                        "the bridge was not written to the host's {} configuration: {e}; virtnetd \
                     re-creates it at start",
                        method.name()
                    )),
                }
            }
            Ok(None) => {
                rec.config = Some(NOT_DETECTED.to_string());
                rec.warnings.push(NOT_DETECTED.to_string());
            }
            Err(e) => rec.warnings.push(format!(
                "the host's network configuration could not be read ({e}); virtnetd re-creates \
                 the bridge at start"
            )),
        }
    }
}

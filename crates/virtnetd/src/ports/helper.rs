//! The setuid bridge helper's ports: the per-user quota, and the sweeper that forgets ports
//! whose tap is gone and deletes taps the helper never handed over.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use virtnet_api::PortRequest;

use super::{invalid, Ports};
use crate::error::{Error, Result};
use crate::sync::lock;

/// What virtnetd allows the setuid bridge helper (`virtnet-bridge-helper`), which asks for
/// ports on behalf of unprivileged users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelperPortPolicy {
    /// Most helper ports one user may hold at a time (ports whose tap is gone do not count).
    pub per_user: u32,
    /// How long a helper port's tap may stay persistent: the helper makes it non-persistent
    /// as soon as it holds it, so a tap still persistent after this was never handed over
    /// (the helper was killed) and would otherwise outlive everyone.
    pub claim_grace: Duration,
    /// How often the sweeper looks at the helper ports.
    pub sweep_every: Duration,
}

impl Default for HelperPortPolicy {
    fn default() -> Self {
        HelperPortPolicy {
            per_user: DEFAULT_HELPER_PORTS_PER_USER,
            claim_grace: Duration::from_secs(5),
            sweep_every: Duration::from_secs(1),
        }
    }
}

/// Default of [`HelperPortPolicy::per_user`]: far more NICs than one user's guests need, few
/// enough that a user cannot fill the host with taps.
pub const DEFAULT_HELPER_PORTS_PER_USER: u32 = 32;

/// What the sweeper found about a helper port's tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HelperTap {
    /// No such tap (QEMU exited): only the record is left.
    Gone,
    /// Still persistent: not (yet) handed over.
    Persistent,
    /// Held by QEMU and not persistent: it goes when QEMU does.
    Claimed,
}

impl Ports {
    /// Refuses a helper port the user may not have: one with a group (a helper's tap is its
    /// user's alone, so that no one sharing a group can race the helper to it) or one past
    /// the per-user limit. Ports whose tap is gone are forgotten first and do not count.
    /// Runs holding `changes` exclusively.
    pub(super) fn check_helper_quota(&self, req: &PortRequest) -> Result<()> {
        let Some(uid) = req.owner_uid else {
            return Err(invalid(
                "owner_uid",
                "a bridge helper's port names the user it is for",
            ));
        };
        if req.owner_gid.is_some() {
            return Err(invalid(
                "owner_gid",
                "a bridge helper's port is owned by its user alone, without a group",
            ));
        }
        let theirs: Vec<String> = self
            .book
            .read()
            .values()
            .filter(|r| r.helper && r.owner_uid == Some(uid))
            .map(|r| r.name.clone())
            .collect();
        let mut live = 0u32;
        for name in theirs {
            if lock(&self.kernel).link_index(&name)?.is_some() {
                live += 1;
            } else {
                self.forget_port(&name)?;
            }
        }
        let limit = self.book.policy().per_user;
        if live >= limit {
            return Err(Error::conflict(format!(
                "owner_uid: user {uid} already has {live} ports made by the bridge helper, \
                     the most virtnetd allows one user (virtnetd --helper-ports-per-user, now \
                     {limit})"
            )));
        }
        Ok(())
    }

    /// Forgets a port whose device is gone, without touching the kernel (a link of that name,
    /// if any, is someone else's). Runs holding `changes` exclusively.
    fn forget_port(&self, name: &str) -> Result<()> {
        self.runtime.delete_port(name)?;
        self.book.write().remove(name);
        Ok(())
    }

    /// Starts the thread that reaps the bridge helper's ports (see
    /// [`Ports::sweep_helper_ports`]) every `policy.sweep_every`, and sets the per-user
    /// limit. The thread ends once the ports are dropped.
    pub fn start_helper_sweeper(self: &Arc<Self>, policy: HelperPortPolicy) -> std::io::Result<()> {
        *self
            .book
            .helper_policy
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = policy;
        let ports = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("port-sweeper".into())
            .spawn(move || {
                let mut persistent_since = HashMap::new();
                loop {
                    std::thread::sleep(policy.sweep_every);
                    let Some(ports) = ports.upgrade() else {
                        return;
                    };
                    ports.sweep_helper_ports(&mut persistent_since, policy.claim_grace);
                }
            })?;
        Ok(())
    }

    /// One pass of the sweeper over the bridge helper's ports: a port whose tap is gone
    /// (QEMU exited) is forgotten; a port whose tap has stayed persistent for `grace` (the
    /// helper was killed before it made the tap non-persistent, or the user made it
    /// persistent again) is deleted with its tap, which would otherwise outlive QEMU as a
    /// device the user owns. `persistent_since` carries when each tap was first seen
    /// persistent from one pass to the next.
    pub fn sweep_helper_ports(
        &self,
        persistent_since: &mut HashMap<String, Instant>,
        grace: Duration,
    ) {
        let helpers: Vec<String> = self
            .book
            .read()
            .values()
            .filter(|r| r.helper)
            .map(|r| r.name.clone())
            .collect();
        persistent_since.retain(|name, _| helpers.contains(name));
        for name in helpers {
            let due = match self.helper_tap(&name) {
                Ok(HelperTap::Claimed) => false,
                Ok(HelperTap::Gone) => true,
                Ok(HelperTap::Persistent) => {
                    let since = *persistent_since
                        .entry(name.clone())
                        .or_insert_with(Instant::now);
                    since.elapsed() >= grace
                }
                Err(e) => {
                    tracing::warn!(port = %name, error = %e, "cannot sweep the bridge helper's port");
                    false
                }
            };
            if !due {
                continue;
            }
            persistent_since.remove(&name);
            match self.reap_helper_port(&name) {
                Ok(Some(what)) => tracing::info!(port = %name, "bridge helper's port: {what}"),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(port = %name, error = %e, "cannot sweep the bridge helper's port")
                }
            }
        }
    }

    /// Removes a helper port the sweeper found due, if it still is now that `changes` is
    /// held exclusively (the helper may have claimed the tap meanwhile): a gone tap's record is
    /// forgotten, a persistent tap is deleted with its record. Says what it did.
    fn reap_helper_port(&self, name: &str) -> Result<Option<&'static str>> {
        let _all = self.exclusive();
        let Some(record) = self.book.read().get(name).filter(|r| r.helper).cloned() else {
            return Ok(None);
        };
        match self.helper_tap(name)? {
            HelperTap::Claimed => Ok(None),
            HelperTap::Gone => {
                self.forget_port(name)?;
                Ok(Some("tap gone; port forgotten"))
            }
            HelperTap::Persistent => {
                self.remove_port(record)?;
                Ok(Some(
                    "tap never handed over (still persistent); port and tap deleted",
                ))
            }
        }
    }

    /// The state of a helper port's tap: gone (or no longer a tap), persistent, or claimed.
    fn helper_tap(&self, name: &str) -> Result<HelperTap> {
        if lock(&self.kernel).link_index(name)?.is_none() {
            return Ok(HelperTap::Gone);
        }
        match virtnet_host::tap::tun_flags(name) {
            Ok(Some(flags)) if flags & (virtnet_host::tap::IFF_PERSIST as u32) != 0 => {
                Ok(HelperTap::Persistent)
            }
            Ok(Some(_)) => Ok(HelperTap::Claimed),
            Ok(None) => Ok(HelperTap::Gone),
            Err(e) => Err(Error::Io {
                context: format!("cannot read the tun flags of '{name}'"),
                source: e,
            }),
        }
    }
}

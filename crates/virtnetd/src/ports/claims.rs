//! Claims on tap names and guest MACs while a port is being created, changed or deleted.
//!
//! A port change checks what must be unique (the tap's name; a MAC within one guest) against
//! the book and the claims under one short lock, claims it, and then does the slow part — the
//! kernel's work and the fsync'd store commit — holding no exclusive ports lock, so two
//! guests' ports are made side by side. A claim is released when its guard drops, on success
//! and on failure alike; a successful change puts its record in the book before that, so a
//! name is always either in the book or claimed while it is in use.

use std::collections::BTreeSet;
use std::sync::Mutex;

use virtnet_model::MacAddr;

use crate::sync::lock;

/// What changes in flight have claimed.
#[derive(Debug, Default)]
pub(super) struct Claims {
    set: Mutex<ClaimSet>,
}

#[derive(Debug, Default)]
struct ClaimSet {
    names: BTreeSet<String>,
    guest_macs: BTreeSet<(String, MacAddr)>,
}

/// Why a claim was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// Another change holds the name.
    Name,
    /// Another change is creating a port with this guest and MAC.
    GuestMac,
}

/// A claimed name (and, for a new port, its guest and MAC); released on drop.
#[derive(Debug)]
pub(super) struct Claim<'a> {
    claims: &'a Claims,
    name: String,
    guest_mac: Option<(String, MacAddr)>,
}

impl Claims {
    /// Claims `name` (and `guest_mac`) unless another change holds either, or `taken` — the
    /// book's view, asked under the claim lock so that a record moving from a claim into the
    /// book is never missed — says the name is in use.
    pub(super) fn claim(
        &self,
        name: &str,
        guest_mac: Option<(&str, MacAddr)>,
        taken: impl FnOnce() -> Option<Refused>,
    ) -> Result<Claim<'_>, Refused> {
        let mut set = lock(&self.set);
        if set.names.contains(name) {
            return Err(Refused::Name);
        }
        let guest_mac = guest_mac.map(|(g, m)| (g.to_string(), m));
        if let Some(key) = &guest_mac {
            if set.guest_macs.contains(key) {
                return Err(Refused::GuestMac);
            }
        }
        if let Some(refused) = taken() {
            return Err(refused);
        }
        set.names.insert(name.to_string());
        if let Some(key) = &guest_mac {
            set.guest_macs.insert(key.clone());
        }
        Ok(Claim {
            claims: self,
            name: name.to_string(),
            guest_mac,
        })
    }

    /// True while a change is creating a port of `guest` with `mac`.
    pub(super) fn holds_guest_mac(&self, guest: &str, mac: MacAddr) -> bool {
        lock(&self.set)
            .guest_macs
            .contains(&(guest.to_string(), mac))
    }

    /// True while some change holds `name`.
    #[cfg(test)]
    fn holds(&self, name: &str) -> bool {
        lock(&self.set).names.contains(name)
    }
}

impl Claim<'_> {
    /// The claimed name.
    pub(super) fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut set = lock(&self.claims.set);
        set.names.remove(&self.name);
        if let Some(key) = &self.guest_mac {
            set.guest_macs.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 1]);

    #[test]
    fn a_name_or_a_guest_mac_is_claimed_once_until_released() {
        let claims = Claims::default();
        let first = claims.claim("vnet0", Some(("g", MAC)), || None);
        assert!(first.is_ok());
        assert_eq!(
            claims.claim("vnet0", None, || None).err(),
            Some(Refused::Name)
        );
        assert_eq!(
            claims.claim("vnet1", Some(("g", MAC)), || None).err(),
            Some(Refused::GuestMac)
        );
        // Another guest may use the same MAC (libvirt checks MACs per guest).
        assert!(claims.claim("vnet2", Some(("h", MAC)), || None).is_ok());
        drop(first);
        assert!(!claims.holds("vnet0"));
        assert!(claims.claim("vnet0", Some(("g", MAC)), || None).is_ok());
    }

    #[test]
    fn the_books_answer_refuses_without_claiming() {
        let claims = Claims::default();
        assert_eq!(
            claims.claim("vnet0", None, || Some(Refused::Name)).err(),
            Some(Refused::Name)
        );
        assert!(!claims.holds("vnet0"));
    }
}

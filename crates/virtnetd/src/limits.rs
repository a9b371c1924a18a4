//! The daemon's resource limits: the open-file limit raised to its ceiling at start, errors
//! that name the limit a failure ran into, and memory freed in bulk handed back.
//!
//! Every running network keeps its own DNS sockets, bound to its bridge and its own addresses
//! (so that it coexists with other DNS servers of the host, systemd-resolved on 127.0.0.53
//! or libvirt's dnsmasq, which a wildcard socket would not): per gateway address one UDP and
//! one TCP DNS socket, plus one TFTP socket when it has a `<tftp root>` ([`FDS_PER_NETWORK`]
//! for the common one-address network). DHCPv4 has one socket for all networks. The number of
//! networks is then bounded by `RLIMIT_NOFILE`, whose soft limit is often far below the hard
//! one; [`raise_open_files`] lifts it to the hard limit at start and says how many networks
//! that leaves room for.
//!
//! When a limit is reached anyway (the hard limit, the system's `fs.file-max`, kernel memory
//! for socket buffers), the failing operation's error is an errno deep inside a chain that
//! says what was being done (`write sysctl net/ipv6/conf/virbr3986/disable_ipv6: Too many open
//! files`), which points at the sysctl, not the limit. [`limit_reached`] recognises such a
//! chain and says which limit it is, so that the client's message starts with the cause.

use std::io;

/// Descriptors a running NAT network with DHCP and DNS on one IPv4 address keeps open: the
/// DNS UDP and TCP sockets (its DHCP server shares the namespace's one DHCP socket).
pub const FDS_PER_NETWORK: u64 = 2;

/// Descriptors kept for everything else (store, API and libvirt sockets, netlink, nftables,
/// clients, forwarded DNS queries) when estimating the room for networks.
const RESERVED_FDS: u64 = 256;

/// The open-file limit before and after [`raise_open_files`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit the daemon was started with.
    pub before: u64,
    /// The soft limit now (the hard limit when raising worked).
    pub now: u64,
}

impl OpenFiles {
    /// How many networks of [`FDS_PER_NETWORK`] descriptors fit under the current limit.
    pub fn room_for_networks(&self) -> u64 {
        self.now.saturating_sub(RESERVED_FDS) / FDS_PER_NETWORK
    }
}

/// The current `RLIMIT_NOFILE` (soft, hard).
fn nofile() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit, which `lim` is.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (never lowers it, never touches the
/// hard limit: that is the administrator's ceiling, e.g. systemd's `LimitNOFILE=`).
/// Descriptors above 1024 are safe here: virtnetd waits with epoll, never `select(2)`.
pub fn raise_open_files() -> io::Result<OpenFiles> {
    let (soft, hard) = nofile()?;
    if soft >= hard {
        return Ok(OpenFiles {
            before: soft,
            now: soft,
        });
    }
    let lim = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads one valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(OpenFiles {
        before: soft,
        now: hard,
    })
}

/// [`raise_open_files`], logged: the ceiling and the room it leaves for networks.
pub fn raise_open_files_logged() {
    match raise_open_files() {
        Ok(files) => tracing::info!(
            limit = files.now,
            was = files.before,
            "descriptor limit {}: room for ~{} networks",
            files.now,
            files.room_for_networks()
        ),
        Err(e) => tracing::warn!(error = %e, "cannot raise the descriptor limit (RLIMIT_NOFILE)"),
    }
}

/// The limit an errno means, as the start of a sentence; `None` for an errno that is no
/// resource limit.
fn describe(errno: i32) -> Option<String> {
    match errno {
        libc::EMFILE => Some(match nofile() {
            Ok((soft, _)) => {
                format!("the daemon's open-file limit (RLIMIT_NOFILE={soft}) is reached")
            }
            Err(_) => "the daemon's open-file limit (RLIMIT_NOFILE) is reached".to_string(),
        }),
        libc::ENFILE => {
            Some("the system's open-file limit (sysctl fs.file-max) is reached".to_string())
        }
        libc::ENOBUFS => Some(
            "the kernel's socket buffer memory is exhausted (ENOBUFS; see sysctls \
             net.core.rmem_max, net.core.optmem_max)"
                .to_string(),
        ),
        libc::ENOMEM => Some("the kernel is out of memory (ENOMEM)".to_string()),
        _ => None,
    }
}

/// Which resource limit `error` (or any error in its chain of sources) ran into, as a
/// sentence such as "the daemon's open-file limit (RLIMIT_NOFILE=20000) is reached"; `None`
/// when it is no such failure.
pub fn limit_reached(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(errno) = e
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
        {
            if let Some(limit) = describe(errno) {
                return Some(limit);
            }
        }
        current = e.source();
    }
    None
}

/// `message`, prefixed with the limit `error` ran into when it ran into one
/// ("the daemon's open-file limit (RLIMIT_NOFILE=N) is reached: <message>").
pub fn naming_limit(error: &(dyn std::error::Error + 'static), message: String) -> String {
    match limit_reached(error) {
        Some(limit) => format!("{limit}: {message}"),
        None => message,
    }
}

/// Hands the heap memory freed after the start-up reconcile (or a rebuild of the firewall
/// after someone deleted it) back to the system. Rebuilding
/// thousands of networks' firewall and starting their services allocates far more than stays
/// in use (one script and its parse for every network at once); glibc keeps what was freed in
/// its arenas, so without this the daemon stayed ~5× its steady size after every restart
/// (400 MiB against 80 with 4,000 networks and 10,000 ports).
pub(crate) fn release_freed_memory() {
    // SAFETY: malloc_trim only walks glibc's own arenas; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("write sysctl net/ipv6/conf/virbr1/disable_ipv6: {source}")]
    struct Wrapped {
        #[source]
        source: io::Error,
    }

    #[test]
    fn an_errno_deep_in_the_chain_names_its_limit() {
        let e = Wrapped {
            source: io::Error::from_raw_os_error(libc::EMFILE),
        };
        let said = naming_limit(&e, e.to_string());
        assert!(
            said.starts_with("the daemon's open-file limit (RLIMIT_NOFILE="),
            "{said}"
        );
        assert!(
            said.ends_with("Too many open files (os error 24)"),
            "{said}"
        );
        let e = Wrapped {
            source: io::Error::from_raw_os_error(libc::ENFILE),
        };
        assert!(limit_reached(&e).is_some_and(|l| l.contains("fs.file-max")));
    }

    /// The message of issue 18: a sysctl write of the kernel layer that met the limit.
    #[test]
    fn a_kernel_error_at_the_limit_names_it() {
        let e = crate::Error::Host {
            context: "configure bridge".into(),
            source: virtnet_host::HostError::new(
                "write sysctl",
                "net/ipv6/conf/virbr3986/disable_ipv6",
                io::Error::from_raw_os_error(libc::EMFILE),
            ),
        };
        let said = e.to_string();
        assert!(
            said.starts_with("the daemon's open-file limit (RLIMIT_NOFILE="),
            "{said}"
        );
        assert!(
            said.contains(") is reached: configure bridge: write sysctl net/ipv6/conf/virbr3986"),
            "{said}"
        );
    }

    #[test]
    fn other_errors_are_left_as_they_are() {
        let e = Wrapped {
            source: io::Error::from_raw_os_error(libc::EEXIST),
        };
        assert_eq!(limit_reached(&e), None);
        assert_eq!(naming_limit(&e, "x".into()), "x");
        let plain = io::Error::other("no errno");
        assert_eq!(limit_reached(&plain), None);
    }

    #[test]
    fn raising_never_lowers_the_limit() {
        let (soft, hard) = nofile().expect("getrlimit");
        let files = raise_open_files().expect("setrlimit");
        assert_eq!(files.before, soft);
        assert_eq!(files.now, hard.max(soft));
        assert!(files.room_for_networks() <= files.now / FDS_PER_NETWORK);
    }
}

//! One netlink dump, read without decoding more than the caller asks: the raw reader behind
//! the metrics' counters (`conntrack`, `nft_counters`, link stats).
//!
//! An nfnetlink (`NETLINK_NETFILTER`) socket is kept open between dumps, in a small pool per
//! network namespace: the kernel answers the close of any nfnetlink socket by taking nftables'
//! commit mutex and flushing the pending clean-up of deleted rules and elements (an RCU grace
//! period, 10–25 ms here). A socket closed after every dump made each scrape that followed a
//! detach or a destroy wait that long, and every nftables transaction and device rename on the
//! host (an attach, a start) wait behind it.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::sync::{Mutex, PoisonError};

use netlink_sys::protocols::NETLINK_NETFILTER;
use netlink_sys::{Socket, SocketAddr};

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// How many idle nfnetlink sockets are kept per namespace (dumps running at once each take one).
const POOL_PER_NAMESPACE: usize = 4;

/// Idle nfnetlink sockets, each with the network namespace it was opened in (the inode of
/// `/proc/thread-self/ns/net`: a socket stays in the namespace it was opened in, and threads
/// of one process may be in different ones).
static POOL: Mutex<Vec<(u64, Socket)>> = Mutex::new(Vec::new());

/// The calling thread's network namespace, as an inode number.
fn namespace() -> io::Result<u64> {
    Ok(std::fs::metadata("/proc/thread-self/ns/net")?.ino())
}

/// A socket of `protocol` in the calling thread's namespace: a pooled nfnetlink one if there is
/// one, else a new one.
fn take(protocol: isize) -> io::Result<(Option<u64>, Socket)> {
    let ns = if protocol == NETLINK_NETFILTER {
        Some(namespace()?)
    } else {
        None
    };
    if let Some(ns) = ns {
        let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = pool.iter().position(|(n, _)| *n == ns) {
            return Ok((Some(ns), pool.swap_remove(at).1));
        }
    }
    let mut sock = Socket::new(protocol)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    Ok((ns, sock))
}

/// Puts a socket whose dump ended cleanly (nothing of it left to read) back in the pool.
fn give_back(ns: Option<u64>, sock: Socket) {
    let Some(ns) = ns else {
        return;
    };
    let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    if pool.iter().filter(|(n, _)| *n == ns).count() < POOL_PER_NAMESPACE {
        pool.push((ns, sock));
    }
}

/// Sends `request` (a whole netlink message asking for a dump) on a socket of `protocol` in
/// the calling thread's network namespace, and hands each answer's type and body (after the
/// netlink header) to `each`, until the end of the dump. An error answer whose errno is in
/// `empty` (the object asked for does not exist) ends the dump without error.
pub(crate) fn dump(
    protocol: isize,
    request: &[u8],
    empty: &[i32],
    each: impl FnMut(u16, &[u8]),
) -> io::Result<()> {
    let (ns, mut sock) = take(protocol)?;
    let result = dump_on(&mut sock, request, empty, each);
    // A socket is reused only after a dump that was read to its end; after an error, what is
    // left of its answer could be taken for the next dump's.
    if matches!(result, Ok(true)) {
        give_back(ns, sock);
    }
    result.map(|_| ())
}

/// [`dump`] on `sock`; `Ok(true)` when the answer was read to its end.
fn dump_on(
    sock: &mut Socket,
    request: &[u8],
    empty: &[i32],
    mut each: impl FnMut(u16, &[u8]),
) -> io::Result<bool> {
    sock.send(request, 0)?;
    // The kernel's dump datagrams are at most a few pages; 64 KiB holds the largest.
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match sock.recv(&mut &mut buf[..], 0) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(false);
        }
        let mut data = &buf[..n];
        while data.len() >= NLMSG_HDRLEN {
            let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
            let kind = u16::from_ne_bytes([data[4], data[5]]);
            if len < NLMSG_HDRLEN || len > data.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "malformed netlink answer",
                ));
            }
            let body = &data[NLMSG_HDRLEN..len];
            match kind {
                NLMSG_DONE => return Ok(true),
                NLMSG_ERROR => {
                    let code = body
                        .get(..4)
                        .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                    return match -code {
                        0 => Ok(true),
                        errno if empty.contains(&errno) => Ok(true),
                        errno => Err(io::Error::from_raw_os_error(errno)),
                    };
                }
                _ => each(kind, body),
            }
            data = &data[align(len).min(data.len())..];
        }
    }
}

/// The payload of the first attribute of type `want` in `attrs`.
pub(crate) fn attr(attrs: &[u8], want: u16) -> Option<&[u8]> {
    attrs_of(attrs, want).next()
}

/// The payloads of the attributes of type `want` in `attrs`, in order.
pub(crate) fn attrs_of(mut attrs: &[u8], want: u16) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        while attrs.len() >= 4 {
            let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
            let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & NLA_TYPE_MASK;
            if len < 4 || len > attrs.len() {
                return None;
            }
            let payload = &attrs[4..len];
            attrs = &attrs[align(len).min(attrs.len())..];
            if kind == want {
                return Some(payload);
            }
        }
        None
    })
}

/// Netlink's 4-byte alignment.
pub(crate) fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// A netlink message header for a dump request of `kind` (`NLM_F_REQUEST | NLM_F_DUMP`),
/// followed by `body`.
pub(crate) fn request(kind: u16, body: &[u8]) -> Vec<u8> {
    const NLM_F_REQUEST_DUMP: u16 = 0x1 | 0x300;
    let len = (NLMSG_HDRLEN + body.len()) as u32;
    let mut m = Vec::with_capacity(len as usize);
    m.extend_from_slice(&len.to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&NLM_F_REQUEST_DUMP.to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    m.extend_from_slice(body);
    m
}

/// `s` as a netlink string attribute's payload: its bytes and a NUL.
pub(crate) fn cstr(s: &str) -> Vec<u8> {
    let mut b = s.as_bytes().to_vec();
    b.push(0);
    b
}

/// One netlink attribute (`kind`, `payload`), padded to 4 bytes: how the parsers' tests build
/// what the kernel sends.
#[cfg(test)]
pub(crate) fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = ((4 + payload.len()) as u16).to_ne_bytes().to_vec();
    v.extend_from_slice(&kind.to_ne_bytes());
    v.extend_from_slice(payload);
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
    v
}

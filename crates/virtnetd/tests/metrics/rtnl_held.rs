//! The kernel's RTNL lock held for as long as a test wants, by a thread of the test in a
//! network namespace of its own: what a link change anywhere on the host does to whoever
//! needs RTNL, made deterministic.
//!
//! The thread asks for the link state of the namespace's `lo` with the ethtool ioctl
//! (`ETHTOOL_GLINK`). The kernel writes the answer to user memory while it holds RTNL
//! (`dev_ethtool` → `ethtool_get_link` → `copy_to_user`); the answer's second half lies on a
//! page registered with userfaultfd and never filled, so that write waits, RTNL held, until
//! the userfaultfd is closed. The fault is reported on the userfaultfd: from then on RTNL is
//! held. Dropping [`RtnlHeld`] (also when a test panics) closes it, the write fails with
//! EFAULT, and the kernel lets RTNL go.
//!
//! [`RtnlProbe`] proves that it is held: a request that needs RTNL (set `lo` up), sent by a
//! thread that is seen asleep in the kernel (`D`) until the lock is let go.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use virtnet_testkit::Netns;

/// `_IOWR(0xAA, 0x3F, struct uffdio_api)`.
const UFFDIO_API: libc::c_ulong = 0xC018_AA3F;
/// `_IOWR(0xAA, 0x00, struct uffdio_register)`.
const UFFDIO_REGISTER: libc::c_ulong = 0xC020_AA00;
const UFFD_API: u64 = 0xAA;
const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;
const UFFD_EVENT_PAGEFAULT: u8 = 0x12;
const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GLINK: u32 = 0xA;
/// How long to wait for the kernel's fault report (or a probe to fall asleep) before the
/// test fails: a bound for a broken set-up, not a measurement.
const BOUND: Duration = Duration::from_secs(10);

/// RTNL held by a thread in another namespace until dropped (see the module).
pub struct RtnlHeld {
    uffd: Option<OwnedFd>,
    asker: Option<JoinHandle<()>>,
    map: *mut libc::c_void,
    len: usize,
}

/// The calling thread moved into `ns`.
fn enter(ns: &File) {
    // SAFETY: setns(2) on an open namespace file; it moves only the calling thread.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", io::Error::last_os_error());
}

/// `/run/netns/<ns>`, opened.
fn ns_file(ns: &Netns) -> File {
    File::open(format!("/run/netns/{}", ns.name())).expect("the namespace's file")
}

impl RtnlHeld {
    /// Holds RTNL from a thread in `ns`; returns once the kernel holds it.
    pub fn hold(ns: &Netns) -> RtnlHeld {
        // SAFETY: userfaultfd(2) with a flag; the descriptor is owned right away.
        let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC) };
        assert!(fd >= 0, "userfaultfd: {}", io::Error::last_os_error());
        // SAFETY: a fresh descriptor nothing else owns.
        let uffd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let mut api = [UFFD_API, 0, 0];
        // SAFETY: UFFDIO_API with its struct (api, features, ioctls).
        let rc = unsafe { libc::ioctl(uffd.as_raw_fd(), UFFDIO_API, api.as_mut_ptr()) };
        assert_eq!(rc, 0, "UFFDIO_API: {}", io::Error::last_os_error());
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let len = 2 * page;
        // SAFETY: a fresh private anonymous mapping, unmapped in Drop.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(
            map,
            libc::MAP_FAILED,
            "mmap: {}",
            io::Error::last_os_error()
        );
        let second = map as usize + page;
        let mut register = [second as u64, page as u64, UFFDIO_REGISTER_MODE_MISSING, 0];
        // SAFETY: UFFDIO_REGISTER with its struct (start, len, mode, ioctls) on our mapping.
        let rc = unsafe { libc::ioctl(uffd.as_raw_fd(), UFFDIO_REGISTER, register.as_mut_ptr()) };
        assert_eq!(rc, 0, "UFFDIO_REGISTER: {}", io::Error::last_os_error());
        // struct ethtool_value { u32 cmd; u32 data; }: cmd on the first page (read before
        // RTNL is taken), data on the second (written under RTNL).
        let value = second - 4;
        // SAFETY: `value` is 4 bytes inside the first page of our mapping.
        unsafe { (value as *mut u32).write_unaligned(ETHTOOL_GLINK) };
        let ns = ns_file(ns);
        let asker = std::thread::spawn(move || {
            enter(&ns);
            // SAFETY: a datagram socket for interface ioctls; closed below.
            let sock =
                unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
            assert!(sock >= 0, "socket: {}", io::Error::last_os_error());
            // struct ifreq: the name, then the union's pointer (ifr_data).
            let mut ifr = [0u8; 40];
            ifr[..2].copy_from_slice(b"lo");
            ifr[16..24].copy_from_slice(&(value as u64).to_ne_bytes());
            // SAFETY: SIOCETHTOOL with a struct ifreq whose data points into our mapping.
            // It fails (EFAULT) once the userfaultfd is closed: that is the release.
            unsafe { libc::ioctl(sock, SIOCETHTOOL, ifr.as_mut_ptr()) };
            // SAFETY: our socket.
            unsafe { libc::close(sock) };
        });
        let held = RtnlHeld {
            uffd: Some(uffd),
            asker: Some(asker),
            map,
            len,
        };
        held.wait_for_the_fault();
        held
    }

    /// Returns once the kernel reports the fault of its write (RTNL held by then).
    fn wait_for_the_fault(&self) {
        let fd = self.uffd.as_ref().map_or(-1, AsRawFd::as_raw_fd);
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd of ours.
        let n = unsafe { libc::poll(&mut poll, 1, BOUND.as_millis() as i32) };
        assert_eq!(n, 1, "no fault reported by the kernel's ethtool write");
        let mut msg = [0u8; 32];
        // SAFETY: reads one struct uffd_msg into a buffer of its size.
        let got = unsafe { libc::read(fd, msg.as_mut_ptr().cast(), msg.len()) };
        assert_eq!(got, 32, "read uffd_msg: {}", io::Error::last_os_error());
        assert_eq!(msg[0], UFFD_EVENT_PAGEFAULT, "a page fault event");
    }
}

impl Drop for RtnlHeld {
    fn drop(&mut self) {
        // Closing the userfaultfd fails the kernel's write: it lets RTNL go.
        drop(self.uffd.take());
        if let Some(asker) = self.asker.take() {
            let _ = asker.join();
        }
        // SAFETY: our mapping, no longer used by the kernel or the thread.
        unsafe { libc::munmap(self.map, self.len) };
    }
}

/// A request that needs RTNL (set `lo` up over rtnetlink), sent from a thread in `ns`.
pub struct RtnlProbe {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RtnlProbe {
    /// Sends the request and returns once its thread sleeps in the kernel (state `D`): it
    /// waits for RTNL.
    pub fn waiting(ns: &Netns) -> RtnlProbe {
        let done = Arc::new(AtomicBool::new(false));
        let (tid_tx, tid_rx) = mpsc::channel();
        let ns = ns_file(ns);
        let flag = Arc::clone(&done);
        let thread = std::thread::spawn(move || {
            enter(&ns);
            // SAFETY: gettid has no preconditions.
            let _ = tid_tx.send(unsafe { libc::gettid() });
            set_lo_up();
            flag.store(true, Ordering::SeqCst);
        });
        let tid = tid_rx.recv_timeout(BOUND).expect("the probe's thread id");
        let stat = format!("/proc/self/task/{tid}/stat");
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&stat).unwrap_or_default();
            // The state follows the command's closing parenthesis.
            let state = text.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
            if state == Some('D') {
                break;
            }
            assert!(
                !done.load(Ordering::SeqCst),
                "the probe did not wait for RTNL"
            );
            assert!(start.elapsed() < BOUND, "the probe never waited: {text}");
            std::thread::sleep(Duration::from_millis(1));
        }
        RtnlProbe {
            done,
            thread: Some(thread),
        }
    }

    /// Whether its request was answered.
    pub fn answered(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }

    /// Waits for the answer (after RTNL was let go).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            t.join().expect("the probe's thread");
        }
    }
}

/// RTM_NEWLINK on interface 1 (`lo` in a namespace of its own): up, with an ACK.
fn set_lo_up() {
    // SAFETY: a netlink socket, closed below.
    let sock = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    assert!(sock >= 0, "netlink socket: {}", io::Error::last_os_error());
    let mut msg = Vec::with_capacity(32);
    msg.extend_from_slice(&32u32.to_ne_bytes()); // length
    msg.extend_from_slice(&(libc::RTM_NEWLINK).to_ne_bytes());
    msg.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id
                                                // struct ifinfomsg: family, pad, type, index 1, flags IFF_UP, change IFF_UP.
    msg.extend_from_slice(&[0, 0, 0, 0]);
    msg.extend_from_slice(&1i32.to_ne_bytes());
    msg.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
    msg.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
    // SAFETY: sends our buffer to the kernel (address zero after no bind: the kernel).
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: sendto with our buffer and a sockaddr_nl of its size.
    let sent = unsafe {
        libc::sendto(
            sock,
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    assert_eq!(sent, 32, "send: {}", io::Error::last_os_error());
    let mut answer = [0u8; 1024];
    // SAFETY: receives into our buffer.
    let got = unsafe { libc::recv(sock, answer.as_mut_ptr().cast(), answer.len(), 0) };
    assert!(got >= 20, "the ACK: {}", io::Error::last_os_error());
    // SAFETY: our socket.
    unsafe { libc::close(sock) };
}

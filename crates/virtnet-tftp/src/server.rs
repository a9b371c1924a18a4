//! The running server: one task on the listening socket that decodes requests, refuses what
//! must be refused and spawns one task per transfer; each transfer owns an ephemeral socket.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, BufReader};
use tokio::net::UdpSocket;
use tokio::runtime::Handle;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};

use crate::error::TftpError;
use crate::listen::{bind_listen, bind_transfer, Slot};
use crate::options::{negotiate, Negotiated, MAX_BLKSIZE};
use crate::packet::{self, code, Mode, Packet};
use crate::path;

/// Behaviour knobs; the defaults are what [`TftpServer::start`] uses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    /// Retransmission interval unless the client asks for one (`timeout` option).
    pub(crate) timeout: Duration,
    /// Retransmissions of one packet before the transfer is abandoned.
    pub(crate) retries: u32,
    /// Transfers at once; further requests get ERROR 0.
    pub(crate) max_transfers: usize,
    /// Largest block size agreed to.
    pub(crate) max_blksize: u16,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            timeout: Duration::from_secs(1),
            retries: 5,
            max_transfers: 64,
            max_blksize: MAX_BLKSIZE,
        }
    }
}

/// Counters since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TftpStats {
    /// Datagrams received on the listening socket, including malformed ones.
    pub requests: u64,
    /// Transfers completed: the last block was acknowledged.
    pub files_sent: u64,
    /// Transfers started but not completed: the client went silent (retransmissions
    /// exhausted), sent an ERROR (for instance refusing the OACK), or a read or send failed.
    pub errors: u64,
    /// Requests answered with an ERROR packet: write requests, unsupported modes, missing
    /// files, confinement or permission violations, too many transfers at once.
    pub refused: u64,
    /// Datagrams that are not a TFTP request (on the listening socket) or not a TFTP packet
    /// (on a transfer socket): dropped without an answer.
    pub malformed: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    files_sent: AtomicU64,
    errors: AtomicU64,
    refused: AtomicU64,
    malformed: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

struct Shared {
    /// The canonical root.
    root: PathBuf,
    /// The root as configured (also accepted as the prefix of absolute names).
    given: PathBuf,
    ip: IpAddr,
    /// The interface the sockets are bound to (the network's bridge).
    device: Option<String>,
    tuning: Tuning,
    counters: Counters,
    transfers: Arc<Semaphore>,
    /// Clients with a transfer in progress: a retransmitted RRQ does not start a second one.
    active: Mutex<HashSet<SocketAddr>>,
    shutdown: watch::Sender<bool>,
}

impl Shared {
    async fn stopping(&self) {
        let mut rx = self.shutdown.subscribe();
        let _ = rx.wait_for(|stop| *stop).await;
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashSet<SocketAddr>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Removes a client from [`Shared::active`] when its transfer ends, however it ends.
struct ActiveGuard {
    shared: Arc<Shared>,
    peer: SocketAddr,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.shared.active().remove(&self.peer);
    }
}

/// The TFTP server of one network: serves the files under one root on one address.
pub struct TftpServer {
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    task: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl std::fmt::Debug for TftpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TftpServer")
            .field("addr", &self.addr)
            .field("root", &self.shared.root)
            .field("stats", &self.stats())
            .finish()
    }
}

impl TftpServer {
    /// Serves the files under `root` on UDP `addr`:`port` (69 in production) only, on the
    /// interface `device` (the network's bridge: a request arriving on any other interface
    /// never reaches the server); a wildcard address is refused. `root` must exist and be a
    /// directory (dnsmasq does not start otherwise either); it is canonicalized once, here.
    ///
    /// Synchronous; must be called inside a tokio runtime context (the tasks are spawned with
    /// `Handle::current()`).
    pub fn start(
        root: &Path,
        device: Option<&str>,
        addr: IpAddr,
        port: u16,
    ) -> Result<TftpServer, TftpError> {
        Self::start_tuned(root, device, addr, port, Tuning::default())
    }

    pub(crate) fn start_tuned(
        root: &Path,
        device: Option<&str>,
        addr: IpAddr,
        port: u16,
        tuning: Tuning,
    ) -> Result<TftpServer, TftpError> {
        let handle = Handle::try_current().map_err(|e| TftpError::NoRuntime(e.to_string()))?;
        let sa = SocketAddr::new(addr, port);
        if addr.is_unspecified() {
            return Err(TftpError::Wildcard(sa));
        }
        let canonical = root.canonicalize().map_err(|source| TftpError::Root {
            path: root.to_path_buf(),
            syscall: "realpath",
            source,
        })?;
        let meta = std::fs::metadata(&canonical).map_err(|source| TftpError::Root {
            path: root.to_path_buf(),
            syscall: "stat",
            source,
        })?;
        if !meta.is_dir() {
            return Err(TftpError::RootNotDirectory(root.to_path_buf()));
        }
        // Sockets are created inside the runtime context so they register with its reactor.
        let _guard = handle.enter();
        let slot = Arc::new(Slot::new(bind_listen(sa, device)?));
        let shared = Arc::new(Shared {
            root: canonical,
            given: root.to_path_buf(),
            ip: addr,
            device: device.map(str::to_string),
            tuning,
            counters: Counters::default(),
            transfers: Arc::new(Semaphore::new(tuning.max_transfers)),
            active: Mutex::new(HashSet::new()),
            shutdown: watch::Sender::new(false),
        });
        let task = handle.spawn(serve(shared.clone(), slot.clone()));
        tracing::info!(listen = %sa, root = %shared.root.display(), "tftp: serving");
        Ok(TftpServer {
            shared,
            slot,
            task: Some(task),
            addr: sa,
        })
    }

    /// Counters since start.
    pub fn stats(&self) -> TftpStats {
        let c = &self.shared.counters;
        TftpStats {
            requests: c.requests.load(Ordering::Relaxed),
            files_sent: c.files_sent.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
        }
    }

    /// Stops serving. The listening socket is closed when this returns (so the same address
    /// can be bound again at once); transfers in progress end at their next wake-up, closing
    /// their sockets. Dropping the server does the same.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for TftpServer {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
        self.slot.close();
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// The listening task.
async fn serve(shared: Arc<Shared>, slot: Arc<Slot>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, peer) = match slot.recv_from(&mut buf).await {
            None => return,
            Some(Ok(got)) => got,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "tftp: receive failed");
                continue;
            }
        };
        let c = &shared.counters;
        bump(&c.requests);
        let refuse = |code: u16, msg: &'static str| {
            bump(&c.refused);
            let slot = slot.clone();
            async move {
                let _ = slot.send_to(&packet::error(code, msg), peer).await;
            }
        };
        let (filename, mode, options) = match packet::parse(&buf[..n]) {
            Ok(Packet::Request {
                write: true,
                filename,
                ..
            }) => {
                tracing::debug!(%peer, file = %String::from_utf8_lossy(filename), "tftp: write request refused");
                refuse(code::ACCESS, "access violation").await;
                continue;
            }
            Ok(Packet::Request {
                write: false,
                filename,
                mode,
                options,
            }) => (filename, mode, options),
            Ok(_) | Err(_) => {
                bump(&c.malformed);
                continue;
            }
        };
        let Some(mode) = Mode::parse(mode) else {
            refuse(code::ILLEGAL, "unsupported mode").await;
            continue;
        };
        if !shared.active().insert(peer) {
            // The client retransmitted its request: the transfer is already under way.
            continue;
        }
        let guard = ActiveGuard {
            shared: shared.clone(),
            peer,
        };
        let Ok(permit) = shared.transfers.clone().try_acquire_owned() else {
            drop(guard);
            tracing::debug!(%peer, "tftp: too many transfers");
            refuse(code::UNDEFINED, "too many transfers, try again later").await;
            continue;
        };
        let request = Request {
            peer,
            filename: filename.to_vec(),
            mode,
            options: options
                .iter()
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect(),
        };
        let (shared, slot) = (shared.clone(), slot.clone());
        tokio::spawn(async move {
            let permit: OwnedSemaphorePermit = permit;
            let outcome = tokio::select! {
                _ = shared.stopping() => return,
                o = transfer(&shared, &slot, request) => o,
            };
            // Free the slot before counting, so that whoever sees the counter move can start
            // another transfer at once.
            drop(permit);
            drop(guard);
            let c = &shared.counters;
            bump(match outcome {
                Outcome::Sent => &c.files_sent,
                Outcome::Refused => &c.refused,
                Outcome::Failed => &c.errors,
            });
        });
    }
}

/// An accepted read request, owned.
struct Request {
    peer: SocketAddr,
    filename: Vec<u8>,
    mode: Mode,
    options: Vec<(Vec<u8>, Vec<u8>)>,
}

/// How a transfer ended, for the counters.
enum Outcome {
    Sent,
    Refused,
    Failed,
}

/// Why a transfer did not complete.
#[derive(Debug)]
enum Failure {
    TimedOut,
    ClientError(u16, String),
    Io(std::io::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::TimedOut => write!(f, "no acknowledgement, retransmissions exhausted"),
            Failure::ClientError(code, msg) => write!(f, "client sent ERROR {code} {msg:?}"),
            Failure::Io(e) => write!(f, "{e}"),
        }
    }
}

/// One transfer: opens the file (refusals go out from the listening socket), negotiates, and
/// sends the blocks from a socket of its own.
async fn transfer(shared: &Shared, slot: &Slot, req: Request) -> Outcome {
    let peer = req.peer;
    let name = String::from_utf8_lossy(&req.filename).into_owned();
    let (root, given, filename) = (shared.root.clone(), shared.given.clone(), req.filename);
    let opened = tokio::task::spawn_blocking(move || path::open(&root, &given, &filename)).await;
    let (file, size) = match opened {
        Ok(Ok(f)) => f,
        Ok(Err(refusal)) => {
            let (code, msg) = refusal.error();
            tracing::debug!(%peer, file = %name, ?refusal, "tftp: request refused");
            let _ = slot.send_to(&packet::error(code, msg), peer).await;
            return Outcome::Refused;
        }
        Err(_) => {
            let _ = slot
                .send_to(&packet::error(code::UNDEFINED, "internal error"), peer)
                .await;
            return Outcome::Failed;
        }
    };
    let refs: Vec<(&[u8], &[u8])> = req
        .options
        .iter()
        .map(|(n, v)| (n.as_slice(), v.as_slice()))
        .collect();
    let neg = negotiate(&refs, size, shared.tuning.max_blksize);
    let sock = match bind_transfer(shared.ip, shared.device.as_deref(), peer) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "tftp: cannot open a transfer socket");
            let _ = slot
                .send_to(
                    &packet::error(code::UNDEFINED, "cannot open a socket"),
                    peer,
                )
                .await;
            return Outcome::Failed;
        }
    };
    let reader = Reader::new(tokio::fs::File::from_std(file), req.mode);
    match send_file(shared, &sock, reader, &neg).await {
        Ok(blocks) => {
            tracing::debug!(%peer, file = %name, size, blocks, blksize = neg.blksize, "tftp: sent");
            Outcome::Sent
        }
        Err(failure) => {
            tracing::debug!(%peer, file = %name, %failure, "tftp: transfer failed");
            Outcome::Failed
        }
    }
}

/// Sends the OACK (if any) and every block; returns the number of DATA blocks.
async fn send_file<R: AsyncRead + Unpin>(
    shared: &Shared,
    sock: &UdpSocket,
    mut reader: Reader<R>,
    neg: &Negotiated,
) -> Result<u64, Failure> {
    let interval = neg.timeout.unwrap_or(shared.tuning.timeout);
    let retries = shared.tuning.retries;
    let counters = &shared.counters;
    if !neg.oack.is_empty() {
        exchange(
            sock,
            &packet::oack(&neg.oack),
            0,
            interval,
            retries,
            counters,
        )
        .await?;
    }
    let mut block: u16 = 1;
    let mut sent: u64 = 0;
    loop {
        let payload = match reader.next(neg.blksize).await {
            Ok(p) => p,
            Err(e) => {
                let _ = sock
                    .send(&packet::error(code::UNDEFINED, "read error"))
                    .await;
                return Err(Failure::Io(e));
            }
        };
        let last = payload.len() < neg.blksize;
        exchange(
            sock,
            &packet::data(block, &payload),
            block,
            interval,
            retries,
            counters,
        )
        .await?;
        sent += 1;
        if last {
            return Ok(sent);
        }
        // RFC 1350 leaves wraparound open; like dnsmasq (and busybox, tftp-hpa) 65535 → 0.
        block = block.wrapping_add(1);
    }
}

/// Sends `pkt` until the client acknowledges block `expect`, retransmitting every `interval`
/// at most `retries` times. Duplicate ACKs of earlier blocks are ignored, without resending
/// (no Sorcerer's Apprentice); an ERROR from the client ends the transfer.
async fn exchange(
    sock: &UdpSocket,
    pkt: &[u8],
    expect: u16,
    interval: Duration,
    retries: u32,
    counters: &Counters,
) -> Result<(), Failure> {
    let mut buf = [0u8; 1024];
    for _ in 0..=retries {
        sock.send(pkt).await.map_err(Failure::Io)?;
        let deadline = Instant::now() + interval;
        loop {
            match timeout_at(deadline, sock.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Err(e)) => return Err(Failure::Io(e)),
                Ok(Ok(n)) => match packet::parse(&buf[..n]) {
                    Ok(Packet::Ack { block }) if block == expect => return Ok(()),
                    Ok(Packet::Error { code, message }) => {
                        return Err(Failure::ClientError(
                            code,
                            String::from_utf8_lossy(message).into_owned(),
                        ))
                    }
                    Ok(_) => {}
                    Err(_) => bump(&counters.malformed),
                },
            }
        }
    }
    Err(Failure::TimedOut)
}

/// Reads a file block by block, converting to netascii on the fly when asked.
struct Reader<R> {
    inner: BufReader<R>,
    netascii: bool,
    pending: Vec<u8>,
    raw: Vec<u8>,
    eof: bool,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    fn new(inner: R, mode: Mode) -> Reader<R> {
        Reader {
            inner: BufReader::with_capacity(64 * 1024, inner),
            netascii: mode == Mode::Netascii,
            pending: Vec::new(),
            raw: vec![0; 8192],
            eof: false,
        }
    }

    /// The next `size` bytes of the (converted) stream; fewer only at its end.
    async fn next(&mut self, size: usize) -> std::io::Result<Vec<u8>> {
        while self.pending.len() < size && !self.eof {
            let n = self.inner.read(&mut self.raw).await?;
            if n == 0 {
                self.eof = true;
            } else if self.netascii {
                for &b in &self.raw[..n] {
                    match b {
                        b'\n' => self.pending.extend_from_slice(b"\r\n"),
                        b'\r' => self.pending.extend_from_slice(b"\r\0"),
                        b => self.pending.push(b),
                    }
                }
            } else {
                self.pending.extend_from_slice(&self.raw[..n]);
            }
        }
        let take = size.min(self.pending.len());
        let rest = self.pending.split_off(take);
        Ok(std::mem::replace(&mut self.pending, rest))
    }
}

#[cfg(test)]
mod tests;

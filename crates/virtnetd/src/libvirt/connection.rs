//! One libvirt connection: frames in, replies and events out.
//!
//! A reader task turns the byte stream into frames (refusing an oversized length word before
//! it allocates; a frame whose header cannot be decoded closes the connection, since the
//! stream cannot be trusted any more). Calls are answered in order, each network call on the
//! blocking pool; lifecycle events are written between calls as they come. Keepalive: a PING
//! is answered with a PONG; nothing is sent unasked besides events the client registered for.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::{broadcast, mpsc};
use tracing::Instrument;
use virtnet_libvirt_rpc::frame::{self, LEN_SIZE};
use virtnet_libvirt_rpc::remote::{
    AuthListRet, CallbackId, GetHostnameRet, GetLibVersionRet, GetTypeRet, GetUriRet,
    GetVersionRet, IsSecureRet, SupportsFeatureRet, AUTH_NONE, KEEPALIVE_PROGRAM,
    KEEPALIVE_PROTOCOL_VERSION, NETWORK_EVENT_ID_LIFECYCLE, REMOTE_PROGRAM,
    REMOTE_PROTOCOL_VERSION,
};
use virtnet_libvirt_rpc::xdr::{List, Writer, Xdr};
use virtnet_libvirt_rpc::{
    code, domain, Call, DecodeError, Header, MessageType, Reply, RpcError, Status,
};

use super::dispatch::{network_call, write_api, Answer};
use super::errors;
use super::events::Callbacks;
use crate::access::{Access, Caller};
use crate::services::Lifecycle;
use crate::state::AppState;

/// The URI clients open (`network:///system`; the remote driver strips the transport and
/// the query, `network+unix:///system?socket=…` arrives as this).
pub const URI: &str = "network:///system";
/// libvirt's version virtnetd answers as (`virConnectGetLibVersion`): the protocol it speaks.
pub const LIBVIRT_VERSION: u64 = 9_000_000;
/// `VIR_CONNECT_RO`.
const CONNECT_RO: u32 = 1;
/// Frames read ahead of the one being answered.
const READ_AHEAD: usize = 8;

/// `virDrvFeature`s virtnetd supports: what libvirt's daemon and network driver answer 1 to
/// (`FD_PASSING` 8, `TYPED_PARAM_STRING` 9, `PROGRAM_KEEPALIVE` 10, `REMOTE_EVENT_CALLBACK` 14,
/// `REMOTE_CLOSE_CALLBACK` 15, `NETWORK_UPDATE_HAS_CORRECT_ORDER` 16).
fn supports_feature(feature: i32) -> bool {
    matches!(feature, 8 | 9 | 10 | 14 | 15 | 16)
}

/// One connection's state.
struct Connection {
    caller: Caller,
    state: Arc<AppState>,
    opened: bool,
    read_only: bool,
    callbacks: Callbacks,
    events: Option<broadcast::Receiver<Lifecycle>>,
    closing: bool,
}

/// Serves one accepted connection until the client closes it or breaks the protocol.
pub async fn serve(stream: UnixStream, caller: Caller, state: Arc<AppState>) {
    let span = tracing::info_span!("libvirt", uid = caller.uid, pid = caller.pid);
    serve_in_span(stream, caller, state).instrument(span).await
}

async fn serve_in_span(stream: UnixStream, caller: Caller, state: Arc<AppState>) {
    let (mut read, mut write) = stream.into_split();
    let (tx, mut frames) = mpsc::channel(READ_AHEAD);
    let reader = tokio::spawn(async move {
        loop {
            let frame = read_payload(&mut read).await;
            let failed = frame.is_err();
            if tx.send(frame).await.is_err() || failed {
                break;
            }
        }
    });
    let mut conn = Connection {
        read_only: caller.access == Access::ReadOnly,
        caller,
        state,
        opened: false,
        callbacks: Callbacks::default(),
        events: None,
        closing: false,
    };
    loop {
        tokio::select! {
            payload = frames.recv() => {
                let payload = match payload {
                    Some(Ok(p)) => p,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "libvirt connection closed");
                        break;
                    }
                    None => break,
                };
                let Some(out) = conn.handle(&payload).await else {
                    tracing::info!("malformed message header: closing the connection");
                    break;
                };
                if send(&mut write, out).await.is_err() || conn.closing {
                    break;
                }
            }
            change = next_change(&mut conn.events) => {
                let frames = change.map(|c| conn.callbacks.frames(&c)).unwrap_or_default();
                if send(&mut write, frames).await.is_err() {
                    break;
                }
            }
        }
    }
    reader.abort();
}

/// Reads one frame's payload. The length word is checked against `VIR_NET_MESSAGE_MAX`
/// first, and the buffer grows with the bytes that actually arrive (from libvirt's initial
/// 64 KiB), so a peer announcing 32 MiB and sending nothing holds 64 KiB, not 32 MiB.
async fn read_payload(read: &mut tokio::net::unix::OwnedReadHalf) -> Result<Vec<u8>, String> {
    let mut prefix = [0u8; LEN_SIZE];
    read.read_exact(&mut prefix)
        .await
        .map_err(|e| e.to_string())?;
    let len = frame::payload_len(prefix).map_err(|e| e.to_string())?;
    let mut payload = Vec::with_capacity(len.min(frame::MESSAGE_INITIAL));
    (&mut *read)
        .take(len as u64)
        .read_to_end(&mut payload)
        .await
        .map_err(|e| e.to_string())?;
    if payload.len() != len {
        return Err(format!(
            "connection closed in a message: {} of {len} bytes",
            payload.len()
        ));
    }
    Ok(payload)
}

async fn send(write: &mut OwnedWriteHalf, frames: Vec<Vec<u8>>) -> std::io::Result<()> {
    for f in frames {
        write.write_all(&f).await?;
    }
    Ok(())
}

/// The next lifecycle change, once the connection listens for them; pending forever before.
async fn next_change(events: &mut Option<broadcast::Receiver<Lifecycle>>) -> Option<Lifecycle> {
    let Some(rx) = events else {
        return std::future::pending().await;
    };
    match rx.recv().await {
        Ok(change) => Some(change),
        Err(broadcast::error::RecvError::Lagged(n)) => {
            tracing::warn!(lost = n, "libvirt event client too slow: events lost");
            None
        }
        Err(broadcast::error::RecvError::Closed) => {
            *events = None;
            None
        }
    }
}

fn reply_frame(call: &Header, answer: Answer) -> Vec<u8> {
    match answer {
        Ok(reply) => frame::build_frame(&call.reply(Status::Ok), &reply.encode()),
        Err(error) => error_frame(call, &error),
    }
}

fn error_frame(call: &Header, error: &RpcError) -> Vec<u8> {
    let mut w = Writer::new();
    error.encode(&mut w);
    frame::build_frame(&call.reply(Status::Error), &w.into_bytes())
}

impl Connection {
    /// Answers one frame: the frames to send back (none for a message needing no answer);
    /// `None` when the header is malformed and the connection must close.
    async fn handle(&mut self, payload: &[u8]) -> Option<Vec<Vec<u8>>> {
        let (header, body) = match frame::split_payload(payload) {
            Ok(split) => split,
            Err(e) => {
                tracing::debug!(error = %e, "undecodable header");
                return None;
            }
        };
        match header.prog {
            KEEPALIVE_PROGRAM => return Some(keepalive(&header).into_iter().collect()),
            REMOTE_PROGRAM if header.kind == MessageType::Call => {}
            REMOTE_PROGRAM => return Some(Vec::new()),
            prog => {
                let e = errors::rpc(format!(
                    "cannot find program {prog} version {}",
                    header.vers
                ));
                return Some(vec![error_frame(&header, &e)]);
            }
        }
        if header.vers != REMOTE_PROTOCOL_VERSION {
            let e = errors::rpc(format!(
                "program {REMOTE_PROGRAM} version {} is not supported",
                header.vers
            ));
            return Some(vec![error_frame(&header, &e)]);
        }
        let answer = match Call::decode(header.proc_, body) {
            Ok(call) => {
                let change = write_api(call.procedure()).map(|api| (api, named(&call)));
                let answer = self.call(call).await;
                if let Some((api, object)) = change {
                    self.audit(api, object, &answer);
                }
                answer
            }
            Err(DecodeError::UnknownProcedure(n)) => Err(errors::error(
                code::NO_SUPPORT,
                domain::RPC,
                format!("unknown procedure: {n}"),
            )),
            Err(e) => Err(errors::rpc(format!(
                "Unable to decode message payload: {e}"
            ))),
        };
        if let Err(e) = &answer {
            tracing::info!(procedure = header.proc_, error = %e.text(), "libvirt call refused");
        }
        Some(vec![reply_frame(&header, answer)])
    }

    /// Answers one call.
    async fn call(&mut self, call: Call) -> Answer {
        let procedure = call.procedure();
        if self.caller.access == Access::ReadWrite && !self.caller.is_admin() {
            tracing::info!(
                target: crate::access::AUDIT_TARGET,
                uid = self.caller.uid,
                gid = self.caller.gid,
                pid = self.caller.pid,
                procedure = procedure.wire_name(),
                "libvirt request refused: not root nor in --libvirt-socket-group"
            );
            return Err(errors::error(
                code::AUTH_FAILED,
                domain::RPC,
                format!(
                    "access denied: uid {} may not use {}; root{} may, anyone may read through {}",
                    self.caller.uid,
                    super::SOCKET_NAME,
                    self.caller
                        .admin_gid
                        .map(|g| format!(" and members of group {g}"))
                        .unwrap_or_default(),
                    super::RO_SOCKET_NAME
                ),
            ));
        }
        if let (true, Some(api)) = (self.read_only, write_api(procedure)) {
            return Err(errors::read_only(api));
        }
        let state = Arc::clone(&self.state);
        match call {
            Call::AuthList(()) => Ok(Reply::AuthList(AuthListRet {
                types: List(vec![AUTH_NONE]),
            })),
            Call::ConnectSupportsFeature(a) => {
                Ok(Reply::ConnectSupportsFeature(SupportsFeatureRet {
                    supported: i32::from(supports_feature(a.feature)),
                }))
            }
            Call::ConnectOpen(a) => self.open(a.name.as_deref(), a.flags),
            Call::ConnectClose(()) => {
                self.closing = true;
                Ok(Reply::ConnectClose(()))
            }
            call if !self.opened => Err(errors::internal(format!(
                "connection not open ({} before CONNECT_OPEN)",
                call.procedure().wire_name()
            ))),
            Call::ConnectGetType(()) => Ok(Reply::ConnectGetType(GetTypeRet {
                type_: "network".into(),
            })),
            Call::ConnectGetVersion(()) => Ok(Reply::ConnectGetVersion(GetVersionRet {
                hv_ver: own_version(),
            })),
            Call::ConnectGetLibVersion(()) => Ok(Reply::ConnectGetLibVersion(GetLibVersionRet {
                lib_ver: LIBVIRT_VERSION,
            })),
            Call::ConnectGetHostname(()) => Ok(Reply::ConnectGetHostname(GetHostnameRet {
                hostname: hostname(),
            })),
            Call::ConnectGetUri(()) => Ok(Reply::ConnectGetUri(GetUriRet { uri: URI.into() })),
            Call::ConnectIsSecure(()) => Ok(Reply::ConnectIsSecure(IsSecureRet { secure: 1 })),
            Call::ConnectRegisterCloseCallback(()) => Ok(Reply::ConnectRegisterCloseCallback(())),
            Call::ConnectUnregisterCloseCallback(()) => {
                Ok(Reply::ConnectUnregisterCloseCallback(()))
            }
            // The identity a hypervisor daemon passes on is only informative here: access is
            // decided by the socket and the peer's own credentials.
            Call::ConnectSetIdentity(_) => Ok(Reply::ConnectSetIdentity(())),
            Call::ConnectGetCapabilities(()) => {
                Err(errors::no_support("virConnectGetCapabilities"))
            }
            Call::ConnectNetworkEventRegisterAny(a) => {
                if a.event_id != NETWORK_EVENT_ID_LIFECYCLE {
                    return Err(errors::error(
                        code::INVALID_ARG,
                        domain::NETWORK,
                        format!("unsupported event ID {}", a.event_id),
                    ));
                }
                let Some(id) = self.callbacks.register(a.net.as_ref()) else {
                    return Err(errors::error(
                        code::OPERATION_FAILED,
                        domain::NETWORK,
                        format!(
                            "too many event callbacks on one connection (at most {})",
                            super::events::MAX_CALLBACKS
                        ),
                    ));
                };
                if self.events.is_none() {
                    self.events = Some(state.events.lifecycle.subscribe());
                }
                tracing::debug!(callback_id = id, "network event callback registered");
                Ok(Reply::ConnectNetworkEventRegisterAny(CallbackId {
                    callback_id: id,
                }))
            }
            Call::ConnectNetworkEventDeregisterAny(a) => {
                if !self.callbacks.deregister(a.callback_id) {
                    return Err(errors::error(
                        code::INVALID_ARG,
                        domain::NETWORK,
                        format!("callback ID {} not registered", a.callback_id),
                    ));
                }
                if self.callbacks.is_empty() {
                    self.events = None;
                }
                Ok(Reply::ConnectNetworkEventDeregisterAny(()))
            }
            call => blocking(move || network_call(&state, call)).await,
        }
    }

    /// Logs a change asked for (made or refused) once, as the JSON API's audit log does
    /// (`virtnetd::audit`): who, which libvirt API, on what, and the outcome.
    fn audit(&self, api: &str, object: Option<String>, answer: &Answer) {
        let object = object.or_else(|| match answer {
            Ok(
                Reply::NetworkDefineXml(r)
                | Reply::NetworkDefineXmlFlags(r)
                | Reply::NetworkCreateXml(r)
                | Reply::NetworkCreateXmlFlags(r),
            ) => Some(r.net.name.clone()),
            _ => None,
        });
        // Debug formatting quotes the object and escapes control characters: a network name
        // cannot forge a log line.
        tracing::info!(
            target: crate::access::AUDIT_TARGET,
            uid = self.caller.uid,
            gid = self.caller.gid,
            pid = self.caller.pid,
            verb = %format!("libvirt {api}"),
            object = ?object.unwrap_or_default(),
            // libvirt's error code; 0: made.
            error = answer.as_ref().err().map_or(0, |e| e.code),
            "change"
        );
    }

    /// `CONNECT_OPEN`: only the network driver's URI (or none, the default connection).
    fn open(&mut self, uri: Option<&str>, flags: u32) -> Answer {
        let accepted = match uri {
            None | Some("") => true,
            Some(uri) => {
                let base = uri.split('?').next().unwrap_or(uri);
                base == URI || base == "network:/system"
            }
        };
        if !accepted {
            return Err(errors::error(
                code::NO_CONNECT,
                domain::NONE,
                uri.unwrap_or_default().to_string(),
            ));
        }
        self.opened = true;
        if flags & CONNECT_RO != 0 {
            self.read_only = true;
        }
        Ok(Reply::ConnectOpen(()))
    }
}

/// The network a change names in its arguments (a define or create names it in its XML,
/// known from the reply).
fn named(call: &Call) -> Option<String> {
    Some(match call {
        Call::NetworkCreate(a) | Call::NetworkDestroy(a) | Call::NetworkUndefine(a) => {
            a.net.name.clone()
        }
        Call::NetworkUpdate(a) => a.net.name.clone(),
        Call::NetworkSetAutostart(a) => a.net.name.clone(),
        Call::NetworkPortCreateXml(a) => a.network.name.clone(),
        Call::NetworkPortDelete(a) => a.port.net.name.clone(),
        Call::NetworkPortSetParameters(a) => a.port.net.name.clone(),
        _ => return None,
    })
}

/// Runs a call into the core on the blocking pool.
async fn blocking(f: impl FnOnce() -> Answer + Send + 'static) -> Answer {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .unwrap_or_else(|e| Err(errors::internal(format!("request worker failed: {e}"))))
}

/// The keepalive answer: PONG to a PING, nothing to anything else.
fn keepalive(header: &Header) -> Option<Vec<u8>> {
    if header.proc_ != virtnet_libvirt_rpc::Keepalive::Ping as i32 {
        return None;
    }
    let pong = Header {
        prog: KEEPALIVE_PROGRAM,
        vers: KEEPALIVE_PROTOCOL_VERSION,
        proc_: virtnet_libvirt_rpc::Keepalive::Pong as i32,
        kind: MessageType::Message,
        serial: header.serial,
        status: Status::Ok,
    };
    Some(frame::build_frame(&pong, &[]))
}

/// virtnetd's own version as libvirt numbers versions (major * 1,000,000 + minor * 1,000 +
/// micro).
fn own_version() -> u64 {
    let mut parts = env!("CARGO_PKG_VERSION")
        .split('.')
        .map(|p| p.parse::<u64>().unwrap_or(0));
    let mut next = || parts.next().unwrap_or(0);
    next() * 1_000_000 + next() * 1_000 + next()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

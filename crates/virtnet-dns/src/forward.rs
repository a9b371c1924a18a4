//! Forwarding to upstream servers over hickory-proto messages: UDP first (TCP when the client
//! came over TCP or the UDP answer is truncated), each upstream in order, a fresh socket and a
//! random id per attempt, and the upstream's answer relayed as is with the client's id.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{timeout_at, Instant};

use crate::handle::{reply_limit, Transport};
use crate::names::key;

/// Time allowed to each upstream before the next one is tried.
pub(crate) const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// Asks `upstreams` in order (skipping `exclude`, the server's own addresses, so that a
/// resolv.conf naming the gateway cannot make a loop). Returns the first valid answer with the
/// client's id, or `None` when every upstream failed or timed out (the caller sends SERVFAIL).
pub(crate) async fn forward(
    request: &Message,
    upstreams: &[SocketAddr],
    transport: Transport,
    exclude: &[SocketAddr],
    per_upstream: Duration,
) -> Option<Vec<u8>> {
    let client_limit = reply_limit(request, transport);
    for &upstream in upstreams {
        if exclude.contains(&upstream) {
            continue;
        }
        let id: u16 = rand::random();
        let mut outgoing = request.clone();
        outgoing.metadata.id = id;
        let Ok(bytes) = outgoing.to_vec() else {
            return None;
        };
        let deadline = Instant::now() + per_upstream;
        let result = match transport {
            Transport::Tcp => tcp_exchange(upstream, &bytes, id, &request.queries, deadline).await,
            Transport::Udp => {
                match udp_exchange(upstream, &bytes, id, &request.queries, deadline).await {
                    Ok(reply) if truncated(&reply) => {
                        let deadline = Instant::now() + per_upstream;
                        match tcp_exchange(upstream, &bytes, id, &request.queries, deadline).await {
                            Ok(full) if full.len() <= client_limit => Ok(full),
                            _ => Ok(reply),
                        }
                    }
                    other => other,
                }
            }
        };
        match result {
            Ok(mut reply) => {
                reply[..2].copy_from_slice(&request.metadata.id.to_be_bytes());
                return Some(reply);
            }
            Err(e) => {
                tracing::debug!(%upstream, error = %e, "dns: upstream failed, trying the next");
            }
        }
    }
    None
}

fn truncated(reply: &[u8]) -> bool {
    reply.len() >= 3 && reply[2] & 0x02 != 0
}

/// True when `reply` is a well-formed response to the query with `id` and `queries`.
fn matches(reply: &[u8], id: u16, queries: &[Query]) -> bool {
    if reply.len() < 12 || reply[2] & 0x80 == 0 || u16::from_be_bytes([reply[0], reply[1]]) != id {
        return false;
    }
    let Ok(msg) = Message::from_vec(reply) else {
        return false;
    };
    msg.queries.len() == queries.len()
        && msg.queries.iter().zip(queries).all(|(a, b)| {
            a.query_type() == b.query_type()
                && a.query_class() == b.query_class()
                && key(a.name()) == key(b.name())
        })
}

fn unspecified(upstream: &SocketAddr) -> SocketAddr {
    match upstream.ip() {
        IpAddr::V4(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
        IpAddr::V6(_) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "upstream timed out")
}

async fn udp_exchange(
    upstream: SocketAddr,
    bytes: &[u8],
    id: u16,
    queries: &[Query],
    deadline: Instant,
) -> io::Result<Vec<u8>> {
    // A client socket on an ephemeral port, connected so that the kernel drops datagrams
    // from anyone but the upstream.
    let sock = UdpSocket::bind(unspecified(&upstream)).await?;
    sock.connect(upstream).await?;
    sock.send(bytes).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = timeout_at(deadline, sock.recv(&mut buf))
            .await
            .map_err(|_| timed_out())??;
        if matches(&buf[..n], id, queries) {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn tcp_exchange(
    upstream: SocketAddr,
    bytes: &[u8],
    id: u16,
    queries: &[Query],
    deadline: Instant,
) -> io::Result<Vec<u8>> {
    let exchange = async {
        let mut stream = TcpStream::connect(upstream).await?;
        let len = u16::try_from(bytes.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query too long"))?;
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(bytes);
        stream.write_all(&framed).await?;
        let len = stream.read_u16().await?;
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await?;
        if matches(&buf, id, queries) {
            Ok(buf)
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "upstream answer does not match the query",
            ))
        }
    };
    timeout_at(deadline, exchange)
        .await
        .map_err(|_| timed_out())?
}

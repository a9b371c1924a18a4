//! virtnetd's libvirt socket at the protocol level, with the protocol crate as the client:
//! keepalive, calls before CONNECT_OPEN, unknown procedures, malformed and oversized
//! messages (an error or a closed connection, the daemon unharmed), and no unasked events.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use virtnet_libvirt_rpc::frame::{build_frame, payload_len, split_payload, LEN_SIZE};
use virtnet_libvirt_rpc::remote::{
    ConnectOpenArgs, LookupByNameArgs, XmlArgs, KEEPALIVE_PROGRAM, REMOTE_PROGRAM,
};
use virtnet_libvirt_rpc::{
    code, Body, Call, Header, Keepalive, Message, MessageType, Procedure, Status,
};
use virtnet_testkit::{Daemon, Netns};

struct Client {
    stream: UnixStream,
    serial: u32,
}

impl Client {
    fn connect(daemon: &Daemon) -> Client {
        Client {
            stream: UnixStream::connect(daemon.libvirt_socket()).expect("connect"),
            serial: 0,
        }
    }

    fn header(&mut self, proc_: i32) -> Header {
        self.serial += 1;
        Header {
            prog: REMOTE_PROGRAM,
            vers: 1,
            proc_,
            kind: MessageType::Call,
            serial: self.serial,
            status: Status::Ok,
        }
    }

    fn send_raw(&mut self, frame: &[u8]) {
        self.stream.write_all(frame).expect("write");
    }

    fn call(&mut self, call: &Call) -> Message {
        let header = self.header(call.procedure() as i32);
        self.send_raw(&build_frame(&header, &call.encode()));
        let reply = self.read().expect("a reply");
        assert_eq!(reply.header.serial, header.serial);
        reply
    }

    /// The next message; `None` when the daemon closed the connection.
    fn read(&mut self) -> Option<Message> {
        let mut prefix = [0; LEN_SIZE];
        if self.stream.read_exact(&mut prefix).is_err() {
            return None;
        }
        let mut payload = vec![0; payload_len(prefix).expect("length")];
        self.stream.read_exact(&mut payload).expect("payload");
        let (header, body) = split_payload(&payload).expect("header");
        Some(Message::decode(header, body).expect("decodable"))
    }

    fn open(&mut self) {
        let reply = self.call(&Call::ConnectOpen(ConnectOpenArgs {
            name: Some("network:///system".into()),
            flags: 0,
        }));
        assert!(matches!(reply.body, Body::Reply(_)), "{reply:?}");
    }
}

fn error_of(m: &Message) -> (i32, String) {
    match &m.body {
        Body::Error(e) => (e.code, e.text().to_string()),
        other => panic!("not an error: {other:?}"),
    }
}

#[test]
fn protocol_errors_are_answered_and_bad_frames_close_only_their_connection() {
    let daemon = Daemon::start_in(&Netns::new("lvproto"));
    let mut c = Client::connect(&daemon);

    // Keepalive: a PING is answered with a PONG.
    let ping = Header {
        prog: KEEPALIVE_PROGRAM,
        vers: 1,
        proc_: Keepalive::Ping as i32,
        kind: MessageType::Message,
        serial: 0,
        status: Status::Ok,
    };
    c.send_raw(&build_frame(&ping, &[]));
    let pong = c.read().expect("pong");
    assert_eq!(pong.body, Body::Keepalive(Keepalive::Pong));
    assert_eq!(pong.header.kind, MessageType::Message);

    // Network calls need an open connection.
    let lookup = Call::NetworkLookupByName(LookupByNameArgs {
        name: "default".into(),
    });
    let (code_, text) = error_of(&c.call(&lookup));
    assert_eq!(code_, code::INTERNAL_ERROR);
    assert!(text.contains("connection not open"), "{text}");
    // Only network:///system opens.
    let other = c.call(&Call::ConnectOpen(ConnectOpenArgs {
        name: Some("qemu:///system".into()),
        flags: 0,
    }));
    assert_eq!(
        error_of(&other),
        (
            code::NO_CONNECT,
            "no connection driver available for qemu:///system".into()
        )
    );
    c.open();

    // An unknown procedure, and a body that does not decode: errors, the connection lives on.
    let header = c.header(9999);
    c.send_raw(&build_frame(&header, &[]));
    let unknown = c.read().expect("reply");
    assert_eq!(
        error_of(&unknown),
        (
            code::NO_SUPPORT,
            "this function is not supported by the connection driver: unknown procedure: 9999"
                .into()
        )
    );
    let header = c.header(Procedure::NetworkLookupByName as i32);
    c.send_raw(&build_frame(&header, &[0, 0, 0, 200, b'x']));
    let (code_, _) = error_of(&c.read().expect("reply"));
    assert_eq!(code_, code::RPC);

    // No event is sent unasked: a change made on this connection is followed by the reply
    // to the next call, nothing in between.
    let define = c.call(&Call::NetworkDefineXml(XmlArgs {
        xml: "<network><name>p1</name><bridge name='pbr1'/></network>".into(),
    }));
    assert!(matches!(define.body, Body::Reply(_)), "{define:?}");
    let found = c.call(&Call::NetworkLookupByName(LookupByNameArgs {
        name: "p1".into(),
    }));
    assert!(matches!(found.body, Body::Reply(_)), "{found:?}");

    // A length word past VIR_NET_MESSAGE_MAX: the connection is closed without the daemon
    // reading (or allocating) the announced payload.
    c.send_raw(&u32::MAX.to_be_bytes());
    assert!(c.read().is_none(), "connection closed");

    // The daemon still serves everybody else.
    let mut d = Client::connect(&daemon);
    d.open();
    let found = d.call(&Call::NetworkLookupByName(LookupByNameArgs {
        name: "p1".into(),
    }));
    assert!(matches!(found.body, Body::Reply(_)), "{found:?}");
}

/// The daemon's virtual memory size in KiB (`VmSize`: what it reserved, touched or not).
fn vm_size_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmSize")
}

#[test]
fn a_message_announced_but_not_sent_reserves_no_memory() {
    let daemon = Daemon::start_in(&Netns::new("lvmem"));
    let pid = daemon.pid().expect("running");
    // Warm up: one full exchange, so the runtime's threads exist before measuring.
    let mut warm = Client::connect(&daemon);
    warm.open();
    let before = vm_size_kib(pid);
    // 48 read-only connections (anyone may open them), each announcing a 32 MiB message
    // (VIR_NET_MESSAGE_MAX) and sending one byte of it.
    let mut held = Vec::new();
    for _ in 0..48 {
        let mut s = UnixStream::connect(daemon.libvirt_ro_socket()).expect("connect");
        let announced = (LEN_SIZE + virtnet_libvirt_rpc::frame::MESSAGE_MAX) as u32;
        s.write_all(&announced.to_be_bytes()).expect("length");
        s.write_all(&[0]).expect("one byte");
        held.push(s);
    }
    // The daemon has read them all once a later call on another connection is answered
    // (connections are served concurrently; give each a round trip of its own).
    for _ in 0..3 {
        let mut c = Client::connect(&daemon);
        c.open();
    }
    let grown_mib = vm_size_kib(pid).saturating_sub(before) / 1024;
    // Reserving each announced message would take 48 × 32 MiB = 1.5 GiB.
    assert!(grown_mib < 256, "virtual size grew by {grown_mib} MiB");
    drop(held);
}

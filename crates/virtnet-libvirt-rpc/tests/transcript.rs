//! Golden test: every frame libvirt 9.0's virsh, virtqemud and virtnetworkd exchanged
//! (`transcript-virsh-virtqemud.txt`) decodes into typed messages and re-encodes byte for byte.

use std::path::PathBuf;

use virtnet_libvirt_rpc::remote::{NetworkEventLifecycleMsg, NonnullNetwork};
use virtnet_libvirt_rpc::{code, domain, Body, Call, Message, Procedure, Reply, RpcError};

/// One recorded frame.
pub struct Frame {
    /// `C>S` or `S>C`.
    pub direction: String,
    /// Procedure number.
    pub proc_: i32,
    /// Message type, serial, status.
    pub kind: u32,
    /// Serial.
    pub serial: u32,
    /// Status.
    pub status: u32,
    /// The bytes.
    pub bytes: Vec<u8>,
}

fn shared_dir() -> PathBuf {
    PathBuf::from(std::env::var("VIRTNET_SHARED_DIR").unwrap_or_else(|_| "/work/shared".into()))
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn frames() -> Vec<Frame> {
    let path = shared_dir().join("conformance/libvirt-9.0/rpc/transcript-virsh-virtqemud.txt");
    let text = std::fs::read_to_string(&path).expect("transcript");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 8, "line {l}");
            Frame {
                direction: f[1].to_string(),
                proc_: f[3].split('(').next().unwrap().parse().unwrap(),
                kind: f[4].parse().unwrap(),
                serial: f[5].parse().unwrap(),
                status: f[6].parse().unwrap(),
                bytes: hex(f[7]),
            }
        })
        .collect()
}

#[test]
fn every_transcript_frame_decodes_typed_and_reencodes_identically() {
    let frames = frames();
    assert!(frames.len() > 200, "{} frames", frames.len());
    let mut procedures = std::collections::BTreeSet::new();
    for (i, f) in frames.iter().enumerate() {
        let m = Message::decode_frame(&f.bytes)
            .unwrap_or_else(|e| panic!("frame {i} ({} proc {}): {e}", f.direction, f.proc_));
        assert_eq!(m.header.proc_, f.proc_, "frame {i}");
        assert_eq!(m.header.kind as u32, f.kind, "frame {i}");
        assert_eq!(m.header.serial, f.serial, "frame {i}");
        assert_eq!(m.header.status as u32, f.status, "frame {i}");
        match (&m.body, f.direction.as_str()) {
            (Body::Call(c), "C>S") => {
                procedures.insert(c.procedure());
            }
            (Body::Reply(r), "S>C") => assert_eq!(r.procedure() as i32, f.proc_),
            (Body::Error(_), "S>C") => {}
            (other, dir) => panic!("frame {i} ({dir}): unexpected {other:?}"),
        }
        assert_eq!(
            m.encode_frame(),
            f.bytes,
            "frame {i} re-encodes differently"
        );
    }
    // The transcript's whole scenario, by procedure (CALLS.md).
    for p in [
        Procedure::AuthList,
        Procedure::ConnectOpen,
        Procedure::NetworkDefineXml,
        Procedure::NetworkPortCreateXml,
        Procedure::NetworkGetDhcpLeases,
        Procedure::ConnectSetIdentity,
    ] {
        assert!(procedures.contains(&p), "{p:?} not seen");
    }
}

#[test]
fn unknown_network_error_is_decoded_field_by_field() {
    let f = frames()
        .into_iter()
        .find(|f| f.status == 1)
        .expect("an error frame");
    let m = Message::decode_frame(&f.bytes).unwrap();
    let Body::Error(e) = m.body else {
        panic!("not an error: {m:?}")
    };
    let expected = RpcError::new(
        code::NO_NETWORK,
        domain::NETWORK,
        "no network with matching name 'nosuchnet'",
    );
    assert_eq!(e, expected);
    assert_eq!(
        e.text(),
        "Network not found: no network with matching name 'nosuchnet'"
    );
}

#[test]
fn define_call_carries_the_xml_and_reply_the_handle() {
    let frames = frames();
    let call = frames
        .iter()
        .find(|f| f.proc_ == 41 && f.kind == 0)
        .unwrap();
    let Body::Call(Call::NetworkDefineXml(args)) = Message::decode_frame(&call.bytes).unwrap().body
    else {
        panic!("not a define")
    };
    assert!(args.xml.starts_with("<network>\n<name>default</name>"));
    let reply = frames
        .iter()
        .find(|f| f.proc_ == 41 && f.kind == 1)
        .unwrap();
    let Body::Reply(Reply::NetworkDefineXml(ret)) =
        Message::decode_frame(&reply.bytes).unwrap().body
    else {
        panic!("not a define reply")
    };
    assert_eq!(ret.net.name, "default");
    assert_eq!(ret.net.uuid[..4], [0xc6, 0xb8, 0xb1, 0x76]);
}

#[test]
fn lifecycle_event_round_trips() {
    let msg = Message {
        header: virtnet_libvirt_rpc::Header {
            prog: virtnet_libvirt_rpc::remote::REMOTE_PROGRAM,
            vers: 1,
            proc_: virtnet_libvirt_rpc::remote::PROC_NETWORK_EVENT_LIFECYCLE,
            kind: virtnet_libvirt_rpc::MessageType::Message,
            serial: 0,
            status: virtnet_libvirt_rpc::Status::Ok,
        },
        body: Body::Event(NetworkEventLifecycleMsg {
            callback_id: 3,
            net: NonnullNetwork {
                name: "n1".into(),
                uuid: [7; 16],
            },
            event: 2,
            detail: 0,
        }),
    };
    let frame = msg.encode_frame();
    assert_eq!(Message::decode_frame(&frame).unwrap(), msg);
}

use super::*;

#[tokio::test]
async fn reader_octet_blocks() {
    let data: Vec<u8> = (0..1025u32).map(|i| i as u8).collect();
    let mut r = Reader::new(&data[..], Mode::Octet);
    assert_eq!(r.next(512).await.unwrap(), data[..512]);
    assert_eq!(r.next(512).await.unwrap(), data[512..1024]);
    assert_eq!(r.next(512).await.unwrap(), data[1024..]);
    assert!(r.next(512).await.unwrap().is_empty());
}

#[tokio::test]
async fn reader_netascii_expands_lf_and_cr() {
    let mut r = Reader::new(&b"a\nb\r\nc\r"[..], Mode::Netascii);
    assert_eq!(r.next(4).await.unwrap(), b"a\r\nb");
    assert_eq!(r.next(4).await.unwrap(), b"\r\0\r\n");
    assert_eq!(r.next(4).await.unwrap(), b"c\r\0");
    assert!(r.next(4).await.unwrap().is_empty());
}

// ---- Raw-client tests on real sockets, each in a network namespace of its own: the test
// thread `unshare`s, so the runtime built afterwards lives there too. Needs root.

use std::net::UdpSocket as StdUdp;
use std::os::unix::fs::PermissionsExt;

const SERVER: &str = "192.168.122.1";

fn in_netns<F: FnOnce() + Send + 'static>(f: F) {
    virtnet_testkit::in_thread_netns(&["192.168.122.1/24"], f);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn root_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    // tempdir makes a 0700 directory; the server serves only what others may reach.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for (name, body) in files {
        let p = dir.path().join(name);
        std::fs::write(&p, body).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    dir
}

fn client() -> StdUdp {
    let s = StdUdp::bind("192.168.122.1:0").expect("client bind");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    s
}

fn recv(s: &StdUdp) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 70000];
    let (n, from) = s.recv_from(&mut buf).expect("no answer from the server");
    buf.truncate(n);
    (buf, from)
}

fn server_addr(port: u16) -> SocketAddr {
    SocketAddr::new(SERVER.parse().expect("ip"), port)
}

fn fast() -> Tuning {
    Tuning {
        timeout: Duration::from_millis(200),
        retries: 2,
        ..Tuning::default()
    }
}

#[test]
fn oack_then_blocks_with_wraparound_and_retransmission() {
    in_netns(|| {
        let rt = runtime();
        // 8-byte blocks: 600 000 bytes is 75 001 blocks, past 65 535.
        let body: Vec<u8> = (0..600_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let root = root_with(&[("big", &body)]);
        let srv = rt
            .block_on(async {
                TftpServer::start_tuned(
                    root.path(),
                    Some("lo"),
                    SERVER.parse().unwrap(),
                    6969,
                    fast(),
                )
            })
            .expect("start");
        let c = client();
        let req = packet::request(
            false,
            "big",
            "octet",
            &[("blksize", "8"), ("tsize", "0"), ("bogus", "1")],
        );
        c.send_to(&req, server_addr(6969)).unwrap();
        let (oack, tid) = recv(&c);
        assert_ne!(tid.port(), 6969, "transfer from an ephemeral port");
        assert_eq!(
            tid.ip(),
            server_addr(6969).ip(),
            "transfer from the server's address"
        );
        assert_eq!(
            packet::parse(&oack),
            Ok(Packet::Oack {
                options: vec![(&b"blksize"[..], &b"8"[..]), (b"tsize", b"600000")]
            })
        );
        // Do not acknowledge: the OACK must come again.
        let (again, _) = recv(&c);
        assert_eq!(again, oack);
        c.send_to(&packet::ack(0), tid).unwrap();
        let mut got = Vec::new();
        let mut expect: u16 = 1;
        let mut wrapped = false;
        let mut retransmit_checked = false;
        loop {
            let (pkt, from) = recv(&c);
            assert_eq!(from, tid);
            let Ok(Packet::Data { block, data }) = packet::parse(&pkt) else {
                panic!("not DATA: {pkt:?}");
            };
            assert_eq!(block, expect);
            if block == 0 {
                wrapped = true;
            }
            if block == 3 && !retransmit_checked {
                // Lose this ACK: the block is sent again; a duplicate of ACK 2 changes nothing.
                retransmit_checked = true;
                c.send_to(&packet::ack(2), tid).unwrap();
                continue;
            }
            got.extend_from_slice(data);
            c.send_to(&packet::ack(block), tid).unwrap();
            if data.len() < 8 {
                break;
            }
            expect = expect.wrapping_add(1);
        }
        assert!(wrapped, "block numbers wrapped 65535 → 0");
        assert_eq!(got, body);
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while srv.stats().files_sent != 1 {
            assert!(std::time::Instant::now() < deadline, "{:?}", srv.stats());
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(srv.stats().requests, 1);
        srv.stop();
        // The listening socket is closed once stop returns: the port binds again at once.
        StdUdp::bind("192.168.122.1:6969").expect("port free after stop");
    });
}

#[test]
fn cap_duplicates_silence_and_refusals() {
    in_netns(|| {
        let rt = runtime();
        let root = root_with(&[("f", &[1u8; 2000][..])]);
        let tuning = Tuning {
            max_transfers: 1,
            ..fast()
        };
        let srv = rt
            .block_on(async {
                TftpServer::start_tuned(
                    root.path(),
                    Some("lo"),
                    SERVER.parse().unwrap(),
                    69,
                    tuning,
                )
            })
            .expect("start");
        let a = client();
        let req = packet::request(false, "f", "octet", &[]);
        a.send_to(&req, server_addr(69)).unwrap();
        let (first, tid) = recv(&a);
        assert!(matches!(
            packet::parse(&first),
            Ok(Packet::Data { block: 1, .. })
        ));
        // A retransmitted RRQ from the same client does not start a second transfer.
        a.send_to(&req, server_addr(69)).unwrap();
        // A second client while the only slot is taken: ERROR 0 from the listening port.
        let b = client();
        b.send_to(&req, server_addr(69)).unwrap();
        let (err, from) = recv(&b);
        assert_eq!(from, server_addr(69));
        assert!(
            matches!(packet::parse(&err), Ok(Packet::Error { code: 0, .. })),
            "{err:?}"
        );
        // Client A stays silent: DATA 1 is retransmitted `retries` times from the same TID,
        // then the transfer is abandoned; the retransmitted RRQ produced nothing extra.
        for _ in 0..2 {
            let (again, from) = recv(&a);
            assert_eq!((again.as_slice(), from), (first.as_slice(), tid));
        }
        a.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 600];
        assert!(
            a.recv_from(&mut buf).is_err(),
            "nothing after the last retransmission"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while srv.stats().errors != 1 {
            assert!(std::time::Instant::now() < deadline, "{:?}", srv.stats());
            std::thread::sleep(Duration::from_millis(10));
        }
        // The slot is free again; WRQ, bad mode, garbage.
        b.send_to(&req, server_addr(69)).unwrap();
        let (d, tid_b) = recv(&b);
        assert!(matches!(
            packet::parse(&d),
            Ok(Packet::Data { block: 1, .. })
        ));
        b.send_to(&packet::error(0, "bye"), tid_b).unwrap();
        // The client's ERROR ends the transfer (counted once its slot is free again).
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while srv.stats().errors != 2 {
            assert!(std::time::Instant::now() < deadline, "{:?}", srv.stats());
            std::thread::sleep(Duration::from_millis(10));
        }
        let c = client();
        c.send_to(&packet::request(true, "f", "octet", &[]), server_addr(69))
            .unwrap();
        let (e, _) = recv(&c);
        assert_eq!(
            packet::parse(&e),
            Ok(Packet::Error {
                code: 2,
                message: b"access violation"
            })
        );
        c.send_to(&packet::request(false, "f", "mail", &[]), server_addr(69))
            .unwrap();
        let (e, _) = recv(&c);
        assert!(matches!(
            packet::parse(&e),
            Ok(Packet::Error { code: 4, .. })
        ));
        for junk in [
            &b""[..],
            b"\0",
            b"\0\x01no-nul",
            b"\0\x04\0\x01",
            b"\xff\xff\xff",
        ] {
            c.send_to(junk, server_addr(69)).unwrap();
        }
        // Still serving after the junk.
        c.send_to(
            &packet::request(false, "f", "octet", &[("blksize", "1468")]),
            server_addr(69),
        )
        .unwrap();
        let (o, _) = recv(&c);
        assert!(
            matches!(packet::parse(&o), Ok(Packet::Oack { .. })),
            "{o:?}"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            let s = srv.stats();
            // The last client never acknowledges the OACK: abandoned after the retries.
            if s.errors == 3 {
                assert_eq!(s.refused, 3, "{s:?}");
                assert_eq!(s.malformed, 5, "{s:?}");
                assert_eq!(s.requests, 12, "{s:?}");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{s:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(srv);
    });
}

#[test]
fn start_refuses_wildcards_and_bad_roots() {
    let rt = runtime();
    let _g = rt.enter();
    let root = root_with(&[("f", b"x")]);
    let any: IpAddr = "0.0.0.0".parse().unwrap();
    assert!(matches!(
        TftpServer::start(root.path(), None, any, 69),
        Err(TftpError::Wildcard(_))
    ));
    let any6: IpAddr = "::".parse().unwrap();
    assert!(matches!(
        TftpServer::start(root.path(), None, any6, 69),
        Err(TftpError::Wildcard(_))
    ));
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let e = TftpServer::start(&root.path().join("missing"), None, lo, 69).unwrap_err();
    assert!(
        matches!(
            e,
            TftpError::Root {
                syscall: "realpath",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("missing"), "{e}");
    let e = TftpServer::start(&root.path().join("f"), None, lo, 69).unwrap_err();
    assert!(matches!(e, TftpError::RootNotDirectory(_)), "{e}");
}

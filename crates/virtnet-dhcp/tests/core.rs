//! The protocol core, without sockets: every message type, address choice, limits, options.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use dhcproto::v4::{DhcpOption, Flags, HType, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Encodable, Encoder};
use rand::{Rng, SeedableRng};
use virtnet_dhcp::*;

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 122, 1);
const NOW: u64 = 1_000_000;
const PORT_A: PortId = PortId::Port(10);
const PORT_B: PortId = PortId::Port(11);

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 122, last)
}

fn mac(n: u8) -> [u8; 6] {
    [0x52, 0x54, 0, 0, 0, n]
}

fn config() -> DhcpConfig {
    DhcpConfig {
        ranges: vec![Range {
            start: ip(2),
            end: ip(254),
            lease_secs: Some(3600),
        }],
        hosts: vec![
            StaticHost {
                mac: Some(mac(0xaa)),
                client_id: None,
                ip: ip(10),
                name: Some("alpha.example.com".into()),
                lease_secs: Some(300),
            },
            StaticHost {
                mac: None,
                client_id: Some(vec![1, 2, 3, 4]),
                ip: ip(11),
                name: Some("beta".into()),
                lease_secs: None,
            },
        ],
        router: Some(SERVER),
        dns: Some(SERVER),
        domain: Some("example.com".into()),
        ..DhcpConfig::new("default", SERVER, 24)
    }
}

/// Records every change, and the size of every `record_batch` (one store commit each); can be
/// told to fail.
#[derive(Default)]
struct Sink {
    changes: Mutex<Vec<LeaseChange>>,
    batches: Mutex<Vec<usize>>,
    fail: Mutex<bool>,
}

impl LeaseSink for Sink {
    fn record(&self, network: &str, change: &LeaseChange) -> std::io::Result<()> {
        self.record_batch(network, std::slice::from_ref(change))
    }

    fn record_batch(&self, network: &str, changes: &[LeaseChange]) -> std::io::Result<()> {
        assert_eq!(network, "default");
        if *self.fail.lock().unwrap() {
            return Err(std::io::Error::other("disk full"));
        }
        self.batches.lock().unwrap().push(changes.len());
        self.changes.lock().unwrap().extend_from_slice(changes);
        Ok(())
    }
}

impl Sink {
    fn take(&self) -> Vec<LeaseChange> {
        std::mem::take(&mut *self.changes.lock().unwrap())
    }
    fn take_batches(&self) -> Vec<usize> {
        std::mem::take(&mut *self.batches.lock().unwrap())
    }
}

/// A neighbour table: ip → mac.
type Table = Arc<Mutex<Vec<(Ipv4Addr, [u8; 6])>>>;

struct FakeNeigh(Table);

impl Probe for FakeNeigh {
    fn conflict(&mut self, ip: Ipv4Addr, mac: &[u8; 6]) -> bool {
        self.0
            .lock()
            .unwrap()
            .iter()
            .any(|(i, m)| *i == ip && m != mac)
    }
}

struct T {
    engine: Engine,
    sink: Arc<Sink>,
    neigh: Table,
}

fn setup_with(cfg: DhcpConfig, leases: Vec<Lease>) -> T {
    let sink = Arc::new(Sink::default());
    let neigh = Arc::new(Mutex::new(Vec::new()));
    let engine = Engine::new(
        cfg,
        leases,
        sink.clone(),
        Box::new(FakeNeigh(neigh.clone())),
    );
    T {
        engine,
        sink,
        neigh,
    }
}

fn setup() -> T {
    setup_with(config(), vec![])
}

fn msg(kind: MessageType, m: [u8; 6]) -> Message {
    let mut msg = Message::default();
    msg.set_opcode(Opcode::BootRequest)
        .set_htype(HType::Eth)
        .set_xid(0x1234_5678)
        .set_chaddr(&m);
    msg.opts_mut().insert(DhcpOption::MessageType(kind));
    msg
}

fn with(mut m: Message, opt: DhcpOption) -> Message {
    m.opts_mut().insert(opt);
    m
}

fn ciaddr(mut m: Message, a: Ipv4Addr) -> Message {
    m.set_ciaddr(a);
    m
}

impl T {
    fn send(&mut self, m: Message, port: PortId) -> Option<Reply> {
        self.engine.handle(NOW, Request { msg: m, port })
    }
    fn send_at(&mut self, now: u64, m: Message, port: PortId) -> Option<Reply> {
        self.engine.handle(now, Request { msg: m, port })
    }
    /// DISCOVER then REQUEST (SELECTING); the ACKed address.
    fn lease(&mut self, m: [u8; 6], port: PortId) -> Ipv4Addr {
        let offer = self
            .send(msg(MessageType::Discover, m), port)
            .expect("offer");
        assert_eq!(offer.message_type(), Some(MessageType::Offer));
        let a = offer.msg.yiaddr();
        let req = with(
            with(
                msg(MessageType::Request, m),
                DhcpOption::ServerIdentifier(SERVER),
            ),
            DhcpOption::RequestedIpAddress(a),
        );
        let ack = self.send(req, port).expect("ack");
        assert_eq!(ack.message_type(), Some(MessageType::Ack));
        assert_eq!(ack.msg.yiaddr(), a);
        a
    }
}

fn opt(r: &Reply, code: OptionCode) -> Option<&DhcpOption> {
    r.msg.opts().get(code)
}

#[test]
fn discover_offer_request_ack() {
    let mut t = setup();
    let offer = t.send(msg(MessageType::Discover, mac(1)), PORT_A).unwrap();
    assert_eq!(offer.message_type(), Some(MessageType::Offer));
    assert_eq!(offer.dest, Destination::Broadcast);
    assert_eq!(offer.msg.opcode(), Opcode::BootReply);
    assert_eq!(offer.msg.xid(), 0x1234_5678);
    let a = offer.msg.yiaddr();
    assert!(
        a >= ip(2) && a <= ip(254) && a != ip(10) && a != ip(11),
        "{a}"
    );
    // No lease yet: only an offer.
    assert!(t.engine.leases(NOW).is_empty());
    assert!(t.sink.take().is_empty());
    let req = with(
        with(
            msg(MessageType::Request, mac(1)),
            DhcpOption::ServerIdentifier(SERVER),
        ),
        DhcpOption::RequestedIpAddress(a),
    );
    let ack = t.send(req, PORT_A).unwrap();
    assert_eq!(ack.message_type(), Some(MessageType::Ack));
    assert_eq!(ack.msg.yiaddr(), a);
    let leases = t.engine.leases(NOW);
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].ip, a);
    assert_eq!(leases[0].expires, Some(NOW + 3600));
    assert!(matches!(&t.sink.take()[..], [LeaseChange::Granted(l)] if l.ip == a));
    let s = t.engine.stats();
    assert_eq!((s.received, s.offers, s.acks), (2, 1, 1));
}

#[test]
fn same_mac_gets_same_address_deterministically() {
    let mut a = setup();
    let mut b = setup();
    let x = a
        .send(msg(MessageType::Discover, mac(7)), PORT_A)
        .unwrap()
        .msg
        .yiaddr();
    let y = b
        .send(msg(MessageType::Discover, mac(7)), PORT_A)
        .unwrap()
        .msg
        .yiaddr();
    assert_eq!(x, y);
    // A second DISCOVER from the same client gets the same offer.
    let z = a
        .send(msg(MessageType::Discover, mac(7)), PORT_A)
        .unwrap()
        .msg
        .yiaddr();
    assert_eq!(x, z);
    // Another MAC gets another address.
    let w = a
        .send(msg(MessageType::Discover, mac(8)), PORT_A)
        .unwrap()
        .msg
        .yiaddr();
    assert_ne!(x, w);
}

#[test]
fn requested_address_honoured_when_free() {
    let mut t = setup();
    let d = with(
        msg(MessageType::Discover, mac(1)),
        DhcpOption::RequestedIpAddress(ip(77)),
    );
    assert_eq!(t.send(d, PORT_A).unwrap().msg.yiaddr(), ip(77));
    // Another client asking for the offered address gets something else.
    let d = with(
        msg(MessageType::Discover, mac(2)),
        DhcpOption::RequestedIpAddress(ip(77)),
    );
    assert_ne!(t.send(d, PORT_A).unwrap().msg.yiaddr(), ip(77));
    // Outside the range, the server address, a static address: not honoured.
    for bad in [ip(1), ip(10), ip(255), Ipv4Addr::new(10, 0, 0, 5)] {
        let d = with(
            msg(MessageType::Discover, mac(3)),
            DhcpOption::RequestedIpAddress(bad),
        );
        assert_ne!(t.send(d, PORT_A).unwrap().msg.yiaddr(), bad);
    }
}

#[test]
fn previous_lease_kept_across_restart() {
    let lease = Lease {
        mac: mac(5),
        client_id: None,
        ip: ip(200),
        hostname: Some("old".into()),
        expires: Some(NOW + 100),
    };
    let mut t = setup_with(config(), vec![lease]);
    let offer = t.send(msg(MessageType::Discover, mac(5)), PORT_A).unwrap();
    assert_eq!(offer.msg.yiaddr(), ip(200));
    // Nobody else gets it.
    let d = with(
        msg(MessageType::Discover, mac(6)),
        DhcpOption::RequestedIpAddress(ip(200)),
    );
    assert_ne!(t.send(d, PORT_A).unwrap().msg.yiaddr(), ip(200));
}

#[test]
fn client_id_identifies_client() {
    let mut t = setup();
    let id = DhcpOption::ClientIdentifier(vec![0xff, 9, 9]);
    let offer = t
        .send(with(msg(MessageType::Discover, mac(1)), id.clone()), PORT_A)
        .unwrap();
    let a = offer.msg.yiaddr();
    let req = with(
        with(
            with(msg(MessageType::Request, mac(1)), id.clone()),
            DhcpOption::ServerIdentifier(SERVER),
        ),
        DhcpOption::RequestedIpAddress(a),
    );
    t.send(req, PORT_A).unwrap();
    assert_eq!(t.engine.leases(NOW)[0].client_id, Some(vec![0xff, 9, 9]));
    // Same client id from another MAC (a new NIC in the same guest) keeps the address.
    let offer = t
        .send(with(msg(MessageType::Discover, mac(2)), id), PORT_A)
        .unwrap();
    assert_eq!(offer.msg.yiaddr(), a);
}

#[test]
fn static_host_by_mac_with_own_lease_time_and_name() {
    let mut t = setup();
    let offer = t
        .send(msg(MessageType::Discover, mac(0xaa)), PORT_A)
        .unwrap();
    assert_eq!(offer.msg.yiaddr(), ip(10));
    assert_eq!(
        opt(&offer, OptionCode::AddressLeaseTime),
        Some(&DhcpOption::AddressLeaseTime(300))
    );
    assert_eq!(
        opt(&offer, OptionCode::Renewal),
        Some(&DhcpOption::Renewal(150))
    );
    assert_eq!(
        opt(&offer, OptionCode::Rebinding),
        Some(&DhcpOption::Rebinding(262))
    );
    assert_eq!(
        opt(&offer, OptionCode::Hostname),
        Some(&DhcpOption::Hostname("alpha".into()))
    );
    assert_eq!(t.lease(mac(0xaa), PORT_A), ip(10));
    let l = &t.engine.leases(NOW)[0];
    assert_eq!(l.hostname.as_deref(), Some("alpha.example.com"));
    assert_eq!(l.expires, Some(NOW + 300));
    // Requesting another address: NAK.
    let req = with(
        msg(MessageType::Request, mac(0xaa)),
        DhcpOption::RequestedIpAddress(ip(50)),
    );
    assert_eq!(
        t.send(req, PORT_A).unwrap().message_type(),
        Some(MessageType::Nak)
    );
}

#[test]
fn static_host_by_client_id_infinite_lease() {
    let mut t = setup();
    let id = DhcpOption::ClientIdentifier(vec![1, 2, 3, 4]);
    let offer = t
        .send(
            with(msg(MessageType::Discover, mac(0x33)), id.clone()),
            PORT_A,
        )
        .unwrap();
    assert_eq!(offer.msg.yiaddr(), ip(11));
    assert_eq!(
        opt(&offer, OptionCode::AddressLeaseTime),
        Some(&DhcpOption::AddressLeaseTime(u32::MAX))
    );
    assert!(opt(&offer, OptionCode::Renewal).is_none());
    let req = with(
        with(
            with(msg(MessageType::Request, mac(0x33)), id),
            DhcpOption::ServerIdentifier(SERVER),
        ),
        DhcpOption::RequestedIpAddress(ip(11)),
    );
    assert_eq!(
        t.send(req, PORT_A).unwrap().message_type(),
        Some(MessageType::Ack)
    );
    let l = &t.engine.leases(u64::MAX - 1)[0];
    assert_eq!(l.expires, None);
    assert_eq!(l.hostname.as_deref(), Some("beta"));
    // The static address is never given to anyone else.
    let d = with(
        msg(MessageType::Discover, mac(0x34)),
        DhcpOption::RequestedIpAddress(ip(11)),
    );
    assert_ne!(t.send(d, PORT_A).unwrap().msg.yiaddr(), ip(11));
}

#[test]
fn infinite_range_lease() {
    let mut cfg = config();
    cfg.ranges[0].lease_secs = None;
    let mut t = setup_with(cfg, vec![]);
    let a = t.lease(mac(1), PORT_A);
    let l = &t.engine.leases(NOW)[0];
    assert_eq!((l.ip, l.expires), (a, None));
    assert_eq!(t.engine.sweep(u64::MAX - 1), 0);
}

#[test]
fn rapid_commit() {
    let mut t = setup();
    let d = with(msg(MessageType::Discover, mac(1)), DhcpOption::RapidCommit);
    let ack = t.send(d, PORT_A).unwrap();
    assert_eq!(ack.message_type(), Some(MessageType::Ack));
    assert!(opt(&ack, OptionCode::RapidCommit).is_some());
    assert_eq!(t.engine.leases(NOW).len(), 1);
    assert!(matches!(&t.sink.take()[..], [LeaseChange::Granted(_)]));
}

#[test]
fn renew_rebind_and_init_reboot() {
    let mut t = setup();
    let a = t.lease(mac(1), PORT_A);
    t.sink.take();
    // RENEWING: unicast, ciaddr set, no server id.
    let r = t
        .send_at(
            NOW + 1800,
            ciaddr(msg(MessageType::Request, mac(1)), a),
            PORT_A,
        )
        .unwrap();
    assert_eq!(r.message_type(), Some(MessageType::Ack));
    assert_eq!(r.dest, Destination::Unicast(a));
    assert_eq!(r.msg.ciaddr(), a);
    assert_eq!(t.engine.leases(NOW)[0].expires, Some(NOW + 1800 + 3600));
    assert!(matches!(&t.sink.take()[..], [LeaseChange::Renewed(l)] if l.ip == a));
    // REBINDING: the same from the server's view (broadcast on the wire).
    let mut m = ciaddr(msg(MessageType::Request, mac(1)), a);
    m.set_flags(Flags::default().set_broadcast());
    let r = t.send_at(NOW + 3000, m, PORT_A).unwrap();
    assert_eq!(r.message_type(), Some(MessageType::Ack));
    // INIT-REBOOT: no server id, ciaddr 0, option 50.
    let m = with(
        msg(MessageType::Request, mac(1)),
        DhcpOption::RequestedIpAddress(a),
    );
    let r = t.send_at(NOW + 3100, m, PORT_A).unwrap();
    assert_eq!(r.message_type(), Some(MessageType::Ack));
    assert_eq!(r.dest, Destination::Broadcast);
    // INIT-REBOOT for a free address after our state was lost: granted (authoritative).
    let m = with(
        msg(MessageType::Request, mac(2)),
        DhcpOption::RequestedIpAddress(ip(123)),
    );
    let r = t.send(m, PORT_A).unwrap();
    assert_eq!(r.message_type(), Some(MessageType::Ack));
    assert_eq!(r.msg.yiaddr(), ip(123));
}

#[test]
fn nak_cases() {
    let mut t = setup();
    let a = t.lease(mac(1), PORT_A);
    // INIT-REBOOT from another subnet.
    let m = with(
        msg(MessageType::Request, mac(2)),
        DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 1, 1, 5)),
    );
    let r = t.send(m, PORT_A).unwrap();
    assert_eq!(r.message_type(), Some(MessageType::Nak));
    assert_eq!(r.dest, Destination::Broadcast);
    assert_eq!(r.msg.yiaddr(), Ipv4Addr::UNSPECIFIED);
    // Another client's address.
    let m = with(
        msg(MessageType::Request, mac(2)),
        DhcpOption::RequestedIpAddress(a),
    );
    assert_eq!(
        t.send(m, PORT_A).unwrap().message_type(),
        Some(MessageType::Nak)
    );
    // Renewing an address outside the ranges.
    let m = ciaddr(msg(MessageType::Request, mac(3)), ip(1));
    assert_eq!(
        t.send(m, PORT_A).unwrap().message_type(),
        Some(MessageType::Nak)
    );
    // Someone else's static address.
    let m = with(
        msg(MessageType::Request, mac(3)),
        DhcpOption::RequestedIpAddress(ip(10)),
    );
    assert_eq!(
        t.send(m, PORT_A).unwrap().message_type(),
        Some(MessageType::Nak)
    );
    assert_eq!(t.engine.stats().naks, 4);
    // A REQUEST for another server: ignored, and our offer is withdrawn.
    let o = t
        .send(msg(MessageType::Discover, mac(4)), PORT_A)
        .unwrap()
        .msg
        .yiaddr();
    let m = with(
        with(
            msg(MessageType::Request, mac(4)),
            DhcpOption::ServerIdentifier(Ipv4Addr::new(192, 168, 122, 99)),
        ),
        DhcpOption::RequestedIpAddress(o),
    );
    assert!(t.send(m, PORT_A).is_none());
    let d = with(
        msg(MessageType::Discover, mac(5)),
        DhcpOption::RequestedIpAddress(o),
    );
    assert_eq!(t.send(d, PORT_A).unwrap().msg.yiaddr(), o);
}

#[test]
fn release_frees_address() {
    let mut t = setup();
    let a = t.lease(mac(1), PORT_A);
    t.sink.take();
    // A release from another client is ignored.
    assert!(t
        .send(ciaddr(msg(MessageType::Release, mac(2)), a), PORT_A)
        .is_none());
    assert_eq!(t.engine.leases(NOW).len(), 1);
    let m = with(
        ciaddr(msg(MessageType::Release, mac(1)), a),
        DhcpOption::ServerIdentifier(SERVER),
    );
    assert!(t.send(m, PORT_A).is_none());
    assert!(t.engine.leases(NOW).is_empty());
    assert!(matches!(&t.sink.take()[..], [LeaseChange::Released(l)] if l.ip == a));
    assert_eq!(t.engine.stats().releases, 1);
    // Free for others now.
    let d = with(
        msg(MessageType::Discover, mac(2)),
        DhcpOption::RequestedIpAddress(a),
    );
    assert_eq!(t.send(d, PORT_A).unwrap().msg.yiaddr(), a);
}

#[test]
fn decline_quarantines() {
    let mut t = setup();
    let a = t.lease(mac(1), PORT_A);
    let m = with(
        with(
            msg(MessageType::Decline, mac(1)),
            DhcpOption::RequestedIpAddress(a),
        ),
        DhcpOption::ServerIdentifier(SERVER),
    );
    assert!(t.send(m, PORT_A).is_none());
    assert_eq!(t.engine.stats().declines, 1);
    assert!(t.engine.leases(NOW).is_empty());
    // The client gets another address; nobody gets the declined one for 10 minutes.
    let o = t
        .send(msg(MessageType::Discover, mac(1)), PORT_A)
        .unwrap()
        .msg
        .yiaddr();
    assert_ne!(o, a);
    let d = with(
        msg(MessageType::Discover, mac(9)),
        DhcpOption::RequestedIpAddress(a),
    );
    assert_ne!(t.send(d, PORT_A).unwrap().msg.yiaddr(), a);
    let later = NOW + DECLINE_QUARANTINE_SECS + 1;
    t.engine.sweep(later);
    let d = with(
        msg(MessageType::Discover, mac(9)),
        DhcpOption::RequestedIpAddress(a),
    );
    assert_eq!(t.send_at(later, d, PORT_A).unwrap().msg.yiaddr(), a);
    // A DECLINE of an address the client was never given is ignored (no pool draining).
    let m = with(
        msg(MessageType::Decline, mac(3)),
        DhcpOption::RequestedIpAddress(ip(100)),
    );
    assert!(t.send(m, PORT_A).is_none());
    assert_eq!(t.engine.stats().declines, 1);
}

#[test]
fn inform_gets_options_without_lease() {
    let mut t = setup();
    let r = t
        .send(ciaddr(msg(MessageType::Inform, mac(1)), ip(99)), PORT_A)
        .unwrap();
    assert_eq!(r.message_type(), Some(MessageType::Ack));
    assert_eq!(r.dest, Destination::Unicast(ip(99)));
    assert_eq!(r.msg.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert!(opt(&r, OptionCode::AddressLeaseTime).is_none());
    assert!(opt(&r, OptionCode::Router).is_some());
    assert!(t.engine.leases(NOW).is_empty());
    assert_eq!(t.engine.stats().informs, 1);
}

#[test]
fn expiry_sweep_reports_expired() {
    let mut cfg = config();
    cfg.ranges[0].lease_secs = Some(60);
    let mut t = setup_with(cfg, vec![]);
    let a = t.lease(mac(1), PORT_A);
    t.sink.take();
    assert_eq!(t.engine.sweep(NOW + 59), 0);
    assert_eq!(t.engine.sweep(NOW + 60), 1);
    assert!(matches!(&t.sink.take()[..], [LeaseChange::Expired(l)] if l.ip == a));
    assert!(t.engine.leases(NOW).is_empty());
}

#[test]
fn sink_failure_means_no_ack() {
    let mut t = setup();
    let a = t
        .send(msg(MessageType::Discover, mac(1)), PORT_A)
        .unwrap()
        .msg
        .yiaddr();
    *t.sink.fail.lock().unwrap() = true;
    let req = with(
        with(
            msg(MessageType::Request, mac(1)),
            DhcpOption::ServerIdentifier(SERVER),
        ),
        DhcpOption::RequestedIpAddress(a),
    );
    assert!(t.send(req, PORT_A).is_none());
    assert!(t.engine.leases(NOW).is_empty());
}

#[test]
fn pool_exhaustion_gives_no_offer() {
    let mut cfg = config();
    cfg.ranges = vec![Range {
        start: ip(20),
        end: ip(22),
        lease_secs: Some(3600),
    }];
    let mut t = setup_with(cfg, vec![]);
    let mut got: Vec<Ipv4Addr> = (1..=3)
        .map(|i| t.lease(mac(i), PortId::Port(u32::from(i))))
        .collect();
    got.sort();
    assert_eq!(got, vec![ip(20), ip(21), ip(22)]);
    assert!(t
        .send(msg(MessageType::Discover, mac(4)), PortId::Port(4))
        .is_none());
    assert_eq!(t.engine.stats().offers, 3);
}

#[test]
fn neighbour_conflict_skipped() {
    let mut t = setup();
    let first = setup()
        .send(msg(MessageType::Discover, mac(1)), PORT_A)
        .unwrap()
        .msg
        .yiaddr();
    t.neigh.lock().unwrap().push((first, mac(0x99)));
    let o = t
        .send(msg(MessageType::Discover, mac(1)), PORT_A)
        .unwrap()
        .msg
        .yiaddr();
    assert_ne!(o, first);
    // The owner itself is not a conflict.
    t.neigh.lock().unwrap().push((ip(150), mac(2)));
    let d = with(
        msg(MessageType::Discover, mac(2)),
        DhcpOption::RequestedIpAddress(ip(150)),
    );
    assert_eq!(t.send(d, PORT_A).unwrap().msg.yiaddr(), ip(150));
}

#[test]
fn options_present() {
    let mut cfg = config();
    cfg.mtu = Some(9000);
    cfg.boot = Some(Boot {
        file: "pxelinux.0".into(),
        server: Some(Ipv4Addr::new(10, 20, 30, 40)),
        server_name: None,
    });
    let mut t = setup_with(cfg, vec![]);
    let d = with(
        msg(MessageType::Discover, mac(1)),
        DhcpOption::Hostname("My_Guest!.lan".into()),
    );
    let r = t.send(d, PORT_A).unwrap();
    assert_eq!(
        opt(&r, OptionCode::SubnetMask),
        Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
    );
    assert_eq!(
        opt(&r, OptionCode::Router),
        Some(&DhcpOption::Router(vec![SERVER]))
    );
    assert_eq!(
        opt(&r, OptionCode::DomainNameServer),
        Some(&DhcpOption::DomainNameServer(vec![SERVER]))
    );
    assert_eq!(
        opt(&r, OptionCode::DomainName),
        Some(&DhcpOption::DomainName("example.com".into()))
    );
    assert_eq!(
        opt(&r, OptionCode::BroadcastAddr),
        Some(&DhcpOption::BroadcastAddr(ip(255)))
    );
    assert_eq!(
        opt(&r, OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER))
    );
    assert_eq!(
        opt(&r, OptionCode::InterfaceMtu),
        Some(&DhcpOption::InterfaceMtu(9000))
    );
    assert_eq!(
        opt(&r, OptionCode::AddressLeaseTime),
        Some(&DhcpOption::AddressLeaseTime(3600))
    );
    assert_eq!(
        opt(&r, OptionCode::Renewal),
        Some(&DhcpOption::Renewal(1800))
    );
    assert_eq!(
        opt(&r, OptionCode::Rebinding),
        Some(&DhcpOption::Rebinding(3150))
    );
    assert_eq!(
        opt(&r, OptionCode::Hostname),
        Some(&DhcpOption::Hostname("MyGuest".into()))
    );
    assert_eq!(
        opt(&r, OptionCode::BootfileName),
        Some(&DhcpOption::BootfileName(b"pxelinux.0".to_vec()))
    );
    assert_eq!(
        opt(&r, OptionCode::TFTPServerName),
        Some(&DhcpOption::TFTPServerName(b"10.20.30.40".to_vec()))
    );
    assert_eq!(r.msg.siaddr(), Ipv4Addr::new(10, 20, 30, 40));
    assert_eq!(r.msg.fname_str(), Some(Ok("pxelinux.0")));
    // It encodes, and decodes back to the same thing.
    let bytes = r.encode().unwrap();
    let back = decode(&bytes).unwrap();
    assert_eq!(back.yiaddr(), r.msg.yiaddr());
    assert_eq!(back.siaddr(), r.msg.siaddr());
    assert_eq!(back.xid(), r.msg.xid());

    // Isolated network, DNS off: no router, no DNS; no MTU unless set.
    let mut cfg = config();
    cfg.router = None;
    cfg.dns = None;
    let mut t = setup_with(cfg, vec![]);
    let r = t.send(msg(MessageType::Discover, mac(1)), PORT_A).unwrap();
    assert!(opt(&r, OptionCode::Router).is_none());
    assert!(opt(&r, OptionCode::DomainNameServer).is_none());
    assert!(opt(&r, OptionCode::InterfaceMtu).is_none());
    assert!(opt(&r, OptionCode::BootfileName).is_none());
    assert_eq!(r.msg.siaddr(), Ipv4Addr::UNSPECIFIED);
}

#[test]
fn client_hostname_recorded_sanitised() {
    let mut t = setup();
    let d = with(
        msg(MessageType::Discover, mac(1)),
        DhcpOption::Hostname("web-01".into()),
    );
    let a = t.send(d, PORT_A).unwrap().msg.yiaddr();
    let req = with(
        with(
            with(
                msg(MessageType::Request, mac(1)),
                DhcpOption::ServerIdentifier(SERVER),
            ),
            DhcpOption::RequestedIpAddress(a),
        ),
        DhcpOption::Hostname("web-01; rm -rf /".into()),
    );
    t.send(req, PORT_A).unwrap();
    assert_eq!(
        t.engine.leases(NOW)[0].hostname.as_deref(),
        Some("web-01rm-rf")
    );
    assert_eq!(
        sanitize_hostname(&"a".repeat(100)).map(|s| s.len()),
        Some(63)
    );
    assert_eq!(sanitize_hostname("..."), None);
}

#[test]
fn random_mac_flood_from_one_port_is_capped() {
    let mut cfg = config();
    // Plenty of message budget: this test is about the lease cap.
    cfg.limits.requests_per_port_per_sec = 100_000;
    cfg.limits.burst = 100_000;
    let cap = cfg.limits.max_leases_per_port;
    let mut t = setup_with(cfg, vec![]);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let mut offers = 0;
    let mut acks = 0;
    for _ in 0..500 {
        let mut m: [u8; 6] = rng.gen();
        m[0] &= 0xfe;
        if let Some(o) = t.send(msg(MessageType::Discover, m), PORT_A) {
            offers += 1;
            let req = with(
                with(
                    msg(MessageType::Request, m),
                    DhcpOption::ServerIdentifier(SERVER),
                ),
                DhcpOption::RequestedIpAddress(o.msg.yiaddr()),
            );
            if t.send(req, PORT_A).and_then(|r| r.message_type()) == Some(MessageType::Ack) {
                acks += 1;
            }
        }
        // INIT-REBOOT for a free address without an offer is capped too.
        let mut m2: [u8; 6] = rng.gen();
        m2[0] &= 0xfe;
        let r = with(
            msg(MessageType::Request, m2),
            DhcpOption::RequestedIpAddress(ip(rng.gen_range(100..200))),
        );
        if t.send(r, PORT_A).and_then(|r| r.message_type()) == Some(MessageType::Ack) {
            acks += 1;
        }
    }
    assert!(offers <= cap, "{offers} offers");
    assert!(acks <= cap, "{acks} acks");
    assert_eq!(t.engine.leases(NOW).len(), acks);
    // Another port still gets an address, and so do static hosts on the flooded port.
    assert!(ip(2) <= t.lease(mac(1), PORT_B));
    assert_eq!(t.lease(mac(0xaa), PORT_A), ip(10));
    // Offers expire quickly, so a flood of DISCOVERs alone holds nothing for long.
    let mut t = setup_with(
        DhcpConfig {
            limits: Limits {
                requests_per_port_per_sec: 1000,
                burst: 1000,
                ..Limits::default()
            },
            ..config()
        },
        vec![],
    );
    for i in 0..100u8 {
        t.send(msg(MessageType::Discover, [2, 0, 0, 0, 1, i]), PORT_A);
    }
    assert!(t
        .send(msg(MessageType::Discover, mac(200)), PORT_A)
        .is_none());
    let later = NOW + OFFER_SECS + 1;
    assert!(t
        .send_at(later, msg(MessageType::Discover, mac(200)), PORT_A)
        .is_some());
}

#[test]
fn rate_limit_per_port() {
    let mut t = setup();
    let lim = Limits::default();
    let mut answered = 0;
    for i in 0..100u8 {
        if t.send(msg(MessageType::Inform, mac(i)), PortId::Unknown)
            .is_some()
        {
            answered += 1;
        }
    }
    assert_eq!(answered, lim.burst as usize);
    assert_eq!(t.engine.stats().rate_limited, 100 - u64::from(lim.burst));
    // Another port is not affected.
    assert!(t.send(msg(MessageType::Inform, mac(1)), PORT_B).is_some());
    // The bucket refills.
    assert!(t
        .send_at(NOW + 1, msg(MessageType::Inform, mac(1)), PortId::Unknown)
        .is_some());
}

#[test]
fn ignored_messages() {
    let mut t = setup();
    let mut m = msg(MessageType::Discover, mac(1));
    m.set_opcode(Opcode::BootReply);
    assert!(t.send(m, PORT_A).is_none());
    let mut m = msg(MessageType::Discover, mac(1));
    m.set_htype(HType::from(6u8));
    assert!(t.send(m, PORT_A).is_none());
    let mut m = msg(MessageType::Discover, mac(1));
    m.set_chaddr(&[1, 2, 3, 4, 5, 6, 7, 8]);
    assert!(t.send(m, PORT_A).is_none());
    for k in [MessageType::Offer, MessageType::Ack, MessageType::Nak] {
        assert!(t.send(msg(k, mac(1)), PORT_A).is_none());
    }
    assert_eq!(t.engine.stats().offers, 0);
}

fn encode(m: &Message) -> Vec<u8> {
    let mut buf = Vec::new();
    m.encode(&mut Encoder::new(&mut buf)).unwrap();
    buf
}

#[test]
fn malformed_packets_counted_not_panicking() {
    let mut t = setup();
    let good = encode(&msg(MessageType::Discover, mac(1)));
    // Truncations of a good packet.
    let mut malformed = 0;
    for len in 0..good.len() {
        if t.engine
            .handle_datagram(NOW, &good[..len], |_| PORT_A)
            .is_none()
        {
            malformed += 1;
        }
    }
    assert!(t.engine.stats().malformed >= 240, "{:?}", t.engine.stats());
    assert!(malformed >= 240);
    // hlen > 16 (dhcproto would slice past chaddr), bad magic, an option running past the end.
    let mut bad = good.clone();
    bad[2] = 200;
    assert!(t.engine.handle_datagram(NOW, &bad, |_| PORT_A).is_none());
    let mut bad = good.clone();
    bad[236] = 0;
    assert!(t.engine.handle_datagram(NOW, &bad, |_| PORT_A).is_none());
    let mut bad = good[..240].to_vec();
    bad.extend_from_slice(&[53, 1, 1, 61, 200, 1, 2]);
    assert!(t.engine.handle_datagram(NOW, &bad, |_| PORT_A).is_none());
    // No message type.
    let mut bad = good[..240].to_vec();
    bad.push(255);
    let before = t.engine.stats().malformed;
    assert!(t.engine.handle_datagram(NOW, &bad, |_| PORT_A).is_none());
    assert_eq!(t.engine.stats().malformed, before + 1);
    // The good one still works.
    assert!(t.engine.handle_datagram(NOW, &good, |_| PORT_A).is_some());
}

#[test]
fn random_bytes_never_panic() {
    let mut t = setup_with(
        DhcpConfig {
            limits: Limits {
                requests_per_port_per_sec: u32::MAX,
                burst: u32::MAX,
                ..Limits::default()
            },
            ..config()
        },
        vec![],
    );
    let mut rng = rand::rngs::SmallRng::seed_from_u64(0xd4c9);
    let good = encode(&with(
        with(
            msg(MessageType::Request, mac(1)),
            DhcpOption::RequestedIpAddress(ip(40)),
        ),
        DhcpOption::ParameterRequestList(vec![OptionCode::SubnetMask, OptionCode::Router]),
    ));
    for i in 0..5000 {
        let bytes: Vec<u8> = if i % 2 == 0 {
            let len = rng.gen_range(0..700);
            (0..len).map(|_| rng.gen()).collect()
        } else {
            // Mutations of a valid packet reach deeper.
            let mut b = good.clone();
            for _ in 0..rng.gen_range(1..8) {
                let at = rng.gen_range(0..b.len());
                b[at] = rng.gen();
            }
            b.truncate(rng.gen_range(200..b.len() + 1));
            if rng.gen_bool(0.3) {
                b.extend((0..rng.gen_range(0..64)).map(|_| rng.gen::<u8>()));
            }
            b
        };
        if let Some(r) = t
            .engine
            .handle_datagram(NOW + i / 100, &bytes, |_| PortId::Port(1))
        {
            let _ = r.encode();
        }
    }
    let s = t.engine.stats();
    assert_eq!(s.received, 5000);
    assert!(s.malformed > 2000, "{s:?}");
}

/// Issue 4's second throughput pass: many rounds of DISCOVER, a re-sent DISCOVER, REQUEST and
/// RELEASE through the same ports (client identifiers, as dhcpload and most clients send).
/// Released leases and the offers that became leases must not stay counted against the port.
#[test]
fn port_cap_does_not_leak_over_rounds() {
    let mut cfg = config();
    cfg.limits.requests_per_port_per_sec = 100_000;
    cfg.limits.burst = 100_000;
    let cap = cfg.limits.max_leases_per_port;
    let mut t = setup_with(cfg, vec![]);
    let ports: Vec<PortId> = (100..104).map(PortId::Port).collect();
    let mut n = 0u8;
    for round in 0..40u64 {
        let now = NOW + round * 3;
        let mut leased = vec![];
        for &port in &ports {
            for _ in 0..cap {
                n = n.wrapping_add(1);
                let m = [0x52, 0x54, 1, 2, (round as u8), n];
                let cid = DhcpOption::ClientIdentifier([&[1u8][..], &m[..]].concat());
                let d = with(msg(MessageType::Discover, m), cid.clone());
                let o = t.send_at(now, d.clone(), port);
                assert!(o.is_some(), "round {round}: no OFFER on {port:?}");
                // The client did not hear the OFFER in time and sends DISCOVER again.
                let o = t.send_at(now, d, port).expect("second OFFER");
                let a = o.msg.yiaddr();
                let req = with(
                    with(
                        with(msg(MessageType::Request, m), cid.clone()),
                        DhcpOption::ServerIdentifier(SERVER),
                    ),
                    DhcpOption::RequestedIpAddress(a),
                );
                let ack = t.send_at(now, req, port).expect("ACK");
                assert_eq!(ack.message_type(), Some(MessageType::Ack));
                leased.push((m, cid, a, port));
            }
        }
        for (m, cid, a, port) in leased {
            let rel = with(
                with(ciaddr(msg(MessageType::Release, m), a), cid),
                DhcpOption::ServerIdentifier(SERVER),
            );
            assert!(t.send_at(now + 1, rel, port).is_none());
        }
        assert!(t.engine.leases(now + 1).is_empty(), "round {round}");
    }
}

fn request_for(m: [u8; 6], a: Ipv4Addr) -> Message {
    with(
        with(
            msg(MessageType::Request, m),
            DhcpOption::ServerIdentifier(SERVER),
        ),
        DhcpOption::RequestedIpAddress(a),
    )
}

/// Group commit: the requests of a burst, handled as one batch, are stored with ONE
/// `record_batch` holding all their lease changes, and every one is acknowledged.
#[test]
fn burst_is_one_store_commit() {
    const N: u8 = 16;
    let mut t = setup();
    let port = |i: u8| PortId::Port(100 + u32::from(i));
    let discovers: Vec<Request> = (1..=N)
        .map(|i| Request {
            msg: msg(MessageType::Discover, mac(i)),
            port: port(i),
        })
        .collect();
    let offers = t.engine.handle_batch(NOW, &discovers);
    assert!(offers.iter().all(|o| o.is_some()));
    // Offers change no lease: nothing to store.
    assert!(t.sink.take_batches().is_empty());
    let requests: Vec<Request> = (1..=N)
        .zip(&offers)
        .map(|(i, o)| Request {
            msg: request_for(mac(i), o.as_ref().unwrap().msg.yiaddr()),
            port: port(i),
        })
        .collect();
    let acks = t.engine.handle_batch(NOW, &requests);
    assert_eq!(t.sink.take_batches(), vec![usize::from(N)]);
    let granted = t.sink.take();
    assert!(granted.iter().all(|c| matches!(c, LeaseChange::Granted(_))));
    for ((a, o), g) in acks.iter().zip(&offers).zip(&granted) {
        let a = a.as_ref().expect("ACK");
        assert_eq!(a.message_type(), Some(MessageType::Ack));
        assert_eq!(a.msg.yiaddr(), o.as_ref().unwrap().msg.yiaddr());
        assert_eq!(g.lease().ip, a.msg.yiaddr());
    }
    assert_eq!(t.engine.leases(NOW).len(), usize::from(N));
    assert_eq!(t.engine.stats().acks, u64::from(N));
    // Releases and new leases mixed: still one commit, in order.
    let mut mixed: Vec<Request> = granted
        .iter()
        .take(4)
        .map(|g| {
            let l = g.lease();
            Request {
                msg: with(
                    ciaddr(msg(MessageType::Release, l.mac), l.ip),
                    DhcpOption::ServerIdentifier(SERVER),
                ),
                port: port(l.mac[5]),
            }
        })
        .collect();
    mixed.push(Request {
        msg: with(msg(MessageType::Discover, mac(50)), DhcpOption::RapidCommit),
        port: port(50),
    });
    let r = t.engine.handle_batch(NOW, &mixed);
    assert!(r[..4].iter().all(|r| r.is_none()));
    assert_eq!(
        r[4].as_ref().unwrap().message_type(),
        Some(MessageType::Ack)
    );
    assert_eq!(t.sink.take_batches(), vec![5]);
    let c = t.sink.take();
    assert!(c[..4].iter().all(|c| matches!(c, LeaseChange::Released(_))));
    assert!(matches!(c[4], LeaseChange::Granted(_)));
    // A single request alone is a batch of one.
    let o = t
        .send(msg(MessageType::Discover, mac(60)), port(60))
        .unwrap();
    t.send(request_for(mac(60), o.msg.yiaddr()), port(60))
        .unwrap();
    assert_eq!(t.sink.take_batches(), vec![1]);
}

/// A batch that cannot be stored: none of its ACKs is sent, the engine holds none of its
/// leases (per-port counts included), and the clients' retries succeed once the store works.
#[test]
fn failed_batch_sends_no_ack_and_leaves_no_lease() {
    let mut cfg = config();
    cfg.limits.max_leases_per_port = 4;
    let mut t = setup_with(cfg, vec![]);
    // One earlier lease on PORT_B, released in the failing batch.
    let old = t.lease(mac(40), PORT_B);
    t.sink.take();
    t.sink.take_batches();
    let offers: Vec<Ipv4Addr> = (1..=4)
        .map(|i| {
            t.send(msg(MessageType::Discover, mac(i)), PORT_A)
                .unwrap()
                .msg
                .yiaddr()
        })
        .collect();
    let before = t.engine.stats();
    *t.sink.fail.lock().unwrap() = true;
    let mut batch: Vec<Request> = (1..=4)
        .zip(&offers)
        .map(|(i, &a)| Request {
            msg: request_for(mac(i), a),
            port: PORT_A,
        })
        .collect();
    batch.push(Request {
        msg: with(
            ciaddr(msg(MessageType::Release, mac(40)), old),
            DhcpOption::ServerIdentifier(SERVER),
        ),
        port: PORT_B,
    });
    batch.push(Request {
        msg: ciaddr(msg(MessageType::Inform, mac(41)), ip(99)),
        port: PORT_B,
    });
    batch.push(Request {
        msg: msg(MessageType::Discover, mac(42)),
        port: PORT_B,
    });
    let r = t.engine.handle_batch(NOW, &batch);
    assert!(r[..5].iter().all(|r| r.is_none()), "no ACK: {r:?}");
    // What needs no store still goes out.
    assert_eq!(
        r[5].as_ref().unwrap().message_type(),
        Some(MessageType::Ack)
    );
    assert_eq!(
        r[6].as_ref().unwrap().message_type(),
        Some(MessageType::Offer)
    );
    assert!(t.sink.take_batches().is_empty());
    // No lease from the batch; the release took effect (in memory; the client let it go).
    assert!(t.engine.leases(NOW).is_empty());
    let after = t.engine.stats();
    assert_eq!(after.acks, before.acks + 1, "only the INFORM's");
    assert_eq!(after.received, before.received + 7);
    // The offers still stand and still count against the port (4 = the cap): a fifth client
    // is refused, and the retries of the four are acknowledged with their offered addresses.
    *t.sink.fail.lock().unwrap() = false;
    assert!(t.send(msg(MessageType::Discover, mac(5)), PORT_A).is_none());
    for (i, &a) in (1..=4).zip(&offers) {
        let ack = t
            .send(request_for(mac(i), a), PORT_A)
            .expect("ACK on retry");
        assert_eq!(ack.message_type(), Some(MessageType::Ack));
        assert_eq!(ack.msg.yiaddr(), a);
    }
    assert_eq!(t.sink.take_batches(), vec![1, 1, 1, 1]);
    assert!(t
        .sink
        .take()
        .iter()
        .all(|c| matches!(c, LeaseChange::Granted(_))));
    assert_eq!(t.engine.leases(NOW).len(), 4);
    assert!(t.send(msg(MessageType::Discover, mac(5)), PORT_A).is_none());
}

/// A neighbour table shared by several engines standing for hosts of one overlay network:
/// what one host announces, the others see (as EVPN's MAC/IP routes make it).
struct Evpn(Table);

impl Probe for Evpn {
    fn conflict(&mut self, ip: Ipv4Addr, mac: &[u8; 6]) -> bool {
        FakeNeigh(self.0.clone()).conflict(ip, mac)
    }
    fn address_of(&mut self, mac: &[u8; 6]) -> Option<Ipv4Addr> {
        let table = self.0.lock().unwrap();
        table.iter().find(|(_, m)| m == mac).map(|(i, _)| *i)
    }
    fn announce(&mut self, ip: Ipv4Addr, mac: &[u8; 6]) {
        let mut table = self.0.lock().unwrap();
        table.retain(|(i, _)| *i != ip);
        table.push((ip, *mac));
    }
}

/// Three hosts of one overlay network (VTEPs 10.201.0.1-3), each with its own engine and
/// lease table, all announcing to one shared neighbour table when `announce` is set.
fn overlay_hosts(table: &Table, announce: bool) -> Vec<T> {
    let vtep = |n| std::net::IpAddr::V4(Ipv4Addr::new(10, 201, 0, n));
    (1..=3)
        .map(|n| {
            let sink = Arc::new(Sink::default());
            let probe: Box<dyn Probe> = if announce {
                Box::new(Evpn(table.clone()))
            } else {
                Box::new(FakeNeigh(Arc::new(Mutex::new(Vec::new()))))
            };
            let mut engine = Engine::new(config(), vec![], sink.clone(), probe);
            let shared = SharedOwnership::new();
            shared.set(Ownership::new(vtep(n), (1..=3).map(vtep)));
            engine.set_ownership(shared);
            T {
                engine,
                sink,
                neigh: table.clone(),
            }
        })
        .collect()
}

#[test]
fn overlay_hosts_pick_only_from_their_own_blocks() {
    let table: Table = Arc::new(Mutex::new(Vec::new()));
    let mut hosts = overlay_hosts(&table, false);
    let mut seen = std::collections::BTreeMap::new();
    // 40 guests per host, each on its own port: no address twice, though no host sees another.
    for (h, host) in hosts.iter_mut().enumerate() {
        for g in 0..40u8 {
            let m = [0x52, 0x54, 0, 0, h as u8, g];
            let a = host.lease(m, PortId::Port(u32::from(g)));
            assert!(seen.insert(a, (h, g)).is_none(), "{a} given twice");
            let block = Ownership::block_of(a);
            let owner = Ownership::new(
                std::net::IpAddr::V4(Ipv4Addr::new(10, 201, 0, 1)),
                (1..=3).map(|n| std::net::IpAddr::V4(Ipv4Addr::new(10, 201, 0, n))),
            )
            .owner_of_block(block);
            assert_eq!(
                owner,
                std::net::IpAddr::V4(Ipv4Addr::new(10, 201, 0, h as u8 + 1)),
                "{a} is not in a block of host {h}"
            );
        }
    }
    // A static host is served on whichever host it attaches.
    for host in hosts.iter_mut() {
        assert_eq!(host.lease(mac(0xaa), PORT_B), ip(10));
    }
}

#[test]
fn a_moved_guest_keeps_the_address_another_host_gave() {
    let table: Table = Arc::new(Mutex::new(Vec::new()));
    let mut hosts = overlay_hosts(&table, true);
    let guest = mac(0x42);
    let a = hosts[0].lease(guest, PORT_A);
    // Host 0 announced it: the shared table (EVPN) has the guest's MAC/IP.
    assert!(table.lock().unwrap().contains(&(a, guest)));
    // On host 1 a DISCOVER (no requested address) gets the same address, outside host 1's
    // blocks.
    let offer = hosts[1]
        .send(msg(MessageType::Discover, guest), PORT_A)
        .expect("offer");
    assert_eq!(offer.msg.yiaddr(), a);
    // An INIT-REBOOT REQUEST for it on host 2 is ACKed.
    let reboot = with(
        msg(MessageType::Request, guest),
        DhcpOption::RequestedIpAddress(a),
    );
    let ack = hosts[2].send(reboot, PORT_A).expect("ack");
    assert_eq!(ack.message_type(), Some(MessageType::Ack));
    assert_eq!(ack.msg.yiaddr(), a);
    // Another MAC asking for it anywhere is refused: the table gives it to the guest.
    let thief = with(
        msg(MessageType::Request, mac(0x43)),
        DhcpOption::RequestedIpAddress(a),
    );
    let nak = hosts[1].send(thief, PORT_B).expect("nak");
    assert_eq!(nak.message_type(), Some(MessageType::Nak));
}

/// A host whose overlay members are not settled yet (it just joined: BGP has not brought it
/// the others' VTEPs) hands out no new address, but still serves a static host; once settled
/// it picks from its own blocks.
#[test]
fn an_unsettled_overlay_host_hands_out_no_new_address() {
    let vtep = |n| std::net::IpAddr::V4(Ipv4Addr::new(10, 201, 0, n));
    let sink = Arc::new(Sink::default());
    let probe: Box<dyn Probe> = Box::new(FakeNeigh(Arc::new(Mutex::new(Vec::new()))));
    let mut engine = Engine::new(config(), vec![], sink.clone(), probe);
    let shared = SharedOwnership::new();
    // Alone as far as it knows, and not settled: not even "everything is mine".
    shared.set(Ownership::new(vtep(2), []).unsettled());
    engine.set_ownership(shared.clone());
    let mut host = T {
        engine,
        sink,
        neigh: Arc::new(Mutex::new(Vec::new())),
    };
    let guest = [0x52, 0x54, 0, 0, 9, 1];
    assert!(
        host.send(msg(MessageType::Discover, guest), PORT_A)
            .is_none(),
        "an unsettled host offered an address"
    );
    assert_eq!(host.lease(mac(0xaa), PORT_B), ip(10), "the static host");
    // Settled, with the others known: an address from its own blocks.
    let all = Ownership::new(vtep(2), (1..=3).map(vtep));
    shared.set(all.clone());
    let a = host.lease(guest, PORT_A);
    assert_eq!(all.owner_of_block(Ownership::block_of(a)), vtep(2), "{a}");
}

//! The protocol core against the messages real clients send, the conformance corpus's
//! networks, and random bytes.

use std::net::Ipv6Addr;
use std::sync::{Arc, Mutex};

use rand::{Rng, SeedableRng};
use virtnet_dhcp6::wire::{self, code, IaAddr, IaNa, Status};
use virtnet_dhcp6::{Dhcp6Config, Engine, Lease6Change, Lease6Sink, NullSink6};
use virtnet_model::Network;

const SERVER: [u8; 10] = [0, 3, 0, 1, 2, 0, 0, 0, 0, 1];
const LL: &str = "fe80::1234";

/// Remembers what was recorded; can be told to fail.
#[derive(Default)]
struct Book {
    changes: Mutex<Vec<Lease6Change>>,
    fail: Mutex<bool>,
    /// How many times `record` was called (store commits).
    calls: Mutex<usize>,
    /// How many of those calls came through `record_extensions` (no wait for the store).
    extension_calls: Mutex<usize>,
}

impl Lease6Sink for Book {
    fn record(&self, _network: &str, changes: &[Lease6Change]) -> std::io::Result<()> {
        *self.calls.lock().expect("lock") += 1;
        if *self.fail.lock().expect("lock") {
            return Err(std::io::Error::other("disk full"));
        }
        self.changes
            .lock()
            .expect("lock")
            .extend_from_slice(changes);
        Ok(())
    }

    fn record_extensions(&self, network: &str, changes: &[Lease6Change]) -> std::io::Result<()> {
        *self.extension_calls.lock().expect("lock") += 1;
        self.record(network, changes)
    }
}

fn corpus(name: &str) -> Network {
    let dir = std::env::var("VIRTNET_SHARED_DIR").unwrap_or_else(|_| "/work/shared".into());
    let path = format!("{dir}/conformance/libvirt-9.0/dnsmasq-conf/{name}.xml");
    let xml = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Network::from_xml(&xml).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn engine(net: &Network, sink: Arc<dyn Lease6Sink>) -> Engine {
    let config = Dhcp6Config::from_network(net).expect("a DHCPv6 network");
    Engine::new(config, SERVER.to_vec(), Vec::new(), sink)
}

fn opt(code: u16, v: &[u8]) -> Vec<u8> {
    let mut o = code.to_be_bytes().to_vec();
    o.extend_from_slice(&(v.len() as u16).to_be_bytes());
    o.extend_from_slice(v);
    o
}

/// A client message of `kind` from `duid` with one IA_NA (iaid 1) holding `addrs`.
fn msg(kind: u8, duid: &[u8], server: Option<&[u8]>, addrs: &[Ipv6Addr], extra: &[u8]) -> Vec<u8> {
    let mut ia = 1u32.to_be_bytes().to_vec();
    ia.extend_from_slice(&[0; 8]);
    for a in addrs {
        let mut v = a.octets().to_vec();
        v.extend_from_slice(&[0; 8]);
        ia.extend(opt(5, &v));
    }
    let mut p = vec![kind, 0xab, 0xcd, 0xef];
    p.extend(opt(1, duid));
    if let Some(s) = server {
        p.extend(opt(2, s));
    }
    p.extend(opt(3, &ia));
    p.extend_from_slice(extra);
    p
}

fn fqdn(name: &str) -> Vec<u8> {
    let mut v = vec![0, name.len() as u8];
    v.extend_from_slice(name.as_bytes());
    v.push(0);
    opt(39, &v)
}

fn ll() -> Ipv6Addr {
    LL.parse().expect("addr")
}

fn ip(s: &str) -> Ipv6Addr {
    s.parse().expect("addr")
}

/// A reply's type, IA_NAs, top-level status and options.
type Answer = (u8, Vec<IaNa>, Option<u16>, Vec<(u16, Vec<u8>)>);

/// The reply to `p`, decoded.
fn answer(e: &mut Engine, now: u64, p: &[u8]) -> Answer {
    let r = e.handle(now, p, ll()).expect("a reply");
    let (kind, opts, ias) = wire::decode_reply(r.bytes()).expect("reply decodes");
    let status = opts
        .iter()
        .find(|(c, _)| *c == code::STATUS_CODE)
        .map(|(_, v)| u16::from_be_bytes([v[0], v[1]]));
    (kind, ias, status, opts)
}

fn addr_of(ias: &[IaNa]) -> Ipv6Addr {
    ias[0].addrs[0].addr
}

#[test]
fn solicit_request_renew_release_in_the_range_of_dhcp6_network() {
    let book = Arc::new(Book::default());
    let mut e = engine(&corpus("dhcp6-network"), book.clone());
    let duid = [0, 1, 0, 1, 1, 2, 3, 4, 0x52, 0x54, 0, 1, 2, 3];
    let (kind, ias, _, opts) = answer(&mut e, 100, &msg(wire::SOLICIT, &duid, None, &[], &[]));
    assert_eq!(kind, wire::ADVERTISE);
    let offered = addr_of(&ias);
    let range = e.config().ranges[0].clone();
    assert!(range.contains(offered), "{offered} in the range");
    // DNS server = the gateway, search list = the domain ("mynet").
    let dns = opts
        .iter()
        .find(|(c, _)| *c == code::DNS_SERVERS)
        .expect("DNS");
    assert_eq!(dns.1, ip("2001:db8:ac10:fd01::1").octets());
    let dom = opts
        .iter()
        .find(|(c, _)| *c == code::DOMAIN_LIST)
        .expect("domain");
    assert_eq!(dom.1, b"\x05mynet\x00");
    assert!(
        book.changes.lock().expect("lock").is_empty(),
        "ADVERTISE binds nothing"
    );

    let (kind, ias, _, _) = answer(
        &mut e,
        101,
        &msg(wire::REQUEST, &duid, Some(&SERVER), &[offered], &[]),
    );
    assert_eq!(kind, wire::REPLY);
    assert_eq!(addr_of(&ias), offered);
    assert_eq!(ias[0].addrs[0].valid, 3600, "one hour, dnsmasq's default");
    assert_eq!((ias[0].t1, ias[0].t2), (1800, 2880));
    assert_eq!(e.leases(101).len(), 1);
    assert_eq!(
        e.leases(101)[0].mac,
        Some([0x52, 0x54, 0, 1, 2, 3]),
        "from the DUID-LLT"
    );

    // RENEW extends; REBIND (no server id) too; the same address each time.
    let (_, ias, _, _) = answer(
        &mut e,
        2000,
        &msg(wire::RENEW, &duid, Some(&SERVER), &[offered], &[]),
    );
    assert_eq!(addr_of(&ias), offered);
    assert_eq!(e.leases(2000)[0].expires, Some(2000 + 3600));
    let (_, ias, _, _) = answer(
        &mut e,
        3000,
        &msg(wire::REBIND, &duid, None, &[offered], &[]),
    );
    assert_eq!(addr_of(&ias), offered);
    {
        let changes = book.changes.lock().expect("lock");
        assert!(matches!(changes[0], Lease6Change::Granted(_)));
        assert!(matches!(changes[1], Lease6Change::Renewed(_)));
        assert!(matches!(changes[2], Lease6Change::Renewed(_)));
    }

    // A RENEW naming another server is not ours to answer.
    assert!(e
        .handle(
            3001,
            &msg(wire::RENEW, &duid, Some(&[9, 9]), &[offered], &[]),
            ll()
        )
        .is_none());

    let (_, _, status, _) = answer(
        &mut e,
        3002,
        &msg(wire::RELEASE, &duid, Some(&SERVER), &[offered], &[]),
    );
    assert_eq!(status, Some(Status::Success as u16));
    assert!(e.leases(3002).is_empty());
    assert!(matches!(
        book.changes.lock().expect("lock").last(),
        Some(Lease6Change::Released(_))
    ));
}

#[test]
fn rapid_commit_binds_at_once() {
    let book = Arc::new(Book::default());
    let mut e = engine(&corpus("dhcp6-network"), book.clone());
    let rc = opt(14, &[]);
    let (kind, ias, _, opts) = answer(&mut e, 10, &msg(wire::SOLICIT, &[0, 4, 1], None, &[], &rc));
    assert_eq!(kind, wire::REPLY);
    assert!(opts.iter().any(|(c, _)| *c == code::RAPID_COMMIT));
    assert_eq!(e.leases(10)[0].ip, addr_of(&ias));
    assert_eq!(book.changes.lock().expect("lock").len(), 1);
}

#[test]
fn static_hosts_by_duid_and_by_name_get_their_addresses() {
    let mut e = engine(&corpus("dhcp6-network"), Arc::new(NullSink6));
    // <host id='0:3:0:1:0:16:3e:11:22:33' name='peter.xyz' ip='…::1:22'/>
    let peter = [0, 3, 0, 1, 0, 0x16, 0x3e, 0x11, 0x22, 0x33];
    let (_, ias, _, _) = answer(
        &mut e,
        1,
        &msg(wire::REQUEST, &peter, Some(&SERVER), &[], &[]),
    );
    assert_eq!(addr_of(&ias), ip("2001:db8:ac10:fd01::1:22"));
    assert_eq!(e.leases(1)[0].hostname.as_deref(), Some("peter.xyz"));
    // <host name='paul' ip='…::1:21'/>: a client calling itself paul.
    let (_, ias, _, _) = answer(
        &mut e,
        1,
        &msg(wire::SOLICIT, &[0, 4, 7], None, &[], &fqdn("paul")),
    );
    assert_eq!(addr_of(&ias), ip("2001:db8:ac10:fd01::1:21"));
    // Nobody else gets a static address, even asking for it.
    let (_, ias, _, _) = answer(
        &mut e,
        1,
        &msg(
            wire::REQUEST,
            &[0, 4, 8],
            Some(&SERVER),
            &[ip("2001:db8:ac10:fd01::1:23")],
            &[],
        ),
    );
    assert_ne!(ias[0].addrs[0].addr, ip("2001:db8:ac10:fd01::1:23"));
    assert_eq!(ias[0].addrs[0].valid, 3600);
    // The address asked for goes back with lifetime 0.
    assert!(ias[0].addrs[1..].iter().all(|a| a.valid == 0));
}

#[test]
fn a_static_only_routed_network_serves_its_hosts_and_nobody_else() {
    // dhcp6host-routed-network: hosts, no range (dnsmasq's "dhcp-range=…,static").
    let mut e = engine(&corpus("dhcp6host-routed-network"), Arc::new(NullSink6));
    let known = [0, 3, 0, 1, 0, 0x16, 0x3e, 0x44, 0x55, 0x33];
    let (_, ias, _, _) = answer(&mut e, 1, &msg(wire::SOLICIT, &known, None, &[], &[]));
    assert_eq!(addr_of(&ias), ip("2001:db8:ac10:fd01::1:23"));
    let (kind, ias, status, _) = answer(
        &mut e,
        1,
        &msg(wire::SOLICIT, &[0, 4, 1, 2], None, &[], &[]),
    );
    assert_eq!(kind, wire::ADVERTISE);
    assert!(ias.is_empty());
    assert_eq!(status, Some(Status::NoAddrsAvail as u16));
    let (_, ias, _, _) = answer(
        &mut e,
        1,
        &msg(wire::REQUEST, &[0, 4, 1, 2], Some(&SERVER), &[], &[]),
    );
    assert_eq!(
        ias[0].status.as_ref().map(|s| s.0),
        Some(Status::NoAddrsAvail)
    );
}

#[test]
fn dhcp6_nat_network_serves_ipv6_next_to_ipv4() {
    let net = corpus("dhcp6-nat-network");
    let c = Dhcp6Config::from_network(&net).expect("DHCPv6");
    assert_eq!(c.gateway, ip("2001:db8:ac10:fd01::1"));
    assert_eq!(c.ranges.len(), 1);
    assert_eq!(
        c.ranges[0].len(),
        240,
        "dnsmasq's dhcp-lease-max share of it"
    );
    assert_eq!(c.hosts.len(), 5);
    assert!(c.domains.is_empty());
}

#[test]
fn a_store_failure_withholds_the_reply_and_binds_nothing() {
    let book = Arc::new(Book::default());
    let mut e = engine(&corpus("dhcp6-network"), book.clone());
    *book.fail.lock().expect("lock") = true;
    assert!(e
        .handle(
            1,
            &msg(wire::REQUEST, &[0, 4, 1], Some(&SERVER), &[], &[]),
            ll()
        )
        .is_none());
    assert!(e.leases(1).is_empty());
    *book.fail.lock().expect("lock") = false;
    assert!(e
        .handle(
            2,
            &msg(wire::REQUEST, &[0, 4, 1], Some(&SERVER), &[], &[]),
            ll()
        )
        .is_some());
    assert_eq!(e.leases(2).len(), 1);
}

#[test]
fn decline_quarantines_and_confirm_checks_the_link() {
    let mut e = engine(&corpus("dhcp6-network"), Arc::new(NullSink6));
    let (_, ias, _, _) = answer(
        &mut e,
        1,
        &msg(wire::REQUEST, &[0, 4, 1], Some(&SERVER), &[], &[]),
    );
    let a = addr_of(&ias);
    // Another client cannot decline it.
    answer(
        &mut e,
        2,
        &msg(wire::DECLINE, &[0, 4, 2], Some(&SERVER), &[a], &[]),
    );
    assert_eq!(e.leases(2).len(), 1);
    answer(
        &mut e,
        2,
        &msg(wire::DECLINE, &[0, 4, 1], Some(&SERVER), &[a], &[]),
    );
    assert!(e.leases(2).is_empty());
    let (_, ias, _, _) = answer(
        &mut e,
        3,
        &msg(wire::REQUEST, &[0, 4, 1], Some(&SERVER), &[a], &[]),
    );
    assert_ne!(addr_of(&ias), a, "a declined address stays out of the pool");

    let (_, _, status, _) = answer(
        &mut e,
        4,
        &msg(
            wire::CONFIRM,
            &[0, 4, 3],
            None,
            &[ip("2001:db8:ac10:fd01::99")],
            &[],
        ),
    );
    assert_eq!(status, Some(Status::Success as u16));
    let (_, _, status, _) = answer(
        &mut e,
        4,
        &msg(
            wire::CONFIRM,
            &[0, 4, 3],
            None,
            &[ip("2001:db8:1::99")],
            &[],
        ),
    );
    assert_eq!(status, Some(Status::NotOnLink as u16));
}

#[test]
fn information_request_gets_dns_and_the_search_list() {
    let mut e = engine(&corpus("dhcp6-network"), Arc::new(NullSink6));
    let mut p = vec![wire::INFORMATION_REQUEST, 1, 2, 3];
    p.extend(opt(1, &[0, 4, 9]));
    p.extend(opt(6, &[0, 23, 0, 24]));
    let (kind, ias, _, opts) = answer(&mut e, 1, &p);
    assert_eq!(kind, wire::REPLY);
    assert!(ias.is_empty());
    assert!(opts
        .iter()
        .any(|(c, v)| *c == code::DNS_SERVERS && v.len() == 16));
    assert!(opts.iter().any(|(c, _)| *c == code::DOMAIN_LIST));
    assert!(e.leases(1).is_empty());
}

#[test]
fn leases_survive_a_restart_of_the_engine() {
    let book = Arc::new(Book::default());
    let net = corpus("dhcp6-network");
    let mut e = engine(&net, book.clone());
    let (_, ias, _, _) = answer(
        &mut e,
        1,
        &msg(wire::REQUEST, &[0, 4, 5], Some(&SERVER), &[], &[]),
    );
    let held = addr_of(&ias);
    let stored: Vec<_> = book
        .changes
        .lock()
        .expect("lock")
        .iter()
        .map(|c| c.lease().clone())
        .collect();
    let mut again = Engine::new(
        Dhcp6Config::from_network(&net).expect("c"),
        SERVER.to_vec(),
        stored,
        book,
    );
    // A fresh SOLICIT (the client lost its own state too) gets the same address.
    let (_, ias, _, _) = answer(
        &mut again,
        2,
        &msg(wire::SOLICIT, &[0, 4, 5], None, &[], &[]),
    );
    assert_eq!(addr_of(&ias), held);
    // Nobody else can take it meanwhile.
    let (_, ias, _, _) = answer(
        &mut again,
        2,
        &msg(wire::REQUEST, &[0, 4, 6], Some(&SERVER), &[held], &[]),
    );
    assert_ne!(addr_of(&ias), held);
}

#[test]
fn expired_leases_are_swept_and_recorded() {
    let book = Arc::new(Book::default());
    let mut e = engine(&corpus("dhcp6-network"), book.clone());
    answer(
        &mut e,
        1,
        &msg(wire::REQUEST, &[0, 4, 5], Some(&SERVER), &[], &[]),
    );
    assert_eq!(e.sweep(100), 0);
    assert!(e.sweep_records(1 + 3600));
    assert_eq!(e.sweep(1 + 3600), 1);
    assert!(matches!(
        book.changes.lock().expect("lock").last(),
        Some(Lease6Change::Expired(_))
    ));
}

#[test]
fn a_flood_on_one_bridge_is_cut_by_its_bucket() {
    let mut e = engine(&corpus("dhcp6-network"), Arc::new(NullSink6));
    let limits = virtnet_dhcp6::config::Limits6::default();
    let (burst, rate) = (limits.burst as usize, limits.per_sec as usize);
    let p = msg(wire::SOLICIT, &[0, 4, 5], None, &[], &[]);
    let answered = (0..burst + 1000)
        .filter(|_| e.handle(50, &p, ll()).is_some())
        .count();
    assert_eq!(answered, burst, "the burst");
    assert_eq!(e.stats().rate_limited, 1000);
    let answered = (0..burst)
        .filter(|_| e.handle(51, &p, ll()).is_some())
        .count();
    assert_eq!(answered, rate, "one second's refill");
}

/// Random and mutated datagrams never panic the engine, and garbage is counted, not answered
/// with a lease.
#[test]
fn random_and_mutated_datagrams_never_panic() {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(15);
    let mut e = engine(&corpus("dhcp6-network"), Arc::new(NullSink6));
    let seeds = [
        msg(wire::SOLICIT, &[0, 4, 5], None, &[], &opt(14, &[])),
        msg(
            wire::REQUEST,
            &[0, 4, 5],
            Some(&SERVER),
            &[ip("2001:db8:ac10:fd01::1:40")],
            &fqdn("x"),
        ),
        msg(
            wire::RENEW,
            &[0, 4, 5],
            Some(&SERVER),
            &[ip("2001:db8:ac10:fd01::1:40")],
            &[],
        ),
        msg(wire::CONFIRM, &[0, 4, 5], None, &[ip("2001:db8::1")], &[]),
    ];
    for i in 0..200_000u64 {
        let mut p = if i % 2 == 0 {
            let len = rng.gen_range(0..300);
            (0..len).map(|_| rng.gen()).collect::<Vec<u8>>()
        } else {
            let mut p = seeds[(i / 2 % 4) as usize].clone();
            for _ in 0..rng.gen_range(1..6) {
                let at = rng.gen_range(0..p.len());
                p[at] = rng.gen();
            }
            if rng.gen_bool(0.2) {
                p.truncate(rng.gen_range(0..p.len()));
            }
            p
        };
        if i % 3 == 0 && !p.is_empty() {
            p[0] = [1, 3, 4, 5, 6, 8, 9, 11][(i % 8) as usize];
        }
        // Each datagram at its own second: the bucket never interferes.
        let _ = e.handle(i, &p, ll());
    }
    let s = e.stats();
    assert_eq!(s.received, 200_000);
    assert!(s.malformed > 50_000, "{s:?}");
}

#[test]
fn the_duids_in_the_corpus_parse_and_a_ia_reply_encodes_lifetimes() {
    let c = Dhcp6Config::from_network(&corpus("dhcp6-network")).expect("c");
    let ids: Vec<_> = c.hosts.iter().map(|h| h.duid.clone()).collect();
    assert_eq!(ids.iter().filter(|d| d.is_some()).count(), 4);
    assert_eq!(ids[0].as_ref().map(Vec::len), Some(18));
    let ia = IaNa {
        iaid: 1,
        t1: 0,
        t2: 0,
        addrs: vec![IaAddr {
            addr: ip("::1"),
            preferred: 0,
            valid: 0,
        }],
        status: None,
    };
    let r = wire::Reply::new(wire::REPLY, [0; 3]).ia(&ia);
    assert_eq!(wire::decode_reply(r.bytes()).expect("d").2, [ia]);
}

/// A guest rotating DUIDs from its one link-local address takes at most 8 addresses; another
/// guest (another source) is still served, and a static host is exempt.
#[test]
fn rotating_duids_from_one_source_take_at_most_the_cap() {
    let mut e = engine(&corpus("dhcp6-network"), Arc::new(NullSink6));
    let granted = (0..50u8)
        .filter(|i| {
            let p = msg(wire::REQUEST, &[0, 4, 0xee, *i], Some(&SERVER), &[], &[]);
            let r = e.handle(u64::from(*i), &p, ll()).expect("a reply");
            let (_, _, ias) = wire::decode_reply(r.bytes()).expect("decodes");
            ias[0].status.is_none()
        })
        .count();
    assert_eq!(granted, 8);
    assert_eq!(e.leases(100).len(), 8);
    // A binding already held renews at the cap.
    let (_, ias, _, _) = answer(
        &mut e,
        100,
        &msg(wire::RENEW, &[0, 4, 0xee, 0], Some(&SERVER), &[], &[]),
    );
    assert!(ias[0].status.is_none(), "{ias:?}");
    // Another guest's source is not affected.
    let other: Ipv6Addr = "fe80::99".parse().expect("addr");
    let r = e
        .handle(
            101,
            &msg(wire::REQUEST, &[0, 4, 1], Some(&SERVER), &[], &[]),
            other,
        )
        .expect("reply");
    assert!(wire::decode_reply(r.bytes()).expect("d").2[0]
        .status
        .is_none());
    // A static host behind the capped source still gets its address.
    let peter = [0, 3, 0, 1, 0, 0x16, 0x3e, 0x11, 0x22, 0x33];
    let (_, ias, _, _) = answer(
        &mut e,
        102,
        &msg(wire::REQUEST, &peter, Some(&SERVER), &[], &[]),
    );
    assert_eq!(addr_of(&ias), ip("2001:db8:ac10:fd01::1:22"));
    // Releasing one frees a place.
    let held = e
        .leases(103)
        .into_iter()
        .find(|l| l.duid == [0, 4, 0xee, 0])
        .expect("held");
    answer(
        &mut e,
        103,
        &msg(
            wire::RELEASE,
            &[0, 4, 0xee, 0],
            Some(&SERVER),
            &[held.ip],
            &[],
        ),
    );
    let (_, ias, _, _) = answer(
        &mut e,
        104,
        &msg(wire::REQUEST, &[0, 4, 0xee, 99], Some(&SERVER), &[], &[]),
    );
    assert!(ias[0].status.is_none(), "{ias:?}");
}

/// Group commit: the leases of requests received together are stored with ONE record call;
/// when it fails, none of them is bound or answered, while the ADVERTISE in the same batch
/// still goes out, and the same batch succeeds once the store works again.
#[test]
fn a_batch_is_recorded_once_and_rolled_back_whole() {
    let book = Arc::new(Book::default());
    let mut e = engine(&corpus("dhcp6-network"), book.clone());
    let requests: Vec<Vec<u8>> = (0..10u8)
        .map(|i| msg(wire::REQUEST, &[0, 4, 0x10, i], Some(&SERVER), &[], &[]))
        .collect();
    let solicit = msg(wire::SOLICIT, &[0, 4, 0x20], None, &[], &[]);
    let sources: Vec<Ipv6Addr> = (0..11u16)
        .map(|i| Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, i + 1))
        .collect();
    let mut batch: Vec<(&[u8], Ipv6Addr)> = requests
        .iter()
        .zip(&sources)
        .map(|(p, s)| (p.as_slice(), *s))
        .collect();
    batch.push((solicit.as_slice(), sources[10]));

    *book.fail.lock().expect("lock") = true;
    let replies = e.handle_batch(1, &batch);
    assert!(
        replies[..10].iter().all(Option::is_none),
        "no REPLY without a stored lease"
    );
    assert!(replies[10].is_some(), "the ADVERTISE still goes out");
    assert!(e.leases(1).is_empty(), "rolled back");
    assert_eq!(*book.calls.lock().expect("lock"), 1);

    *book.fail.lock().expect("lock") = false;
    let replies = e.handle_batch(2, &batch);
    assert!(replies.iter().all(Option::is_some));
    assert_eq!(e.leases(2).len(), 10);
    assert_eq!(
        *book.calls.lock().expect("lock"),
        2,
        "one store commit for the batch"
    );
    assert_eq!(book.changes.lock().expect("lock").len(), 10);
    // Ten distinct addresses.
    let mut ips: Vec<_> = e.leases(2).iter().map(|l| l.ip).collect();
    ips.dedup();
    assert_eq!(ips.len(), 10);
}

/// Issue 15: a REPLY that only extends a binding on its address (RENEW, REBIND, a REQUEST
/// of a client coming back for the address it holds) is recorded through
/// `record_extensions` (no wait for the store); a new binding, a changed name, a release, or
/// a batch holding any of them is recorded durably; an extension the sink refuses is not
/// answered, as before.
#[test]
fn only_extensions_of_held_bindings_skip_the_durable_record() {
    let book = Arc::new(Book::default());
    let mut e = engine(&corpus("dhcp6-network"), book.clone());
    let counts = |b: &Book| {
        (
            *b.calls.lock().expect("lock"),
            *b.extension_calls.lock().expect("lock"),
        )
    };
    let duid = [0, 3, 0, 1, 0x52, 0x54, 0, 9, 9, 9];
    let (_, ias, _, _) = answer(
        &mut e,
        10,
        &msg(wire::REQUEST, &duid, Some(&SERVER), &[], &[]),
    );
    let held = addr_of(&ias);
    assert_eq!(counts(&book), (1, 0), "a new binding is durable");

    let renew = msg(wire::RENEW, &duid, Some(&SERVER), &[held], &[]);
    let (_, ias, _, _) = answer(&mut e, 20, &renew);
    assert_eq!(addr_of(&ias), held);
    assert_eq!(
        counts(&book),
        (2, 1),
        "RENEW of the held address: an extension"
    );
    answer(&mut e, 30, &msg(wire::REBIND, &duid, None, &[held], &[]));
    answer(
        &mut e,
        40,
        &msg(wire::REQUEST, &duid, Some(&SERVER), &[], &[]),
    );
    assert_eq!(
        counts(&book),
        (4, 3),
        "REBIND and a returning REQUEST: extensions"
    );
    assert_eq!(e.leases(40)[0].expires, Some(40 + 3600));

    // A new name is more than an extension (DNS follows it).
    answer(
        &mut e,
        50,
        &msg(wire::RENEW, &duid, Some(&SERVER), &[held], &fqdn("newname")),
    );
    assert_eq!(counts(&book), (5, 3));

    // An extension batched with a new client's REQUEST: one durable record for both.
    let other = msg(wire::REQUEST, &[0, 4, 7, 7], Some(&SERVER), &[], &[]);
    let src2 = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x77);
    let replies = e.handle_batch(60, &[(renew.as_slice(), ll()), (other.as_slice(), src2)]);
    assert!(replies.iter().all(Option::is_some));
    assert_eq!(counts(&book), (6, 3));

    // A refused extension is rolled back and not answered.
    *book.fail.lock().expect("lock") = true;
    assert!(e.handle(70, &renew, ll()).is_none());
    assert_eq!(counts(&book), (7, 4));
    assert_eq!(
        e.leases(70)
            .iter()
            .find(|l| l.ip == held)
            .and_then(|l| l.expires),
        Some(60 + 3600)
    );
    *book.fail.lock().expect("lock") = false;

    answer(
        &mut e,
        80,
        &msg(wire::RELEASE, &duid, Some(&SERVER), &[held], &[]),
    );
    assert_eq!(counts(&book), (8, 4), "a release is durable");
}

/// Issue 15 item 2: bindings are counted per bridge port when the port is known, whatever
/// the source address (a guest with raw sockets forges those), and each port has its own
/// bucket: a flood from one port leaves another port's client served.
#[test]
fn a_port_is_capped_whatever_its_source_addresses_and_has_its_own_bucket() {
    use virtnet_dhcp6::PortId;
    let mut e = engine(&corpus("dhcp6-network"), Arc::new(NullSink6));
    let rc = opt(14, &[]);
    let flood = PortId::Port(7);
    let mut bound = 0;
    for i in 0..40u16 {
        let src = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0xf, i);
        let duid = [0, 4, 0x33, (i >> 8) as u8, i as u8];
        let r = e
            .handle_from(1, &msg(wire::SOLICIT, &duid, None, &[], &rc), src, flood)
            .expect("an answer");
        let (kind, _, ias) = wire::decode_reply(r.bytes()).expect("decodes");
        if kind == wire::REPLY && ias.iter().any(|ia| !ia.addrs.is_empty()) {
            bound += 1;
        }
    }
    assert_eq!(bound, 8, "the port's cap");
    assert_eq!(e.leases(1).len(), 8);

    // The flooding port's bucket runs dry (burst 200); another port is still answered.
    let limits = e.config().limits.clone();
    let answered = (0..limits.per_port_burst + 50)
        .filter(|i| {
            let duid = [0, 4, 0x44, (*i >> 8) as u8, *i as u8];
            e.handle_from(2, &msg(wire::SOLICIT, &duid, None, &[], &[]), ll(), flood)
                .is_some()
        })
        .count();
    assert_eq!(answered as u32, limits.per_port_burst);
    assert!(e.stats().rate_limited >= 50);
    let other = e.handle_from(
        2,
        &msg(wire::SOLICIT, &[0, 4, 0x55], None, &[], &rc),
        ll(),
        PortId::Port(8),
    );
    let (kind, _, ias) = wire::decode_reply(other.expect("answered").bytes()).expect("decodes");
    assert_eq!(kind, wire::REPLY);
    assert!(!ias[0].addrs.is_empty(), "the other port's client is bound");
}

/// Issue 14 item 2: a lease remembers the bridge port its client's message came in on (what
/// anti-spoofing ties it to); a renewal whose port is unknown keeps it, one through another
/// port moves it there.
#[test]
fn a_lease_remembers_the_port_its_client_came_in_on() {
    use virtnet_dhcp6::PortId;
    let book = Arc::new(Book::default());
    let mut e = engine(&corpus("dhcp6-network"), book.clone());
    let duid = [0, 4, 0x66];
    let rc = opt(14, &[]);
    let r = e
        .handle_from(
            1,
            &msg(wire::SOLICIT, &duid, None, &[], &rc),
            ll(),
            PortId::Port(7),
        )
        .expect("an answer");
    let (_, _, ias) = wire::decode_reply(r.bytes()).expect("decodes");
    let addr = addr_of(&ias);
    assert_eq!(e.leases(1)[0].port, Some(7));
    let last_port = |book: &Book| {
        book.changes
            .lock()
            .expect("lock")
            .last()
            .map(|c| c.lease().port)
    };
    assert_eq!(last_port(&book), Some(Some(7)), "recorded with its port");

    let renew = msg(wire::RENEW, &duid, Some(&SERVER), &[addr], &[]);
    e.handle_from(2, &renew, ll(), PortId::Unknown)
        .expect("renewed");
    assert_eq!(
        e.leases(2)[0].port,
        Some(7),
        "an unknown port keeps the old one"
    );
    e.handle_from(3, &renew, ll(), PortId::Port(9))
        .expect("renewed");
    assert_eq!(e.leases(3)[0].port, Some(9));
    assert_eq!(last_port(&book), Some(Some(9)), "the move is recorded");
}

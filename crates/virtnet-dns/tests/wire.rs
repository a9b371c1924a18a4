//! `handle_query`: decoding, rcodes, truncation, and robustness against arbitrary bytes (the
//! same path the cargo-fuzz target drives, here with a fixed seed so CI on stable runs it).

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use virtnet_dns::{handle_query, DnsConfig, GuestName, Outcome, Transport, Zone};
use virtnet_model::Network;

const XML: &str = "<network><name>t</name><forward mode='nat'/><domain name='example.com'/>\
  <dns forwardPlainNames='no'><txt name='big' value='BIGVALUE'/>\
  <host ip='192.168.122.1'><hostname>gw</hostname></host></dns>\
  <ip address='192.168.122.1' prefix='24' localPtr='yes'/></network>";

fn zone() -> Zone {
    let xml = XML.replace("BIGVALUE", &"x".repeat(250));
    let mut net = Network::from_xml(&xml).unwrap();
    // Ten 250-byte TXT strings: more than 512 bytes, less than 4096.
    let txt = net.dns.as_ref().unwrap().txts[0].clone();
    net.dns.as_mut().unwrap().txts = vec![txt; 10];
    let c = DnsConfig::from_network(&net, &["127.0.0.53:53".parse().unwrap()]).unwrap();
    Zone::new(
        &c,
        &[GuestName {
            name: "vm1".into(),
            ip: "192.168.122.10".parse().unwrap(),
        }],
    )
}

fn query(id: u16, name: &str, ty: RecordType) -> Message {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), ty));
    m
}

fn reply(o: Outcome) -> Message {
    match o {
        Outcome::Local(b) | Outcome::Refused(b) | Outcome::Malformed(Some(b)) => {
            Message::from_vec(&b).unwrap()
        }
        other => panic!("no reply: {other:?}"),
    }
}

#[test]
fn local_answer_echoes_id_question_and_flags() {
    let z = zone();
    let q = query(0x1234, "vm1.example.com.", RecordType::A);
    let r = reply(handle_query(&q.to_vec().unwrap(), &z, Transport::Udp));
    assert_eq!(r.metadata.id, 0x1234);
    assert_eq!(r.metadata.message_type, MessageType::Response);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.metadata.authoritative && r.metadata.recursion_available);
    assert!(r.metadata.recursion_desired);
    assert_eq!(r.queries, q.queries);
    assert_eq!(r.answers.len(), 1);
    assert_eq!(r.answers[0].data.to_string(), "192.168.122.10");
    assert!(r.edns.is_none());
}

#[test]
fn rcodes() {
    let z = zone();
    let rc = |m: &Message| reply(handle_query(&m.to_vec().unwrap(), &z, Transport::Udp));
    assert_eq!(
        rc(&query(1, "nosuch.", RecordType::A))
            .metadata
            .response_code,
        ResponseCode::NXDomain
    );
    assert_eq!(
        rc(&query(2, "9.122.168.192.in-addr.arpa.", RecordType::PTR))
            .metadata
            .response_code,
        ResponseCode::NXDomain
    );
    let mut notify = query(3, "example.com.", RecordType::SOA);
    notify.metadata.op_code = OpCode::Notify;
    let r = rc(&notify);
    assert_eq!(r.metadata.response_code, ResponseCode::NotImp);
    let mut two = query(4, "gw.", RecordType::A);
    two.add_query(Query::query(
        Name::from_ascii("gw.").unwrap(),
        RecordType::AAAA,
    ));
    match handle_query(&two.to_vec().unwrap(), &z, Transport::Udp) {
        Outcome::Malformed(Some(b)) => assert_eq!(
            Message::from_vec(&b).unwrap().metadata.response_code,
            ResponseCode::FormErr
        ),
        other => panic!("{other:?}"),
    }
    match handle_query(
        &query(5, "a.org.", RecordType::A).to_vec().unwrap(),
        &z,
        Transport::Udp,
    ) {
        Outcome::Forward { request, upstreams } => {
            assert_eq!(request.metadata.id, 5);
            assert_eq!(upstreams, ["127.0.0.53:53".parse().unwrap()]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_input_is_dropped_or_formerr() {
    let z = zone();
    assert_eq!(
        handle_query(&[], &z, Transport::Udp),
        Outcome::Malformed(None)
    );
    assert_eq!(
        handle_query(&[0; 11], &z, Transport::Udp),
        Outcome::Malformed(None)
    );
    // A response is never answered (no reflection loops).
    let mut resp = query(6, "gw.", RecordType::A);
    resp.metadata.message_type = MessageType::Response;
    assert_eq!(
        handle_query(&resp.to_vec().unwrap(), &z, Transport::Udp),
        Outcome::Malformed(None)
    );
    // A header claiming a question that is not there: FORMERR with the id.
    let bytes = [0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'f'];
    let r = reply(handle_query(&bytes, &z, Transport::Udp));
    assert_eq!(r.metadata.id, 0xabcd);
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
}

#[test]
fn udp_truncation_and_edns() {
    let z = zone();
    let q = query(7, "big.", RecordType::TXT);
    let r = reply(handle_query(&q.to_vec().unwrap(), &z, Transport::Udp));
    assert!(r.metadata.truncation);
    assert!(r.answers.is_empty());
    let r = reply(handle_query(&q.to_vec().unwrap(), &z, Transport::Tcp));
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), 10);
    // EDNS with a 4096 buffer: capped at 1232, still too small for ~2.5 kB.
    let mut e = q.clone();
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    e.edns = Some(edns);
    let r = reply(handle_query(&e.to_vec().unwrap(), &z, Transport::Udp));
    assert!(r.metadata.truncation);
    assert!(r.edns.is_some(), "EDNS in, EDNS out");
    let small = query(8, "gw.example.com.", RecordType::A);
    let mut small_e = small.clone();
    small_e.edns = Some(Edns::new());
    let r = reply(handle_query(&small_e.to_vec().unwrap(), &z, Transport::Udp));
    assert_eq!(r.answers.len(), 1);
    assert_eq!(r.edns.map(|e| e.max_payload()), Some(1232));
}

/// Thousands of random byte strings and mutated valid queries: never a panic, every reply
/// carries the query's id, only decodable queries are forwarded.
#[test]
fn random_and_mutated_inputs() {
    let z = zone();
    let mut rng = StdRng::seed_from_u64(0x5eed_d115);
    let seeds: Vec<Vec<u8>> = [
        query(1, "vm1.example.com.", RecordType::A),
        query(2, "gw.", RecordType::ANY),
        query(3, "10.122.168.192.in-addr.arpa.", RecordType::PTR),
        query(4, "big.", RecordType::TXT),
        query(5, "www.example.org.", RecordType::AAAA),
    ]
    .iter()
    .map(|m| m.to_vec().unwrap())
    .collect();
    let mut counts = [0usize; 4];
    for i in 0..6000 {
        let input: Vec<u8> = if i % 2 == 0 {
            let len = rng.gen_range(0..600);
            (0..len).map(|_| rng.gen()).collect()
        } else {
            let mut b = seeds[rng.gen_range(0..seeds.len())].clone();
            for _ in 0..rng.gen_range(1..8) {
                match rng.gen_range(0..4) {
                    0 if !b.is_empty() => {
                        let p = rng.gen_range(0..b.len());
                        b[p] = rng.gen();
                    }
                    1 if !b.is_empty() => {
                        let p = rng.gen_range(0..b.len());
                        b.truncate(p);
                    }
                    2 => {
                        let p = rng.gen_range(0..=b.len());
                        b.insert(p, rng.gen());
                    }
                    _ => b.extend((0..rng.gen_range(0..40)).map(|_| rng.gen::<u8>())),
                }
            }
            b
        };
        for transport in [Transport::Udp, Transport::Tcp] {
            let out = handle_query(&input, &z, transport);
            let bytes = match &out {
                Outcome::Local(b) | Outcome::Refused(b) | Outcome::Malformed(Some(b)) => b,
                Outcome::Malformed(None) => {
                    counts[2] += 1;
                    continue;
                }
                Outcome::Forward { request, .. } => {
                    assert!(Message::from_vec(&input).is_ok());
                    assert_eq!(request.queries.len(), 1);
                    counts[3] += 1;
                    continue;
                }
            };
            assert!(bytes.len() >= 12, "reply too short for {input:?}");
            assert_eq!(bytes[..2], input[..2], "id not echoed for {input:?}");
            assert!(bytes[2] & 0x80 != 0, "reply is not a response");
            if transport == Transport::Udp {
                assert!(bytes.len() <= 1232);
            }
            counts[if matches!(out, Outcome::Local(_)) {
                0
            } else {
                1
            }] += 1;
        }
    }
    // The corpus must reach every branch, or the test proves little.
    assert!(counts.iter().all(|&c| c > 50), "{counts:?}");
}

/// The reply cache gives, for a query seen before (another id), exactly what `handle_query`
/// gives; it keeps only local answers and forgets them when the zone changes.
#[test]
fn reply_cache_is_handle_query_with_the_id_replaced() {
    use std::sync::Arc;
    use virtnet_dns::ReplyCache;
    let z = Arc::new(zone());
    let mut cache = ReplyCache::new();
    let cases = [
        ("vm1.example.com.", RecordType::A),
        ("VM1.example.com.", RecordType::A),
        ("vm1.example.com.", RecordType::AAAA),
        ("nosuch.example.com.", RecordType::A),
        ("10.122.168.192.in-addr.arpa.", RecordType::PTR),
        ("big.example.com.", RecordType::TXT),
        ("elsewhere.org.", RecordType::A),
    ];
    for round in 0..3u16 {
        for (i, (name, ty)) in cases.iter().enumerate() {
            let id = 0x100 * round + i as u16;
            let mut q = query(id, name, *ty);
            if i % 2 == 1 {
                q.edns = Some(Edns::new());
            }
            let bytes = q.to_vec().unwrap();
            assert_eq!(
                cache.handle_udp(&bytes, &z),
                handle_query(&bytes, &z, Transport::Udp),
                "{name} {ty} round {round}"
            );
        }
    }
    // A new zone: vm1 has another address now; the cache must not answer from the old one.
    let q = query(7, "vm1.example.com.", RecordType::A)
        .to_vec()
        .unwrap();
    let xml = XML.replace("BIGVALUE", "x");
    let net = Network::from_xml(&xml).unwrap();
    let c = DnsConfig::from_network(&net, &[]).unwrap();
    let z2 = Arc::new(Zone::new(
        &c,
        &[GuestName {
            name: "vm1".into(),
            ip: "192.168.122.99".parse().unwrap(),
        }],
    ));
    let r = reply(cache.handle_udp(&q, &z2));
    assert_eq!(r.answers[0].data.to_string(), "192.168.122.99");
    assert_eq!(
        cache.handle_udp(&q, &z2),
        handle_query(&q, &z2, Transport::Udp)
    );
}

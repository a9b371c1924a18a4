//! Arbitrary bytes through decode + handle, as the socket loop feeds them: nothing may panic.
#![no_main]

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use virtnet_dhcp::{DhcpConfig, Engine, Limits, NoProbe, NullSink, PortId, Range, StaticHost};

fn config() -> DhcpConfig {
    let ip = |last| Ipv4Addr::new(192, 168, 122, last);
    DhcpConfig {
        ranges: vec![Range {
            start: ip(2),
            end: ip(20),
            lease_secs: Some(60),
        }],
        hosts: vec![StaticHost {
            mac: Some([0x52, 0x54, 0, 0, 0, 1]),
            client_id: Some(vec![1, 2, 3]),
            ip: ip(30),
            name: Some("h".into()),
            lease_secs: None,
        }],
        router: Some(ip(1)),
        dns: Some(ip(1)),
        domain: Some("example.com".into()),
        mtu: Some(1400),
        limits: Limits {
            max_leases_per_port: 4,
            requests_per_port_per_sec: u32::MAX,
            burst: u32::MAX,
        },
        ..DhcpConfig::new("fuzz", ip(1), 24)
    }
}

// One engine across inputs, so sequences of messages build up state (leases, offers).
static ENGINE: Mutex<Option<Engine>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let mut guard = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    let engine = guard.get_or_insert_with(|| {
        Engine::new(config(), vec![], Arc::new(NullSink), Box::new(NoProbe))
    });
    // First byte: time step and port; the rest is the datagram.
    let (ctl, bytes) = data.split_first().map_or((0, data), |(c, r)| (*c, r));
    let now = 1_000_000 + u64::from(ctl & 0x3f) * 10;
    let port = if ctl & 0x40 != 0 {
        PortId::Unknown
    } else {
        PortId::Port(u32::from(ctl >> 7))
    };
    if let Some(reply) = engine.handle_datagram(now, bytes, |_| port) {
        let _ = reply.encode();
    }
    if ctl & 0x3f == 0x3f {
        engine.sweep(now + 120);
    }
});

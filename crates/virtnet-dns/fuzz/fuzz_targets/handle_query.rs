//! Arbitrary bytes through decode + answer (`virtnet_dns::handle_query`), over UDP and TCP
//! limits, against a zone with every kind of local record, local-only domains and forwarders.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use virtnet_dns::{handle_query, DnsConfig, GuestName, Outcome, Transport, Zone};

const XML: &str = r#"<network><name>fuzz</name><forward mode='nat'/>
  <domain name='example.com' localOnly='yes'/>
  <dns forwardPlainNames='no'>
    <forwarder addr='192.0.2.53'/>
    <forwarder domain='corp.test' addr='192.0.2.54' port='5353'/>
    <forwarder domain='www.corp.test'/>
    <host ip='192.168.122.1'><hostname>gateway</hostname><hostname>host</hostname></host>
    <srv service='ldap' protocol='tcp' target='dc.example.com' port='389'/>
    <srv service='none' protocol='udp'/>
    <txt name='motd' value='hello'/>
  </dns>
  <ip address='192.168.122.1' prefix='24' localPtr='yes'>
    <dhcp><host mac='52:54:00:00:00:11' name='db' ip='192.168.122.11'/></dhcp>
  </ip>
  <ip family='ipv6' address='fd00::1' prefix='64' localPtr='yes'/></network>"#;

fn zone() -> &'static Zone {
    static ZONE: OnceLock<Zone> = OnceLock::new();
    ZONE.get_or_init(|| {
        let net = virtnet_model::Network::from_xml(XML).expect("fuzz network");
        let config = DnsConfig::from_network(&net, &[]).expect("dns on");
        Zone::new(
            &config,
            &[GuestName {
                name: "vm1".into(),
                ip: "192.168.122.50".parse().expect("ip"),
            }],
        )
    })
}

fuzz_target!(|data: &[u8]| {
    for transport in [Transport::Udp, Transport::Tcp] {
        match handle_query(data, zone(), transport) {
            Outcome::Local(b) | Outcome::Refused(b) | Outcome::Malformed(Some(b)) => {
                assert!(b.len() >= 12 && b[..2] == data[..2]);
                if transport == Transport::Udp {
                    assert!(b.len() <= 1232);
                }
            }
            Outcome::Malformed(None) | Outcome::Forward { .. } => {}
        }
    }
});

//! The answering logic: one question in, one [`Answer`] out. Pure: no sockets, no clocks.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::Query;
use hickory_proto::rr::rdata::{A, AAAA, PTR, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::config::{expand, DnsConfig, DomainRoute};
use crate::names::{arpa_key, in_domain, key, label_count, parse_name, valid_label};

/// TTL of local answers: dnsmasq's default `local-ttl` is 0, so guests never cache names that
/// a lease change or `net-update` may change a moment later.
const LOCAL_TTL: u32 = 0;

/// A name learnt from a DHCP lease (the client's host name).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GuestName {
    /// The host name the client sent. Only its first label is used (as dnsmasq does), so a
    /// guest can never claim a name outside the network's domain.
    pub name: String,
    /// The leased address.
    pub ip: IpAddr,
}

/// What to do with one question.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// The name is known locally: NOERROR with these records (empty: NODATA).
    Local(Vec<Record>),
    /// The name is in a local-only domain (or is a plain name that must not be forwarded) and
    /// is not known: NXDOMAIN.
    NxDomain,
    /// Not served here: a class other than IN, a zone transfer, or no upstream to forward to
    /// (dnsmasq answers REFUSED when it has no server).
    Refused,
    /// Not known locally: ask these upstream servers, in order.
    Forward(Vec<SocketAddr>),
}

/// The compiled records and routing of one network's DNS server.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    addrs: HashMap<String, Vec<IpAddr>>,
    ptrs: HashMap<String, Vec<Name>>,
    srvs: HashMap<String, Vec<SRV>>,
    txts: HashMap<String, Vec<TXT>>,
    routes: Vec<(String, usize, DomainRoute)>,
    forward_plain_names: bool,
    upstreams: Vec<SocketAddr>,
}

impl Zone {
    /// Builds the zone from the network's configuration and the names of current leases.
    ///
    /// Static names come first: a lease whose name is already a configured name is ignored
    /// (dnsmasq does the same with names from its hosts files), and reverse lookups prefer
    /// `<dns><host>`, then `<dhcp><host>`, then leases.
    pub fn new(config: &DnsConfig, guests: &[GuestName]) -> Zone {
        let mut zone = Zone {
            forward_plain_names: config.forward_plain_names,
            upstreams: config.upstreams.clone(),
            routes: config
                .routes
                .iter()
                .map(|(d, r)| (d.clone(), label_count(d), r.clone()))
                .collect(),
            ..Zone::default()
        };
        for h in &config.hosts {
            zone.add_host(h.ip, &h.names);
        }
        let statics: HashSet<String> = zone.addrs.keys().cloned().collect();
        for g in guests {
            let label = g.name.split('.').next().unwrap_or("").to_ascii_lowercase();
            if !valid_label(&label) {
                continue;
            }
            let names = expand(&label, config.domain.as_deref());
            if names.is_empty() || names.iter().any(|n| statics.contains(n)) {
                continue;
            }
            zone.add_host(g.ip, &names);
        }
        for s in &config.srvs {
            let target = if s.target.is_empty() {
                Name::root()
            } else {
                match parse_name(&s.target) {
                    Some(t) => t,
                    None => continue,
                }
            };
            zone.srvs
                .entry(s.name.clone())
                .or_default()
                .push(SRV::new(s.priority, s.weight, s.port, target));
        }
        for t in &config.txts {
            let chunks: Vec<&[u8]> = if t.value.is_empty() {
                vec![&[]]
            } else {
                t.value.as_bytes().chunks(255).collect()
            };
            zone.txts
                .entry(t.name.clone())
                .or_default()
                .push(TXT::from_bytes(chunks));
        }
        zone
    }

    fn add_host(&mut self, ip: IpAddr, names: &[String]) {
        for n in names {
            let v = self.addrs.entry(n.clone()).or_default();
            if !v.contains(&ip) {
                v.push(ip);
            }
        }
        let Some(target) = names.first().and_then(|n| parse_name(n)) else {
            return;
        };
        // One PTR per address: the first name registered for it (dnsmasq's hosts files give
        // the reverse mapping to the first name of a line only).
        self.ptrs
            .entry(arpa_key(&ip))
            .or_insert_with(|| vec![target]);
    }

    /// True when `name` (a key) has any local record.
    fn known(&self, k: &str) -> bool {
        self.addrs.contains_key(k)
            || self.ptrs.contains_key(k)
            || self.srvs.contains_key(k)
            || self.txts.contains_key(k)
    }

    /// Answers one question.
    ///
    /// A name with any local record is answered locally (NODATA for other types, never
    /// forwarded). Otherwise: a plain name with `forward_plain_names` off is NXDOMAIN
    /// (dnsmasq `domain-needed` + `local=//`); then the longest matching per-domain route
    /// decides (local-only → NXDOMAIN); else the default upstreams (none → REFUSED).
    pub fn answer(&self, query: &Query) -> Answer {
        if query.query_class() != DNSClass::IN {
            return Answer::Refused;
        }
        let qtype = query.query_type();
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            return Answer::Refused;
        }
        let k = key(query.name());
        if self.known(&k) {
            return Answer::Local(self.records(&k, query.name(), qtype));
        }
        if !self.forward_plain_names && label_count(&k) == 1 {
            return Answer::NxDomain;
        }
        let route = self
            .routes
            .iter()
            .filter(|(d, _, _)| in_domain(&k, d))
            .max_by_key(|(_, labels, _)| *labels)
            .map(|(_, _, r)| r);
        match route {
            Some(DomainRoute::Local) => Answer::NxDomain,
            Some(DomainRoute::Upstreams(v)) if !v.is_empty() => Answer::Forward(v.clone()),
            _ if self.upstreams.is_empty() => Answer::Refused,
            _ => Answer::Forward(self.upstreams.clone()),
        }
    }

    fn records(&self, k: &str, owner: &Name, qtype: RecordType) -> Vec<Record> {
        let any = qtype == RecordType::ANY;
        let mut out = Vec::new();
        let mut push = |rdata: RData| out.push(Record::from_rdata(owner.clone(), LOCAL_TTL, rdata));
        if let Some(ips) = self.addrs.get(k) {
            for ip in ips {
                match ip {
                    IpAddr::V4(v4) if any || qtype == RecordType::A => push(RData::A(A(*v4))),
                    IpAddr::V6(v6) if any || qtype == RecordType::AAAA => {
                        push(RData::AAAA(AAAA(*v6)))
                    }
                    _ => {}
                }
            }
        }
        if any || qtype == RecordType::PTR {
            for t in self.ptrs.get(k).into_iter().flatten() {
                push(RData::PTR(PTR(t.clone())));
            }
        }
        if any || qtype == RecordType::SRV {
            for s in self.srvs.get(k).into_iter().flatten() {
                push(RData::SRV(s.clone()));
            }
        }
        if any || qtype == RecordType::TXT {
            for t in self.txts.get(k).into_iter().flatten() {
                push(RData::TXT(t.clone()));
            }
        }
        out
    }
}

//! Port forwards into a NAT network (virtnet's extension, namespace `urn:virtnet:network:1`):
//!
//! ```xml
//! <virtnet:forwards>
//!   <virtnet:forward proto='tcp' port='8080' to='web' to-port='80'/>
//!   <virtnet:forward proto='udp' port='5000-5009' listen='203.0.113.2' to='192.168.122.7'/>
//! </virtnet:forwards>
//! ```
//!
//! `port` is one port or a range `P-Q`; `to-port` the first port of the target range (the
//! range has the same length), by default the same ports. `listen` is one host address; without
//! it the forward listens on every address of the host that is not a virtnet network's own
//! address. `to` is a guest's address or its name (a DHCP lease's host name or a static
//! `<host name>`), looked up when the forward is applied and whenever the guest's lease changes.
//!
//! The attribute readers here are shared by the XML parser and the CLI, so both refuse the same
//! values with the same reasons.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// A layer-4 protocol: of a port forward, and of `<virtnet:host-access>`'s
/// `HostAllow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostProto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl HostProto {
    /// The spelling in XML and in nftables: `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            HostProto::Tcp => "tcp",
            HostProto::Udp => "udp",
        }
    }
}

/// One port forward: traffic to `listen`:`ports` (protocol `proto`) goes to `to`:`to_port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortForward {
    /// `proto`: `tcp` or `udp`.
    pub proto: HostProto,
    /// `port`: the host ports forwarded.
    pub ports: ForwardPorts,
    /// `listen`: the host address; `None` for every host address not on a virtnet bridge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<IpAddr>,
    /// `to`: the guest.
    pub to: ForwardTarget,
    /// `to-port`: the first guest port; `None` for the same ports as [`PortForward::ports`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_port: Option<u16>,
}

/// An inclusive range of ports, 1 to 65535; one port is a range of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ForwardPorts {
    /// First port.
    pub start: u16,
    /// Last port (equal to `start` for one port).
    pub end: u16,
}

/// Where a forward goes: a guest's address, or its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardTarget {
    /// A fixed address.
    Address(IpAddr),
    /// A guest's name, resolved through the network's leases and static hosts.
    Name(String),
}

impl fmt::Display for ForwardPorts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl ForwardPorts {
    /// Reads `P` or `P-Q` (1 ≤ P ≤ Q ≤ 65535); errors name `field`.
    pub fn parse(field: &str, value: &str) -> Result<ForwardPorts> {
        let bad = |why: &str| invalid(field, value, why);
        let port = |s: &str| {
            s.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("expected a port from 1 to 65535, or a range P-Q"))
        };
        let (start, end) = match value.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => (port(value)?, port(value)?),
        };
        if start > end {
            return Err(bad("the range ends before it starts"));
        }
        Ok(ForwardPorts { start, end })
    }

    /// How many ports the range holds.
    pub fn len(&self) -> u32 {
        u32::from(self.end) - u32::from(self.start) + 1
    }

    /// Never true: a range holds at least one port.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// True when the two ranges share a port.
    pub fn overlaps(&self, other: &ForwardPorts) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

impl fmt::Display for ForwardTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardTarget::Address(a) => write!(f, "{a}"),
            ForwardTarget::Name(n) => f.write_str(n),
        }
    }
}

impl ForwardTarget {
    /// Reads an address or a host name (letters, digits, `-`, `.`, `_`; at most 253
    /// characters, as DNS allows); errors name `field`.
    pub fn parse(field: &str, value: &str) -> Result<ForwardTarget> {
        if let Ok(a) = value.parse::<IpAddr>() {
            return check_target_address(field, a).map(|()| ForwardTarget::Address(a));
        }
        let ok = !value.is_empty()
            && value.len() <= 253
            && !value.starts_with(['-', '.'])
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !ok {
            return Err(invalid(
                field,
                value,
                "expected a guest's IP address or host name",
            ));
        }
        Ok(ForwardTarget::Name(value.to_string()))
    }
}

/// A guest address must be one a guest can hold: not unspecified, loopback or multicast.
fn check_target_address(field: &str, a: IpAddr) -> Result<()> {
    if a.is_unspecified() || a.is_loopback() || a.is_multicast() {
        return Err(invalid(
            field,
            &a.to_string(),
            "not a guest address (unspecified, loopback or multicast)",
        ));
    }
    if let IpAddr::V4(v4) = a {
        if v4.is_broadcast() {
            return Err(invalid(field, &a.to_string(), "not a guest address"));
        }
    }
    Ok(())
}

/// Reads a `listen` address: a unicast host address; errors name `field`.
pub fn parse_listen(field: &str, value: &str) -> Result<IpAddr> {
    let a = value
        .parse::<IpAddr>()
        .map_err(|_| invalid(field, value, "expected an IP address of the host"))?;
    if a.is_unspecified() || a.is_multicast() {
        return Err(invalid(
            field,
            value,
            "expected one host address (leave it out for every address)",
        ));
    }
    Ok(a)
}

/// Reads `tcp` or `udp`; errors name `field`.
pub fn parse_proto(field: &str, value: &str) -> Result<HostProto> {
    match value {
        "tcp" => Ok(HostProto::Tcp),
        "udp" => Ok(HostProto::Udp),
        _ => Err(invalid(field, value, "expected 'tcp' or 'udp'")),
    }
}

/// Reads the CLI's `--to GUEST[:PORT[-PORT]]` (an IPv6 address with a port in brackets:
/// `[fd00::5]:80`) into the target and the first guest port. A given range must be as long as
/// `ports`.
pub fn parse_to(
    field: &str,
    value: &str,
    ports: ForwardPorts,
) -> Result<(ForwardTarget, Option<u16>)> {
    let (guest, port) = split_guest_port(value);
    let target = ForwardTarget::parse(field, guest)?;
    let Some(port) = port else {
        return Ok((target, None));
    };
    let range = ForwardPorts::parse(field, port)?;
    if range.start != range.end && range.len() != ports.len() {
        return Err(invalid(
            field,
            value,
            &format!(
                "the guest's port range holds {} ports, the forwarded range {}",
                range.len(),
                ports.len()
            ),
        ));
    }
    Ok((target, Some(range.start)))
}

/// `host:port`, `[v6]:port`, or a bare address or name (an unbracketed IPv6 address has no
/// port).
fn split_guest_port(value: &str) -> (&str, Option<&str>) {
    if let Some(rest) = value.strip_prefix('[') {
        if let Some((addr, tail)) = rest.split_once(']') {
            return (addr, tail.strip_prefix(':'));
        }
    }
    match value.split_once(':') {
        Some((host, port)) if !port.contains(':') => (host, Some(port)),
        _ => (value, None),
    }
}

impl PortForward {
    /// The guest port a host port goes to.
    pub fn target_port(&self, host_port: u16) -> u16 {
        match self.to_port {
            Some(first) => first + (host_port - self.ports.start),
            None => host_port,
        }
    }

    /// Checks the parts against each other; errors name the fields under `path`
    /// (`virtnet:forwards.virtnet:forward[0]`).
    pub fn check(&self, path: &str) -> Result<()> {
        if let Some(first) = self.to_port {
            let last = u32::from(first) + self.ports.len() - 1;
            if first == 0 || last > 65535 {
                return Err(invalid(
                    &format!("{path}.to-port"),
                    &first.to_string(),
                    "the guest's port range would end past 65535",
                ));
            }
        }
        if let (Some(listen), ForwardTarget::Address(to)) = (self.listen, &self.to) {
            if listen.is_ipv4() != to.is_ipv4() {
                return Err(invalid(
                    &format!("{path}.to"),
                    &to.to_string(),
                    "the guest address and the listen address are of different families",
                ));
            }
        }
        Ok(())
    }

    /// True when both forwards would take the same packets: same protocol, a port in common,
    /// and the same listen address (a forward on every address takes every address).
    pub fn collides(&self, other: &PortForward) -> bool {
        self.proto == other.proto
            && self.ports.overlaps(&other.ports)
            && match (self.listen, other.listen) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }

    /// True when this forward is the one `forward-del` names: its protocol, a range containing
    /// `port`, and the same listen address.
    pub fn is_at(&self, proto: HostProto, port: u16, listen: Option<IpAddr>) -> bool {
        self.proto == proto
            && self.ports.start <= port
            && port <= self.ports.end
            && self.listen == listen
    }
}

impl fmt::Display for PortForward {
    /// `tcp 8080 on every host address -> web:80`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} on ", self.proto.as_str(), self.ports)?;
        match self.listen {
            Some(a) => write!(f, "{a}")?,
            None => f.write_str("every host address")?,
        }
        write!(f, " -> {}", self.to)?;
        if let Some(p) = self.to_port {
            let last = u32::from(p) + self.ports.len() - 1;
            if last == u32::from(p) {
                write!(f, ":{p}")?;
            } else {
                write!(f, ":{p}-{last}")?;
            }
        }
        Ok(())
    }
}

/// Checks a network's forwards: each valid, none colliding with another. O(n log n): a sweep
/// over the forwards sorted by first port, so a network with 10,000 forwards checks in
/// milliseconds (every `forward-add` re-checks its network).
pub fn check_forwards(forwards: &[PortForward]) -> Result<()> {
    use std::collections::HashMap;
    let path = |i: usize| format!("virtnet:forwards.virtnet:forward[{i}]");
    for (i, f) in forwards.iter().enumerate() {
        f.check(&path(i))?;
    }
    let mut order: Vec<usize> = (0..forwards.len()).collect();
    order.sort_by_key(|&i| (forwards[i].proto.as_str(), forwards[i].ports.start));
    // Per protocol: the furthest-reaching forward seen so far, overall and per listen address
    // (`None`: on every address, which collides with any listen address).
    let mut proto = None;
    let mut any: Option<(u16, usize)> = None;
    let mut by_listen: HashMap<Option<IpAddr>, (u16, usize)> = HashMap::new();
    for i in order {
        let f = &forwards[i];
        if proto != Some(f.proto) {
            proto = Some(f.proto);
            any = None;
            by_listen.clear();
        }
        let reach = match f.listen {
            None => any,
            Some(_) => [by_listen.get(&f.listen), by_listen.get(&None)]
                .into_iter()
                .flatten()
                .copied()
                .max(),
        };
        if let Some((end, j)) = reach.filter(|(end, _)| *end >= f.ports.start) {
            let _ = end;
            let (later, other) = if i > j { (i, j) } else { (j, i) };
            return Err(invalid(
                &format!("{}.port", path(later)),
                &forwards[later].ports.to_string(),
                &format!("collides with the forward {}", forwards[other]),
            ));
        }
        let mine = (f.ports.end, i);
        any = any.max(Some(mine));
        let slot = by_listen.entry(f.listen).or_insert(mine);
        *slot = (*slot).max(mine);
    }
    Ok(())
}

/// Refuses `forwards` (a definition's) when one takes a listen address, protocol and port a
/// forward of another network already takes, naming both (as `forward-add` does). `others`
/// are the other networks' definitions as (network name, forwards). Sorted sweeps, so that
/// defining a network with thousands of forwards beside others with thousands costs
/// O(n log n), not n × m.
pub fn check_against_others(
    forwards: &[PortForward],
    others: &[(&str, &[PortForward])],
) -> Result<()> {
    // Per protocol: the others' forwards by first port, with the furthest last port reached
    // up to each (so that a scan back from a forward's last port stops where nothing further
    // left can reach its first port).
    let mut theirs: Vec<(&PortForward, &str)> = others
        .iter()
        .flat_map(|(name, fs)| fs.iter().map(move |f| (f, *name)))
        .collect();
    if theirs.is_empty() {
        return Ok(());
    }
    theirs.sort_by_key(|(f, _)| (f.proto.as_str(), f.ports.start));
    let mut reach = Vec::with_capacity(theirs.len());
    let mut furthest = (None, 0u16);
    for (f, _) in &theirs {
        if furthest.0 != Some(f.proto) {
            furthest = (Some(f.proto), 0);
        }
        furthest.1 = furthest.1.max(f.ports.end);
        reach.push(furthest.1);
    }
    for (i, mine) in forwards.iter().enumerate() {
        let key = |f: &PortForward| (f.proto.as_str(), f.ports.start);
        let after =
            theirs.partition_point(|(f, _)| key(f) <= (mine.proto.as_str(), mine.ports.end));
        for j in (0..after).rev() {
            let (other, network) = theirs[j];
            if other.proto != mine.proto || reach[j] < mine.ports.start {
                break;
            }
            if other.collides(mine) {
                return Err(ModelError::bad_value(
                    format!("virtnet:forwards.virtnet:forward[{i}].port"),
                    mine.ports.to_string(),
                    format!("is already forwarded by network '{network}': {other}"),
                )
                .with_kind(crate::error::ErrorKind::Conflict));
            }
        }
    }
    Ok(())
}

fn invalid(field: &str, value: &str, reason: &str) -> ModelError {
    let mut e = ModelError::invalid(field, reason);
    e.value = Some(value.to_string());
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd(proto: &str, start: u16, end: u16, listen: Option<&str>) -> PortForward {
        let listen = listen.map_or(String::new(), |l| format!(r#", "listen": "{l}""#));
        serde_json::from_str(&format!(
            r#"{{"proto": "{proto}", "ports": {{"start": {start}, "end": {end}}}{listen}, "to": {{"address": "10.0.0.5"}}}}"#
        ))
        .expect("forward")
    }

    #[test]
    fn a_forward_taken_by_another_network_is_refused_naming_it() {
        let theirs = vec![
            fwd("tcp", 8000, 8999, None),
            fwd("tcp", 20, 30, Some("10.1.1.1")),
            fwd("udp", 53, 53, None),
        ];
        let others = [("other", theirs.as_slice())];
        // Free: another protocol's port, past the range, or another listen address.
        let free = [
            fwd("udp", 8080, 8080, None),
            fwd("tcp", 9000, 9100, None),
            fwd("tcp", 25, 25, Some("10.1.1.2")),
        ];
        assert!(check_against_others(&free, &others).is_ok());
        for (mine, index) in [
            (fwd("tcp", 8500, 8500, None), 0),
            (fwd("tcp", 7000, 8000, Some("10.9.9.9")), 0),
            (fwd("tcp", 1, 25, None), 0),
            (fwd("udp", 50, 60, Some("10.1.1.1")), 0),
        ] {
            let e = check_against_others(&[fwd("tcp", 1000, 1000, None), mine.clone()], &others)
                .expect_err("collides");
            assert_eq!(e.kind, crate::error::ErrorKind::Conflict, "{mine}");
            assert_eq!(
                e.field,
                format!("virtnet:forwards.virtnet:forward[{}].port", index + 1)
            );
            assert!(e.reason.contains("network 'other'"), "{e}");
        }
    }

    #[test]
    fn a_long_range_far_back_is_still_found() {
        // A wide range early in the order must be found from a forward many entries later.
        let mut theirs = vec![fwd("tcp", 100, 60000, Some("10.1.1.1"))];
        theirs.extend((0..1000).map(|i| fwd("tcp", 200 + i, 200 + i, Some("10.2.2.2"))));
        let others = [("wide", theirs.as_slice())];
        let e = check_against_others(&[fwd("tcp", 50000, 50000, None)], &others)
            .expect_err("inside the wide range");
        assert!(e.reason.contains("network 'wide'"), "{e}");
    }

    #[test]
    fn ranges_and_targets_parse_and_refuse_with_the_field() {
        assert_eq!(
            ForwardPorts::parse("port", "8080-8090").map(|r| r.len()),
            Ok(11)
        );
        let e = ForwardPorts::parse("port", "90-80").unwrap_err();
        assert_eq!(e.field, "port");
        assert!(ForwardPorts::parse("port", "0").is_err());
        assert!(ForwardPorts::parse("port", "70000").is_err());
        let r = ForwardPorts::parse("port", "8080").unwrap();
        assert_eq!(
            parse_to("to", "[fd00::5]:80", r).unwrap(),
            (ForwardTarget::Address("fd00::5".parse().unwrap()), Some(80))
        );
        assert_eq!(
            parse_to("to", "fd00::5", r).unwrap(),
            (ForwardTarget::Address("fd00::5".parse().unwrap()), None)
        );
        assert_eq!(
            parse_to("to", "web:81", r).unwrap(),
            (ForwardTarget::Name("web".into()), Some(81))
        );
        let wide = ForwardPorts::parse("port", "10-19").unwrap();
        assert_eq!(parse_to("to", "web:20-29", wide).unwrap().1, Some(20));
        assert_eq!(parse_to("to", "web:20-25", wide).unwrap_err().field, "to");
        assert_eq!(parse_to("to", "bad name", r).unwrap_err().field, "to");
        assert_eq!(parse_to("to", "127.0.0.1", r).unwrap_err().field, "to");
    }

    #[test]
    fn collisions_follow_listen_protocol_and_ports() {
        let f = |proto, ports: &str, listen: Option<&str>| PortForward {
            proto,
            ports: ForwardPorts::parse("port", ports).unwrap(),
            listen: listen.map(|l| l.parse().unwrap()),
            to: ForwardTarget::Name("g".into()),
            to_port: None,
        };
        let any = f(HostProto::Tcp, "8080", None);
        assert!(any.collides(&f(HostProto::Tcp, "8000-8100", Some("203.0.113.2"))));
        assert!(!any.collides(&f(HostProto::Udp, "8080", None)));
        assert!(!f(HostProto::Tcp, "80", Some("203.0.113.2")).collides(&f(
            HostProto::Tcp,
            "80",
            Some("203.0.113.3")
        )));
        let e = check_forwards(&[any.clone(), f(HostProto::Tcp, "8080", None)]).unwrap_err();
        assert_eq!(e.field, "virtnet:forwards.virtnet:forward[1].port");
        assert!(
            e.reason.contains("tcp 8080 on every host address -> g"),
            "{e}"
        );
    }

    #[test]
    fn ten_thousand_forwards_check_and_a_late_collision_is_found() {
        let f = |port: u16, listen: Option<&str>| PortForward {
            proto: HostProto::Tcp,
            ports: ForwardPorts {
                start: port,
                end: port,
            },
            listen: listen.map(|l| l.parse().unwrap()),
            to: ForwardTarget::Name("g".into()),
            to_port: None,
        };
        let mut all: Vec<PortForward> = (0..10_000).map(|i| f(20_000 + i, None)).collect();
        assert_eq!(check_forwards(&all), Ok(()));
        // Another listen address on a port of the forward on every address: refused, naming it.
        all.push(f(20_005, Some("203.0.113.2")));
        let e = check_forwards(&all).unwrap_err();
        assert_eq!(e.field, "virtnet:forwards.virtnet:forward[10000].port");
        assert!(e.reason.contains("tcp 20005 on every host address"), "{e}");
    }
}

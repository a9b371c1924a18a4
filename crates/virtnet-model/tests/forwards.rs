//! `<virtnet:forwards>`: port forwards round-trip in virtnet's namespace, and bad values are
//! refused with the field they are in.

use virtnet_model::define::prepare;
use virtnet_model::{ForwardPorts, ForwardTarget, HostProto, Network};

const DOC: &str = "<network xmlns:vn='urn:virtnet:network:1'><name>x</name>\
    <forward mode='nat'/><ip address='10.0.0.1' prefix='24'/>\
    <ip family='ipv6' address='fd00:1::1' prefix='64'/>\
    <vn:forwards>\
    <vn:forward proto='tcp' port='8080' to='web' to-port='80'/>\
    <vn:forward proto='udp' port='5000-5009' listen='203.0.113.2' to='10.0.0.7'/>\
    <vn:forward proto='tcp' port='8443' listen='2001:db8::2' to='fd00:1::7' to-port='443'/>\
    </vn:forwards></network>";

#[test]
fn forwards_round_trip_in_virtnets_namespace() {
    let n = Network::from_xml(DOC).unwrap();
    assert_eq!(n.forwards.len(), 3);
    let f = &n.forwards[0];
    assert_eq!(f.proto, HostProto::Tcp);
    assert_eq!(
        f.ports,
        ForwardPorts {
            start: 8080,
            end: 8080
        }
    );
    assert_eq!(f.listen, None);
    assert_eq!(f.to, ForwardTarget::Name("web".into()));
    assert_eq!(f.to_port, Some(80));
    assert_eq!(n.forwards[1].ports.len(), 10);
    assert_eq!(n.forwards[1].target_port(5003), 5003);
    assert_eq!(n.forwards[2].target_port(8443), 443);
    let xml = n.to_xml();
    assert!(
        xml.starts_with("<network xmlns:virtnet='urn:virtnet:network:1'>"),
        "{xml}"
    );
    assert!(
        xml.contains(
            "  <virtnet:forwards>\n    \
             <virtnet:forward proto='tcp' port='8080' to='web' to-port='80'/>\n    \
             <virtnet:forward proto='udp' port='5000-5009' listen='203.0.113.2' to='10.0.0.7'/>\n    \
             <virtnet:forward proto='tcp' port='8443' listen='2001:db8::2' to='fd00:1::7' to-port='443'/>\n  \
             </virtnet:forwards>\n"
        ),
        "{xml}"
    );
    let again = Network::from_xml(&xml).unwrap();
    assert_eq!(again.forwards, n.forwards, "read back the same");
    assert_eq!(again.to_xml(), xml, "fixed point");
    // The store's JSON form keeps them too.
    let json = serde_json::to_string(&n).unwrap();
    let back: Network = serde_json::from_str(&json).unwrap();
    assert_eq!(back.forwards, n.forwards);
}

#[test]
fn forward_errors_name_the_field() {
    let doc = |fwd: &str, mode: &str| {
        format!(
            "<network xmlns:virtnet='urn:virtnet:network:1'><name>x</name>{mode}\
             <ip address='10.0.0.1' prefix='24'/>\
             <virtnet:forwards>{fwd}</virtnet:forwards></network>"
        )
    };
    let nat = "<forward mode='nat'/>";
    let err = |fwd: &str| Network::from_xml(&doc(fwd, nat)).unwrap_err();
    let f0 = "virtnet:forwards.virtnet:forward[0]";
    let e = err("<virtnet:forward proto='sctp' port='80' to='g'/>");
    assert_eq!(e.field, format!("{f0}.proto"), "{e}");
    let e = err("<virtnet:forward proto='tcp' port='0' to='g'/>");
    assert_eq!(e.field, format!("{f0}.port"), "{e}");
    let e = err("<virtnet:forward proto='tcp' port='90-80' to='g'/>");
    assert_eq!(e.field, format!("{f0}.port"), "{e}");
    let e = err("<virtnet:forward proto='tcp' port='80' to='not a name'/>");
    assert_eq!(e.field, format!("{f0}.to"), "{e}");
    let e = err("<virtnet:forward proto='tcp' port='80' listen='0.0.0.0' to='g'/>");
    assert_eq!(e.field, format!("{f0}.listen"), "{e}");
    let e = err("<virtnet:forward proto='tcp' port='80' listen='203.0.113.2' to='fd00::5'/>");
    assert_eq!(e.field, format!("{f0}.to"), "{e}");
    let e = err("<virtnet:forward proto='tcp' port='65000-65535' to='g' to-port='65500'/>");
    assert_eq!(e.field, format!("{f0}.to-port"), "{e}");
    let e = err("<virtnet:forward proto='tcp' port='80'/>");
    assert!(
        e.to_string().contains("missing required attribute 'to'"),
        "{e}"
    );
    let e = err("<virtnet:forward proto='tcp' port='80-90' to='g'/>\
         <virtnet:forward proto='tcp' port='85' listen='203.0.113.2' to='h'/>");
    assert_eq!(e.field, "virtnet:forwards.virtnet:forward[1].port", "{e}");
    assert!(
        e.to_string()
            .contains("tcp 80-90 on every host address -> g"),
        "{e}"
    );
    // Only nat and route networks take forwards (a rule of `net-define`).
    let mut isolated =
        Network::from_xml(&doc("<virtnet:forward proto='tcp' port='80' to='g'/>", "")).unwrap();
    let e = prepare(&mut isolated, &[], &|_: &str| false).unwrap_err();
    assert_eq!(e.field, "virtnet:forwards", "{e}");
}

//! Guest ports against what an attacker tried (issue 11, findings 4 and 9): a "bridge" that
//! is not a bridge, guest names with control characters or 300 characters, and a tap left on
//! no bridge when its network stops.

use virtnet_api::client::{Client, ClientError};
use virtnet_api::PortRequest;
use virtnet_model::InterfaceSource;
use virtnet_testkit::{Daemon, Lab};

const NETWORK: &str = "<network><name>default</name><forward mode='nat'/>\
    <bridge name='virbr0'/><ip address='192.168.122.1' prefix='24'/></network>";

fn lab_with_default(name: &str) -> (Lab, Daemon) {
    let lab = Lab::new(name);
    let daemon = Daemon::start_in(lab.host());
    let net = daemon.define(NETWORK);
    daemon.cli_ok(&["net-start", &net]);
    (lab, daemon)
}

fn request(domain: &str, source: InterfaceSource) -> PortRequest {
    PortRequest {
        model: None,
        vnet_hdr: false,
        ..PortRequest::new(domain, source, "52:54:00:00:00:21")
    }
}

/// The HTTP status of a refused request.
fn status(err: &ClientError) -> Option<u16> {
    match err {
        ClientError::Api { status, .. } => Some(*status),
        _ => None,
    }
}

#[test]
fn a_port_source_that_is_not_a_bridge_is_refused_and_nothing_is_made() {
    let (lab, daemon) = lab_with_default("port_nobr");
    // Not bridges: the loopback, a veth and another tap.
    lab.host().ip_ok([
        "link", "add", "vntv0", "type", "veth", "peer", "name", "vntv1",
    ]);
    lab.host()
        .ip_ok(["tuntap", "add", "dev", "vntt0", "mode", "tap"]);
    let before = lab.host().link_names();
    for not_a_bridge in ["lo", "vntv0", "vntt0"] {
        let out = daemon.cli(&[
            "attach-interface",
            "vm",
            "bridge",
            not_a_bridge,
            "--mac",
            "52:54:00:00:00:21",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "attach-interface vm bridge {not_a_bridge} succeeded: {stdout}"
        );
        assert!(!stdout.contains("attached successfully"), "{stdout}");
        assert!(
            stderr.contains("source")
                && stderr.contains(&format!("'{not_a_bridge}' is not a bridge")),
            "{stderr}"
        );
    }
    // The API says 400 and names the field.
    let client = Client::new(daemon.socket());
    let err = client
        .create_port(&request("vm", InterfaceSource::Bridge("vntv0".into())))
        .unwrap_err();
    assert_eq!(status(&err), Some(400), "{err}");
    assert!(err.to_string().contains("source"), "{err}");
    // Nothing made: no tap, no record.
    assert_eq!(lab.host().link_names(), before);
    assert!(client.ports(None).expect("ports").is_empty());

    // A real bridge still works, and a port cannot be moved onto a non-bridge either.
    let port = client
        .create_port(&request("vm", InterfaceSource::Network("default".into())))
        .expect("a port on virbr0");
    let err = client
        .move_port(&port.name, InterfaceSource::Bridge("lo".into()))
        .unwrap_err();
    assert_eq!(status(&err), Some(400), "{err}");
    let shown = lab.host().ip_ok(["-d", "link", "show", &port.name]);
    assert!(shown.contains("master virbr0"), "{shown}");
}

#[test]
fn a_tap_is_never_up_on_no_bridge_and_has_no_ipv6() {
    let (lab, daemon) = lab_with_default("port_down");
    let client = Client::new(daemon.socket());
    let port = client
        .create_port(&request("vm", InterfaceSource::Network("default".into())))
        .expect("a port");
    let disable_ipv6 = lab.host().run_ok([
        "cat",
        &format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", port.name),
    ]);
    assert_eq!(disable_ipv6.trim(), "1");
    let shown = lab.host().ip_ok(["link", "show", &port.name]);
    assert!(
        shown.contains("master virbr0") && shown.contains(",UP"),
        "{shown}"
    );

    // The network stops: its bridge goes, the tap stays for the guest but is down.
    daemon.cli_ok(&["net-destroy", "default"]);
    let shown = lab.host().ip_ok(["link", "show", &port.name]);
    assert!(!shown.contains("master"), "{shown}");
    assert!(!shown.contains(",UP"), "a tap on no bridge is up: {shown}");
    // And back on the bridge, up, when the network starts again.
    daemon.cli_ok(&["net-start", "default"]);
    let shown = lab.host().ip_ok(["link", "show", &port.name]);
    assert!(
        shown.contains("master virbr0") && shown.contains(",UP"),
        "{shown}"
    );
}

#[test]
fn port_domain_names_are_checked_with_a_400_naming_the_field() {
    let (lab, daemon) = lab_with_default("port_domain");
    let client = Client::new(daemon.socket());
    let before = lab.host().link_names();
    for bad in [
        "vm\u{1b}[31m",
        "vm\nsecond line",
        &"x".repeat(300),
        "a/b",
        " ",
    ] {
        let err = client
            .create_port(&request(bad, InterfaceSource::Network("default".into())))
            .unwrap_err();
        assert_eq!(status(&err), Some(400), "{bad:?}: {err}");
        assert!(err.to_string().contains("domain"), "{bad:?}: {err}");
    }
    // The CLI says the same before it asks.
    let out = daemon.cli(&["attach-interface", "vm\u{7}", "network", "default"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("domain"), "{stderr}");
    let long = "y".repeat(300);
    let out = daemon.cli(&["attach-interface", &long, "network", "default"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("domain") && stderr.contains("300 bytes"),
        "{stderr}"
    );
    assert_eq!(lab.host().link_names(), before);
    assert!(client.ports(None).expect("ports").is_empty());
}

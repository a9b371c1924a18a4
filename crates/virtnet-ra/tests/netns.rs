//! The RA server's table against real interfaces, in a namespace of the test thread's own:
//! serving an interface that does not exist is refused with its name; a bridge deleted
//! without a withdraw (behind virtnet's back) is forgotten at its next advertisement, while a
//! bridge that is merely down stays; a withdraw forgets at once.

use std::process::Command;
use std::time::Duration;

use virtnet_model::Network;
use virtnet_ra::{RaConfig, RaServer};
use virtnet_testkit::in_thread_netns;

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("ip");
    assert!(st.success(), "ip {args:?}: {st}");
}

fn config() -> RaConfig {
    let net = Network::from_xml(
        "<network><name>t</name><forward mode='nat'/>\
         <ip family='ipv6' address='fd00:9::1' prefix='64'/></network>",
    )
    .expect("network");
    RaConfig::from_network(&net).expect("IPv6 network")
}

#[test]
fn the_table_follows_the_bridges_that_exist() {
    in_thread_netns(&[], || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let server = RaServer::new();
            let err = server
                .serve("nope0", config())
                .expect_err("no such interface");
            assert!(err.to_string().contains("'nope0'"), "{err}");
            assert!(server.is_empty());

            ip(&["link", "add", "vra0", "type", "bridge"]);
            ip(&["link", "set", "vra0", "up"]);
            ip(&["link", "add", "vra1", "type", "bridge"]);
            server.serve("vra0", config()).expect("serve vra0");
            server.serve("vra1", config()).expect("serve vra1");
            // Serving the same again changes nothing.
            server.serve("vra1", config()).expect("serve vra1 again");
            assert_eq!(server.len(), 2);

            ip(&["link", "del", "vra0"]);
            // The next advertisement of vra0 is due 4 s after its first; vra1 (down: its
            // sends fail too) exists and stays.
            let mut waited = Duration::ZERO;
            while server.len() != 1 && waited < Duration::from_secs(20) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                waited += Duration::from_millis(100);
            }
            assert_eq!(server.len(), 1, "the deleted bridge was not forgotten");

            server.withdraw("vra1");
            assert!(server.is_empty());
            server.withdraw("vra1"); // nothing left: a no-op
        });
    });
}

//! The web console (`virtnetd --web-listen`) in a real headless Chromium (Debian's `chromium`
//! driven through Debian's `chromedriver` by `tests/web/webdriver.py`, raw W3C WebDriver from
//! Python's standard library), and its access checks with a raw HTTP client.
//!
//! Everything runs inside the lab's host namespace: virtnetd, chromedriver and Chromium, which
//! only ever connects to 127.0.0.1 there. Screenshots are kept under
//! `target/web-console-artifacts/`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use virtnet_testkit::dhcp::udhcpc_script;
use virtnet_testkit::{Daemon, Lab, Netns, NsChild};

/// Where the console listens inside the namespace.
const WEB_PORT: u16 = 8080;
/// Where chromedriver listens inside the namespace.
const DRIVER_PORT: u16 = 9515;
/// The guest's MAC (busybox udhcpc on a veth in its own namespace).
const GUEST_MAC: &str = "52:54:00:5e:00:02";
/// The MAC of the port `attach-interface` makes for `vm1`.
const PORT_MAC: &str = "52:54:00:5e:00:01";
/// Generous bound for a browser-side condition; not a timing assertion (a slow machine only
/// waits longer).
const PAGE_WAIT: &str = "60";

fn network_xml() -> &'static str {
    "<network><name>lab</name><forward mode='nat'/><bridge name='vnweb0'/>\
     <ip address='192.168.151.1' netmask='255.255.255.0'><dhcp>\
     <range start='192.168.151.100' end='192.168.151.199'/></dhcp></ip></network>"
}

/// The console's daemon in the lab's host namespace.
fn console_daemon(lab: &Lab) -> Daemon {
    let listen = format!("127.0.0.1:{WEB_PORT}");
    Daemon::start_in_with(lab.host(), &["--web-listen", &listen])
}

/// The token, from `virtnet web-token` (as root on the read-write socket).
fn token(daemon: &Daemon) -> String {
    let token = daemon.cli_ok(&["web-token"]).trim().to_string();
    assert_eq!(token.len(), 64, "a 256-bit token in hex: {token:?}");
    token
}

/// Screenshots and the browser's profile: `target/web-console-artifacts/`.
fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/web-console-artifacts");
    std::fs::create_dir_all(&dir).expect("create the artifacts directory");
    dir
}

/// A Chromium session driven through chromedriver in `ns`; chromedriver (and with it the
/// browser) is ended when dropped.
struct Browser {
    ns: Netns,
    session: PathBuf,
    profile: tempfile::TempDir,
    driver: Option<NsChild>,
}

impl Browser {
    fn start(ns: &Netns) -> Browser {
        let driver = ns.spawn([
            "/usr/bin/chromedriver".to_string(),
            format!("--port={DRIVER_PORT}"),
        ]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ns.tcp_connect_timeout("127.0.0.1", DRIVER_PORT, Duration::from_millis(200)) {
            assert!(driver.try_wait().is_none(), "chromedriver exited early");
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::Builder::new()
            .prefix("vn-chromium")
            .tempdir()
            .expect("profile dir");
        let session = profile.path().join("session");
        let browser = Browser {
            ns: ns.clone(),
            session,
            driver: Some(driver),
            profile,
        };
        let data_dir = browser.profile.path().join("user-data");
        browser.step(&["new", &data_dir.to_string_lossy()]);
        browser
    }

    /// Runs one driver step; its JSON answer. Panics with the script's error.
    fn step(&self, args: &[&str]) -> serde_json::Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web/webdriver.py");
        let mut all = vec![
            "python3".to_string(),
            script.to_string_lossy().into_owned(),
            format!("http://127.0.0.1:{DRIVER_PORT}"),
            self.session.to_string_lossy().into_owned(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        let out = self.ns.exec(all);
        assert!(
            out.status.success(),
            "webdriver step {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        serde_json::from_slice(&out.stdout).expect("the step answers JSON")
    }

    /// Waits until the page's `expr` is truthy; its value.
    fn wait(&self, expr: &str) -> serde_json::Value {
        self.step(&["wait", expr, PAGE_WAIT])
    }

    fn eval(&self, expr: &str) -> serde_json::Value {
        self.step(&["eval", expr])
    }

    fn screenshot(&self, name: &str) {
        let path = artifacts().join(name);
        let bytes = self.step(&["screenshot", &path.to_string_lossy()]);
        assert!(
            bytes.as_u64().unwrap_or(0) > 1000,
            "screenshot {name} is empty"
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Best effort: the session's end closes Chromium; chromedriver is ended below anyway.
        let _ = self.ns.exec([
            "python3".to_string(),
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/web/webdriver.py")
                .to_string_lossy()
                .into_owned(),
            format!("http://127.0.0.1:{DRIVER_PORT}"),
            self.session.to_string_lossy().into_owned(),
            "quit".to_string(),
        ]);
        if let Some(driver) = self.driver.take() {
            driver.terminate(Duration::from_secs(5));
        }
    }
}

/// The network's state from the CLI (`net-info --json`).
fn active(daemon: &Daemon, network: &str) -> bool {
    let info: serde_json::Value =
        serde_json::from_str(&daemon.cli_ok(&["net-info", network, "--json"])).expect("json");
    info["active"].as_bool().expect("active flag")
}

#[test]
fn console_in_chromium_shows_topology_live_leases_and_stops_a_network() {
    let lab = Lab::new("web_console_chromium");
    let daemon = console_daemon(&lab);
    let browser = Browser::start(lab.host());
    let base = format!("http://127.0.0.1:{WEB_PORT}");

    // The page loads with the token (the login takes it out of the address bar).
    let url = browser.step(&["open", &format!("{base}/login?token={}", token(&daemon))]);
    assert_eq!(url, serde_json::json!(format!("{base}/")));
    browser.wait("window.virtnetRefreshes >= 1 && document.getElementById('feed-state').textContent === 'live'");
    // Set once: a reload of the page would lose it, so its presence at the end proves the
    // data came in live.
    browser.eval("(window.virtnetMarker = 'no reload', true)");

    // A network started from the CLI shows in the SVG topology, with a port and its guest.
    let xml = daemon.dir().join("lab.xml");
    std::fs::write(&xml, network_xml()).expect("write the network");
    daemon.cli_ok(&["net-define", &xml.to_string_lossy()]);
    daemon.cli_ok(&["net-start", "lab"]);
    daemon.cli_ok(&[
        "attach-interface",
        "vm1",
        "network",
        "lab",
        "--mac",
        PORT_MAC,
    ]);
    browser.wait(
        "document.querySelector('#topology-svg g.bridge.active[data-bridge=\"vnweb0\"]') !== null",
    );
    // The port's creation is no event: the next event (the lease below) brings it too.

    // A real DHCP client on a veth in the bridge: its lease appears without a reload.
    let guest = lab.guest_unattached();
    guest
        .ns()
        .ip_ok(["link", "set", "eth0", "address", GUEST_MAC]);
    guest.attach("vnweb0");
    let script = udhcpc_script(lab.tmp_dir());
    guest.udhcpc(&script, "webguest");
    let leased = guest.ipv4_addrs();
    assert_eq!(leased.len(), 1, "udhcpc applied one address: {leased:?}");
    let addr = leased[0].to_string();
    let shown = browser.wait(&format!(
        "(() => {{ const g = document.querySelector('#topology-svg g.guest[data-mac=\"{GUEST_MAC}\"]'); \
           return g && g.dataset.addresses; }})()"
    ));
    assert_eq!(
        shown,
        serde_json::json!(addr),
        "the guest's lease in the topology"
    );
    browser.wait(&format!(
        "document.querySelector('#leases tr[data-mac=\"{GUEST_MAC}\"]') !== null"
    ));
    browser.wait(&format!(
        "document.querySelector('#topology-svg g.port[data-port]') !== null && \
         document.querySelector('#topology-svg g.guest[data-mac=\"{PORT_MAC}\"]') !== null"
    ));
    browser.wait(
        "[...document.querySelectorAll('#events li')].some(li => li.textContent.includes('lease'))",
    );
    assert_eq!(
        browser.eval("window.virtnetMarker"),
        serde_json::json!("no reload"),
        "the page was not reloaded"
    );
    browser.screenshot("1-lease-live.png");

    // Stop from the page: the network is stopped (seen through the CLI), and the page says so.
    browser.step(&["click", "button[data-action='stop'][data-network='lab']"]);
    browser.wait(
        "document.querySelector('#networks tr[data-network=\"lab\"]').dataset.state === 'inactive'",
    );
    assert!(!active(&daemon, "lab"), "the page's stop took effect");
    assert!(
        !lab.host().link_names().iter().any(|l| l == "vnweb0"),
        "the bridge is gone"
    );
    browser.screenshot("2-stopped-from-page.png");

    // Define from the page goes through the API's checks: a bad definition is refused with
    // the API's message and defines nothing.
    browser.eval(
        "(document.getElementById('define-xml').value = \"<network><name>bad</name><ip address='10.9.0.1' netmask='255.0.255.0'/></network>\", true)",
    );
    browser.step(&["click", "#define-button"]);
    let message = browser.wait(
        "document.getElementById('status').className === 'error' && document.getElementById('status').textContent",
    );
    assert!(
        message.as_str().unwrap_or("").starts_with("define: "),
        "{message}"
    );
    let list = daemon.cli_ok(&["net-list", "--all", "--name"]);
    assert!(
        !list.lines().any(|l| l.trim() == "bad"),
        "nothing defined: {list}"
    );
    assert_eq!(
        browser.eval("window.virtnetMarker"),
        serde_json::json!("no reload")
    );
    browser.screenshot("3-define-refused.png");
}

/// One raw HTTP/1.1 request from inside `ns`; the status and the whole answer.
fn http(ns: &Netns, request: String) -> (u16, String) {
    ns.in_ns(move || {
        let mut s = TcpStream::connect(("127.0.0.1", WEB_PORT)).expect("connect to the console");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        s.write_all(request.as_bytes()).expect("send");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("read");
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status in {answer:?}"));
        (status, answer)
    })
}

fn get(ns: &Netns, path: &str, cookie: Option<&str>) -> (u16, String) {
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: virtnet_web={c}\r\n"));
    http(
        ns,
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{WEB_PORT}\r\n{cookie}Connection: close\r\n\r\n"),
    )
}

fn post_destroy(ns: &Netns, cookie: &str, origin: Option<&str>) -> (u16, String) {
    let body = r#"{"networks":["lab"]}"#;
    let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
    http(
        ns,
        format!(
            "POST /api/v1/destroy HTTP/1.1\r\nHost: 127.0.0.1:{WEB_PORT}\r\n\
             Cookie: virtnet_web={cookie}\r\n{origin}Content-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[test]
fn console_refuses_missing_and_wrong_tokens_and_foreign_origins() {
    let lab = Lab::new("web_console_auth");
    let daemon = console_daemon(&lab);
    let ns = lab.host();
    let token = token(&daemon);
    let xml = daemon.dir().join("lab.xml");
    std::fs::write(&xml, network_xml()).expect("write the network");
    daemon.cli_ok(&["net-define", &xml.to_string_lossy()]);
    daemon.cli_ok(&["net-start", "lab"]);

    // No token, a wrong token: 401 everywhere, the login included.
    let mut wrong = token.clone();
    wrong.replace_range(0..1, if token.starts_with('0') { "1" } else { "0" });
    for path in ["/", "/app.js", "/events", "/api/v1/networks"] {
        assert_eq!(get(ns, path, None).0, 401, "GET {path} without a token");
        assert_eq!(
            get(ns, path, Some(&wrong)).0,
            401,
            "GET {path} with a wrong token"
        );
    }
    assert_eq!(get(ns, &format!("/login?token={wrong}"), None).0, 401);
    assert_eq!(get(ns, "/login", None).0, 401);

    // The right token: a cookie that is HttpOnly and SameSite=Strict, and the data.
    let (status, answer) = get(ns, &format!("/login?token={token}"), None);
    assert_eq!(status, 303, "{answer}");
    let cookie_line = answer
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie in {answer}"));
    assert!(cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"));
    let (status, body) = get(ns, "/api/v1/networks", Some(&token));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"lab\""), "{body}");

    // A change without the console's Origin is refused and changes nothing; with it, it is
    // made (through the API: its answer).
    let (status, answer) = post_destroy(ns, &token, None);
    assert_eq!(status, 403, "no Origin: {answer}");
    let (status, answer) = post_destroy(ns, &token, Some("http://evil.example"));
    assert_eq!(status, 403, "foreign Origin: {answer}");
    assert!(active(&daemon, "lab"), "a refused change changed nothing");
    let (status, answer) = post_destroy(ns, &wrong, Some(&format!("http://127.0.0.1:{WEB_PORT}")));
    assert_eq!(status, 401, "wrong token with the right Origin: {answer}");
    assert!(active(&daemon, "lab"));
    let (status, answer) = post_destroy(ns, &token, Some(&format!("http://127.0.0.1:{WEB_PORT}")));
    assert_eq!(status, 200, "{answer}");
    assert!(!active(&daemon, "lab"));

    // Routes the console does not offer stay refused even with the token.
    let (status, _) = get(ns, "/api/v1/web-token", Some(&token));
    assert_eq!(status, 403);

    // The token is root's: not on the read-only socket, and in a 0600 file.
    let ro = daemon.cli(&["--readonly", "web-token"]);
    assert!(
        !ro.status.success(),
        "the read-only socket hands out no token"
    );
    assert!(String::from_utf8_lossy(&ro.stderr).contains("only root"));
    let file = daemon.run_dir().join("web-token");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&file).expect("token file").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&file).expect("read").trim(), token);
}

#[test]
fn web_token_says_when_the_console_is_off() {
    let ns = Netns::new("webo");
    let daemon = Daemon::start_in(&ns);
    let out = daemon.cli(&["web-token"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--web-listen"), "{err}");
    assert!(!daemon.run_dir().join("web-token").exists());
}

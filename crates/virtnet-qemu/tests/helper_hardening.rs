//! `virtnet-bridge-helper` against what an attacker tried (issue 11, findings 4, 5 and 9):
//! a `--br=` that is not a bridge under a permissive ACL, the helper killed at random points
//! (persistent user-owned taps left behind), a user piling up helper ports, and a tap a group
//! could race the caller to.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use virtnet_testkit::{eventually, Daemon, Lab};

fn acl_file(lab: &Lab, text: &str) -> String {
    let p = lab.tmp_dir().join("bridge.conf");
    std::fs::write(&p, text).expect("write the ACL");
    p.to_string_lossy().into_owned()
}

/// A lab whose virtnetd runs with `extra` arguments and the network `default` on virbr0.
fn lab_with(name: &str, extra: &[&str]) -> (Lab, Daemon) {
    let lab = Lab::new(name);
    let daemon = Daemon::start_in_with(lab.host(), extra);
    let net = daemon.define(&nat_network());
    daemon.cli_ok(&["net-start", &net]);
    (lab, daemon)
}

#[test]
fn helper_refuses_a_bridge_that_is_not_one_even_when_the_acl_allows_all() {
    let (lab, daemon) = lab_with_default("helper_nobr");
    let acl = acl_file(&lab, "allow all\n");
    let socket = daemon.socket().to_string_lossy().into_owned();
    lab.host().ip_ok([
        "link", "add", "vntv0", "type", "veth", "peer", "name", "vntv1",
    ]);
    lab.host()
        .ip_ok(["tuntap", "add", "dev", "vntt0", "mode", "tap"]);
    let before = lab.host().link_names();
    for not_a_bridge in ["vntv0", "vntt0", "lo"] {
        let env = [
            ("VIRTNET_SOCKET", socket.as_str()),
            ("VIRTNET_BRIDGE_CONF", acl.as_str()),
            ("VIRTNET_DOMAIN", "vm-nobr"),
        ];
        let run = run_helper(lab.host(), &[HELPER.to_string()], not_a_bridge, &env);
        assert!(
            !run.output.status.success(),
            "--br={not_a_bridge} gave a tap"
        );
        assert!(run.fd.is_none(), "--br={not_a_bridge} sent a descriptor");
        assert!(
            run.stderr()
                .contains(&format!("'{not_a_bridge}' is not a bridge")),
            "{}",
            run.stderr()
        );
    }
    assert_eq!(lab.host().link_names(), before, "a tap was left behind");
    assert!(client(&daemon).ports(None).expect("ports").is_empty());
}

/// A deterministic pseudo-random sequence (64-bit LCG, Knuth's constants).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}

/// Starts the helper as QEMU does, lets it run `delay`, SIGKILLs it, and closes our end
/// (and any descriptor it sent), as a QEMU that gave up would. Returns whether the kill
/// landed before the helper exited by itself.
fn run_and_kill(lab: &Lab, env: &[(&str, &str)], delay: Duration) -> bool {
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    let child_fd = theirs.as_raw_fd();
    let mut cmd = lab.host().command([
        HELPER.to_string(),
        "--use-vnet".to_string(),
        format!("--fd={child_fd}"),
        "--br=virbr0".to_string(),
    ]);
    cmd.env_remove("VIRTNET_MAC")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: fcntl is async-signal-safe; it clears close-on-exec on the child's end only.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(child_fd, libc::F_SETFD, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // `ip netns exec` execs the helper: this PID is the helper's once it runs.
    let mut child = cmd.spawn().expect("start the helper");
    drop(theirs);
    std::thread::sleep(delay);
    let killed = matches!(child.try_wait(), Ok(None));
    let _ = child.kill();
    let _ = child.wait();
    // A descriptor sent before the kill dies with our end of the socket.
    drop(ours);
    killed
}

#[test]
fn a_helper_killed_at_random_points_leaves_no_tap_and_no_port() {
    let (lab, daemon) = lab_with_default("helper_kill");
    let acl = acl_file(&lab, "allow virbr0\n");
    let socket = daemon.socket().to_string_lossy().into_owned();
    let base = [
        ("VIRTNET_SOCKET", socket.as_str()),
        ("VIRTNET_BRIDGE_CONF", acl.as_str()),
    ];
    // How long one whole run takes here, to spread the kills over it.
    let started = Instant::now();
    let env: Vec<(&str, &str)> = base
        .iter()
        .copied()
        .chain([("VIRTNET_DOMAIN", "vm-probe")])
        .collect();
    let probe = run_helper(lab.host(), &[HELPER.to_string()], "virbr0", &env);
    assert!(probe.output.status.success(), "{}", probe.stderr());
    drop(probe);
    let span = started.elapsed().as_micros() as u64 * 3 / 2;

    let mut rng = Lcg(0x5eed_0011);
    let mut killed = 0;
    for i in 0..60 {
        let domain = format!("vm-kill-{i}");
        let env: Vec<(&str, &str)> = base
            .iter()
            .copied()
            .chain([("VIRTNET_DOMAIN", domain.as_str())])
            .collect();
        if run_and_kill(&lab, &env, Duration::from_micros(rng.below(span))) {
            killed += 1;
        }
    }
    assert!(killed > 0, "no kill landed while the helper ran");

    // The daemon's sweeper forgets the ports of gone taps and deletes taps never handed over.
    let client = client(&daemon);
    let clean = eventually(Duration::from_secs(60), || {
        let ports = client.ports(None).expect("ports");
        let taps: Vec<String> = lab
            .host()
            .link_names()
            .into_iter()
            .filter(|l| l.starts_with("vnet"))
            .collect();
        ports.is_empty() && taps.is_empty()
    });
    let left = client.ports(None).expect("ports");
    let reaped = daemon.log().matches("never handed over").count();
    let forgotten = daemon.log().matches("tap gone; port forgotten").count();
    eprintln!(
        "{killed} of 60 helpers killed mid-run; the sweeper deleted {reaped} persistent taps \
         and forgot {forgotten} ports of gone taps"
    );
    assert!(
        clean,
        "{killed} of 60 helpers killed mid-run; left: ports {:?}, links {:?}",
        left.iter().map(|p| &p.name).collect::<Vec<_>>(),
        lab.host().link_names()
    );
}

#[test]
fn a_user_holds_at_most_the_configured_number_of_helper_ports() {
    let (lab, daemon) = lab_with("helper_quota", &["--helper-ports-per-user", "2"]);
    let acl = acl_file(&lab, "allow virbr0\n");
    let socket = daemon.socket().to_string_lossy().into_owned();
    let run = |domain: &str| {
        let env = [
            ("VIRTNET_SOCKET", socket.as_str()),
            ("VIRTNET_BRIDGE_CONF", acl.as_str()),
            ("VIRTNET_DOMAIN", domain),
        ];
        run_helper(lab.host(), &[HELPER.to_string()], "virbr0", &env)
    };
    let first = run("vm-a");
    let second = run("vm-b");
    for r in [&first, &second] {
        assert!(r.output.status.success(), "{}", r.stderr());
    }
    let third = run("vm-c");
    assert!(!third.output.status.success(), "a third port was made");
    assert!(third.fd.is_none());
    assert!(
        third.stderr().contains("owner_uid") && third.stderr().contains("--helper-ports-per-user"),
        "{}",
        third.stderr()
    );
    assert_eq!(client(&daemon).ports(None).expect("ports").len(), 2);

    // A guest exits: its tap goes, and the user may have a port again.
    let (name, _) =
        virtnet_qemu::tun::attached(first.fd.as_ref().expect("fd").as_raw_fd()).expect("TUNGETIFF");
    drop(first);
    assert!(wait_link_gone(lab.host(), &name));
    let fourth = run("vm-d");
    assert!(fourth.output.status.success(), "{}", fourth.stderr());
}

#[test]
fn the_setuid_helpers_tap_belongs_to_the_callers_uid_and_no_group() {
    let (lab, daemon) = lab_with_default("helper_owner");
    let suid = SetuidHelper::new(&daemon, "allow virbr0\n");
    let mut argv = suid.wrapper(Some((NOBODY, NOBODY)));
    argv.push(suid.helper_path());
    let run = run_helper(lab.host(), &argv, "virbr0", &[("VIRTNET_DOMAIN", "vm-own")]);
    assert!(run.output.status.success(), "{}", run.stderr());
    let fd = run.fd.expect("a descriptor");
    let (name, _) = virtnet_qemu::tun::attached(fd.as_raw_fd()).expect("TUNGETIFF");
    let sys = |attr: &str| {
        lab.host()
            .run_ok(["cat", &format!("/sys/class/net/{name}/{attr}")])
            .trim()
            .to_string()
    };
    assert_eq!(sys("owner"), NOBODY.to_string());
    assert_eq!(sys("group"), "-1", "the tap has a group others may share");
    let ports = client(&daemon).ports(Some("vm-own")).expect("ports");
    assert_eq!(
        (ports[0].owner_uid, ports[0].owner_gid),
        (Some(NOBODY), None)
    );
}

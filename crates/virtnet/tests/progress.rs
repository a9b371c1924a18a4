//! Progress on a terminal (issue 16, item 5): `net-start` of several networks counts them on
//! a pseudo-terminal, and draws nothing (no carriage return, no escape) with `-q` or when its
//! output goes to pipes, so scripts read exactly what they read before.

mod common;

use common::Daemon;
use virtnet_testkit::pty::OnPty;

/// "Erase in line": what the progress line writes before each redraw and when it is cleared.
const ERASE: &str = "\x1b[K";

/// Defines isolated networks p0..p{n-1}, each on its own bridge and /24.
fn define_networks(d: &Daemon, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let name = format!("p{i}");
            let xml = format!(
                "<network><name>{name}</name><bridge name='vnp{i}'/>\
                 <ip address='10.77.{i}.1' prefix='24'/></network>"
            );
            let file = d.file(&format!("{name}.xml"), &xml);
            let out = d.run(&["-q", "net-define", file.to_str().expect("utf-8 path")]);
            assert_eq!(out.code, 0, "{}", out.stderr);
            name
        })
        .collect()
}

fn active(d: &Daemon) -> String {
    d.run(&["net-list", "--name"]).stdout
}

#[test]
fn net_start_of_several_networks_counts_them_on_a_terminal() {
    let d = Daemon::start();
    let names = define_networks(&d, 3);
    let mut args = vec!["net-start"];
    args.extend(names.iter().map(String::as_str));
    let (code, screen) = OnPty::spawn(d.cmd(&args)).finish();
    assert_eq!(code, 0, "{screen:?}");
    for (i, name) in names.iter().enumerate() {
        assert!(
            screen.contains(&format!("Starting networks {}/3: {name}", i + 1)),
            "no progress for {name}: {screen:?}"
        );
        assert!(
            screen.contains(&format!("Network {name} started")),
            "{screen:?}"
        );
    }
    // The line is erased before each message, so no message shares a line with it.
    assert!(
        screen.contains(&format!("\r{ERASE}Network p2 started")),
        "{screen:?}"
    );
    let listed = active(&d);
    assert!(
        names.iter().all(|n| listed.contains(n.as_str())),
        "{listed}"
    );
}

#[test]
fn net_start_draws_nothing_with_quiet_or_without_a_terminal() {
    let d = Daemon::start();
    let names = define_networks(&d, 4);

    let mut quiet = vec!["-q", "net-start"];
    quiet.extend(names[..2].iter().map(String::as_str));
    let (code, screen) = OnPty::spawn(d.cmd(&quiet)).finish();
    assert_eq!(code, 0, "{screen:?}");
    assert!(
        !screen.contains(ERASE),
        "-q drew a progress line: {screen:?}"
    );
    assert!(!screen.contains("Starting networks"), "{screen:?}");

    // Pipes: what virsh prints, line by line, nothing else.
    let mut piped = vec!["net-start"];
    piped.extend(names[2..].iter().map(String::as_str));
    let out = d.run(&piped);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "Network p2 started\nNetwork p3 started\n\n");
    assert_eq!(out.stderr, "");
}

#[test]
fn net_start_goes_on_after_a_failure_and_exits_1() {
    let d = Daemon::start();
    let names = define_networks(&d, 2);
    let out = d.run(&["net-start", &names[0], "nosuch", &names[1]]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        out.stdout, "Network p0 started\nNetwork p1 started\n\n",
        "{out:?}"
    );
    assert!(
        out.stderr
            .starts_with("error: failed to get network 'nosuch'\n"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .ends_with("error: 1 of 3 networks failed to start\n"),
        "{}",
        out.stderr
    );
    let listed = active(&d);
    assert!(listed.contains("p0") && listed.contains("p1"), "{listed}");
}

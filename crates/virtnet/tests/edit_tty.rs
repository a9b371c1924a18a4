//! `net-edit` on a terminal: virsh's "Try again?" prompt, driven through a pseudo-terminal.

mod common;

use common::{example, Daemon};
use virtnet_testkit::pty::OnPty;

fn define_default(d: &Daemon) {
    let path = example("default-nat.xml");
    let out = d.run(&["-q", "net-define", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// An editor that breaks the address the first time and makes a valid change the second.
fn two_step_editor(d: &Daemon) -> String {
    let counter = d.dir.path().join("editor-runs");
    let script = d.script(
        "two-step",
        &format!(
            "if [ -e '{c}' ]; then\n\
               sed -i \"s/address='192.168.122.300'/address='192.168.122.1'/; s/192.168.122.254/192.168.122.222/\" \"$1\"\n\
             else\n\
               touch '{c}'\n\
               sed -i \"s/address='192.168.122.1'/address='192.168.122.300'/\" \"$1\"\n\
             fi",
            c = counter.display()
        ),
    );
    script.display().to_string()
}

#[test]
fn refused_edit_asks_and_reopens_the_editor() {
    let d = Daemon::start();
    define_default(&d);
    let mut cmd = d.cmd(&["net-edit", "default"]);
    cmd.env("EDITOR", two_step_editor(&d));
    let mut pty = OnPty::spawn(cmd);

    pty.expect("error: ");
    pty.expect("Failed. Try again? [y,n,f,?]: ");
    pty.send("?");
    pty.expect("y - yes, start editor again\r\nn - no, throw away my changes\r\nf - force, try to redefine again\r\n? - print this help\r\n");
    pty.expect("Failed. Try again? [y,n,f,?]: ");
    pty.send("y");
    pty.expect("Network default XML configuration edited.");
    assert_eq!(pty.wait(), 0);

    let xml = d.run(&["net-dumpxml", "default"]);
    assert!(
        xml.stdout.contains("end='192.168.122.222'"),
        "{}",
        xml.stdout
    );
    assert!(
        xml.stdout.contains("address='192.168.122.1'"),
        "{}",
        xml.stdout
    );
}

#[test]
fn refused_edit_answer_no_gives_up() {
    let d = Daemon::start();
    define_default(&d);
    let mut cmd = d.cmd(&["net-edit", "default"]);
    cmd.env("EDITOR", two_step_editor(&d));
    let mut pty = OnPty::spawn(cmd);
    pty.expect("Failed. Try again? [y,n,f,?]: ");
    pty.send("n");
    assert_eq!(pty.wait(), 1);
    let xml = d.run(&["net-dumpxml", "default"]);
    assert!(
        xml.stdout.contains("end='192.168.122.254'"),
        "{}",
        xml.stdout
    );
}

#[test]
fn concurrent_change_asks_and_force_applies() {
    let d = Daemon::start();
    define_default(&d);
    let other = d.file(
        "other.xml",
        &std::fs::read_to_string(example("default-nat.xml"))
            .expect("example")
            .replace("192.168.122.254", "192.168.122.100"),
    );
    let editor = d.script(
        "race",
        &format!(
            "'{}' -q net-define '{}'\nsed -i \"s/start='192.168.122.2'/start='192.168.122.10'/\" \"$1\"",
            common::virtnet_bin().display(),
            other.display()
        ),
    );
    let mut cmd = d.cmd(&["net-edit", "default"]);
    cmd.env("EDITOR", editor);
    let mut pty = OnPty::spawn(cmd);
    pty.expect(
        "error: network default was changed while you were editing; your edit was not applied",
    );
    pty.expect("The XML configuration was changed by another user. Try again? [y,n,f,?]: ");
    pty.send("f");
    pty.expect("Network default XML configuration edited.");
    assert_eq!(pty.wait(), 0);
    // The user's text won, on top of the fresh ETag.
    let xml = d.run(&["net-dumpxml", "default"]);
    assert!(
        xml.stdout
            .contains("<range start='192.168.122.10' end='192.168.122.254'/>"),
        "{}",
        xml.stdout
    );
}

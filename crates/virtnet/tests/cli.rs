//! The `virtnet` binary against a real `virtnetd`: exact output, as virsh 9 prints it.
//!
//! virsh prints a blank line (`vshPrintExtra("\n")`) after every command it ran, whether the
//! command succeeded or not; `-q` drops it together with the table header and informational
//! messages.

mod common;

use common::{example, Daemon};

const DEFAULT_UUID: &str = "c6b8b176-175f-4957-a84e-d2283850eeb7";

fn define_default(d: &Daemon) -> String {
    let file = example("default-nat.xml");
    let path = file.display().to_string();
    d.run(&["net-define", &path])
        .ok(&format!("Network default defined from {path}\n\n"));
    path
}

#[test]
fn empty_list() {
    let d = Daemon::start();
    d.run(&["net-list"]).ok(concat!(
        " Name   State   Autostart   Persistent\n",
        "----------------------------------------\n",
        "\n"
    ));
    d.run(&["net-list", "--all"]).ok(concat!(
        " Name   State   Autostart   Persistent\n",
        "----------------------------------------\n",
        "\n"
    ));
    d.run(&["-q", "net-list", "--all"]).ok("");
    d.run(&["net-list", "--all", "--name"]).ok("\n");
    d.run(&["net-list", "--all", "--json"]).ok("[]\n");
}

#[test]
fn define_list_info_uuid_name_undefine() {
    let d = Daemon::start();
    define_default(&d);

    // Defined, not started: only --all and --inactive show it.
    d.run(&["net-list"]).ok(concat!(
        " Name   State   Autostart   Persistent\n",
        "----------------------------------------\n",
        "\n"
    ));
    let table = concat!(
        " Name      State      Autostart   Persistent\n",
        "----------------------------------------------\n",
        " default   inactive   no          yes\n",
        "\n"
    );
    d.run(&["net-list", "--all"]).ok(table);
    d.run(&["net-list", "--inactive"]).ok(table);
    d.run(&["net-list", "--all", "--persistent"]).ok(table);
    d.run(&["net-list", "--all", "--transient"]).ok(concat!(
        " Name   State   Autostart   Persistent\n",
        "----------------------------------------\n",
        "\n"
    ));
    d.run(&["-q", "net-list", "--all"])
        .ok(" default   inactive   no   yes\n");
    d.run(&["net-list", "--all", "--name"]).ok("default\n\n");
    d.run(&["net-list", "--all", "--uuid"])
        .ok(&format!("{DEFAULT_UUID}\n\n"));

    d.run(&["net-info", "default"]).ok(&format!(
        "Name:           default\n\
         UUID:           {DEFAULT_UUID}\n\
         Active:         no\n\
         Persistent:     yes\n\
         Autostart:      no\n\
         Bridge:         virbr0\n\
         \n"
    ));
    // By UUID too.
    let by_uuid = d.run(&["net-info", DEFAULT_UUID]);
    assert!(by_uuid.stdout.starts_with("Name:           default\n"));

    d.run(&["net-uuid", "default"])
        .ok(&format!("{DEFAULT_UUID}\n\n"));
    d.run(&["-q", "net-uuid", "default"])
        .ok(&format!("{DEFAULT_UUID}\n"));
    d.run(&["net-name", DEFAULT_UUID]).ok("default\n\n");

    d.run(&["net-undefine", "default"])
        .ok("Network default has been undefined\n\n");
    d.run(&["-q", "net-list", "--all"]).ok("");
}

#[test]
fn info_and_list_json() {
    let d = Daemon::start();
    define_default(&d);
    let out = d.run(&["net-info", "default", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(v["name"], "default");
    assert_eq!(v["uuid"], DEFAULT_UUID);
    assert_eq!(v["active"], false);
    assert_eq!(v["persistent"], true);
    assert_eq!(v["bridge"], "virbr0");

    let out = d.run(&["net-list", "--all", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(v.as_array().map(Vec::len), Some(1));
    assert_eq!(v[0]["name"], "default");

    let out = d.run(&["net-dumpxml", "default", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(v["name"], "default");
}

#[test]
fn dumpxml() {
    let d = Daemon::start();
    define_default(&d);
    let expected = "<network>
  <name>default</name>
  <uuid>c6b8b176-175f-4957-a84e-d2283850eeb7</uuid>
  <forward mode='nat'/>
  <bridge name='virbr0' stp='on' delay='0'/>
  <mac address='52:54:00:1e:d8:35'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>
";
    d.run(&["net-dumpxml", "default", "--inactive"])
        .ok(&format!("{expected}\n"));
    d.run(&["-q", "net-dumpxml", "default"]).ok(expected);
}

#[test]
fn autostart() {
    let d = Daemon::start();
    define_default(&d);
    d.run(&["net-autostart", "default"])
        .ok("Network default marked as autostarted\n\n");
    d.run(&["net-list", "--all", "--autostart"]).ok(concat!(
        " Name      State      Autostart   Persistent\n",
        "----------------------------------------------\n",
        " default   inactive   yes         yes\n",
        "\n"
    ));
    d.run(&["-q", "net-list", "--all", "--no-autostart"]).ok("");
    // virsh names the network as it was given.
    d.run(&["net-autostart", DEFAULT_UUID, "--disable"])
        .ok(&format!(
            "Network {DEFAULT_UUID} unmarked as autostarted\n\n"
        ));
    d.run(&["-q", "net-autostart", "default"]).ok("");
    let info = d.run(&["net-info", "default"]);
    assert!(
        info.stdout.contains("\nAutostart:      yes\n"),
        "{}",
        info.stdout
    );
}

#[test]
fn create_transient() {
    let d = Daemon::start();
    let file = example("isolated.xml");
    let path = file.display().to_string();
    d.run(&["net-create", &path])
        .ok(&format!("Network isolated created from {path}\n\n"));
    d.run(&["net-list"]).ok(concat!(
        " Name       State    Autostart   Persistent\n",
        "---------------------------------------------\n",
        " isolated   active   no          no\n",
        "\n"
    ));
    d.run(&["-q", "net-list", "--transient"])
        .ok(" isolated   active   no   no\n");
    d.run(&["-q", "net-list", "--persistent"]).ok("");
    let info = d.run(&["net-info", "isolated"]);
    assert!(
        info.stdout
            .contains("Active:         yes\nPersistent:     no\n"),
        "{}",
        info.stdout
    );
}

#[test]
fn start_destroy_and_bridges() {
    // The daemon runs in a private network namespace (see `common::Daemon`), so the bridge
    // really is created there.
    let d = Daemon::start();
    define_default(&d);
    d.run(&["net-start", "default"])
        .ok("Network default started\n\n");
    d.run(&["net-start", "default"]).fails(
        concat!(
            "error: Failed to start network default\n",
            "error: Requested operation is not valid: network 'default' is already active\n"
        ),
        "\n",
    );
    d.run(&["-q", "net-list"])
        .ok(" default   active   no   yes\n");
    let shown = d.run(&["iface-bridges"]);
    assert!(
        shown.stdout.starts_with(
            "bridge name\tbridge id\t\tSTP enabled\tinterfaces\nvirbr0\t\t8000.525400"
        ),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.ends_with("\tyes\t\t\n\n"),
        "{:?}",
        shown.stdout
    );
    let json = d.run(&["iface-bridges", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(v[0]["name"], "virbr0");
    assert_eq!(v[0]["stp"], true);
    d.run(&["net-destroy", "default"])
        .ok("Network default destroyed\n\n");
    d.run(&["net-destroy", "default"]).fails(
        concat!(
            "error: Failed to destroy network default\n",
            "error: Requested operation is not valid: network 'default' is not active\n"
        ),
        "\n",
    );
    d.run(&["net-destroy", "nosuch"]).fails(
        concat!(
            "error: failed to get network 'nosuch'\n",
            "error: Network not found: no network with matching name 'nosuch'\n"
        ),
        "\n",
    );
    d.run(&["iface-bridges"])
        .ok("bridge name\tbridge id\t\tSTP enabled\tinterfaces\n\n");
}

#[test]
fn lookup_errors() {
    let d = Daemon::start();
    for verb in [
        "net-info",
        "net-dumpxml",
        "net-undefine",
        "net-autostart",
        "net-edit",
    ] {
        d.run(&[verb, "foo"]).fails(
            "error: failed to get network 'foo'\n\
             error: Network not found: no network with matching name 'foo'\n",
            "\n",
        );
    }
    d.run(&["net-uuid", "foo"]).fails(
        "error: failed to get network 'foo'\n\
         error: Network not found: no network with matching name 'foo'\n",
        "\n",
    );
    d.run(&["-q", "net-info", "foo"]).fails(
        "error: failed to get network 'foo'\n\
         error: Network not found: no network with matching name 'foo'\n",
        "",
    );
    // net-name only looks a UUID-shaped argument up.
    d.run(&["net-name", "foo"])
        .fails("error: failed to get network 'foo'\n", "\n");
    let missing = "00000000-1111-2222-3333-444444444444";
    d.run(&["net-name", missing]).fails(
        &format!(
            "error: failed to get network '{missing}'\n\
             error: Network not found: no network with matching uuid '{missing}'\n"
        ),
        "\n",
    );
}

#[test]
fn define_errors() {
    let d = Daemon::start();
    let missing = d.dir.path().join("missing.xml");
    let missing = missing.display().to_string();
    d.run(&["net-define", &missing]).fails(
        &format!("error: Failed to open file '{missing}': No such file or directory\n"),
        "\n",
    );
    d.run(&["net-create", &missing]).fails(
        &format!("error: Failed to open file '{missing}': No such file or directory\n"),
        "\n",
    );

    let bad = d.file("bad.xml", "<network><name>x</name>");
    let bad = bad.display().to_string();
    let out = d.run(&["net-define", &bad]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with(&format!(
            "error: Failed to define network from {bad}\nerror: "
        )),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 2, "{}", out.stderr);
    assert_eq!(out.stdout, "\n");

    let out = d.run(&["net-create", &bad]);
    assert!(
        out.stderr.starts_with(&format!(
            "error: Failed to create network from {bad}\nerror: "
        )),
        "{}",
        out.stderr
    );

    d.run(&["net-list", "--name", "--uuid"]).fails(
        "error: Only one argument from --table, --name and --uuid may be specified.\n",
        "\n",
    );
}

#[test]
fn daemon_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("virtnet.sock");
    let out = std::process::Command::new(common::virtnet_bin())
        .args(["--connect"])
        .arg(&sock)
        .args(["net-list", "--all"])
        .output()
        .expect("run virtnet");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: failed to connect to the daemon at {}: No such file or directory (is virtnetd running?)\n",
            sock.display()
        )
    );
}

#[test]
fn edit_with_scripted_editor() {
    let d = Daemon::start();
    define_default(&d);

    // Unchanged.
    d.run_with_editor("true", &["net-edit", "default"])
        .ok("Network default XML configuration not changed.\n\n");

    // Changed.
    let editor = d.script(
        "shrink-range",
        "sed -i 's/192.168.122.254/192.168.122.200/' \"$1\"",
    );
    d.run_with_editor(editor.to_str().unwrap(), &["net-edit", "default"])
        .ok("Network default XML configuration edited.\n\n");
    let xml = d.run(&["net-dumpxml", "default", "--inactive"]);
    assert!(
        xml.stdout
            .contains("<range start='192.168.122.2' end='192.168.122.200'/>"),
        "{}",
        xml.stdout
    );

    // VISUAL wins over EDITOR, and the editor may carry arguments.
    let out = d
        .cmd(&["-q", "net-edit", "default"])
        .env("VISUAL", "sed -i s/192.168.122.200/192.168.122.199/")
        .env("EDITOR", "false")
        .output()
        .expect("run virtnet");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    let xml = d.run(&["net-dumpxml", "default"]);
    assert!(
        xml.stdout.contains("end='192.168.122.199'"),
        "{}",
        xml.stdout
    );
}

#[test]
fn edit_errors_without_a_terminal() {
    let d = Daemon::start();
    define_default(&d);

    // A definition the daemon refuses: the error, and exit 1 (no terminal to ask on).
    let editor = d.script(
        "break-ip",
        "sed -i \"s/address='192.168.122.1'/address='192.168.122.300'/\" \"$1\"",
    );
    let out = d.run_with_editor(editor.to_str().unwrap(), &["net-edit", "default"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .starts_with("error: Failed to edit network default\nerror: "),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, "\n");
    // Nothing changed.
    let xml = d.run(&["net-dumpxml", "default"]);
    assert!(
        xml.stdout.contains("address='192.168.122.1'"),
        "{}",
        xml.stdout
    );

    // The editor fails: virsh's child-process error.
    let out = d.run_with_editor("false", &["net-edit", "default"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with("error: Child process (false ")
            && out.stderr.ends_with(") unexpected exit status 1\n"),
        "{}",
        out.stderr
    );

    // Someone redefines the network while the editor is open: 412, not applied.
    let other = d.file(
        "other.xml",
        &std::fs::read_to_string(example("default-nat.xml"))
            .expect("example")
            .replace("192.168.122.254", "192.168.122.100"),
    );
    let virtnet = common::virtnet_bin();
    let editor = d.script(
        "race",
        &format!(
            "'{}' -q net-define '{}'\nsed -i 's/192.168.122.2/192.168.122.10/' \"$1\"",
            virtnet.display(),
            other.display()
        ),
    );
    d.run_with_editor(editor.to_str().unwrap(), &["net-edit", "default"])
        .fails(
            "error: network default was changed while you were editing; your edit was not applied\n",
            "\n",
        );
    let xml = d.run(&["net-dumpxml", "default"]);
    assert!(
        xml.stdout
            .contains("<range start='192.168.122.2' end='192.168.122.100'/>"),
        "{}",
        xml.stdout
    );
}

#[test]
fn completions_and_man() {
    for shell in ["bash", "zsh", "fish"] {
        let out = std::process::Command::new(common::virtnet_bin())
            .args(["completions", shell])
            .output()
            .expect("run virtnet");
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("net-dumpxml"));
    }
    let out = std::process::Command::new(common::virtnet_bin())
        .arg("man")
        .output()
        .expect("run virtnet");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(".TH virtnet"));
}

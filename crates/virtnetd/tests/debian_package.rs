//! The Debian package (issue 16, item 4): `scripts/package.sh` builds it, and it installs,
//! upgrades and purges cleanly in a clean Debian 12 root (`packaging/debian-root.sh`:
//! debootstrap minbase + systemd + libnftables1, cached once per machine, unpacked fresh here).
//!
//! Every command inside the root runs under `unshare --net --mount --pid --fork` around
//! `chroot`: the maintainer scripts could start virtnetd, and nothing may touch the host's
//! network namespace; the root's /proc and /sys are mounted in the private mount namespace and
//! vanish with it. Install, upgrade and purge run with no systemd in the root (as in an image
//! build): unit state is read with `systemctl --root` and the units are checked with
//! `systemd-analyze verify` inside the root. A second test boots the root with a real systemd
//! (`systemd-nspawn --boot --private-network`, itself inside `unshare --net`) and asks
//! systemctl there, and checks the postinst's opt-in start and default network.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `out`'s status, stdout and stderr, for assertion messages.
fn show(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd`, panicking with its output when it fails; returns stdout.
fn run_ok(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(out.status.success(), "{shown} failed: {}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds the package with `version` into `out`: by default from the test build's `dev`
/// profile (the binaries cargo already built for the tests, so no second full build) and
/// uncompressed (xz spends most of a minute on unstripped binaries);
/// `VIRTNET_PACKAGE_PROFILE=release` tests the package as shipped.
fn build_package(version: &str, out: &Path) -> PathBuf {
    let profile = std::env::var("VIRTNET_PACKAGE_PROFILE").unwrap_or_else(|_| "dev".into());
    let compress = if profile == "release" { "xz" } else { "none" };
    let printed = run_ok(
        Command::new("bash")
            .arg(repo().join("scripts/package.sh"))
            .args([
                "--profile",
                &profile,
                "--compress",
                compress,
                "--version",
                version,
            ])
            .arg("--out")
            .arg(out),
    );
    let deb = PathBuf::from(printed.trim());
    assert_eq!(
        deb.file_name().and_then(|n| n.to_str()),
        Some(format!("virtnet_{version}_amd64.deb").as_str())
    );
    deb
}

/// A clean Debian 12 root, unpacked from the cached tarball; removed when dropped.
struct DebianRoot {
    dir: tempfile::TempDir,
}

impl DebianRoot {
    fn new() -> DebianRoot {
        let tarball = run_ok(Command::new("bash").arg(repo().join("packaging/debian-root.sh")));
        // Under /var/tmp: /tmp may be a small tmpfs, and a root is a few hundred MB.
        let dir = tempfile::Builder::new()
            .prefix("virtnet-debroot.")
            .tempdir_in("/var/tmp")
            .expect("tempdir");
        run_ok(
            Command::new("tar")
                .args(["--numeric-owner", "-xpf", tarball.trim(), "-C"])
                .arg(dir.path()),
        );
        DebianRoot { dir }
    }

    fn path(&self, inside: &str) -> PathBuf {
        self.dir.path().join(inside.trim_start_matches('/'))
    }

    /// Runs `script` with /bin/sh inside the root, in new network, mount and pid namespaces
    /// (the network namespace has only its own loopback: nothing reaches the host's links).
    fn sh(&self, script: &str) -> Output {
        let root = self.dir.path();
        let setup = "mount -t proc proc \"$0/proc\" && mount -t sysfs sysfs \"$0/sys\" && \
                     exec chroot \"$0\" /bin/sh -ec \"$1\"";
        Command::new("unshare")
            .args(["--net", "--mount", "--pid", "--fork", "sh", "-ec", setup])
            .arg(root)
            .arg(script)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .expect("run unshare")
    }

    fn sh_ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "in the root: {script}\n{}",
            show(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Copies a package into the root's /root and returns its path inside the root (not /tmp,
    /// which a booted systemd may mount over).
    fn add_package(&self, deb: &Path) -> String {
        let name = deb.file_name().expect("file name").to_string_lossy();
        std::fs::copy(deb, self.path("root").join(&*name)).expect("copy the package");
        format!("/root/{name}")
    }

    /// Boots the root with systemd under `systemd-nspawn --boot --private-network` (inside
    /// `unshare --net` too), runs `script` as a oneshot unit once the system is up (after
    /// multi-user.target), then powers off. Returns what the script printed.
    fn boot_and_run(&self, script: &str) -> String {
        std::fs::write(self.path("/root/probe.sh"), script).expect("probe script");
        let unit = "[Unit]\nDescription=virtnet package test probe\n\
                    After=multi-user.target virtnetd.service\n\
                    [Service]\nType=oneshot\n\
                    ExecStart=/bin/sh -c '/bin/sh -e /root/probe.sh >/root/probe.out 2>&1; \
                    echo \"exit $?\" >>/root/probe.out; systemctl poweroff'\n\
                    [Install]\nWantedBy=multi-user.target\n";
        std::fs::write(self.path("/etc/systemd/system/virtnet-probe.service"), unit)
            .expect("probe unit");
        let link = self.path("/etc/systemd/system/multi-user.target.wants/virtnet-probe.service");
        std::os::unix::fs::symlink("/etc/systemd/system/virtnet-probe.service", &link)
            .expect("enable the probe");
        let machine = format!("virtnet-pkg-{}", std::process::id());
        // The host runs no systemd (no bus to register with: --register=no --keep-unit); its
        // cgroup v1 hierarchy lacks controllers nspawn would mount, the unified one works.
        let out = Command::new("timeout")
            .args([
                "300",
                "unshare",
                "--net",
                "--mount",
                "--pid",
                "--fork",
                "systemd-nspawn",
            ])
            .args([
                "--quiet",
                "--boot",
                "--private-network",
                "--register=no",
                "--keep-unit",
            ])
            .args(["--console=pipe", "--machine", &machine, "-D"])
            .arg(self.dir.path())
            .env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run systemd-nspawn");
        std::fs::remove_file(&link).expect("disable the probe");
        std::fs::read_to_string(self.path("/root/probe.out")).unwrap_or_else(|e| {
            panic!(
                "the probe did not run in the booted root ({e}): {}",
                show(&out)
            )
        })
    }

    /// `systemctl --root=<root> is-enabled UNIT` (read from the root's symlinks; no systemd).
    fn is_enabled(&self, unit: &str) -> String {
        let out = Command::new("systemctl")
            .arg(format!("--root={}", self.dir.path().display()))
            .args(["is-enabled", unit])
            .stdin(Stdio::null())
            .output()
            .expect("run systemctl --root");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// The units the package ships.
const UNITS: [&str; 5] = [
    "virtnetd.service",
    "virtnetd.socket",
    "virtnetd-ro.socket",
    "virtnetd-libvirt.socket",
    "virtnetd-libvirt-ro.socket",
];

/// What the package must put where, with its mode.
const FILES: [(&str, u32); 10] = [
    ("/usr/sbin/virtnetd", 0o755),
    ("/usr/share/man/man8/virtnetd.8.gz", 0o644),
    ("/usr/bin/virtnet", 0o755),
    ("/usr/libexec/virtnet-bridge-helper", 0o4755),
    ("/usr/lib/x86_64-linux-gnu/libnss_virtnet.so.2", 0o644),
    ("/etc/virtnet/bridge.conf", 0o644),
    ("/usr/share/man/man1/virtnet.1.gz", 0o644),
    ("/usr/share/bash-completion/completions/virtnet", 0o644),
    ("/usr/share/zsh/vendor-completions/_virtnet", 0o644),
    ("/usr/share/fish/vendor_completions.d/virtnet.fish", 0o644),
];

/// The paths of the regular files and symlinks in a package.
fn package_files(deb: &Path) -> Vec<String> {
    let listing = run_ok(Command::new("dpkg-deb").arg("-c").arg(deb));
    listing
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.').to_string())
        .collect()
}

/// Install, check, upgrade with an edited conffile and a disabled unit, purge.
#[test]
fn the_package_installs_upgrades_and_purges_in_a_clean_debian_12_root() {
    let out = tempfile::tempdir().expect("tempdir");
    let v1 = build_package("0.1.0~test1", out.path());
    let v2 = build_package("0.1.0~test2", out.path());
    let root = DebianRoot::new();
    let (deb1, deb2) = (root.add_package(&v1), root.add_package(&v2));

    // Install. Dependencies (libc6, libgcc-s1, libnftables1) are in the root already: the
    // root's network namespace reaches no mirror, so `apt-get install ./…deb` could not fetch.
    root.sh_ok(&format!("dpkg -i {deb1}"));
    let status = root.sh_ok("dpkg-query -W -f='${Status} ${Version}' virtnet");
    assert_eq!(status, "install ok installed 0.1.0~test1");
    for (file, mode) in FILES {
        let meta = std::fs::symlink_metadata(root.path(file))
            .unwrap_or_else(|e| panic!("{file} is not installed: {e}"));
        assert_eq!(meta.permissions().mode() & 0o7777, mode, "mode of {file}");
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "owner of {file}");
    }
    let conffiles = root.sh_ok("dpkg-query -W -f='${Conffiles}' virtnet");
    assert!(
        conffiles.contains("/etc/virtnet/bridge.conf"),
        "{conffiles}"
    );
    // The installed programs run in the root (their libraries are all there).
    let version = root.sh_ok("virtnet --version && virtnetd --version");
    assert!(
        version.contains("virtnet") && version.contains("virtnetd"),
        "{version}"
    );
    let unit = std::fs::read_to_string(root.path("/lib/systemd/system/virtnetd.service"))
        .expect("the service unit");
    assert!(unit.contains("ExecStart=/usr/sbin/virtnetd "), "{unit}");

    // The units as installed pass systemd's own checks (any output is a finding). --man=no:
    // the minimal root has no man-db to open `Documentation=man:virtnetd(8)` with (the page
    // itself is among FILES).
    let verify = root.sh(&format!(
        "cd /lib/systemd/system && SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no {}",
        UNITS.join(" ")
    ));
    assert!(
        verify.status.success() && verify.stdout.is_empty() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        show(&verify)
    );
    for unit in UNITS {
        assert_eq!(root.is_enabled(unit), "enabled", "{unit} after install");
    }

    // The postinst started nothing and defined nothing: no store (virtnetd makes it when it
    // starts), no runtime directory, no virtnetd process in the root's pid namespace.
    let state = std::fs::read_dir(root.path("/var/lib/virtnet"))
        .expect("/var/lib/virtnet")
        .count();
    assert_eq!(state, 0, "the state directory must be empty after install");
    assert!(
        !root.path("/run/virtnet").exists(),
        "/run/virtnet exists: virtnetd ran"
    );
    let procs = root.sh_ok("cat /proc/[0-9]*/comm 2>/dev/null || true");
    assert!(!procs.contains("virtnetd"), "{procs}");

    // Upgrade, after the administrator edited the conffile and disabled one unit: both kept.
    let edited = "allow virbr0\n";
    let conf = root.path("/etc/virtnet/bridge.conf");
    let mut text = std::fs::read_to_string(&conf).expect("bridge.conf");
    text.push_str(edited);
    std::fs::write(&conf, &text).expect("edit bridge.conf");
    root.sh_ok("systemctl disable virtnetd-libvirt.socket virtnetd-libvirt-ro.socket 2>&1");
    root.sh_ok(&format!("dpkg -i {deb2}"));
    let status = root.sh_ok("dpkg-query -W -f='${Status} ${Version}' virtnet");
    assert_eq!(status, "install ok installed 0.1.0~test2");
    assert_eq!(
        std::fs::read_to_string(&conf).expect("bridge.conf"),
        text,
        "the edited conffile was replaced"
    );
    assert!(!root.path("/etc/virtnet/bridge.conf.dpkg-new").exists());
    for unit in UNITS {
        let expected = if unit.starts_with("virtnetd-libvirt") {
            "disabled"
        } else {
            "enabled"
        };
        assert_eq!(root.is_enabled(unit), expected, "{unit} after upgrade");
    }

    // Purge removes the program, its configuration, its state and its unit symlinks.
    std::fs::write(root.path("/var/lib/virtnet/virtnet.redb"), b"a store").expect("a store");
    root.sh_ok("dpkg --purge virtnet");
    let gone = root.sh("dpkg-query -W virtnet 2>/dev/null | grep -q .");
    assert!(!gone.status.success(), "virtnet is still known to dpkg");
    for file in package_files(&v2) {
        assert!(
            std::fs::symlink_metadata(root.path(&file)).is_err(),
            "{file} is left after purge"
        );
    }
    for dir in ["/etc/virtnet", "/var/lib/virtnet"] {
        assert!(!root.path(dir).exists(), "{dir} is left after purge");
    }
    let links = root.sh_ok("find /etc/systemd/system -name 'virtnetd*' 2>/dev/null || true");
    assert!(
        links.trim().is_empty(),
        "unit links left after purge:\n{links}"
    );
}

/// Under a real systemd (booted in `systemd-nspawn`): the installed units are enabled, the
/// sockets listen and systemd passes them to virtnetd, which answers the CLI; the package
/// defined no network. Installed again under the running systemd, nothing starts unless asked;
/// reinstalled with `VIRTNET_DEFAULT_NETWORK=1` while systemd runs, the
/// postinst starts virtnetd and defines libvirt's default network (autostart, not started).
#[test]
fn the_installed_package_runs_under_a_real_systemd() {
    let out = tempfile::tempdir().expect("tempdir");
    let deb = build_package("0.1.0~boot", out.path());
    let root = DebianRoot::new();
    let inside = root.add_package(&deb);
    root.sh_ok(&format!("dpkg -i {inside}"));
    let probe = format!(
        "for u in {units}; do echo \"$u $(systemctl is-enabled $u) $(systemctl is-active $u)\"; done\n\
         echo \"networks: $(virtnet net-list --all --name | tr -d '\\n')\"\n\
         echo \"main pid: $(systemctl show -P MainPID virtnetd.service)\"\n\
         journalctl -u virtnetd --no-pager -o cat | grep -c 'serving a socket passed by systemd' \
           | sed 's/^/passed: /'\n\
         dpkg --purge virtnet >/dev/null\n\
         echo \"after purge: $(systemctl is-active virtnetd.service)\"\n\
         dpkg -i {inside} >/dev/null\n\
         echo \"not asked: $(systemctl is-active virtnetd.service virtnetd.socket | tr '\\n' ' ')\"\n\
         dpkg --purge virtnet >/dev/null\n\
         VIRTNET_DEFAULT_NETWORK=1 dpkg -i {inside} >/dev/null\n\
         echo \"asked: $(virtnet net-list --all | grep -c '^ *default *inactive *yes')\"\n",
        units = UNITS.join(" ")
    );
    let report = root.boot_and_run(&probe);
    let line = |prefix: &str| {
        report
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no '{prefix}' in the probe's report:\n{report}"))
            .to_string()
    };
    for unit in UNITS {
        assert_eq!(
            line(&format!("{unit} ")),
            format!("{unit} enabled active"),
            "{report}"
        );
    }
    assert_eq!(
        line("networks:"),
        "networks: ",
        "the package defined a network:\n{report}"
    );
    assert_ne!(line("main pid:"), "main pid: 0", "{report}");
    assert_eq!(
        line("passed:"),
        "passed: 4",
        "all four sockets from systemd:\n{report}"
    );
    assert_eq!(line("after purge:"), "after purge: inactive", "{report}");
    assert_eq!(
        line("not asked:"),
        "not asked: inactive inactive ",
        "installed under a running systemd without VIRTNET_START: nothing starts\n{report}"
    );
    assert_eq!(
        line("asked:"),
        "asked: 1",
        "the default network, autostart:\n{report}"
    );
    assert_eq!(line("exit "), "exit 0", "{report}");
}

//! Command lines of the binaries, parsed by hand (no argument library in a setuid program; the
//! syntax is QEMU's, not ours to extend).

use std::ffi::OsString;
use std::path::Path;

use crate::acl::check_name;
use crate::Error;

/// `virtnet-bridge-helper`'s usage line (QEMU's, with our name).
pub const HELPER_USAGE: &str = "Usage: virtnet-bridge-helper [--use-vnet] --br=bridge --fd=unixfd";

/// `virtnet-ifup`'s usage.
pub const SCRIPT_USAGE: &str =
    "Usage: virtnet-ifup TAP | virtnet-ifdown TAP | virtnet-ifup --down TAP";

/// What QEMU asks the bridge helper for: `[--use-vnet] --br=BRIDGE --fd=FD`, in any order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperArgs {
    /// `--use-vnet`: QEMU would like `IFF_VNET_HDR`.
    pub use_vnet: bool,
    /// `--br=`: the bridge to attach the tap to.
    pub bridge: String,
    /// `--fd=`: the unix socket to send the tap's descriptor on.
    pub fd: i32,
}

/// What a command line asked for: the work, or the usage text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// Do it.
    Run(T),
    /// `--help`: print the usage and exit 0.
    Help,
}

fn utf8(arg: &OsString) -> Result<&str, Error> {
    arg.to_str()
        .ok_or_else(|| Error::new(format!("argument {arg:?} is not UTF-8")))
}

impl HelperArgs {
    /// Parses the arguments after the program name. Each option at most once; the bridge name
    /// must be an interface name and the descriptor a number above 2 (QEMU never passes its
    /// stdin, stdout or stderr).
    pub fn parse(args: &[OsString]) -> Result<Parsed<HelperArgs>, Error> {
        let (mut use_vnet, mut bridge, mut fd) = (false, None::<String>, None::<i32>);
        for arg in args {
            let arg = utf8(arg)?;
            if arg == "--help" || arg == "-h" {
                return Ok(Parsed::Help);
            } else if arg == "--use-vnet" {
                if use_vnet {
                    return Err(Error::new("--use-vnet given twice"));
                }
                use_vnet = true;
            } else if let Some(b) = arg.strip_prefix("--br=") {
                if bridge.replace(b.to_string()).is_some() {
                    return Err(Error::new("--br given twice"));
                }
            } else if let Some(f) = arg.strip_prefix("--fd=") {
                let n: i32 = f
                    .parse()
                    .map_err(|_| Error::new(format!("--fd={f}: not a file descriptor number")))?;
                if n < 3 {
                    return Err(Error::new(format!(
                        "--fd={n}: not a socket QEMU passes (0, 1 and 2 are stdio)"
                    )));
                }
                if fd.replace(n).is_some() {
                    return Err(Error::new("--fd given twice"));
                }
            } else {
                return Err(Error::new(format!("unknown argument `{arg}'")));
            }
        }
        let bridge = bridge.ok_or_else(|| Error::new("--br=BRIDGE is missing"))?;
        check_name(&bridge).map_err(|e| Error::new(format!("--br: {e}")))?;
        let fd = fd.ok_or_else(|| Error::new("--fd=FD is missing"))?;
        Ok(Parsed::Run(HelperArgs {
            use_vnet,
            bridge,
            fd,
        }))
    }
}

/// Which of QEMU's scripts runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptMode {
    /// `script=`: adopt the tap QEMU made into a virtnet network.
    Up,
    /// `downscript=`: forget the port again (the tap is QEMU's to delete).
    Down,
}

/// `virtnet-ifup TAP`, `virtnet-ifdown TAP`, or the mode as a flag (`--up`, `--down`) for an
/// installation without the second name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptArgs {
    /// Up or down.
    pub mode: ScriptMode,
    /// The tap QEMU made (its `$1`).
    pub tap: String,
}

impl ScriptArgs {
    /// Parses a script's command line: the mode from the program's name (`…ifdown…` is
    /// down, anything else up) unless `--up` or `--down` is given, then the tap's name.
    pub fn parse(argv0: &OsString, args: &[OsString]) -> Result<Parsed<ScriptArgs>, Error> {
        let name = Path::new(argv0)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut mode = if name.contains("ifdown") {
            ScriptMode::Down
        } else {
            ScriptMode::Up
        };
        let mut tap = None::<String>;
        for arg in args {
            match utf8(arg)? {
                "--help" | "-h" => return Ok(Parsed::Help),
                "--up" => mode = ScriptMode::Up,
                "--down" => mode = ScriptMode::Down,
                a if a.starts_with('-') => return Err(Error::new(format!("unknown option `{a}'"))),
                a => {
                    if tap.replace(a.to_string()).is_some() {
                        return Err(Error::new("more than one tap name given"));
                    }
                }
            }
        }
        let tap = tap.ok_or_else(|| Error::new("the tap's name (QEMU's $1) is missing"))?;
        check_name(&tap).map_err(|e| Error::new(format!("tap: {e}")))?;
        Ok(Parsed::Run(ScriptArgs { mode, tap }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn helper(args: &[&str]) -> Result<Parsed<HelperArgs>, Error> {
        HelperArgs::parse(&os(args))
    }

    #[test]
    fn helper_takes_qemus_arguments_in_any_order() {
        let want = Parsed::Run(HelperArgs {
            use_vnet: true,
            bridge: "virbr0".into(),
            fd: 7,
        });
        // The order QEMU 7 uses, and the one in the usage line.
        assert_eq!(
            helper(&["--use-vnet", "--fd=7", "--br=virbr0"]).ok(),
            Some(want.clone())
        );
        assert_eq!(
            helper(&["--use-vnet", "--br=virbr0", "--fd=7"]).ok(),
            Some(want)
        );
        assert_eq!(
            helper(&["--br=br0", "--fd=12"]).ok(),
            Some(Parsed::Run(HelperArgs {
                use_vnet: false,
                bridge: "br0".into(),
                fd: 12
            }))
        );
        assert_eq!(helper(&["--help"]).ok(), Some(Parsed::Help));
    }

    #[test]
    fn helper_refuses_bad_arguments() {
        for (args, why) in [
            (&["--fd=7"][..], "--br=BRIDGE is missing"),
            (&["--br=virbr0"][..], "--fd=FD is missing"),
            (
                &["--br=virbr0", "--fd=x"][..],
                "not a file descriptor number",
            ),
            (&["--br=virbr0", "--fd=1"][..], "0, 1 and 2 are stdio"),
            (&["--br=virbr0", "--fd=-4"][..], "0, 1 and 2 are stdio"),
            (&["--br=virbr0", "--fd=7", "--fd=8"][..], "--fd given twice"),
            (&["--br=a", "--br=b", "--fd=7"][..], "--br given twice"),
            (
                &["--br=virbr0", "--fd=7", "-v"][..],
                "unknown argument `-v'",
            ),
            (&["--br=", "--fd=7"][..], "--br:"),
            (&["--br=../etc", "--fd=7"][..], "--br:"),
            (&["--br=abcdefghijklmnop", "--fd=7"][..], "--br:"),
        ] {
            let e = helper(args).expect_err(why);
            assert!(e.to_string().contains(why), "{args:?}: {e}");
        }
    }

    #[test]
    fn script_mode_comes_from_the_name_or_a_flag() {
        let run = |argv0: &str, args: &[&str]| {
            ScriptArgs::parse(&OsString::from(argv0), &os(args)).map(|p| match p {
                Parsed::Run(a) => (a.mode, a.tap),
                Parsed::Help => (ScriptMode::Up, "help".into()),
            })
        };
        assert_eq!(
            run("/usr/libexec/virtnet-ifup", &["tap0"]).ok(),
            Some((ScriptMode::Up, "tap0".into()))
        );
        assert_eq!(
            run("/usr/libexec/virtnet-ifdown", &["tap0"]).ok(),
            Some((ScriptMode::Down, "tap0".into()))
        );
        assert_eq!(
            run("virtnet-ifup", &["--down", "tap0"]).ok(),
            Some((ScriptMode::Down, "tap0".into()))
        );
        assert_eq!(
            run("virtnet-ifdown", &["tap0", "--up"]).ok(),
            Some((ScriptMode::Up, "tap0".into()))
        );
        assert!(run("virtnet-ifup", &[]).is_err());
        assert!(run("virtnet-ifup", &["tap0", "tap1"]).is_err());
        assert!(run("virtnet-ifup", &["--bogus", "tap0"]).is_err());
        assert!(run("virtnet-ifup", &["a/b"]).is_err());
    }
}

//! `virtnet-bridge-helper [--use-vnet] --br=BRIDGE --fd=FD`: QEMU's bridge helper protocol,
//! with the tap made by virtnetd. See the `virtnet_qemu::helper` module.

use std::ffi::OsString;
use std::process::ExitCode;

use virtnet_qemu::args::HELPER_USAGE;
use virtnet_qemu::{helper, HelperArgs, Parsed};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let args = match HelperArgs::parse(&args) {
        Ok(Parsed::Run(a)) => a,
        Ok(Parsed::Help) => {
            println!("{HELPER_USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("virtnet-bridge-helper: {e}\n{HELPER_USAGE}");
            return ExitCode::FAILURE;
        }
    };
    match helper::run(&args) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("virtnet-bridge-helper: {e}");
            ExitCode::FAILURE
        }
    }
}

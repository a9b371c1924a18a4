//! `virtnet-ifdown TAP` (QEMU's `downscript=`). See the `virtnet_qemu::script` module.

use virtnet_qemu::script::main as script_main;
use virtnet_qemu::ScriptMode;

fn main() -> std::process::ExitCode {
    script_main(Some(ScriptMode::Down))
}

//! `virtnet-ifup TAP` (QEMU's `script=`), also `virtnet-ifdown TAP` when installed under that
//! name (a symlink) or given `--down`. See the `virtnet_qemu::script` module.

use virtnet_qemu::script::main as script_main;

fn main() -> std::process::ExitCode {
    script_main(None)
}

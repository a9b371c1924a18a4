//! `virtnet`: virsh-compatible network verbs over virtnetd's API.
//!
//! Output follows virsh 9: the same wording, vshTable's layout, `error:` lines on stderr, and
//! the blank line virsh prints after every command (`vshCommandRun` prints `"\n"` with
//! `vshPrintExtra` after each command, successful or not; `-q` drops it).

mod cli;
mod commands;
mod output;
mod progress;
mod table;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use virtnet_api::client::Client;

use crate::cli::{Cli, Command};
use crate::output::{Ctx, Failure};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // virsh exits 1 on a bad command line; help and version are not errors.
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };

    match &cli.command {
        Command::Completions(a) => {
            let mut out = std::io::stdout().lock();
            commands::generate::completions(a.shell, &mut out);
            return flush_result(out.flush());
        }
        Command::Man(a) => {
            if let Some(dir) = &a.out_dir {
                return match commands::generate::man_pages(dir) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("error: cannot write man pages to {}: {e}", dir.display());
                        ExitCode::FAILURE
                    }
                };
            }
            let mut out = std::io::stdout().lock();
            let written = commands::generate::man(&mut out).and_then(|_| out.flush());
            return flush_result(written);
        }
        _ => {}
    }

    let ctx = Ctx::new(Client::new(cli.socket()), cli.quiet);
    let result = commands::run(&ctx, &cli.command);
    let json = wants_json(&cli.command);
    let code = match &result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            failure.report();
            ExitCode::FAILURE
        }
    };
    // virsh's blank line after each command it ran; not after JSON, which is for programs.
    let ran = !matches!(&result, Err(Failure { connect: true, .. }));
    if ran && !json {
        ctx.extra("\n");
    }
    if ctx.write_failed() {
        return ExitCode::FAILURE;
    }
    code
}

fn wants_json(command: &Command) -> bool {
    match command {
        Command::NetList(a) => a.json,
        Command::NetInfo(a) => a.json,
        Command::NetDumpxml(a) => a.json,
        Command::IfaceBridges(a) => a.json,
        Command::NetDhcpLeases(a) => a.json,
        Command::PortList(a) => a.json,
        Command::Domiflist(a) => a.json,
        Command::Domifaddr(a) => a.json,
        Command::NetPortList(a) => a.json,
        Command::ForwardList(a) => a.json,
        Command::Doctor(a) => a.json,
        Command::WebToken(a) => a.json,
        Command::FabricSet(a) => a.json,
        Command::FabricStatus(a) => a.json,
        _ => false,
    }
}

fn flush_result(r: std::io::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

//! `fkq-cred`: the thin client. Parses the command line, runs one command
//! against the daemon, and maps the outcome to an exit code.

#[cfg(unix)]
mod autostart;
mod cli;
mod commands;
mod conn;
mod error;
mod output;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use fkq_cred_proto::exit;

fn main() -> ExitCode {
    let matches =
        cli::Cli::command().after_long_help(exit_code_help()).get_matches();
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "fkq-cred: {e}");
            ExitCode::from(e.code)
        }
    }
}

fn exit_code_help() -> String {
    let mut text = String::from("Exit codes:\n");
    for (code, name, meaning) in exit::TABLE {
        text.push_str(&format!("  {code:>2}  {name:<22} {meaning}\n"));
    }
    text
}

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

use clap::FromArgMatches;

fn main() -> ExitCode {
    let matches = cli::command().get_matches();
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.message.is_empty() {
                let _ = writeln!(std::io::stderr(), "fkq-cred: {e}");
            }
            ExitCode::from(e.code)
        }
    }
}

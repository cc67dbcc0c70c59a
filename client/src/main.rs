//! `fkq-cred`: the thin client. Parses the command line, runs one command
//! against the daemon, and maps the outcome to an exit code.
//!
//! On Linux with glibc the process starts in [`start`], which skips std's
//! start-up work that a short-lived client does not need.

#![cfg_attr(all(target_os = "linux", target_env = "gnu", not(test)), no_main)]

#[cfg(unix)]
mod autostart;
mod cli;
mod commands;
mod conn;
mod error;
mod fast;
mod output;
#[cfg(all(target_os = "linux", target_env = "gnu", not(test)))]
mod start;

use std::env;
use std::ffi::OsString;
use std::io::Write;

use clap::FromArgMatches;
use fkq_cred_proto::exit;

#[cfg(not(all(target_os = "linux", target_env = "gnu", not(test))))]
fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(run())
}

/// Runs the command line; returns the exit code.
fn run() -> u8 {
    let args: Vec<OsString> = env::args_os().collect();
    // `get` and `header` in their plain forms skip clap's command tree,
    // the largest cost of a call; everything else is clap's to parse.
    let cli = fast::parse(
        &args,
        env::var_os(fast::PROFILE_ENV).as_deref(),
        env::var_os(fast::SOCKET_ENV).as_deref(),
    )
    .unwrap_or_else(|| parse(args));
    match commands::run(cli) {
        Ok(()) => exit::OK,
        Err(e) => {
            if !e.message.is_empty() {
                let _ = writeln!(std::io::stderr(), "fkq-cred: {e}");
            }
            e.code
        }
    }
}

/// Parses with clap; on an error or `--help`, prints and exits.
fn parse(args: Vec<OsString>) -> cli::Cli {
    let matches = cli::command().get_matches_from(args);
    match cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    }
}

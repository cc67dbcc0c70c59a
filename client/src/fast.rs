//! The hot path: `fkq-cred get` and `fkq-cred header` in the forms scripts
//! call in loops, recognised without building clap's command tree.
//!
//! Building the whole tree of commands, arguments and help texts costs more
//! than everything else a `get` does, the round trip to the daemon
//! included. This parser recognises only the plain, valid forms of those
//! two commands and yields the very [`Cli`] clap would; anything else
//! (help, version, other commands, an empty or repeated option, a value
//! starting with `-`, `-pNAME`, `-qv`, `--`) returns `None`, and clap parses it
//! as always, errors and messages included. The tests hold the two parsers
//! to the same result for every form this one accepts.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{self, Cli, Command, GetArgs, Global, TokenArgs};

/// The variable clap reads for `--profile`.
pub const PROFILE_ENV: &str = "FKQ_PROFILE";

/// The variable clap reads for `--socket`.
pub const SOCKET_ENV: &str = "FKQ_CRED_SOCKET";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Get,
    Header,
}

/// Parses `args` (program name first) when they are a plain `get` or
/// `header`; `profile_env` and `socket_env` are the values of
/// [`PROFILE_ENV`] and [`SOCKET_ENV`]. `None` means "let clap decide".
pub fn parse(
    args: &[OsString],
    profile_env: Option<&OsStr>,
    socket_env: Option<&OsStr>,
) -> Option<Cli> {
    let mut which = None;
    let mut profile: Option<String> = None;
    let mut socket: Option<PathBuf> = None;
    let mut quiet = false;
    let mut verbose = false;
    let mut min_valid = None;
    let mut id_token = false;
    let mut json = false;

    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let arg = arg.to_str()?;
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name, Some(value))
            }
            _ => (arg, None),
        };
        let is_flag = inline.is_none();
        let mut value = || -> Option<&str> {
            let value = match inline {
                Some(value) => value,
                None => rest.next()?.to_str()?,
            };
            plain(value)
        };
        match name {
            "get" if is_flag && which.is_none() => which = Some(Which::Get),
            "header" if is_flag && which.is_none() => {
                which = Some(Which::Header)
            }
            "--profile" | "-p" => once(&mut profile, value()?.to_owned())?,
            "--socket" => once(&mut socket, PathBuf::from(value()?))?,
            "--quiet" | "-q" if is_flag => switch(&mut quiet)?,
            "--verbose" | "-v" if is_flag => switch(&mut verbose)?,
            "--min-valid" if which.is_some() => {
                once(&mut min_valid, duration(value()?)?)?
            }
            "--id-token" if is_flag && which.is_some() => {
                switch(&mut id_token)?
            }
            "--json" if is_flag && which == Some(Which::Get) => {
                switch(&mut json)?
            }
            _ => return None,
        }
    }

    // An odd variable (empty, not UTF-8, starting with `-`) goes to clap
    // even when the option overrides it: clap checks the variable anyway.
    let profile_env = match profile_env {
        Some(value) => Some(plain(value.to_str()?)?),
        None => None,
    };
    if socket_env.is_some_and(OsStr::is_empty) {
        return None;
    }
    let profile = profile.or_else(|| profile_env.map(str::to_owned));
    let socket = socket.or_else(|| socket_env.map(PathBuf::from));
    if quiet && verbose {
        // clap refuses the pair.
        return None;
    }
    let token = TokenArgs { min_valid, id_token };
    let command = match which? {
        Which::Get => Command::Get(GetArgs { token, json }),
        Which::Header => Command::Header(token),
    };
    Some(Cli { global: Global { profile, socket, quiet, verbose }, command })
}

/// A value clap takes the same way this parser does: not empty, and not
/// starting with `-` (which clap may read as the next option).
fn plain(value: &str) -> Option<&str> {
    (!value.is_empty() && !value.starts_with('-')).then_some(value)
}

/// Sets an option that may be given once.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    slot.is_none().then(|| *slot = Some(value))
}

/// Sets a switch that may be given once.
fn switch(slot: &mut bool) -> Option<()> {
    (!*slot).then(|| *slot = true)
}

fn duration(text: &str) -> Option<Duration> {
    cli::parse_duration(text).ok()
}

#[cfg(test)]
mod tests;

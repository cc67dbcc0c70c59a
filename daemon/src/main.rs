//! `fkq-credd`: the daemon binary. Parses arguments, sets up logging, and
//! hands over to [`fkq_credd::run`].

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Keeps one FormKiQ login per profile and serves fresh tokens to
/// `fkq-cred` over a local socket. Runs in the foreground; logs go to
/// stderr. Stop it with SIGTERM, Ctrl-C or `fkq-cred daemon stop`.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Socket path (default: $XDG_RUNTIME_DIR/fkq-cred/socket).
    #[arg(long, env = "FKQ_CRED_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Config file (default: $XDG_CONFIG_HOME/fkq-cred/config.toml).
    #[arg(long, env = "FKQ_CRED_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// More detail in the logs (debug level); RUST_LOG overrides.
    #[arg(short, long)]
    verbose: bool,
    /// Append the logs to this file instead of stderr (a daemon started by
    /// fkq-cred logs to $XDG_STATE_HOME/fkq-cred/fkq-credd.log).
    #[arg(long, value_name = "PATH")]
    log_file: Option<PathBuf>,
    /// Set by fkq-cred when it starts the daemon: report readiness on this
    /// descriptor.
    #[arg(long, value_name = "FD", hide = true)]
    ready_fd: Option<i32>,
    /// Set by fkq-cred when it starts the daemon because a command needed
    /// it: `autostart = false` in the config refuses the start.
    #[arg(long, hide = true)]
    autostart: bool,
}

/// Crates whose own trace output could show request headers or bodies;
/// their level is capped whatever RUST_LOG says, so no token reaches a log.
const QUIET_CRATES: &[&str] = &[
    "hyper",
    "hyper_util",
    "reqwest",
    "rustls",
    "h2",
    "tower",
    "interprocess",
];

fn main() -> ExitCode {
    let args = Args::parse();
    let log_file = args.log_file.clone().or_else(|| {
        args.ready_fd.and_then(|_| fkq_credd::detach::default_log_path())
    });
    if let Some(path) = &log_file {
        if let Err(e) = fkq_credd::detach::log_to_file(path) {
            let _ = writeln!(
                std::io::stderr(),
                "fkq-credd: cannot log to {path:?}: {e}"
            );
        }
    }
    init_logging(args.verbose, log_file.is_some());
    let options = fkq_credd::Options {
        socket: args.socket,
        config: args.config,
        ready_fd: args.ready_fd,
        autostart: args.autostart,
    };
    match fkq_credd::run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            let _ = writeln!(std::io::stderr(), "fkq-credd: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn init_logging(verbose: bool, to_file: bool) {
    let default = if verbose { "debug" } else { "info" };
    let mut filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default));
    for name in QUIET_CRATES {
        if let Ok(directive) = format!("{name}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    // Under systemd, journald stamps each line itself; a log file needs
    // the time even when the starter ran under systemd.
    let under_journal =
        !to_file && std::env::var_os("JOURNAL_STREAM").is_some();
    // A log line that cannot be written (stderr on a closed pipe, or the
    // terminal that started the daemon hung up) is dropped: tracing's
    // fallback would report it with eprintln!, which panics there and would
    // kill the task that logged, such as the one acting on signals.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .log_internal_errors(false)
        .with_writer(std::io::stderr)
        .with_target(false);
    if under_journal {
        builder.without_time().with_ansi(false).init();
    } else {
        builder.with_ansi(false).init();
    }
}

#[cfg(test)]
mod tests {
    use fkq_cred_proto::startup::{AUTOSTART_ARG, READY_FD_ARG};

    use super::*;

    #[test]
    fn the_arguments_a_client_passes_are_the_ones_parsed() {
        let args = ["fkq-credd", READY_FD_ARG, "7", AUTOSTART_ARG];
        let args = Args::try_parse_from(args).unwrap();
        assert_eq!(args.ready_fd, Some(7));
        assert!(args.autostart);
    }
}

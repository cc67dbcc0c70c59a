//! `fkq-credd`: the daemon binary. Parses arguments, sets up logging, and
//! hands over to [`fkq_credd::run`].

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use fkq_credd::server::{self, Limits};
use tracing_subscriber::filter::{filter_fn, LevelFilter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
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
    /// How long a client may take to finish a greeting or a request it
    /// has started, e.g. 500ms [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    frame_timeout: Option<Duration>,
    /// How long a connection may stay silent between requests
    /// [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    idle_timeout: Option<Duration>,
    /// Connections served at once; past it, clients are told the daemon
    /// is busy.
    #[arg(long, value_name = "N",
          default_value_t = server::MAX_CONNECTIONS as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
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
/// their level is capped at [`QUIET_LEVEL`] whatever RUST_LOG says, even
/// for a more specific target such as `hyper::proto=trace`, so no token
/// reaches a log.
const QUIET_CRATES: &[&str] = &[
    "hyper",
    "hyper_util",
    "reqwest",
    "rustls",
    "h2",
    "tower",
    "interprocess",
    "want",
    "mio",
];

/// The most the crates in [`QUIET_CRATES`] may log.
const QUIET_LEVEL: LevelFilter = LevelFilter::INFO;

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
    let limits = Limits {
        frame_timeout: args.frame_timeout.unwrap_or(server::FRAME_TIMEOUT),
        idle_timeout: args.idle_timeout.unwrap_or(server::IDLE_TIMEOUT),
        max_connections: args.max_connections as usize,
    };
    let options = fkq_credd::Options {
        socket: args.socket,
        config: args.config,
        limits,
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
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default));
    // A layer-wide filter rather than extra EnvFilter directives: a
    // directive can be outranked by a more specific one from RUST_LOG,
    // this check cannot.
    let cap = filter_fn(|meta| {
        !is_quiet_crate(meta.target()) || *meta.level() <= QUIET_LEVEL
    });
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
        .with_target(false)
        .with_ansi(false);
    if under_journal {
        builder.without_time().finish().with(cap).init();
    } else {
        builder.finish().with(cap).init();
    }
}

/// Whether `target` belongs to one of [`QUIET_CRATES`].
fn is_quiet_crate(target: &str) -> bool {
    let krate = target.split("::").next().unwrap_or(target);
    QUIET_CRATES.contains(&krate)
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text)
        .map_err(|e| format!("{e}; write e.g. 5s or 500ms"))?;
    if duration.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_and_tls_crates_are_recognised_by_their_targets() {
        assert!(is_quiet_crate("hyper"));
        assert!(is_quiet_crate("hyper::proto::h1::io"));
        assert!(is_quiet_crate("rustls::client::hs"));
        assert!(is_quiet_crate("reqwest::connect::verbose"));
        assert!(!is_quiet_crate("fkq_credd::server"));
        assert!(!is_quiet_crate("hyperloop"));
    }

    #[test]
    fn the_arguments_a_client_passes_are_the_ones_parsed() {
        use fkq_cred_proto::startup::{AUTOSTART_ARG, READY_FD_ARG};
        let args = ["fkq-credd", READY_FD_ARG, "7", AUTOSTART_ARG];
        let args = Args::try_parse_from(args).unwrap();
        assert_eq!(args.ready_fd, Some(7));
        assert!(args.autostart);
    }
}

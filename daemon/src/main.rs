//! `fkq-credd`: the daemon binary. Parses arguments, sets up logging, and
//! hands over to [`fkq_credd::run`].

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
    init_logging(args.verbose);
    let limits = Limits {
        frame_timeout: args.frame_timeout.unwrap_or(server::FRAME_TIMEOUT),
        idle_timeout: args.idle_timeout.unwrap_or(server::IDLE_TIMEOUT),
        max_connections: args.max_connections as usize,
    };
    let options =
        fkq_credd::Options { socket: args.socket, config: args.config, limits };
    match fkq_credd::run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("fkq-credd: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn init_logging(verbose: bool) {
    let default = if verbose { "debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default));
    // A layer-wide filter rather than extra EnvFilter directives: a
    // directive can be outranked by a more specific one from RUST_LOG,
    // this check cannot.
    let cap = filter_fn(|meta| {
        !is_quiet_crate(meta.target()) || *meta.level() <= QUIET_LEVEL
    });
    // Under systemd, journald stamps each line itself.
    let under_journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
}

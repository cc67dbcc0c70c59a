//! `fkq-credd`: the daemon binary. Parses arguments, sets up logging, and
//! hands over to [`fkq_credd::run`].

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
    init_logging(args.verbose);
    let options =
        fkq_credd::Options { socket: args.socket, config: args.config };
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
    let mut filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default));
    for name in QUIET_CRATES {
        if let Ok(directive) = format!("{name}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    // Under systemd, journald stamps each line itself.
    let under_journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if under_journal {
        builder.without_time().with_ansi(false).init();
    } else {
        builder.with_ansi(false).init();
    }
}

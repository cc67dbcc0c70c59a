//! `formkiq-emulator`: serves the auth and API endpoints of a FormKiQ
//! deployment on loopback, prints one JSON ready line, and runs until
//! SIGINT or SIGTERM.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use fkq_cred_tests::emulator::{self, EmulatorConfig, User, Variant};

/// The log filter of `--verbose`: this crate's request lines and refusal
/// causes, without the libraries' chatter.
const VERBOSE_FILTER: &str = "fkq_cred_tests=debug,formkiq_emulator=debug";

/// A FormKiQ emulator for tests and demos: HTTPS auth and API servers on
/// 127.0.0.1 with a CA made at start.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Port of the auth server (/login, /login/refresh); 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    auth_port: u16,

    /// Port of the API server (/sites); 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    api_port: u16,

    /// Directory for ca.pem; default: a fresh temporary directory.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Serve plain HTTP instead of HTTPS.
    #[arg(long)]
    plain_http: bool,

    /// A user that can log in, as NAME:PASSWORD; repeatable. Default:
    /// alice@example.com with password correct-horse-battery-staple.
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    users: Vec<User>,

    /// Lifetime of access and id tokens, in seconds.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = emulator::DEFAULT_TOKEN_LIFETIME.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    token_lifetime: u64,

    /// Lifetime of refresh tokens, in seconds.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = emulator::DEFAULT_REFRESH_LIFETIME.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    refresh_lifetime: u64,

    /// Each refresh returns a new refresh token and invalidates the old one
    /// (single use); `POST _emulator/settings` can change it later.
    #[arg(long)]
    rotate_refresh_tokens: bool,

    /// The kind of deployment to play: aws (Cognito-shaped JWTs with
    /// ExpiresIn), self-hosted (an API key, no expiry, empty refresh
    /// token) or keycloak (JWTs with only exp and iat, no ExpiresIn).
    #[arg(long, value_name = "KIND", default_value = "aws")]
    variant: Variant,

    /// A user (one of --user) created by an administrator: the login
    /// answers NEW_PASSWORD_REQUIRED until a new password is set through
    /// /respondToAuthChallenge. Repeatable.
    #[arg(long = "force-change-password", value_name = "NAME")]
    force_change_password: Vec<String>,

    /// Run the emulator's clock this many seconds ahead of the system's
    /// (behind when negative), as a server whose clock is off.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    clock_offset: i64,

    /// A JWKS file whose RSA keys /sites also accepts (RS256 tokens of
    /// another issuer, e.g. a Cognito user pool).
    #[arg(long, value_name = "FILE")]
    trust_jwks: Option<PathBuf>,

    /// Answer /login/refresh with 404, like older stacks without it.
    #[arg(long)]
    no_refresh_endpoint: bool,

    /// Log one line per request (method, path, status) to stderr.
    #[arg(long, short)]
    verbose: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.verbose {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_env_filter(VERBOSE_FILTER)
            .init();
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(cause) => {
            eprintln!("formkiq-emulator: {cause:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let mut config = EmulatorConfig {
        token_lifetime: Duration::from_secs(args.token_lifetime),
        refresh_lifetime: Duration::from_secs(args.refresh_lifetime),
        plain_http: args.plain_http,
        auth_port: args.auth_port,
        api_port: args.api_port,
        rotate_refresh_tokens: args.rotate_refresh_tokens,
        variant: args.variant,
        force_change_password: args.force_change_password,
        no_refresh_endpoint: args.no_refresh_endpoint,
        clock: emulator::Clock::system_offset(args.clock_offset),
        ..EmulatorConfig::default()
    };
    if !args.users.is_empty() {
        config.users = args.users;
    }
    if let Some(path) = &args.trust_jwks {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read {}", path.display()))?;
        config.trusted_jwks = Some(text);
    }
    if let Some(dir) = args.state_dir {
        config.state_dir = dir;
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: EmulatorConfig) -> anyhow::Result<()> {
    // Signal handlers go in before the ready line, so a SIGTERM sent the
    // moment a test reads that line still ends the process cleanly.
    let stop = stop_signal()?;
    let emulator = emulator::start(config).await?;

    let ready = serde_json::to_string(emulator.ready_line())
        .context("encode the ready line")?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{ready}").context("print the ready line")?;
    stdout.flush().context("print the ready line")?;
    drop(stdout);

    stop.await?;
    tracing::info!("stop signal received, shutting down");
    emulator.shutdown().await;
    Ok(())
}

/// Listens for SIGINT and SIGTERM now, and resolves on the first of them.
/// The handlers are installed here rather than on first poll, which is
/// what keeps a signal sent just after the ready line from being lost.
#[cfg(unix)]
fn stop_signal(
) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>>> {
    use tokio::signal::unix::{signal, SignalKind};

    let mut interrupt =
        signal(SignalKind::interrupt()).context("listen for SIGINT")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("listen for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        Ok(())
    })
}

/// Resolves on the first Ctrl-C, the only stop signal outside Unix.
#[cfg(not(unix))]
fn stop_signal(
) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>>> {
    Ok(async { tokio::signal::ctrl_c().await.context("listen for Ctrl-C") })
}

//! The command line, defined once for parsing, help, completions and the
//! man page.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Hands out fresh FormKiQ tokens from fkq-credd, which logs in once and
/// keeps them renewed.
#[derive(Parser)]
#[command(name = "fkq-cred", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Args)]
pub struct Global {
    /// Profile to use (default: the config's default_profile).
    #[arg(
        short,
        long,
        global = true,
        env = "FKQ_PROFILE",
        value_name = "NAME"
    )]
    pub profile: Option<String>,
    /// Socket of fkq-credd (default: $XDG_RUNTIME_DIR/fkq-cred/socket).
    #[arg(long, global = true, env = "FKQ_CRED_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print nothing on stderr but errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
    /// Print an access token and a newline.
    #[command(
        after_help = "Example:\n  TOKEN=$(fkq-cred get)\n  fkq-cred get --min-valid 10m --json"
    )]
    Get(GetArgs),
    /// Print `Authorization: Bearer <token>`, for curl -H @file.
    #[command(
        after_help = "Example:\n  curl -H @<(fkq-cred header) \"$HTTP_API_URL/sites\""
    )]
    Header(TokenArgs),
    /// Log in; the password is asked without echo or read from stdin.
    #[command(
        after_help = "Examples:\n  fkq-cred login\n  pass show fkq | fkq-cred login --password-stdin"
    )]
    Login(LoginArgs),
    /// Forget the profile's tokens in the daemon.
    Logout,
    /// Show each profile's session: user, state, expiry, last refresh.
    Status(JsonArg),
    /// List the configured profiles.
    Profiles(JsonArg),
    /// Call GET /sites with the token: verifies the whole setup.
    #[command(after_help = "Example:\n  fkq-cred sites --profile prod")]
    Sites(JsonArg),
    /// Control fkq-credd.
    #[command(subcommand)]
    Daemon(DaemonCommand),
}

/// Options of `get`.
#[derive(Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub token: TokenArgs,
    /// Print {"token","token_type","expires_at","profile"} instead.
    #[arg(long)]
    pub json: bool,
}

/// Options of commands that hand out a token.
#[derive(Args)]
pub struct TokenArgs {
    /// The token must stay valid at least this long (e.g. 90s, 10m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub min_valid: Option<Duration>,
    /// The id token instead of the access token (the API refuses it).
    #[arg(long)]
    pub id_token: bool,
}

/// Options of `login`.
#[derive(Args)]
pub struct LoginArgs {
    /// Log in as this user instead of the profile's username.
    #[arg(short, long, value_name = "USER")]
    pub username: Option<String>,
    /// Read the password from the first line of stdin.
    #[arg(long)]
    pub password_stdin: bool,
    /// With --password-stdin: read a new password from the second line,
    /// for a server that demands one.
    #[arg(long, requires = "password_stdin")]
    pub new_password_stdin: bool,
}

/// A `--json` switch.
#[derive(Args)]
pub struct JsonArg {
    /// Print JSON for programs.
    #[arg(long)]
    pub json: bool,
}

/// `daemon` subcommands.
#[derive(Subcommand, Clone, Copy, PartialEq, Eq)]
pub enum DaemonCommand {
    /// Say whether fkq-credd runs, with its version and pid.
    Status,
    /// Stop fkq-credd; its tokens are forgotten.
    Stop,
    /// Reread the daemon's config file.
    Reload,
    /// Start fkq-credd in the background unless it runs already (commands
    /// do this by themselves unless auto-start is off).
    Start,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{e}; write e.g. 90s, 10m or 1h"))
}

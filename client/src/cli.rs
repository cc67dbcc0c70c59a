//! The command line, defined once for parsing, help, completions and the
//! man page.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use fkq_cred_proto::exit;

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
    /// Say more on stderr: the socket used and how long the daemon took.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,
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
    #[command(after_help = "Example:\n  fkq-cred logout --profile staging")]
    Logout,
    /// Show each profile's session: user, state, expiry, last refresh.
    #[command(
        after_help = "Examples:\n  fkq-cred status\n  fkq-cred status --json | jq -r '.[].expires_at'"
    )]
    Status(JsonArg),
    /// List the configured profiles; `*` marks the default.
    #[command(after_help = "Example:\n  fkq-cred profiles --json")]
    Profiles(JsonArg),
    /// Call GET /sites with the token: verifies the whole setup.
    #[command(after_help = "Example:\n  fkq-cred sites --profile prod")]
    Sites(JsonArg),
    /// Control fkq-credd.
    #[command(
        subcommand,
        after_help = "Examples:\n  fkq-cred daemon status\n  fkq-cred daemon reload"
    )]
    Daemon(DaemonCommand),
    /// Print shell commands that set AUTHORIZATION_TOKEN,
    /// FKQ_TOKEN_EXPIRES_AT and HTTP_API_URL, for eval.
    #[command(after_help = ENV_HELP)]
    Env(EnvArgs),
    /// Run a command with the token, the API URL and the daemon's socket in
    /// its environment.
    #[command(after_help = EXEC_HELP)]
    Exec(ExecArgs),
    /// Write a profile to config.toml: asks on a terminal, or takes flags
    /// and CloudFormation stack outputs; checks the URLs first.
    #[command(after_help = CONFIGURE_HELP)]
    Configure(ConfigureArgs),
    /// Answer git's credential helper protocol with the access token.
    #[command(name = "git-credential", after_help = GIT_CREDENTIAL_HELP)]
    GitCredential(GitCredentialArgs),
    /// Print a shell completion script.
    #[command(after_help = COMPLETIONS_HELP)]
    Completions(CompletionsArgs),
    /// Print the manual page (roff), or write one per command to a folder.
    #[command(
        after_help = "Examples:\n  fkq-cred man | man -l -\n  fkq-cred man --dir ~/.local/share/man/man1"
    )]
    Man(ManArgs),
}

const ENV_HELP: &str = "\
Examples:
  eval \"$(fkq-cred env)\" && curl -H \"Authorization: Bearer $AUTHORIZATION_TOKEN\" \"$HTTP_API_URL/sites\"
  fkq-cred env --shell fish | source
  fkq-cred env --shell powershell | Invoke-Expression

FKQ_TOKEN_EXPIRES_AT is RFC 3339 in UTC; it is unset when the token states
no expiry. The token expires: for long jobs prefer `fkq-cred exec`.";

const EXEC_HELP: &str = "\
Examples:
  fkq-cred exec -- ./upload.sh invoices/
  fkq-cred exec --profile prod -- python sync.py

The command gets AUTHORIZATION_TOKEN, FKQ_TOKEN_EXPIRES_AT, HTTP_API_URL,
FKQ_CRED_SOCKET and FKQ_PROFILE; a long-running command runs `fkq-cred get`
for a fresh token when AUTHORIZATION_TOKEN nears FKQ_TOKEN_EXPIRES_AT.
The token is in the command's environment on purpose: only give it to
commands you trust.

Exit status: the command's own; 128+N when signal N killed it; 126 when it
cannot be run, 127 when it is not found. SIGTERM, SIGINT and SIGHUP sent to
fkq-cred are passed on to the command.";

const CONFIGURE_HELP: &str = "\
Examples:
  fkq-cred configure
  aws cloudformation describe-stacks --stack-name formkiq-core-prod \\
      --query 'Stacks[0].Outputs' | fkq-cred configure --profile prod \\
      --stack-outputs - --username me@example.com
  fkq-cred configure --profile dev --auth-url https://auth.example.com/ \\
      --api-url https://api.example.com/ --username me@example.com

Flags win over stack outputs, which win over the profile's current values.
Without a terminal, nothing is asked: missing URLs are an error. Comments
and other profiles in config.toml are kept. The URLs are checked through
fkq-credd (without credentials) unless --no-verify, and a running daemon
rereads the file afterwards.";

const GIT_CREDENTIAL_HELP: &str = "\
Example:
  git config --global credential.https://api.example.com.helper \\
      '!fkq-cred git-credential'

get: a request whose host (and port) is a profile's API URL host is
answered with username=<the profile's user> and password=<access token>;
other hosts get no answer, so git asks its next helper. store is ignored.
erase is ignored too: the daemon renews tokens itself, and logging out
would break every other tool sharing the session (use `fkq-cred logout`).";

const COMPLETIONS_HELP: &str = "\
Examples:
  fkq-cred completions bash > ~/.local/share/bash-completion/completions/fkq-cred
  fkq-cred completions zsh > \"${fpath[1]}/_fkq-cred\"
  fkq-cred completions fish > ~/.config/fish/completions/fkq-cred.fish
  fkq-cred completions powershell >> $PROFILE";

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

/// Options of `env`.
#[derive(Args)]
pub struct EnvArgs {
    /// The shell that evaluates the output.
    #[arg(long, value_enum, default_value_t = ShellKind::Sh)]
    pub shell: ShellKind,
    #[command(flatten)]
    pub token: TokenArgs,
}

/// The shells `env` can quote for.
#[derive(ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ShellKind {
    /// POSIX sh, bash, zsh, dash, ksh.
    #[value(alias = "bash", alias = "zsh")]
    Sh,
    /// fish.
    Fish,
    /// PowerShell (pwsh and Windows PowerShell).
    #[value(alias = "pwsh")]
    Powershell,
}

/// Options of `exec`.
#[derive(Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub token: TokenArgs,
    /// The command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<OsString>,
}

/// Options of `configure`.
#[derive(Args)]
pub struct ConfigureArgs {
    /// The auth endpoint (stack output UserAuthApiUrl or
    /// CognitoApiEndpoint).
    #[arg(long, value_name = "URL")]
    pub auth_url: Option<String>,
    /// The API endpoint (stack output HttpApiUrl).
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
    /// The user to log in as.
    #[arg(long, value_name = "USER")]
    pub username: Option<String>,
    /// A command that prints the password, for unattended logins, e.g.
    /// 'pass show formkiq/prod'; split like a shell would, run without
    /// one. An empty string removes it.
    #[arg(long, value_name = "COMMAND")]
    pub password_command: Option<String>,
    /// Extra CA certificates (PEM) for a private deployment.
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
    /// The JSON of `aws cloudformation describe-stacks` (the whole document
    /// or its Outputs list); `-` reads stdin.
    #[arg(long, value_name = "FILE|-")]
    pub stack_outputs: Option<PathBuf>,
    /// Make this profile the default one.
    #[arg(long)]
    pub default: bool,
    /// Save without checking the URLs.
    #[arg(long)]
    pub no_verify: bool,
    /// The config file to edit (default: the one fkq-credd reads).
    #[arg(long, env = "FKQ_CRED_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// Options of `git-credential`.
#[derive(Args)]
pub struct GitCredentialArgs {
    /// What git asks for.
    #[arg(value_enum)]
    pub operation: GitOperation,
}

/// The operations of git's credential helper protocol.
#[derive(ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum GitOperation {
    /// Answer with username and password (the access token).
    Get,
    /// Accepted and ignored: the daemon keeps the credentials.
    Store,
    /// Accepted and ignored: see `fkq-cred logout`.
    Erase,
}

/// Options of `completions`.
#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Options of `man`.
#[derive(Args)]
pub struct ManArgs {
    /// Write fkq-cred.1 and a page per command (fkq-cred-get.1, ...) into
    /// this folder instead of printing fkq-cred.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
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

/// The full command definition: what `--help`, the completions and the
/// man page are made from, with the exit code table after the options.
pub fn command() -> clap::Command {
    Cli::command().after_long_help(exit_code_help())
}

fn exit_code_help() -> String {
    let mut text = String::from("Exit codes:\n");
    for (code, name, meaning) in exit::TABLE {
        text.push_str(&format!("  {code:>2}  {name:<22} {meaning}\n"));
    }
    text
}

/// Parses `--min-valid`: plain seconds, or a humantime duration.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{e}; write e.g. 90s, 10m or 1h"))
}

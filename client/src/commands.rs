//! One function per command. Each talks to the daemon through
//! [`crate::conn`] and writes its result through [`crate::output`]. The
//! larger commands live in files of their own below `commands/`.

mod config_file;
mod configure;
mod exec;
mod generate;
mod git_credential;
mod shell_env;
mod stack_outputs;

use std::io::{self, BufRead, IsTerminal};
use std::time::Instant;

use fkq_cred_proto::{
    exit, ErrorKind, ProfileStatus, Request, Response, Secret, TokenKind,
    TokenReply, WireError,
};
use serde_json::json;
use zeroize::{Zeroize, Zeroizing};

use crate::cli::{Cli, Command, DaemonCommand, GetArgs, LoginArgs, TokenArgs};
use crate::conn::{self, Connection, Start};
use crate::error::CliError;
use crate::output::{self, json_time, note, when};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let ctx = Context {
        profile: cli.global.profile,
        socket: cli.global.socket,
        quiet: cli.global.quiet,
        verbose: cli.global.verbose,
        start: if autostart_allowed() { Start::Auto } else { Start::Never },
    };
    match cli.command {
        Command::Get(args) => get(&ctx, &args),
        Command::Header(args) => header(&ctx, &args),
        Command::Login(args) => login(&ctx, &args),
        Command::Logout => logout(&ctx),
        Command::Status(args) => status(&ctx, args.json),
        Command::Profiles(args) => profiles(&ctx, args.json),
        Command::Sites(args) => sites(&ctx, args.json),
        Command::Daemon(command) => daemon(&ctx, command),
        Command::Env(args) => shell_env::run(&ctx, &args),
        Command::Exec(args) => exec::run(&ctx, args),
        Command::Configure(args) => configure::run(&ctx, args),
        Command::GitCredential(args) => {
            git_credential::run(&ctx, args.operation)
        }
        Command::Completions(args) => generate::completions(args.shell),
        Command::Man(args) => generate::man(args.dir.as_deref()),
    }
}

struct Context {
    profile: Option<String>,
    socket: Option<std::path::PathBuf>,
    quiet: bool,
    verbose: bool,
    /// Whether a missing daemon is started.
    start: Start,
}

#[cfg(unix)]
fn autostart_allowed() -> bool {
    crate::autostart::allowed_by_env()
}

#[cfg(not(unix))]
fn autostart_allowed() -> bool {
    false
}

impl Context {
    // `get` runs through these two: their `-v` lines are formatted only
    // when asked for, not on every call.
    fn connect(&self) -> Result<Connection, CliError> {
        let location = conn::locate(self.socket.as_deref())?;
        if self.verbose {
            self.detail(&format!("socket {}", location.path.display()));
        }
        Connection::open(&location, self.start)
    }

    /// Sends one request; an error response becomes a [`CliError`].
    fn ask(&self, request: &Request) -> Result<Response, CliError> {
        let started = self.verbose.then(Instant::now);
        let response = self.connect()?.request(request)?;
        if let Some(started) = started {
            self.detail(&format!("reply after {:.1?}", started.elapsed()));
        }
        match response {
            Response::Error(error) => Err(error.into()),
            other => Ok(other),
        }
    }

    /// A line on stderr with `-v`: what a person debugging a setup wants.
    fn detail(&self, text: &str) {
        if self.verbose {
            note(false, &format!("fkq-cred: {text}"));
        }
    }
}

fn unexpected(response: &Response) -> CliError {
    CliError::new(
        exit::VERSION_MISMATCH,
        format!("fkq-credd sent an unexpected reply ({}); are client and daemon the same release?", variant(response)),
    )
}

fn variant(response: &Response) -> &'static str {
    match response {
        Response::Pong { .. } => "pong",
        Response::Token(_) => "token",
        Response::LoggedIn { .. } => "logged-in",
        Response::Done => "done",
        Response::Status(_) => "status",
        Response::Profiles(_) => "profiles",
        Response::Sites(_) => "sites",
        Response::Error(_) => "error",
    }
}

fn token_request(ctx: &Context, args: &TokenArgs) -> Request {
    let min_valid_secs =
        args.min_valid.map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
    let kind = if args.id_token { TokenKind::Id } else { TokenKind::Access };
    Request::Get { profile: ctx.profile.clone(), kind, min_valid_secs }
}

fn fetch_token(
    ctx: &Context,
    args: &TokenArgs,
) -> Result<TokenReply, CliError> {
    match ctx.ask(&token_request(ctx, args))? {
        Response::Token(reply) => Ok(reply),
        other => Err(unexpected(&other)),
    }
}

fn get(ctx: &Context, args: &GetArgs) -> Result<(), CliError> {
    let reply = fetch_token(ctx, &args.token)?;
    // Every copy of the token made for printing is zeroed once written.
    if args.json {
        let mut value = json!({
            "token": reply.token.expose(),
            "token_type": reply.token_type,
            "expires_at": json_time(reply.expires_at),
            "profile": reply.profile,
        });
        let text = Zeroizing::new(format!("{value}\n"));
        if let Some(serde_json::Value::String(token)) = value.get_mut("token") {
            token.zeroize();
        }
        return output::stdout(&text);
    }
    let mut line =
        Zeroizing::new(String::with_capacity(reply.token.expose().len() + 1));
    line.push_str(reply.token.expose());
    line.push('\n');
    output::stdout(&line)
}

fn header(ctx: &Context, args: &TokenArgs) -> Result<(), CliError> {
    let reply = fetch_token(ctx, args)?;
    let line = Zeroizing::new(format!(
        "Authorization: {} {}\n",
        reply.token_type,
        reply.token.expose()
    ));
    output::stdout(&line)
}

fn login(ctx: &Context, args: &LoginArgs) -> Result<(), CliError> {
    let mut conn = ctx.connect()?;
    let profile = match &ctx.profile {
        Some(name) => name.clone(),
        None => default_profile(&mut conn)?,
    };
    let status =
        match conn.request(&Request::Status { profile: Some(profile) })? {
            Response::Status(mut list) if !list.is_empty() => list.remove(0),
            Response::Error(e) => return Err(e.into()),
            other => return Err(unexpected(&other)),
        };
    let username = args.username.clone().or_else(|| status.username.clone());
    let (password, new_password) = if args.password_stdin {
        read_passwords_from_stdin(args.new_password_stdin)?
    } else {
        let who = username.as_deref().unwrap_or("(profile's user)");
        (prompt(&format!("Password for {who} at {}: ", status.auth_url))?, None)
    };
    let request = |new_password| Request::Login {
        profile: Some(status.profile.clone()),
        username: args.username.clone(),
        password: password.clone(),
        new_password,
    };
    let sent_new_password = new_password.is_some();
    let mut response = conn.request(&request(new_password))?;
    if let Response::Error(WireError {
        kind: ErrorKind::ChallengeRequired,
        message,
    }) = &response
    {
        // A refused or expired new password comes with the same kind;
        // only a first challenge is answered by asking for one.
        if sent_new_password {
            return Err(CliError::new(exit::NEW_PASSWORD_REQUIRED, message));
        }
        if args.password_stdin || !io::stdin().is_terminal() {
            return Err(CliError::new(
                exit::NEW_PASSWORD_REQUIRED,
                format!("{message}; run `fkq-cred login` on a terminal to choose one, or give it as a second line on stdin with `fkq-cred login --password-stdin --new-password-stdin`"),
            ));
        }
        note(false, &format!("{message}. Choose a new password now; the server checks it against its password policy."));
        let first = prompt("New password: ")?;
        let second = prompt("Repeat new password: ")?;
        if first != second {
            return Err(CliError::usage("the two new passwords differ; nothing was changed, run `fkq-cred login` again"));
        }
        response = conn.request(&request(Some(first)))?;
    }
    match response {
        Response::LoggedIn { profile, username, expires_at } => {
            let until = expires_at.map_or_else(
                || "no expiry stated".into(),
                |t| format!("valid until {}", when(t)),
            );
            note(ctx.quiet, &format!("Logged in to profile {profile} as {username}; token {until}"));
            Ok(())
        }
        Response::Error(e) => Err(e.into()),
        other => Err(unexpected(&other)),
    }
}

/// The daemon's default profile, before a password is asked for: a login
/// must not prompt for a profile that turns out not to exist.
fn default_profile(conn: &mut Connection) -> Result<String, CliError> {
    let list = match conn.request(&Request::Profiles)? {
        Response::Profiles(list) => list,
        Response::Error(e) => return Err(e.into()),
        other => return Err(unexpected(&other)),
    };
    if let Some(default) = list.iter().find(|p| p.is_default) {
        return Ok(default.name.clone());
    }
    let message = if list.is_empty() {
        "no profiles are configured: create config.toml with a [profiles.NAME] table (see the README), or set FKQ_AUTH_URL, FKQ_API_URL and FKQ_USERNAME before the daemon starts".to_owned()
    } else {
        let names: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
        format!(
            "several profiles ({}) and no default_profile; pass --profile NAME",
            names.join(", ")
        )
    };
    Err(CliError::new(exit::CONFIG, message))
}

fn read_passwords_from_stdin(
    want_new: bool,
) -> Result<(Secret, Option<Secret>), CliError> {
    let mut stdin = io::stdin().lock();
    let mut line = |what: &str| -> Result<Secret, CliError> {
        let mut text = String::new();
        stdin.read_line(&mut text).map_err(|e| {
            CliError::failure(format!("cannot read the {what} from stdin: {e}"))
        })?;
        let secret =
            Secret::new(text.trim_end_matches(['\n', '\r']).to_owned());
        text.zeroize();
        if secret.is_empty() {
            return Err(CliError::usage(format!(
                "--password-stdin: the {what} line on stdin is empty"
            )));
        }
        Ok(secret)
    };
    let password = line("password")?;
    let new_password =
        if want_new { Some(line("new password")?) } else { None };
    Ok((password, new_password))
}

fn prompt(label: &str) -> Result<Secret, CliError> {
    let password = rpassword::prompt_password(label).map_err(|e| {
        CliError::usage(format!("cannot ask for a password ({e}); without a terminal, use --password-stdin"))
    })?;
    if password.is_empty() {
        return Err(CliError::usage("empty password; nothing was sent"));
    }
    Ok(Secret::new(password))
}

fn logout(ctx: &Context) -> Result<(), CliError> {
    match ctx.ask(&Request::Logout { profile: ctx.profile.clone() })? {
        Response::Done => {
            note(ctx.quiet, "Logged out; the daemon forgot the tokens");
            Ok(())
        }
        other => Err(unexpected(&other)),
    }
}

fn status(ctx: &Context, as_json: bool) -> Result<(), CliError> {
    let list =
        match ctx.ask(&Request::Status { profile: ctx.profile.clone() })? {
            Response::Status(list) => list,
            other => return Err(unexpected(&other)),
        };
    if as_json {
        let values: Vec<_> = list.iter().map(status_json).collect();
        return output::stdout(&format!(
            "{}\n",
            serde_json::Value::Array(values)
        ));
    }
    let mut text = String::new();
    for (i, s) in list.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        text.push_str(&status_text(s));
    }
    if list.is_empty() {
        text.push_str("no profiles configured\n");
    }
    output::stdout(&text)
}

fn status_json(s: &ProfileStatus) -> serde_json::Value {
    json!({
        "profile": s.profile,
        "username": s.username,
        "state": s.state.as_str(),
        "token": "access",
        "expires_at": json_time(s.expires_at),
        "refresh_at": json_time(s.refresh_at),
        "last_refresh": json_time(s.last_refresh),
        "logins": s.logins,
        "refreshes": s.refreshes,
        "failures": s.failures,
        "last_error": s.last_error,
        "failing_since": json_time(s.failing_since),
        "next_retry": json_time(s.next_retry),
        "auth_url": s.auth_url,
        "api_url": s.api_url,
    })
}

fn status_text(s: &ProfileStatus) -> String {
    let time = |t: Option<i64>| t.map_or_else(|| "-".into(), when);
    let mut text = format!(
        "profile:      {}\nuser:         {}\nstate:        {}\n",
        s.profile,
        s.username.as_deref().unwrap_or("-"),
        s.state.as_str()
    );
    text.push_str(&format!(
        "access token: expires {} (what `get` and `header` print)\n",
        time(s.expires_at)
    ));
    text.push_str(
        "id token:     only with `get --id-token`; the FormKiQ API refuses it\n",
    );
    text.push_str(&format!("next refresh: {}\n", time(s.refresh_at)));
    text.push_str(&format!("last refresh: {}\n", time(s.last_refresh)));
    text.push_str(&format!(
        "counts:       {} logins, {} refreshes, {} failures\n",
        s.logins, s.refreshes, s.failures
    ));
    if let Some(error) = &s.last_error {
        text.push_str(&format!("last error:   {error}\n"));
    }
    if s.failing_since.is_some() {
        text.push_str(&format!(
            "failing:      since {}\n",
            time(s.failing_since)
        ));
    }
    if s.next_retry.is_some() {
        text.push_str(&format!("next retry:   {}\n", time(s.next_retry)));
    }
    text.push_str(&format!(
        "auth url:     {}\napi url:      {}\n",
        s.auth_url, s.api_url
    ));
    text
}

fn profiles(ctx: &Context, as_json: bool) -> Result<(), CliError> {
    let list = match ctx.ask(&Request::Profiles)? {
        Response::Profiles(list) => list,
        other => return Err(unexpected(&other)),
    };
    if as_json {
        let values: Vec<_> = list
            .iter()
            .map(|p| {
                json!({"name": p.name, "default": p.is_default, "username": p.username,
                       "logged_in": p.logged_in, "auth_url": p.auth_url, "api_url": p.api_url})
            })
            .collect();
        return output::stdout(&format!(
            "{}\n",
            serde_json::Value::Array(values)
        ));
    }
    let mut text = String::new();
    for p in &list {
        let mark = if p.is_default { "*" } else { " " };
        let state = if p.logged_in { "logged in" } else { "logged out" };
        let user = p.username.as_deref().unwrap_or("-");
        text.push_str(&format!(
            "{mark} {:<16} {:<10} {user}  {}\n",
            p.name, state, p.auth_url
        ));
    }
    if list.is_empty() {
        text.push_str("no profiles configured; run `fkq-cred configure`\n");
    }
    output::stdout(&text)
}

fn sites(ctx: &Context, as_json: bool) -> Result<(), CliError> {
    let reply =
        match ctx.ask(&Request::Sites { profile: ctx.profile.clone() })? {
            Response::Sites(reply) => reply,
            other => return Err(unexpected(&other)),
        };
    if as_json {
        return output::stdout(&format!("{}\n", reply.json.trim_end()));
    }
    let mut text = format!("user: {}\n", reply.username);
    for site in &reply.sites {
        text.push_str(&format!(
            "site: {:<20} {}\n",
            site.site_id, site.permission
        ));
    }
    output::stdout(&text)
}

fn daemon(ctx: &Context, command: DaemonCommand) -> Result<(), CliError> {
    let location = conn::locate(ctx.socket.as_deref())?;
    // Commands about the daemon never start one by accident; `start` does
    // it on purpose, below.
    let mut conn = match Connection::open(&location, Start::Never) {
        Ok(conn) => conn,
        Err(e)
            if command == DaemonCommand::Stop
                && e.code == exit::DAEMON_UNREACHABLE =>
        {
            note(
                ctx.quiet,
                &format!("fkq-credd is not running ({:?})", location.path),
            );
            return Ok(());
        }
        Err(e) if command == DaemonCommand::Start => {
            if e.code != exit::DAEMON_UNREACHABLE {
                return Err(e);
            }
            start_daemon(&location)?;
            Connection::open(&location, Start::Never)?
        }
        Err(e) => return Err(e),
    };
    let request = match command {
        DaemonCommand::Status | DaemonCommand::Start => Request::Ping,
        DaemonCommand::Stop => {
            conn.stop_any_version();
            Request::Shutdown
        }
        DaemonCommand::Reload => Request::Reload,
    };
    match conn.request(&request)? {
        Response::Pong { version, pid } => output::stdout(&format!(
            "fkq-credd {version} (pid {pid}) is running on {}\n",
            conn.path().display()
        )),
        Response::Done => {
            let what = if command == DaemonCommand::Stop {
                "asked to stop"
            } else {
                "reloaded its config"
            };
            note(ctx.quiet, &format!("fkq-credd {what}"));
            Ok(())
        }
        Response::Error(e) => Err(e.into()),
        other => Err(unexpected(&other)),
    }
}

#[cfg(unix)]
fn start_daemon(
    location: &fkq_cred_proto::location::SocketLocation,
) -> Result<(), CliError> {
    conn::start_asked(location)
}

#[cfg(not(unix))]
fn start_daemon(
    location: &fkq_cred_proto::location::SocketLocation,
) -> Result<(), CliError> {
    Err(CliError::new(
        exit::DAEMON_UNREACHABLE,
        format!(
            "start fkq-credd by hand; nothing listens on {:?}",
            location.path
        ),
    ))
}

//! `fkq-cred env`: the token and the API URL as shell commands for `eval`,
//! quoted so that no value can break out of its quotes, whatever it holds.
//! `exec` takes the same variables from here.

use std::path::PathBuf;

use fkq_cred_proto::{Request, Response, Secret};

use super::{unexpected, Context};
use crate::cli::{EnvArgs, ShellKind, TokenArgs};
use crate::error::CliError;
use crate::output::{self, rfc3339};

/// The variable holding the token, named as in FormKiQ's guide.
pub const TOKEN_VAR: &str = "AUTHORIZATION_TOKEN";
/// The variable holding the token's expiry, RFC 3339 in UTC.
pub const EXPIRES_VAR: &str = "FKQ_TOKEN_EXPIRES_AT";
/// The variable holding the API URL, named as in FormKiQ's guide.
pub const API_URL_VAR: &str = "HTTP_API_URL";

/// What `env` prints and `exec` puts in a child's environment.
pub struct TokenVars {
    /// The profile the daemon used.
    pub profile: String,
    /// The socket the daemon answered on, absolute.
    pub socket: PathBuf,
    token: Secret,
    expires_at: Option<String>,
    api_url: String,
}

impl TokenVars {
    /// The variables in a fixed order; `None` means "unset it", for a
    /// token that states no expiry.
    pub fn pairs(&self) -> [(&'static str, Option<&str>); 3] {
        [
            (TOKEN_VAR, Some(self.token.expose())),
            (EXPIRES_VAR, self.expires_at.as_deref()),
            (API_URL_VAR, Some(&self.api_url)),
        ]
    }
}

/// Asks the daemon for a token and the profile's API URL, over one
/// connection.
pub fn fetch(ctx: &Context, args: &TokenArgs) -> Result<TokenVars, CliError> {
    let mut conn = ctx.connect()?;
    let reply = match conn.request(&super::token_request(ctx, args))? {
        Response::Token(reply) => reply,
        Response::Error(e) => return Err(e.into()),
        other => return Err(unexpected(&other)),
    };
    let status = Request::Status { profile: Some(reply.profile.clone()) };
    let api_url = match conn.request(&status)? {
        Response::Status(list) if !list.is_empty() => list[0].api_url.clone(),
        Response::Error(e) => return Err(e.into()),
        other => return Err(unexpected(&other)),
    };
    let socket = std::path::absolute(conn.path())
        .unwrap_or_else(|_| conn.path().to_path_buf());
    Ok(TokenVars {
        profile: reply.profile,
        socket,
        token: reply.token,
        expires_at: reply.expires_at.map(rfc3339),
        // Scripts write "$HTTP_API_URL/sites", as the guide does; a
        // trailing slash would double it.
        api_url: api_url.trim_end_matches('/').to_owned(),
    })
}

/// Runs `fkq-cred env`.
pub fn run(ctx: &Context, args: &EnvArgs) -> Result<(), CliError> {
    let vars = fetch(ctx, &args.token)?;
    let text = render(args.shell, &vars.pairs())?;
    output::stdout(&text)
}

/// The commands that set (or unset) each variable in `shell`.
pub fn render(
    shell: ShellKind,
    pairs: &[(&str, Option<&str>)],
) -> Result<String, CliError> {
    let mut text = String::new();
    for (name, value) in pairs {
        let line = match (shell, value) {
            (_, Some(v)) if v.contains('\0') => {
                return Err(CliError::failure(format!(
                    "the value of {name} contains a NUL byte, which no \
                     environment variable can hold"
                )))
            }
            (ShellKind::Sh, Some(v)) => format!("export {name}={};", sh(v)),
            (ShellKind::Sh, None) => format!("unset {name};"),
            (ShellKind::Fish, Some(v)) => {
                format!("set -gx {name} {};", fish(v))
            }
            (ShellKind::Fish, None) => format!("set -e {name};"),
            (ShellKind::Powershell, Some(v)) => {
                format!("$env:{name} = {};", powershell(v))
            }
            (ShellKind::Powershell, None) => format!("$env:{name} = $null;"),
        };
        text.push_str(&line);
        text.push('\n');
    }
    Ok(text)
}

/// POSIX single quotes: everything inside is literal, and a `'` is written
/// as `'\''` (close, escaped quote, reopen).
pub fn sh(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// fish single quotes: everything is literal but `\\` and `\'`.
pub fn fish(value: &str) -> String {
    format!("'{}'", value.replace('\\', r"\\").replace('\'', r"\'"))
}

/// The characters PowerShell reads as a single quote: the ASCII one and the
/// typographic ones (‘ ’ ‚ ‛).
const POWERSHELL_QUOTES: [char; 5] =
    ['\'', '\u{2018}', '\u{2019}', '\u{201A}', '\u{201B}'];

/// PowerShell verbatim strings: everything is literal, and any of its
/// single-quote characters is written twice.
pub fn powershell(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        if POWERSHELL_QUOTES.contains(&c) {
            quoted.push(c);
        }
        quoted.push(c);
    }
    quoted.push('\'');
    quoted
}

#[cfg(test)]
#[path = "shell_env_tests.rs"]
mod tests;

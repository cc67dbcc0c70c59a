//! `fkq-cred git-credential get|store|erase`: git's credential helper
//! protocol, so that any tool that asks git for HTTP credentials gets a
//! fresh FormKiQ access token.
//!
//! git writes `key=value` lines and a blank line to stdin; for `get` the
//! helper answers with the same format on stdout, or with nothing when it
//! has no credential for that host, and git asks its next helper. `store`
//! and `erase` are read and ignored: the daemon keeps and renews the
//! tokens, and a token refused once (which is when git erases) is more
//! often a permission problem than a stale token, so logging out would
//! only break every other tool sharing the session.

use std::io::{self, BufRead, Read};

use fkq_cred_proto::{ProfileInfo, Request, Response, TokenKind};

use super::{unexpected, Context};
use crate::cli::GitOperation;
use crate::error::CliError;
use crate::output;

/// The most input read from git; a request is a few hundred bytes.
const MAX_INPUT: u64 = 64 * 1024;

/// The username given when the profile names none: git insists on one.
const FALLBACK_USERNAME: &str = "fkq-cred";

/// The fields of git's request that fkq-cred looks at.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CredentialRequest {
    /// `https`, `http`, ...
    pub protocol: Option<String>,
    /// The host, with `:port` when the URL names one.
    pub host: Option<String>,
    /// A username from the URL or git's config, if any.
    pub username: Option<String>,
}

/// Runs `fkq-cred git-credential OPERATION`.
pub fn run(ctx: &Context, operation: GitOperation) -> Result<(), CliError> {
    // The request is read in every case: git writes it before it reads.
    let request = read_request(io::stdin().lock().take(MAX_INPUT))?;
    match operation {
        GitOperation::Get => get(ctx, &request),
        GitOperation::Store | GitOperation::Erase => {
            ctx.detail(&format!("{operation:?} ignored; see --help"));
            Ok(())
        }
    }
}

/// Reads `key=value` lines up to a blank line or the end of input.
/// Unknown keys (`path`, `wwwauth[]`, `capability[]`, ...) are skipped.
pub fn read_request(
    input: impl BufRead,
) -> Result<CredentialRequest, CliError> {
    let mut request = CredentialRequest::default();
    for line in input.lines() {
        let line = line.map_err(|e| {
            CliError::failure(format!("cannot read git's request: {e}"))
        })?;
        if line.is_empty() {
            break;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        let slot = match key {
            "protocol" => &mut request.protocol,
            "host" => &mut request.host,
            "username" => &mut request.username,
            _ => continue,
        };
        *slot = Some(value.to_owned());
    }
    Ok(request)
}

fn get(ctx: &Context, request: &CredentialRequest) -> Result<(), CliError> {
    let (Some(protocol), Some(host)) = (&request.protocol, &request.host)
    else {
        return Ok(());
    };
    let mut conn = ctx.connect()?;
    let profiles = match conn.request(&Request::Profiles)? {
        Response::Profiles(list) => list,
        Response::Error(e) => return Err(e.into()),
        other => return Err(unexpected(&other)),
    };
    let Some(profile) = choose(&profiles, ctx.profile.as_deref(), request)
    else {
        ctx.detail(&format!("no profile's api_url is {protocol}://{host}"));
        return Ok(());
    };
    ctx.detail(&format!("{protocol}://{host} is profile {}", profile.name));

    let get = Request::Get {
        profile: Some(profile.name.clone()),
        kind: TokenKind::Access,
        min_valid_secs: None,
    };
    let reply = match conn.request(&get)? {
        Response::Token(reply) => reply,
        Response::Error(e) => return Err(e.into()),
        other => return Err(unexpected(&other)),
    };
    let username = profile
        .username
        .as_deref()
        .or(request.username.as_deref())
        .unwrap_or(FALLBACK_USERNAME);
    if username.contains(['\n', '\0']) || reply.token.expose().contains('\n') {
        return Err(CliError::failure(
            "the username or token contains a line break, which git's credential protocol cannot carry",
        ));
    }
    let mut answer =
        format!("username={username}\npassword={}\n", reply.token.expose());
    if let Some(expires_at) = reply.expires_at {
        // git 2.41 and later stop using the token after this moment.
        answer.push_str(&format!("password_expiry_utc={expires_at}\n"));
    }
    output::stdout(&answer)
}

/// The profile whose API URL is `protocol://host`. With several, the one
/// named by `--profile`, else the one with the requested username, else
/// the default, else the first by name.
pub fn choose<'a>(
    profiles: &'a [ProfileInfo],
    only: Option<&str>,
    request: &CredentialRequest,
) -> Option<&'a ProfileInfo> {
    let (Some(protocol), Some(host)) = (&request.protocol, &request.host)
    else {
        return None;
    };
    let mut matching: Vec<&ProfileInfo> = profiles
        .iter()
        .filter(|p| only.is_none_or(|name| p.name == name))
        .filter(|p| {
            origin(&p.api_url).is_some_and(|(scheme, authority)| {
                scheme.eq_ignore_ascii_case(protocol)
                    && authority.eq_ignore_ascii_case(host)
            })
        })
        .collect();
    matching.sort_by(|a, b| a.name.cmp(&b.name));
    let by_user = request.username.as_deref().and_then(|user| {
        matching.iter().find(|p| p.username.as_deref() == Some(user))
    });
    by_user
        .or_else(|| matching.iter().find(|p| p.is_default))
        .or_else(|| matching.first())
        .copied()
}

/// The scheme and `host[:port]` of a URL as the daemon writes it
/// (normalised: lowercase host, no default port).
pub fn origin(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (!authority.is_empty()).then_some((scheme, authority))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(name: &str, api_url: &str, user: &str) -> ProfileInfo {
        ProfileInfo {
            name: name.into(),
            is_default: false,
            username: Some(user.into()),
            auth_url: "https://auth.example.com/".into(),
            api_url: api_url.into(),
            logged_in: true,
        }
    }

    fn request(text: &str) -> CredentialRequest {
        read_request(text.as_bytes()).unwrap()
    }

    #[test]
    fn the_request_is_read_up_to_the_blank_line() {
        let got = request(
            "capability[]=authtype\nprotocol=https\nhost=api.example.com:8443\npath=x\n\nhost=ignored\n",
        );
        assert_eq!(got.protocol.as_deref(), Some("https"));
        assert_eq!(got.host.as_deref(), Some("api.example.com:8443"));
        assert_eq!(got.username, None);
    }

    #[test]
    fn hosts_match_with_port_and_scheme_and_nothing_else() {
        let list = [
            profile("a", "https://api.example.com/", "a@x"),
            profile("b", "https://api.example.com:8443/prod/", "b@x"),
            profile("c", "http://127.0.0.1:9000/", "c@x"),
        ];
        let pick = |text: &str| {
            choose(&list, None, &request(text)).map(|p| p.name.as_str())
        };
        assert_eq!(pick("protocol=https\nhost=api.example.com\n"), Some("a"));
        assert_eq!(pick("protocol=https\nhost=API.example.com\n"), Some("a"));
        assert_eq!(
            pick("protocol=https\nhost=api.example.com:8443\n"),
            Some("b")
        );
        assert_eq!(pick("protocol=http\nhost=127.0.0.1:9000\n"), Some("c"));
        assert_eq!(pick("protocol=http\nhost=api.example.com\n"), None);
        assert_eq!(pick("protocol=https\nhost=example.com\n"), None);
        assert_eq!(pick("protocol=https\nhost=api.example.com.evil\n"), None);
        assert_eq!(pick("host=api.example.com\n"), None);
    }

    #[test]
    fn among_several_matches_the_user_then_the_default_wins() {
        let mut list = [
            profile("a", "https://api.example.com/", "a@x"),
            profile("b", "https://api.example.com/", "b@x"),
        ];
        list[1].is_default = true;
        let base = "protocol=https\nhost=api.example.com\n";
        let pick = |only: Option<&str>, text: &str| {
            choose(&list, only, &request(text)).map(|p| p.name.as_str())
        };
        assert_eq!(pick(None, base), Some("b"));
        assert_eq!(pick(None, &format!("{base}username=a@x\n")), Some("a"));
        assert_eq!(pick(Some("a"), base), Some("a"));
        assert_eq!(pick(Some("zz"), base), None);
    }

    #[test]
    fn origins_drop_paths_and_user_info() {
        assert_eq!(
            origin("https://u:p@[::1]:8443/x?y"),
            Some(("https", "[::1]:8443"))
        );
        assert_eq!(origin("not a url"), None);
    }
}

//! The HTTP side: logging in, refreshing and calling `/sites` on a FormKiQ
//! deployment, and turning every way that can fail into an [`AuthError`]
//! that names the URL and the next step.
//!
//! Bodies are parsed, never shown: no reply body reaches a log line or a
//! message, because an error body may echo the token it refused.

// Errors carry their URL so every message can name it. They are built
// once per failed HTTP exchange, never on a hot path, so their size does
// not matter.
#![allow(clippy::result_large_err)]

pub mod probe;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fkq_cred_proto::{ErrorKind, Secret, Site, WireError};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::clock::{Clock, SystemClock};
use crate::config::Profile;
use crate::tokens::{identity_of, AuthResult, Identity, TokenSet};

/// The most of a reply body the daemon reads. FormKiQ's replies are a few
/// kilobytes; anything larger is not FormKiQ talking.
const MAX_BODY: usize = 1024 * 1024;

/// Which endpoint a request went to, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST {auth}/login`.
    Login,
    /// `POST {auth}/login/refresh`.
    Refresh,
    /// `POST {auth}/respondToAuthChallenge`.
    Challenge,
    /// `GET {api}/sites`.
    Sites,
}

/// Everything that can go wrong talking to a deployment.
#[derive(Debug, Error)]
pub enum AuthError {
    /// Wrong username or password.
    #[error("login at {url} failed: incorrect username or password; run `fkq-cred login` to try again")]
    Rejected {
        /// The login URL.
        url: Url,
    },
    /// The refresh token was refused (expired or revoked).
    #[error("the auth server at {url} no longer accepts the refresh token; run `fkq-cred login`")]
    RefreshRejected {
        /// The refresh URL.
        url: Url,
    },
    /// The server wants a new password first.
    #[error(
        "the server at {url} requires a new password for this user ({name}); run \
         `fkq-cred login` on a terminal to set one, or pass --new-password-stdin"
    )]
    ChallengeRequired {
        /// The login URL.
        url: Url,
        /// The challenge name, e.g. `NEW_PASSWORD_REQUIRED`.
        name: String,
        /// The session that answers it.
        session: Secret,
    },
    /// `/login` is not there: the API URL was likely used as the auth URL.
    #[error(
        "{url} answered 404 Not Found: this looks like the API URL; the auth URL \
         is the stack output CognitoApiEndpoint or UserAuthApiUrl (auth_url in the profile)"
    )]
    LoginNotFound {
        /// The login URL.
        url: Url,
    },
    /// The deployment has no `/login/refresh` (older stacks).
    #[error(
        "{url} answered 404 Not Found: this deployment has no refresh endpoint"
    )]
    RefreshNotFound {
        /// The refresh URL.
        url: Url,
    },
    /// `/sites` is not there: the API URL is likely wrong.
    #[error(
        "{url} answered 404 Not Found: api_url looks wrong; it is the stack output \
         HttpApiUrl (not the auth URL)"
    )]
    ApiNotFound {
        /// The sites URL.
        url: Url,
    },
    /// The API refused the token.
    #[error(
        "the API at {url} refused the access token (401 Unauthorized); check that \
         api_url (HttpApiUrl) and auth_url belong to the same deployment"
    )]
    Unauthorized {
        /// The API URL.
        url: Url,
    },
    /// The API accepted the token but not the action.
    #[error(
        "the API at {url} denied access (403 Forbidden) to user {user} in groups [{groups}]; \
         ask a FormKiQ administrator for access to a site",
        user = identity.username.as_deref().unwrap_or("(unknown)"),
        groups = identity.groups.join(", ")
    )]
    Forbidden {
        /// The API URL.
        url: Url,
        /// Who the token says the user is.
        identity: Identity,
    },
    /// HTTP 429.
    #[error("{url} is rate-limiting requests (429 Too Many Requests); fkq-credd retries after a pause")]
    RateLimited {
        /// The URL.
        url: Url,
    },
    /// HTTP 5xx.
    #[error("the server at {url} is failing ({status}); fkq-credd retries by itself")]
    ServerError {
        /// The URL.
        url: Url,
        /// The status.
        status: StatusCode,
    },
    /// A status FormKiQ does not send for this request.
    #[error("{url} answered {status}, which FormKiQ does not send here; check the URL in the profile")]
    UnexpectedStatus {
        /// The URL.
        url: Url,
        /// The status.
        status: StatusCode,
    },
    /// A reply that is not the JSON FormKiQ sends.
    #[error(
        "the reply from {url} ({status}) is not FormKiQ's JSON ({what}); check that the \
         URL points at the FormKiQ endpoint and not at a proxy or web page"
    )]
    BadBody {
        /// The URL.
        url: Url,
        /// The status.
        status: StatusCode,
        /// What was wrong with it, without its contents.
        what: String,
    },
    /// No reply in time.
    #[error("no answer from {url} within {secs} s; check the network, or raise `timeout` in the profile")]
    Timeout {
        /// The URL.
        url: Url,
        /// The limit, in seconds.
        secs: u64,
    },
    /// The host name does not resolve.
    #[error("cannot resolve the host of {url}; check the URL in the profile and the network")]
    Dns {
        /// The URL.
        url: Url,
    },
    /// Nothing listens there.
    #[error(
        "connection to {url} was refused; is the server up and the port right?"
    )]
    Refused {
        /// The URL.
        url: Url,
    },
    /// The certificate is not trusted.
    #[error(
        "the TLS certificate of {url} is not signed by a trusted authority; if the \
         deployment uses a private CA, set `ca_file` in the profile to its PEM file"
    )]
    UnknownIssuer {
        /// The URL.
        url: Url,
    },
    /// Another TLS failure.
    #[error("TLS with {url} failed: {detail}")]
    Tls {
        /// The URL.
        url: Url,
        /// The TLS library's words.
        detail: String,
    },
    /// Another transport failure.
    #[error("cannot reach {url}: {detail}")]
    Connect {
        /// The URL.
        url: Url,
        /// The transport's words.
        detail: String,
    },
    /// The `ca_file` could not be used.
    #[error("ca_file {path:?} cannot be used: {detail}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
}

impl AuthError {
    /// The category a client branches on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Rejected { .. } => ErrorKind::AuthRejected,
            Self::RefreshRejected { .. } => ErrorKind::NotLoggedIn,
            Self::ChallengeRequired { .. } => ErrorKind::ChallengeRequired,
            Self::LoginNotFound { .. }
            | Self::ApiNotFound { .. }
            | Self::RefreshNotFound { .. } => ErrorKind::WrongEndpoint,
            Self::Unauthorized { .. } => ErrorKind::Unauthorized,
            Self::Forbidden { .. } => ErrorKind::Forbidden,
            Self::UnexpectedStatus { .. } | Self::BadBody { .. } => {
                ErrorKind::BadResponse
            }
            Self::CaFile { .. } => ErrorKind::Config,
            Self::UnknownIssuer { .. } | Self::Tls { .. } => {
                ErrorKind::ServerUnreachable
            }
            Self::RateLimited { .. }
            | Self::ServerError { .. }
            | Self::Timeout { .. }
            | Self::Dns { .. }
            | Self::Refused { .. }
            | Self::Connect { .. } => ErrorKind::ServerUnreachable,
        }
    }

    /// Whether retrying later may succeed without anyone changing anything.
    /// A malformed reply counts: a proxy hiccup produces one.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::ServerError { .. }
                | Self::Timeout { .. }
                | Self::Dns { .. }
                | Self::Refused { .. }
                | Self::Connect { .. }
                | Self::BadBody { .. }
        )
    }

    /// The error as it crosses the socket.
    pub fn to_wire(&self) -> WireError {
        WireError::new(self.kind(), self.to_string())
    }
}

/// The answer of `GET /sites`.
pub struct SitesAnswer {
    /// The user the server recognised.
    pub username: String,
    /// The sites.
    pub sites: Vec<Site>,
    /// The body, for `--json`.
    pub json: String,
}

/// Talks to one profile's deployment.
pub struct AuthClient {
    http: reqwest::Client,
    auth_url: Url,
    api_url: Url,
    timeout: Duration,
    default_lifetime: Duration,
    clock: Arc<dyn Clock>,
}

#[derive(Serialize)]
struct LoginBody<'a> {
    username: &'a str,
    password: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RefreshBody<'a> {
    refresh_token: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChallengeBody<'a> {
    username: &'a str,
    user_status: &'a str,
    session: &'a str,
    password: &'a str,
}

#[derive(Deserialize)]
struct LoginReply {
    #[serde(rename = "AuthenticationResult")]
    result: Option<AuthResult>,
    #[serde(rename = "ChallengeName")]
    challenge: Option<String>,
    #[serde(rename = "Session")]
    session: Option<Secret>,
}

#[derive(Deserialize)]
struct SitesBody {
    username: Option<String>,
    #[serde(default)]
    sites: Vec<SiteBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SiteBody {
    site_id: String,
    permission: Option<String>,
}

/// Joins `path` onto a base URL without doubling or dropping the slash,
/// keeping any stage prefix the base has.
pub fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!(
        "{}/{}",
        base.path().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    url.set_path(&joined);
    url.set_query(None);
    url
}

impl AuthClient {
    /// Builds the HTTP client for a profile: TLS through rustls with the
    /// system roots plus the profile's `ca_file`, no redirects (a password
    /// must not follow a redirect), and the profile's timeout.
    pub fn new(profile: &Profile) -> Result<Self, AuthError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(profile.timeout)
            .connect_timeout(profile.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("fkq-cred/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &profile.ca_file {
            for cert in read_ca_file(path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| AuthError::Connect {
            url: profile.auth_url.clone(),
            detail: format!("cannot set up HTTPS: {e}"),
        })?;
        Ok(Self {
            http,
            auth_url: profile.auth_url.clone(),
            api_url: profile.api_url.clone(),
            timeout: profile.timeout,
            default_lifetime: profile.default_lifetime,
            clock: Arc::new(SystemClock),
        })
    }

    /// Dates replies with `clock` instead of the system clock, so a token's
    /// expiry and the session's idea of "now" come from the same clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// `POST {auth}/login`.
    pub async fn login(
        &self,
        username: &str,
        password: &Secret,
    ) -> Result<TokenSet, AuthError> {
        let url = endpoint(&self.auth_url, "login");
        let body = LoginBody { username, password: password.expose() };
        let (status, bytes) =
            self.send(self.http.post(url.clone()).json(&body), &url).await?;
        let received_at = self.clock.now();
        match status.as_u16() {
            200..=299 => {}
            400 | 401 => return Err(AuthError::Rejected { url }),
            403 | 404 => return Err(AuthError::LoginNotFound { url }),
            _ => return Err(status_error(url, status)),
        }
        let reply: LoginReply = parse_json(&url, status, &bytes)?;
        if let Some(name) = reply.challenge.filter(|c| !c.is_empty()) {
            let has_tokens = reply.result.as_ref().is_some_and(|r| {
                r.access_token.as_ref().is_some_and(|t| !t.is_empty())
            });
            if !has_tokens {
                let session = reply.session.unwrap_or_default();
                return Err(AuthError::ChallengeRequired {
                    url,
                    name,
                    session,
                });
            }
        }
        let result = reply
            .result
            .ok_or_else(|| bad_body(&url, status, "no AuthenticationResult"))?;
        TokenSet::from_reply(result, received_at, self.default_lifetime, None)
            .map_err(|_| bad_body(&url, status, "no AccessToken"))
    }

    /// `POST {auth}/login/refresh`, keeping `previous.refresh` unless the
    /// reply rotates it.
    pub async fn refresh(
        &self,
        previous: &TokenSet,
    ) -> Result<TokenSet, AuthError> {
        let url = endpoint(&self.auth_url, "login/refresh");
        let body = RefreshBody { refresh_token: previous.refresh.expose() };
        let (status, bytes) =
            self.send(self.http.post(url.clone()).json(&body), &url).await?;
        let received_at = self.clock.now();
        match status.as_u16() {
            200..=299 => {}
            400 | 401 => return Err(AuthError::RefreshRejected { url }),
            404 => return Err(AuthError::RefreshNotFound { url }),
            _ => return Err(status_error(url, status)),
        }
        let reply: LoginReply = parse_json(&url, status, &bytes)?;
        let result = reply
            .result
            .ok_or_else(|| bad_body(&url, status, "no AuthenticationResult"))?;
        TokenSet::from_reply(
            result,
            received_at,
            self.default_lifetime,
            Some(&previous.refresh),
        )
        .map_err(|_| bad_body(&url, status, "no AccessToken"))
    }

    /// `POST {auth}/respondToAuthChallenge` with a new password.
    pub async fn set_new_password(
        &self,
        username: &str,
        challenge: &str,
        session: &Secret,
        new_password: &Secret,
    ) -> Result<(), AuthError> {
        let url = endpoint(&self.auth_url, "respondToAuthChallenge");
        let body = ChallengeBody {
            username,
            user_status: challenge,
            session: session.expose(),
            password: new_password.expose(),
        };
        let (status, _) =
            self.send(self.http.post(url.clone()).json(&body), &url).await?;
        match status.as_u16() {
            200..=299 => Ok(()),
            400 | 401 => Err(AuthError::Rejected { url }),
            404 => Err(AuthError::LoginNotFound { url }),
            _ => Err(status_error(url, status)),
        }
    }

    /// `GET {api}/sites` with the access token.
    pub async fn sites(
        &self,
        access: &Secret,
    ) -> Result<SitesAnswer, AuthError> {
        let url = endpoint(&self.api_url, "sites");
        let request = self.http.get(url.clone()).bearer_auth(access.expose());
        let (status, bytes) = self.send(request, &url).await?;
        match status.as_u16() {
            200..=299 => {}
            401 => return Err(AuthError::Unauthorized { url }),
            403 => {
                return Err(AuthError::Forbidden {
                    url,
                    identity: identity_of(access.expose()),
                })
            }
            404 => return Err(AuthError::ApiNotFound { url }),
            _ => return Err(status_error(url, status)),
        }
        let body: SitesBody = parse_json(&url, status, &bytes)?;
        let sites = body
            .sites
            .into_iter()
            .map(|s| Site {
                site_id: s.site_id,
                permission: s.permission.unwrap_or_default(),
            })
            .collect();
        let json = String::from_utf8_lossy(&bytes).into_owned();
        Ok(SitesAnswer {
            username: body.username.unwrap_or_default(),
            sites,
            json,
        })
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &Url,
    ) -> Result<(StatusCode, Zeroizing<Vec<u8>>), AuthError> {
        let mut response =
            request.send().await.map_err(|e| self.transport_error(url, &e))?;
        let status = response.status();
        tracing::debug!(url = %url, status = status.as_u16(), "http reply");
        // A login or refresh reply holds every token: zero it when done,
        // and size it up front where the length is known, so that growing
        // it leaves no unzeroed copy behind.
        let capacity = response
            .content_length()
            .map_or(0, |n| n.min(MAX_BODY as u64) as usize);
        let mut body = Zeroizing::new(Vec::with_capacity(capacity));
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_BODY => {
                    body.extend_from_slice(&chunk)
                }
                Ok(Some(_)) => {
                    return Err(bad_body(url, status, "more than 1 MiB"))
                }
                Ok(None) => break,
                Err(e) => return Err(self.transport_error(url, &e)),
            }
        }
        Ok((status, body))
    }

    fn transport_error(&self, url: &Url, error: &reqwest::Error) -> AuthError {
        let url = url.clone();
        if error.is_timeout() {
            return AuthError::Timeout {
                url,
                secs: self.timeout.as_secs().max(1),
            };
        }
        let chain = error_chain(error);
        let io_kind = io_error_kind(error);
        if io_kind == Some(std::io::ErrorKind::ConnectionRefused) {
            return AuthError::Refused { url };
        }
        if io_kind == Some(std::io::ErrorKind::TimedOut) {
            return AuthError::Timeout {
                url,
                secs: self.timeout.as_secs().max(1),
            };
        }
        if chain.contains("dns error")
            || chain.contains("failed to lookup address")
        {
            return AuthError::Dns { url };
        }
        if chain.contains("UnknownIssuer") || chain.contains("unknown issuer") {
            return AuthError::UnknownIssuer { url };
        }
        if chain.contains("certificate")
            || chain.contains("tls")
            || chain.contains("TLS")
        {
            return AuthError::Tls { url, detail: last_cause(error) };
        }
        AuthError::Connect { url, detail: last_cause(error) }
    }
}

fn status_error(url: Url, status: StatusCode) -> AuthError {
    match status.as_u16() {
        429 => AuthError::RateLimited { url },
        500..=599 => AuthError::ServerError { url, status },
        _ => AuthError::UnexpectedStatus { url, status },
    }
}

fn bad_body(url: &Url, status: StatusCode, what: &str) -> AuthError {
    AuthError::BadBody { url: url.clone(), status, what: what.into() }
}

fn parse_json<T: for<'de> Deserialize<'de>>(
    url: &Url,
    status: StatusCode,
    bytes: &[u8],
) -> Result<T, AuthError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(bad_body(url, status, "empty body"));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        // serde's message can quote the input: keep only its category.
        let what = match e.classify() {
            serde_json::error::Category::Syntax
            | serde_json::error::Category::Eof => "not JSON",
            serde_json::error::Category::Data => "unexpected JSON shape",
            serde_json::error::Category::Io => "unreadable",
        };
        bad_body(url, status, what)
    })
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

fn last_cause(error: &dyn std::error::Error) -> String {
    let mut last = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        last = e.to_string();
        source = e.source();
    }
    last
}

fn io_error_kind(error: &dyn std::error::Error) -> Option<std::io::ErrorKind> {
    let mut source = error.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = e.source();
    }
    None
}

fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, AuthError> {
    let ca_error =
        |detail: String| AuthError::CaFile { path: path.into(), detail };
    let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| ca_error(format!("not PEM certificates ({e})")))?;
    if certs.is_empty() {
        return Err(ca_error("no PEM certificate in it".into()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_join_without_doubling_slashes_and_keep_stage_paths() {
        let join = |base: &str, path: &str| {
            endpoint(&Url::parse(base).unwrap(), path).to_string()
        };
        assert_eq!(
            join("https://a.example.com", "login"),
            "https://a.example.com/login"
        );
        assert_eq!(
            join("https://a.example.com/", "login"),
            "https://a.example.com/login"
        );
        assert_eq!(
            join("https://a.example.com/prod/", "login/refresh"),
            "https://a.example.com/prod/login/refresh"
        );
        assert_eq!(
            join("https://a.example.com/prod", "/sites"),
            "https://a.example.com/prod/sites"
        );
    }

    #[test]
    fn json_errors_never_quote_the_body() {
        let url = Url::parse("https://a.example.com/login").unwrap();
        let err = parse_json::<LoginReply>(
            &url,
            StatusCode::OK,
            b"<html>secret-token</html>",
        )
        .err()
        .unwrap();
        let text = err.to_string();
        assert!(
            text.contains("not JSON") && !text.contains("secret-token"),
            "{text}"
        );
    }
}

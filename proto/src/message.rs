//! Requests, responses and errors exchanged over the socket.
//!
//! bincode encodes enum variants by position: append new variants at the
//! end and bump [`crate::PROTOCOL_VERSION`] whenever a message changes.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use crate::Secret;

/// Which token a caller wants. FormKiQ's API wants the access token; the id
/// token exists for the rare tool that asks for it by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenKind {
    /// The access token, accepted by the FormKiQ API.
    Access,
    /// The id token, which the FormKiQ API refuses with 401.
    Id,
}

/// What a client asks of the daemon.
///
/// `profile: None` means the daemon's default profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Liveness and version check.
    Ping,
    /// A token that stays valid for at least `min_valid_secs` (the profile's
    /// default when `None`).
    Get {
        /// The profile to use.
        profile: Option<String>,
        /// Access or id token.
        kind: TokenKind,
        /// Minimum remaining validity the caller needs, in seconds.
        min_valid_secs: Option<u32>,
    },
    /// Log in with a password, replacing any session of the profile.
    Login {
        /// The profile to log in.
        profile: Option<String>,
        /// Overrides the profile's configured username.
        username: Option<String>,
        /// The user's password.
        password: Secret,
        /// The new password, when the server demands one
        /// (`NEW_PASSWORD_REQUIRED`).
        new_password: Option<Secret>,
    },
    /// Forget the profile's tokens.
    Logout {
        /// The profile to log out.
        profile: Option<String>,
    },
    /// The state of one profile, or of all when `None`.
    Status {
        /// The profile to report on.
        profile: Option<String>,
    },
    /// Every configured profile.
    Profiles,
    /// Calls `GET {api_url}/sites` with the profile's access token.
    Sites {
        /// The profile to use.
        profile: Option<String>,
    },
    /// Reread the configuration file.
    Reload,
    /// Stop the daemon after in-flight requests finish.
    Shutdown,
    /// Checks that two URLs are a FormKiQ auth endpoint and API endpoint,
    /// without credentials, before `fkq-cred configure` saves them.
    /// Answered with [`Response::Done`] or an error naming the URL.
    Probe(ProbeTarget),
}

/// The endpoints `fkq-cred configure` asks the daemon to check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeTarget {
    /// The auth endpoint (`UserAuthApiUrl` or `CognitoApiEndpoint`).
    pub auth_url: String,
    /// The API endpoint (`HttpApiUrl`).
    pub api_url: String,
    /// Extra CA certificates (PEM) to trust, as the profile would.
    pub ca_file: Option<std::path::PathBuf>,
}

/// What the daemon answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Answer to [`Request::Ping`].
    Pong {
        /// The daemon's package version.
        version: String,
        /// The daemon's process id.
        pid: u32,
    },
    /// A token.
    Token(TokenReply),
    /// A login succeeded.
    LoggedIn {
        /// The profile now logged in.
        profile: String,
        /// The user it is logged in as.
        username: String,
        /// When the access token expires, Unix seconds.
        expires_at: Option<i64>,
    },
    /// The request was carried out and has nothing to report.
    Done,
    /// Answer to [`Request::Status`].
    Status(Vec<ProfileStatus>),
    /// Answer to [`Request::Profiles`].
    Profiles(Vec<ProfileInfo>),
    /// Answer to [`Request::Sites`].
    Sites(SitesReply),
    /// The request failed.
    Error(WireError),
}

/// A token handed to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenReply {
    /// The profile the token belongs to.
    pub profile: String,
    /// Which token this is.
    pub kind: TokenKind,
    /// The token itself.
    pub token: Secret,
    /// The scheme for the `Authorization` header, normally `Bearer`.
    pub token_type: String,
    /// When the token stops being valid, Unix seconds; `None` for tokens
    /// that carry no expiry (a self-hosted server's API key).
    pub expires_at: Option<i64>,
}

/// A [`Response::Token`] whose parts are borrowed from where the daemon
/// keeps them. It encodes to exactly the bytes of the owned response with
/// the same values, so the daemon answers a `get` from memory without
/// copying the token into a reply that would then have to be wiped.
#[derive(Debug, Clone, Copy)]
pub struct TokenReplyRef<'a> {
    /// The profile the token belongs to.
    pub profile: &'a str,
    /// Which token this is.
    pub kind: TokenKind,
    /// The token itself.
    pub token: &'a Secret,
    /// The scheme for the `Authorization` header.
    pub token_type: &'a str,
    /// When the token stops being valid, Unix seconds.
    pub expires_at: Option<i64>,
}

/// The position of [`Response::Token`] in its enum: the tag bincode writes.
/// Variants are only ever appended, so it never changes; a test holds it
/// to the derived encoding.
const TOKEN_VARIANT: u32 = 1;

impl Serialize for TokenReplyRef<'_> {
    fn serialize<S: Serializer>(
        &self,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        /// The fields of [`TokenReply`], in its order.
        #[derive(Serialize)]
        struct Fields<'a> {
            profile: &'a str,
            kind: TokenKind,
            token: &'a Secret,
            token_type: &'a str,
            expires_at: Option<i64>,
        }
        let fields = Fields {
            profile: self.profile,
            kind: self.kind,
            token: self.token,
            token_type: self.token_type,
            expires_at: self.expires_at,
        };
        serializer.serialize_newtype_variant(
            "Response",
            TOKEN_VARIANT,
            "Token",
            &fields,
        )
    }
}

/// The life-cycle state of a profile's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProfileState {
    /// No tokens; `fkq-cred login` is needed.
    LoggedOut,
    /// A login is in flight.
    LoggingIn,
    /// Valid tokens are held.
    Active,
    /// Valid tokens are held and a refresh is in flight.
    Refreshing,
    /// The last refresh failed; it will be retried.
    Failing,
    /// The server rejected the refresh token or the stored password; only
    /// the user can fix that.
    LoginRequired,
}

impl ProfileState {
    /// The lowercase name used in human and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoggedOut => "logged_out",
            Self::LoggingIn => "logging_in",
            Self::Active => "active",
            Self::Refreshing => "refreshing",
            Self::Failing => "failing",
            Self::LoginRequired => "login_required",
        }
    }
}

/// The state of one profile, for `fkq-cred status`.
///
/// Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileStatus {
    /// The profile name.
    pub profile: String,
    /// The user it logs in as, if known.
    pub username: Option<String>,
    /// The auth endpoint.
    pub auth_url: String,
    /// The API endpoint.
    pub api_url: String,
    /// Where the session stands.
    pub state: ProfileState,
    /// When the access token expires.
    pub expires_at: Option<i64>,
    /// When the daemon plans to refresh it.
    pub refresh_at: Option<i64>,
    /// When the last successful login or refresh completed.
    pub last_refresh: Option<i64>,
    /// Successful logins since the daemon started.
    pub logins: u64,
    /// Successful refreshes since the daemon started.
    pub refreshes: u64,
    /// Failed refresh or login attempts since the daemon started.
    pub failures: u64,
    /// The last failure, written for a person.
    pub last_error: Option<String>,
    /// When the failing state began.
    pub failing_since: Option<i64>,
    /// When the next retry is due.
    pub next_retry: Option<i64>,
}

/// One configured profile, for `fkq-cred profiles`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileInfo {
    /// The profile name.
    pub name: String,
    /// Whether requests without `--profile` use it.
    pub is_default: bool,
    /// The configured username.
    pub username: Option<String>,
    /// The auth endpoint.
    pub auth_url: String,
    /// The API endpoint.
    pub api_url: String,
    /// Whether the daemon holds valid tokens for it.
    pub logged_in: bool,
}

/// One site from `GET /sites`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    /// The site id, `default` for most deployments.
    pub site_id: String,
    /// `READ_WRITE` or `READ_ONLY`.
    pub permission: String,
}

/// The answer of `GET /sites`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SitesReply {
    /// The profile used.
    pub profile: String,
    /// The user the server recognised.
    pub username: String,
    /// The sites the user can reach.
    pub sites: Vec<Site>,
    /// The server's JSON reply, for `--json`.
    pub json: String,
}

/// What went wrong, as a category a script can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// No valid session; `fkq-cred login` is needed.
    NotLoggedIn,
    /// The server rejected the username, password or refresh token.
    AuthRejected,
    /// The server demands a new password before issuing tokens.
    ChallengeRequired,
    /// The server could not be reached or is failing (network, timeout,
    /// 5xx, 429).
    ServerUnreachable,
    /// The URL answers, but is not the endpoint it was configured as.
    WrongEndpoint,
    /// The server answered with something that is not what FormKiQ sends.
    BadResponse,
    /// The API accepted the token but refused the action (403).
    Forbidden,
    /// The API refused the token (401).
    Unauthorized,
    /// The request itself was malformed.
    BadRequest,
    /// No profile of that name is configured.
    UnknownProfile,
    /// The configuration is missing or invalid.
    Config,
    /// The daemon is at its connection limit.
    Busy,
    /// A fault inside the daemon.
    Internal,
}

/// An error that crosses the socket: a category and a message written for
/// the person at the terminal, naming the URL or profile and the next step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// The category.
    pub kind: ErrorKind,
    /// One line for a person: what happened and what to do.
    pub message: String,
}

impl WireError {
    /// Builds an error.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WireError {}

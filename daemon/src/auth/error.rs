//! Every way talking to a deployment can fail, each with a message that
//! names the URL involved and says what to do next.

use std::path::PathBuf;

use fkq_cred_proto::{ErrorKind, Secret, WireError};
use reqwest::{StatusCode, Url};
use thiserror::Error;

use crate::tokens::Identity;

/// Everything that can go wrong talking to a deployment.
#[derive(Debug, Error)]
pub enum AuthError {
    /// Wrong username or password (or a user the pool does not know).
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
        "the server at {url} requires a new password for user {username} \
         before it issues tokens ({name})"
    )]
    ChallengeRequired {
        /// The login URL.
        url: Url,
        /// The user logging in.
        username: String,
        /// The challenge name, `NEW_PASSWORD_REQUIRED`.
        name: String,
        /// The session that answers it.
        session: Secret,
    },
    /// The server asks for something fkq-cred cannot answer (MFA, say).
    #[error(
        "the server at {url} asks for {name} at login, which fkq-cred cannot \
         answer; only a password (and a first new password) is supported"
    )]
    UnsupportedChallenge {
        /// The login URL.
        url: Url,
        /// The challenge name.
        name: String,
    },
    /// The new password was refused, e.g. by the pool's password policy.
    #[error(
        "the server at {url} refused the new password: it does not meet the \
         password policy (length, digits, symbols, upper and lower case); \
         run `fkq-cred login` again and choose another"
    )]
    NewPasswordRefused {
        /// The challenge URL.
        url: Url,
    },
    /// The password-change session is no longer valid.
    #[error(
        "the password-change session at {url} expired or was already used; \
         run `fkq-cred login` again"
    )]
    ChallengeExpired {
        /// The challenge URL.
        url: Url,
    },
    /// Too many failed logins: Cognito locks the user out for a while.
    #[error(
        "{url} refuses logins for this user after too many failed attempts; \
         wait a few minutes, then run `fkq-cred login`"
    )]
    LockedOut {
        /// The login URL.
        url: Url,
    },
    /// An administrator reset the password.
    #[error(
        "{url} requires a password reset for this user: set a new password \
         with the \"forgot password\" page of the FormKiQ console, then run \
         `fkq-cred login`"
    )]
    PasswordResetRequired {
        /// The login URL.
        url: Url,
    },
    /// The account was never confirmed.
    #[error(
        "{url} says this user is not confirmed: confirm the account (the \
         code sent by e-mail) or ask an administrator, then run `fkq-cred login`"
    )]
    UserNotConfirmed {
        /// The login URL.
        url: Url,
    },
    /// `/login` is not there: the API URL was likely used as the auth URL.
    #[error(
        "{url} answered {status}: this looks like the API URL; auth_url must \
         be the stack output UserAuthApiUrl (or CognitoApiEndpoint), while \
         api_url ({api_url}) is HttpApiUrl"
    )]
    LoginNotFound {
        /// The login URL.
        url: Url,
        /// 404, or 403 as API Gateway answers unknown routes.
        status: StatusCode,
        /// The profile's API URL, for comparison.
        api_url: Url,
    },
    /// The deployment has no `/login/refresh` (older stacks).
    #[error(
        "{url} answered 404 Not Found: this deployment has no refresh endpoint"
    )]
    RefreshNotFound {
        /// The refresh URL.
        url: Url,
    },
    /// `cognito_endpoint` does not answer like Cognito.
    #[error(
        "{url} answered {status}: it does not look like the Cognito user-pool \
         API; check cognito_endpoint and region in the profile"
    )]
    NotCognito {
        /// The Cognito URL.
        url: Url,
        /// The status.
        status: StatusCode,
    },
    /// Cognito refused the request for a reason in the user's setup.
    #[error("Cognito at {url} refused the request ({error_type}): {hint}")]
    CognitoRefused {
        /// The Cognito URL.
        url: Url,
        /// Cognito's exception name.
        error_type: String,
        /// What to check.
        hint: &'static str,
    },
    /// `/sites` is not there: the API URL is likely wrong.
    #[error(
        "{url} answered 404 Not Found: api_url looks wrong; it is the stack \
         output HttpApiUrl (not the auth URL)"
    )]
    ApiNotFound {
        /// The sites URL.
        url: Url,
    },
    /// The API refused the token.
    #[error(
        "the API at {url} refused the access token (401 Unauthorized) even \
         after a refresh; check that api_url (HttpApiUrl) and the auth \
         endpoint belong to the same deployment"
    )]
    Unauthorized {
        /// The API URL.
        url: Url,
    },
    /// The API accepted the token but not the action.
    #[error(
        "the API at {url} denied access (403 Forbidden) to user {user} in \
         groups [{groups}]; ask a FormKiQ administrator for access to a site",
        user = identity.username.as_deref().unwrap_or("(unknown)"),
        groups = identity.groups.join(", ")
    )]
    Forbidden {
        /// The API URL.
        url: Url,
        /// Who the token says the user is.
        identity: Identity,
    },
    /// HTTP 429, or Cognito's `TooManyRequestsException`.
    #[error("{url} is rate-limiting requests (too many requests); fkq-credd retries after a pause")]
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
        "the reply from {url} ({status}) is not FormKiQ's JSON ({what}); check \
         that the URL points at the FormKiQ endpoint and not at a proxy or web page"
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
        "the TLS certificate of {url} is not signed by a trusted authority; if \
         the deployment uses a private CA, set `ca_file` in the profile to its PEM file"
    )]
    UnknownIssuer {
        /// The URL.
        url: Url,
    },
    /// Another TLS failure.
    #[error("TLS with {url} failed ({detail}); check that the URL is the HTTPS endpoint")]
    Tls {
        /// The URL.
        url: Url,
        /// The TLS library's words.
        detail: String,
    },
    /// The connection broke before a whole reply arrived.
    #[error("{url} closed the connection before it answered; fkq-credd retries by itself")]
    ConnectionClosed {
        /// The URL.
        url: Url,
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
            Self::Rejected { .. }
            | Self::LockedOut { .. }
            | Self::PasswordResetRequired { .. }
            | Self::UserNotConfirmed { .. } => ErrorKind::AuthRejected,
            Self::RefreshRejected { .. } => ErrorKind::NotLoggedIn,
            Self::ChallengeRequired { .. }
            | Self::NewPasswordRefused { .. }
            | Self::ChallengeExpired { .. } => ErrorKind::ChallengeRequired,
            Self::LoginNotFound { .. }
            | Self::ApiNotFound { .. }
            | Self::RefreshNotFound { .. }
            | Self::NotCognito { .. } => ErrorKind::WrongEndpoint,
            Self::Unauthorized { .. } => ErrorKind::Unauthorized,
            Self::Forbidden { .. } => ErrorKind::Forbidden,
            Self::UnexpectedStatus { .. }
            | Self::BadBody { .. }
            | Self::UnsupportedChallenge { .. } => ErrorKind::BadResponse,
            Self::CaFile { .. } | Self::CognitoRefused { .. } => {
                ErrorKind::Config
            }
            Self::RateLimited { .. }
            | Self::ServerError { .. }
            | Self::Timeout { .. }
            | Self::Dns { .. }
            | Self::Refused { .. }
            | Self::UnknownIssuer { .. }
            | Self::Tls { .. }
            | Self::ConnectionClosed { .. }
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
                | Self::ConnectionClosed { .. }
                | Self::Connect { .. }
                | Self::BadBody { .. }
        )
    }

    /// Whether only the user can fix this login failure: trying again
    /// with the same password would fail again, or lock the account.
    pub fn needs_user(&self) -> bool {
        matches!(
            self,
            Self::Rejected { .. }
                | Self::ChallengeRequired { .. }
                | Self::UnsupportedChallenge { .. }
                | Self::LockedOut { .. }
                | Self::PasswordResetRequired { .. }
                | Self::UserNotConfirmed { .. }
        )
    }

    /// The error as it crosses the socket.
    pub fn to_wire(&self) -> WireError {
        WireError::new(self.kind(), self.to_string())
    }
}

/// What an error reply says went wrong, read from the `code` (self-hosted
/// server), `__type` (Cognito) and `message` or `error` fields of its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Wrong password, unknown user, revoked token, invalid session.
    NotAuthorized,
    /// Cognito's lockout after too many failed logins.
    TooManyFailedAttempts,
    /// An administrator reset the password.
    PasswordResetRequired,
    /// The account is not confirmed.
    UserNotConfirmed,
    /// Too many requests.
    TooManyRequests,
    /// The new password breaks the password policy.
    InvalidPassword,
    /// Cognito knows no such app client (or, answering a challenge, no
    /// such session).
    ResourceNotFound,
    /// Cognito refused a parameter: a flow the app client does not allow.
    InvalidParameter,
    /// Cognito failed inside.
    Internal,
    /// A body of the expected JSON shape that names none of the above.
    Unrecognised,
}

impl Refusal {
    /// Classifies an error reply by its exception name and message.
    pub fn classify(error_type: Option<&str>, message: Option<&str>) -> Self {
        // AWS may prefix the name with a namespace: `ns#NotAuthorized...`.
        let error_type =
            error_type.map(|t| t.rsplit('#').next().unwrap_or(t).trim());
        let message = message.unwrap_or_default().to_ascii_lowercase();
        match error_type {
            Some("NotAuthorizedException")
                if message.contains("attempts exceeded") =>
            {
                Self::TooManyFailedAttempts
            }
            Some("NotAuthorizedException" | "UserNotFoundException") => {
                Self::NotAuthorized
            }
            Some("PasswordResetRequiredException") => {
                Self::PasswordResetRequired
            }
            Some("UserNotConfirmedException") => Self::UserNotConfirmed,
            Some("TooManyRequestsException" | "LimitExceededException") => {
                Self::TooManyRequests
            }
            Some("InvalidPasswordException") => Self::InvalidPassword,
            Some("ResourceNotFoundException") => Self::ResourceNotFound,
            Some("InvalidParameterException") => Self::InvalidParameter,
            Some("InternalErrorException") => Self::Internal,
            // The FormKiQ Lambda passes Cognito's message on without its
            // exception name; the messages are Cognito's fixed wording.
            _ if message.contains("attempts exceeded") => {
                Self::TooManyFailedAttempts
            }
            _ if message.contains("password reset required") => {
                Self::PasswordResetRequired
            }
            _ if message.contains("not confirmed") => Self::UserNotConfirmed,
            _ if message.contains("does not conform to policy") => {
                Self::InvalidPassword
            }
            _ if message.contains("invalid session") => Self::NotAuthorized,
            _ if message.contains("incorrect")
                || message.contains("invalid username")
                || message.contains("does not exist")
                || message.contains("disabled") =>
            {
                Self::NotAuthorized
            }
            _ => Self::Unrecognised,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_read_from_codes_types_and_cognitos_messages() {
        let cases = [
            (None, Some("Incorrect username or password"), Refusal::NotAuthorized),
            (None, Some("Invalid username or password."), Refusal::NotAuthorized),
            (
                Some("NotAuthorizedException"),
                Some("Incorrect username or password."),
                Refusal::NotAuthorized,
            ),
            (
                Some("com.amazonaws.cognito#NotAuthorizedException"),
                Some("Password attempts exceeded"),
                Refusal::TooManyFailedAttempts,
            ),
            (None, Some("Password attempts exceeded"), Refusal::TooManyFailedAttempts),
            (Some("UserNotFoundException"), None, Refusal::NotAuthorized),
            (
                Some("PasswordResetRequiredException"),
                None,
                Refusal::PasswordResetRequired,
            ),
            (None, Some("Password reset required for the user"), Refusal::PasswordResetRequired),
            (None, Some("User is not confirmed."), Refusal::UserNotConfirmed),
            (Some("TooManyRequestsException"), None, Refusal::TooManyRequests),
            (
                None,
                Some("Password does not conform to policy: Password not long enough"),
                Refusal::InvalidPassword,
            ),
            (Some("ResourceNotFoundException"), None, Refusal::ResourceNotFound),
            (None, Some("something else entirely"), Refusal::Unrecognised),
            (None, None, Refusal::Unrecognised),
        ];
        for (error_type, message, expected) in cases {
            assert_eq!(
                Refusal::classify(error_type, message),
                expected,
                "{error_type:?} {message:?}"
            );
        }
    }

    #[test]
    fn user_fixable_failures_stop_automatic_logins_and_network_ones_retry() {
        let url = Url::parse("https://auth.example.com/login").unwrap();
        let locked = AuthError::LockedOut { url: url.clone() };
        assert!(locked.needs_user() && !locked.is_transient());
        let closed = AuthError::ConnectionClosed { url };
        assert!(!closed.needs_user() && closed.is_transient());
        assert_eq!(closed.kind(), ErrorKind::ServerUnreachable);
    }
}

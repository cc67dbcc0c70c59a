//! The FormKiQ auth endpoint (`provider = "formkiq"`): `POST /login`,
//! `POST /login/refresh` and `POST /respondToAuthChallenge`, in every
//! dialect of `FORMKIQ-AUTH.md` (the AWS stack, the self-hosted server, a
//! Keycloak-backed server).

#![allow(clippy::result_large_err)]

use std::time::{Duration, SystemTime};

use fkq_cred_proto::Secret;
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::http::{bad_body, parse_json, ErrorBody, Http, Reply};
use super::{endpoint, AuthError, Refusal};
use crate::tokens::{AuthResult, TokenSet};

/// The challenge FormKiQ can answer: the first password of a user an
/// administrator created.
pub const NEW_PASSWORD_REQUIRED: &str = "NEW_PASSWORD_REQUIRED";

/// What API Gateway's JWT authorizer answers a request without a token.
const AUTHORIZER_REFUSAL: &str = "Unauthorized";

/// Talks to one deployment's auth endpoint.
pub struct Formkiq {
    auth_url: Url,
    api_url: Url,
    default_lifetime: Duration,
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

/// A login or refresh reply: tokens, or a challenge instead of them.
/// `ChallengeParameters` and anything else are ignored.
#[derive(Deserialize)]
pub struct LoginReply {
    /// The tokens; absent, or all null, when a challenge is set.
    #[serde(rename = "AuthenticationResult")]
    pub result: Option<AuthResult>,
    /// The challenge name, e.g. `NEW_PASSWORD_REQUIRED`.
    #[serde(rename = "ChallengeName")]
    pub challenge: Option<String>,
    /// The session that answers the challenge.
    #[serde(rename = "Session")]
    pub session: Option<Secret>,
}

impl LoginReply {
    /// The token set of a reply, or the challenge it carries instead.
    pub fn into_tokens(
        self,
        url: &Url,
        status: StatusCode,
        username: &str,
        received_at: SystemTime,
        default_lifetime: Duration,
        previous_refresh: Option<&Secret>,
    ) -> Result<TokenSet, AuthError> {
        let has_tokens = self.result.as_ref().is_some_and(|r| {
            r.access_token.as_ref().is_some_and(|t| !t.is_empty())
        });
        if let Some(name) = self.challenge.filter(|c| !c.is_empty()) {
            if !has_tokens {
                return Err(challenge_error(url, username, name, self.session));
            }
        }
        let result = self
            .result
            .ok_or_else(|| bad_body(url, status, "no AuthenticationResult"))?;
        TokenSet::from_reply(
            result,
            received_at,
            default_lifetime,
            previous_refresh,
        )
        .map_err(|e| bad_body(url, status, e.what()))
    }
}

/// The error for a login answered with a challenge.
pub fn challenge_error(
    url: &Url,
    username: &str,
    name: String,
    session: Option<Secret>,
) -> AuthError {
    if name != NEW_PASSWORD_REQUIRED {
        return AuthError::UnsupportedChallenge { url: url.clone(), name };
    }
    AuthError::ChallengeRequired {
        url: url.clone(),
        username: username.to_owned(),
        name,
        session: session.unwrap_or_default(),
    }
}

impl Formkiq {
    /// The provider for a profile's `auth_url`; `api_url` is named in the
    /// message when the two look swapped.
    pub fn new(
        auth_url: Url,
        api_url: Url,
        default_lifetime: Duration,
    ) -> Self {
        Self { auth_url, api_url, default_lifetime }
    }

    /// The auth endpoint's base URL, as the profile names it.
    pub fn auth_url(&self) -> &Url {
        &self.auth_url
    }

    /// The error for a 400 or 401 reply to a login, by what its body says.
    fn login_refusal(
        &self,
        url: Url,
        status: StatusCode,
        body: &[u8],
    ) -> AuthError {
        let error_body: ErrorBody = match parse_json(&url, status, body) {
            Ok(parsed) => parsed,
            Err(error) => return error,
        };
        // API Gateway's authorizer, not the login Lambda: this URL wants a
        // token, so it is an API URL rather than the auth endpoint.
        if status == StatusCode::UNAUTHORIZED
            && error_body.text() == Some(AUTHORIZER_REFUSAL)
            && error_body.error_type().is_none()
        {
            return self.not_found(url, status);
        }
        match Refusal::classify(error_body.error_type(), error_body.text()) {
            Refusal::TooManyFailedAttempts => AuthError::LockedOut { url },
            Refusal::PasswordResetRequired => {
                AuthError::PasswordResetRequired { url }
            }
            Refusal::UserNotConfirmed => AuthError::UserNotConfirmed { url },
            Refusal::TooManyRequests => AuthError::RateLimited { url },
            Refusal::Internal => AuthError::ServerError { url, status },
            // A 400 or 401 on /login means the credentials for every
            // dialect FormKiQ documents, whatever the exact wording.
            _ => AuthError::Rejected { url },
        }
    }

    fn not_found(&self, url: Url, status: StatusCode) -> AuthError {
        AuthError::LoginNotFound { url, status, api_url: self.api_url.clone() }
    }

    /// `POST {auth}/login`.
    pub async fn login(
        &self,
        http: &Http,
        username: &str,
        password: &Secret,
    ) -> Result<TokenSet, AuthError> {
        let url = endpoint(&self.auth_url, "login");
        let body = LoginBody { username, password: password.expose() };
        let request = http.client().post(url.clone()).json(&body);
        let Reply { status, body, received_at } =
            http.send(request, &url).await?;
        match status.as_u16() {
            200..=299 => {}
            400 | 401 => return Err(self.login_refusal(url, status, &body)),
            403 | 404 => return Err(self.not_found(url, status)),
            _ => return Err(status_error(url, status)),
        }
        let reply: LoginReply = parse_json(&url, status, &body)?;
        reply.into_tokens(
            &url,
            status,
            username,
            received_at,
            self.default_lifetime,
            None,
        )
    }

    /// `POST {auth}/login/refresh`, keeping `previous.refresh` unless the
    /// reply rotates it. A self-hosted server's empty refresh token is
    /// sent as it came: that server answers it with the same API key.
    pub async fn refresh(
        &self,
        http: &Http,
        previous: &TokenSet,
    ) -> Result<TokenSet, AuthError> {
        let url = endpoint(&self.auth_url, "login/refresh");
        let body = RefreshBody { refresh_token: previous.refresh.expose() };
        let request = http.client().post(url.clone()).json(&body);
        let Reply { status, body, received_at } =
            http.send(request, &url).await?;
        match status.as_u16() {
            200..=299 => {}
            400 | 401 => {
                let error_body: ErrorBody = parse_json(&url, status, &body)?;
                let refusal = Refusal::classify(
                    error_body.error_type(),
                    error_body.text(),
                );
                return Err(match refusal {
                    Refusal::TooManyRequests => AuthError::RateLimited { url },
                    _ => AuthError::RefreshRejected { url },
                });
            }
            404 => return Err(AuthError::RefreshNotFound { url }),
            _ => return Err(status_error(url, status)),
        }
        let reply: LoginReply = parse_json(&url, status, &body)?;
        let username = previous.identity.username.clone().unwrap_or_default();
        reply.into_tokens(
            &url,
            status,
            &username,
            received_at,
            self.default_lifetime,
            Some(&previous.refresh),
        )
    }

    /// Sets the first password with `POST {auth}/respondToAuthChallenge`,
    /// then logs in with it: FormKiQ's answer carries no tokens.
    pub async fn answer_new_password(
        &self,
        http: &Http,
        username: &str,
        session: &Secret,
        new_password: &Secret,
    ) -> Result<TokenSet, AuthError> {
        let url = endpoint(&self.auth_url, "respondToAuthChallenge");
        let body = ChallengeBody {
            username,
            user_status: NEW_PASSWORD_REQUIRED,
            session: session.expose(),
            password: new_password.expose(),
        };
        let request = http.client().post(url.clone()).json(&body);
        let Reply { status, body, .. } = http.send(request, &url).await?;
        match status.as_u16() {
            200..=299 => {}
            400 | 401 => return Err(challenge_refusal(url, status, &body)),
            403 | 404 => return Err(self.not_found(url, status)),
            _ => return Err(status_error(url, status)),
        }
        self.login(http, username, new_password).await
    }
}

/// The error for a 400 or 401 reply to a challenge answer.
fn challenge_refusal(url: Url, status: StatusCode, body: &[u8]) -> AuthError {
    let error_body: ErrorBody = match parse_json(&url, status, body) {
        Ok(parsed) => parsed,
        Err(error) => return error,
    };
    match Refusal::classify(error_body.error_type(), error_body.text()) {
        Refusal::InvalidPassword => AuthError::NewPasswordRefused { url },
        Refusal::TooManyRequests => AuthError::RateLimited { url },
        _ => AuthError::ChallengeExpired { url },
    }
}

/// The error for a status that has the same meaning on every endpoint.
pub fn status_error(url: Url, status: StatusCode) -> AuthError {
    match status.as_u16() {
        429 => AuthError::RateLimited { url },
        500..=599 => AuthError::ServerError { url, status },
        _ => AuthError::UnexpectedStatus { url, status },
    }
}

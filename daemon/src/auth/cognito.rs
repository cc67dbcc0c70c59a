//! The Cognito user-pool API (`provider = "cognito"`): `InitiateAuth`
//! with `USER_PASSWORD_AUTH` and `REFRESH_TOKEN_AUTH`, and
//! `RespondToAuthChallenge` for a first password, spoken directly to the
//! pool that a FormKiQ deployment logs its users in with. The app client
//! of a FormKiQ stack allows both flows and has no secret, so no AWS
//! signature is needed.

#![allow(clippy::result_large_err)]

use std::time::Duration;

use fkq_cred_proto::Secret;
use reqwest::{StatusCode, Url};
use serde::Serialize;

use super::formkiq::{LoginReply, NEW_PASSWORD_REQUIRED};
use super::http::{parse_json, ErrorBody, Http, Reply};
use super::{AuthError, Refusal};
use crate::tokens::TokenSet;

/// The content type of the AWS JSON 1.1 protocol.
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The prefix of every `X-Amz-Target` of the user-pool API.
const TARGET_PREFIX: &str = "AWSCognitoIdentityProviderService.";

/// What to check when Cognito knows no such app client.
const HINT_CLIENT: &str = "no app client with this client_id here; check \
     client_id (stack output CognitoClientId), region and cognito_endpoint";

/// What to check when Cognito refuses the flow.
const HINT_FLOW: &str = "check that the app client allows \
     USER_PASSWORD_AUTH and REFRESH_TOKEN_AUTH";

/// What to check for any other refusal.
const HINT_OTHER: &str = "see Cognito's documentation of this error";

/// Which call a reply answers, for choosing the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Login,
    Refresh,
    Challenge,
}

/// Talks to one user pool through its app client.
pub struct Cognito {
    endpoint: Url,
    client_id: String,
    default_lifetime: Duration,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct InitiateAuth<'a, P: Serialize> {
    auth_flow: &'a str,
    client_id: &'a str,
    auth_parameters: P,
}

#[derive(Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
struct PasswordParameters<'a> {
    username: &'a str,
    password: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
struct RefreshParameters<'a> {
    refresh_token: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RespondToAuthChallenge<'a> {
    challenge_name: &'a str,
    client_id: &'a str,
    session: &'a str,
    challenge_responses: NewPasswordResponses<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
struct NewPasswordResponses<'a> {
    username: &'a str,
    new_password: &'a str,
}

impl Cognito {
    /// The provider for a pool's API at `endpoint`, through `client_id`.
    pub fn new(
        endpoint: Url,
        client_id: String,
        default_lifetime: Duration,
    ) -> Self {
        Self { endpoint, client_id, default_lifetime }
    }

    /// `InitiateAuth` with `USER_PASSWORD_AUTH`.
    pub async fn login(
        &self,
        http: &Http,
        username: &str,
        password: &Secret,
    ) -> Result<TokenSet, AuthError> {
        let body = InitiateAuth {
            auth_flow: "USER_PASSWORD_AUTH",
            client_id: &self.client_id,
            auth_parameters: PasswordParameters {
                username,
                password: password.expose(),
            },
        };
        let reply = self.call(http, "InitiateAuth", &body, Call::Login).await?;
        self.tokens(reply, username, None)
    }

    /// `InitiateAuth` with `REFRESH_TOKEN_AUTH`; Cognito sends no new
    /// refresh token unless rotation is on, so the old one is kept.
    pub async fn refresh(
        &self,
        http: &Http,
        previous: &TokenSet,
    ) -> Result<TokenSet, AuthError> {
        let body = InitiateAuth {
            auth_flow: "REFRESH_TOKEN_AUTH",
            client_id: &self.client_id,
            auth_parameters: RefreshParameters {
                refresh_token: previous.refresh.expose(),
            },
        };
        let reply =
            self.call(http, "InitiateAuth", &body, Call::Refresh).await?;
        let username = previous.identity.username.clone().unwrap_or_default();
        self.tokens(reply, &username, Some(&previous.refresh))
    }

    /// `RespondToAuthChallenge` with the first password; Cognito answers
    /// with tokens at once.
    pub async fn answer_new_password(
        &self,
        http: &Http,
        username: &str,
        session: &Secret,
        new_password: &Secret,
    ) -> Result<TokenSet, AuthError> {
        let body = RespondToAuthChallenge {
            challenge_name: NEW_PASSWORD_REQUIRED,
            client_id: &self.client_id,
            session: session.expose(),
            challenge_responses: NewPasswordResponses {
                username,
                new_password: new_password.expose(),
            },
        };
        let reply = self
            .call(http, "RespondToAuthChallenge", &body, Call::Challenge)
            .await?;
        self.tokens(reply, username, None)
    }

    async fn call(
        &self,
        http: &Http,
        operation: &str,
        body: &impl Serialize,
        call: Call,
    ) -> Result<Reply, AuthError> {
        let url = &self.endpoint;
        let request = http
            .client()
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header("X-Amz-Target", format!("{TARGET_PREFIX}{operation}"))
            .body(serde_json::to_vec(body).unwrap_or_default());
        let reply = http.send(request, url).await?;
        match reply.status.as_u16() {
            200..=299 => Ok(reply),
            400 => Err(self.refusal(call, reply.status, &reply.body)),
            429 => Err(AuthError::RateLimited { url: url.clone() }),
            500..=599 => Err(AuthError::ServerError {
                url: url.clone(),
                status: reply.status,
            }),
            _ => Err(AuthError::NotCognito {
                url: url.clone(),
                status: reply.status,
            }),
        }
    }

    fn tokens(
        &self,
        reply: Reply,
        username: &str,
        previous_refresh: Option<&Secret>,
    ) -> Result<TokenSet, AuthError> {
        let parsed: LoginReply =
            parse_json(&self.endpoint, reply.status, &reply.body)?;
        parsed.into_tokens(
            &self.endpoint,
            reply.status,
            username,
            reply.received_at,
            self.default_lifetime,
            previous_refresh,
        )
    }

    /// Maps Cognito's exception to the error of the same meaning that the
    /// FormKiQ endpoint would have caused.
    fn refusal(
        &self,
        call: Call,
        status: StatusCode,
        body: &[u8],
    ) -> AuthError {
        let url = self.endpoint.clone();
        let error_body: ErrorBody = match parse_json(&url, status, body) {
            Ok(parsed) => parsed,
            Err(error) => return error,
        };
        let error_type = error_body.error_type().unwrap_or("unnamed error");
        let error_type =
            error_type.rsplit('#').next().unwrap_or(error_type).to_owned();
        let refused = |hint| AuthError::CognitoRefused {
            url: url.clone(),
            error_type: error_type.clone(),
            hint,
        };
        let refusal =
            Refusal::classify(error_body.error_type(), error_body.text());
        match (call, refusal) {
            (_, Refusal::TooManyRequests) => AuthError::RateLimited { url },
            (_, Refusal::Internal) => AuthError::ServerError { url, status },
            (Call::Login, Refusal::TooManyFailedAttempts) => {
                AuthError::LockedOut { url }
            }
            (Call::Login, Refusal::NotAuthorized) => {
                AuthError::Rejected { url }
            }
            (Call::Refresh, Refusal::NotAuthorized) => {
                AuthError::RefreshRejected { url }
            }
            (
                Call::Challenge,
                Refusal::NotAuthorized | Refusal::ResourceNotFound,
            ) => AuthError::ChallengeExpired { url },
            (Call::Challenge, Refusal::InvalidPassword) => {
                AuthError::NewPasswordRefused { url }
            }
            (_, Refusal::PasswordResetRequired) => {
                AuthError::PasswordResetRequired { url }
            }
            (_, Refusal::UserNotConfirmed) => {
                AuthError::UserNotConfirmed { url }
            }
            (_, Refusal::ResourceNotFound) => refused(HINT_CLIENT),
            (_, Refusal::InvalidParameter) => refused(HINT_FLOW),
            _ => refused(HINT_OTHER),
        }
    }
}

/// The regional Cognito user-pool endpoint, for a profile that names no
/// `cognito_endpoint`.
pub fn regional_endpoint(region: &str) -> String {
    format!("https://cognito-idp.{region}.amazonaws.com/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> Cognito {
        let url = Url::parse("http://127.0.0.1:1/").unwrap();
        Cognito::new(url, "client".into(), Duration::from_secs(60))
    }

    #[test]
    fn cognitos_exceptions_map_to_the_same_errors_as_formkiqs_replies() {
        let body = |error_type: &str, message: &str| {
            format!(r#"{{"__type":"{error_type}","message":"{message}"}}"#)
        };
        let cases: [(Call, String, &str); 9] = [
            (
                Call::Login,
                body(
                    "NotAuthorizedException",
                    "Incorrect username or password.",
                ),
                "Rejected",
            ),
            (
                Call::Login,
                body("UserNotFoundException", "User does not exist."),
                "Rejected",
            ),
            (
                Call::Login,
                body("NotAuthorizedException", "Password attempts exceeded"),
                "LockedOut",
            ),
            (
                Call::Login,
                body("PasswordResetRequiredException", "x"),
                "PasswordResetRequired",
            ),
            (
                Call::Login,
                body("UserNotConfirmedException", "x"),
                "UserNotConfirmed",
            ),
            (Call::Login, body("TooManyRequestsException", "x"), "RateLimited"),
            (
                Call::Refresh,
                body(
                    "NotAuthorizedException",
                    "Refresh Token has been revoked",
                ),
                "RefreshRejected",
            ),
            (
                Call::Challenge,
                body("InvalidPasswordException", "x"),
                "NewPasswordRefused",
            ),
            (
                Call::Login,
                body("ResourceNotFoundException", "x"),
                "CognitoRefused",
            ),
        ];
        for (call, body, expected) in cases {
            let error = provider().refusal(
                call,
                StatusCode::BAD_REQUEST,
                body.as_bytes(),
            );
            let name = format!("{error:?}");
            assert!(name.starts_with(expected), "{body}: {name}");
        }
    }

    #[test]
    fn the_default_endpoint_is_the_regional_one() {
        assert_eq!(
            regional_endpoint("eu-west-1"),
            "https://cognito-idp.eu-west-1.amazonaws.com/"
        );
    }
}

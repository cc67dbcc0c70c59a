//! The endpoints of a FormKiQ deployment, answering with the statuses and
//! bodies each variant of `FORMKIQ-AUTH.md` sends.

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Request, StatusCode};
use serde_json::{json, Map, Value};

use super::routes::{not_found, parse_object, Answer, AppState, BodyError};
use super::tokens::TokenPair;
use super::users::{AnswerError, Check};
use super::Variant;

/// The role FormKiQ gives members of the `default` group.
const DEFAULT_ROLE: &str = "DEFAULT";

/// The challenge Cognito sets for users an administrator created.
const NEW_PASSWORD_REQUIRED: &str = "NEW_PASSWORD_REQUIRED";

/// `POST /login`: a password login, as the FormKiQ auth Lambda answers it.
pub(crate) fn login(
    state: &AppState,
    body: Result<Bytes, BodyError>,
) -> Answer {
    let fields = match body.and_then(|bytes| parse_object(&bytes)) {
        Ok(fields) => fields,
        Err(refused) => return refused.answer(),
    };
    let (Some(username), Some(password)) =
        (text_field(&fields, "username"), text_field(&fields, "password"))
    else {
        return field_errors("'username' and 'password' are required");
    };
    match state.users.check(username, password) {
        Check::Wrong => return wrong_credentials(state.variant),
        Check::MustChange => return new_password_challenge(state, username),
        Check::Valid => {}
    }

    if state.variant == Variant::SelfHosted {
        return api_key_result(state);
    }
    match state.tokens.login(username) {
        Ok((pair, refresh_token)) => {
            token_result(state, pair, Some(refresh_token))
        }
        Err(cause) => internal_error(&cause),
    }
}

/// `POST /login/refresh`: new access and id tokens for a refresh token.
pub(crate) fn refresh(
    state: &AppState,
    body: Result<Bytes, BodyError>,
) -> Answer {
    if !state.has_refresh_endpoint {
        return not_found();
    }
    let fields = match body.and_then(|bytes| parse_object(&bytes)) {
        Ok(fields) => fields,
        Err(refused) => return refused.answer(),
    };
    if state.variant == Variant::SelfHosted {
        // The self-hosted server hands out "" as the refresh token, and
        // takes it, or the API key itself, to hand out the same key.
        return match fields.get("refreshToken").and_then(Value::as_str) {
            Some("") => api_key_result(state),
            Some(token) if token == state.api_key => api_key_result(state),
            Some(_) => coded_error("Incorrect refresh token."),
            None => field_errors("'refreshToken' is required"),
        };
    }
    // The real handler's wording for this case is not documented; this
    // mirrors the login's missing-field answer so clients parse both alike.
    let Some(refresh_token) = text_field(&fields, "refreshToken") else {
        return field_errors("'refreshToken' is required");
    };

    let rotate = state.settings.rotates_refresh_tokens();
    match state.tokens.refresh(refresh_token, rotate) {
        // Without rotation there is no RefreshToken in the answer:
        // Cognito's default, so clients must keep the one they have.
        Ok(Some((pair, rotated))) => token_result(state, pair, rotated),
        Ok(None) => {
            Answer::message(StatusCode::BAD_REQUEST, "Incorrect refresh token")
        }
        Err(cause) => internal_error(&cause),
    }
}

/// `POST /respondToAuthChallenge`: a new password for a user in
/// `FORCE_CHANGE_PASSWORD`, with the session its login answered. Success
/// issues no tokens: the client logs in again with the new password.
pub(crate) fn challenge(
    state: &AppState,
    body: Result<Bytes, BodyError>,
) -> Answer {
    let fields = match body.and_then(|bytes| parse_object(&bytes)) {
        Ok(fields) => fields,
        Err(refused) => return refused.answer(),
    };
    let (Some(username), Some(session), Some(password)) = (
        text_field(&fields, "username"),
        text_field(&fields, "session"),
        text_field(&fields, "password"),
    ) else {
        return field_errors(
            "'username', 'session' and 'password' are required",
        );
    };
    if text_field(&fields, "userStatus") != Some(NEW_PASSWORD_REQUIRED) {
        return Answer::message(
            StatusCode::BAD_REQUEST,
            "unsupported userStatus",
        );
    }
    match state.users.answer(username, session, password) {
        Ok(()) => Answer::message(StatusCode::OK, "Password changed"),
        Err(AnswerError::BadSession) => Answer::message(
            StatusCode::BAD_REQUEST,
            "Invalid session for the user, session is expired.",
        ),
        Err(AnswerError::TooShort) => Answer::message(
            StatusCode::BAD_REQUEST,
            "Password does not conform to policy: Password not long enough",
        ),
    }
}

/// `GET /sites`: the sites of the user an access token belongs to.
pub(crate) fn sites(state: &AppState, request: &Request<Incoming>) -> Answer {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let username = if state.variant == Variant::SelfHosted {
        // The self-hosted server takes its API key with or without the
        // Bearer scheme; the key stands for its one administrator.
        let key = header.map(|h| h.strip_prefix("Bearer ").unwrap_or(h));
        if key != Some(state.api_key.as_str()) {
            tracing::debug!("no valid API key on a /sites request");
            return Answer::message(StatusCode::UNAUTHORIZED, "Unauthorized");
        }
        state.users.first().to_owned()
    } else {
        // API Gateway's JWT authorizer wants exactly "Bearer <token>"; a
        // bare token is refused like a missing one.
        let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            tracing::debug!("no bearer token on a /sites request");
            return Answer::message(StatusCode::UNAUTHORIZED, "Unauthorized");
        };
        match state.tokens.verify_user(token) {
            Ok(username) => username,
            Err(cause) => {
                tracing::debug!(%cause, "token refused on a /sites request");
                return Answer::message(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                );
            }
        }
    };

    Answer::json(
        StatusCode::OK,
        &json!({
            "username": username,
            "roles": [DEFAULT_ROLE],
            "sites": [{
                "siteId": "default",
                "permission": "READ_WRITE",
                "permissions": ["DELETE", "READ", "WRITE"],
            }],
        }),
    )
}

/// The tokens of a login or refresh in the variant's shape: only the AWS
/// stack states `ExpiresIn`; a refresh token is sent only when given.
fn token_result(
    state: &AppState,
    pair: TokenPair,
    refresh_token: Option<String>,
) -> Answer {
    let mut result = json!({
        "AccessToken": pair.access,
        "IdToken": pair.id,
        "TokenType": "Bearer",
    });
    if let Some(refresh_token) = refresh_token {
        result["RefreshToken"] = Value::String(refresh_token);
    }
    if state.variant == Variant::Aws {
        result["ExpiresIn"] = json!(state.tokens.lifetime_secs());
    }
    Answer::json(StatusCode::OK, &json!({ "AuthenticationResult": result }))
}

/// The self-hosted server's tokens: its API key twice and an empty
/// refresh token; no `ExpiresIn`, no `TokenType`.
fn api_key_result(state: &AppState) -> Answer {
    Answer::json(
        StatusCode::OK,
        &json!({ "AuthenticationResult": {
            "AccessToken": state.api_key,
            "IdToken": state.api_key,
            "RefreshToken": "",
        }}),
    )
}

/// Cognito's answer to a login of a user in `FORCE_CHANGE_PASSWORD`: a
/// challenge and a session instead of tokens, beside an
/// `AuthenticationResult` whose fields are all null.
fn new_password_challenge(state: &AppState, username: &str) -> Answer {
    let session = match state.tokens.random_token() {
        Ok(session) => session,
        Err(cause) => return internal_error(&cause),
    };
    state.users.open_session(username, session.clone());
    let attributes = json!({ "email": username }).to_string();
    Answer::json(
        StatusCode::OK,
        &json!({
            "AuthenticationResult": {
                "AccessToken": null,
                "ExpiresIn": null,
                "IdToken": null,
                "RefreshToken": null,
                "TokenType": null,
            },
            "ChallengeName": NEW_PASSWORD_REQUIRED,
            "Session": session,
            "ChallengeParameters": {
                "USER_ID_FOR_SRP": username,
                "requiredAttributes": "[]",
                "userAttributes": attributes,
            },
        }),
    )
}

fn wrong_credentials(variant: Variant) -> Answer {
    match variant {
        Variant::SelfHosted => coded_error("Incorrect username or password."),
        Variant::Aws | Variant::Keycloak => Answer::message(
            StatusCode::BAD_REQUEST,
            "Incorrect username or password",
        ),
    }
}

/// The self-hosted server's error shape: Cognito's exception name as
/// `code` beside the message.
fn coded_error(message: &str) -> Answer {
    Answer::json(
        StatusCode::BAD_REQUEST,
        &json!({ "code": "NotAuthorizedException", "message": message }),
    )
}

/// A field that is a non-empty string; anything else counts as missing.
fn text_field<'a>(
    fields: &'a Map<String, Value>,
    name: &str,
) -> Option<&'a str> {
    fields.get(name).and_then(Value::as_str).filter(|text| !text.is_empty())
}

fn field_errors(error: &str) -> Answer {
    Answer::json(
        StatusCode::BAD_REQUEST,
        &json!({ "errors": [{ "error": error }] }),
    )
}

fn internal_error(cause: &dyn std::error::Error) -> Answer {
    tracing::error!(%cause, "could not issue tokens");
    Answer::message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

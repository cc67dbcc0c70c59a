//! The endpoints of a FormKiQ deployment, answering with the statuses and
//! bodies an AWS deployment sends (variant A of `FORMKIQ-AUTH.md`).

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Request, StatusCode};
use serde_json::{json, Map, Value};

use super::routes::{parse_object, Answer, AppState, BodyError};

/// The role FormKiQ gives members of the `default` group.
const DEFAULT_ROLE: &str = "DEFAULT";

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
    if state.users.get(username).map(String::as_str) != Some(password) {
        return Answer::message(
            StatusCode::BAD_REQUEST,
            "Incorrect username or password",
        );
    }

    match state.tokens.login(username) {
        Ok((pair, refresh_token)) => Answer::json(
            StatusCode::OK,
            &json!({
                "AuthenticationResult": {
                    "AccessToken": pair.access,
                    "IdToken": pair.id,
                    "RefreshToken": refresh_token,
                    "TokenType": "Bearer",
                    "ExpiresIn": state.tokens.lifetime_secs(),
                }
            }),
        ),
        Err(cause) => internal_error(&cause),
    }
}

/// `POST /login/refresh`: new access and id tokens for a refresh token.
pub(crate) fn refresh(
    state: &AppState,
    body: Result<Bytes, BodyError>,
) -> Answer {
    let fields = match body.and_then(|bytes| parse_object(&bytes)) {
        Ok(fields) => fields,
        Err(refused) => return refused.answer(),
    };
    // The real handler's wording for this case is not documented; this
    // mirrors the login's missing-field answer so clients parse both alike.
    let Some(refresh_token) = text_field(&fields, "refreshToken") else {
        return field_errors("'refreshToken' is required");
    };

    let rotate = state.settings.rotates_refresh_tokens();
    match state.tokens.refresh(refresh_token, rotate) {
        Ok(Some((pair, rotated))) => {
            let mut result = json!({
                "AccessToken": pair.access,
                "IdToken": pair.id,
                "TokenType": "Bearer",
                "ExpiresIn": state.tokens.lifetime_secs(),
            });
            // Without rotation there is no RefreshToken in the answer:
            // Cognito's default, so clients must keep the one they have.
            if let Some(rotated) = rotated {
                result["RefreshToken"] = Value::String(rotated);
            }
            Answer::json(
                StatusCode::OK,
                &json!({ "AuthenticationResult": result }),
            )
        }
        Ok(None) => {
            Answer::message(StatusCode::BAD_REQUEST, "Incorrect refresh token")
        }
        Err(cause) => internal_error(&cause),
    }
}

/// `GET /sites`: the sites of the user an access token belongs to.
pub(crate) fn sites(state: &AppState, request: &Request<Incoming>) -> Answer {
    // API Gateway's JWT authorizer wants exactly "Bearer <token>"; a bare
    // token is refused like a missing one.
    let token = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let Some(token) = token else {
        tracing::debug!("no bearer token on a /sites request");
        return Answer::message(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    let claims = match state.tokens.verify_access(token) {
        Ok(claims) => claims,
        Err(cause) => {
            tracing::debug!(%cause, "token refused on a /sites request");
            return Answer::message(StatusCode::UNAUTHORIZED, "Unauthorized");
        }
    };

    Answer::json(
        StatusCode::OK,
        &json!({
            "username": claims.username,
            "roles": [DEFAULT_ROLE],
            "sites": [{
                "siteId": "default",
                "permission": "READ_WRITE",
                "permissions": ["DELETE", "READ", "WRITE"],
            }],
        }),
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

//! The routes of the auth and API servers, answering with the statuses and
//! bodies a FormKiQ deployment on AWS sends (variant A).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Map, Value};

use super::counters::{CounterSet, Endpoint};
use super::tokens::TokenIssuer;

/// The largest request body read. API Gateway allows far more, but no
/// request of the auth flow comes near this, and a test that sends more is
/// better told at once.
const MAX_BODY_LEN: usize = 64 * 1024;

/// The role FormKiQ gives members of the `default` group.
const DEFAULT_ROLE: &str = "DEFAULT";

/// The response type of every route.
pub(crate) type Reply = Response<Full<Bytes>>;

/// Which of the two servers a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The auth endpoint: `/login`, `/login/refresh`, `/_emulator/*`.
    Auth,
    /// The document API endpoint: `/sites`.
    Api,
}

impl Role {
    /// The name used for this server in logs.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Auth => "auth",
            Role::Api => "api",
        }
    }
}

/// Everything the handlers share for one emulator run.
pub(crate) struct AppState {
    /// Passwords by user name.
    pub(crate) users: HashMap<String, String>,
    /// Signs and checks the tokens.
    pub(crate) tokens: TokenIssuer,
    /// Attempts and successes per endpoint.
    pub(crate) counters: CounterSet,
}

/// Answers one request and logs its method, path and status; never its
/// body or headers, which carry passwords and tokens.
pub(crate) async fn handle(
    state: Arc<AppState>,
    role: Role,
    request: Request<Incoming>,
) -> Result<Reply, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();

    let reply = match (role, &method, path.as_str()) {
        (Role::Auth, &Method::POST, "/login") => {
            let body = read_body(request).await;
            login(&state, body)
        }
        (Role::Auth, &Method::POST, "/login/refresh") => {
            let body = read_body(request).await;
            refresh(&state, body)
        }
        (Role::Auth, &Method::GET, "/_emulator/counters") => {
            reply(StatusCode::OK, &state.counters.snapshot())
        }
        (Role::Auth, &Method::POST, "/_emulator/reset") => {
            state.counters.reset();
            reply(StatusCode::OK, &state.counters.snapshot())
        }
        (Role::Api, &Method::GET, "/sites") => sites(&state, &request),
        _ => message(StatusCode::NOT_FOUND, "Not Found"),
    };

    tracing::info!(
        server = %role.name(),
        %method,
        path = %path,
        status = reply.status().as_u16(),
        "request served"
    );
    Ok(reply)
}

/// `POST /login`: a password login, as the FormKiQ auth Lambda answers it.
fn login(state: &AppState, body: Result<Bytes, BodyError>) -> Reply {
    let reply = login_reply(state, body);
    state.counters.record(Endpoint::Login, reply.status() == StatusCode::OK);
    reply
}

fn login_reply(state: &AppState, body: Result<Bytes, BodyError>) -> Reply {
    let fields = match body.and_then(|bytes| parse_object(&bytes)) {
        Ok(fields) => fields,
        Err(refused) => return refused.reply(),
    };
    let (Some(username), Some(password)) =
        (text_field(&fields, "username"), text_field(&fields, "password"))
    else {
        return field_errors("'username' and 'password' are required");
    };
    if state.users.get(username).map(String::as_str) != Some(password) {
        return message(
            StatusCode::BAD_REQUEST,
            "Incorrect username or password",
        );
    }

    match state.tokens.login(username) {
        Ok((pair, refresh_token)) => reply(
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
fn refresh(state: &AppState, body: Result<Bytes, BodyError>) -> Reply {
    let reply = refresh_reply(state, body);
    state.counters.record(Endpoint::Refresh, reply.status() == StatusCode::OK);
    reply
}

fn refresh_reply(state: &AppState, body: Result<Bytes, BodyError>) -> Reply {
    let fields = match body.and_then(|bytes| parse_object(&bytes)) {
        Ok(fields) => fields,
        Err(refused) => return refused.reply(),
    };
    // The real handler's wording for this case is not documented; this
    // mirrors the login's missing-field answer so clients parse both alike.
    let Some(refresh_token) = text_field(&fields, "refreshToken") else {
        return field_errors("'refreshToken' is required");
    };

    // No RefreshToken in the answer: Cognito does not rotate refresh
    // tokens by default, so clients must keep the one they have.
    match state.tokens.refresh(refresh_token) {
        Ok(Some(pair)) => reply(
            StatusCode::OK,
            &json!({
                "AuthenticationResult": {
                    "AccessToken": pair.access,
                    "IdToken": pair.id,
                    "TokenType": "Bearer",
                    "ExpiresIn": state.tokens.lifetime_secs(),
                }
            }),
        ),
        Ok(None) => message(StatusCode::BAD_REQUEST, "Incorrect refresh token"),
        Err(cause) => internal_error(&cause),
    }
}

/// `GET /sites`: the sites of the user an access token belongs to.
fn sites(state: &AppState, request: &Request<Incoming>) -> Reply {
    let reply = sites_reply(state, request);
    state.counters.record(Endpoint::Sites, reply.status() == StatusCode::OK);
    reply
}

fn sites_reply(state: &AppState, request: &Request<Incoming>) -> Reply {
    // API Gateway's JWT authorizer wants exactly "Bearer <token>"; a bare
    // token is refused like a missing one.
    let token = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let Some(token) = token else {
        tracing::debug!("no bearer token on a /sites request");
        return message(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    let claims = match state.tokens.verify_access(token) {
        Ok(claims) => claims,
        Err(cause) => {
            tracing::debug!(%cause, "token refused on a /sites request");
            return message(StatusCode::UNAUTHORIZED, "Unauthorized");
        }
    };

    reply(
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

/// Why a request body could not be used, each with FormKiQ's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyError {
    /// Longer than [`MAX_BODY_LEN`], or the client broke off mid-body.
    Unreadable,
    /// No body, or only whitespace.
    Empty,
    /// Not JSON, or JSON that is not an object.
    NotJson,
}

impl BodyError {
    fn reply(self) -> Reply {
        match self {
            BodyError::Unreadable => message(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request Entity Too Large",
            ),
            BodyError::Empty => {
                message(StatusCode::BAD_REQUEST, "request body is required")
            }
            BodyError::NotJson => {
                message(StatusCode::BAD_REQUEST, "invalid JSON body")
            }
        }
    }
}

/// Reads a request body of at most [`MAX_BODY_LEN`] bytes.
async fn read_body(request: Request<Incoming>) -> Result<Bytes, BodyError> {
    match Limited::new(request.into_body(), MAX_BODY_LEN).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(cause) => {
            tracing::debug!(%cause, "request body not read");
            Err(BodyError::Unreadable)
        }
    }
}

/// Parses a body as a JSON object.
fn parse_object(body: &[u8]) -> Result<Map<String, Value>, BodyError> {
    if body.trim_ascii().is_empty() {
        return Err(BodyError::Empty);
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        _ => Err(BodyError::NotJson),
    }
}

/// A field that is a non-empty string; anything else counts as missing.
fn text_field<'a>(
    fields: &'a Map<String, Value>,
    name: &str,
) -> Option<&'a str> {
    fields.get(name).and_then(Value::as_str).filter(|text| !text.is_empty())
}

fn field_errors(error: &str) -> Reply {
    reply(StatusCode::BAD_REQUEST, &json!({ "errors": [{ "error": error }] }))
}

fn internal_error(cause: &dyn std::error::Error) -> Reply {
    tracing::error!(%cause, "could not issue tokens");
    message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

fn message(status: StatusCode, text: &str) -> Reply {
    reply(status, &json!({ "message": text }))
}

fn reply(status: StatusCode, body: &impl serde::Serialize) -> Reply {
    // Serialising a JSON value or a plain struct of numbers cannot fail;
    // an empty body would still be a well-formed reply if it somehow did.
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

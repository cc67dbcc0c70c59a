//! Request dispatch for the auth and API servers: which handler answers,
//! the counters, the faults a test queued, and one log line per request.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Map, Value};

use super::control::{self, LiveSettings};
use super::counters::{CounterSet, Endpoint};
use super::faults::{Fault, FaultQueue};
use super::handlers;
use super::tokens::TokenIssuer;
use super::users::Directory;
use super::Variant;

/// The largest request body read. API Gateway allows far more, but no
/// request of the auth flow comes near this, and a test that sends more is
/// better told at once.
const MAX_BODY_LEN: usize = 64 * 1024;

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
    /// The users, their passwords and pending challenges.
    pub(crate) users: Directory,
    /// The kind of deployment played.
    pub(crate) variant: Variant,
    /// The self-hosted variant's one API key.
    pub(crate) api_key: String,
    /// Whether `/login/refresh` exists.
    pub(crate) has_refresh_endpoint: bool,
    /// Signs and checks the tokens.
    pub(crate) tokens: TokenIssuer,
    /// Attempts and successes per endpoint.
    pub(crate) counters: CounterSet,
    /// Faults queued by tests.
    pub(crate) faults: FaultQueue,
    /// Switches a test may flip while the emulator runs.
    pub(crate) settings: LiveSettings,
}

/// A reply before it is encoded: a status and a JSON body, which faults
/// may still edit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    /// The HTTP status.
    pub(crate) status: StatusCode,
    /// The JSON body.
    pub(crate) body: Value,
}

impl Answer {
    /// An answer with `body`, serialised.
    pub(crate) fn json(
        status: StatusCode,
        body: &impl serde::Serialize,
    ) -> Self {
        // A body made of plain strings and numbers always serialises;
        // `null` would still be a well-formed reply if one somehow did not.
        Self { status, body: serde_json::to_value(body).unwrap_or_default() }
    }

    /// `{"message": text}`, FormKiQ's shape for most errors.
    pub(crate) fn message(status: StatusCode, text: &str) -> Self {
        Self { status, body: json!({ "message": text }) }
    }

    fn into_reply(self) -> Reply {
        raw_reply(self.status, self.body.to_string())
    }
}

/// The error that makes hyper close a connection without replying, which
/// is how a `drop` fault behaves like a connection cut mid-request.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by a fault")]
pub(crate) struct Dropped;

/// Answers one request and logs its method, path and status; never its
/// body or headers, which carry passwords and tokens.
pub(crate) async fn handle(
    state: Arc<AppState>,
    role: Role,
    request: Request<Incoming>,
) -> Result<Reply, Dropped> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let endpoint = counted_endpoint(role, &method, &path);

    // The attempt is counted on arrival, so a client that gives up during
    // a delay still shows up in the counters.
    let fault = endpoint.and_then(|endpoint| {
        state.counters.attempt(endpoint);
        state.faults.take(endpoint)
    });
    if let Some(delay) = fault.as_ref().and_then(|f| f.delay_ms) {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if fault.as_ref().is_some_and(|f| f.drop) {
        tracing::info!(server = %role.name(), %method, path = %path, "request dropped by a fault");
        return Err(Dropped);
    }

    let (reply, is_ok) = match fault.as_ref().filter(|f| f.replaces_reply()) {
        Some(fault) => (faulted_reply(fault), false),
        None => {
            let mut answer = route(&state, role, &method, &path, request).await;
            let is_ok = answer.status == StatusCode::OK;
            if let Some(fault) = &fault {
                fault.edit(&mut answer.body);
            }
            (answer.into_reply(), is_ok)
        }
    };
    if let Some(endpoint) = endpoint.filter(|_| is_ok) {
        state.counters.success(endpoint);
    }

    tracing::info!(
        server = %role.name(),
        %method,
        path = %path,
        status = reply.status().as_u16(),
        faulted = fault.is_some(),
        "request served"
    );
    Ok(reply)
}

/// Which counted endpoint a request is, if any. Requests to the wrong
/// server or with the wrong method are 404s and count nowhere.
fn counted_endpoint(
    role: Role,
    method: &Method,
    path: &str,
) -> Option<Endpoint> {
    match (role, method, path) {
        (Role::Auth, &Method::POST, "/login") => Some(Endpoint::Login),
        (Role::Auth, &Method::POST, "/login/refresh") => {
            Some(Endpoint::Refresh)
        }
        (Role::Auth, &Method::POST, "/respondToAuthChallenge") => {
            Some(Endpoint::Challenge)
        }
        (Role::Api, &Method::GET, "/sites") => Some(Endpoint::Sites),
        _ => None,
    }
}

async fn route(
    state: &AppState,
    role: Role,
    method: &Method,
    path: &str,
    request: Request<Incoming>,
) -> Answer {
    match (role, method, path) {
        (Role::Auth, &Method::POST, "/login") => {
            handlers::login(state, read_body(request).await)
        }
        (Role::Auth, &Method::POST, "/login/refresh") => {
            handlers::refresh(state, read_body(request).await)
        }
        (Role::Auth, &Method::POST, "/respondToAuthChallenge") => {
            handlers::challenge(state, read_body(request).await)
        }
        (Role::Api, &Method::GET, "/sites") => handlers::sites(state, &request),
        (Role::Auth, _, _) if path.starts_with("/_emulator/") => {
            let body = match *method {
                Method::POST => read_body(request).await,
                _ => Ok(Bytes::new()),
            };
            control::handle(state, method, path, body)
        }
        _ => not_found(),
    }
}

/// FormKiQ's answer to a path or method it does not serve.
pub(crate) fn not_found() -> Answer {
    Answer::message(StatusCode::NOT_FOUND, "Not Found")
}

/// The reply of a fault that answers in place of the endpoint.
fn faulted_reply(fault: &Fault) -> Reply {
    let status = fault
        .status
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::OK);
    let body = fault.body.clone().unwrap_or_else(|| {
        let reason = status.canonical_reason().unwrap_or("Unknown");
        json!({ "message": reason }).to_string()
    });
    raw_reply(status, body)
}

/// Why a request body could not be used, each with FormKiQ's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Longer than [`MAX_BODY_LEN`], or the client broke off mid-body.
    Unreadable,
    /// No body, or only whitespace.
    Empty,
    /// Not JSON, or JSON that is not an object.
    NotJson,
}

impl BodyError {
    /// FormKiQ's reply to a body it cannot use.
    pub(crate) fn answer(self) -> Answer {
        match self {
            BodyError::Unreadable => Answer::message(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request Entity Too Large",
            ),
            BodyError::Empty => Answer::message(
                StatusCode::BAD_REQUEST,
                "request body is required",
            ),
            BodyError::NotJson => {
                Answer::message(StatusCode::BAD_REQUEST, "invalid JSON body")
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
pub(crate) fn parse_object(
    body: &[u8],
) -> Result<Map<String, Value>, BodyError> {
    if body.trim_ascii().is_empty() {
        return Err(BodyError::Empty);
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        _ => Err(BodyError::NotJson),
    }
}

fn raw_reply(status: StatusCode, body: String) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

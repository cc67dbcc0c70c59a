//! A scripted auth server for the leak test: `/login`, `/login/refresh`
//! and `/sites` over HTTPS on loopback, answering as FormKiQ does, with
//! three things the emulator does not offer: it keeps every token it
//! issues (refresh tokens included) for the test to search for, it can
//! answer the next refresh with a 400 whose body echoes the refresh token
//! it was sent, and it can hold the next login until the test lets go.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

use crate::emulator::tls::Authority;

/// The user the stub knows.
pub const USERNAME: &str = "leak-test@example.com";

/// How many requests of each kind the stub answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Logins answered with tokens.
    pub logins: u64,
    /// Refreshes answered with tokens.
    pub refreshes: u64,
    /// Refreshes refused with the echoing 400.
    pub echoed_failures: u64,
}

struct State {
    password: String,
    lifetime: Duration,
    issued: Mutex<Vec<String>>,
    fail_next_refresh: AtomicBool,
    held_login: Mutex<Option<(mpsc::Sender<()>, oneshot::Receiver<()>)>>,
    logins: AtomicU64,
    refreshes: AtomicU64,
    echoed_failures: AtomicU64,
}

/// A running stub; dropping it stops it.
pub struct StubAuth {
    runtime: Option<tokio::runtime::Runtime>,
    state: Arc<State>,
    url: String,
    ca_file: PathBuf,
}

/// A login the stub has been told to hold.
pub struct HeldLogin {
    /// Receives once the login has arrived and is being held.
    pub arrived: mpsc::Receiver<()>,
    release: Option<oneshot::Sender<()>>,
}

impl HeldLogin {
    /// Lets the held login be answered.
    pub fn release(mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
    }
}

impl StubAuth {
    /// Starts the stub for a user with `password`, issuing access tokens
    /// that live `lifetime`, with its CA certificate written into `dir`.
    pub fn start(
        password: &str,
        lifetime: Duration,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        let authority = Authority::generate()?;
        let ca_file = authority.write_ca(dir)?;
        let acceptor = TlsAcceptor::from(authority.server_config()?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("start the stub's runtime")?;
        let listener = runtime
            .block_on(TcpListener::bind(SocketAddr::from((
                Ipv4Addr::LOCALHOST,
                0,
            ))))
            .context("bind the stub")?;
        let url = format!("https://{}/", listener.local_addr()?);
        let state = Arc::new(State {
            password: password.to_owned(),
            lifetime,
            issued: Mutex::new(Vec::new()),
            fail_next_refresh: AtomicBool::new(false),
            held_login: Mutex::new(None),
            logins: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
            echoed_failures: AtomicU64::new(0),
        });
        runtime.spawn(accept_loop(listener, acceptor, state.clone()));
        Ok(Self { runtime: Some(runtime), state, url, ca_file })
    }

    /// The base URL, serving both the auth and the API paths.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The CA certificate that signs the stub's certificate.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// Every token issued so far: access, id and refresh.
    pub fn issued(&self) -> Vec<String> {
        self.state.issued.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What the stub answered so far.
    pub fn counts(&self) -> Counts {
        Counts {
            logins: self.state.logins.load(Ordering::SeqCst),
            refreshes: self.state.refreshes.load(Ordering::SeqCst),
            echoed_failures: self.state.echoed_failures.load(Ordering::SeqCst),
        }
    }

    /// Makes the next refresh fail with 400 and a body that quotes the
    /// refresh token it was sent, as some servers' error pages do.
    pub fn fail_next_refresh_echoing_the_token(&self) {
        self.state.fail_next_refresh.store(true, Ordering::SeqCst);
    }

    /// Makes the next login wait until [`HeldLogin::release`].
    pub fn hold_next_login(&self) -> HeldLogin {
        let (arrived_tx, arrived) = mpsc::channel();
        let (release, release_rx) = oneshot::channel();
        *self.state.held_login.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((arrived_tx, release_rx));
        HeldLogin { arrived, release: Some(release) }
    }
}

impl Drop for StubAuth {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<State>,
) {
    while let Ok((stream, _)) = listener.accept().await {
        let (acceptor, state) = (acceptor.clone(), state.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else { return };
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
}

fn token(state: &State, kind: &str) -> String {
    let token = format!("stub-{kind}-{}", fastrand::u128(..));
    state.issued.lock().unwrap_or_else(|e| e.into_inner()).push(token.clone());
    token
}

fn tokens(state: &State, refresh: Option<String>) -> Value {
    let mut result = json!({
        "AccessToken": token(state, "access"),
        "IdToken": token(state, "id"),
        "TokenType": "Bearer",
        "ExpiresIn": state.lifetime.as_secs(),
    });
    if let Some(refresh) = refresh {
        result["RefreshToken"] = Value::String(refresh);
    }
    json!({ "AuthenticationResult": result })
}

fn knows(state: &State, token: &str, kind: &str) -> bool {
    token.starts_with(&format!("stub-{kind}-"))
        && state
            .issued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|t| t == token)
}

async fn route(
    state: &State,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body: Value = match Limited::new(body, 64 * 1024).collect().await {
        Ok(collected) => {
            serde_json::from_slice(&collected.to_bytes()).unwrap_or(Value::Null)
        }
        Err(_) => Value::Null,
    };
    let text = |key: &str| body[key].as_str().unwrap_or_default().to_owned();
    match (parts.method, parts.uri.path()) {
        (Method::POST, "/login") => {
            let held = state
                .held_login
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some((arrived, release)) = held {
                let _ = arrived.send(());
                let _ = release.await;
            }
            if text("username") != USERNAME
                || text("password") != state.password
            {
                return reply(
                    StatusCode::UNAUTHORIZED,
                    json!({"message": "Incorrect username or password."}),
                );
            }
            state.logins.fetch_add(1, Ordering::SeqCst);
            let refresh = token(state, "refresh");
            reply(StatusCode::OK, tokens(state, Some(refresh)))
        }
        (Method::POST, "/login/refresh") => {
            let sent = text("refreshToken");
            if state.fail_next_refresh.swap(false, Ordering::SeqCst) {
                state.echoed_failures.fetch_add(1, Ordering::SeqCst);
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({
                        "message": format!("Invalid Refresh Token: {sent}"),
                        "refreshToken": sent,
                    }),
                );
            }
            if !knows(state, &sent, "refresh") {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"message": "Invalid Refresh Token"}),
                );
            }
            state.refreshes.fetch_add(1, Ordering::SeqCst);
            reply(StatusCode::OK, tokens(state, None))
        }
        (Method::GET, "/sites") => {
            let bearer = parts
                .headers
                .get(hyper::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default();
            if !knows(state, bearer, "access") {
                return reply(
                    StatusCode::UNAUTHORIZED,
                    json!({"message": "Unauthorized"}),
                );
            }
            reply(
                StatusCode::OK,
                json!({"username": USERNAME, "sites": [
                    {"siteId": "default", "permission": "READ_WRITE"}
                ]}),
            )
        }
        _ => reply(StatusCode::NOT_FOUND, json!({"message": "Not Found"})),
    }
}

//! A scripted auth server for the daemon's unit tests (test builds only).
//!
//! It stands behind the [`Backend`] trait instead of a socket, so tests
//! can run on tokio's paused clock (see [`crate::backend`] for why real
//! sockets and paused time do not mix). It issues numbered tokens
//! (`access-1`, `refresh-1`, ...), remembers which refresh tokens it
//! issued and which were presented, and fails on request the way the
//! HTTP client reports real failures: a 503, a dropped connection, a
//! stall that ends in the client's timeout, a refused refresh token.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use fkq_cred_proto::Secret;
use reqwest::{StatusCode, Url};

use crate::auth::AuthError;
use crate::backend::{Backend, BoxFuture};
use crate::clock::{Clock, TestClock};
use crate::config::{Config, Profile};
use crate::tokens::{AuthResult, TokenSet};

/// The password the fake server accepts unless a test changes it.
pub(crate) const PASSWORD: &str = "pw";

/// A way the next calls to an endpoint fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// HTTP 503.
    Unavailable,
    /// The connection closes before a reply.
    Dropped,
    /// No reply until the client's timeout ends the exchange.
    Stalled,
    /// The refresh token is refused (400 on `/login/refresh`).
    Refused,
}

/// What a successful refresh reply carries as its `RefreshToken`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshField {
    /// Nothing (absent or null; both read as `None`): Cognito's default.
    Missing,
    /// An empty string.
    Empty,
    /// A new token; the presented one stops working (rotation).
    Rotated,
}

/// The server's state, for tests to read and change.
pub(crate) struct State {
    /// The password `/login` accepts.
    pub(crate) password: String,
    /// Every `/login` call.
    pub(crate) logins: u32,
    /// Every `/login/refresh` call.
    pub(crate) refreshes: u32,
    /// The refresh tokens presented, in order.
    pub(crate) presented: Vec<String>,
    /// When each refresh call arrived, on the monotonic clock.
    pub(crate) refresh_times: Vec<tokio::time::Instant>,
    /// Refresh tokens that still work.
    valid: HashSet<String>,
    /// The fault for `/login`, and how many more calls it hits.
    pub(crate) login_fault: Option<(Fault, u32)>,
    /// The fault for `/login/refresh`, and how many more calls it hits.
    pub(crate) refresh_fault: Option<(Fault, u32)>,
    /// What a refresh reply carries as `RefreshToken`.
    pub(crate) refresh_field: RefreshField,
    serial: u32,
}

/// The fake server. Share it as an `Arc` between the test and a session.
pub(crate) struct FakeServer {
    clock: Arc<TestClock>,
    /// `ExpiresIn` of every reply, seconds.
    lifetime: u64,
    /// When set, replies carry no `ExpiresIn` but JWTs whose `iat` and
    /// `exp` come from a server clock this many seconds behind ours.
    jwt_skew: Option<i64>,
    /// How long a stall lasts before the client gives up.
    timeout: Duration,
    state: Mutex<State>,
}

impl FakeServer {
    /// A server issuing tokens that live `lifetime` seconds, whose stalls
    /// end in a timeout after `timeout`.
    pub(crate) fn new(
        clock: Arc<TestClock>,
        lifetime: u64,
        timeout: Duration,
    ) -> Arc<Self> {
        Self::build(clock, lifetime, timeout, None)
    }

    /// A server whose tokens state their lifetime only as JWT `iat` and
    /// `exp`, dated by a clock `skew` seconds behind the session's.
    pub(crate) fn with_jwt_skew(
        clock: Arc<TestClock>,
        lifetime: u64,
        skew: i64,
    ) -> Arc<Self> {
        Self::build(clock, lifetime, Duration::from_secs(20), Some(skew))
    }

    fn build(
        clock: Arc<TestClock>,
        lifetime: u64,
        timeout: Duration,
        jwt_skew: Option<i64>,
    ) -> Arc<Self> {
        Arc::new(Self {
            clock,
            lifetime,
            jwt_skew,
            timeout,
            state: Mutex::new(State {
                password: PASSWORD.into(),
                logins: 0,
                refreshes: 0,
                presented: Vec::new(),
                refresh_times: Vec::new(),
                valid: HashSet::new(),
                login_fault: None,
                refresh_fault: None,
                refresh_field: RefreshField::Missing,
                serial: 0,
            }),
        })
    }

    /// The state, to read or script.
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("a test panicked holding the fake's state")
    }

    fn url(path: &str) -> Url {
        Url::parse(&format!("http://127.0.0.1:9/{path}")).expect("valid URL")
    }

    /// The error a fault produces, after the time it takes.
    async fn fail(&self, fault: Fault, path: &str) -> AuthError {
        let url = Self::url(path);
        match fault {
            Fault::Unavailable => AuthError::ServerError {
                url,
                status: StatusCode::SERVICE_UNAVAILABLE,
            },
            Fault::Dropped => AuthError::Connect {
                url,
                detail: "connection closed before message completed".into(),
            },
            Fault::Stalled => {
                tokio::time::sleep(self.timeout).await;
                AuthError::Timeout { url, secs: self.timeout.as_secs() }
            }
            Fault::Refused => AuthError::RefreshRejected { url },
        }
    }

    /// Takes one hit of a scripted fault.
    fn take(fault: &mut Option<(Fault, u32)>) -> Option<Fault> {
        let (kind, left) = fault.as_mut()?;
        let kind = *kind;
        *left -= 1;
        if *left == 0 {
            *fault = None;
        }
        Some(kind)
    }

    /// A reply with fresh access and id tokens, and `refresh` as its
    /// `RefreshToken`.
    fn reply(&self, serial: u32, refresh: Option<String>) -> AuthResult {
        let access = match self.jwt_skew {
            None => format!("access-{serial}"),
            Some(skew) => {
                let server_now =
                    crate::tokens::unix_seconds(self.clock.now()) - skew;
                let claims = format!(
                    r#"{{"iat":{server_now},"exp":{},"jti":"{serial}"}}"#,
                    server_now + self.lifetime as i64
                );
                let b64 = |s: &str| {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
                };
                format!("{}.{}.sig", b64(r#"{"alg":"none"}"#), b64(&claims))
            }
        };
        AuthResult {
            access_token: Some(Secret::new(access)),
            id_token: Some(Secret::new(format!("id-{serial}"))),
            refresh_token: refresh.map(Secret::new),
            token_type: Some("Bearer".into()),
            expires_in: match self.jwt_skew {
                None => Some(self.lifetime as i64),
                Some(_) => None,
            },
        }
    }

    fn tokens(
        &self,
        result: AuthResult,
        previous: Option<&Secret>,
    ) -> TokenSet {
        TokenSet::from_reply(
            result,
            self.clock.now(),
            Duration::from_secs(3600),
            previous,
        )
        .expect("the fake always sends an access token")
    }
}

impl Backend for FakeServer {
    fn login<'a>(
        &'a self,
        _username: &'a str,
        password: &'a Secret,
    ) -> BoxFuture<'a, Result<TokenSet, AuthError>> {
        Box::pin(async move {
            let fault = {
                let mut state = self.state();
                state.logins += 1;
                Self::take(&mut state.login_fault)
            };
            if let Some(fault) = fault {
                return Err(self.fail(fault, "login").await);
            }
            let mut state = self.state();
            if password.expose() != state.password {
                return Err(AuthError::Rejected { url: Self::url("login") });
            }
            state.serial += 1;
            let serial = state.serial;
            let refresh = format!("refresh-{serial}");
            state.valid.insert(refresh.clone());
            drop(state);
            Ok(self.tokens(self.reply(serial, Some(refresh)), None))
        })
    }

    fn refresh<'a>(
        &'a self,
        previous: &'a TokenSet,
    ) -> BoxFuture<'a, Result<TokenSet, AuthError>> {
        Box::pin(async move {
            let presented = previous.refresh.expose().to_owned();
            let fault = {
                let mut state = self.state();
                state.refreshes += 1;
                state.presented.push(presented.clone());
                state.refresh_times.push(tokio::time::Instant::now());
                Self::take(&mut state.refresh_fault)
            };
            if let Some(fault) = fault {
                return Err(self.fail(fault, "login/refresh").await);
            }
            let mut state = self.state();
            if !state.valid.contains(&presented) {
                let url = Self::url("login/refresh");
                return Err(AuthError::RefreshRejected { url });
            }
            state.serial += 1;
            let serial = state.serial;
            let refresh = match state.refresh_field {
                RefreshField::Missing => None,
                RefreshField::Empty => Some(String::new()),
                RefreshField::Rotated => {
                    let new = format!("refresh-{serial}");
                    state.valid.remove(&presented);
                    state.valid.insert(new.clone());
                    Some(new)
                }
            };
            drop(state);
            let result = self.reply(serial, refresh);
            Ok(self.tokens(result, Some(&previous.refresh)))
        })
    }

    /// Takes the new password as the account's and logs in with it, as
    /// FormKiQ's endpoint does after `respondToAuthChallenge`.
    fn answer_new_password<'a>(
        &'a self,
        username: &'a str,
        _session: &'a Secret,
        new_password: &'a Secret,
    ) -> BoxFuture<'a, Result<TokenSet, AuthError>> {
        Box::pin(async move {
            self.state().password = new_password.expose().to_owned();
            self.login(username, new_password).await
        })
    }
}

/// A profile named `p` for user `alice`, with `extra` TOML lines.
pub(crate) fn profile(extra: &str) -> Profile {
    let text = format!(
        "[profiles.p]\nauth_url = \"https://auth.example\"\napi_url = \"https://api.example\"\nusername = \"alice\"\n{extra}"
    );
    Config::parse(&text, std::path::Path::new("test.toml"))
        .expect("the test profile parses")
        .profiles
        .remove("p")
        .expect("the test profile exists")
}

//! One profile's session: its tokens, its refresh timer, and the single
//! task that owns them.
//!
//! Callers hold a [`SessionHandle`]. A `get` whose token is still valid
//! long enough is answered from a shared snapshot without waking the
//! session task; everything else is a message to that task, which runs at
//! most one login or refresh at a time. A thousand callers arriving at
//! expiry therefore cause one HTTP call, and all of them get its result.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use fkq_cred_proto::{
    ErrorKind, ProfileState, ProfileStatus, Secret, SitesReply, TokenKind,
    TokenReply, WireError,
};
use tokio::sync::{mpsc, oneshot};

use crate::actor::Actor;
use crate::auth::{AuthClient, AuthError};
use crate::backend::Backend;
use crate::clock::Clock;
use crate::config::Profile;
use crate::tokens::TokenSet;

/// How many requests may queue for one session before callers wait.
const COMMAND_QUEUE: usize = 1024;

/// A request to the session task.
pub(crate) enum Command {
    /// A token valid for `needed`; with `force`, only a token obtained
    /// after this request will do (the API refused the current one).
    Get {
        kind: TokenKind,
        needed: Duration,
        force: bool,
        reply: oneshot::Sender<Result<TokenReply, WireError>>,
    },
    /// Log in with a password typed by the user.
    Login {
        username: Option<String>,
        password: Secret,
        new_password: Option<Secret>,
        reply: oneshot::Sender<Result<LoggedIn, WireError>>,
    },
    /// Forget the tokens and any remembered password.
    Logout { reply: oneshot::Sender<()> },
    /// Report the state.
    Status { reply: oneshot::Sender<ProfileStatus> },
    /// Forget the tokens and any remembered password, but unlike `Logout`
    /// let a `password_command` log in again on the next `get`.
    Forget { reply: oneshot::Sender<()> },
}

/// What a successful login reports.
pub struct LoggedIn {
    /// The user logged in.
    pub username: String,
    /// When the access token expires, Unix seconds.
    pub expires_at: Option<i64>,
}

/// The part of a session that connection tasks read without messaging it.
pub(crate) struct Shared {
    pub(crate) current: RwLock<Option<Arc<TokenSet>>>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl Shared {
    pub(crate) fn set(&self, tokens: Option<Arc<TokenSet>>) {
        // A poisoned lock only means a reader panicked mid-read; the value
        // itself is always whole, so keep using it.
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = tokens;
    }

    pub(crate) fn get(&self) -> Option<Arc<TokenSet>> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A cheap, cloneable reference to one profile's session.
#[derive(Clone)]
pub struct SessionHandle {
    profile: Arc<Profile>,
    client: Result<Arc<AuthClient>, WireError>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Command>,
}

impl SessionHandle {
    /// Starts the session task for `profile` on the current runtime.
    pub fn spawn(profile: Profile, clock: Arc<dyn Clock>) -> Self {
        let client = AuthClient::new(&profile)
            .map(|c| Arc::new(c.with_clock(clock.clone())))
            .map_err(|e| e.to_wire());
        let backend = client.clone().map(|c| c as Arc<dyn Backend>);
        Self::start(profile, clock, client, backend)
    }

    /// Starts a session whose logins and refreshes go to `backend`; its
    /// `sites` has no HTTP client and fails. For the session's own tests.
    #[cfg(test)]
    pub(crate) fn spawn_with_backend(
        profile: Profile,
        clock: Arc<dyn Clock>,
        backend: Arc<dyn Backend>,
    ) -> Self {
        let client = Err(WireError::new(
            ErrorKind::Internal,
            "this test session has no HTTP client",
        ));
        Self::start(profile, clock, client, Ok(backend))
    }

    fn start(
        profile: Profile,
        clock: Arc<dyn Clock>,
        client: Result<Arc<AuthClient>, WireError>,
        backend: Result<Arc<dyn Backend>, WireError>,
    ) -> Self {
        let profile = Arc::new(profile);
        let shared = Arc::new(Shared { current: RwLock::new(None), clock });
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let actor = Actor::new(profile.clone(), backend, shared.clone(), rx);
        tokio::spawn(actor.run());
        Self { profile, client, shared, tx }
    }

    /// The profile this session serves.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Whether the session holds an unexpired token.
    pub fn is_logged_in(&self) -> bool {
        self.shared
            .get()
            .is_some_and(|t| t.is_unexpired(self.shared.clock.now()))
    }

    /// A token valid for at least `min_valid` (the profile's `min_valid`
    /// when `None`), refreshing first when needed.
    pub async fn get(
        &self,
        kind: TokenKind,
        min_valid: Option<Duration>,
    ) -> Result<TokenReply, WireError> {
        if let Some(tokens) = self.fresh(min_valid) {
            return self.reply(&tokens, kind);
        }
        let needed = min_valid.unwrap_or(self.profile.min_valid);
        self.ask(|reply| Command::Get { kind, needed, force: false, reply })
            .await?
    }

    /// The tokens, when they stay valid for at least `min_valid` (the
    /// profile's `min_valid` when `None`): what a `get` is answered from
    /// without waking the session task.
    pub fn fresh(&self, min_valid: Option<Duration>) -> Option<Arc<TokenSet>> {
        let needed = min_valid.unwrap_or(self.profile.min_valid);
        self.shared.get().filter(|tokens| {
            tokens.is_valid_for(self.shared.clock.now(), needed)
        })
    }

    /// Builds the reply for `kind` from `tokens`.
    pub(crate) fn reply(
        &self,
        tokens: &TokenSet,
        kind: TokenKind,
    ) -> Result<TokenReply, WireError> {
        token_reply(&self.profile.name, tokens, kind)
    }

    /// Logs in with a password typed by the user.
    pub async fn login(
        &self,
        username: Option<String>,
        password: Secret,
        new_password: Option<Secret>,
    ) -> Result<LoggedIn, WireError> {
        self.ask(|reply| Command::Login {
            username,
            password,
            new_password,
            reply,
        })
        .await?
    }

    /// Puts `tokens` in place as if a login had just returned them.
    #[cfg(test)]
    pub(crate) fn install_tokens(&self, tokens: Arc<TokenSet>) {
        self.shared.set(Some(tokens));
    }

    /// Forgets the tokens and any remembered password.
    pub async fn logout(&self) -> Result<(), WireError> {
        self.ask(|reply| Command::Logout { reply }).await
    }

    /// Forgets the tokens and any remembered password (SIGUSR1); the next
    /// `get` logs in again only through a `password_command`.
    pub async fn forget(&self) -> Result<(), WireError> {
        self.ask(|reply| Command::Forget { reply }).await
    }

    /// The session's state.
    pub async fn status(&self) -> Result<ProfileStatus, WireError> {
        self.ask(|reply| Command::Status { reply }).await
    }

    /// Calls `GET {api}/sites`; a 401 earns one refresh and one retry.
    pub async fn sites(&self) -> Result<SitesReply, WireError> {
        let client = self.client.clone()?;
        let token = self.get(TokenKind::Access, None).await?;
        let answer = match client.sites(&token.token).await {
            Err(AuthError::Unauthorized { .. }) => {
                let needed = self.profile.min_valid;
                let fresh = self
                    .ask(|reply| Command::Get {
                        kind: TokenKind::Access,
                        needed,
                        force: true,
                        reply,
                    })
                    .await??;
                client.sites(&fresh.token).await
            }
            other => other,
        }
        .map_err(|e| e.to_wire())?;
        Ok(SitesReply {
            profile: self.profile.name.clone(),
            username: answer.username,
            sites: answer.sites,
            json: answer.json,
        })
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, WireError> {
        let (reply, rx) = oneshot::channel();
        let gone = || {
            WireError::new(ErrorKind::Internal, format!("the session of profile {:?} has stopped; the daemon is shutting down or reloading, try again", self.profile.name))
        };
        self.tx.send(make(reply)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }
}

/// Builds a token reply, refusing an id token the server never sent.
pub(crate) fn token_reply(
    profile: &str,
    tokens: &TokenSet,
    kind: TokenKind,
) -> Result<TokenReply, WireError> {
    let token = tokens.token(kind);
    if token.is_empty() {
        return Err(WireError::new(
            ErrorKind::BadResponse,
            format!("the server issued no id token for profile {profile:?}; use the access token"),
        ));
    }
    Ok(TokenReply {
        profile: profile.to_owned(),
        kind,
        token: token.clone(),
        token_type: tokens.token_type.clone(),
        expires_at: tokens.expires_at_unix(),
    })
}

/// Builds a status report; the actor fills in what only it knows.
pub(crate) fn base_status(
    profile: &Profile,
    state: ProfileState,
) -> ProfileStatus {
    ProfileStatus {
        profile: profile.name.clone(),
        username: profile.username.clone(),
        auth_url: profile.auth_url.to_string(),
        api_url: profile.api_url.to_string(),
        state,
        expires_at: None,
        refresh_at: None,
        last_refresh: None,
        logins: 0,
        refreshes: 0,
        failures: 0,
        last_error: None,
        failing_since: None,
        next_retry: None,
    }
}

/// `SystemTime` to Unix seconds, for status reports.
pub(crate) fn unix(t: Option<SystemTime>) -> Option<i64> {
    t.map(crate::tokens::unix_seconds)
}

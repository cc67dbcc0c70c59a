//! The task that owns one profile's session: it starts logins and
//! refreshes, one at a time, schedules the next refresh, backs off after
//! failures, and answers the callers waiting for a fresh token.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fkq_cred_proto::{
    ErrorKind, ProfileState, ProfileStatus, Secret, WireError,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::auth::{AuthClient, AuthError};
use crate::config::Profile;
use crate::password;
use crate::schedule::{refresh_at, retry_delays};
use crate::session::{
    base_status, token_reply, unix, Command, LoggedIn, Shared,
};
use crate::tokens::TokenSet;

/// The longest the task sleeps before looking at the wall clock again. The
/// monotonic timer stops during suspend; waking every minute bounds how
/// late a refresh can be after the machine resumes.
const MAX_TIMER_SLEEP: Duration = Duration::from_secs(60);

/// Which HTTP operation is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    UserLogin,
    AutoLogin,
    Refresh,
}

impl OpKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::UserLogin => "login",
            Self::AutoLogin => "automatic login",
            Self::Refresh => "refresh",
        }
    }
}

struct Op {
    id: u64,
    kind: OpKind,
    task: JoinHandle<()>,
}

enum OpError {
    Auth(AuthError),
    PasswordCommand(String),
}

struct Done {
    id: u64,
    result: Result<TokenSet, OpError>,
    password: Option<Secret>,
}

struct Waiter {
    kind: fkq_cred_proto::TokenKind,
    reply: oneshot::Sender<Result<fkq_cred_proto::TokenReply, WireError>>,
}

struct Failing {
    since: SystemTime,
    error: WireError,
    next_retry: SystemTime,
}

#[derive(Default)]
struct Stats {
    logins: u64,
    refreshes: u64,
    failures: u64,
    last_refresh: Option<SystemTime>,
}

/// The session task's state.
pub(crate) struct Actor {
    profile: Arc<Profile>,
    client: Result<Arc<AuthClient>, WireError>,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Command>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    op: Option<Op>,
    next_op_id: u64,
    waiters: Vec<Waiter>,
    login_replies: Vec<oneshot::Sender<Result<LoggedIn, WireError>>>,
    username: Option<String>,
    remembered: Option<Secret>,
    /// Set after a rejected automatic login or a logout: only the user's
    /// own `login` may log in again, so a wrong stored password can never
    /// lock the account.
    auto_login_blocked: bool,
    /// The deployment has no `/login/refresh` (older stacks).
    refresh_missing: bool,
    /// Why only the user can revive the session.
    login_required: Option<WireError>,
    failing: Option<Failing>,
    delays: Box<dyn Iterator<Item = Duration> + Send>,
    refresh_plan: Option<SystemTime>,
    stats: Stats,
}

impl Actor {
    pub(crate) fn new(
        profile: Arc<Profile>,
        client: Result<Arc<AuthClient>, WireError>,
        shared: Arc<Shared>,
        rx: mpsc::Receiver<Command>,
    ) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Self {
            delays: Box::new(retry_delays(&profile)),
            username: profile.username.clone(),
            profile,
            client,
            shared,
            rx,
            done_tx,
            done_rx,
            op: None,
            next_op_id: 0,
            waiters: Vec::new(),
            login_replies: Vec::new(),
            remembered: None,
            auto_login_blocked: false,
            refresh_missing: false,
            login_required: None,
            failing: None,
            refresh_plan: None,
            stats: Stats::default(),
        }
    }

    /// Serves commands until every handle is dropped, then forgets the
    /// tokens (dropping them zeroes their memory).
    pub(crate) async fn run(mut self) {
        loop {
            let wake = self.next_wake();
            tokio::select! {
                command = self.rx.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                Some(done) = self.done_rx.recv() => self.on_done(done),
                () = sleep_for(wake) => self.on_timer(),
            }
        }
        if let Some(op) = self.op.take() {
            op.task.abort();
        }
        self.shared.set(None);
        tracing::debug!(profile = %self.profile.name, "session stopped");
    }

    fn now(&self) -> SystemTime {
        self.shared.clock.now()
    }

    fn next_wake(&self) -> Option<Duration> {
        if self.op.is_some() {
            return None;
        }
        let due = match &self.failing {
            Some(f) => Some(f.next_retry),
            None => self.refresh_plan,
        }?;
        let left = due.duration_since(self.now()).unwrap_or(Duration::ZERO);
        Some(left.min(MAX_TIMER_SLEEP))
    }

    fn on_timer(&mut self) {
        let now = self.now();
        let due = match &self.failing {
            Some(f) => f.next_retry <= now,
            None => self.refresh_plan.is_some_and(|at| at <= now),
        };
        if !due || self.op.is_some() {
            return;
        }
        self.refresh_plan = None;
        if let Err(error) = self.renew() {
            self.fail_waiters(&error);
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Get { kind, needed, force, reply } => {
                if !force {
                    if let Some(tokens) = self.shared.get() {
                        if tokens.is_valid_for(self.now(), needed) {
                            let _ = reply.send(token_reply(
                                &self.profile.name,
                                &tokens,
                                kind,
                            ));
                            return;
                        }
                    }
                }
                if self.op.is_some() {
                    self.waiters.push(Waiter { kind, reply });
                    return;
                }
                if let Some(f) = &self.failing {
                    if self.now() < f.next_retry {
                        let _ = reply.send(Err(f.error.clone()));
                        return;
                    }
                }
                match self.renew() {
                    Ok(()) => self.waiters.push(Waiter { kind, reply }),
                    Err(error) => {
                        let _ = reply.send(Err(error));
                    }
                }
            }
            Command::Login { username, password, new_password, reply } => {
                self.start_user_login(username, password, new_password, reply);
            }
            Command::Logout { reply } => {
                self.logout();
                let _ = reply.send(());
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
        }
    }

    /// Starts whatever renews the session, or says why nothing can.
    fn renew(&mut self) -> Result<(), WireError> {
        if let Err(error) = &self.client {
            return Err(error.clone());
        }
        if let Some(reason) = &self.login_required {
            return Err(reason.clone());
        }
        let tokens = self.shared.get();
        let can_refresh = tokens.as_ref().is_some_and(|t| t.can_refresh())
            && !self.refresh_missing;
        if can_refresh {
            self.start(OpKind::Refresh, None, None);
            return Ok(());
        }
        if self.can_auto_login() {
            self.start(OpKind::AutoLogin, None, None);
            return Ok(());
        }
        Err(self.not_logged_in(tokens.is_some()))
    }

    fn can_auto_login(&self) -> bool {
        !self.auto_login_blocked
            && self.username.is_some()
            && (self.profile.password_command.is_some()
                || self.remembered.is_some())
    }

    fn not_logged_in(&self, had_session: bool) -> WireError {
        let what = if had_session {
            "session has expired and cannot be renewed without the password"
        } else {
            "is not logged in"
        };
        WireError::new(
            ErrorKind::NotLoggedIn,
            format!(
                "profile {:?} {what}; run `{}`",
                self.profile.name,
                self.login_command()
            ),
        )
    }

    fn login_command(&self) -> String {
        format!("fkq-cred login --profile {}", self.profile.name)
    }

    fn start_user_login(
        &mut self,
        username: Option<String>,
        password: Secret,
        new_password: Option<Secret>,
        reply: oneshot::Sender<Result<LoggedIn, WireError>>,
    ) {
        if let Err(error) = &self.client {
            let _ = reply.send(Err(error.clone()));
            return;
        }
        let Some(username) = username.or_else(|| self.username.clone()) else {
            let message = format!(
                "profile {:?} has no username; pass --username or set `username` in the profile",
                self.profile.name
            );
            let _ = reply.send(Err(WireError::new(ErrorKind::Config, message)));
            return;
        };
        if let Some(op) = self.op.take() {
            op.task.abort();
            let superseded = WireError::new(
                ErrorKind::Internal,
                "a newer login replaced this one",
            );
            for reply in self.login_replies.drain(..) {
                let _ = reply.send(Err(superseded.clone()));
            }
        }
        self.username = Some(username);
        self.start(OpKind::UserLogin, Some(password), new_password);
        self.login_replies.push(reply);
    }

    /// Spawns the HTTP work of `kind`; its result comes back as a [`Done`].
    fn start(
        &mut self,
        kind: OpKind,
        password: Option<Secret>,
        new_password: Option<Secret>,
    ) {
        let Ok(client) = self.client.clone() else { return };
        self.next_op_id += 1;
        let id = self.next_op_id;
        let done_tx = self.done_tx.clone();
        let username = self.username.clone().unwrap_or_default();
        let previous = self.shared.get();
        let remembered = self.remembered.clone();
        let command = self.profile.password_command.clone();
        tracing::debug!(profile = %self.profile.name, op = kind.as_str(), "starting");
        let task = tokio::spawn(async move {
            let (result, password) = match (kind, previous) {
                (OpKind::Refresh, Some(previous)) => (
                    client.refresh(&previous).await.map_err(OpError::Auth),
                    None,
                ),
                (OpKind::UserLogin, _) => {
                    let password = password.unwrap_or_default();
                    (
                        login(
                            &client,
                            &username,
                            &password,
                            new_password.as_ref(),
                        )
                        .await,
                        Some(password),
                    )
                }
                _ => {
                    let password = match (remembered, command) {
                        (Some(p), _) => Ok(p),
                        (None, Some(argv)) => password::run(&argv)
                            .await
                            .map_err(OpError::PasswordCommand),
                        (None, None) => Err(OpError::PasswordCommand(
                            "no password source".into(),
                        )),
                    };
                    match password {
                        Ok(p) => {
                            (login(&client, &username, &p, None).await, None)
                        }
                        Err(e) => (Err(e), None),
                    }
                }
            };
            let _ = done_tx.send(Done { id, result, password });
        });
        self.op = Some(Op { id, kind, task });
    }

    fn on_done(&mut self, done: Done) {
        if self.op.as_ref().map(|op| op.id) != Some(done.id) {
            return; // A superseded or aborted operation.
        }
        let Some(op) = self.op.take() else { return };
        match done.result {
            Ok(tokens) => self.on_tokens(op.kind, tokens, done.password),
            Err(error) => self.on_failure(op.kind, error),
        }
    }

    fn on_tokens(
        &mut self,
        kind: OpKind,
        tokens: TokenSet,
        password: Option<Secret>,
    ) {
        let now = self.now();
        match kind {
            OpKind::Refresh => self.stats.refreshes += 1,
            OpKind::UserLogin | OpKind::AutoLogin => self.stats.logins += 1,
        }
        self.stats.last_refresh = Some(now);
        if kind == OpKind::UserLogin {
            self.auto_login_blocked = false;
            self.remembered =
                if self.profile.remember_password { password } else { None };
        }
        self.login_required = None;
        self.failing = None;
        self.delays = Box::new(retry_delays(&self.profile));
        let tokens = Arc::new(tokens);
        self.refresh_plan = refresh_at(&self.profile, &tokens, fastrand::f64());
        self.shared.set(Some(tokens.clone()));
        let expires_in = tokens
            .expires_at
            .and_then(|at| at.duration_since(now).ok())
            .map(|d| d.as_secs());
        tracing::info!(profile = %self.profile.name, op = kind.as_str(), expires_in_secs = ?expires_in, "tokens renewed");

        for waiter in self.waiters.drain(..) {
            let _ = waiter.reply.send(token_reply(
                &self.profile.name,
                &tokens,
                waiter.kind,
            ));
        }
        let username = self.username.clone().unwrap_or_default();
        for reply in self.login_replies.drain(..) {
            let _ = reply.send(Ok(LoggedIn {
                username: username.clone(),
                expires_at: tokens.expires_at_unix(),
            }));
        }
    }

    fn on_failure(&mut self, kind: OpKind, error: OpError) {
        let now = self.now();
        self.stats.failures += 1;
        let wire = match &error {
            OpError::Auth(e) => e.to_wire(),
            OpError::PasswordCommand(m) => WireError::new(
                ErrorKind::NotLoggedIn,
                format!(
                    "{m}; fix password_command or run `{}`",
                    self.login_command()
                ),
            ),
        };
        tracing::warn!(profile = %self.profile.name, op = kind.as_str(), error = %wire.message, "failed");

        match (kind, &error) {
            (OpKind::UserLogin, _) => {
                for reply in self.login_replies.drain(..) {
                    let _ = reply.send(Err(wire.clone()));
                }
                self.fail_waiters(&wire);
            }
            (
                OpKind::Refresh,
                OpError::Auth(
                    e @ (AuthError::RefreshRejected { .. }
                    | AuthError::RefreshNotFound { .. }),
                ),
            ) => {
                if matches!(e, AuthError::RefreshNotFound { .. }) {
                    self.refresh_missing = true;
                }
                if self.can_auto_login() {
                    self.start(OpKind::AutoLogin, None, None);
                    return;
                }
                let message = format!("{e}; run `{}`", self.login_command());
                self.require_login(WireError::new(
                    ErrorKind::NotLoggedIn,
                    message,
                ));
            }
            (OpKind::AutoLogin, OpError::Auth(e)) if e.needs_user() => {
                self.auto_login_blocked = true;
                self.remembered = None;
                let message = format!(
                    "automatic login for profile {:?} failed: {e}; automatic logins are paused until you run `{}`",
                    self.profile.name,
                    self.login_command()
                );
                self.require_login(WireError::new(
                    ErrorKind::NotLoggedIn,
                    message,
                ));
            }
            _ => {
                let delay =
                    self.delays.next().unwrap_or(self.profile.retry_max);
                let since = self.failing.as_ref().map_or(now, |f| f.since);
                self.failing = Some(Failing {
                    since,
                    error: wire.clone(),
                    next_retry: now + delay,
                });
                tracing::info!(profile = %self.profile.name, retry_in_ms = delay.as_millis() as u64, "will retry");
                self.fail_waiters(&wire);
            }
        }
    }

    fn require_login(&mut self, reason: WireError) {
        self.failing = None;
        self.refresh_plan = None;
        self.fail_waiters(&reason);
        self.login_required = Some(reason);
    }

    fn fail_waiters(&mut self, error: &WireError) {
        for waiter in self.waiters.drain(..) {
            let _ = waiter.reply.send(Err(error.clone()));
        }
    }

    fn logout(&mut self) {
        if let Some(op) = self.op.take() {
            op.task.abort();
        }
        let error = WireError::new(
            ErrorKind::NotLoggedIn,
            format!("profile {:?} was logged out", self.profile.name),
        );
        self.fail_waiters(&error);
        for reply in self.login_replies.drain(..) {
            let _ = reply.send(Err(error.clone()));
        }
        self.shared.set(None);
        self.remembered = None;
        self.auto_login_blocked = true;
        self.login_required = None;
        self.failing = None;
        self.refresh_plan = None;
        tracing::info!(profile = %self.profile.name, "logged out");
    }

    fn status(&self) -> ProfileStatus {
        let tokens = self.shared.get();
        let now = self.now();
        let state = match (self.op.as_ref().map(|op| op.kind), &tokens) {
            (Some(OpKind::UserLogin | OpKind::AutoLogin), _) => {
                ProfileState::LoggingIn
            }
            (Some(OpKind::Refresh), Some(_)) => ProfileState::Refreshing,
            _ if self.login_required.is_some() => ProfileState::LoginRequired,
            _ if self.failing.is_some() => ProfileState::Failing,
            (_, Some(t)) if t.is_unexpired(now) => ProfileState::Active,
            _ => ProfileState::LoggedOut,
        };
        let mut status = base_status(&self.profile, state);
        status.username = self.username.clone();
        status.expires_at = tokens.as_ref().and_then(|t| t.expires_at_unix());
        status.refresh_at = unix(self.refresh_plan);
        status.last_refresh = unix(self.stats.last_refresh);
        status.logins = self.stats.logins;
        status.refreshes = self.stats.refreshes;
        status.failures = self.stats.failures;
        status.last_error =
            self.failing.as_ref().map(|f| f.error.message.clone()).or_else(
                || self.login_required.as_ref().map(|e| e.message.clone()),
            );
        status.failing_since = unix(self.failing.as_ref().map(|f| f.since));
        status.next_retry = unix(self.failing.as_ref().map(|f| f.next_retry));
        status
    }
}

/// Logs in, answering a new-password challenge when the user gave one.
async fn login(
    client: &AuthClient,
    username: &str,
    password: &Secret,
    new_password: Option<&Secret>,
) -> Result<TokenSet, OpError> {
    match (client.login(username, password).await, new_password) {
        (Err(AuthError::ChallengeRequired { session, .. }), Some(new)) => {
            client
                .answer_new_password(username, &session, new)
                .await
                .map_err(OpError::Auth)
        }
        (result, _) => result.map_err(OpError::Auth),
    }
}

async fn sleep_for(wake: Option<Duration>) {
    match wake {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

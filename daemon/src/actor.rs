//! The task that owns one profile's session: it starts logins and
//! refreshes, one at a time, schedules the next refresh, backs off after
//! failures, and answers the callers waiting for a fresh token.
//!
//! The rules it keeps:
//! - One operation in flight, whoever asked for it (the timer, a `get`,
//!   `sites` after a 401); everyone waiting gets its result.
//! - No two renewals start less than [`MIN_REFRESH_INTERVAL`] apart: a
//!   caller that needs a fresh token sooner waits for the floor to pass.
//! - A transient failure (timeout, refused connection, 5xx, 429, a reply
//!   that is not FormKiQ's JSON) keeps the current token in service and
//!   schedules a retry after a capped, jittered, growing pause. Until then
//!   a caller whose token is too old is told the cause at once.
//! - A refused refresh token leads to one automatic login when the profile
//!   has a password source, and to "login required" otherwise. A refused
//!   automatic login stops automatic logins until the user logs in.
//! - Validity is always judged by the wall clock ([`crate::clock`]); the
//!   timer never sleeps longer than [`MAX_TIMER_SLEEP`], so a laptop that
//!   wakes from suspend refreshes within a minute even with no caller.

mod failure;
mod op;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fkq_cred_proto::{
    ErrorKind, ProfileState, ProfileStatus, Secret, TokenKind, TokenReply,
    WireError,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::backend::Backend;
use crate::config::Profile;
use crate::schedule::{refresh_at, retry_delays, MIN_REFRESH_INTERVAL};
use crate::session::{
    base_status, token_reply, unix, Command, LoggedIn, Shared,
};
use crate::tokens::TokenSet;
use failure::Failing;
use op::{Done, Op, OpKind, Work};

/// The longest the task sleeps before looking at the wall clock again. The
/// monotonic timer stops during suspend; waking every minute bounds how
/// late a refresh can be after the machine resumes.
pub const MAX_TIMER_SLEEP: Duration = Duration::from_secs(60);

struct Waiter {
    kind: TokenKind,
    reply: oneshot::Sender<Result<TokenReply, WireError>>,
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
    backend: Result<Arc<dyn Backend>, WireError>,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Command>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    op: Option<Op>,
    next_op_id: u64,
    /// When the last operation started, on the monotonic clock: the floor
    /// between renewals is measured from here.
    last_start: Option<Instant>,
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
    /// The server refused the current refresh token; only a login helps.
    refresh_rejected: bool,
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
        backend: Result<Arc<dyn Backend>, WireError>,
        shared: Arc<Shared>,
        rx: mpsc::Receiver<Command>,
    ) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Self {
            delays: Box::new(retry_delays(&profile)),
            username: profile.username.clone(),
            profile,
            backend,
            shared,
            rx,
            done_tx,
            done_rx,
            op: None,
            next_op_id: 0,
            last_start: None,
            waiters: Vec::new(),
            login_replies: Vec::new(),
            remembered: None,
            auto_login_blocked: false,
            refresh_missing: false,
            refresh_rejected: false,
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

    /// How much longer the floor between renewals holds the next one back.
    fn floor_left(&self) -> Duration {
        self.last_start.map_or(Duration::ZERO, |at| {
            (at + MIN_REFRESH_INTERVAL)
                .saturating_duration_since(Instant::now())
        })
    }

    /// How long to sleep before [`Self::on_timer`] has work, or `None` when
    /// only a command or a finished operation can bring any.
    fn next_wake(&self) -> Option<Duration> {
        if self.op.is_some() {
            return None;
        }
        let floor = self.floor_left();
        if !self.waiters.is_empty() {
            return Some(floor);
        }
        let due = match &self.failing {
            Some(f) => Some(f.next_retry),
            None => self.refresh_plan,
        }?;
        let left = due.duration_since(self.now()).unwrap_or(Duration::ZERO);
        Some(left.max(floor).min(MAX_TIMER_SLEEP))
    }

    fn on_timer(&mut self) {
        if self.op.is_some() || !self.floor_left().is_zero() {
            return;
        }
        let now = self.now();
        let due = !self.waiters.is_empty()
            || match &self.failing {
                Some(f) => f.next_retry <= now,
                None => self.refresh_plan.is_some_and(|at| at <= now),
            };
        if !due {
            return;
        }
        self.refresh_plan = None;
        match self.renewal() {
            Ok(kind) => self.start(kind, None, None),
            Err(error) => {
                // Nothing can renew the session: stop retrying, so the
                // timer cannot spin, and tell whoever waits why.
                self.failing = None;
                self.fail_waiters(&error);
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Get { kind, needed, force, reply } => {
                self.on_get(Waiter { kind, reply }, needed, force);
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
            Command::Forget { reply } => {
                self.forget();
                let _ = reply.send(());
            }
        }
    }

    /// Answers a caller who needs a token valid for `needed`; with `force`,
    /// only a token obtained after this request will do.
    fn on_get(&mut self, waiter: Waiter, needed: Duration, force: bool) {
        if !force {
            if let Some(tokens) = self.shared.get() {
                if tokens.is_valid_for(self.now(), needed) {
                    let _ = waiter.reply.send(token_reply(
                        &self.profile.name,
                        &tokens,
                        waiter.kind,
                    ));
                    return;
                }
            }
        }
        if self.failing.is_some() {
            // Renewals are failing: answer at once with the cause rather
            // than keep the caller waiting on a server that is down. A
            // retry that is due (the timer may still sleep after a
            // suspend) starts now, for the callers that come next.
            self.retry_if_due();
            if let Some(failing) = &self.failing {
                let error = self.failing_error(failing);
                let _ = waiter.reply.send(Err(error));
                return;
            }
        }
        if self.op.is_some() {
            self.waiters.push(waiter);
            return;
        }
        match self.renewal() {
            Err(error) => {
                let _ = waiter.reply.send(Err(error));
            }
            // The timer starts the renewal once the floor has passed.
            Ok(_) if !self.floor_left().is_zero() => self.waiters.push(waiter),
            Ok(kind) => {
                self.start(kind, None, None);
                self.waiters.push(waiter);
            }
        }
    }

    /// Starts the retry of a failing session if it is due and nothing is
    /// in flight.
    fn retry_if_due(&mut self) {
        let due =
            self.failing.as_ref().is_some_and(|f| f.next_retry <= self.now());
        if due && self.op.is_none() && self.floor_left().is_zero() {
            self.on_timer();
        }
    }

    /// Which operation would renew the session now, or why none can.
    fn renewal(&self) -> Result<OpKind, WireError> {
        if let Err(error) = &self.backend {
            return Err(error.clone());
        }
        if let Some(reason) = &self.login_required {
            return Err(reason.clone());
        }
        let tokens = self.shared.get();
        let can_refresh = tokens.as_ref().is_some_and(|t| t.can_refresh());
        if can_refresh && !self.refresh_missing && !self.refresh_rejected {
            return Ok(OpKind::Refresh);
        }
        if self.can_auto_login() {
            return Ok(OpKind::AutoLogin);
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
        if let Err(error) = &self.backend {
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
        let Ok(backend) = self.backend.clone() else { return };
        self.next_op_id += 1;
        let id = self.next_op_id;
        let work = Work {
            kind,
            backend,
            username: self.username.clone().unwrap_or_default(),
            previous: self.shared.get(),
            password,
            new_password,
            remembered: self.remembered.clone(),
            command: self.profile.password_command.clone(),
        };
        tracing::debug!(profile = %self.profile.name, op = kind.as_str(), "starting");
        let task = op::spawn(id, work, self.done_tx.clone());
        self.op = Some(Op { id, kind, task });
        self.last_start = Some(Instant::now());
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
            OpKind::UserLogin | OpKind::AutoLogin => {
                self.stats.logins += 1;
                self.refresh_rejected = false;
            }
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

    fn logout(&mut self) {
        self.clear("was logged out");
        self.auto_login_blocked = true;
        tracing::info!(profile = %self.profile.name, "logged out");
    }

    /// Drops the tokens and the remembered password but keeps the right to
    /// log in through a `password_command`, which holds no secret in memory.
    fn forget(&mut self) {
        self.clear("had its tokens forgotten");
        tracing::info!(profile = %self.profile.name, "tokens forgotten");
    }

    fn clear(&mut self, what: &str) {
        if let Some(op) = self.op.take() {
            op.task.abort();
        }
        let error = WireError::new(
            ErrorKind::NotLoggedIn,
            format!("profile {:?} {what}", self.profile.name),
        );
        self.fail_waiters(&error);
        for reply in self.login_replies.drain(..) {
            let _ = reply.send(Err(error.clone()));
        }
        self.shared.set(None);
        self.remembered = None;
        self.refresh_rejected = false;
        self.login_required = None;
        self.failing = None;
        self.refresh_plan = None;
    }

    fn status(&self) -> ProfileStatus {
        let tokens = self.shared.get();
        let now = self.now();
        // A retry in flight does not hide that renewals are failing.
        let state = match (self.op.as_ref().map(|op| op.kind), &tokens) {
            (Some(OpKind::UserLogin), _) => ProfileState::LoggingIn,
            _ if self.login_required.is_some() => ProfileState::LoginRequired,
            _ if self.failing.is_some() => ProfileState::Failing,
            (Some(OpKind::AutoLogin), _) => ProfileState::LoggingIn,
            (Some(OpKind::Refresh), Some(_)) => ProfileState::Refreshing,
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

async fn sleep_for(wake: Option<Duration>) {
    match wake {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

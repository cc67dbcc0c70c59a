//! How the session takes a failed login or refresh: a retry after a pause,
//! one automatic login, or "login required".

use std::time::{Duration, SystemTime};

use fkq_cred_proto::{ErrorKind, WireError};

use super::op::{OpError, OpKind};
use super::Actor;
use crate::auth::AuthError;

/// Renewals are failing for a reason that may pass by itself.
pub(super) struct Failing {
    /// When the first of the failures in a row happened.
    pub(super) since: SystemTime,
    /// The last failure.
    pub(super) error: WireError,
    /// When the next attempt is due.
    pub(super) next_retry: SystemTime,
}

impl Actor {
    /// What a caller is told while renewals fail and the next retry is
    /// still ahead.
    pub(super) fn failing_error(&self, failing: &Failing) -> WireError {
        let wait = failing
            .next_retry
            .duration_since(self.now())
            .unwrap_or(Duration::ZERO);
        let next = if self.op.is_some() {
            "retrying now".to_string()
        } else {
            format!("next retry in {} s", wait.as_secs_f64().ceil())
        };
        WireError::new(
            failing.error.kind,
            format!(
                "profile {:?} has no token that is valid long enough, and renewing it failed: {}; {next}",
                self.profile.name, failing.error.message,
            ),
        )
    }

    /// Decides what follows a failed operation of `kind`: a scheduled
    /// retry, one automatic login, or "login required".
    pub(super) fn on_failure(&mut self, kind: OpKind, error: OpError) {
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
            OpError::Internal(m) => WireError::new(
                ErrorKind::Internal,
                format!("profile {:?}: {m}", self.profile.name),
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
                let what = match e {
                    AuthError::RefreshNotFound { url } => {
                        self.refresh_missing = true;
                        format!("{url} does not exist on this deployment (older stacks have no refresh endpoint)")
                    }
                    _ => {
                        self.refresh_rejected = true;
                        "the auth server refused the refresh token (expired or revoked)".into()
                    }
                };
                if self.can_auto_login() {
                    tracing::info!(profile = %self.profile.name, "logging in again with the password source");
                    self.start(OpKind::AutoLogin, None, None);
                    return;
                }
                let message = format!(
                    "profile {:?} must log in again: {what}, and the profile has no password_command or remembered password; run `{}`",
                    self.profile.name,
                    self.login_command()
                );
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
                let failing =
                    Failing { since, error: wire, next_retry: now + delay };
                let told = self.failing_error(&failing);
                self.failing = Some(failing);
                tracing::info!(profile = %self.profile.name, retry_in_ms = delay.as_millis() as u64, "will retry");
                self.fail_waiters(&told);
            }
        }
    }

    /// Stops renewals until the user logs in, telling waiters why.
    fn require_login(&mut self, reason: WireError) {
        self.failing = None;
        self.refresh_plan = None;
        self.fail_waiters(&reason);
        self.login_required = Some(reason);
    }

    /// Answers everyone waiting for a token with `error`.
    pub(super) fn fail_waiters(&mut self, error: &WireError) {
        for waiter in self.waiters.drain(..) {
            let _ = waiter.reply.send(Err(error.clone()));
        }
    }
}

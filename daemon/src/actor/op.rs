//! The HTTP work of one login or refresh, run as a task of its own so the
//! session keeps answering callers while the server takes its time.

use std::sync::Arc;

use fkq_cred_proto::Secret;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::auth::AuthError;
use crate::backend::Backend;
use crate::password;
use crate::tokens::TokenSet;

/// Which operation is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OpKind {
    /// A login with the password the user just typed.
    UserLogin,
    /// A login with the profile's password source, without the user.
    AutoLogin,
    /// A refresh with the refresh token.
    Refresh,
}

impl OpKind {
    /// The name used in logs.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::UserLogin => "login",
            Self::AutoLogin => "automatic login",
            Self::Refresh => "refresh",
        }
    }
}

/// An operation in flight.
pub(super) struct Op {
    /// Tells its [`Done`] apart from those of aborted operations.
    pub(super) id: u64,
    pub(super) kind: OpKind,
    pub(super) task: JoinHandle<()>,
}

/// Why an operation failed.
pub(super) enum OpError {
    /// The server, or the way to it.
    Auth(AuthError),
    /// The password command; the message never quotes its output.
    PasswordCommand(String),
    /// The session asked for something it cannot do; a bug.
    Internal(&'static str),
}

/// The outcome of an operation, sent back to the session task.
pub(super) struct Done {
    pub(super) id: u64,
    pub(super) result: Result<TokenSet, OpError>,
    /// The password of a successful user login, for `remember_password`.
    pub(super) password: Option<Secret>,
}

/// Everything an operation needs, gathered by the session task.
pub(super) struct Work {
    pub(super) kind: OpKind,
    pub(super) backend: Arc<dyn Backend>,
    pub(super) username: String,
    /// The current tokens, whose refresh token a refresh sends.
    pub(super) previous: Option<Arc<TokenSet>>,
    /// The password the user typed, for a user login.
    pub(super) password: Option<Secret>,
    /// The new password answering a `NEW_PASSWORD_REQUIRED` challenge.
    pub(super) new_password: Option<Secret>,
    /// The password kept from the last user login.
    pub(super) remembered: Option<Secret>,
    /// The profile's `password_command`.
    pub(super) command: Option<Vec<String>>,
}

/// Runs `work` as a task that reports to `done_tx` under `id`.
pub(super) fn spawn(
    id: u64,
    work: Work,
    done_tx: mpsc::UnboundedSender<Done>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut report = Report { id, done_tx: Some(done_tx) };
        let (result, password) = run(work).await;
        report.send(Done { id, result, password });
    })
}

/// Sends an operation's outcome exactly once. Dropped without sending (the
/// task panicked, or was aborted), it reports a failure instead, so the
/// session never waits forever for an operation that is gone. An aborted
/// operation's report is ignored: the session no longer expects its id.
struct Report {
    id: u64,
    done_tx: Option<mpsc::UnboundedSender<Done>>,
}

impl Report {
    fn send(&mut self, done: Done) {
        if let Some(tx) = self.done_tx.take() {
            let _ = tx.send(done);
        }
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        let failed = Err(OpError::Internal(
            "the operation stopped unexpectedly; see the daemon log",
        ));
        let id = self.id;
        self.send(Done { id, result: failed, password: None });
    }
}

async fn run(work: Work) -> (Result<TokenSet, OpError>, Option<Secret>) {
    let backend = work.backend.as_ref();
    match work.kind {
        OpKind::Refresh => {
            let result = match &work.previous {
                Some(previous) => {
                    backend.refresh(previous).await.map_err(OpError::Auth)
                }
                // The session starts a refresh only while it holds tokens.
                None => Err(OpError::Internal("no refresh token to send")),
            };
            (result, None)
        }
        OpKind::UserLogin => {
            let password = work.password.unwrap_or_default();
            let result = login(
                backend,
                &work.username,
                &password,
                work.new_password.as_ref(),
            )
            .await;
            (result, Some(password))
        }
        OpKind::AutoLogin => {
            let password = match (work.remembered, work.command) {
                (Some(p), _) => Ok(p),
                (None, Some(argv)) => {
                    password::run(&argv).await.map_err(OpError::PasswordCommand)
                }
                (None, None) => {
                    Err(OpError::PasswordCommand("no password source".into()))
                }
            };
            let result = match password {
                Ok(p) => login(backend, &work.username, &p, None).await,
                Err(e) => Err(e),
            };
            (result, None)
        }
    }
}

/// Logs in, answering a new-password challenge when the user gave one.
async fn login(
    backend: &dyn Backend,
    username: &str,
    password: &Secret,
    new_password: Option<&Secret>,
) -> Result<TokenSet, OpError> {
    match (backend.login(username, password).await, new_password) {
        (Err(AuthError::ChallengeRequired { session, .. }), Some(new)) => {
            backend
                .answer_new_password(username, &session, new)
                .await
                .map_err(OpError::Auth)
        }
        (result, _) => result.map_err(OpError::Auth),
    }
}

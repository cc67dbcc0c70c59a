//! What a session needs from the auth server, as a trait.
//!
//! [`AuthClient`] is the real implementation. The trait exists so the
//! session's scheduling can be tested on tokio's paused clock: paused time
//! jumps ahead whenever the runtime waits, even while a real socket is
//! about to answer, so an HTTP timeout would fire at once. The unit tests
//! therefore put a scripted server behind this trait instead of a socket;
//! the HTTP paths themselves are tested end to end against the emulator.

use std::future::Future;
use std::pin::Pin;

use fkq_cred_proto::Secret;

use crate::auth::{AuthClient, AuthError};
use crate::tokens::TokenSet;

/// A boxed future that can move between threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The three calls a session makes to the auth server.
pub trait Backend: Send + Sync + 'static {
    /// Logs in with a password, through the profile's provider.
    fn login<'a>(
        &'a self,
        username: &'a str,
        password: &'a Secret,
    ) -> BoxFuture<'a, Result<TokenSet, AuthError>>;

    /// Renews the tokens with `previous.refresh`, keeping it unless the
    /// reply carries a new one.
    fn refresh<'a>(
        &'a self,
        previous: &'a TokenSet,
    ) -> BoxFuture<'a, Result<TokenSet, AuthError>>;

    /// Answers a `NEW_PASSWORD_REQUIRED` challenge with the first
    /// password, returning the tokens of the login that follows.
    fn answer_new_password<'a>(
        &'a self,
        username: &'a str,
        session: &'a Secret,
        new_password: &'a Secret,
    ) -> BoxFuture<'a, Result<TokenSet, AuthError>>;
}

impl Backend for AuthClient {
    fn login<'a>(
        &'a self,
        username: &'a str,
        password: &'a Secret,
    ) -> BoxFuture<'a, Result<TokenSet, AuthError>> {
        Box::pin(AuthClient::login(self, username, password))
    }

    fn refresh<'a>(
        &'a self,
        previous: &'a TokenSet,
    ) -> BoxFuture<'a, Result<TokenSet, AuthError>> {
        Box::pin(AuthClient::refresh(self, previous))
    }

    fn answer_new_password<'a>(
        &'a self,
        username: &'a str,
        session: &'a Secret,
        new_password: &'a Secret,
    ) -> BoxFuture<'a, Result<TokenSet, AuthError>> {
        Box::pin(AuthClient::answer_new_password(
            self,
            username,
            session,
            new_password,
        ))
    }
}

//! The exit codes of `fkq-cred` and `fkq-credd`, one table for both, so a
//! script can branch on what went wrong. README and `--help` show the same
//! table; a test runs a scenario for each code.

use crate::ErrorKind;

/// Success.
pub const OK: u8 = 0;
/// An unexpected failure; the message says what happened.
pub const FAILURE: u8 = 1;
/// The command line was wrong.
pub const USAGE: u8 = 2;
/// Not logged in, or the session expired and cannot be renewed: run
/// `fkq-cred login`.
pub const LOGIN_REQUIRED: u8 = 3;
/// The server rejected the username or password.
pub const REJECTED: u8 = 4;
/// The daemon is not running or cannot be reached.
pub const DAEMON_UNREACHABLE: u8 = 5;
/// The FormKiQ server is unreachable or failing (network, timeout, TLS,
/// 5xx, 429); retrying later may work.
pub const SERVER_UNREACHABLE: u8 = 6;
/// The server answered, but not as FormKiQ does: a wrong URL, or an
/// unexpected reply.
pub const BAD_SERVER_REPLY: u8 = 7;
/// The server requires a new password before it issues tokens.
pub const NEW_PASSWORD_REQUIRED: u8 = 8;
/// The API refused the token or the action (401, 403).
pub const ACCESS_DENIED: u8 = 9;
/// The configuration is missing or invalid, or the profile is unknown.
pub const CONFIG: u8 = 10;
/// Client and daemon speak different protocol versions.
pub const VERSION_MISMATCH: u8 = 11;
/// `fkq-credd`: another daemon already serves the socket.
pub const ALREADY_RUNNING: u8 = 12;

/// Every code with its name and meaning, in order, for help texts.
pub const TABLE: &[(u8, &str, &str)] = &[
    (OK, "ok", "success"),
    (FAILURE, "failure", "unexpected failure; the message says what happened"),
    (USAGE, "usage", "wrong command line"),
    (
        LOGIN_REQUIRED,
        "login-required",
        "not logged in or session expired: run `fkq-cred login`",
    ),
    (REJECTED, "rejected", "the server rejected the username or password"),
    (
        DAEMON_UNREACHABLE,
        "daemon-unreachable",
        "fkq-credd is not running or cannot be reached",
    ),
    (
        SERVER_UNREACHABLE,
        "server-unreachable",
        "FormKiQ unreachable or failing (network, TLS, 5xx, 429)",
    ),
    (
        BAD_SERVER_REPLY,
        "bad-server-reply",
        "a wrong URL, or a reply FormKiQ does not send",
    ),
    (
        NEW_PASSWORD_REQUIRED,
        "new-password-required",
        "the server wants a new password first",
    ),
    (
        ACCESS_DENIED,
        "access-denied",
        "the API refused the token or the action (401, 403)",
    ),
    (CONFIG, "config", "configuration missing or invalid, or unknown profile"),
    (
        VERSION_MISMATCH,
        "version-mismatch",
        "fkq-cred and fkq-credd versions differ",
    ),
    (
        ALREADY_RUNNING,
        "already-running",
        "fkq-credd: another daemon serves the socket",
    ),
];

/// The exit code for an error that came over the socket.
pub fn for_error(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::NotLoggedIn => LOGIN_REQUIRED,
        ErrorKind::AuthRejected => REJECTED,
        ErrorKind::ChallengeRequired => NEW_PASSWORD_REQUIRED,
        ErrorKind::ServerUnreachable => SERVER_UNREACHABLE,
        ErrorKind::WrongEndpoint | ErrorKind::BadResponse => BAD_SERVER_REPLY,
        ErrorKind::Forbidden | ErrorKind::Unauthorized => ACCESS_DENIED,
        ErrorKind::UnknownProfile | ErrorKind::Config => CONFIG,
        ErrorKind::Busy => DAEMON_UNREACHABLE,
        ErrorKind::BadRequest => VERSION_MISMATCH,
        ErrorKind::Internal => FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_every_code_once_in_order() {
        let codes: Vec<u8> = TABLE.iter().map(|(code, _, _)| *code).collect();
        assert_eq!(codes, (0..=ALREADY_RUNNING).collect::<Vec<_>>());
    }
}

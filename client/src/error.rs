//! The client's one error type: a message for the person at the terminal
//! and the exit code a script branches on.

use std::fmt;

use fkq_cred_proto::{exit, WireError};

/// A failure of a command.
#[derive(Debug)]
pub struct CliError {
    /// The exit code, from [`fkq_cred_proto::exit`].
    pub code: u8,
    /// What happened and what to do next; empty for a child's exit status
    /// passed through, which is not printed.
    pub message: String,
}

impl CliError {
    /// Builds an error.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// A failure with no better category.
    pub fn failure(message: impl Into<String>) -> Self {
        Self::new(exit::FAILURE, message)
    }

    /// A wrong command line.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(exit::USAGE, message)
    }

    /// An exit status passed through from a child (`exec`): nothing is
    /// printed, the child has said what it had to say.
    pub fn passthrough(code: u8) -> Self {
        Self::new(code, String::new())
    }
}

impl From<WireError> for CliError {
    fn from(error: WireError) -> Self {
        Self::new(exit::for_error(error.kind), error.message)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

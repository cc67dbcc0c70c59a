//! Test support for fkq-cred: a FormKiQ emulator that end-to-end tests and
//! demos run instead of a real AWS deployment, and the harness that runs
//! the real binaries in an isolated sandbox.
//!
//! - [`emulator`] serves the auth and API endpoints of a FormKiQ deployment
//!   over HTTPS on loopback, in-process or as the `formkiq-emulator` binary.
//! - [`harness`] gives each end-to-end test its own XDG directories,
//!   socket, daemon and emulator.
//! - [`pty`] runs a child on a pseudo-terminal, for prompts and colour.
//! - [`shifted`] runs a daemon whose wall clock a test can move.

pub mod emulator;
pub mod harness;
pub mod pty;
pub mod shifted;

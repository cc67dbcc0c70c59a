//! Test support for fkq-cred: a FormKiQ emulator that end-to-end tests and
//! demos run instead of a real AWS deployment, and the harness that runs
//! the real binaries in an isolated sandbox.
//!
//! - [`emulator`] serves the auth and API endpoints of a FormKiQ deployment
//!   over HTTPS on loopback, in-process or as the `formkiq-emulator` binary.
//! - [`harness`] gives each end-to-end test its own XDG directories,
//!   socket, daemon and emulator.
//! - [`moto`] runs moto's Cognito server, a real third-party peer for the
//!   `provider = "cognito"` tests.
//! - [`pty`] runs a child on a pseudo-terminal, for prompts and colour.
//! - [`shifted`] runs a daemon whose wall clock a test can move.
//! - [`wire`] speaks the socket protocol by hand, and [`hostile`] makes
//!   the random and mutated input the robustness tests throw.
//! - [`other_user`] runs binaries as another uid, for the access tests.
//! - [`stub_auth`] is a scripted auth server that keeps every token it
//!   issues, for the test that searches for leaked secrets.
//! - [`daemons`] watches and cleans up the daemons `fkq-cred` auto-starts.
//! - [`load`] measures a running daemon: connections under load, many
//!   client processes at once, and a start from nothing.

#[cfg(target_os = "linux")]
pub mod daemons;
pub mod emulator;
pub mod harness;
pub mod hostile;
pub mod load;
pub mod moto;
#[cfg(unix)]
pub mod other_user;
pub mod pty;
pub mod shifted;
pub mod stub_auth;
#[cfg(unix)]
pub mod wire;

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

pub mod emulator;
pub mod harness;
pub mod moto;

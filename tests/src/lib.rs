//! Test support for fkq-cred: a FormKiQ emulator that end-to-end tests and
//! demos run instead of a real AWS deployment.
//!
//! - [`emulator`] serves the auth and API endpoints of a FormKiQ deployment
//!   over HTTPS on loopback, in-process or as the `formkiq-emulator` binary.

pub mod emulator;

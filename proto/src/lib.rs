//! The contract between `fkq-cred` and `fkq-credd`: wire types, framing,
//! the version handshake, the socket location, and the limits both sides
//! enforce.
//!
//! Map of the crate:
//! - [`handshake`]: the fixed 8-byte greeting every version can read.
//! - [`frame`]: 4-byte length prefixes, checked before allocating.
//! - [`codec`]: the one place that knows the body encoding (bincode 1.3).
//! - [`message`]: requests, responses and the typed errors between them.
//! - [`location`]: the one function that decides where the socket lives.
//! - [`lock`]: the start lock that lets exactly one daemon start.
//! - [`paths`]: the one function that decides where the config file is.
//! - [`secret`]: a zeroizing string that never prints its contents.
//! - [`startup`]: how a daemon started by a client reports readiness.
//! - [`exit`]: the exit codes both binaries use.
//!
//! This crate is deliberately free of async runtimes and HTTP: the client
//! links it and must stay small and quick to start.

pub mod codec;
pub mod exit;
pub mod frame;
pub mod handshake;
pub mod location;
pub mod lock;
pub mod message;
pub mod paths;
pub mod secret;
pub mod startup;

pub use message::{
    ErrorKind, ProbeTarget, ProfileInfo, ProfileState, ProfileStatus, Request,
    Response, Site, SitesReply, TokenKind, TokenReply, TokenReplyRef,
    WireError,
};
pub use secret::Secret;

/// The protocol version spoken after the handshake.
///
/// Bump it whenever the encoding of any message changes; the golden-bytes
/// test in [`codec`] fails until you do. This is the only place the number
/// lives.
pub const PROTOCOL_VERSION: u16 = 1;

//! The greeting that opens every connection.
//!
//! Both sides send eight bytes: the magic `FKQC`, the protocol version as a
//! big-endian `u16`, a flags byte and a reserved zero byte. Its layout never
//! changes, so a client and a daemon of any two versions can always tell
//! each other apart and say so plainly, instead of misreading each other's
//! frames.
//!
//! The flags are how an upgrade works across versions that cannot decode
//! each other's frames. Each side's bits have their own meaning (see
//! [`client_flags`] and [`daemon_flags`]); every daemon and client from
//! protocol 1 on sets and honours them, and ignores bits it does not know.

use crate::PROTOCOL_VERSION;

/// The four bytes every fkq-cred connection starts with.
pub const MAGIC: [u8; 4] = *b"FKQC";

/// The length of a greeting on the wire.
pub const HELLO_LEN: usize = 8;

/// Bits a client sets in its greeting.
pub mod client_flags {
    /// "If you speak an older protocol than I do and a client started you,
    /// stop: I will start a daemon of my own version." Sent by every client
    /// that may auto-start a daemon; harmless when the versions agree.
    pub const REPLACE_IF_OLDER: u8 = 0x01;
    /// "If we speak different versions, stop, whoever started you." Sent by
    /// `fkq-cred daemon stop`, whose `Shutdown` request another version
    /// could not decode.
    pub const STOP_IF_OTHER_VERSION: u8 = 0x02;
}

/// Bits a daemon sets in its greeting.
pub mod daemon_flags {
    /// A client started this daemon (auto-start or `fkq-cred daemon
    /// start`), so a client may replace it.
    pub const STARTED_BY_CLIENT: u8 = 0x01;
    /// systemd started this daemon; only systemd should restart it.
    pub const UNDER_SYSTEMD: u8 = 0x02;
    /// The daemon honours the client's flags and is stopping. It keeps this
    /// connection open until its socket is gone, then closes it, so the
    /// client learns the exact moment it may start a successor.
    pub const STOPPING: u8 = 0x04;
}

/// What a peer's greeting said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hello {
    /// A fkq-cred peer speaking the given protocol version.
    Version(u16),
    /// Bytes that are not a fkq-cred greeting at all.
    Foreign,
}

/// Encodes this build's greeting.
pub fn hello() -> [u8; HELLO_LEN] {
    encode_hello(PROTOCOL_VERSION)
}

/// Encodes this build's greeting with `flags`.
pub fn hello_with_flags(flags: u8) -> [u8; HELLO_LEN] {
    encode_hello_with_flags(PROTOCOL_VERSION, flags)
}

/// Encodes a greeting for an arbitrary version; tests use it to play an
/// older or newer peer.
pub fn encode_hello(version: u16) -> [u8; HELLO_LEN] {
    encode_hello_with_flags(version, 0)
}

/// Encodes a greeting for an arbitrary version and flags byte.
pub fn encode_hello_with_flags(version: u16, flags: u8) -> [u8; HELLO_LEN] {
    let v = version.to_be_bytes();
    [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], v[0], v[1], flags, 0]
}

/// The flags byte of a greeting; meaningful only when [`decode_hello`]
/// recognised it as a fkq-cred greeting.
pub fn hello_flags(bytes: &[u8; HELLO_LEN]) -> u8 {
    bytes[6]
}

/// Decodes a peer's greeting.
pub fn decode_hello(bytes: &[u8; HELLO_LEN]) -> Hello {
    if bytes[..4] != MAGIC {
        return Hello::Foreign;
    }
    Hello::Version(u16::from_be_bytes([bytes[4], bytes[5]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_layout_is_fixed_for_every_version() {
        assert_eq!(encode_hello(1), *b"FKQC\x00\x01\x00\x00");
        assert_eq!(encode_hello(0x1234), *b"FKQC\x12\x34\x00\x00");
        assert_eq!(decode_hello(&encode_hello(7)), Hello::Version(7));
    }

    #[test]
    fn flags_travel_in_byte_six_and_leave_the_version_alone() {
        let bytes = encode_hello_with_flags(3, daemon_flags::STOPPING);
        assert_eq!(bytes, *b"FKQC\x00\x03\x04\x00");
        assert_eq!(decode_hello(&bytes), Hello::Version(3));
        assert_eq!(hello_flags(&bytes), daemon_flags::STOPPING);
        assert_eq!(hello_flags(&hello()), 0);
    }

    #[test]
    fn foreign_bytes_are_not_mistaken_for_a_peer() {
        assert_eq!(decode_hello(b"GET / HT"), Hello::Foreign);
    }
}

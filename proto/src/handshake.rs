//! The greeting that opens every connection.
//!
//! Both sides send eight bytes: the magic `FKQC`, the protocol version as a
//! big-endian `u16`, and two reserved zero bytes. Its layout never changes,
//! so a client and a daemon of any two versions can always tell each other
//! apart and say so plainly, instead of misreading each other's frames.

use crate::PROTOCOL_VERSION;

/// The four bytes every fkq-cred connection starts with.
pub const MAGIC: [u8; 4] = *b"FKQC";

/// The length of a greeting on the wire.
pub const HELLO_LEN: usize = 8;

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

/// Encodes a greeting for an arbitrary version; tests use it to play an
/// older or newer peer.
pub fn encode_hello(version: u16) -> [u8; HELLO_LEN] {
    let v = version.to_be_bytes();
    [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], v[0], v[1], 0, 0]
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
    fn foreign_bytes_are_not_mistaken_for_a_peer() {
        assert_eq!(decode_hello(b"GET / HT"), Hello::Foreign);
    }
}

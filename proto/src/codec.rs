//! The body encoding: bincode 1.3 with varint integers, a size limit and no
//! trailing bytes.
//!
//! This is the only module that names bincode. bincode 1.3.3 is the release
//! its maintainers call complete; keeping it behind these two functions means
//! a future change of codec touches one file and one version number.

use bincode::Options;
use serde::{de::DeserializeOwned, Serialize};
use thiserror::Error;

use crate::frame::MAX_RESPONSE_LEN;

/// A body that could not be encoded or decoded.
#[derive(Debug, Error)]
#[error("malformed message: {0}")]
pub struct CodecError(String);

fn options(limit: usize) -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(limit as u64)
        .reject_trailing_bytes()
}

/// Encodes a message body.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    options(MAX_RESPONSE_LEN)
        .serialize(value)
        .map_err(|e| CodecError(e.to_string()))
}

/// Encodes a message body at the end of `out`, for a caller that reuses
/// one buffer. The room is reserved before the first byte is written, so
/// the buffer never moves (leaving a copy behind) halfway through a secret.
pub fn encode_into<T: Serialize>(
    out: &mut Vec<u8>,
    value: &T,
) -> Result<(), CodecError> {
    let len = options(MAX_RESPONSE_LEN)
        .serialized_size(value)
        .map_err(|e| CodecError(e.to_string()))?;
    out.reserve(usize::try_from(len).map_err(|e| CodecError(e.to_string()))?);
    options(MAX_RESPONSE_LEN)
        .serialize_into(out, value)
        .map_err(|e| CodecError(e.to_string()))
}

/// Decodes a message body, refusing anything that does not describe exactly
/// one `T` or that would need more than `limit` bytes of memory to hold.
pub fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    limit: usize,
) -> Result<T, CodecError> {
    options(limit).deserialize(bytes).map_err(|e| CodecError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::*;
    use crate::{Secret, PROTOCOL_VERSION};

    fn get_request() -> Request {
        Request::Get {
            profile: Some("prod".into()),
            kind: TokenKind::Access,
            min_valid_secs: Some(60),
        }
    }

    /// Pins the encoding. If this fails, the wire format changed: bump
    /// `PROTOCOL_VERSION` and update the bytes together.
    #[test]
    fn golden_bytes_change_only_with_the_protocol_version() {
        assert_eq!(
            PROTOCOL_VERSION, 1,
            "update the golden bytes with the version"
        );
        let bytes = encode(&get_request()).unwrap();
        assert_eq!(bytes, [1, 1, 4, b'p', b'r', b'o', b'd', 0, 1, 60]);

        let reply = Response::Token(TokenReply {
            profile: "p".into(),
            kind: TokenKind::Access,
            token: Secret::from("t"),
            token_type: "Bearer".into(),
            expires_at: Some(1_700_000_000),
        });
        let bytes = encode(&reply).unwrap();
        let mut expected = vec![1, 1, b'p', 0, 1, b't'];
        expected.extend_from_slice(&[6, b'B', b'e', b'a', b'r', b'e', b'r']);
        // Some(1_700_000_000): zigzag 3_400_000_000 as a u32 varint (tag 252).
        expected.extend_from_slice(&[1, 252, 0, 226, 167, 202]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn encode_into_appends_the_same_bytes_without_moving_the_buffer() {
        let mut out = b"prefix".to_vec();
        encode_into(&mut out, &get_request()).unwrap();
        let mut expected = b"prefix".to_vec();
        expected.extend_from_slice(&encode(&get_request()).unwrap());
        assert_eq!(out, expected);

        let mut out = Vec::with_capacity(4);
        out.extend_from_slice(b"ab");
        let reply = Response::Token(TokenReply {
            profile: "p".into(),
            kind: TokenKind::Access,
            token: Secret::from("t".repeat(500)),
            token_type: "Bearer".into(),
            expires_at: None,
        });
        encode_into(&mut out, &reply).unwrap();
        assert_eq!(out.capacity(), out.len(), "reserved once, exactly");
    }

    #[test]
    fn a_borrowed_token_reply_encodes_as_the_owned_one() {
        let token = Secret::from("eyJ.token.sig");
        for (kind, expires_at) in
            [(TokenKind::Access, Some(1_700_000_000)), (TokenKind::Id, None)]
        {
            let borrowed = TokenReplyRef {
                profile: "prod",
                kind,
                token: &token,
                token_type: "Bearer",
                expires_at,
            };
            let owned = Response::Token(TokenReply {
                profile: "prod".into(),
                kind,
                token: token.clone(),
                token_type: "Bearer".into(),
                expires_at,
            });
            assert_eq!(encode(&borrowed).unwrap(), encode(&owned).unwrap());
            let decoded: Response =
                decode(&encode(&borrowed).unwrap(), 1024).unwrap();
            assert_eq!(decoded, owned);
        }
    }

    #[test]
    fn requests_round_trip() {
        let bytes = encode(&get_request()).unwrap();
        assert_eq!(decode::<Request>(&bytes, 1024).unwrap(), get_request());
    }

    #[test]
    fn trailing_bytes_and_huge_lengths_are_refused() {
        let mut bytes = encode(&Request::Ping).unwrap();
        bytes.push(0);
        assert!(decode::<Request>(&bytes, 1024).is_err());

        // A string claiming 2^60 bytes must fail on the limit, not allocate.
        let hostile = [5, 1, 255, 0, 0, 0, 0, 0, 0, 0, 16];
        assert!(decode::<Request>(&hostile, 1024).is_err());
    }
}

//! Length-prefixed frames: a 4-byte big-endian length, then that many bytes
//! of body.
//!
//! The length is checked against a limit before a single byte of body is
//! allocated, so a header that claims 4 GiB costs nothing. Requests and
//! responses have separate limits: requests are tiny and come from anyone
//! who can reach the socket, responses come from the daemon and may carry a
//! site list.

use std::io::{self, Read, Write};

use thiserror::Error;

/// The size of a frame header.
pub const HEADER_LEN: usize = 4;

/// The largest request body the daemon accepts. The biggest honest request
/// is a login with a username and two passwords, far below this.
pub const MAX_REQUEST_LEN: usize = 64 * 1024;

/// The largest response body the client accepts. A `/sites` reply for a
/// user with a few thousand sites still fits.
pub const MAX_RESPONSE_LEN: usize = 1024 * 1024;

/// Why a frame could not be read.
#[derive(Debug, Error)]
pub enum FrameError {
    /// The header announced more bytes than the limit allows.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced length.
        len: u64,
        /// The limit in force.
        max: usize,
    },
    /// The peer closed the connection cleanly between frames.
    #[error("connection closed")]
    Closed,
    /// Reading or writing failed, including a close in the middle of a frame.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Parses a header and checks it against `max` before anything is allocated.
pub fn body_len(
    header: [u8; HEADER_LEN],
    max: usize,
) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header);
    if len as u64 > max as u64 {
        return Err(FrameError::TooLarge { len: len.into(), max });
    }
    Ok(len as usize)
}

/// Prepends the header to `body`, producing the bytes to send in one write.
///
/// # Panics
/// Never for bodies produced by [`crate::codec`], which refuses to encode
/// anything larger than [`MAX_RESPONSE_LEN`].
pub fn encode(body: &[u8]) -> Vec<u8> {
    let len =
        u32::try_from(body.len()).expect("codec caps bodies far below 4 GiB");
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Reads one frame body from a blocking reader.
///
/// A clean close before the first header byte is [`FrameError::Closed`]; a
/// close anywhere later is an `UnexpectedEof` I/O error.
pub fn read_blocking<R: Read>(
    reader: &mut R,
    max: usize,
) -> Result<Vec<u8>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    let mut filled = 0;
    while filled < HEADER_LEN {
        match reader.read(&mut header[filled..]) {
            Ok(0) if filled == 0 => return Err(FrameError::Closed),
            Ok(0) => {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into())
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = body_len(header, max)?;
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    Ok(body)
}

/// Writes one frame to a blocking writer.
pub fn write_blocking<W: Write>(writer: &mut W, body: &[u8]) -> io::Result<()> {
    writer.write_all(&encode(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_header_is_refused_before_allocating() {
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        let err = read_blocking(&mut input, MAX_REQUEST_LEN).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { len: 0xffff_ffff, .. }));
    }

    #[test]
    fn frames_round_trip_and_truncation_is_an_error() {
        let bytes = encode(b"hello");
        let mut input: &[u8] = &bytes;
        assert_eq!(read_blocking(&mut input, 16).unwrap(), b"hello");
        assert!(matches!(
            read_blocking(&mut input, 16),
            Err(FrameError::Closed)
        ));

        let mut cut: &[u8] = &bytes[..6];
        let err = read_blocking(&mut cut, 16).unwrap_err();
        assert!(
            matches!(err, FrameError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof)
        );
    }

    #[test]
    fn a_header_split_across_reads_is_reassembled() {
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() || buf.is_empty() {
                    return Ok(0);
                }
                buf[0] = self.0[0];
                self.0 = &self.0[1..];
                Ok(1)
            }
        }
        let bytes = encode(b"split");
        assert_eq!(read_blocking(&mut OneByte(&bytes), 16).unwrap(), b"split");
    }
}

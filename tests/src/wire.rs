//! The wire spoken by hand, for tests that must send what the real client
//! never would: a greeting alone, a request one byte at a time, a header
//! claiming 4 GiB, a connection that goes silent.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use fkq_cred_proto::frame::{self, MAX_RESPONSE_LEN};
use fkq_cred_proto::handshake::{self, Hello, HELLO_LEN};
use fkq_cred_proto::{codec, Request, Response, TokenKind, PROTOCOL_VERSION};

/// How long a test waits for a reply before calling the daemon hung. Far
/// above any honest answer; it only keeps a broken daemon from hanging CI.
pub const REPLY_DEADLINE: Duration = Duration::from_secs(20);

/// Connects to the daemon's socket, with [`REPLY_DEADLINE`] on reads.
pub fn connect(path: &Path) -> io::Result<UnixStream> {
    let stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(REPLY_DEADLINE))?;
    stream.set_write_timeout(Some(REPLY_DEADLINE))?;
    Ok(stream)
}

/// `get` for the default profile, as `fkq-cred get` sends it.
pub fn get_request() -> Request {
    Request::Get {
        profile: None,
        kind: TokenKind::Access,
        min_valid_secs: None,
    }
}

/// A request as a frame: length header and body.
pub fn request_frame(request: &Request) -> Vec<u8> {
    frame::encode(&codec::encode(request).expect("requests encode"))
}

/// The greeting followed by one request frame: all a `get` sends.
pub fn greeting_and_request(request: &Request) -> Vec<u8> {
    let mut bytes = handshake::hello().to_vec();
    bytes.extend_from_slice(&request_frame(request));
    bytes
}

/// Reads the daemon's greeting and checks it speaks this version.
pub fn read_greeting(stream: &mut impl Read) -> io::Result<()> {
    let mut hello = [0u8; HELLO_LEN];
    stream.read_exact(&mut hello)?;
    match handshake::decode_hello(&hello) {
        Hello::Version(PROTOCOL_VERSION) => Ok(()),
        other => {
            Err(io::Error::other(format!("unexpected greeting {other:?}")))
        }
    }
}

/// Reads one response frame and decodes it.
pub fn read_response(stream: &mut impl Read) -> io::Result<Response> {
    let body = frame::read_blocking(stream, MAX_RESPONSE_LEN)
        .map_err(|e| io::Error::other(e.to_string()))?;
    codec::decode(&body, MAX_RESPONSE_LEN)
        .map_err(|e| io::Error::other(e.to_string()))
}

/// Sends the greeting and `request` in one write and returns the reply.
pub fn ask(stream: &mut UnixStream, request: &Request) -> io::Result<Response> {
    stream.write_all(&greeting_and_request(request))?;
    read_greeting(stream)?;
    read_response(stream)
}

/// The token in a reply, or a panic naming what came instead.
pub fn token_of(response: &Response) -> String {
    match response {
        Response::Token(reply) => reply.token.expose().to_owned(),
        other => panic!("expected a token, got {other:?}"),
    }
}

/// Whether the peer has closed `stream`: a read returns end-of-file (or a
/// reset) within `deadline`. Data that arrives first is discarded.
pub fn is_closed_within(stream: &mut UnixStream, deadline: Duration) -> bool {
    if stream.set_read_timeout(Some(deadline)).is_err() {
        return false;
    }
    let mut sink = [0u8; 256];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                return true
            }
            Err(_) => return false,
        }
    }
}

/// Whether `stream` is still open and silent right now: nothing to read,
/// no end-of-file.
pub fn is_open_and_silent(stream: &UnixStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut probe = [0u8; 1];
    let open = matches!(
        (&*stream).read(&mut probe),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock
    );
    let _ = stream.set_nonblocking(false);
    open
}

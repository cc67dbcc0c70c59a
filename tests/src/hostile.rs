//! Hostile input for the decoder and the daemon: random and mutated
//! frames, greetings and whole connections from a seeded generator, so any
//! failing run can be replayed from the seed it prints.
//!
//! `FKQ_FUZZ_CASES` sets how many frames a run throws (default
//! [`DEFAULT_CASES`]), `FKQ_FUZZ_SEED` replays a run.

use fkq_cred_proto::frame::{HEADER_LEN, MAX_REQUEST_LEN};
use fkq_cred_proto::handshake::{encode_hello, HELLO_LEN};
use fkq_cred_proto::{codec, Request, Secret, TokenKind, PROTOCOL_VERSION};

/// The variable that sets the number of frames per run.
pub const CASES_ENV: &str = "FKQ_FUZZ_CASES";

/// The variable that replays a run.
pub const SEED_ENV: &str = "FKQ_FUZZ_SEED";

/// Frames per run when `FKQ_FUZZ_CASES` is unset: what CI throws.
pub const DEFAULT_CASES: usize = 100_000;

/// The number of frames to throw, from `FKQ_FUZZ_CASES`.
pub fn cases() -> usize {
    match std::env::var(CASES_ENV) {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| {
            panic!("{CASES_ENV}={text:?} is not a number of cases")
        }),
        Err(_) => DEFAULT_CASES,
    }
}

/// The seed, from `FKQ_FUZZ_SEED` or fresh.
pub fn seed() -> u64 {
    match std::env::var(SEED_ENV) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{SEED_ENV}={text:?} is not a number")),
        Err(_) => fastrand::u64(..),
    }
}

/// What a connection opens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Greeting {
    /// This build's greeting.
    Current,
    /// A well-formed greeting of another protocol version.
    OtherVersion,
    /// Eight bytes that are not a greeting.
    Foreign,
    /// Fewer than eight bytes, then the end.
    Truncated,
}

/// One connection's worth of hostile bytes.
#[derive(Debug, Clone)]
pub struct Connection {
    /// How it opens.
    pub greeting: Greeting,
    /// Everything it sends, greeting included.
    pub bytes: Vec<u8>,
    /// How many frames were put after the greeting.
    pub frames: usize,
}

/// How the daemon reads a byte stream after a current greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A complete frame that decodes to a request.
    Request(Request),
    /// A complete frame that does not decode.
    Malformed,
    /// A header beyond the request limit; the daemon answers and closes.
    TooLarge,
}

/// A seeded source of hostile input.
pub struct Generator {
    rng: fastrand::Rng,
}

impl Generator {
    /// A generator that produces the same input for the same seed.
    pub fn new(seed: u64) -> Self {
        Self { rng: fastrand::Rng::with_seed(seed) }
    }

    /// A random string, sometimes empty, sometimes long, sometimes not
    /// ASCII.
    fn text(&mut self) -> String {
        let len = match self.rng.u8(..10) {
            0 => 0,
            1 => self.rng.usize(200..2000),
            _ => self.rng.usize(1..24),
        };
        (0..len)
            .map(|_| match self.rng.u8(..8) {
                0 => self.rng.char(..),
                _ => self.rng.alphanumeric(),
            })
            .collect()
    }

    fn profile(&mut self) -> Option<String> {
        match self.rng.u8(..4) {
            0 => None,
            1 => Some(crate::harness::PROFILE.into()),
            _ => Some(self.text()),
        }
    }

    /// Any valid request, including those that change the daemon's state.
    pub fn request(&mut self) -> Request {
        match self.rng.u8(..9) {
            0 => Request::Ping,
            1 => Request::Get {
                profile: self.profile(),
                kind: if self.rng.bool() {
                    TokenKind::Access
                } else {
                    TokenKind::Id
                },
                min_valid_secs: self.rng.bool().then(|| self.rng.u32(..)),
            },
            2 => Request::Login {
                profile: self.profile(),
                username: self.rng.bool().then(|| self.text()),
                password: Secret::new(self.text()),
                new_password: self.rng.bool().then(|| Secret::new(self.text())),
            },
            3 => Request::Logout { profile: self.profile() },
            4 => Request::Status { profile: self.profile() },
            5 => Request::Profiles,
            6 => Request::Sites { profile: self.profile() },
            7 => Request::Reload,
            _ => Request::Shutdown,
        }
    }

    /// A request body: a valid encoding, a mutated one, or plain noise.
    pub fn body(&mut self) -> Vec<u8> {
        match self.rng.u8(..10) {
            0..=2 => codec::encode(&self.request()).expect("requests encode"),
            3..=7 => {
                let mut bytes =
                    codec::encode(&self.request()).expect("requests encode");
                for _ in 0..self.rng.usize(1..4) {
                    self.mutate(&mut bytes);
                }
                bytes
            }
            8 => self.noise(0, 64),
            _ => Vec::new(),
        }
    }

    /// Random bytes, from `min` up to but not including `max` of them.
    fn noise(&mut self, min: usize, max: usize) -> Vec<u8> {
        let len = self.rng.usize(min..max);
        (0..len).map(|_| self.rng.u8(..)).collect()
    }

    /// Changes `bytes` in one of the ways a corrupted or malicious peer
    /// would.
    pub fn mutate(&mut self, bytes: &mut Vec<u8>) {
        let at = |rng: &mut fastrand::Rng, len: usize| rng.usize(..=len);
        match self.rng.u8(..8) {
            0 if !bytes.is_empty() => {
                let i = self.rng.usize(..bytes.len());
                bytes[i] ^= 1 << self.rng.u8(..8);
            }
            1 if !bytes.is_empty() => {
                // Varint tags and the extremes are where decoders break.
                let i = self.rng.usize(..bytes.len());
                bytes[i] = *self
                    .rng
                    .choice(&[0, 1, 0x7f, 0x80, 250, 251, 252, 253, 254, 255])
                    .expect("the list is not empty");
            }
            2 => {
                let i = at(&mut self.rng, bytes.len());
                let extra = self.noise(1, 9);
                bytes.splice(i..i, extra);
            }
            3 if !bytes.is_empty() => {
                let i = self.rng.usize(..bytes.len());
                let end = (i + self.rng.usize(1..5)).min(bytes.len());
                bytes.drain(i..end);
            }
            4 => {
                let len = at(&mut self.rng, bytes.len());
                bytes.truncate(len);
            }
            5 if !bytes.is_empty() => {
                let i = self.rng.usize(..bytes.len());
                let end = (i + self.rng.usize(1..9)).min(bytes.len());
                let copy = bytes[i..end].to_vec();
                let j = at(&mut self.rng, bytes.len());
                bytes.splice(j..j, copy);
            }
            6 => {
                let other =
                    codec::encode(&self.request()).expect("requests encode");
                let cut = at(&mut self.rng, bytes.len());
                let from = at(&mut self.rng, other.len());
                bytes.truncate(cut);
                bytes.extend_from_slice(&other[from..]);
            }
            _ => bytes.extend(self.noise(1, 9)),
        }
    }

    /// A frame: a header that is right, a little off, zero, random or far
    /// beyond the limit, then a body.
    pub fn frame(&mut self) -> Vec<u8> {
        let lying = self.rng.u8(..4) == 0;
        self.frame_with(lying)
    }

    /// A frame whose header tells the body's length, unless `lying`: then
    /// it is a little off, zero, random or far beyond the limit. A lying
    /// header usually ends what a reader can make of the stream.
    pub fn frame_with(&mut self, lying: bool) -> Vec<u8> {
        let mut body = self.body();
        if self.rng.u16(..400) == 0 {
            // Now and then, a body that really is oversized.
            body.resize(MAX_REQUEST_LEN + 1 + self.rng.usize(..64), 0xA5);
        }
        let len = body.len() as u32;
        let header = match self.rng.u8(..6) {
            _ if !lying => len,
            0 => len.wrapping_add(self.rng.u32(1..4)),
            1 => len.saturating_sub(self.rng.u32(1..4)),
            2 => 0,
            3 => self.rng.u32(MAX_REQUEST_LEN as u32 + 1..),
            4 => u32::MAX,
            _ => self.rng.u32(..),
        };
        let mut bytes = header.to_be_bytes().to_vec();
        bytes.append(&mut body);
        bytes
    }

    /// A greeting of the given kind.
    pub fn greeting(&mut self, kind: Greeting) -> Vec<u8> {
        match kind {
            Greeting::Current => encode_hello(PROTOCOL_VERSION).to_vec(),
            Greeting::OtherVersion => {
                let mut version = self.rng.u16(..);
                if version == PROTOCOL_VERSION {
                    version = version.wrapping_add(1);
                }
                encode_hello(version).to_vec()
            }
            Greeting::Foreign => {
                let mut bytes = self.noise(HELLO_LEN, HELLO_LEN + 1);
                if bytes.starts_with(b"FKQC") {
                    bytes[0] = b'G';
                }
                bytes
            }
            Greeting::Truncated => {
                let hello = encode_hello(PROTOCOL_VERSION);
                hello[..self.rng.usize(..HELLO_LEN)].to_vec()
            }
        }
    }

    /// A whole connection: a greeting (mostly current), then frames, the
    /// last one sometimes cut short. None of its frames, as the daemon
    /// will read them, is a request that changes state or leaves the
    /// machine ([`is_harmless`]): those are the owner's to send, so a frame
    /// that would read as one is drawn again.
    pub fn connection(&mut self, max_frames: usize) -> Connection {
        let greeting = match self.rng.u8(..20) {
            0 => Greeting::OtherVersion,
            1 => Greeting::Foreign,
            2 => Greeting::Truncated,
            _ => Greeting::Current,
        };
        let mut bytes = self.greeting(greeting);
        if greeting == Greeting::Truncated {
            return Connection { greeting, bytes, frames: 0 };
        }
        let frames = self.rng.usize(1..=max_frames.max(1));
        let mut stream = Vec::new();
        for _ in 0..frames {
            loop {
                // Mostly honest headers, so most frames reach the decoder;
                // a lie now and then ends the stream.
                let lying = self.rng.u8(..24) == 0;
                let frame = self.frame_with(lying);
                let before = stream.len();
                stream.extend(frame);
                if parse_stream(&stream).iter().all(is_harmless) {
                    break;
                }
                stream.truncate(before);
            }
        }
        if self.rng.u8(..8) == 0 {
            let cut = self.rng.usize(..=stream.len());
            stream.truncate(cut);
        }
        bytes.extend(stream);
        Connection { greeting, bytes, frames }
    }
}

/// Whether a parsed frame is safe to throw at a daemon under test: only
/// requests that read state are. A mutation that happens to spell
/// `Shutdown` or `Logout` is a legitimate request of the owner, and a
/// `Login` or `Sites` would go out to a server.
pub fn is_harmless(parsed: &Parsed) -> bool {
    match parsed {
        Parsed::Request(request) => matches!(
            request,
            Request::Ping
                | Request::Get { .. }
                | Request::Status { .. }
                | Request::Profiles
        ),
        Parsed::Malformed | Parsed::TooLarge => true,
    }
}

/// Splits the bytes after a greeting into frames exactly as the daemon
/// does: complete frames in order, stopping at an oversized header (which
/// the daemon answers, then closes) or at a frame cut short (which it never
/// answers).
pub fn parse_stream(mut bytes: &[u8]) -> Vec<Parsed> {
    let mut parsed = Vec::new();
    while bytes.len() >= HEADER_LEN {
        let header: [u8; HEADER_LEN] =
            bytes[..HEADER_LEN].try_into().expect("the slice is 4 bytes");
        let len = u32::from_be_bytes(header) as usize;
        if len > MAX_REQUEST_LEN {
            parsed.push(Parsed::TooLarge);
            break;
        }
        let rest = &bytes[HEADER_LEN..];
        if rest.len() < len {
            break;
        }
        parsed.push(
            match codec::decode::<Request>(&rest[..len], MAX_REQUEST_LEN) {
                Ok(request) => Parsed::Request(request),
                Err(_) => Parsed::Malformed,
            },
        );
        bytes = &rest[len..];
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_input() {
        let a: Vec<_> =
            (0..50).map(|_| Generator::new(7).connection(8).bytes).collect();
        let b: Vec<_> =
            (0..50).map(|_| Generator::new(7).connection(8).bytes).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn the_parser_stops_at_an_oversized_header_and_a_short_frame() {
        let ping = codec::encode(&Request::Ping).unwrap();
        let mut stream = fkq_cred_proto::frame::encode(&ping);
        stream.extend_from_slice(&[0, 0, 0, 9, 1]);
        assert_eq!(parse_stream(&stream), [Parsed::Request(Request::Ping)]);

        let mut stream = fkq_cred_proto::frame::encode(&[0xff]);
        stream.extend_from_slice(&u32::MAX.to_be_bytes());
        stream.extend_from_slice(&fkq_cred_proto::frame::encode(&ping));
        assert_eq!(
            parse_stream(&stream),
            [Parsed::Malformed, Parsed::TooLarge]
        );
    }
}

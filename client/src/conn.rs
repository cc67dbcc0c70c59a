//! A blocking connection to the daemon: one write carries the greeting and
//! the first request, so a `get` costs a single round trip.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use fkq_cred_proto::frame::{self, MAX_RESPONSE_LEN};
use fkq_cred_proto::handshake::{self, Hello, HELLO_LEN};
use fkq_cred_proto::location::{self, SocketLocation};
use fkq_cred_proto::{codec, exit, Request, Response, PROTOCOL_VERSION};
use interprocess::local_socket::traits::Stream as _;
use interprocess::local_socket::{GenericFilePath, Stream, ToFsName};
use zeroize::Zeroizing;

use crate::error::CliError;

/// How long to wait for a reply. A `get` may wait for a refresh or an
/// automatic login (an HTTP timeout plus a password command), a `login`
/// for up to three HTTP exchanges.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(90);

/// An open connection to `fkq-credd`.
pub struct Connection {
    stream: Stream,
    path: PathBuf,
    greeted: bool,
}

/// Decides the socket location, checking its directory is private before
/// anything is sent there.
pub fn locate(socket: Option<&Path>) -> Result<SocketLocation, CliError> {
    let found = location::socket_location(socket)
        .map_err(|e| CliError::new(exit::DAEMON_UNREACHABLE, e.to_string()))?;
    if let Some(dir) = &found.private_dir {
        location::check_private_dir(dir).map_err(|e| {
            CliError::new(exit::DAEMON_UNREACHABLE, e.to_string())
        })?;
    }
    Ok(found)
}

/// Whether a connect error means "no daemon there", as opposed to a fault
/// worth reporting as it is.
pub fn is_absent(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

impl Connection {
    /// Connects to the daemon at `location`.
    pub fn open(location: &SocketLocation) -> Result<Self, CliError> {
        let path = location.path.clone();
        let name = path
            .as_path()
            .to_fs_name::<GenericFilePath>()
            .map_err(|e| unreachable(&path, &e))?;
        let stream =
            Stream::connect(name).map_err(|e| unreachable(&path, &e))?;
        stream
            .set_recv_timeout(Some(REPLY_TIMEOUT))
            .map_err(|e| unreachable(&path, &e))?;
        stream
            .set_send_timeout(Some(REPLY_TIMEOUT))
            .map_err(|e| unreachable(&path, &e))?;
        Ok(Self { stream, path, greeted: false })
    }

    /// The socket path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends a request and reads its response.
    pub fn request(&mut self, request: &Request) -> Result<Response, CliError> {
        // A login's bytes hold the password and a reply's the token: every
        // buffer they pass through is zeroed when dropped.
        let body = Zeroizing::new(
            codec::encode(request)
                .map_err(|e| CliError::failure(e.to_string()))?,
        );
        let mut out = Zeroizing::new(Vec::with_capacity(
            HELLO_LEN + frame::HEADER_LEN + body.len(),
        ));
        if !self.greeted {
            out.extend_from_slice(&handshake::hello());
        }
        out.extend_from_slice(&Zeroizing::new(frame::encode(&body)));
        // A daemon of another version closes after its greeting, which can
        // make this write fail; its greeting still explains why.
        let written = self.stream.write_all(&out);
        if !self.greeted {
            self.read_hello()?;
            self.greeted = true;
        }
        written.map_err(|e| self.broken(&e))?;
        let reply = frame::read_blocking(&mut self.stream, MAX_RESPONSE_LEN)
            .map(Zeroizing::new)
            .map_err(|e| match e {
                frame::FrameError::Io(io) => self.broken(&io),
                other => self.broken(&io::Error::other(other.to_string())),
            })?;
        codec::decode(&reply, MAX_RESPONSE_LEN).map_err(|e| {
            CliError::new(
                exit::VERSION_MISMATCH,
                format!(
                    "cannot read the reply of fkq-credd at {:?}: {e}",
                    self.path
                ),
            )
        })
    }

    fn read_hello(&mut self) -> Result<(), CliError> {
        let mut hello = [0u8; HELLO_LEN];
        self.stream.read_exact(&mut hello).map_err(|e| self.broken(&e))?;
        match handshake::decode_hello(&hello) {
            Hello::Version(v) if v == PROTOCOL_VERSION => Ok(()),
            Hello::Version(v) => Err(CliError::new(
                exit::VERSION_MISMATCH,
                format!(
                    "fkq-credd at {:?} speaks protocol version {v}, this fkq-cred speaks {PROTOCOL_VERSION}: \
                     restart the daemon so both are the same release (`systemctl --user restart fkq-cred`, \
                     or `pkill -x fkq-credd` and start it again)",
                    self.path
                ),
            )),
            Hello::Foreign => Err(CliError::new(
                exit::DAEMON_UNREACHABLE,
                format!("{:?} is not an fkq-credd socket; check FKQ_CRED_SOCKET", self.path),
            )),
        }
    }

    fn broken(&self, error: &io::Error) -> CliError {
        let message = match error.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => format!(
                "fkq-credd at {:?} did not answer within {} s; see its log, or restart it",
                self.path,
                REPLY_TIMEOUT.as_secs()
            ),
            _ => format!("the connection to fkq-credd at {:?} broke: {error}; is it shutting down?", self.path),
        };
        CliError::new(exit::DAEMON_UNREACHABLE, message)
    }
}

fn unreachable(path: &Path, error: &io::Error) -> CliError {
    let message = if is_absent(error) {
        format!(
            "fkq-credd is not running (nothing listens on {path:?}); start it with \
             `systemctl --user start fkq-cred` or `fkq-credd &`"
        )
    } else {
        format!("cannot connect to fkq-credd at {path:?}: {error}")
    };
    CliError::new(exit::DAEMON_UNREACHABLE, message)
}

//! A blocking connection to the daemon: one write carries the greeting and
//! the first request, so a `get` costs a single round trip.
//!
//! When nothing answers, [`Connection::open`] may start a daemon (see
//! [`crate::autostart`]); when a daemon of another protocol version
//! answers, the greeting's flags say who started it, and one that a client
//! started is replaced by a daemon of this version (see
//! [`fkq_cred_proto::handshake`]). Neither costs a running, matching
//! daemon anything: both happen only after the first attempt failed.

use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

use fkq_cred_proto::frame::{self, MAX_RESPONSE_LEN};
use fkq_cred_proto::handshake::{
    self, client_flags, daemon_flags, Hello, HELLO_LEN,
};
use fkq_cred_proto::location::{self, SocketLocation};
use fkq_cred_proto::{codec, exit, Request, Response, PROTOCOL_VERSION};
use interprocess::local_socket::traits::Stream as _;
use interprocess::local_socket::{GenericFilePath, Stream, ToFsName};
use zeroize::Zeroizing;

#[cfg(unix)]
use crate::autostart::{self, Reason};
use crate::error::CliError;

/// How long to wait for a reply. A `get` may wait for a refresh or an
/// automatic login (an HTTP timeout plus a password command), a `login`
/// for up to three HTTP exchanges.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(90);

/// How long a daemon that agreed to stop may take to be gone: its
/// shutdown grace for requests in flight (5 s), with room to spare.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Whether a command may start a daemon when none answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Never: `FKQ_CRED_NO_AUTOSTART`, or a command about the daemon
    /// itself (`daemon status`, `stop`, `reload`).
    Never,
    /// When none answers, or when the one answering is an older daemon a
    /// client started.
    Auto,
}

/// An open connection to `fkq-credd`.
pub struct Connection {
    stream: Stream,
    location: SocketLocation,
    start: Start,
    greeted: bool,
    /// Extra greeting flags (`STOP_IF_OTHER_VERSION`).
    flags: u8,
    /// Set once an old daemon was replaced, so a replacement that speaks
    /// another version again is reported, not replaced in a loop.
    replaced: bool,
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
/// worth reporting as it is. Only these start a daemon.
pub fn is_absent(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

/// What came of one request.
enum Outcome {
    /// The daemon answered.
    Reply(Response),
    /// The daemon stopped for this newer release; its successor is started
    /// even under `autostart = false`, since a daemon ran already.
    Upgraded,
    /// The daemon stopped listening before it greeted (an idle exit, a
    /// SIGTERM); one is started as if none had been there.
    Vanished,
}

/// How a greeting went.
enum Greeting {
    /// Same version: go on.
    Matched,
    /// The daemon agreed to stop and is gone now.
    Stopped(u16),
    /// The connection closed before a greeting: a daemon that stopped
    /// listening (an idle exit, a SIGTERM) while this one was queued.
    Closed(io::Error),
}

impl Connection {
    /// Connects to the daemon at `location`, starting one first when none
    /// answers and `start` allows it.
    pub fn open(
        location: &SocketLocation,
        start: Start,
    ) -> Result<Self, CliError> {
        let stream = match connect(&location.path) {
            Ok(stream) => stream,
            Err(e) if is_absent(&e) && start == Start::Auto => {
                start_daemon(location, false)?
            }
            Err(e) => return Err(unreachable(&location.path, &e, start)),
        };
        Ok(Self {
            stream,
            location: location.clone(),
            start,
            greeted: false,
            flags: 0,
            replaced: false,
        })
    }

    /// Asks a daemon of another protocol version to stop anyway; `daemon
    /// stop` uses it, since such a daemon cannot read `Shutdown`.
    pub fn stop_any_version(&mut self) {
        self.flags |= client_flags::STOP_IF_OTHER_VERSION;
    }

    /// The socket path, for messages.
    pub fn path(&self) -> &Path {
        &self.location.path
    }

    /// Sends a request and reads its response.
    pub fn request(&mut self, request: &Request) -> Result<Response, CliError> {
        let upgrade = match self.exchange(request)? {
            Outcome::Reply(response) => return Ok(response),
            Outcome::Upgraded => true,
            Outcome::Vanished => false,
        };
        // The old daemon never read the request: asking the new one is
        // safe for every request, a login included.
        self.replace(upgrade)?;
        match self.exchange(request)? {
            Outcome::Reply(response) => Ok(response),
            // After one replacement `exchange` reports a stopped or closing
            // daemon as an error, so this cannot happen.
            _ => Err(self.broken(&io::ErrorKind::UnexpectedEof.into())),
        }
    }

    /// One request and what came of it.
    fn exchange(&mut self, request: &Request) -> Result<Outcome, CliError> {
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
            out.extend_from_slice(&handshake::hello_with_flags(
                self.greeting_flags(),
            ));
        }
        out.extend_from_slice(&Zeroizing::new(frame::encode(&body)));
        // A daemon of another version closes after its greeting, which can
        // make this write fail; its greeting still explains why.
        let written = self.stream.write_all(&out);
        if !self.greeted {
            match self.read_hello()? {
                Greeting::Matched => self.greeted = true,
                Greeting::Stopped(version) => {
                    return self.after_stop(request, version)
                }
                Greeting::Closed(_)
                    if self.start == Start::Auto && !self.replaced =>
                {
                    return Ok(Outcome::Vanished)
                }
                Greeting::Closed(e) => return Err(self.broken(&e)),
            }
        }
        written.map_err(|e| self.broken(&e))?;
        let reply = frame::read_blocking(&mut self.stream, MAX_RESPONSE_LEN)
            .map(Zeroizing::new)
            .map_err(|e| match e {
                frame::FrameError::Io(io) => self.broken(&io),
                other => self.broken(&io::Error::other(other.to_string())),
            })?;
        codec::decode(&reply, MAX_RESPONSE_LEN).map(Outcome::Reply).map_err(
            |e| {
                CliError::new(
                    exit::VERSION_MISMATCH,
                    format!(
                        "cannot read the reply of fkq-credd at {:?}: {e}",
                        self.path()
                    ),
                )
            },
        )
    }

    fn greeting_flags(&self) -> u8 {
        let mut flags = self.flags;
        if self.start == Start::Auto && !self.replaced {
            flags |= client_flags::REPLACE_IF_OLDER;
        }
        flags
    }

    /// What a stopped daemon of another version means for `request`.
    fn after_stop(
        &self,
        request: &Request,
        version: u16,
    ) -> Result<Outcome, CliError> {
        if matches!(request, Request::Shutdown) {
            // `daemon stop` got what it asked for.
            return Ok(Outcome::Reply(Response::Done));
        }
        if self.start == Start::Auto && !self.replaced {
            return Ok(Outcome::Upgraded);
        }
        Err(CliError::new(
            exit::DAEMON_UNREACHABLE,
            format!(
                "fkq-credd at {:?} spoke protocol version {version} and has \
                 stopped; start the daemon of this release with `fkq-cred \
                 daemon start`",
                self.path()
            ),
        ))
    }

    /// Starts a daemon of this version in place of the one that stopped.
    fn replace(&mut self, upgrade: bool) -> Result<(), CliError> {
        self.stream = start_daemon(&self.location, upgrade)?;
        self.greeted = false;
        self.replaced = true;
        Ok(())
    }

    /// The daemon this client started in place of an old one speaks
    /// another version too: the `fkq-credd` it found is of another release.
    fn replace_loop(&self, version: u16) -> CliError {
        CliError::new(
            exit::VERSION_MISMATCH,
            format!(
                "the fkq-credd started for {:?} speaks protocol version \
                 {version}, this fkq-cred speaks {PROTOCOL_VERSION}; install \
                 both from the same release",
                self.path()
            ),
        )
    }

    fn read_hello(&mut self) -> Result<Greeting, CliError> {
        let mut hello = [0u8; HELLO_LEN];
        if let Err(e) = self.stream.read_exact(&mut hello) {
            let closed = matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::BrokenPipe
            );
            return if closed {
                Ok(Greeting::Closed(e))
            } else {
                Err(self.broken(&e))
            };
        }
        let version = match handshake::decode_hello(&hello) {
            Hello::Version(v) if v == PROTOCOL_VERSION => {
                return Ok(Greeting::Matched)
            }
            Hello::Version(v) => v,
            Hello::Foreign => {
                return Err(CliError::new(
                    exit::DAEMON_UNREACHABLE,
                    format!(
                    "{:?} is not an fkq-credd socket; check FKQ_CRED_SOCKET",
                    self.path()
                ),
                ))
            }
        };
        let flags = handshake::hello_flags(&hello);
        if flags & daemon_flags::STOPPING != 0 {
            self.wait_until_gone()?;
            return Ok(Greeting::Stopped(version));
        }
        if self.replaced {
            return Err(self.replace_loop(version));
        }
        Err(mismatch(self.path(), version, flags))
    }

    /// Waits for a stopping daemon to close this connection, which it does
    /// once its socket is gone.
    fn wait_until_gone(&mut self) -> Result<(), CliError> {
        let _ = self.stream.set_recv_timeout(Some(STOP_TIMEOUT));
        let mut sink = [0u8; 64];
        loop {
            match self.stream.read(&mut sink) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A reset is as good a goodbye as a close.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Ok(())
                }
                Err(_) => {
                    return Err(CliError::new(
                        exit::DAEMON_UNREACHABLE,
                        format!(
                            "fkq-credd at {:?} agreed to stop for this newer \
                             release but was still running after {} s; stop \
                             it yourself",
                            self.path(),
                            STOP_TIMEOUT.as_secs()
                        ),
                    ))
                }
            }
        }
    }

    fn broken(&self, error: &io::Error) -> CliError {
        let message = match error.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => format!(
                "fkq-credd at {:?} did not answer within {} s; see its log, or restart it",
                self.path(),
                REPLY_TIMEOUT.as_secs()
            ),
            _ => format!("the connection to fkq-credd at {:?} broke: {error}; is it shutting down?", self.path()),
        };
        CliError::new(exit::DAEMON_UNREACHABLE, message)
    }
}

/// Connects and sets the timeouts; the raw error tells "not there" apart.
fn connect(path: &Path) -> io::Result<Stream> {
    let name = path.to_fs_name::<GenericFilePath>()?;
    let stream = Stream::connect(name)?;
    check_server(&stream)?;
    stream.set_recv_timeout(Some(REPLY_TIMEOUT))?;
    stream.set_send_timeout(Some(REPLY_TIMEOUT))?;
    Ok(stream)
}

/// Refuses a socket served by another user before a byte is sent: whoever
/// answers here would receive passwords and could hand out tokens of their
/// choosing. The daemon checks its peers the same way.
#[cfg(unix)]
fn check_server(stream: &Stream) -> io::Result<()> {
    use interprocess::local_socket::traits::StreamCommon as _;
    let me = fkq_cred_proto::location::current_uid();
    match stream.peer_creds()?.euid() {
        Some(uid) if uid == me => Ok(()),
        uid => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the socket is served by uid {}, not by you (uid {me}); \
                 nothing was sent to it: check FKQ_CRED_SOCKET and the \
                 socket's directory",
                uid.map_or_else(|| "unknown".into(), |u| u.to_string())
            ),
        )),
    }
}

#[cfg(not(unix))]
fn check_server(_stream: &Stream) -> io::Result<()> {
    Ok(())
}

/// Starts a daemon because a command needs one, or, with `upgrade`, in
/// place of an older one a client had started.
#[cfg(unix)]
fn start_daemon(
    location: &SocketLocation,
    upgrade: bool,
) -> Result<Stream, CliError> {
    let reason = if upgrade { Reason::Asked } else { Reason::Needed };
    autostart::start(location, reason, || connect(&location.path))
}

/// Auto-start needs Unix process control; elsewhere the daemon is started
/// by hand.
#[cfg(not(unix))]
fn start_daemon(
    location: &SocketLocation,
    _upgrade: bool,
) -> Result<Stream, CliError> {
    let absent = io::Error::from(io::ErrorKind::NotFound);
    Err(unreachable(&location.path, &absent, Start::Never))
}

/// Starts a daemon because the user asked (`fkq-cred daemon start`), even
/// when auto-start is off.
#[cfg(unix)]
pub fn start_asked(location: &SocketLocation) -> Result<(), CliError> {
    autostart::start(location, Reason::Asked, || connect(&location.path))
        .map(drop)
}

/// What to tell the user about a daemon of protocol `version` whose
/// greeting carried `flags`, when it did not stop.
fn mismatch(path: &Path, version: u16, flags: u8) -> CliError {
    let ours = PROTOCOL_VERSION;
    let newer = version > ours;
    let what_to_do = if flags & daemon_flags::UNDER_SYSTEMD != 0 {
        if newer {
            "install the fkq-cred of the daemon's release".to_string()
        } else {
            "systemd runs it: after installing the new fkq-credd, restart it \
             with `systemctl --user restart fkq-cred.service`"
                .to_string()
        }
    } else if newer {
        "install the fkq-cred of the daemon's release, or stop that daemon \
         with `fkq-cred daemon stop` so that this one can start its own"
            .to_string()
    } else if flags & daemon_flags::STARTED_BY_CLIENT != 0 {
        "auto-start is off, so it was not replaced: stop it with `fkq-cred \
         daemon stop`, then `fkq-cred daemon start`"
            .to_string()
    } else {
        "it was started by hand: stop it with `fkq-cred daemon stop` and \
         start the new fkq-credd"
            .to_string()
    };
    CliError::new(
        exit::VERSION_MISMATCH,
        format!(
            "fkq-credd at {path:?} speaks protocol version {version}, this \
             fkq-cred speaks {ours}: {what_to_do}"
        ),
    )
}

fn unreachable(path: &Path, error: &io::Error, start: Start) -> CliError {
    let message = if is_absent(error) {
        let why = if start == Start::Auto || autostart_allowed() {
            ""
        } else {
            ", and FKQ_CRED_NO_AUTOSTART forbids starting it"
        };
        format!(
            "fkq-credd is not running (nothing listens on {path:?}){why}; \
             start it with `fkq-cred daemon start` or `systemctl --user \
             start fkq-cred.socket`"
        )
    } else {
        format!("cannot connect to fkq-credd at {path:?}: {error}")
    };
    CliError::new(exit::DAEMON_UNREACHABLE, message)
}

#[cfg(unix)]
fn autostart_allowed() -> bool {
    autostart::allowed_by_env()
}

#[cfg(not(unix))]
fn autostart_allowed() -> bool {
    false
}

//! The local socket: binding it safely, accepting connections from the
//! owner only, and reading framed requests without trusting the peer.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use fkq_cred_proto::frame::{self, MAX_REQUEST_LEN};
use fkq_cred_proto::handshake::{
    self, client_flags, daemon_flags, Hello, HELLO_LEN,
};
use fkq_cred_proto::location::{LocationError, SocketLocation};
use fkq_cred_proto::lock::{LockError, StartLock};
use fkq_cred_proto::{
    codec, ErrorKind, Request, Response, WireError, PROTOCOL_VERSION,
};
use interprocess::local_socket::tokio::{Listener, Stream};
use interprocess::local_socket::traits::tokio::Listener as _;
use interprocess::local_socket::traits::StreamCommon as _;
use interprocess::local_socket::{GenericFilePath, ListenerOptions, ToFsName};
use thiserror::Error;
use tokio::io::{
    AsyncBufRead as _, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt,
    BufReader,
};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use zeroize::{Zeroize as _, Zeroizing};

use crate::service::Service;

/// Connections served at once. Enough for a thousand parallel scripts;
/// past it, newcomers get a clear "busy" error instead of a hang.
pub const MAX_CONNECTIONS: usize = 1024;

/// How long a peer may take to finish a frame it has started (or its
/// greeting). A stalled peer holds only its own task, never another's.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection may sit silent between requests: long enough for
/// a script that keeps one connection between steps, short enough that
/// forgotten connections do not pile up.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a reply may take to be written to a peer that does not read.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The read buffer of a connection: a greeting and a `get` with a long
/// profile name fit many times over; a larger request is read past it.
const READ_BUFFER: usize = 1024;

/// How long shutdown waits for in-flight requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The limits one daemon applies to its connections. The defaults are the
/// constants above; `fkq-credd --frame-timeout/--idle-timeout/
/// --max-connections` change them, which tests use to watch a timeout fire
/// without waiting half a minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// See [`FRAME_TIMEOUT`].
    pub frame_timeout: Duration,
    /// See [`IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// See [`MAX_CONNECTIONS`]; at least one.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            frame_timeout: FRAME_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// Why the socket could not be bound.
#[derive(Debug, Error)]
pub enum BindError {
    /// The location is unusable.
    #[error(transparent)]
    Location(#[from] LocationError),
    /// The start lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A live daemon already answers there.
    #[error("another fkq-credd is already running on {0:?}; stop it with `fkq-cred daemon stop`")]
    AlreadyRunning(PathBuf),
    /// Something that is not a socket sits at the path.
    #[error("{0:?} exists and is not a socket; it was left untouched: move it away or choose another --socket")]
    NotASocket(PathBuf),
    /// Binding failed.
    #[error("cannot listen on {path:?}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// Binds the socket at `location`: private directory first, a stale socket
/// from a dead daemon replaced, a live one or a non-socket left alone. The
/// start lock is held meanwhile, so two daemons started at once cannot
/// both take a stale socket for their own.
pub fn bind(location: &SocketLocation) -> Result<Listener, BindError> {
    location.ensure_dir()?;
    let _lock = StartLock::acquire(location)?;
    bind_in_place(location)
}

/// [`bind`] for a daemon whose starter holds the start lock for it (a
/// client that auto-starts it and waits for its readiness report).
pub fn bind_held(location: &SocketLocation) -> Result<Listener, BindError> {
    location.ensure_dir()?;
    bind_in_place(location)
}

/// Wraps the listening socket systemd passed. The daemon never removes
/// that socket: it belongs to the socket unit, which keeps listening while
/// the daemon restarts.
#[cfg(unix)]
pub fn adopt(
    fd: std::os::fd::OwnedFd,
    path: &Path,
) -> Result<Listener, BindError> {
    use interprocess::os::unix::uds_local_socket::tokio::Listener as Uds;
    Uds::try_from(fd)
        .map(Listener::from)
        .map_err(|source| BindError::Io { path: path.into(), source })
}

fn bind_in_place(location: &SocketLocation) -> Result<Listener, BindError> {
    let path = &location.path;
    let io_error = |source| BindError::Io { path: path.clone(), source };
    clear_stale(path)?;
    // The socket file is created by bind with the mode the umask leaves,
    // and only then narrowed to 0600: with 077 in force there is no moment
    // in which another user could connect. `harden` set it already; doing
    // it here too keeps bind safe whoever calls it.
    #[cfg(unix)]
    crate::harden::private_umask();
    let name =
        path.as_path().to_fs_name::<GenericFilePath>().map_err(io_error)?;
    let listener = ListenerOptions::new()
        .name(name)
        .reclaim_name(true)
        .create_tokio()
        .map_err(io_error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(io_error)?;
    }
    Ok(listener)
}

#[cfg(unix)]
fn clear_stale(path: &Path) -> Result<(), BindError> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(BindError::Io { path: path.into(), source }),
    };
    if !meta.file_type().is_socket() {
        return Err(BindError::NotASocket(path.into()));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(BindError::AlreadyRunning(path.into())),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "replacing the stale socket of a daemon that is gone");
            std::fs::remove_file(path)
                .map_err(|source| BindError::Io { path: path.into(), source })
        }
        Err(source) => Err(BindError::Io { path: path.into(), source }),
    }
}

#[cfg(not(unix))]
fn clear_stale(_path: &Path) -> Result<(), BindError> {
    Ok(())
}

/// Accepts connections until shutdown is requested, then waits up to
/// [`SHUTDOWN_GRACE`] for the connections in flight.
pub async fn serve(listener: Listener, service: Arc<Service>, limits: Limits) {
    serve_at(listener, service, limits, None).await;
}

/// [`serve`] for a listener bound at `unlink`, whose name this daemon
/// removes itself at shutdown, *before* it stops listening (bind it with
/// name reclamation off). Removing it after, as dropping a reclaiming
/// listener does, leaves a moment in which a client finds a refusing
/// socket, starts a successor that binds anew, and then loses that
/// successor's socket to the late removal.
pub async fn serve_at(
    listener: Listener,
    service: Arc<Service>,
    limits: Limits,
    unlink: Option<PathBuf>,
) {
    let mut shutdown = service.shutdown_signal();
    let max_connections = limits.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut shutdown) => break,
        };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                // Out of descriptors, most likely: give the peers a
                // moment to close instead of spinning on the error.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if !is_owner(&stream) {
            continue;
        }
        let permit = slots.clone().try_acquire_owned().ok();
        let service = service.clone();
        let shutdown = service.shutdown_signal();
        tokio::spawn(async move {
            let busy = permit.is_none();
            if let Err(e) =
                serve_connection(stream, &service, busy, shutdown, &limits)
                    .await
            {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    if let Some(path) = unlink {
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove the socket");
        }
    }
    drop(listener);
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            "some connections were still open after the grace period"
        );
    }
}

/// Resolves once shutdown is requested.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Whether the peer runs as the daemon's own user; anyone else gets no
/// byte of reply.
fn is_owner(stream: &Stream) -> bool {
    #[cfg(unix)]
    {
        let me = fkq_cred_proto::location::current_uid();
        match stream.peer_creds() {
            Ok(creds) if creds.euid() == Some(me) => true,
            Ok(creds) => {
                // The uid and pid say who knocked; nothing they sent is
                // read, so nothing of theirs can reach the log.
                tracing::warn!(
                    peer_uid = ?creds.euid(),
                    peer_pid = ?creds.pid(),
                    "refused a connection from another user"
                );
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "refused a connection whose user is unknown");
                false
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = stream;
        true
    }
}

/// What ended a connection abnormally.
#[derive(Debug, Error)]
pub enum ConnectionError {
    /// The peer is not a fkq-cred client.
    #[error("peer sent no fkq-cred greeting")]
    Foreign,
    /// The peer went silent in the middle of a frame.
    #[error("peer stalled mid-frame")]
    Stalled,
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Serves one connection: greeting, then requests until the peer closes,
/// goes idle, or the daemon shuts down.
///
/// A `get` answered from memory arms no timer and allocates nothing here:
/// a request that arrived whole is decoded straight from the read buffer,
/// the reply is encoded into one buffer kept for the connection, and the
/// idle and shutdown watches are set up once per connection, not per
/// request.
pub async fn serve_connection<S>(
    stream: S,
    service: &Service,
    busy: bool,
    mut shutdown: watch::Receiver<bool>,
    limits: &Limits,
) -> Result<(), ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut stream = BufReader::with_capacity(READ_BUFFER, stream);
    let mut out = Zeroizing::new(Vec::new());
    let mut hello = [0u8; HELLO_LEN];
    read_whole(&mut stream, &mut hello, limits.frame_timeout).await?;
    let Hello::Version(version) = handshake::decode_hello(&hello) else {
        return Err(ConnectionError::Foreign);
    };
    let is_current = version == PROTOCOL_VERSION;
    let stop = !is_current
        && must_stop_for(service, version, handshake::hello_flags(&hello));
    let mut flags = service.origin().greeting_flags();
    if stop {
        flags |= daemon_flags::STOPPING;
    }
    // The client sends its greeting and first request in one write. When
    // that request is already here whole, the greeting leaves with its
    // reply, so the client is woken once instead of twice.
    out.extend_from_slice(&handshake::hello_with_flags(flags));
    if !is_current || busy || !holds_whole_frame(stream.buffer()) {
        write(&mut stream, &mut out).await?;
    }
    if !is_current {
        tracing::info!(
            client_version = version,
            stopping = stop,
            "client speaks another protocol version"
        );
        if stop {
            // The client reads until this connection closes, which happens
            // only once the socket is gone: then it starts its successor.
            service.keep_until_exit(Box::new(stream));
            service.request_shutdown();
        }
        return Ok(());
    }
    if busy {
        let error = WireError::new(
            ErrorKind::Busy,
            format!(
                "fkq-credd is serving its maximum of {} connections; try \
                 again shortly",
                limits.max_connections
            ),
        );
        return send(&mut stream, &mut out, &Response::Error(error)).await;
    }

    let stop = shutdown.wait_for(|stop| *stop);
    tokio::pin!(stop);
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);
    let mut last_request = Instant::now();
    loop {
        let mut header = [0u8; frame::HEADER_LEN];
        let first = tokio::select! {
            biased;
            _ = &mut stop => return Ok(()),
            read = stream.read(&mut header[..1]) => match read {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) => return Err(e.into()),
            },
            () = &mut idle => {
                // The timer was set for the first request; move it on to
                // the last one, or close if there was none since.
                let deadline = last_request + limits.idle_timeout;
                if deadline <= Instant::now() {
                    tracing::debug!(
                        idle_secs = limits.idle_timeout.as_secs_f64(),
                        "closing an idle connection"
                    );
                    return Ok(());
                }
                idle.as_mut().reset(deadline);
                continue;
            }
        };
        read_whole(&mut stream, &mut header[first..], limits.frame_timeout)
            .await?;
        let len = match frame::body_len(header, MAX_REQUEST_LEN) {
            Ok(len) => len,
            Err(e) => {
                let error = WireError::new(
                    ErrorKind::BadRequest,
                    format!("{e}; is fkq-cred the same version as fkq-credd?"),
                );
                return send(&mut stream, &mut out, &Response::Error(error))
                    .await;
            }
        };
        let request = if stream.buffer().len() >= len {
            let request = decode(&stream.buffer()[..len]);
            Pin::new(&mut stream).consume(len);
            request
        } else {
            // The body may hold a password: its buffer is zeroed when
            // dropped.
            let mut body = Zeroizing::new(vec![0u8; len]);
            read_whole(&mut stream, &mut body, limits.frame_timeout).await?;
            decode(&body)
        };
        let answered = match &request {
            Ok(Request::Get { profile, kind, min_valid_secs }) => service
                .answer_get_from_memory(
                    profile.as_deref(),
                    *kind,
                    *min_valid_secs,
                    |reply| push_frame(&mut out, &reply),
                ),
            _ => None,
        };
        match answered {
            Some(pushed) => {
                pushed?;
                write(&mut stream, &mut out).await?;
            }
            None => {
                let response = match request {
                    Ok(request) => service.handle(request).await,
                    Err(error) => Response::Error(error),
                };
                send(&mut stream, &mut out, &response).await?;
            }
        }
        last_request = Instant::now();
    }
}

/// Whether `bytes` start with a whole frame.
fn holds_whole_frame(bytes: &[u8]) -> bool {
    let Some(header) = bytes.first_chunk::<{ frame::HEADER_LEN }>() else {
        return false;
    };
    let len = u32::from_be_bytes(*header) as usize;
    bytes.len() - frame::HEADER_LEN >= len
}

fn decode(body: &[u8]) -> Result<Request, WireError> {
    codec::decode::<Request>(body, MAX_REQUEST_LEN).map_err(|e| {
        WireError::new(
            ErrorKind::BadRequest,
            format!("{e}; is fkq-cred the same version as fkq-credd?"),
        )
    })
}

/// Whether a client of protocol `version` that greeted with `flags` may
/// stop this daemon: anyone who asks explicitly (`fkq-cred daemon stop`,
/// whose `Shutdown` frame we could not read), and a newer client replacing
/// a daemon that a client started. An older client never replaces a newer
/// daemon, so two releases installed side by side cannot take turns
/// killing each other's daemon.
fn must_stop_for(service: &Service, version: u16, flags: u8) -> bool {
    if flags & client_flags::STOP_IF_OTHER_VERSION != 0 {
        return true;
    }
    flags & client_flags::REPLACE_IF_OLDER != 0
        && version > PROTOCOL_VERSION
        && service.origin().is_replaceable()
}

/// Reads exactly `buf.len()` bytes: at once when they have arrived, as
/// they nearly always have, else waiting at most `limit`.
async fn read_whole<S: AsyncRead + Unpin>(
    stream: &mut BufReader<S>,
    buf: &mut [u8],
    limit: Duration,
) -> Result<(), ConnectionError> {
    let buffered = stream.buffer();
    if buffered.len() >= buf.len() {
        buf.copy_from_slice(&buffered[..buf.len()]);
        Pin::new(stream).consume(buf.len());
        return Ok(());
    }
    within(limit, stream.read_exact(buf)).await.map(drop)
}

/// Runs `io`, giving up after `limit`. The timer is only set up when `io`
/// cannot finish at once.
async fn within<T>(
    limit: Duration,
    io: impl std::future::Future<Output = io::Result<T>>,
) -> Result<T, ConnectionError> {
    let mut io = std::pin::pin!(io);
    let first =
        std::future::poll_fn(|cx| Poll::Ready(io.as_mut().poll(cx))).await;
    if let Poll::Ready(result) = first {
        return Ok(result?);
    }
    match tokio::time::timeout(limit, io).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(ConnectionError::Stalled),
    }
}

/// Writes `out` and wipes it: it may have held a token.
async fn write<S: AsyncWrite + Unpin>(
    stream: &mut S,
    out: &mut Vec<u8>,
) -> Result<(), ConnectionError> {
    let written = within(WRITE_TIMEOUT, async {
        stream.write_all(out).await?;
        stream.flush().await
    })
    .await;
    wipe(out);
    written
}

/// Appends `response` as a frame to `out` (which may already hold the
/// greeting) and writes it all.
async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    out: &mut Vec<u8>,
    response: &Response,
) -> Result<(), ConnectionError> {
    push_frame(out, response)?;
    write(stream, out).await
}

/// Appends `body` to `out` as one frame.
fn push_frame(
    out: &mut Vec<u8>,
    body: &impl serde::Serialize,
) -> Result<(), ConnectionError> {
    let start = out.len();
    out.extend_from_slice(&[0; frame::HEADER_LEN]);
    if let Err(e) = codec::encode_into(out, body) {
        wipe(out);
        return Err(
            io::Error::new(io::ErrorKind::InvalidData, e.to_string()).into()
        );
    }
    let len = u32::try_from(out.len() - start - frame::HEADER_LEN)
        .expect("the codec caps bodies far below 4 GiB");
    out[start..start + frame::HEADER_LEN].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Zeroes the bytes of `out` eight at a time and empties it, keeping its
/// capacity. Nothing that held a token goes back to the allocator
/// unwiped: `out` only grows by [`codec::encode_into`], which reserves
/// before it writes, and it is a `Zeroizing` buffer when dropped.
fn wipe(out: &mut Vec<u8>) {
    // SAFETY: every bit pattern is a valid u64, so bytes may be viewed as
    // words; the view covers exactly the bytes of the slice.
    let (head, words, tail) = unsafe { out.align_to_mut::<u64>() };
    head.zeroize();
    words.zeroize();
    tail.zeroize();
    out.clear();
}

#[cfg(test)]
mod tests;

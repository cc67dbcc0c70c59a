//! The local socket: binding it safely, accepting connections from the
//! owner only, and reading framed requests without trusting the peer.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use fkq_cred_proto::frame::{self, MAX_REQUEST_LEN};
use fkq_cred_proto::handshake::{self, Hello, HELLO_LEN};
use fkq_cred_proto::location::{
    ensure_private_dir, LocationError, SocketLocation,
};
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

/// How long a connection may sit silent between requests.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a reply may take to be written to a peer that does not read.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The read buffer of a connection: a greeting and a `get` with a long
/// profile name fit many times over; a larger request is read past it.
const READ_BUFFER: usize = 1024;

/// How long shutdown waits for in-flight requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the socket could not be bound.
#[derive(Debug, Error)]
pub enum BindError {
    /// The location is unusable.
    #[error(transparent)]
    Location(#[from] LocationError),
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
/// from a dead daemon replaced, a live one or a non-socket left alone.
pub fn bind(location: &SocketLocation) -> Result<Listener, BindError> {
    let path = &location.path;
    let io_error = |source| BindError::Io { path: path.clone(), source };
    match &location.private_dir {
        Some(dir) => ensure_private_dir(dir)?,
        None => create_parent(path).map_err(io_error)?,
    }
    clear_stale(path)?;
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

fn create_parent(path: &Path) -> io::Result<()> {
    let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
    else {
        return Ok(());
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(parent)
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(parent)
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
pub async fn serve(listener: Listener, service: Arc<Service>) {
    let mut shutdown = service.shutdown_signal();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
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
                serve_connection(stream, &service, busy, shutdown).await
            {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let all =
        u32::try_from(MAX_CONNECTIONS).expect("MAX_CONNECTIONS fits in u32");
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
        match stream.peer_creds().map(|c| c.euid()) {
            Ok(Some(uid)) if uid == me => true,
            Ok(uid) => {
                tracing::warn!(peer_uid = ?uid, "refused a connection from another user");
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
pub async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    service: &Service,
    busy: bool,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ConnectionError> {
    let mut stream = BufReader::with_capacity(READ_BUFFER, stream);
    let mut out = Zeroizing::new(Vec::new());
    let mut hello = [0u8; HELLO_LEN];
    read_whole(&mut stream, &mut hello).await?;
    let Hello::Version(version) = handshake::decode_hello(&hello) else {
        return Err(ConnectionError::Foreign);
    };
    // The client sends its greeting and first request in one write. When
    // that request is already here whole, the greeting leaves with its
    // reply, so the client is woken once instead of twice.
    let is_current = version == PROTOCOL_VERSION;
    out.extend_from_slice(&handshake::hello());
    if !is_current || busy || !holds_whole_frame(stream.buffer()) {
        write(&mut stream, &mut out).await?;
    }
    if !is_current {
        tracing::info!(
            client_version = version,
            "client speaks another protocol version"
        );
        return Ok(());
    }
    if busy {
        let error = WireError::new(
            ErrorKind::Busy,
            format!("fkq-credd is serving its maximum of {MAX_CONNECTIONS} connections; try again shortly"),
        );
        return send(&mut stream, &mut out, &Response::Error(error)).await;
    }

    let stop = shutdown.wait_for(|stop| *stop);
    tokio::pin!(stop);
    let idle = tokio::time::sleep(IDLE_TIMEOUT);
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
                let deadline = last_request + IDLE_TIMEOUT;
                if deadline <= Instant::now() {
                    return Ok(());
                }
                idle.as_mut().reset(deadline);
                continue;
            }
        };
        read_whole(&mut stream, &mut header[first..]).await?;
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
            let mut body = vec![0u8; len];
            read_whole(&mut stream, &mut body).await?;
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

/// Reads exactly `buf.len()` bytes: at once when they have arrived, as
/// they nearly always have, else waiting at most [`FRAME_TIMEOUT`].
async fn read_whole<S: AsyncRead + Unpin>(
    stream: &mut BufReader<S>,
    buf: &mut [u8],
) -> Result<(), ConnectionError> {
    let buffered = stream.buffer();
    if buffered.len() >= buf.len() {
        buf.copy_from_slice(&buffered[..buf.len()]);
        Pin::new(stream).consume(buf.len());
        return Ok(());
    }
    within(FRAME_TIMEOUT, stream.read_exact(buf)).await.map(drop)
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

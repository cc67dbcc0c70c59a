//! The accept loops of the two listeners: TLS (or plain TCP) in front of a
//! hyper HTTP/1.1 connection per client.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::routes::{self, AppState, Role};

/// How long a client may take to finish the TLS handshake; a test client
/// that stalls longer is broken, and its task should not linger.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The pause after a failed `accept`, so that running out of file
/// descriptors does not turn the loop into a busy spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Starts serving `listener` in a task. Aborting the task drops its
/// connections too, which is how the emulator shuts down.
pub(crate) fn spawn(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: Arc<AppState>,
    role: Role,
) -> JoinHandle<()> {
    tokio::spawn(accept_loop(listener, tls, state, role))
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: Arc<AppState>,
    role: Role,
) {
    // The set owns every connection task, so dropping it with this future
    // ends them all; finished ones are reaped as the loop goes.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let connection =
                        serve(stream, tls.clone(), Arc::clone(&state), role);
                    connections.spawn(connection);
                }
                Err(cause) => {
                    let server = role.name();
                    tracing::warn!(%server, %cause, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    state: Arc<AppState>,
    role: Role,
) {
    // A reply goes out as it is written. With Nagle's algorithm on, the
    // last segment of a reply could wait for the client's delayed ACK,
    // 40 ms on Linux, which no real deployment's front end adds.
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = tls else {
        serve_http(stream, state, role).await;
        return;
    };
    let server = role.name();
    let handshake = acceptor.accept(stream);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(tls_stream)) => serve_http(tls_stream, state, role).await,
        Ok(Err(cause)) => {
            tracing::debug!(%server, %cause, "TLS handshake failed");
        }
        Err(_elapsed) => {
            tracing::debug!(%server, "TLS handshake timed out");
        }
    }
}

async fn serve_http<I>(io: I, state: Arc<AppState>, role: Role)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        routes::handle(Arc::clone(&state), role, request)
    });
    let served =
        http1::Builder::new().serve_connection(TokioIo::new(io), service).await;
    if let Err(cause) = served {
        let server = role.name();
        tracing::debug!(%server, %cause, "connection ended early");
    }
}

//! One connection at a time, over an in-memory stream: the greeting, the
//! framing paths, and the idle timeout, as a client sees them.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use fkq_cred_proto::{TokenKind, TokenReply};
use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;

use super::*;
use crate::service::tests::logged_in_service;

/// The daemon's end of a connection, recording the size of every write.
struct Recorder {
    inner: DuplexStream,
    writes: Arc<Mutex<Vec<usize>>>,
}

impl AsyncRead for Recorder {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Recorder {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            self.writes.lock().unwrap().push(n);
        }
        written
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

struct Connection {
    client: DuplexStream,
    writes: Arc<Mutex<Vec<usize>>>,
    task: JoinHandle<Result<(), ConnectionError>>,
}

fn connect() -> Connection {
    let service = logged_in_service();
    let (client, daemon) = duplex(64 * 1024);
    let writes = Arc::new(Mutex::new(Vec::new()));
    let daemon = Recorder { inner: daemon, writes: writes.clone() };
    let shutdown = service.shutdown_signal();
    let task = tokio::spawn(async move {
        serve_connection(daemon, &service, false, shutdown, &Limits::default())
            .await
    });
    Connection { client, writes, task }
}

fn get_frame() -> Vec<u8> {
    let request = Request::Get {
        profile: None,
        kind: TokenKind::Access,
        min_valid_secs: None,
    };
    frame::encode(&codec::encode(&request).unwrap())
}

async fn read_hello(client: &mut DuplexStream) -> [u8; HELLO_LEN] {
    let mut hello = [0u8; HELLO_LEN];
    client.read_exact(&mut hello).await.unwrap();
    hello
}

async fn read_token(client: &mut DuplexStream) -> TokenReply {
    let mut header = [0u8; frame::HEADER_LEN];
    client.read_exact(&mut header).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
    client.read_exact(&mut body).await.unwrap();
    match codec::decode(&body, frame::MAX_RESPONSE_LEN).unwrap() {
        Response::Token(reply) => reply,
        other => panic!("expected a token, got {other:?}"),
    }
}

#[tokio::test]
async fn the_greeting_leaves_with_the_first_reply_in_one_write() {
    let mut c = connect();
    let mut request = handshake::hello().to_vec();
    request.extend_from_slice(&get_frame());
    c.client.write_all(&request).await.unwrap();

    assert_eq!(read_hello(&mut c.client).await, handshake::hello());
    let reply = read_token(&mut c.client).await;
    assert_eq!(reply.token.expose(), "access-token");
    let writes = c.writes.lock().unwrap().clone();
    assert_eq!(writes.len(), 1, "one write, not one per part: {writes:?}");
}

#[tokio::test]
async fn a_client_that_waits_for_the_greeting_gets_it_first() {
    let mut c = connect();
    c.client.write_all(&handshake::hello()).await.unwrap();
    let hello = tokio::time::timeout(
        Duration::from_secs(10),
        read_hello(&mut c.client),
    )
    .await
    .expect("the greeting comes without a request");
    assert_eq!(hello, handshake::hello());

    c.client.write_all(&get_frame()).await.unwrap();
    assert_eq!(read_token(&mut c.client).await.kind, TokenKind::Access);
}

#[tokio::test]
async fn a_request_split_across_writes_is_served_and_so_is_the_next() {
    let mut c = connect();
    let frame = get_frame();
    let mut first = handshake::hello().to_vec();
    first.extend_from_slice(&frame[..2]);
    c.client.write_all(&first).await.unwrap();
    assert_eq!(read_hello(&mut c.client).await, handshake::hello());
    tokio::task::yield_now().await;
    c.client.write_all(&frame[2..5]).await.unwrap();
    tokio::task::yield_now().await;
    c.client.write_all(&frame[5..]).await.unwrap();
    assert_eq!(read_token(&mut c.client).await.token.expose(), "access-token");

    c.client.write_all(&frame).await.unwrap();
    assert_eq!(read_token(&mut c.client).await.token.expose(), "access-token");
}

#[tokio::test(start_paused = true)]
async fn a_connection_is_closed_once_silent_for_the_idle_timeout() {
    let mut c = connect();
    let mut request = handshake::hello().to_vec();
    request.extend_from_slice(&get_frame());
    c.client.write_all(&request).await.unwrap();
    read_hello(&mut c.client).await;
    read_token(&mut c.client).await;

    // Requests keep it open: each moves the deadline to IDLE_TIMEOUT
    // after itself, past the timer set when the connection opened.
    let step = IDLE_TIMEOUT * 2 / 3;
    for _ in 0..3 {
        tokio::time::advance(step).await;
        c.client.write_all(&get_frame()).await.unwrap();
        read_token(&mut c.client).await;
    }

    tokio::time::advance(IDLE_TIMEOUT + Duration::from_secs(1)).await;
    let ended = tokio::time::timeout(IDLE_TIMEOUT * 4, c.task)
        .await
        .expect("the idle connection was closed");
    ended.unwrap().expect("an idle close is not an error");
    let mut rest = Vec::new();
    c.client.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "nothing after the last reply: {rest:?}");
}

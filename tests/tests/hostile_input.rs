//! Random and mutated input thrown at the decoder and at a live daemon:
//! nothing panics, nothing allocates what a header merely claims, every
//! frame gets exactly the answer the protocol promises, and afterwards the
//! daemon still hands out its token.
//!
//! Each run throws `FKQ_FUZZ_CASES` frames (default 100,000) at each
//! target, from a seed it prints; `FKQ_FUZZ_SEED=<seed>` replays a run. A
//! longer run is
//! `cargo build --release --workspace && FKQ_FUZZ_CASES=5000000 cargo test
//! --release -p fkq-cred-tests --test hostile_input`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{self, Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use fkq_cred_proto::frame::{self, FrameError, MAX_REQUEST_LEN};
use fkq_cred_proto::frame::{HEADER_LEN, MAX_RESPONSE_LEN};
use fkq_cred_proto::handshake::{self, Hello};
use fkq_cred_proto::{codec, ErrorKind, Request, Response};
use fkq_cred_tests::harness::{code, stderr, stdout, Sandbox};
use fkq_cred_tests::hostile::{self, Generator, Greeting, Parsed};
use fkq_cred_tests::wire;

/// Counts the largest single allocation made on the current thread, so a
/// test can tell what decoding one input cost without seeing other tests.
struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// bookkeeping touches only a thread-local counter that never allocates.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(
        &self,
        ptr: *mut u8,
        layout: Layout,
        new_size: usize,
    ) -> *mut u8 {
        note(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// The largest allocation `work` made on this thread.
fn largest_allocation(work: impl FnOnce()) -> usize {
    LARGEST.with(|largest| largest.set(0));
    work();
    LARGEST.with(Cell::get)
}

#[test]
fn a_frame_header_claiming_4_gib_is_refused_by_the_decoder_without_allocating()
{
    let mut result = None;
    let largest = largest_allocation(|| {
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        result = Some(frame::read_blocking(&mut input, MAX_RESPONSE_LEN));
    });
    assert!(
        matches!(
            result,
            Some(Err(FrameError::TooLarge { len: 0xffff_ffff, .. }))
        ),
        "{result:?}"
    );
    assert!(largest < 1024, "allocated {largest} bytes for a refused frame");
}

/// Checks every promise the decoder makes about one frame's bytes.
fn check_frame(bytes: &[u8]) {
    let declared = bytes
        .get(..HEADER_LEN)
        .map(|h| u32::from_be_bytes(h.try_into().expect("4 bytes")) as usize);
    for max in [MAX_REQUEST_LEN, MAX_RESPONSE_LEN] {
        let largest = largest_allocation(|| {
            match frame::read_blocking(&mut &bytes[..], max) {
                Ok(body) => {
                    assert_eq!(Some(body.len()), declared);
                    assert!(body.len() <= max);
                    check_body(&body);
                }
                Err(FrameError::TooLarge { len, .. }) => {
                    assert_eq!(Some(len as usize), declared);
                    assert!(len as usize > max);
                }
                Err(FrameError::Io(e)) => {
                    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
                    let whole = declared.map(|len| HEADER_LEN + len);
                    assert!(whole.is_none_or(|whole| bytes.len() < whole));
                }
                Err(FrameError::Closed) => assert!(bytes.is_empty()),
            }
        });
        // Whatever the header or a length inside the body claims, the
        // cost is bounded by the limit, never by the claim.
        assert!(largest <= MAX_RESPONSE_LEN, "allocated {largest} bytes");
    }
    if let Some(hello) = bytes.get(..handshake::HELLO_LEN) {
        let hello: [u8; handshake::HELLO_LEN] =
            hello.try_into().expect("8 bytes");
        let is_ours = hello.starts_with(&handshake::MAGIC);
        assert_eq!(handshake::decode_hello(&hello) != Hello::Foreign, is_ours);
    }
}

/// Decodes a body as either side would; whatever decodes re-encodes to
/// the same value.
fn check_body(body: &[u8]) {
    if let Ok(request) = codec::decode::<Request>(body, MAX_REQUEST_LEN) {
        let again = codec::encode(&request).expect("a decoded request encodes");
        assert_eq!(
            codec::decode::<Request>(&again, MAX_REQUEST_LEN).ok(),
            Some(request)
        );
    }
    if let Ok(response) = codec::decode::<Response>(body, MAX_RESPONSE_LEN) {
        let again =
            codec::encode(&response).expect("a decoded response encodes");
        assert_eq!(
            codec::decode::<Response>(&again, MAX_RESPONSE_LEN).ok(),
            Some(response)
        );
    }
}

/// Runs `check` on one case; on a panic, says how to replay it.
fn replayable(seed: u64, case: usize, bytes: &[u8], check: impl FnOnce()) {
    if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(check)) {
        let shown = &bytes[..bytes.len().min(64)];
        eprintln!(
            "case {case} failed; replay with FKQ_FUZZ_SEED={seed}; first \
             bytes: {shown:02x?}"
        );
        panic::resume_unwind(panic);
    }
}

#[test]
fn the_decoder_survives_random_and_mutated_frames() {
    let (seed, cases) = (hostile::seed(), hostile::cases());
    eprintln!("decoder: {cases} frames, FKQ_FUZZ_SEED={seed}");
    let mut generator = Generator::new(seed);
    for case in 0..cases {
        let bytes = match case % 16 {
            0 => generator.connection(1).bytes,
            _ => generator.frame(),
        };
        replayable(seed, case, &bytes, || check_frame(&bytes));
    }
}

/// Everything the daemon sent on one connection, until it closed.
fn exchange(socket: &Path, bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = wire::connect(socket)?;
    // The daemon closes early on an oversized header or a foreign
    // greeting; the rest of the write then fails, which is expected.
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(received),
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            // Closing with our bytes still unread resets the connection;
            // what the daemon sent before that has been read already.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                return Ok(received)
            }
            Err(e) => return Err(e),
        }
    }
}

/// Checks the daemon's side of one connection against what the protocol
/// promises for what was sent; returns the number of replies.
fn check_replies(
    connection: &hostile::Connection,
    mut received: &[u8],
) -> usize {
    match connection.greeting {
        Greeting::Foreign | Greeting::Truncated => {
            assert!(
                received.is_empty(),
                "{} bytes to a non-client",
                received.len()
            );
            return 0;
        }
        Greeting::OtherVersion => {
            assert_eq!(
                received,
                handshake::hello(),
                "other versions get a greeting, then a close"
            );
            return 0;
        }
        Greeting::Current => {}
    }
    wire::read_greeting(&mut received).expect("the daemon greets");
    let expected =
        hostile::parse_stream(&connection.bytes[handshake::HELLO_LEN..]);
    for (i, parsed) in expected.iter().enumerate() {
        let reply = wire::read_response(&mut received).unwrap_or_else(|e| {
            panic!("reply {i} of {} missing: {e}", expected.len())
        });
        let refused = matches!(&reply, Response::Error(e) if e.kind == ErrorKind::BadRequest);
        let should_refuse =
            matches!(parsed, Parsed::Malformed | Parsed::TooLarge);
        assert_eq!(
            refused, should_refuse,
            "frame {i}: {parsed:?} got {reply:?}"
        );
    }
    assert!(
        received.is_empty(),
        "{} bytes beyond the expected replies",
        received.len()
    );
    expected.len()
}

#[test]
fn the_daemon_survives_random_and_mutated_frames_and_still_answers() {
    const THREADS: u64 = 4;
    let (seed, cases) = (hostile::seed(), hostile::cases());
    eprintln!("daemon: {cases} frames, FKQ_FUZZ_SEED={seed}");
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let mut daemon = sandbox.logged_in(&emulator, "");
    let token = stdout(&sandbox.cli(&["get"]));
    assert!(!token.is_empty());

    let started = Instant::now();
    // Frames written, and frames the daemon read and answered: a run
    // lasts until the latter reaches the number of cases.
    let thrown = AtomicUsize::new(0);
    let answered = AtomicUsize::new(0);
    let socket = sandbox.socket();
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (thrown, answered, socket) = (&thrown, &answered, &socket);
            scope.spawn(move || {
                let mut generator = Generator::new(seed.wrapping_add(thread));
                let mut case = 0;
                while answered.load(Ordering::Relaxed) < cases {
                    let connection = generator.connection(32);
                    thrown.fetch_add(connection.frames, Ordering::Relaxed);
                    replayable(seed, case, &connection.bytes, || {
                        let received = exchange(socket, &connection.bytes)
                            .expect("the daemon takes the connection");
                        let n = check_replies(&connection, &received);
                        answered.fetch_add(n, Ordering::Relaxed);
                    });
                    case += 1;
                }
            });
        }
    });
    eprintln!(
        "daemon: {} frames thrown, {} answered, in {:?}",
        thrown.load(Ordering::Relaxed),
        answered.load(Ordering::Relaxed),
        started.elapsed()
    );

    assert!(daemon.is_running(), "the daemon died:\n{}", daemon.log());
    let after = sandbox.cli(&["get"]);
    assert!(
        after.status.success(),
        "get ({}): {}",
        code(&after),
        stderr(&after)
    );
    assert_eq!(stdout(&after), token, "the same token, still served");
    let log = daemon.log();
    assert!(!log.contains("panicked"), "a connection task panicked:\n{log}");
}

//! The socket under awkward and hostile clients: requests in pieces, many
//! at once, clients that stall or go silent, headers that lie about their
//! length, and more connections than the daemon serves.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use fkq_cred_proto::{exit, ErrorKind, Response};
use fkq_cred_tests::harness::{code, stderr, stdout, DaemonProcess, Sandbox};
use fkq_cred_tests::wire::{self, get_request, greeting_and_request};

/// A deadline against a hang, far above any honest wait.
const HANG: Duration = Duration::from_secs(20);

/// A sandbox with a logged-in daemon started with `args`; returns the
/// token `fkq-cred get` prints.
fn logged_in_with(
    sandbox: &Sandbox,
    args: &[&str],
) -> (fkq_cred_tests::emulator::process::EmulatorProcess, DaemonProcess, String)
{
    let emulator = sandbox.start_emulator(&[]);
    sandbox.write_config(&Sandbox::profile_toml(
        fkq_cred_tests::harness::PROFILE,
        &emulator,
        "",
    ));
    let daemon = sandbox.start_daemon_with(args, &[]);
    let login = sandbox.cli_with_stdin(
        &["login", "--password-stdin"],
        &format!("{}\n", fkq_cred_tests::emulator::DEFAULT_PASSWORD),
    );
    assert!(login.status.success(), "login: {}", stderr(&login));
    let token = cli_token(sandbox);
    (emulator, daemon, token)
}

fn cli_token(sandbox: &Sandbox) -> String {
    let out = sandbox.cli(&["get"]);
    assert!(out.status.success(), "get ({}): {}", code(&out), stderr(&out));
    stdout(&out).trim_end().to_owned()
}

#[test]
fn a_request_written_one_byte_every_20ms_is_answered_correctly() {
    let sandbox = Sandbox::new();
    let (_emulator, _daemon, token) = logged_in_with(&sandbox, &[]);

    let mut stream = wire::connect(&sandbox.socket()).unwrap();
    for byte in greeting_and_request(&get_request()) {
        stream.write_all(&[byte]).unwrap();
        // The pacing is the behaviour under test: every read the daemon
        // makes returns a single byte.
        std::thread::sleep(Duration::from_millis(20));
    }
    wire::read_greeting(&mut stream).unwrap();
    let reply = wire::read_response(&mut stream).unwrap();
    assert_eq!(wire::token_of(&reply), token);
}

#[test]
fn two_hundred_concurrent_connections_all_get_complete_replies() {
    const CLIENTS: usize = 200;
    let sandbox = Sandbox::new();
    let (_emulator, _daemon, token) = logged_in_with(&sandbox, &[]);

    // Every client connects first; only when all 200 are open do they
    // send, so the daemon holds all of them at once.
    let start = Arc::new(Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let socket = sandbox.socket();
            let start = start.clone();
            std::thread::spawn(move || {
                let mut stream = wire::connect(&socket)?;
                start.wait();
                wire::ask(&mut stream, &get_request())
            })
        })
        .collect();
    for (i, client) in clients.into_iter().enumerate() {
        let reply = client
            .join()
            .expect("client thread")
            .unwrap_or_else(|e| panic!("client {i}: {e}"));
        assert_eq!(wire::token_of(&reply), token, "client {i}");
    }
}

/// Opens the three kinds of stuck connection: one that never greets, one
/// that stops in the middle of a frame, and one that asked once and then
/// went quiet.
fn stuck_connections(sandbox: &Sandbox) -> [UnixStream; 3] {
    let socket = sandbox.socket();
    let silent = wire::connect(&socket).unwrap();

    let mut mid_frame = wire::connect(&socket).unwrap();
    let bytes = greeting_and_request(&get_request());
    mid_frame.write_all(&bytes[..bytes.len() - 3]).unwrap();
    wire::read_greeting(&mut mid_frame).unwrap();

    let mut idle = wire::connect(&socket).unwrap();
    let reply = wire::ask(&mut idle, &get_request()).unwrap();
    assert!(matches!(reply, Response::Token(_)), "{reply:?}");
    [silent, mid_frame, idle]
}

#[test]
fn stalled_and_silent_connections_do_not_delay_other_clients() {
    let sandbox = Sandbox::new();
    // Timeouts far beyond the test, so nothing but the daemon's own
    // concurrency can let the other clients through.
    let (_emulator, _daemon, token) = logged_in_with(
        &sandbox,
        &["--frame-timeout", "10min", "--idle-timeout", "10min"],
    );
    let stuck = stuck_connections(&sandbox);

    for _ in 0..20 {
        assert_eq!(cli_token(&sandbox), token);
    }
    for (i, stream) in stuck.iter().enumerate() {
        assert!(wire::is_open_and_silent(stream), "stuck connection {i}");
    }
}

#[test]
fn silent_and_stalled_connections_are_closed_by_their_timeouts() {
    let sandbox = Sandbox::new();
    let (_emulator, daemon, token) = logged_in_with(
        &sandbox,
        &["--frame-timeout", "1s", "--idle-timeout", "1s", "--verbose"],
    );
    let stuck = stuck_connections(&sandbox);
    for (i, mut stream) in stuck.into_iter().enumerate() {
        assert!(wire::is_closed_within(&mut stream, HANG), "connection {i}");
    }
    // The daemon closes first and logs after; wait for its lines.
    daemon.wait_for_log("peer stalled mid-frame", 2, HANG);
    daemon.wait_for_log("closing an idle connection", 1, HANG);
    assert_eq!(cli_token(&sandbox), token, "the daemon still serves");
}

/// The daemon's peak virtual memory, from `/proc/<pid>/status`.
fn peak_virtual_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("read the daemon's status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmPeak:"))
        .expect("status has VmPeak");
    let kib: u64 = line
        .trim_start_matches("VmPeak:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("VmPeak is a number");
    kib * 1024
}

#[test]
fn a_frame_header_claiming_4_gib_is_refused_without_allocating_it() {
    const FOUR_GIB: u64 = 4 << 30;
    let sandbox = Sandbox::new();
    let (_emulator, daemon, token) = logged_in_with(&sandbox, &[]);
    assert!(
        peak_virtual_bytes(daemon.pid()) < FOUR_GIB,
        "the daemon's address space is already 4 GiB: the check below \
         would mean nothing"
    );

    let mut stream = wire::connect(&sandbox.socket()).unwrap();
    let mut bytes = fkq_cred_proto::handshake::hello().to_vec();
    bytes.extend_from_slice(&[0xff; 4]);
    stream.write_all(&bytes).unwrap();
    wire::read_greeting(&mut stream).unwrap();
    // The refusal comes at once: the daemon waits for none of the 4 GiB.
    match wire::read_response(&mut stream).unwrap() {
        Response::Error(e) => {
            assert_eq!(e.kind, ErrorKind::BadRequest);
            assert!(e.message.contains("4294967295 bytes"), "{}", e.message);
            assert!(e.message.contains("exceeds the limit"), "{}", e.message);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(wire::is_closed_within(&mut stream, HANG), "not closed");

    assert!(
        peak_virtual_bytes(daemon.pid()) < FOUR_GIB,
        "the daemon reserved memory for the claimed length"
    );
    assert_eq!(cli_token(&sandbox), token, "the daemon still serves");
}

#[test]
fn past_the_connection_cap_a_client_is_told_the_daemon_is_busy() {
    let sandbox = Sandbox::new();
    let (_emulator, _daemon, token) =
        logged_in_with(&sandbox, &["--max-connections", "2"]);

    let mut held: Vec<UnixStream> = (0..2)
        .map(|_| {
            let mut stream = wire::connect(&sandbox.socket()).unwrap();
            let reply = wire::ask(&mut stream, &get_request()).unwrap();
            assert_eq!(wire::token_of(&reply), token);
            stream
        })
        .collect();

    let out = sandbox.cli(&["get"]);
    assert_eq!(code(&out), i32::from(exit::DAEMON_UNREACHABLE));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(
        err.starts_with("fkq-cred: ")
            && err.contains("maximum of 2 connections")
            && err.contains("try again"),
        "{err}"
    );

    // Those being served are not disturbed by the one turned away.
    for stream in &mut held {
        stream.write_all(&wire::request_frame(&get_request())).unwrap();
        let reply = wire::read_response(stream).unwrap();
        assert_eq!(wire::token_of(&reply), token);
    }
}

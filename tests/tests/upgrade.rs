//! Upgrades: a client and a daemon of different protocol versions. Fake
//! daemons (a Unix listener speaking another version's greeting) play the
//! other release against the real client, and a raw greeting plays the
//! other release against the real daemon.
#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use fkq_cred_proto::exit;
use fkq_cred_proto::handshake::{
    client_flags, daemon_flags, decode_hello, encode_hello_with_flags,
    hello_flags, Hello, HELLO_LEN,
};
use fkq_cred_proto::PROTOCOL_VERSION;
use fkq_cred_tests::daemons::{Reaper, Watched};
use fkq_cred_tests::harness::{code, stderr, stdout, Sandbox};

const DEADLINE: Duration = Duration::from_secs(30);

/// A daemon of another release that serves one connection: it answers
/// with its own `version` and `flags`, and stops (removing its socket,
/// then closing the connection) when the client's flags contain any of
/// `stops_on`. The handle yields the client's greeting flags.
fn fake_daemon(
    socket: &Path,
    version: u16,
    flags: u8,
    stops_on: u8,
) -> JoinHandle<u8> {
    let dir = socket.parent().expect("socket has a directory");
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).unwrap();
    let listener = UnixListener::bind(socket).expect("bind fake daemon");
    let socket = socket.to_path_buf();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut hello = [0u8; HELLO_LEN];
        conn.read_exact(&mut hello).expect("client greeting");
        let asked = hello_flags(&hello);
        let stop = asked & stops_on != 0;
        let reply_flags = flags | if stop { daemon_flags::STOPPING } else { 0 };
        let reply = encode_hello_with_flags(version, reply_flags);
        conn.write_all(&reply).expect("fake greeting");
        if stop {
            drop(listener);
            std::fs::remove_file(&socket).expect("remove fake socket");
        }
        drop(conn);
        asked
    })
}

/// Greets the daemon at `socket` as a client of `version` with `flags`;
/// returns its version, its flags and the open connection.
fn greet(socket: &Path, version: u16, flags: u8) -> (u16, u8, UnixStream) {
    let mut conn = UnixStream::connect(socket).expect("connect");
    conn.set_read_timeout(Some(DEADLINE)).unwrap();
    conn.write_all(&encode_hello_with_flags(version, flags)).unwrap();
    let mut hello = [0u8; HELLO_LEN];
    conn.read_exact(&mut hello).expect("daemon greeting");
    let Hello::Version(theirs) = decode_hello(&hello) else {
        panic!("not a greeting: {hello:?}");
    };
    (theirs, hello_flags(&hello), conn)
}

/// Reads until the daemon closes the connection.
fn read_until_closed(conn: &mut UnixStream) {
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).expect("closed, not timed out");
}

#[test]
fn an_older_daemon_a_client_started_is_replaced_and_get_succeeds() {
    let sandbox = Sandbox::new();
    let _reaper = Reaper::new(&sandbox);
    let fake = fake_daemon(
        &sandbox.socket(),
        PROTOCOL_VERSION - 1,
        daemon_flags::STARTED_BY_CLIENT,
        client_flags::REPLACE_IF_OLDER,
    );
    // Any command will do; `profiles` needs no login.
    let out = sandbox.autostart_cli(&["profiles"]);
    assert!(out.status.success(), "{}: {}", code(&out), stderr(&out));
    let asked = fake.join().unwrap();
    assert_ne!(asked & client_flags::REPLACE_IF_OLDER, 0);
    let status = stdout(&sandbox.cli(&["daemon", "status"]));
    let ours = env!("CARGO_PKG_VERSION");
    assert!(status.contains(&format!("fkq-credd {ours} ")), "{status}");
}

#[test]
fn a_daemon_under_systemd_gets_the_exact_restart_command() {
    let sandbox = Sandbox::new();
    let fake = fake_daemon(
        &sandbox.socket(),
        PROTOCOL_VERSION - 1,
        daemon_flags::UNDER_SYSTEMD,
        0,
    );
    let out = sandbox.autostart_cli(&["get"]);
    fake.join().unwrap();
    assert_eq!(code(&out), i32::from(exit::VERSION_MISMATCH));
    let err = stderr(&out);
    assert!(err.contains("systemctl --user restart fkq-cred.service"), "{err}");
    assert!(err.contains(&format!("version {}", PROTOCOL_VERSION - 1)));
}

#[test]
fn a_newer_daemon_is_left_running_and_the_message_says_what_to_install() {
    let sandbox = Sandbox::new();
    let fake = fake_daemon(
        &sandbox.socket(),
        PROTOCOL_VERSION + 1,
        daemon_flags::STARTED_BY_CLIENT,
        0,
    );
    let out = sandbox.autostart_cli(&["get"]);
    fake.join().unwrap();
    assert_eq!(code(&out), i32::from(exit::VERSION_MISMATCH));
    let err = stderr(&out);
    assert!(err.contains("install the fkq-cred of the daemon's release"));
    assert!(err.contains("fkq-cred daemon stop"), "{err}");
}

#[test]
fn a_daemon_started_by_hand_is_explained_and_daemon_stop_stops_it() {
    let sandbox = Sandbox::new();
    let older = PROTOCOL_VERSION - 1;
    let fake = fake_daemon(&sandbox.socket(), older, 0, 0);
    let out = sandbox.autostart_cli(&["get"]);
    fake.join().unwrap();
    assert_eq!(code(&out), i32::from(exit::VERSION_MISMATCH));
    assert!(stderr(&out).contains("started by hand"), "{}", stderr(&out));

    // The same old daemon, listening anew.
    std::fs::remove_file(sandbox.socket()).unwrap();
    let stop = client_flags::STOP_IF_OTHER_VERSION;
    let fake = fake_daemon(&sandbox.socket(), older, 0, stop);
    let out = sandbox.cli(&["daemon", "stop"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(fake.join().unwrap() & stop, 0);
    assert!(!sandbox.socket().exists());
}

#[test]
fn the_real_daemon_started_by_a_client_stops_for_a_newer_client() {
    let sandbox = Sandbox::new();
    let mut reaper = Reaper::new(&sandbox);
    assert!(sandbox.autostart_cli(&["profiles"]).status.success());
    let daemon = Watched::attach(reaper.find().pid()).unwrap();

    // An older client may not replace it.
    let replace = client_flags::REPLACE_IF_OLDER;
    let (_, flags, mut conn) =
        greet(&sandbox.socket(), PROTOCOL_VERSION - 1, replace);
    assert_eq!(flags, daemon_flags::STARTED_BY_CLIENT);
    read_until_closed(&mut conn);
    assert!(daemon.is_running());

    // A newer one may, and learns the moment it is gone.
    let (version, flags, mut conn) =
        greet(&sandbox.socket(), PROTOCOL_VERSION + 1, replace);
    assert_eq!(version, PROTOCOL_VERSION);
    assert_eq!(flags, daemon_flags::STARTED_BY_CLIENT | daemon_flags::STOPPING);
    read_until_closed(&mut conn);
    assert!(!sandbox.socket().exists(), "the socket is gone at the close");
    assert!(daemon.wait_exit(DEADLINE), "and the daemon exits");
}

#[test]
fn the_real_daemon_started_by_hand_is_not_replaced_but_stops_when_asked() {
    let sandbox = Sandbox::new();
    let mut daemon = sandbox.start_daemon();
    let newer = PROTOCOL_VERSION + 1;

    let (_, flags, mut conn) =
        greet(&sandbox.socket(), newer, client_flags::REPLACE_IF_OLDER);
    assert_eq!(flags, 0, "neither started by a client nor stopping");
    read_until_closed(&mut conn);
    assert!(daemon.is_running());

    let (_, flags, mut conn) =
        greet(&sandbox.socket(), newer, client_flags::STOP_IF_OTHER_VERSION);
    assert_eq!(flags, daemon_flags::STOPPING);
    read_until_closed(&mut conn);
    let status = daemon.wait_timeout(DEADLINE).expect("daemon exits");
    assert_eq!(status.code(), Some(0));
    assert!(!sandbox.socket().exists());
}

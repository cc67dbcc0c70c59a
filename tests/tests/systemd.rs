//! systemd, end to end: socket activation through the real
//! `systemd-socket-activate`, `sd_notify` reports to a socket the test
//! listens on, and `systemd-analyze verify` on the unit files as shipped.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fkq_cred_proto::handshake::{self, daemon_flags, HELLO_LEN};
use fkq_cred_tests::daemons::Watched;
use fkq_cred_tests::emulator::DEFAULT_PASSWORD;
use fkq_cred_tests::harness::{binary, code, stderr, stdout, Sandbox, PROFILE};

const DEADLINE: Duration = Duration::from_secs(30);

/// A child killed when the test ends, passing or failing.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The flags of the greeting the daemon at `sandbox`'s socket sends.
fn daemon_greeting_flags(sandbox: &Sandbox) -> u8 {
    let mut conn = UnixStream::connect(sandbox.socket()).expect("connect");
    conn.set_read_timeout(Some(DEADLINE)).unwrap();
    conn.write_all(&handshake::hello()).unwrap();
    let mut hello = [0u8; HELLO_LEN];
    conn.read_exact(&mut hello).expect("greeting");
    handshake::hello_flags(&hello)
}

#[test]
fn systemd_socket_activate_serves_get_through_the_passed_socket() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let command =
        format!("password_command = [\"printf\", \"{DEFAULT_PASSWORD}\\\\n\"]");
    sandbox.write_config(&Sandbox::profile_toml(PROFILE, &emulator, &command));
    // What `DirectoryMode=0700` in fkq-cred.socket makes.
    let socket = sandbox.socket();
    let dir = socket.parent().unwrap();
    std::fs::DirBuilder::new().mode(0o700).create(dir).unwrap();

    // It passes on only TERM, PATH, USER and HOME by itself; the user
    // manager gives its services the XDG directories.
    let mut activator = sandbox
        .program("systemd-socket-activate")
        .args(["-E", "XDG_CONFIG_HOME", "-E", "XDG_RUNTIME_DIR"])
        .args(["-E", "XDG_STATE_HOME", "-E", "TMPDIR"])
        .arg("-l")
        .arg(&socket)
        .arg(binary("fkq-credd"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(KillOnDrop)
        .expect("systemd-socket-activate (package systemd) is installed");
    // It execs the daemon in place on the first connection: same pid.
    let daemon = Watched::attach(activator.0.id()).unwrap();
    let (lines_tx, lines_rx) = mpsc::channel();
    let stream = activator.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let listening = lines_rx.recv_timeout(DEADLINE).expect("first line");
    assert!(listening.contains("Listening on"), "{listening}");

    let out = sandbox.cli(&["get"]);
    assert!(out.status.success(), "{}: {}", code(&out), stderr(&out));
    assert!(!stdout(&out).trim().is_empty());
    let ready = lines_rx
        .iter()
        .find(|line| line.contains(" ready "))
        .expect("the daemon logs its ready line");
    assert!(ready.contains("socket activation"), "{ready}");
    let flags = daemon_greeting_flags(&sandbox);
    assert_eq!(flags, daemon_flags::UNDER_SYSTEMD);

    daemon.signal(libc::SIGTERM).unwrap();
    let status = activator.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(socket.exists(), "the socket is systemd's; the daemon keeps it");
}

#[test]
fn the_daemon_reports_ready_status_and_stopping_to_notify_socket() {
    let sandbox = Sandbox::new();
    let notify_path = sandbox.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(DEADLINE)).unwrap();
    let path = notify_path.to_str().unwrap();
    let mut daemon = sandbox.start_daemon_with(&[], &[("NOTIFY_SOCKET", path)]);
    let mut buf = [0u8; 4096];

    let n = notify.recv(&mut buf).expect("a READY report");
    let report = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(report.lines().any(|l| l == "READY=1"), "{report}");
    assert!(report.contains("STATUS=serving 0 profiles on"), "{report}");
    assert_eq!(daemon_greeting_flags(&sandbox), daemon_flags::UNDER_SYSTEMD);

    daemon.signal(libc::SIGTERM);
    let n = notify.recv(&mut buf).unwrap_or_else(|e| {
        panic!("no STOPPING report ({e}); log:\n{}", daemon.log())
    });
    let report = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(report.lines().any(|l| l == "STOPPING=1"), "{report}");
    let status = daemon.wait_timeout(DEADLINE).expect("daemon exits");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn systemd_analyze_verify_accepts_both_unit_files() {
    let sandbox = Sandbox::new();
    let units = sandbox.path().join("units");
    std::fs::create_dir(&units).unwrap();
    for name in ["fkq-cred.socket", "fkq-cred.service"] {
        let shipped =
            format!("{}/../systemd/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::copy(&shipped, units.join(name)).expect("copy unit");
    }
    // ExecStart is %h/.cargo/bin/fkq-credd, where `cargo install` puts the
    // daemon; verify checks that it exists, so it is installed there.
    let bin = sandbox.path().join("home/.cargo/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(binary("fkq-credd"), bin.join("fkq-credd"))
        .unwrap();

    let out = sandbox
        .program("systemd-analyze")
        .args(["verify", "--user"])
        .arg(units.join("fkq-cred.socket"))
        .arg(units.join("fkq-cred.service"))
        .output()
        .expect("systemd-analyze (package systemd) is installed");
    // Unknown or misspelt settings only warn; a warning fails this test.
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "no warnings");
}

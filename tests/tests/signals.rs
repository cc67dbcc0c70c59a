//! Signals, end to end: SIGTERM in the middle of a burst of requests,
//! SIGHUP after the config changed, SIGUSR1 to forget every secret.
#![cfg(unix)]

use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use fkq_cred_proto::exit;
use fkq_cred_tests::emulator::process::EmulatorProcess;
use fkq_cred_tests::emulator::DEFAULT_PASSWORD;
use fkq_cred_tests::harness::{code, stderr, stdout, Sandbox};

const DEADLINE: Duration = Duration::from_secs(60);

/// A profile table that logs in through a password command.
fn with_command(name: &str, emulator: &EmulatorProcess) -> String {
    let command =
        format!("password_command = [\"printf\", \"{DEFAULT_PASSWORD}\\\\n\"]");
    Sandbox::profile_toml(name, emulator, &command)
}

fn get(sandbox: &Sandbox, profile: &str) -> Output {
    sandbox.cli(&["--profile", profile, "get"])
}

fn token(sandbox: &Sandbox, profile: &str) -> String {
    let out = get(sandbox, profile);
    assert!(out.status.success(), "{profile}: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn sigterm_during_a_burst_of_1000_gets_truncates_no_reply() {
    const TOTAL: usize = 1000;
    const WORKERS: usize = 16;
    let sandbox = Arc::new(Sandbox::new());
    let emulator = sandbox.start_emulator(&[]);
    let mut daemon = sandbox.logged_in(&emulator, "");
    let expected = token(&sandbox, fkq_cred_tests::harness::PROFILE);

    let next = Arc::new(AtomicUsize::new(0));
    let outputs = Arc::new(Mutex::new(Vec::with_capacity(TOTAL)));
    let (done_tx, done_rx) = mpsc::channel();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (sandbox, next, outputs, done_tx) = (
                sandbox.clone(),
                next.clone(),
                outputs.clone(),
                done_tx.clone(),
            );
            std::thread::spawn(move || {
                while next.fetch_add(1, Ordering::SeqCst) < TOTAL {
                    let out = sandbox.cli(&["get"]);
                    outputs.lock().unwrap().push(out);
                    let _ = done_tx.send(());
                }
            })
        })
        .collect();
    // Stop the daemon once a fifth of the burst has been answered.
    for _ in 0..TOTAL / 5 {
        done_rx.recv_timeout(DEADLINE).expect("gets complete");
    }
    daemon.signal(libc::SIGTERM);
    for worker in workers {
        worker.join().unwrap();
    }

    let outputs = outputs.lock().unwrap();
    assert_eq!(outputs.len(), TOTAL);
    let mut served = 0;
    for out in outputs.iter() {
        if out.status.success() {
            assert_eq!(stdout(out), expected, "a whole token, or nothing");
            served += 1;
            continue;
        }
        let err = stderr(out);
        assert_eq!(code(out), i32::from(exit::DAEMON_UNREACHABLE), "{err}");
        assert_eq!(stdout(out), "", "nothing on stdout when failing");
        assert!(err.starts_with("fkq-cred: ") && err.lines().count() == 1);
    }
    assert!(served >= TOTAL / 5, "{served} served");
    let status = daemon.wait_timeout(DEADLINE).expect("daemon exits");
    assert_eq!(status.code(), Some(0));
    assert!(!sandbox.socket().exists(), "socket removed");
}

#[test]
fn sighup_keeps_tokens_of_unchanged_profiles_and_drops_removed_ones() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let keep = with_command("keep", &emulator);
    let drop = with_command("drop", &emulator);
    sandbox.write_config(&format!("default_profile = \"keep\"\n{keep}{drop}"));
    let daemon = sandbox.start_daemon();
    let kept = token(&sandbox, "keep");
    token(&sandbox, "drop");
    assert_eq!(emulator.counters().unwrap().login, 2);

    let fresh = with_command("fresh", &emulator);
    sandbox.write_config(&format!("default_profile = \"keep\"\n{keep}{fresh}"));
    daemon.signal(libc::SIGHUP);
    daemon.wait_for_log("configuration reloaded", 1, DEADLINE);

    assert_eq!(token(&sandbox, "keep"), kept, "the session survived");
    assert_eq!(emulator.counters().unwrap().login, 2, "no new login");
    let out = get(&sandbox, "drop");
    assert_eq!(code(&out), i32::from(exit::CONFIG), "{}", stderr(&out));
    assert!(stderr(&out).contains("\"drop\""), "{}", stderr(&out));
    token(&sandbox, "fresh");
}

#[test]
fn sigusr1_forgets_tokens_and_passwords_and_only_a_command_logs_in_again() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let command = with_command("command", &emulator);
    let typed =
        Sandbox::profile_toml("typed", &emulator, "remember_password = true");
    sandbox.write_config(&format!(
        "default_profile = \"command\"\n{command}{typed}"
    ));
    let daemon = sandbox.start_daemon();
    let out = sandbox.cli_with_stdin(
        &["--profile", "typed", "login", "--password-stdin"],
        &format!("{DEFAULT_PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let before = token(&sandbox, "command");
    token(&sandbox, "typed");
    assert_eq!(emulator.counters().unwrap().login, 2);

    daemon.signal(libc::SIGUSR1);
    daemon.wait_for_log("tokens forgotten", 2, DEADLINE);

    let after = token(&sandbox, "command");
    assert_ne!(after, before, "a new login through the password command");
    assert_eq!(emulator.counters().unwrap().login, 3);
    let out = get(&sandbox, "typed");
    assert_eq!(code(&out), i32::from(exit::LOGIN_REQUIRED), "{}", stderr(&out));
    assert!(stderr(&out).contains("fkq-cred login"), "{}", stderr(&out));
    assert_eq!(emulator.counters().unwrap().login, 3, "the password is gone");
}

#[test]
fn a_daemon_whose_terminal_is_gone_keeps_serving_and_obeys_sigterm() {
    use std::io::{BufRead, BufReader};
    let sandbox = Sandbox::new();
    let mut child = sandbox
        .command("fkq-credd")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start fkq-credd");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let ready = lines.next().expect("a first line").unwrap();
    assert!(ready.contains(" ready "), "{ready}");
    // What a closed terminal leaves: every later log line fails to write.
    drop(lines);

    // Each of these logs a line that cannot be written.
    child_signal(&child, libc::SIGHUP);
    child_signal(&child, libc::SIGUSR1);
    let out = sandbox.cli(&["profiles"]);
    assert!(out.status.success(), "{}", stderr(&out));

    child_signal(&child, libc::SIGTERM);
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let _ = done_tx.send(());
        status
    });
    if done_rx.recv_timeout(DEADLINE).is_err() {
        // SAFETY: our child, not yet reaped (the waiter still waits).
        unsafe { libc::kill(pid, libc::SIGKILL) };
        panic!("the daemon ignored SIGTERM once its stderr was gone");
    }
    let status = waiter.join().unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
}

fn child_signal(child: &std::process::Child, signal: i32) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill with the pid of our own child and a valid signal.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

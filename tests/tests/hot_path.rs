//! The hot path of `fkq-cred get` end to end: the start-up the client does
//! itself (see client/src/start.rs) and the parse that skips clap (see
//! client/src/fast.rs) must behave exactly as the ordinary path does.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fkq_cred_proto::exit;
use fkq_cred_tests::harness::{code, stderr, stdout, Sandbox, PROFILE};

/// How long a client may take before the test calls it hung.
const HANG: Duration = Duration::from_secs(20);

/// `sh -c SCRIPT` with the sandbox's environment; `$0` is fkq-cred. A
/// script still running after [`HANG`] is killed.
fn shell(sandbox: &Sandbox, script: &str) -> Output {
    let client = sandbox.command("fkq-cred");
    let mut sh = Command::new("sh");
    for (key, value) in client.get_envs() {
        match value {
            Some(value) => sh.env(key, value),
            None => sh.env_remove(key),
        };
    }
    let mut child = sh
        .arg("-c")
        .arg(script)
        .arg(client.get_program())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sh");
    let deadline = Instant::now() + HANG;
    // std has no wait with a timeout; a short poll bounds a hang.
    while child.try_wait().expect("wait for sh").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("collect sh")
}

#[test]
fn with_stdin_closed_login_reads_no_password_from_the_daemon_socket() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    sandbox.write_config(&Sandbox::profile_toml(PROFILE, &emulator, ""));
    let _daemon = sandbox.start_daemon();

    // With descriptor 0 closed, the socket would be opened as descriptor 0
    // and the password read from it, unless start-up first reopens 0 on
    // /dev/null; then stdin is simply empty.
    let out = shell(&sandbox, r#"exec "$0" login --password-stdin <&-"#);
    assert_eq!(code(&out), i32::from(exit::USAGE), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("line on stdin is empty"),
        "{}",
        stderr(&out)
    );
}

#[cfg(unix)]
#[test]
fn get_into_a_pipe_nobody_reads_exits_zero_instead_of_dying_of_sigpipe() {
    use std::os::fd::{FromRawFd, OwnedFd};

    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let _daemon = sandbox.logged_in(&emulator, "");

    let mut fds = [0; 2];
    // SAFETY: pipe fills the two-element array it is given.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just created and are owned here.
    let (reader, writer) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(reader);
    let out = sandbox
        .command("fkq-cred")
        .arg("get")
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .expect("run fkq-cred");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn the_fast_path_and_clap_give_the_same_token_and_the_same_errors() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let _daemon = sandbox.logged_in(&emulator, "");

    // `-pNAME` is left to clap; `-p NAME` takes the fast path.
    let attached = format!("-p{PROFILE}");
    let fast = sandbox.cli(&["get", "-p", PROFILE]);
    let clap = sandbox.cli(&["get", &attached]);
    assert_eq!(code(&fast), 0, "{}", stderr(&fast));
    assert_eq!(stdout(&fast), stdout(&clap));
    assert_eq!(stderr(&fast), stderr(&clap));

    let fast = sandbox.cli(&["header", "-p", PROFILE]);
    let clap = sandbox.cli(&["header", &attached]);
    assert!(stdout(&fast).starts_with("Authorization: Bearer "));
    assert_eq!(stdout(&fast), stdout(&clap));

    let fast = sandbox.cli(&["get", "-p", "nope"]);
    let clap = sandbox.cli(&["get", "-pnope"]);
    assert_eq!(code(&fast), i32::from(exit::CONFIG));
    assert_eq!(code(&fast), code(&clap));
    assert_eq!(stderr(&fast), stderr(&clap));
    assert!(stderr(&fast).starts_with("fkq-cred: "), "{}", stderr(&fast));
}

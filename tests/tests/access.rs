//! Who can reach the daemon: the socket's directory and file modes, the
//! refusal of directories others control, and the peer check that turns
//! away every other user even when the socket is within their reach.
//!
//! Tests that play another user need root (to switch to uid 65534 with
//! `setpriv`, or to chown). CI runs as root, so there they always run;
//! unprivileged, each prints "SKIPPED ... needs root" and returns.

use std::os::unix::process::CommandExt;
use std::path::Path;

use fkq_cred_proto::exit;
use fkq_cred_tests::harness::{code, spawn_daemon, stderr, stdout, Sandbox};
use fkq_cred_tests::other_user::{
    as_nobody, give_to_nobody, set_mode, skip_unless_root, Staged, NOBODY,
};

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// A sandbox with a logged-in daemon on its default socket; returns the
/// token the owner gets.
fn owner_token(sandbox: &Sandbox) -> String {
    let out = sandbox.cli(&["get"]);
    assert!(out.status.success(), "owner's get failed: {}", stderr(&out));
    stdout(&out).trim_end().to_owned()
}

/// Runs `fkq-cred ARGS` as uid 65534 with the sandbox's environment.
fn nobody_cli(
    sandbox: &Sandbox,
    staged: &Staged,
    args: &[&str],
) -> std::process::Output {
    let mut like = sandbox.command("fkq-cred");
    like.args(args);
    as_nobody(&staged.path("fkq-cred"), Some(&like))
        .output()
        .expect("run fkq-cred through setpriv")
}

#[test]
fn another_user_cannot_even_reach_the_socket_in_its_private_directory() {
    if skip_unless_root(
        "another_user_cannot_even_reach_the_socket",
        "to switch users",
    ) {
        return;
    }
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let _daemon = sandbox.logged_in(&emulator, "");
    let token = owner_token(&sandbox);
    let staged = Staged::binaries(&["fkq-cred"]);

    // The same environment as the owner: the runtime directory is not
    // theirs, so the client refuses before sending anything.
    let out = nobody_cli(&sandbox, &staged, &["get"]);
    assert_ne!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "");

    // Aimed straight at the socket: the 0700 directory stops the connect.
    let socket = sandbox.socket();
    let socket = socket.to_str().expect("sandbox path is UTF-8");
    let out = nobody_cli(&sandbox, &staged, &["get", "--socket", socket]);
    assert_eq!(code(&out), i32::from(exit::DAEMON_UNREACHABLE));
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("ermission denied"), "{}", stderr(&out));

    assert_eq!(owner_token(&sandbox), token, "the owner is still served");
}

#[test]
fn another_user_who_reaches_the_socket_gets_no_byte_and_the_owner_is_served() {
    if skip_unless_root(
        "another_user_who_reaches_the_socket",
        "to switch users",
    ) {
        return;
    }
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    sandbox.write_config(&Sandbox::profile_toml(
        fkq_cred_tests::harness::PROFILE,
        &emulator,
        "",
    ));
    // A socket in a directory anyone may traverse (0711), as a user who
    // chose an odd --socket might have it.
    let open_dir = tempfile::Builder::new()
        .prefix("fkq-open-")
        .tempdir()
        .expect("create the open directory");
    set_mode(open_dir.path(), 0o711);
    let socket = open_dir.path().join("socket");
    let socket_arg = socket.to_str().expect("temp path is UTF-8");
    let daemon = sandbox.start_daemon_with(&["--socket", socket_arg], &[]);
    let login = sandbox.cli_with_stdin(
        &["login", "--password-stdin", "--socket", socket_arg],
        &format!("{}\n", fkq_cred_tests::emulator::DEFAULT_PASSWORD),
    );
    assert!(login.status.success(), "login: {}", stderr(&login));
    let owner_get = || {
        let out = sandbox.cli(&["get", "--socket", socket_arg]);
        assert!(out.status.success(), "owner's get: {}", stderr(&out));
        stdout(&out)
    };
    let token = owner_get();
    let staged = Staged::binaries(&["fkq-cred", "socket-probe"]);
    let probe = || {
        let out = as_nobody(&staged.path("socket-probe"), None)
            .arg(&socket)
            .output()
            .expect("run socket-probe through setpriv");
        stdout(&out)
    };

    // Layer one: the socket itself is 0600.
    assert_eq!(mode_of(&socket), 0o600);
    assert!(probe().contains("ermission denied"), "{}", probe());

    // Layer two: even with the socket opened to everyone, the peer check
    // turns uid 65534 away without a single byte.
    set_mode(&socket, 0o666);
    assert_eq!(probe().trim(), "received 0 bytes");
    let out = nobody_cli(&sandbox, &staged, &["get", "--socket", socket_arg]);
    assert_eq!(code(&out), i32::from(exit::DAEMON_UNREACHABLE));
    assert_eq!(stdout(&out), "", "another user got a token");

    let log = daemon.wait_for_log(
        "refused a connection from another user",
        1,
        std::time::Duration::from_secs(20),
    );
    let refusal = log
        .lines()
        .find(|l| l.contains("refused a connection from another user"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{log}"));
    assert!(refusal.contains(&format!("peer_uid=Some({NOBODY})")), "{refusal}");
    assert!(!log.contains(token.trim_end()), "the token reached the log");

    assert_eq!(owner_get(), token, "the owner is still served");
}

#[test]
fn socket_directory_and_socket_are_private_even_under_umask_000() {
    let sandbox = Sandbox::new();
    let explicit = sandbox.path().join("tmp/made/by/daemon/socket");
    let explicit = explicit.to_str().expect("sandbox path is UTF-8");
    for args in [&[][..], &["--socket", explicit][..]] {
        let mut command = sandbox.command("fkq-credd");
        command.args(args);
        // SAFETY: umask is async-signal-safe and touches only the child.
        unsafe {
            command.pre_exec(|| {
                libc::umask(0);
                Ok(())
            });
        }
        let daemon = spawn_daemon(command);
        let socket = match args {
            [] => sandbox.socket(),
            _ => explicit.into(),
        };
        assert_eq!(mode_of(&socket), 0o600, "{}", socket.display());
        let dir = socket.parent().expect("the socket has a directory");
        assert_eq!(mode_of(dir), 0o700, "{}", dir.display());
        if !args.is_empty() {
            for made in ["tmp/made", "tmp/made/by"] {
                let made = sandbox.path().join(made);
                assert_eq!(mode_of(&made), 0o700, "{}", made.display());
            }
        }
        drop(daemon);
    }
}

/// Starts a daemon that must refuse to start; returns its stderr.
fn daemon_refuses(sandbox: &Sandbox) -> String {
    let out = sandbox.command("fkq-credd").output().expect("run fkq-credd");
    assert_eq!(code(&out), i32::from(exit::FAILURE), "{}", stderr(&out));
    stderr(&out)
}

/// The first command between backticks after "fix: ", as a shell
/// command; `sudo` dropped, since the tests that need it run as root.
fn fix_in(message: &str) -> String {
    let after = message
        .split_once("fix: ")
        .and_then(|(_, after)| after.split('`').nth(1))
        .unwrap_or_else(|| panic!("no fix in: {message}"));
    after.trim_start_matches("sudo ").to_owned()
}

/// Checks that daemon and client both refuse the sandbox's socket
/// directory with `problem` and a fix naming `command`, then applies the
/// fix and shows the daemon starts.
fn refused_by_both_then_fixed(sandbox: &Sandbox, problem: &str, command: &str) {
    let dir = sandbox.path().join("runtime/fkq-cred");
    let shown = dir.display().to_string();
    let message = daemon_refuses(sandbox);
    for needle in [problem, command, shown.as_str()] {
        assert!(message.contains(needle), "{needle:?} missing: {message}");
    }

    let out = sandbox.cli(&["get"]);
    assert_eq!(code(&out), i32::from(exit::DAEMON_UNREACHABLE));
    let client = stderr(&out);
    for needle in [problem, command, shown.as_str()] {
        assert!(client.contains(needle), "{needle:?} missing: {client}");
    }

    let fix = fix_in(&message);
    let status = std::process::Command::new("sh")
        .args(["-c", &fix])
        .status()
        .expect("run the fix");
    assert!(status.success(), "the fix {fix:?} failed");
    let _daemon = sandbox.start_daemon();
    assert_eq!(mode_of(&dir), 0o700);
}

#[test]
fn a_loose_socket_directory_is_refused_by_daemon_and_client_with_the_fix() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("runtime/fkq-cred");
    std::fs::create_dir(&dir).unwrap();
    set_mode(&dir, 0o755);
    refused_by_both_then_fixed(&sandbox, "its mode is 755", "chmod 700");
}

#[test]
fn a_symlinked_socket_directory_is_refused_by_daemon_and_client_with_the_fix() {
    let sandbox = Sandbox::new();
    let elsewhere = sandbox.path().join("tmp/elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    set_mode(&elsewhere, 0o700);
    let dir = sandbox.path().join("runtime/fkq-cred");
    std::os::unix::fs::symlink(&elsewhere, &dir).unwrap();
    refused_by_both_then_fixed(&sandbox, "symbolic link", "rm ");
}

#[test]
fn a_foreign_socket_directory_is_refused_by_daemon_and_client_with_the_fix() {
    if skip_unless_root("a_foreign_socket_directory_is_refused", "to chown") {
        return;
    }
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("runtime/fkq-cred");
    std::fs::create_dir(&dir).unwrap();
    set_mode(&dir, 0o700);
    give_to_nobody(&dir);
    refused_by_both_then_fixed(
        &sandbox,
        &format!("belongs to uid {NOBODY}"),
        "chown",
    );
}

/// The client's side of the peer check: a socket answered by another user
/// gets no greeting and no request, so a look-alike daemon in a shared
/// directory collects no password and hands out no token.
#[test]
fn the_client_refuses_a_socket_served_by_another_user() {
    if skip_unless_root(
        "the_client_refuses_a_socket_served_by_another_user",
        "to run a daemon as another user",
    ) {
        return;
    }
    let sandbox = Sandbox::new();
    let foreign_dir = tempfile::Builder::new()
        .prefix("fkq-foreign-")
        .tempdir()
        .expect("create the foreign directory");
    give_to_nobody(foreign_dir.path());
    set_mode(foreign_dir.path(), 0o755);
    let socket = foreign_dir.path().join("socket");
    let socket_arg = socket.to_str().expect("temp path is UTF-8");
    let staged = Staged::binaries(&["fkq-credd"]);
    let mut like = sandbox.command("fkq-credd");
    like.args(["--socket", socket_arg, "--config", "/nonexistent/fkq.toml"]);
    let daemon =
        spawn_daemon(as_nobody(&staged.path("fkq-credd"), Some(&like)));

    // Root could connect to anything; the check is on who answers.
    let out = sandbox.cli_with_stdin(
        &["login", "--password-stdin", "--socket", socket_arg],
        "sentinel-password-for-a-foreign-daemon\n",
    );
    assert_eq!(code(&out), i32::from(exit::DAEMON_UNREACHABLE));
    let err = stderr(&out);
    assert!(err.contains(&format!("served by uid {NOBODY}")), "{err}");
    let out = sandbox.cli(&["get", "--socket", socket_arg]);
    assert_eq!(code(&out), i32::from(exit::DAEMON_UNREACHABLE));
    assert_eq!(stdout(&out), "");
    // The foreign daemon saw connections but never a request.
    assert!(!daemon.log().contains("sentinel-password"), "{}", daemon.log());
}

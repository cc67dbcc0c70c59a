//! Auto-start, end to end: scripts that never think about the daemon get a
//! token, and the daemon they start behaves as a good citizen: detached,
//! alone, and replaceable after a crash.
#![cfg(target_os = "linux")]

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fkq_cred_proto::exit;
use fkq_cred_tests::daemons::{Reaper, Watched};
use fkq_cred_tests::emulator::process::EmulatorProcess;
use fkq_cred_tests::emulator::DEFAULT_PASSWORD;
use fkq_cred_tests::harness::{code, stderr, stdout, Sandbox, PROFILE};

/// A generous deadline against a hang; a hang is the failure these tests
/// look for.
const DEADLINE: Duration = Duration::from_secs(30);

/// Configures a profile whose password comes from a command, so that the
/// very first `get` can log in unattended.
fn configure(sandbox: &Sandbox, emulator: &EmulatorProcess, extra: &str) {
    let command =
        format!("password_command = [\"printf\", \"{DEFAULT_PASSWORD}\\\\n\"]");
    let profile = Sandbox::profile_toml(PROFILE, emulator, &command);
    sandbox.write_config(&format!("{extra}\n{profile}"));
}

fn sites_status(emulator: &EmulatorProcess, token: &str) -> u16 {
    let url = format!("{}sites", emulator.api_url());
    emulator
        .client()
        .get(&url, Some(&format!("Bearer {token}")))
        .expect("GET /sites")
        .status
}

/// A pipe whose write end the test hands to a child.
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: a valid array of two ints; O_CLOEXEC keeps the ends out of
    // every other child this multi-threaded test binary starts.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2");
    // SAFETY: the kernel just returned these descriptors to us.
    unsafe {
        use std::os::fd::FromRawFd;
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    }
}

/// Reads `fd` to end of file on a thread; the receiver yields the bytes.
fn read_to_eof(fd: OwnedFd) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = std::fs::File::from(fd).read_to_end(&mut bytes);
        let _ = tx.send(bytes);
    });
    rx
}

#[test]
fn captured_get_without_a_daemon_returns_the_token_and_holds_no_pipe() {
    let sandbox = Sandbox::new();
    let mut reaper = Reaper::new(&sandbox);
    let emulator = sandbox.start_emulator(&[]);
    configure(&sandbox, &emulator, "");

    // As a script writes it, under a shell that waits for the end of file
    // of `$(...)`. One more pipe is passed down as descriptor 5 without
    // close-on-exec, as a careless parent would: the daemon must keep
    // none of them.
    let (extra_read, extra_write) = pipe();
    let extra_fd = extra_write.as_raw_fd();
    let script = format!(
        "out=$('{}' get) && printf '%s' \"$out\"",
        fkq_cred_tests::harness::binary("fkq-cred").display()
    );
    let mut shell = sandbox.allow_autostart(sandbox.program("sh"));
    shell.args(["-c", &script]).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: dup2 is async-signal-safe; it leaves the copy inheritable.
    unsafe {
        shell.pre_exec(move || {
            if libc::dup2(extra_fd, 5) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child: Child = shell.spawn().expect("start sh");
    drop(extra_write);
    let out = read_to_eof(child.stdout.take().expect("piped").into());
    let err = read_to_eof(child.stderr.take().expect("piped").into());
    let extra = read_to_eof(extra_read);

    let token = out.recv_timeout(DEADLINE).expect("stdout reaches end of file");
    let err = err.recv_timeout(DEADLINE).expect("stderr reaches end of file");
    extra.recv_timeout(DEADLINE).expect("the extra pipe reaches end of file");
    let status = child.wait().expect("wait sh");
    let token = String::from_utf8(token).expect("UTF-8");
    assert!(status.success(), "{}", String::from_utf8_lossy(&err));
    assert_eq!(sites_status(&emulator, &token), 200, "{token:?}");

    let daemon = reaper.find();
    let pid = daemon.pid();
    assert_eq!(daemon.session().unwrap(), pid, "a session of its own");
    let ours = fkq_cred_tests::daemons::stat_field(std::process::id(), 6);
    assert_ne!(Some(pid), ours.ok());
    // Root (as in CI) can list an undumpable process's descriptors; the
    // end-of-file checks above hold for any user.
    if let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for entry in entries.flatten() {
            let target = std::fs::read_link(entry.path()).unwrap_or_default();
            let target = target.display().to_string();
            assert!(!target.starts_with("pipe:"), "daemon holds {target}");
        }
        let stdin = std::fs::read_link(format!("/proc/{pid}/fd/0")).unwrap();
        assert_eq!(stdin, std::path::Path::new("/dev/null"));
    }
    let log = std::fs::read_to_string(sandbox.daemon_log_file()).unwrap();
    assert!(log.contains("started=\"by fkq-cred\""), "{log}");
}

#[test]
fn twenty_simultaneous_first_calls_start_one_daemon_and_log_in_once() {
    let sandbox = Sandbox::new();
    let _reaper = Reaper::new(&sandbox);
    let emulator = sandbox.start_emulator(&[]);
    configure(&sandbox, &emulator, "");

    let children: Vec<Child> = (0..20)
        .map(|_| {
            sandbox
                .autostart_command()
                .arg("get")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn get")
        })
        .collect();
    let outputs: Vec<_> =
        children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();

    for out in &outputs {
        assert!(out.status.success(), "{}: {}", code(out), stderr(out));
    }
    let first = stdout(&outputs[0]);
    assert!(outputs.iter().all(|o| stdout(o) == first), "one token for all");
    assert_eq!(emulator.counters().unwrap().login, 1);
    // A daemon that got the socket logs "ready"; one that lost the race
    // would log "already running".
    let log = std::fs::read_to_string(sandbox.daemon_log_file()).unwrap();
    assert_eq!(log.matches(" ready ").count(), 1, "{log}");
    assert!(!log.contains("already running"), "{log}");
}

#[test]
fn after_kill_9_the_next_get_replaces_the_stale_socket() {
    let sandbox = Sandbox::new();
    let mut reaper = Reaper::new(&sandbox);
    let emulator = sandbox.start_emulator(&[]);
    configure(&sandbox, &emulator, "");
    assert!(sandbox.autostart_cli(&["get"]).status.success());
    let first_pid = {
        let first = reaper.find();
        first.signal(libc::SIGKILL).unwrap();
        assert!(first.wait_exit(DEADLINE), "SIGKILL ends it");
        first.pid()
    };
    assert!(sandbox.socket().exists(), "a killed daemon leaves its socket");

    let out = sandbox.autostart_cli(&["get"]);
    assert!(out.status.success(), "{}: {}", code(&out), stderr(&out));
    assert_eq!(sites_status(&emulator, stdout(&out).trim_end()), 200);
    let second = reaper.find();
    assert_ne!(second.pid(), first_pid);
    let log = std::fs::read_to_string(sandbox.daemon_log_file()).unwrap();
    assert!(log.contains("replacing the stale socket"), "{log}");
}

#[test]
fn a_regular_file_at_the_socket_path_survives_an_auto_start() {
    let sandbox = Sandbox::new();
    let _reaper = Reaper::new(&sandbox);
    let path = sandbox.path().join("not-a-socket");
    std::fs::write(&path, "precious").unwrap();
    let socket = path.to_str().unwrap();
    let out = sandbox.autostart_cli(&["--socket", socket, "get"]);
    assert_eq!(code(&out), i32::from(exit::FAILURE), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("not a socket") && err.contains(socket), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

#[test]
fn the_environment_or_the_config_turns_auto_start_off() {
    let sandbox = Sandbox::new();
    let mut reaper = Reaper::new(&sandbox);
    let emulator = sandbox.start_emulator(&[]);

    configure(&sandbox, &emulator, "");
    let out = sandbox.cli(&["get"]); // FKQ_CRED_NO_AUTOSTART=1
    assert_eq!(code(&out), i32::from(exit::DAEMON_UNREACHABLE));
    assert!(stderr(&out).contains("FKQ_CRED_NO_AUTOSTART"), "{}", stderr(&out));
    assert!(!sandbox.socket().exists());

    configure(&sandbox, &emulator, "autostart = false");
    let out = sandbox.autostart_cli(&["get"]);
    assert_eq!(code(&out), i32::from(exit::DAEMON_UNREACHABLE));
    let err = stderr(&out);
    assert!(err.contains("autostart = false"), "{err}");
    assert!(err.contains("fkq-cred daemon start"), "{err}");
    assert!(!sandbox.socket().exists());

    // Asking for it explicitly still works.
    let out = sandbox.cli(&["daemon", "start"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("is running"), "{}", stdout(&out));
    reaper.find();
    assert!(sandbox.cli(&["get"]).status.success());
}

#[test]
fn an_installed_systemd_unit_keeps_the_client_from_starting_a_daemon() {
    let sandbox = Sandbox::new();
    let _reaper = Reaper::new(&sandbox);
    let units = sandbox.path().join("config/systemd/user");
    std::fs::create_dir_all(&units).unwrap();
    let unit = include_str!("../../systemd/fkq-cred.socket");
    std::fs::write(units.join("fkq-cred.socket"), unit).unwrap();

    let out = sandbox.autostart_cli(&["get"]);
    assert_eq!(code(&out), i32::from(exit::DAEMON_UNREACHABLE));
    let err = stderr(&out);
    assert!(err.contains("systemctl --user start fkq-cred.socket"), "{err}");
    assert!(!sandbox.daemon_log_file().exists(), "no daemon was started");

    // A masked unit is not in charge.
    std::fs::remove_file(units.join("fkq-cred.socket")).unwrap();
    std::os::unix::fs::symlink("/dev/null", units.join("fkq-cred.socket"))
        .unwrap();
    let out = sandbox.autostart_cli(&["profiles"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn idle_exit_stops_an_auto_started_daemon_though_status_is_asked() {
    let sandbox = Sandbox::new();
    let mut reaper = Reaper::new(&sandbox);
    let emulator = sandbox.start_emulator(&[]);
    configure(&sandbox, &emulator, "idle_exit = \"3s\"");
    assert!(sandbox.autostart_cli(&["get"]).status.success());
    let pid = reaper.find().pid();
    let daemon = Watched::attach(pid).unwrap();

    // Keep looking at it: if looking counted as use, it would never go.
    let mut looks = 0;
    while daemon.is_running() && looks < 20 {
        sandbox.cli(&["daemon", "status"]);
        sandbox.cli(&["status"]);
        looks += 1;
        daemon.wait_exit(Duration::from_millis(500));
    }
    assert!(!daemon.is_running(), "still running after {looks} looks");
    let log = std::fs::read_to_string(sandbox.daemon_log_file()).unwrap();
    assert!(log.contains("idle_exit"), "{log}");
}

#[test]
fn a_get_queued_at_a_daemon_that_stops_starts_a_fresh_one() {
    use std::os::unix::fs::DirBuilderExt;
    let sandbox = Sandbox::new();
    let _reaper = Reaper::new(&sandbox);
    let emulator = sandbox.start_emulator(&[]);
    configure(&sandbox, &emulator, "");
    // A daemon at the moment of its idle exit: the connection was queued,
    // then its socket goes and the connection closes unanswered.
    let socket = sandbox.socket();
    let dir = socket.parent().unwrap();
    std::fs::DirBuilder::new().mode(0o700).create(dir).unwrap();
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let dying = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        std::fs::remove_file(&socket).unwrap();
        drop(listener);
        drop(conn);
    });

    let out = sandbox.autostart_cli(&["get"]);
    dying.join().unwrap();
    assert!(out.status.success(), "{}: {}", code(&out), stderr(&out));
    assert_eq!(sites_status(&emulator, stdout(&out).trim_end()), 200);
}

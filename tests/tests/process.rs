//! The daemon's protections of its own memory: no core dumps, not
//! dumpable (so no ptrace and no /proc peeking by other processes of its
//! user), and, when configured, memory locked out of swap.
//!
//! Tests that play another user need root (to switch to uid 65534 with
//! `setpriv`). CI runs as root, so there they always run; unprivileged,
//! each prints "SKIPPED ... needs root" and returns.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use fkq_cred_proto::exit;
use fkq_cred_tests::harness::{code, spawn_daemon, stderr, Sandbox};
use fkq_cred_tests::other_user::{
    as_nobody, give_to_nobody, owner_of, set_mode, skip_unless_root, Staged,
    NOBODY,
};

/// One line of `/proc/<pid>/status`, without its label.
fn status_field(pid: u32, label: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("read /proc/<pid>/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label} in status"))
        .trim()
        .to_owned()
}

/// Sets a resource limit of the child before it runs.
fn with_limit(command: &mut Command, resource: u32, soft: u64, hard: u64) {
    let limit = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: setrlimit is async-signal-safe and touches only the child.
    unsafe {
        command.pre_exec(move || {
            if libc::setrlimit(resource as _, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

#[test]
fn the_daemon_switches_core_dumps_off() {
    let sandbox = Sandbox::new();
    let mut command = sandbox.command("fkq-credd");
    // Start it allowed to dump, as many shells do, so the zero below is
    // the daemon's own doing. 1 MiB fits under any hard limit.
    let mut current = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a valid pointer to a local rlimit.
    unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut current) };
    let allowed = current.rlim_max.min(1 << 20);
    if allowed > 0 {
        with_limit(&mut command, libc::RLIMIT_CORE as _, allowed, allowed);
    } else {
        eprintln!("note: the hard core limit here is already 0");
    }
    let daemon = spawn_daemon(command);

    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", daemon.pid()))
            .expect("read /proc/<pid>/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("limits lists the core size");
    let values: Vec<&str> = line.split_whitespace().skip(4).take(2).collect();
    assert_eq!(values, ["0", "0"], "{line}");
}

/// A sandbox whose directories uid 65534 owns, so a daemon can run there
/// as that user; its root is opened for traversal only.
fn sandbox_for_nobody() -> Sandbox {
    let sandbox = Sandbox::new();
    set_mode(sandbox.path(), 0o711);
    for dir in ["config", "config/fkq-cred", "runtime", "state", "home", "tmp"]
    {
        give_to_nobody(&sandbox.path().join(dir));
    }
    sandbox
}

/// A command of uid 65534 reading `/proc/<pid>/environ`.
fn nobody_reads_environ(pid: u32) -> bool {
    Command::new("setpriv")
        .args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}")])
        .args(["--clear-groups", "--", "cat", &format!("/proc/{pid}/environ")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run cat through setpriv")
        .success()
}

/// A plain process of uid 65534, killed on drop: the control case.
struct Sleeper(Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_daemon_is_not_dumpable_so_its_own_user_cannot_read_it() {
    if skip_unless_root("the_daemon_is_not_dumpable", "to switch users") {
        return;
    }
    let sandbox = sandbox_for_nobody();
    let staged = Staged::binaries(&["fkq-credd"]);
    let like = sandbox.command("fkq-credd");
    let daemon =
        spawn_daemon(as_nobody(&staged.path("fkq-credd"), Some(&like)));
    let pid = daemon.pid();
    assert!(
        status_field(pid, "Uid:").starts_with(&NOBODY.to_string()),
        "the daemon runs as {NOBODY}"
    );

    // A dumpable process of the same user, for comparison. Its first line
    // says it runs: by then setpriv has switched to the user.
    let mut sleeper = Sleeper(
        Command::new("setpriv")
            .args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}")])
            .args([
                "--clear-groups",
                "--",
                "sh",
                "-c",
                "echo up; exec sleep 600",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start sleep through setpriv"),
    );
    let stdout = sleeper.0.stdout.take().expect("stdout is piped");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read the up line");
    assert_eq!(line, "up\n");
    let control = sleeper.0.id();
    let proc_of = |pid: u32| format!("/proc/{pid}/status");
    assert_eq!(owner_of(proc_of(control).as_ref()), NOBODY);
    assert!(nobody_reads_environ(control), "the control is readable");

    // The kernel hands an undumpable process's /proc entries to root.
    assert_eq!(owner_of(proc_of(pid).as_ref()), 0, "the daemon is dumpable");
    assert!(
        !nobody_reads_environ(pid),
        "another process of the daemon's user read its environment"
    );
}

fn lock_config(sandbox: &Sandbox) {
    sandbox.write_config("lock_memory = true\n");
    set_mode(&sandbox.config_file(), 0o644);
}

#[test]
fn lock_memory_locks_the_daemons_memory() {
    if skip_unless_root(
        "lock_memory_locks_the_daemons_memory",
        "for CAP_IPC_LOCK",
    ) {
        return;
    }
    let sandbox = Sandbox::new();
    let unlocked = sandbox.start_daemon();
    assert_eq!(status_field(unlocked.pid(), "VmLck:"), "0 kB");
    drop(unlocked);

    lock_config(&sandbox);
    let daemon = sandbox.start_daemon();
    let locked = status_field(daemon.pid(), "VmLck:");
    let kib: u64 = locked.trim_end_matches(" kB").parse().expect("VmLck");
    assert!(kib > 0, "VmLck: {locked}");
    assert!(daemon.log().contains("memory locked"), "{}", daemon.log());
}

#[test]
fn lock_memory_refuses_to_start_under_a_finite_locked_memory_limit() {
    if skip_unless_root("lock_memory_refuses_to_start", "to switch users") {
        return;
    }
    let sandbox = sandbox_for_nobody();
    lock_config(&sandbox);
    let staged = Staged::binaries(&["fkq-credd"]);
    let like = sandbox.command("fkq-credd");
    let mut command = as_nobody(&staged.path("fkq-credd"), Some(&like));
    with_limit(&mut command, libc::RLIMIT_MEMLOCK as _, 64 << 10, 64 << 10);
    let out = command.output().expect("run fkq-credd through setpriv");

    assert_eq!(code(&out), i32::from(exit::FAILURE), "{}", stderr(&out));
    let err = stderr(&out);
    for needle in [
        "RLIMIT_MEMLOCK",
        "64 KiB",
        "LimitMEMLOCK=infinity",
        "lock_memory = false",
    ] {
        assert!(err.contains(needle), "{needle:?} missing: {err}");
    }
}

//! End-to-end plumbing: an isolated sandbox (its own XDG directories,
//! HOME, temp dir and socket), the real `fkq-credd` and `fkq-cred`
//! binaries run inside it, and the emulator they talk to.
//!
//! The binaries come from the cargo target directory the test runs from;
//! build them first (`cargo build --workspace`), as the README's test
//! command does.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::emulator::process::{emulator_binary, EmulatorProcess};

/// How long the daemon may take to log its ready line.
const DAEMON_READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The profile name the sandbox configures by default.
pub const PROFILE: &str = "emu";

/// Environment variables of the developer's shell that would leak into the
/// sandbox and point the binaries elsewhere.
const SCRUBBED_ENV: &[&str] = &[
    "FKQ_CRED_SOCKET",
    "FKQ_CRED_CONFIG",
    "FKQ_PROFILE",
    "FKQ_AUTH_URL",
    "FKQ_API_URL",
    "FKQ_USERNAME",
    "COGNITO_API_ENDPOINT_URL",
    "HTTP_API_URL",
    "USERNAME",
    "RUST_LOG",
    "XDG_CONFIG_HOME",
    "XDG_RUNTIME_DIR",
    "XDG_STATE_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
    "JOURNAL_STREAM",
    "FKQ_CRED_NO_AUTOSTART",
];

/// Turns auto-start off for every command a sandbox runs, so no test
/// leaves a detached daemon behind by accident; tests of auto-start use
/// [`Sandbox::autostart_cli`], which allows it.
const NO_AUTOSTART: (&str, &str) = ("FKQ_CRED_NO_AUTOSTART", "1");

/// Finds a binary of this workspace next to the running test executable.
pub fn binary(name: &str) -> PathBuf {
    let emulator = emulator_binary();
    let dir = emulator.parent().map(Path::to_path_buf).unwrap_or_default();
    dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// A private world for one test.
pub struct Sandbox {
    root: tempfile::TempDir,
}

impl Sandbox {
    /// Creates the sandbox directories (the runtime dir 0700, as a login
    /// manager would make it).
    pub fn new() -> Self {
        let root = tempfile::Builder::new()
            .prefix("fkq-e2e-")
            .tempdir()
            .expect("create sandbox dir");
        for dir in
            ["config/fkq-cred", "runtime", "state", "home", "tmp", "emulator"]
        {
            std::fs::create_dir_all(root.path().join(dir))
                .expect("create sandbox subdir");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let runtime = root.path().join("runtime");
            std::fs::set_permissions(
                runtime,
                std::fs::Permissions::from_mode(0o700),
            )
            .expect("chmod runtime dir");
        }
        Self { root }
    }

    /// The sandbox's root directory.
    pub fn path(&self) -> &Path {
        self.root.path()
    }

    /// The socket the binaries agree on inside this sandbox.
    pub fn socket(&self) -> PathBuf {
        self.path().join("runtime/fkq-cred/socket")
    }

    /// The config file path.
    pub fn config_file(&self) -> PathBuf {
        self.path().join("config/fkq-cred/config.toml")
    }

    /// Writes `config.toml`.
    pub fn write_config(&self, text: &str) {
        std::fs::write(self.config_file(), text).expect("write config");
    }

    /// A `[profiles.NAME]` table for `emulator`, plus `extra` lines.
    pub fn profile_toml(
        name: &str,
        emulator: &EmulatorProcess,
        extra: &str,
    ) -> String {
        let ca = emulator
            .ca_file()
            .map(|p| format!("ca_file = {:?}\n", p.display().to_string()))
            .unwrap_or_default();
        format!(
            "[profiles.{name}]\nauth_url = {:?}\napi_url = {:?}\nusername = {:?}\n{ca}{extra}\n",
            emulator.auth_url(),
            emulator.api_url(),
            crate::emulator::DEFAULT_USERNAME,
        )
    }

    /// A `[profiles.NAME]` table for the emulator's default user at the
    /// given URLs, trusting `ca_file` when given, plus `extra` lines.
    pub fn profile_at(
        name: &str,
        auth_url: &str,
        api_url: &str,
        ca_file: Option<&Path>,
        extra: &str,
    ) -> String {
        let ca = ca_file
            .map(|p| format!("ca_file = {:?}\n", p.display().to_string()))
            .unwrap_or_default();
        format!(
            "[profiles.{name}]\nauth_url = {auth_url:?}\napi_url = {api_url:?}\nusername = {:?}\n{ca}{extra}\n",
            crate::emulator::DEFAULT_USERNAME,
        )
    }

    /// Runs `fkq-cred login --password-stdin` with `password` as its line.
    pub fn login_with(&self, password: &str) -> Output {
        self.cli_with_stdin(
            &["login", "--password-stdin"],
            &format!("{password}\n"),
        )
    }

    /// A command for binary `name` with the sandbox's environment.
    pub fn command(&self, name: &str) -> Command {
        self.isolate(Command::new(binary(name)))
    }

    /// Any program (a shell, git) with the sandbox's environment, and the
    /// workspace's binaries first on its PATH, so that a script can call
    /// `fkq-cred` by name as a user's would.
    pub fn program(&self, program: &str) -> Command {
        let bin_dir = binary("fkq-cred")
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut path = vec![bin_dir];
        if let Some(old) = std::env::var_os("PATH") {
            path.extend(std::env::split_paths(&old));
        }
        let mut command = self.isolate(Command::new(program));
        command.env(
            "PATH",
            std::env::join_paths(path).expect("PATH entries join"),
        );
        command
    }

    fn isolate(&self, mut command: Command) -> Command {
        for var in SCRUBBED_ENV {
            command.env_remove(var);
        }
        let p = self.path();
        command
            .env("HOME", p.join("home"))
            .env("XDG_CONFIG_HOME", p.join("config"))
            .env("XDG_RUNTIME_DIR", p.join("runtime"))
            .env("XDG_STATE_HOME", p.join("state"))
            .env("TMPDIR", p.join("tmp"))
            .env("NO_COLOR", "1")
            .env(NO_AUTOSTART.0, NO_AUTOSTART.1)
            .stdin(Stdio::null());
        command
    }

    /// A `fkq-cred` command that may auto-start the daemon.
    pub fn autostart_command(&self) -> Command {
        self.allow_autostart(self.command("fkq-cred"))
    }

    /// Lets `command` and its children auto-start the daemon.
    pub fn allow_autostart(&self, mut command: Command) -> Command {
        command.env_remove(NO_AUTOSTART.0);
        command
    }

    /// Runs `fkq-cred ARGS`, allowed to auto-start the daemon.
    pub fn autostart_cli(&self, args: &[&str]) -> Output {
        self.autostart_command().args(args).output().expect("run fkq-cred")
    }

    /// The log file of daemons that `fkq-cred` starts.
    pub fn daemon_log_file(&self) -> PathBuf {
        self.path().join("state/fkq-cred/fkq-credd.log")
    }

    /// Runs `fkq-cred ARGS` with stdin closed and returns its output.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command("fkq-cred").args(args).output().expect("run fkq-cred")
    }

    /// Runs `fkq-cred ARGS` with `input` on stdin.
    pub fn cli_with_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .command("fkq-cred")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start fkq-cred");
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin.write_all(input.as_bytes()).expect("write stdin");
        drop(stdin);
        child.wait_with_output().expect("wait for fkq-cred")
    }

    /// Starts an emulator with `args`, its state kept in the sandbox.
    pub fn start_emulator(&self, args: &[&str]) -> EmulatorProcess {
        let dir = self.path().join("emulator");
        let dir = dir.to_str().expect("sandbox path is UTF-8");
        let mut all = vec!["--state-dir", dir];
        all.extend_from_slice(args);
        EmulatorProcess::spawn(&emulator_binary(), &all)
            .expect("start formkiq-emulator")
    }

    /// Starts `fkq-credd` and waits for its ready line.
    pub fn start_daemon(&self) -> DaemonProcess {
        self.start_daemon_with(&[], &[])
    }

    /// Starts `fkq-credd` with extra arguments and environment.
    pub fn start_daemon_with(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> DaemonProcess {
        let mut command = self.command("fkq-credd");
        command.args(args).envs(env.iter().copied());
        spawn_daemon(command)
    }

    /// Configures profile [`PROFILE`] for `emulator` (with `extra` lines),
    /// starts the daemon, and logs in with the emulator's password.
    pub fn logged_in(
        &self,
        emulator: &EmulatorProcess,
        extra: &str,
    ) -> DaemonProcess {
        self.write_config(&Self::profile_toml(PROFILE, emulator, extra));
        let daemon = self.start_daemon();
        let out = self.cli_with_stdin(
            &["login", "--password-stdin"],
            &format!("{}\n", crate::emulator::DEFAULT_PASSWORD),
        );
        assert!(
            out.status.success(),
            "login failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        daemon
    }
}

/// Starts a prepared `fkq-credd` command (wrapped in `setpriv`, say) and
/// waits for its ready line; panics with its log if it never comes.
pub fn spawn_daemon(mut command: Command) -> DaemonProcess {
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("start fkq-credd");
    let log = Arc::new(Mutex::new(String::new()));
    let (ready_tx, ready_rx) = mpsc::channel();
    let stderr = child.stderr.take().expect("stderr is piped");
    let kept = log.clone();
    std::thread::spawn(move || {
        let mut ready_tx = Some(ready_tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains(" ready ") {
                if let Some(tx) = ready_tx.take() {
                    let _ = tx.send(());
                }
            }
            let mut log = kept.lock().unwrap_or_else(|e| e.into_inner());
            log.push_str(&line);
            log.push('\n');
        }
    });
    let mut daemon = DaemonProcess { child, log };
    if ready_rx.recv_timeout(DAEMON_READY_TIMEOUT).is_err() {
        let status = daemon.child.try_wait().ok().flatten();
        panic!(
            "fkq-credd did not become ready (exit: {status:?}); log:\n{}",
            daemon.log()
        );
    }
    daemon
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

/// A running `fkq-credd`, killed on drop.
pub struct DaemonProcess {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl DaemonProcess {
    /// Everything the daemon has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until the log holds `count` lines containing `needle`, and
    /// returns the log; panics with it after `limit`. The daemon may act
    /// (close a connection, say) a moment before its line is read here.
    pub fn wait_for_log(
        &self,
        needle: &str,
        count: usize,
        limit: Duration,
    ) -> String {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let log = self.log();
            if log.lines().filter(|l| l.contains(needle)).count() >= count {
                return log;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {count} lines with {needle:?} in the log:\n{log}"
            );
            // Lines arrive through a pipe; a short pause bounds the wait.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`).
    #[cfg(unix)]
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill with a pid we own and a valid signal number.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.child.id());
    }

    /// Waits for the daemon to exit, at most `limit`.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            // std has no wait-with-timeout; a short poll bounds the wait.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of a process's stdout.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text of a process's stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The exit code, or -1 when a signal ended the process.
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// Checks a command that must fail: its exit code, one line on stderr
/// starting with `fkq-cred: `, nothing on stdout, every one of `words` in
/// the message and none of `forbidden`. Returns what is wrong instead of
/// panicking, so a table of cases can report all its failures at once.
pub fn check_failure(
    out: &Output,
    expected_code: u8,
    words: &[&str],
    forbidden: &[&str],
) -> Result<(), String> {
    let err = stderr(out);
    let mut problems = Vec::new();
    if code(out) != i32::from(expected_code) {
        problems.push(format!("exit {} instead of {expected_code}", code(out)));
    }
    if !err.starts_with("fkq-cred: ") || err.trim_end().lines().count() != 1 {
        problems.push("stderr is not one `fkq-cred: ` line".to_owned());
    }
    if !stdout(out).is_empty() {
        problems.push(format!("stdout is not empty: {:?}", stdout(out)));
    }
    for word in words {
        if !err.contains(word) {
            problems.push(format!("{word:?} is missing"));
        }
    }
    for word in forbidden {
        if err.contains(word) {
            problems.push(format!("{word:?} must not be shown"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}; stderr: {err}", problems.join(", ")))
    }
}

/// Panics with every failed case of a table, each under its name.
pub fn assert_all(failures: Vec<(String, String)>) {
    if failures.is_empty() {
        return;
    }
    let report: Vec<String> =
        failures.iter().map(|(case, why)| format!("- {case}: {why}")).collect();
    panic!("{} case(s) failed:\n{}", failures.len(), report.join("\n"));
}

/// A loopback port that nothing listens on right now: bound, then freed.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .expect("bind a loopback port");
    listener.local_addr().expect("its address").port()
}

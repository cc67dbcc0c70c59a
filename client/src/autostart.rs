//! Starting `fkq-credd` when a command finds none, so a script never has
//! to think about the daemon.
//!
//! Nothing here runs when a daemon answers: [`crate::conn`] calls in only
//! after a connect failed with "not there" (no socket, or a socket nobody
//! listens on), and only when [`allowed_by_env`] (no
//! `FKQ_CRED_NO_AUTOSTART=1`). Then, in order:
//! 1. If a systemd user unit for fkq-cred is installed and the socket is in
//!    the runtime directory it serves, systemd is in charge: the message
//!    gives the `systemctl --user start` command and nothing is started.
//! 2. The start lock is taken, and the socket tried again: another command
//!    may have started the daemon while this one waited.
//! 3. `fkq-credd` (beside this binary, else on PATH) is started in a new
//!    session, its working directory `/`, its stdio on `/dev/null` and no
//!    other descriptor of ours but one end of a socket pair, on which it
//!    reports readiness once it listens (or why it cannot start). It logs
//!    to a file in the state directory. `autostart = false` in the config
//!    is honoured by the daemon itself, which reads the config anyway, so
//!    this client never parses it.

use std::env;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fkq_cred_proto::exit;
use fkq_cred_proto::location::SocketLocation;
use fkq_cred_proto::lock::StartLock;
use fkq_cred_proto::startup::{Report, AUTOSTART_ARG, READY_FD_ARG};

use crate::conn::is_absent;
use crate::error::CliError;

/// Set to `1` to forbid auto-starting the daemon.
pub const NO_AUTOSTART_ENV: &str = "FKQ_CRED_NO_AUTOSTART";

/// How long a starting daemon may take to report readiness. It reads a
/// small config file and binds a socket; anything near this long means it
/// hangs, and the user hears so instead of waiting forever.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The unit names a systemd installation of fkq-cred uses.
const UNITS: [&str; 2] = ["fkq-cred.socket", "fkq-cred.service"];

/// Variables a service manager sets for its own child, never meant for a
/// daemon this client starts.
const SERVICE_MANAGER_ENV: &[&str] =
    &["NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"];

/// Why a daemon is being started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A command needed it: `autostart = false` forbids the start.
    Needed,
    /// `fkq-cred daemon start`, or the upgrade of a daemon that ran
    /// already: the user asked, once.
    Asked,
}

/// Whether the environment allows auto-start: `FKQ_CRED_NO_AUTOSTART`
/// unset, empty, `0`, `false` or `no`.
pub fn allowed_by_env() -> bool {
    allows(env::var_os(NO_AUTOSTART_ENV).as_deref())
}

fn allows(value: Option<&std::ffi::OsStr>) -> bool {
    let Some(value) = value else {
        return true;
    };
    let value = value.to_string_lossy().trim().to_ascii_lowercase();
    matches!(value.as_str(), "" | "0" | "false" | "no")
}

/// Starts a daemon at `location`, unless systemd is in charge of it or
/// another command started one meanwhile, and connects with `connect`
/// once it listens. `connect` runs first under the start lock; its "not
/// there" errors ([`is_absent`]) are what makes a start necessary.
pub fn start<T>(
    location: &SocketLocation,
    reason: Reason,
    connect: impl Fn() -> io::Result<T>,
) -> Result<T, CliError> {
    let path = &location.path;
    if let Some(unit) = systemd_unit(location) {
        let name = unit.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let start = if name == UNITS[1] { UNITS[1] } else { UNITS[0] };
        return Err(CliError::new(
            exit::DAEMON_UNREACHABLE,
            format!(
                "fkq-credd is not running (nothing listens on {path:?}), and \
                 systemd is in charge of it ({}): start it with `systemctl \
                 --user start {start}`",
                unit.display()
            ),
        ));
    }
    let cannot = |what: String| {
        CliError::new(
            exit::DAEMON_UNREACHABLE,
            format!("cannot start fkq-credd: {what}"),
        )
    };
    location.ensure_dir().map_err(|e| cannot(e.to_string()))?;
    let _lock =
        StartLock::acquire(location).map_err(|e| cannot(e.to_string()))?;
    let unreachable = |e: io::Error| {
        CliError::new(
            exit::DAEMON_UNREACHABLE,
            format!("cannot connect to fkq-credd at {path:?}: {e}"),
        )
    };
    match connect() {
        Ok(found) => return Ok(found),
        Err(e) if is_absent(&e) => {}
        Err(e) => return Err(unreachable(e)),
    }
    spawn(location, reason)?;
    connect().map_err(unreachable)
}

/// The installed fkq-cred unit file that puts systemd in charge of the
/// socket at `location`, if any. Only the runtime directory is systemd's:
/// an explicit `--socket` or the temp-dir fallback is not. A unit masked
/// with `systemctl --user mask` (a link to /dev/null) does not count.
fn systemd_unit(location: &SocketLocation) -> Option<PathBuf> {
    if !location.in_runtime_dir {
        return None;
    }
    let home = env::var_os("HOME").map(PathBuf::from);
    let base = |var: &str, fallback: &str| {
        env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| home.as_ref().map(|h| h.join(fallback)))
    };
    // The user unit search path of systemd.unit(5), common entries.
    let dirs = [
        base("XDG_CONFIG_HOME", ".config").map(|d| d.join("systemd/user")),
        Some(PathBuf::from("/etc/systemd/user")),
        base("XDG_DATA_HOME", ".local/share").map(|d| d.join("systemd/user")),
        Some(PathBuf::from("/usr/local/lib/systemd/user")),
        Some(PathBuf::from("/usr/lib/systemd/user")),
    ];
    for dir in dirs.into_iter().flatten() {
        for unit in UNITS {
            let path = dir.join(unit);
            let masked = std::fs::read_link(&path)
                .is_ok_and(|target| target == Path::new("/dev/null"));
            if !masked && path.is_file() {
                return Some(path);
            }
        }
    }
    None
}

/// The daemon binary: beside this one (installed together, or a build
/// directory), else whatever `fkq-credd` PATH finds.
fn daemon_program() -> PathBuf {
    let name = format!("fkq-credd{}", env::consts::EXE_SUFFIX);
    env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(&name)))
        .filter(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn spawn(location: &SocketLocation, reason: Reason) -> Result<(), CliError> {
    let program = daemon_program();
    let failed = |what: String| {
        CliError::new(
            exit::DAEMON_UNREACHABLE,
            format!("cannot start fkq-credd: {what}"),
        )
    };
    let (ours, theirs) = UnixStream::pair()
        .map_err(|e| failed(format!("no socket pair: {e}")))?;
    let their_fd = theirs.as_raw_fd();
    let mut command = Command::new(&program);
    command.arg(READY_FD_ARG).arg(their_fd.to_string());
    if reason == Reason::Needed {
        command.arg(AUTOSTART_ARG);
    }
    // The daemon runs in `/`; paths it is given must not depend on ours.
    if location.private_dir.is_none() {
        command.arg("--socket").arg(absolute(&location.path));
    }
    if let Some(config) = env::var_os("FKQ_CRED_CONFIG") {
        if !config.is_empty() {
            command.env("FKQ_CRED_CONFIG", absolute(Path::new(&config)));
        }
    }
    for var in SERVICE_MANAGER_ENV {
        command.env_remove(var);
    }
    command
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let fd_limit = open_fd_limit();
    // SAFETY: the closure runs between fork and exec and calls only
    // async-signal-safe functions (setsid, syscall, fcntl), touching no
    // memory of the parent but the two integers it captured.
    unsafe {
        command.pre_exec(move || {
            // A session of its own: no controlling terminal, so closing the
            // terminal that ran this command sends it no SIGHUP, and no
            // Ctrl-C meant for the script reaches it.
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            // Descriptors the caller leaked to us (a pipe of `$(...)`, a
            // jobserver) must not live on in the daemon, or the caller
            // would wait for their end of file forever.
            mark_all_cloexec(fd_limit);
            if libc::fcntl(their_fd, libc::F_SETFD, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            failed(format!(
                "{} was found neither beside fkq-cred nor on PATH; install \
                 it (`cargo install --path daemon`) or start it yourself",
                program.display()
            ))
        } else {
            failed(format!("{}: {e}", program.display()))
        }
    })?;
    drop(theirs);
    wait_for_report(ours, &mut child, &program, &location.path)
}

fn wait_for_report(
    mut channel: UnixStream,
    child: &mut Child,
    program: &Path,
    path: &Path,
) -> Result<(), CliError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut text = Vec::new();
    let mut buf = [0u8; 512];
    // The daemon writes one line and closes its end, so end of file marks
    // the moment it listens, or the moment it gave up or died.
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || channel.set_read_timeout(Some(left)).is_err() {
            return Err(timed_out(child, program));
        }
        match channel.read(&mut buf) {
            Ok(0) => break,
            Ok(n) if text.len() < 4096 => text.extend_from_slice(&buf[..n]),
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out(child, program))
            }
            Err(_) => break,
        }
    }
    match Report::parse(&String::from_utf8_lossy(&text)) {
        Some(Report::Ready) => Ok(()),
        // Another daemon took the socket first (systemd, or one started
        // by hand): a daemon is there, which is all the caller wanted.
        Some(Report::Failed { code: exit::ALREADY_RUNNING, .. }) => {
            let _ = child.wait();
            Ok(())
        }
        Some(Report::Failed { code, message }) => {
            let _ = child.wait();
            Err(CliError::new(
                code,
                format!(
                    "fkq-credd is not running on {path:?} and did not start: \
                     {message}"
                ),
            ))
        }
        None => {
            let status =
                child.wait().map_or_else(|e| e.to_string(), |s| s.to_string());
            Err(CliError::new(
                exit::DAEMON_UNREACHABLE,
                format!(
                    "{} stopped before it was ready ({status}); is it the \
                     same release as fkq-cred? Run it in a terminal to see \
                     why",
                    program.display()
                ),
            ))
        }
    }
}

fn timed_out(child: &mut Child, program: &Path) -> CliError {
    // A daemon that hangs at start would hold the start lock's purpose
    // hostage; it is ours, so stop it.
    let _ = child.kill();
    let _ = child.wait();
    let log = fkq_cred_proto::paths::daemon_log_path().map_or_else(
        || "its log".to_string(),
        |path| format!("its log {}", path.display()),
    );
    CliError::new(
        exit::DAEMON_UNREACHABLE,
        format!(
            "{} did not report readiness within {} s and was stopped; see \
             {log}",
            program.display(),
            READY_TIMEOUT.as_secs()
        ),
    )
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    env::current_dir().map_or_else(|_| path.to_path_buf(), |cwd| cwd.join(path))
}

/// The highest descriptor number worth marking, computed before the fork.
fn open_fd_limit() -> libc::c_int {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a valid pointer to a local rlimit.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if rc != 0 {
        return 1024;
    }
    // Looping over a million descriptors costs a noticeable pause; past
    // this, only the kernel's close_range is used.
    libc::c_int::try_from(limit.rlim_cur.min(65_536)).unwrap_or(65_536)
}

/// Marks every descriptor from 3 up close-on-exec. Runs between fork and
/// exec: async-signal-safe calls only.
fn mark_all_cloexec(limit: libc::c_int) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: close_range with CLOEXEC only changes descriptor flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        };
        if rc == 0 {
            return;
        }
    }
    for fd in 3..limit {
        // SAFETY: F_SETFD on any number; fails harmlessly if not open.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_autostart_accepts_the_usual_spellings() {
        use std::ffi::OsStr;
        assert!(allows(None));
        for off in ["1", "yes", "true", " 1 "] {
            assert!(!allows(Some(OsStr::new(off))), "{off:?}");
        }
        for on in ["0", "", "no", "False"] {
            assert!(allows(Some(OsStr::new(on))), "{on:?}");
        }
    }
}

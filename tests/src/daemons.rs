//! Daemons a test did not start as its own child: the ones `fkq-cred`
//! auto-starts, detached in their own session. They are found by pid
//! (`fkq-cred daemon status`), watched through a pidfd, which becomes
//! readable the moment the process ends and cannot be confused with a
//! later process that reuses the pid, and killed on drop.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::harness::{stdout, Sandbox};

/// One process, watched through a pidfd (Linux 5.3 or newer).
#[derive(Debug)]
pub struct Watched {
    pid: u32,
    pidfd: OwnedFd,
}

impl Watched {
    /// Starts watching process `pid`.
    pub fn attach(pid: u32) -> io::Result<Self> {
        let raw = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = i32::try_from(fd).map_err(io::Error::other)?;
        // SAFETY: the kernel just returned this descriptor to us.
        Ok(Self { pid, pidfd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// The pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal` to exactly this process, never to a successor that
    /// reuses its pid.
    pub fn signal(&self, signal: i32) -> io::Result<()> {
        // SAFETY: a pidfd we own, a signal number, no siginfo, no flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `limit` for the process to end; true if it has.
    pub fn wait_exit(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut poll = libc::pollfd {
                fd: self.pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = libc::c_int::try_from(left.as_millis())
                .unwrap_or(libc::c_int::MAX);
            // SAFETY: one valid pollfd.
            match unsafe { libc::poll(&mut poll, 1, ms) } {
                0 => return false,
                rc if rc > 0 => return true,
                _ if io::Error::last_os_error().kind()
                    == io::ErrorKind::Interrupted => {}
                _ => return false,
            }
        }
    }

    /// Whether the process still runs.
    pub fn is_running(&self) -> bool {
        !self.wait_exit(Duration::ZERO)
    }

    /// The process's session id, from `/proc/<pid>/stat`.
    pub fn session(&self) -> io::Result<u32> {
        stat_field(self.pid, 6)
    }
}

/// Field `n` (1-based, as in proc(5)) of `/proc/<pid>/stat`.
pub fn stat_field(pid: u32, n: usize) -> io::Result<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; it ends at the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    rest.split_whitespace()
        .nth(n - 3)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no field {n} in {stat:?}")))
}

/// The pid `fkq-cred daemon status` reports in `sandbox`, if a daemon
/// answers there.
pub fn daemon_pid(sandbox: &Sandbox) -> Option<u32> {
    let out = sandbox.cli(&["daemon", "status"]);
    let text = stdout(&out);
    let rest = text.split_once("(pid ")?.1;
    rest.split_once(')')?.0.parse().ok()
}

/// Kills, when dropped, every auto-started daemon it was told about plus
/// the one answering in its sandbox, so a failing test leaves no detached
/// daemon behind. Declare it after the sandbox: it must drop first.
pub struct Reaper<'a> {
    sandbox: &'a Sandbox,
    watched: Vec<Watched>,
}

impl<'a> Reaper<'a> {
    /// A reaper for the daemons of `sandbox`.
    pub fn new(sandbox: &'a Sandbox) -> Self {
        Self { sandbox, watched: Vec::new() }
    }

    /// Finds the daemon answering in the sandbox and keeps watching it.
    ///
    /// # Panics
    /// When none answers: the test expected one.
    pub fn find(&mut self) -> &Watched {
        let pid = daemon_pid(self.sandbox).expect("a daemon answers");
        let watched = Watched::attach(pid).expect("pidfd_open");
        self.watched.push(watched);
        self.watched.last().expect("just pushed")
    }
}

impl Drop for Reaper<'_> {
    fn drop(&mut self) {
        if let Some(pid) = daemon_pid(self.sandbox) {
            if let Ok(watched) = Watched::attach(pid) {
                self.watched.push(watched);
            }
        }
        for watched in &self.watched {
            let _ = watched.signal(libc::SIGKILL);
            let _ = watched.wait_exit(Duration::from_secs(5));
        }
    }
}

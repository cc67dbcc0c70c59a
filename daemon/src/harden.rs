//! Process hardening: no core dumps, no ptrace attach, a umask that keeps
//! every file the daemon creates private, and, when the configuration asks
//! for it, memory that is never written to swap.

use thiserror::Error;

/// The capability that exempts a process from the locked-memory limit.
#[cfg(target_os = "linux")]
const CAP_IPC_LOCK: u32 = 14;

/// Applies every protection this platform offers. Failures are logged, not
/// fatal: a sandbox may already forbid what is being switched off.
pub fn harden() {
    #[cfg(unix)]
    {
        private_umask();
        let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: a valid pointer to a local rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) } != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot disable core dumps");
        }
    }
    #[cfg(target_os = "linux")]
    {
        // Not dumpable: no core file, and other processes of the same user
        // cannot ptrace the daemon or read its memory through /proc. The
        // kernel shows it by giving /proc/<pid>/ to root.
        // SAFETY: PR_SET_DUMPABLE takes a plain integer argument.
        if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot mark the process undumpable");
        }
        // SAFETY: PR_GET_DUMPABLE takes no argument and reads a flag.
        let dumpable =
            unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
        tracing::debug!(dumpable, core_limit = ?core_limit(), "hardened");
    }
}

/// Sets the umask to 077, so nothing the daemon creates (the socket above
/// all) is ever, even briefly, open to anyone else.
#[cfg(unix)]
pub fn private_umask() {
    // SAFETY: umask has no preconditions and cannot fail.
    unsafe { libc::umask(0o077) };
}

#[cfg(target_os = "linux")]
fn core_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a valid pointer to a local rlimit.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut limit) };
    (rc == 0).then_some(limit.rlim_cur)
}

/// Why `lock_memory = true` could not be honoured. The daemon refuses to
/// start rather than run with memory the user asked to keep out of swap
/// but that is not.
#[derive(Debug, Error)]
pub enum LockMemoryError {
    /// The locked-memory limit would stop the daemon from growing later.
    #[error(
        "lock_memory = true, but the locked-memory limit (RLIMIT_MEMLOCK) \
         is {limit_kib} KiB and locking all of fkq-credd's memory needs it \
         unlimited: set LimitMEMLOCK=infinity in the systemd unit, or \
         `ulimit -l unlimited` as root before starting the daemon, or set \
         lock_memory = false in the config"
    )]
    LimitTooLow {
        /// The limit in force, in KiB.
        limit_kib: u64,
    },
    /// The kernel refused to lock.
    #[error(
        "lock_memory = true, but locking memory failed ({0}); raise the \
         locked-memory limit (LimitMEMLOCK=infinity) or set lock_memory = \
         false in the config"
    )]
    Lock(std::io::Error),
    /// The platform has no way to lock all of a process's memory.
    #[error(
        "lock_memory = true is supported on Linux only; set lock_memory = \
         false in the config"
    )]
    Unsupported,
}

/// Locks all current and future memory of the process (`mlockall`), so no
/// token or password is ever written to swap.
///
/// Future allocations are locked too, and each counts against
/// `RLIMIT_MEMLOCK`: with a finite limit the daemon would start, then fail
/// an allocation later, mid-request. So the limit must be unlimited (or the
/// process hold `CAP_IPC_LOCK`), else this refuses up front. A soft limit
/// below an unlimited hard limit is raised first, as any process may do.
pub fn lock_memory() -> Result<(), LockMemoryError> {
    #[cfg(target_os = "linux")]
    {
        let limit = raise_memlock_limit();
        if !memlock_is_enough(limit, has_ipc_lock()) {
            return Err(LockMemoryError::LimitTooLow {
                limit_kib: limit / 1024,
            });
        }
        // SAFETY: mlockall takes flags only.
        let rc =
            unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) };
        if rc != 0 {
            return Err(LockMemoryError::Lock(std::io::Error::last_os_error()));
        }
        tracing::info!("memory locked: nothing of fkq-credd goes to swap");
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    Err(LockMemoryError::Unsupported)
}

/// Whether a locked-memory `limit` lets the whole process stay locked as it
/// grows.
#[cfg(target_os = "linux")]
fn memlock_is_enough(limit: libc::rlim_t, has_ipc_lock: bool) -> bool {
    has_ipc_lock || limit == libc::RLIM_INFINITY
}

/// Raises the soft locked-memory limit to the hard one and returns the
/// soft limit then in force.
#[cfg(target_os = "linux")]
fn raise_memlock_limit() -> libc::rlim_t {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a valid pointer to a local rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return 0;
    }
    if limit.rlim_cur != limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, ..limit };
        // SAFETY: a valid pointer to a local rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) } == 0 {
            return raised.rlim_cur;
        }
    }
    limit.rlim_cur
}

/// Whether the process holds `CAP_IPC_LOCK` in its effective set, read
/// from `/proc/self/status`.
#[cfg(target_os = "linux")]
fn has_ipc_lock() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn only_an_unlimited_limit_or_the_capability_is_enough_to_lock() {
        assert!(memlock_is_enough(libc::RLIM_INFINITY, false));
        assert!(memlock_is_enough(8 * 1024 * 1024, true));
        assert!(!memlock_is_enough(8 * 1024 * 1024, false));
        assert!(!memlock_is_enough(0, false));
    }

    #[test]
    fn refusal_names_the_limit_and_every_way_out() {
        let text = LockMemoryError::LimitTooLow { limit_kib: 8192 }.to_string();
        for needle in [
            "8192 KiB",
            "LimitMEMLOCK=infinity",
            "ulimit -l unlimited",
            "lock_memory = false",
        ] {
            assert!(text.contains(needle), "{needle:?} missing: {text}");
        }
    }
}

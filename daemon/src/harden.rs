//! Process hardening done once at start: no core dumps, no ptrace attach,
//! and a umask that keeps every file the daemon creates private.

/// Applies every protection this platform offers. Failures are logged, not
/// fatal: a sandbox may already forbid what is being switched off.
pub fn harden() {
    #[cfg(unix)]
    {
        // SAFETY: umask has no preconditions. 077 before bind means the
        // socket is never, even briefly, open to anyone else.
        unsafe { libc::umask(0o077) };
        let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: a valid pointer to a local rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) } != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot disable core dumps");
        }
    }
    #[cfg(target_os = "linux")]
    {
        // Not dumpable: no core file, and other processes of the same user
        // cannot ptrace the daemon or read its memory through /proc.
        // SAFETY: PR_SET_DUMPABLE takes a plain integer argument.
        if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot mark the process undumpable");
        }
    }
}

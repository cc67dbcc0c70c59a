//! Sizing the process for its load: how many threads serve the socket, and
//! enough file descriptors for its connection cap
//! ([`MAX_CONNECTIONS`](crate::server::MAX_CONNECTIONS) by default) at once.

#[cfg(test)]
use crate::server::MAX_CONNECTIONS;

/// Threads that serve connections. A `get` from memory costs a few
/// microseconds, so two threads answer a few hundred thousand a second;
/// more would only add memory on a machine with many cores.
pub const WORKER_THREADS: usize = 2;

/// Descriptors the daemon keeps for itself beside its clients: the
/// listener, the runtime's epoll and wake-up descriptors, HTTPS
/// connections to the servers, a password command's pipes, stdio.
const SPARE_DESCRIPTORS: u64 = 64;

/// The worker threads for this machine: [`WORKER_THREADS`], or fewer
/// where fewer cores are available.
pub fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, WORKER_THREADS)
}

/// Raises the soft limit on open files to what `max_connections` clients
/// need, within the hard limit. Many sessions start with a soft limit of
/// 1024, which a thousand parallel scripts would exhaust. Returns the soft
/// limit now in force.
#[cfg(unix)]
pub fn raise_open_files(max_connections: usize) -> std::io::Result<u64> {
    raise_open_files_to(max_connections as u64 + SPARE_DESCRIPTORS)
}

// rlim_t is u64 here but not on every Unix, hence the casts.
#[cfg(unix)]
#[allow(clippy::unnecessary_cast)]
fn raise_open_files_to(wanted: u64) -> std::io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a valid pointer to a local rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let target = (wanted as libc::rlim_t).min(limit.rlim_max);
    if limit.rlim_cur >= target {
        return Ok(limit.rlim_cur as u64);
    }
    limit.rlim_cur = target;
    // SAFETY: a valid pointer to a local rlimit, soft within hard.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(target as u64)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[allow(clippy::unnecessary_cast)]
    fn soft_and_hard() -> (u64, u64) {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: a valid pointer to a local rlimit.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        (limit.rlim_cur as u64, limit.rlim_max as u64)
    }

    #[test]
    fn the_open_file_limit_is_raised_within_the_hard_limit_never_lowered() {
        let (soft, hard) = soft_and_hard();
        let wanted = MAX_CONNECTIONS as u64 + SPARE_DESCRIPTORS;
        let now = raise_open_files(MAX_CONNECTIONS).unwrap();
        assert_eq!(now, soft.max(wanted.min(hard)));
        assert_eq!(soft_and_hard().0, now);
        // Asking for less than what is in force changes nothing.
        assert_eq!(raise_open_files_to(1).unwrap(), now);
    }

    #[test]
    fn two_worker_threads_at_most() {
        assert!((1..=WORKER_THREADS).contains(&worker_threads()));
    }
}

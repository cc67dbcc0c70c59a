//! Process start without the set-up std runs before `main`.
//!
//! On Linux with glibc, std's start-up reads `/proc/self/maps` to find the
//! main thread's stack guard and installs an alternate signal stack, so
//! that a stack overflow prints a message instead of a bare SIGSEGV. That
//! costs about a tenth of what starting any process costs, as much as all
//! of `fkq-cred get`'s own work. So `fkq-cred` starts from the C `main`
//! and does only the parts of that set-up it relies on:
//!
//! - descriptors 0, 1 and 2 are open (on `/dev/null` if they were closed),
//!   so the socket never becomes descriptor 1 and receives the output;
//! - SIGPIPE is ignored, so a reader that went away is an error the client
//!   handles (`fkq-cred get | head -c1` succeeds), not a signal that kills
//!   it; children still start with the default action, as std arranges;
//! - stdout is flushed at the end, and a panic exits with code 101.
//!
//! Arguments and environment are unaffected: glibc hands them to std
//! before `main` either way.

use std::ffi::{c_char, c_int};
use std::io::Write as _;

/// The exit code std gives a program whose `main` panicked.
const PANICKED: u8 = 101;

/// The C entry point: prepares the process, runs the command, exits.
#[no_mangle]
pub extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    prepare();
    let code = std::panic::catch_unwind(crate::run).unwrap_or(PANICKED);
    let _ = std::io::stdout().lock().flush();
    c_int::from(code)
}

fn prepare() {
    let mut fds =
        [0, 1, 2].map(|fd| libc::pollfd { fd, events: 0, revents: 0 });
    // SAFETY: a valid pointer to three pollfd structs, and a zero timeout.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
    for pollfd in &fds {
        let closed = if polled == -1 {
            // SAFETY: F_GETFD only reads the descriptor's flags.
            unsafe { libc::fcntl(pollfd.fd, libc::F_GETFD) == -1 }
        } else {
            pollfd.revents & libc::POLLNVAL != 0
        };
        // Descriptors are taken lowest first, so opening in order puts
        // /dev/null exactly on the closed ones.
        // SAFETY: a NUL-terminated path and plain flags.
        if closed
            && unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) } == -1
        {
            // Nothing safe can be done without standard descriptors.
            std::process::abort();
        }
    }
    // SAFETY: installs the ignore disposition; no handler code runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

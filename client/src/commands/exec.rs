//! `fkq-cred exec -- CMD ARGS...`: runs a command with the token, the API
//! URL, the daemon's socket and the profile in its environment, passes its
//! exit status through, and passes on the signals sent to fkq-cred.
//!
//! The token in the child's environment is the one deliberate exception to
//! "no secrets in environments": it is what the user asked for, and the
//! socket and profile beside it let a long-running child ask for a fresh
//! token instead of using an expired one.

use std::ffi::OsStr;
use std::io;
use std::process::{Command, ExitStatus};

use fkq_cred_proto::location::SOCKET_ENV;

use super::{shell_env, Context};
use crate::cli::ExecArgs;
use crate::error::CliError;

/// Exit status when the command exists but cannot be run, as shells use.
const CANNOT_RUN: u8 = 126;
/// Exit status when the command is not found, as shells use.
const NOT_FOUND: u8 = 127;
/// Added to a signal's number when it ended the command, as shells do.
const SIGNAL_BASE: i32 = 128;

/// Runs `fkq-cred exec`.
pub fn run(ctx: &Context, args: ExecArgs) -> Result<(), CliError> {
    let vars = shell_env::fetch(ctx, &args.token)?;
    let Some((program, rest)) = args.command.split_first() else {
        return Err(CliError::usage(
            "exec needs a command: fkq-cred exec -- CMD ARGS...",
        ));
    };

    let mut command = Command::new(program);
    command.args(rest);
    for (name, value) in vars.pairs() {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    command.env(SOCKET_ENV, &vars.socket).env("FKQ_PROFILE", &vars.profile);
    ctx.detail(&format!(
        "running {program:?} with profile {} and socket {}",
        vars.profile,
        vars.socket.display()
    ));

    // Handlers go in before the child starts, so that no signal sent in
    // between is lost: it is held and passed on once the child exists.
    let forwarder = forward::Forwarder::start()
        .map_err(|e| CliError::failure(format!("cannot watch signals: {e}")))?;
    let mut child = command.spawn().map_err(|e| spawn_error(program, &e))?;
    forwarder.set_child(child.id());
    let status = forwarder.wait(&mut child).map_err(|e| {
        CliError::failure(format!("cannot wait for {program:?}: {e}"))
    })?;
    match exit_code(status) {
        0 => Ok(()),
        code => Err(CliError::passthrough(code)),
    }
}

fn spawn_error(program: &OsStr, error: &io::Error) -> CliError {
    match error.kind() {
        io::ErrorKind::NotFound => CliError::new(
            NOT_FOUND,
            format!(
                "cannot run {program:?}: not found; check the name and PATH"
            ),
        ),
        _ => CliError::new(
            CANNOT_RUN,
            format!("cannot run {program:?}: {error}"),
        ),
    }
}

/// The status fkq-cred exits with: the child's code, or 128+N when signal
/// N ended it.
fn exit_code(status: ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        // Exit codes are 0..=255 on Unix; the cast keeps the low byte, as
        // the shell would report it.
        return code as u8;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return u8::try_from(SIGNAL_BASE + signal).unwrap_or(u8::MAX);
        }
    }
    1
}

#[cfg(unix)]
mod forward {
    //! Passing SIGTERM, SIGINT and SIGHUP on to the child.
    //!
    //! A signal the kernel sends because of the terminal (Ctrl-C, a hang-up)
    //! already reaches the child, which shares the terminal's foreground
    //! process group; passing it on would deliver it twice. Signals sent by
    //! another process (`kill`, a supervisor) reach only fkq-cred, and are
    //! passed on.

    use std::io;
    use std::process::{Child, ExitStatus};
    use std::sync::{Arc, Mutex};
    use std::thread::JoinHandle;

    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook::iterator::exfiltrator::WithOrigin;
    use signal_hook::iterator::{Handle, SignalsInfo};
    use signal_hook::low_level::siginfo::Cause;

    /// The signals passed on.
    const FORWARDED: [i32; 3] = [SIGTERM, SIGINT, SIGHUP];

    #[derive(Default)]
    struct Target {
        pid: Option<libc::pid_t>,
        held: Vec<i32>,
    }

    /// Catches the forwarded signals for as long as it lives.
    pub struct Forwarder {
        target: Arc<Mutex<Target>>,
        handle: Handle,
        thread: JoinHandle<()>,
    }

    impl Forwarder {
        /// Installs the handlers and starts the thread that passes
        /// signals on.
        pub fn start() -> io::Result<Self> {
            let mut signals = SignalsInfo::<WithOrigin>::new(FORWARDED)?;
            let handle = signals.handle();
            let target = Arc::new(Mutex::new(Target::default()));
            let shared = target.clone();
            let thread = std::thread::spawn(move || {
                for origin in signals.forever() {
                    if origin.cause == Cause::Kernel {
                        continue;
                    }
                    let mut target =
                        shared.lock().unwrap_or_else(|e| e.into_inner());
                    match target.pid {
                        Some(pid) => send(pid, origin.signal),
                        None => target.held.push(origin.signal),
                    }
                }
            });
            Ok(Self { target, handle, thread })
        }

        /// Names the child, and passes on what arrived before it existed.
        pub fn set_child(&self, pid: u32) {
            let mut target =
                self.target.lock().unwrap_or_else(|e| e.into_inner());
            let pid = pid as libc::pid_t;
            target.pid = Some(pid);
            for signal in std::mem::take(&mut target.held) {
                send(pid, signal);
            }
        }

        /// Waits for the child to exit, stops passing signals on, and only
        /// then reaps the child: until it is reaped its pid cannot be
        /// reused, so a late signal can never reach a stranger.
        pub fn wait(self, child: &mut Child) -> io::Result<ExitStatus> {
            wait_unreaped(child.id() as libc::id_t)?;
            self.target.lock().unwrap_or_else(|e| e.into_inner()).pid = None;
            self.handle.close();
            let _ = self.thread.join();
            child.wait()
        }
    }

    fn wait_unreaped(pid: libc::id_t) -> io::Result<()> {
        loop {
            // SAFETY: siginfo_t is plain old data; all-zero is valid.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: info is a valid, writable siginfo_t.
            let rc = unsafe {
                libc::waitid(
                    libc::P_PID,
                    pid,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT,
                )
            };
            if rc == 0 {
                return Ok(());
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }

    fn send(pid: libc::pid_t, signal: i32) {
        // SAFETY: kill has no memory-safety preconditions. The pid is our
        // child's, not yet reaped (see `wait`), so it names no one else.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

#[cfg(not(unix))]
mod forward {
    //! Without Unix signals there is nothing to pass on.

    /// A stand-in that does nothing.
    pub struct Forwarder;

    impl Forwarder {
        /// Does nothing.
        pub fn start() -> std::io::Result<Self> {
            Ok(Self)
        }

        /// Does nothing.
        pub fn set_child(&self, _pid: u32) {}

        /// Waits for the child.
        pub fn wait(
            self,
            child: &mut std::process::Child,
        ) -> std::io::Result<std::process::ExitStatus> {
            child.wait()
        }
    }
}

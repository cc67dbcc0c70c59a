//! systemd glue: the socket a socket unit passes (`LISTEN_FDS`,
//! `LISTEN_PID`), and the state reports (`READY=1`, `STATUS=`,
//! `STOPPING=1`) sent to `NOTIFY_SOCKET` for a `Type=notify` service.
//! Outside systemd every report is a no-op.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use sd_notify::NotifyState;
use thiserror::Error;

/// What systemd handed the daemon at start.
#[derive(Debug)]
pub struct Activation {
    /// The listening socket of `fkq-cred.socket`, if it passed one.
    pub listener: Option<ActivatedSocket>,
    /// Whether systemd started the daemon, with or without a socket.
    pub under_systemd: bool,
}

/// A listening Unix stream socket passed by systemd, checked.
#[derive(Debug)]
pub struct ActivatedSocket {
    /// The descriptor.
    pub fd: OwnedFd,
    /// The path it is bound to, when it has one.
    pub path: Option<PathBuf>,
}

/// Why the passed sockets cannot be served.
#[derive(Debug, Error)]
pub enum ActivationError {
    /// `LISTEN_FDS` or `LISTEN_PID` is malformed.
    #[error("cannot read the sockets systemd passed: {0}")]
    Env(io::Error),
    /// More or fewer than one socket.
    #[error(
        "systemd passed {0} sockets; fkq-cred.socket must have exactly one \
         ListenStream= line"
    )]
    Count(usize),
    /// The socket is of the wrong kind.
    #[error(
        "the socket systemd passed (descriptor {fd}) is not {what}; set \
         ListenStream= in fkq-cred.socket to a path such as \
         %t/fkq-cred/socket"
    )]
    WrongKind {
        /// The descriptor number.
        fd: RawFd,
        /// What it should have been.
        what: &'static str,
    },
}

impl Activation {
    /// Takes the sockets systemd passed and removes `LISTEN_FDS`,
    /// `LISTEN_PID` and `LISTEN_FDNAMES` from the environment, so that no
    /// child (a `password_command`) believes they are meant for it.
    ///
    /// # Safety
    /// Changes the environment: call it before any other thread exists.
    pub unsafe fn take() -> Result<Self, ActivationError> {
        // NOTIFY_SOCKET, not INVOCATION_ID: the latter is inherited by every
        // process of a unit, such as the shells of a terminal service, while
        // systemd sets the former for a Type=notify service like ours.
        let under_systemd = std::env::var_os("NOTIFY_SOCKET").is_some();
        // SAFETY: the caller guarantees that no other thread runs yet.
        let fds: Vec<RawFd> = unsafe { sd_notify::listen_fds_and_unset_env() }
            .map_err(ActivationError::Env)?
            .collect();
        // Safe only for the reason above, though edition 2021 does not ask.
        std::env::remove_var("LISTEN_FDNAMES");
        let listener = match fds.as_slice() {
            [] => None,
            [fd] => {
                // SAFETY: systemd passed this descriptor to this process
                // (LISTEN_PID matched) and nothing else owns it.
                let fd = unsafe { OwnedFd::from_raw_fd(*fd) };
                Some(check_socket(fd)?)
            }
            more => return Err(ActivationError::Count(more.len())),
        };
        let under_systemd = under_systemd || listener.is_some();
        Ok(Self { listener, under_systemd })
    }
}

/// Checks that `fd` is a listening Unix stream socket, the only kind the
/// clients can reach.
fn check_socket(fd: OwnedFd) -> Result<ActivatedSocket, ActivationError> {
    let raw = fd.as_raw_fd();
    let wrong = |what| ActivationError::WrongKind { fd: raw, what };
    if sockopt(&fd, libc::SO_TYPE) != Some(libc::SOCK_STREAM) {
        return Err(wrong("a stream socket"));
    }
    if sockopt(&fd, libc::SO_ACCEPTCONN) != Some(1) {
        return Err(wrong("a listening socket"));
    }
    // std's Unix listener refuses an address of any other family.
    let listener = std::os::unix::net::UnixListener::from(fd);
    let path = match listener.local_addr() {
        Ok(addr) => addr.as_pathname().map(PathBuf::from),
        Err(_) => return Err(wrong("a Unix socket")),
    };
    Ok(ActivatedSocket { fd: listener.into(), path })
}

fn sockopt(fd: &OwnedFd, name: libc::c_int) -> Option<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid descriptor, and pointers to a local int and its size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(value)
}

/// Tells systemd the daemon serves, with a status line for
/// `systemctl status`.
pub fn notify_ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Updates the status line shown by `systemctl status`.
pub fn notify_status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// Tells systemd the daemon is shutting down.
pub fn notify_stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot report to systemd");
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::{UnixDatagram, UnixListener};

    use super::*;

    #[test]
    fn a_listening_unix_stream_socket_is_accepted_with_its_path() {
        let dir = std::env::temp_dir()
            .join(format!("fkq-credd-activation-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("socket");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let socket = check_socket(OwnedFd::from(listener)).unwrap();
        assert_eq!(socket.path.as_deref(), Some(path.as_path()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn datagram_and_tcp_sockets_are_refused_with_the_fix() {
        let (datagram, _peer) = UnixDatagram::pair().unwrap();
        let err = check_socket(OwnedFd::from(datagram)).unwrap_err();
        assert!(err.to_string().contains("stream socket"), "{err}");
        assert!(err.to_string().contains("ListenStream="), "{err}");

        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let err = check_socket(OwnedFd::from(tcp)).unwrap_err();
        assert!(err.to_string().contains("Unix socket"), "{err}");
    }
}

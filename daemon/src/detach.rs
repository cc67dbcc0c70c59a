//! What a daemon started by `fkq-cred` needs: a log file in place of the
//! terminal it does not have, and the readiness report its starter waits
//! for (see [`fkq_cred_proto::startup`]).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use fkq_cred_proto::startup::Report;

/// A log longer than this is moved aside (to `fkq-credd.log.old`) when a
/// daemon starts. The daemon writes a few lines per login and refresh, so
/// a mebibyte holds weeks of history and the pair never exceeds two.
pub const MAX_LOG_LEN: u64 = 1024 * 1024;

/// The log file of daemons started by a client; see
/// [`fkq_cred_proto::paths::daemon_log_path`].
pub fn default_log_path() -> Option<PathBuf> {
    fkq_cred_proto::paths::daemon_log_path()
}

/// Points the process's stderr at `path` (see [`open_log`]). Everything
/// written to stderr afterwards, logs and a panic message alike, lands
/// there.
#[cfg(unix)]
pub fn log_to_file(path: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let file = open_log(path)?;
    // SAFETY: both are open descriptors; dup2 replaces fd 2 atomically.
    if unsafe { libc::dup2(file.as_raw_fd(), libc::STDERR_FILENO) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens the log for appending, created 0600 in a 0700 directory, after
/// moving an oversized one aside.
#[cfg(unix)]
pub fn open_log(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    if std::fs::metadata(path).is_ok_and(|m| m.len() > MAX_LOG_LEN) {
        let mut old = path.as_os_str().to_owned();
        old.push(".old");
        std::fs::rename(path, old)?;
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Logging to a file is for Unix daemons started by a client.
#[cfg(not(unix))]
pub fn log_to_file(_path: &Path) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// The channel to the client that started this daemon, if one did.
#[derive(Debug, Default)]
pub struct Readiness {
    channel: Option<File>,
}

impl Readiness {
    /// Takes the descriptor named by `--ready-fd`.
    ///
    /// # Safety
    /// `fd` must be a descriptor that nothing else in this process owns or
    /// will close: call it at start, before anything opens files.
    #[cfg(unix)]
    pub unsafe fn from_raw_fd(fd: i32) -> io::Result<Self> {
        use std::os::fd::{FromRawFd, OwnedFd};
        if fd <= libc::STDERR_FILENO {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("--ready-fd {fd} names a standard stream"),
            ));
        }
        // SAFETY: F_GETFD only reads the descriptor's flags; it fails for a
        // descriptor that is not open.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the descriptor is open and, per the caller, ours alone.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: F_SETFD on an open descriptor; no child may inherit it.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        Ok(Self { channel: Some(File::from(owned)) })
    }

    /// Whether a client waits for this daemon's report.
    pub fn is_expected(&self) -> bool {
        self.channel.is_some()
    }

    /// Reports that the socket listens. Later reports are ignored.
    pub fn ready(&mut self) {
        self.send(&Report::Ready);
    }

    /// Reports that the daemon will not run, with its exit code and why.
    pub fn fail(&mut self, code: u8, message: &str) {
        self.send(&Report::Failed { code, message: message.into() });
    }

    fn send(&mut self, report: &Report) {
        // Closing the channel right after the line tells the client that
        // nothing more will come.
        if let Some(mut channel) = self.channel.take() {
            if let Err(e) = channel.write_all(report.encode().as_bytes()) {
                tracing::warn!(error = %e, "cannot report readiness to the client that started the daemon");
            }
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::io::Read;
    use std::os::fd::{IntoRawFd, OwnedFd};
    use std::os::unix::net::UnixStream;

    use fkq_cred_proto::paths::DAEMON_LOG_NAME;

    use super::*;

    #[test]
    fn the_report_is_one_line_and_then_end_of_file() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let fd = OwnedFd::from(ours).into_raw_fd();
        // SAFETY: the descriptor was just released by its owner.
        let mut readiness = unsafe { Readiness::from_raw_fd(fd) }.unwrap();
        readiness.ready();
        readiness.fail(1, "too late");
        let mut text = String::new();
        theirs.read_to_string(&mut text).unwrap();
        assert_eq!(text, "ready\n");
    }

    #[test]
    fn a_closed_or_standard_descriptor_is_refused() {
        // SAFETY: both calls fail before taking ownership of anything.
        assert!(unsafe { Readiness::from_raw_fd(2) }.is_err());
        assert!(unsafe { Readiness::from_raw_fd(987_654) }.is_err());
    }

    #[test]
    fn an_oversized_log_is_moved_aside() {
        let dir = std::env::temp_dir()
            .join(format!("fkq-credd-log-{}", std::process::id()));
        let path = dir.join("state").join(DAEMON_LOG_NAME);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, vec![b'x'; MAX_LOG_LEN as usize + 1]).unwrap();
        let mut file = open_log(&path).unwrap();
        file.write_all(b"fresh\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "fresh\n");
        let old = dir.join("state").join(format!("{DAEMON_LOG_NAME}.old"));
        assert_eq!(std::fs::metadata(old).unwrap().len(), MAX_LOG_LEN + 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

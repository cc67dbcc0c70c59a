//! The start lock: an advisory `flock` on a file beside the socket.
//!
//! Whoever is about to start a daemon (a client auto-starting one) or to
//! replace a stale socket (a daemon started by hand) holds it, and looks
//! again once it has it. Twenty scripts that find no daemon at the same
//! moment therefore start exactly one: the first starts it while holding the
//! lock, the other nineteen wait for the lock, look again, and find it
//! running. The kernel drops the lock when its holder exits, so a crashed
//! holder never blocks the next one.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::location::SocketLocation;

/// Why the start lock could not be taken.
#[derive(Debug, Error)]
pub enum LockError {
    /// Opening or locking the file failed.
    #[error("cannot take the start lock {path:?}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The lock file belongs to another user, who could hold it forever.
    #[error(
        "the start lock {path:?} belongs to uid {owner}, not to you (uid \
         {uid}); remove it, or choose a socket in a directory of your own"
    )]
    NotYours {
        /// The lock file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The current user.
        uid: u32,
    },
}

/// A held start lock; dropping it releases the lock.
#[derive(Debug)]
pub struct StartLock {
    _file: File,
    path: PathBuf,
}

impl StartLock {
    /// Waits for and takes the start lock of `location`. The socket's
    /// directory must exist ([`SocketLocation::ensure_dir`]).
    ///
    /// The wait is unbounded: holders keep the lock only while a daemon
    /// starts (bounded by the client's ready timeout) or while a socket is
    /// bound, and the kernel frees it if they die.
    pub fn acquire(location: &SocketLocation) -> Result<Self, LockError> {
        let path = location.lock_path();
        let file = open(&path)
            .map_err(|source| LockError::Io { path: path.clone(), source })?;
        check_owner(&file, &path)?;
        lock(&file)
            .map_err(|source| LockError::Io { path: path.clone(), source })?;
        Ok(Self { _file: file, path })
    }

    /// The lock file, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(unix)]
fn open(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NOFOLLOW: a symlink planted at the lock path is an error, never a
    // way to make us create or lock a file elsewhere.
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

#[cfg(not(unix))]
fn open(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

#[cfg(unix)]
fn check_owner(file: &File, path: &Path) -> Result<(), LockError> {
    use std::os::unix::fs::MetadataExt;
    let meta = file
        .metadata()
        .map_err(|source| LockError::Io { path: path.into(), source })?;
    let uid = crate::location::current_uid();
    if meta.uid() != uid {
        return Err(LockError::NotYours {
            path: path.into(),
            owner: meta.uid(),
            uid,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner(_file: &File, _path: &Path) -> Result<(), LockError> {
    Ok(())
}

#[cfg(unix)]
fn lock(file: &File) -> io::Result<()> {
    loop {
        // Called through the trait: std's own `File::lock` is newer than
        // this workspace's minimum Rust version.
        match fs4::FileExt::lock(file) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

#[cfg(not(unix))]
fn lock(_file: &File) -> io::Result<()> {
    // Named pipes refuse a second server by themselves; not built or
    // tested here.
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_second_holder_waits_until_the_first_lets_go() {
        let dir = std::env::temp_dir()
            .join(format!("fkq-proto-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let location = SocketLocation {
            path: dir.join("socket"),
            private_dir: None,
            in_runtime_dir: false,
        };
        let first = StartLock::acquire(&location).unwrap();
        let (tx, rx) = mpsc::channel();
        let waiter = {
            let location = location.clone();
            std::thread::spawn(move || {
                let second = StartLock::acquire(&location).unwrap();
                tx.send(()).unwrap();
                drop(second);
            })
        };
        // The waiter must still be blocked while the first lock is held;
        // the pause only gives a broken lock the chance to show itself.
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        drop(first);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the waiter gets the lock once it is released");
        waiter.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_symlink_at_the_lock_path_is_refused() {
        let dir = std::env::temp_dir()
            .join(format!("fkq-proto-lock-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let location = SocketLocation {
            path: dir.join("socket"),
            private_dir: None,
            in_runtime_dir: false,
        };
        std::os::unix::fs::symlink(dir.join("elsewhere"), location.lock_path())
            .unwrap();
        assert!(StartLock::acquire(&location).is_err());
        assert!(!dir.join("elsewhere").exists(), "no file made through it");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

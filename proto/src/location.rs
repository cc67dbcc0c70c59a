//! Where the socket lives. Client and daemon both call [`socket_location`],
//! so they cannot disagree.
//!
//! The first that applies:
//! 1. an explicit path (`--socket`, else the `FKQ_CRED_SOCKET` variable);
//! 2. `$XDG_RUNTIME_DIR/fkq-cred/socket`;
//! 3. `/run/user/<uid>/fkq-cred/socket` when that runtime directory exists
//!    and is private to the user: cron jobs get no `XDG_RUNTIME_DIR`, but
//!    with lingering on, systemd keeps the directory (and the daemon its
//!    socket unit started there) alive, and this is how they find it;
//! 4. `<temp dir>/fkq-cred-<uid>/socket`, for `sudo -u` and ssh sessions
//!    without a login manager.
//!
//! The `fkq-cred` directory in cases 2 to 4 is private: created 0700, and
//! refused when it is a symlink, belongs to someone else, or is open to
//! others, because whoever controls it could put their own socket there and
//! collect the passwords sent to it. An explicit path is the user's choice
//! and is used as given.

use std::env;
use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// The environment variable that overrides the socket path.
pub const SOCKET_ENV: &str = "FKQ_CRED_SOCKET";

/// The socket's file name inside its directory.
pub const SOCKET_NAME: &str = "socket";

/// Where login managers create per-user runtime directories, named by uid.
pub const RUN_USER: &str = "/run/user";

/// Where the socket is and how that was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketLocation {
    /// The socket path (a named pipe path on Windows).
    pub path: PathBuf,
    /// The private directory holding it, when fkq-cred chose the place and
    /// therefore owns and checks the directory.
    pub private_dir: Option<PathBuf>,
    /// Whether the socket is in the user's runtime directory, the place a
    /// systemd user socket unit (`%t/fkq-cred/socket`) serves.
    pub in_runtime_dir: bool,
}

impl SocketLocation {
    /// The start lock beside the socket (`<socket>.lock`): held by whoever
    /// starts a daemon or replaces a stale socket, so that only one does.
    pub fn lock_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Creates the socket's directory if it is missing: the private
    /// directory with its checks, or an explicit path's parent (0700).
    pub fn ensure_dir(&self) -> Result<(), LocationError> {
        if let Some(dir) = &self.private_dir {
            return ensure_private_dir(dir);
        }
        let Some(parent) =
            self.path.parent().filter(|p| !p.as_os_str().is_empty())
        else {
            return Ok(());
        };
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder
            .create(parent)
            .map_err(|source| LocationError::Io { dir: parent.into(), source })
    }
}

/// Why no usable socket location could be decided.
#[derive(Debug, Error)]
pub enum LocationError {
    /// The path does not fit in a Unix socket address.
    #[error(
        "socket path {path:?} is {len} bytes long, but Unix sockets allow at \
         most {max}; set FKQ_CRED_SOCKET to a shorter path"
    )]
    TooLong {
        /// The path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// The platform's limit.
        max: usize,
    },
    /// `XDG_RUNTIME_DIR` is set to something unusable.
    #[error(
        "XDG_RUNTIME_DIR={dir:?} {problem}; unset it (fkq-cred then uses a \
         private directory under the temp dir) or point it at your own \
         runtime directory"
    )]
    RuntimeDir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The private directory is not private.
    #[error("refusing socket directory {dir:?}: {problem}; fix: {fix}")]
    UnsafeDir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        problem: String,
        /// The exact command that fixes it.
        fix: String,
    },
    /// The directory could not be examined or created.
    #[error("cannot use socket directory {dir:?}: {source}")]
    Io {
        /// The directory.
        dir: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// Decides the socket location; `explicit` is the `--socket` argument.
pub fn socket_location(
    explicit: Option<&Path>,
) -> Result<SocketLocation, LocationError> {
    let from_env =
        env::var_os(SOCKET_ENV).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(path) = explicit.map(Path::to_path_buf).or(from_env) {
        check_length(&path)?;
        return Ok(SocketLocation {
            path,
            private_dir: None,
            in_runtime_dir: false,
        });
    }
    let (dir, in_runtime_dir) = default_dir()?;
    let path = dir.join(SOCKET_NAME);
    check_length(&path)?;
    Ok(SocketLocation { path, private_dir: Some(dir), in_runtime_dir })
}

/// The default directory, and whether it is in a runtime directory.
#[cfg(unix)]
fn default_dir() -> Result<(PathBuf, bool), LocationError> {
    let runtime = env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    choose_dir(runtime, Path::new(RUN_USER), &env::temp_dir(), current_uid())
}

/// Decides the default directory from its inputs, so tests can play every
/// case without touching the real `/run/user`.
#[cfg(unix)]
fn choose_dir(
    runtime: Option<PathBuf>,
    run_user: &Path,
    temp: &Path,
    uid: u32,
) -> Result<(PathBuf, bool), LocationError> {
    use std::os::unix::fs::MetadataExt;

    if let Some(runtime) = runtime {
        let problem = |p: &str| LocationError::RuntimeDir {
            dir: runtime.clone(),
            problem: p.into(),
        };
        if !runtime.is_absolute() {
            return Err(problem("is not an absolute path"));
        }
        let meta = std::fs::metadata(&runtime)
            .map_err(|e| problem(&format!("cannot be read ({e})")))?;
        if !meta.is_dir() {
            return Err(problem("is not a directory"));
        }
        if meta.uid() != uid {
            return Err(problem(&format!(
                "belongs to uid {}, not to you (uid {uid})",
                meta.uid()
            )));
        }
        // Whoever may write to it could swap the fkq-cred directory for
        // their own between the client's check and its connect.
        let mode = meta.mode() & 0o777;
        if mode & 0o022 != 0 {
            return Err(problem(&format!(
                "is writable by other users (mode {mode:03o}); a runtime \
                 directory must be private (`chmod 700`)"
            )));
        }
        return Ok((runtime.join("fkq-cred"), true));
    }
    let session = run_user.join(uid.to_string());
    let is_private = std::fs::symlink_metadata(&session).is_ok_and(|meta| {
        meta.is_dir() && meta.uid() == uid && meta.mode() & 0o077 == 0
    });
    if is_private {
        return Ok((session.join("fkq-cred"), true));
    }
    Ok((temp.join(format!("fkq-cred-{uid}")), false))
}

#[cfg(windows)]
fn default_dir() -> Result<(PathBuf, bool), LocationError> {
    // Named pipes live in their own namespace; the "directory" is the pipe
    // prefix and the user name keeps users apart. Not built or tested here.
    let user = env::var("USERNAME").unwrap_or_else(|_| "user".into());
    Ok((PathBuf::from(format!(r"\\.\pipe\fkq-cred-{user}")), false))
}

/// The current effective user id.
#[cfg(unix)]
pub fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(unix)]
fn max_socket_path() -> usize {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    // One byte is kept for the terminating NUL.
    addr.sun_path.len() - 1
}

fn check_length(path: &Path) -> Result<(), LocationError> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let len = path.as_os_str().as_bytes().len();
        let max = max_socket_path();
        if len > max {
            return Err(LocationError::TooLong { path: path.into(), len, max });
        }
    }
    let _ = path;
    Ok(())
}

/// Creates `dir` with mode 0700 if it is missing, then checks that it is
/// private. The daemon calls this before binding.
pub fn ensure_private_dir(dir: &Path) -> Result<(), LocationError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(LocationError::Io { dir: dir.into(), source })
            }
        }
    }
    match check_private_dir(dir)? {
        true => Ok(()),
        false => Err(LocationError::Io {
            dir: dir.into(),
            source: io::ErrorKind::NotFound.into(),
        }),
    }
}

/// Checks that `dir` is private to the current user without creating it.
/// Returns `Ok(false)` when it does not exist. The client calls this before
/// it sends anything to a socket inside.
pub fn check_private_dir(dir: &Path) -> Result<bool, LocationError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = match std::fs::symlink_metadata(dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(LocationError::Io { dir: dir.into(), source })
            }
        };
        let shown = dir.display();
        let unsafe_dir = |problem: String, fix: String| {
            Err(LocationError::UnsafeDir { dir: dir.into(), problem, fix })
        };
        if meta.file_type().is_symlink() {
            return unsafe_dir(
                "it is a symbolic link".into(),
                format!("remove the link with `rm '{shown}'`"),
            );
        }
        if !meta.is_dir() {
            return unsafe_dir(
                "it is not a directory".into(),
                format!("remove it with `rm '{shown}'`"),
            );
        }
        let uid = current_uid();
        if meta.uid() != uid {
            return unsafe_dir(
                format!(
                    "it belongs to uid {}, not to you (uid {uid})",
                    meta.uid()
                ),
                format!(
                    "`sudo chown {uid} '{shown}' && chmod 700 '{shown}'`, or \
                     have its owner remove it, or use another place for \
                     client and daemon alike (set TMPDIR, or FKQ_CRED_SOCKET \
                     to a path in a directory of your own)"
                ),
            );
        }
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return unsafe_dir(
                format!("its mode is {mode:03o}, open to other users"),
                format!("`chmod 700 '{shown}'`"),
            );
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(true)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = env::temp_dir()
            .join(format!("fkq-proto-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn private_dir_is_created_0700_and_loose_dirs_are_refused() {
        let base = scratch("modes");
        let dir = base.join("fkq-cred");
        ensure_private_dir(&dir).unwrap();
        let mode =
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let err = ensure_private_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("755") && err.contains("chmod 700"), "{err}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn symlinked_dir_is_refused_with_the_fix() {
        let base = scratch("link");
        let target = base.join("elsewhere");
        std::fs::create_dir(&target).unwrap();
        std::fs::set_permissions(
            &target,
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        let link = base.join("fkq-cred");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = check_private_dir(&link).unwrap_err().to_string();
        assert!(err.contains("symbolic link") && err.contains("rm "), "{err}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn missing_dir_is_reported_as_absent_not_as_an_error() {
        let base = scratch("absent");
        assert!(!check_private_dir(&base.join("nope")).unwrap());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn without_xdg_runtime_dir_a_private_run_user_dir_wins_over_temp() {
        let base = scratch("run-user");
        let (run_user, temp) = (base.join("run"), base.join("tmp"));
        let uid = current_uid();
        let session = run_user.join(uid.to_string());
        let mode = |m| std::fs::Permissions::from_mode(m);

        // No runtime directory at all: the temp fallback.
        let (dir, in_runtime) =
            choose_dir(None, &run_user, &temp, uid).unwrap();
        assert_eq!(dir, temp.join(format!("fkq-cred-{uid}")));
        assert!(!in_runtime);

        // A private one, as logind (and lingering) leave it: used.
        std::fs::create_dir_all(&session).unwrap();
        std::fs::set_permissions(&session, mode(0o700)).unwrap();
        let (dir, in_runtime) =
            choose_dir(None, &run_user, &temp, uid).unwrap();
        assert_eq!(dir, session.join("fkq-cred"));
        assert!(in_runtime);

        // One open to others is not a runtime directory to trust.
        std::fs::set_permissions(&session, mode(0o755)).unwrap();
        let (dir, _) = choose_dir(None, &run_user, &temp, uid).unwrap();
        assert_eq!(dir, temp.join(format!("fkq-cred-{uid}")));

        // XDG_RUNTIME_DIR, when set, comes first.
        let xdg = base.join("xdg");
        std::fs::create_dir(&xdg).unwrap();
        let (dir, in_runtime) =
            choose_dir(Some(xdg.clone()), &run_user, &temp, uid).unwrap();
        assert_eq!(dir, xdg.join("fkq-cred"));
        assert!(in_runtime);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn an_xdg_runtime_dir_writable_by_others_is_refused() {
        let base = scratch("xdg-loose");
        let runtime = base.join("runtime");
        std::fs::create_dir(&runtime).unwrap();
        let (run_user, temp) = (base.join("run"), base.join("tmp"));
        for mode in [0o777, 0o720, 0o702] {
            let perms = std::fs::Permissions::from_mode(mode);
            std::fs::set_permissions(&runtime, perms).unwrap();
            let err = choose_dir(
                Some(runtime.clone()),
                &run_user,
                &temp,
                current_uid(),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("writable by other users"), "{err}");
        }
        let perms = std::fs::Permissions::from_mode(0o700);
        std::fs::set_permissions(&runtime, perms).unwrap();
        let (dir, in_runtime) =
            choose_dir(Some(runtime.clone()), &run_user, &temp, current_uid())
                .unwrap();
        assert_eq!((dir, in_runtime), (runtime.join("fkq-cred"), true));
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn an_xdg_runtime_dir_of_another_user_is_refused_with_the_reason() {
        let base = scratch("xdg-other");
        let (run_user, temp) = (base.join("run"), base.join("tmp"));
        let other = current_uid().wrapping_add(1);
        let err = choose_dir(Some(base.clone()), &run_user, &temp, other)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("belongs to uid") && err.contains("unset it"),
            "{err}"
        );
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn the_lock_sits_beside_the_socket() {
        let location =
            socket_location(Some(Path::new("/x/y/my.sock"))).unwrap();
        assert_eq!(location.lock_path(), PathBuf::from("/x/y/my.sock.lock"));
        assert!(!location.in_runtime_dir);
    }

    #[test]
    fn too_long_path_names_the_limit() {
        let long = PathBuf::from(format!("/tmp/{}", "x".repeat(200)));
        let err = socket_location(Some(&long)).unwrap_err().to_string();
        assert!(err.contains(&max_socket_path().to_string()), "{err}");
        assert!(err.contains("FKQ_CRED_SOCKET"), "{err}");
    }
}

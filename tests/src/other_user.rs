//! Running binaries as another user (uid 65534, "nobody") through
//! `setpriv`, for tests of what other users on the machine can reach.
//!
//! Switching users needs root. CI runs as root, so there these tests always
//! run; a developer running the suite unprivileged sees each of them say
//! that it skipped, never a silent pass.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The uid and gid the tests play the other user with.
pub const NOBODY: u32 = 65534;

/// Whether the test process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Returns true, after saying so on stderr, when `test` cannot run because
/// the process is not root; `why` says what root is needed for. Call it
/// first and return when it is true.
pub fn skip_unless_root(test: &str, why: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("SKIPPED {test}: needs root {why} (CI runs as root)");
    true
}

/// Copies of workspace binaries in a directory every user may enter, since
/// the checkout itself may sit under a home directory only root can enter.
pub struct Staged {
    dir: tempfile::TempDir,
}

impl Staged {
    /// Copies the named binaries of this workspace.
    pub fn binaries(names: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("fkq-staged-")
            .tempdir()
            .expect("create the staging directory");
        set_mode(dir.path(), 0o755);
        for name in names {
            let to = dir.path().join(name);
            std::fs::copy(crate::harness::binary(name), &to)
                .unwrap_or_else(|e| panic!("stage {name}: {e}"));
            set_mode(&to, 0o755);
        }
        Self { dir }
    }

    /// The staged copy of `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A command that runs `program` as [`NOBODY`] with no supplementary
/// groups, taking over the program arguments and environment of `like`
/// (a sandbox command, say).
pub fn as_nobody(program: &Path, like: Option<&Command>) -> Command {
    let mut command = Command::new("setpriv");
    command
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups")
        .arg("--")
        .arg(program);
    if let Some(like) = like {
        command.args(like.get_args());
        for (key, value) in like.get_envs() {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
    }
    command
}

/// Sets the permission bits of `path`.
pub fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// Gives `path` to [`NOBODY`].
pub fn give_to_nobody(path: &Path) {
    std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY))
        .unwrap_or_else(|e| panic!("chown {NOBODY} {}: {e}", path.display()));
}

/// The owner uid of a file, or of `/proc/<pid>/...` entries.
pub fn owner_of(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .uid()
}

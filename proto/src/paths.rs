//! Where the config file lives. The daemon reads it and `fkq-cred
//! configure` writes it, so both call [`config_path`] and cannot disagree.
//! Likewise the log of a daemon a client started: the daemon writes it,
//! and the client names it when that daemon does not come up.

use std::env;
use std::path::{Path, PathBuf};

/// The environment variable naming the config file, like the daemon's
/// `--config`.
pub const CONFIG_ENV: &str = "FKQ_CRED_CONFIG";

/// The config file's name inside the config directory.
pub const CONFIG_NAME: &str = "config.toml";

/// The default config file: `$XDG_CONFIG_HOME/fkq-cred/config.toml` on
/// Linux, the platform's config directory elsewhere. `None` when no home
/// directory can be found.
pub fn default_config_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "fkq-cred")
        .map(|d| d.config_dir().join(CONFIG_NAME))
}

/// The log file's name inside the state directory.
pub const DAEMON_LOG_NAME: &str = "fkq-credd.log";

/// The log of a daemon started by `fkq-cred`:
/// `$XDG_STATE_HOME/fkq-cred/fkq-credd.log` (`~/.local/state/...`) on
/// Linux, the local data directory elsewhere. `None` when no home
/// directory can be found.
pub fn daemon_log_path() -> Option<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "fkq-cred")?;
    let dir = dirs.state_dir().unwrap_or_else(|| dirs.data_local_dir());
    Some(dir.join(DAEMON_LOG_NAME))
}

/// The config file to use: `explicit` (a `--config` argument), else
/// `$FKQ_CRED_CONFIG`, else [`default_config_path`].
pub fn config_path(explicit: Option<&Path>) -> Option<PathBuf> {
    let from_env =
        env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()).map(PathBuf::from);
    explicit.map(Path::to_path_buf).or(from_env).or_else(default_config_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_path_wins_over_everything() {
        let path = Path::new("/somewhere/else.toml");
        assert_eq!(config_path(Some(path)).as_deref(), Some(path));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_default_lives_in_the_xdg_config_dir() {
        // Only read here, never set: tests run in parallel threads.
        if let Some(dir) = env::var_os("XDG_CONFIG_HOME") {
            let expected = PathBuf::from(dir).join("fkq-cred/config.toml");
            assert_eq!(default_config_path(), Some(expected));
        } else if let Some(path) = default_config_path() {
            assert!(path.ends_with(".config/fkq-cred/config.toml"), "{path:?}");
        }
    }
}

//! Editing `config.toml` for `fkq-cred configure`: one profile's keys
//! change, and everything else (comments, layout, other profiles, keys
//! fkq-cred does not know) stays as the user wrote it. The file is
//! replaced atomically, so a crash leaves the old one or the new one.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use toml_edit::{Array, DocumentMut, Item, Table, Value};

use crate::error::CliError;

/// The comment a new config file starts with.
const HEADER: &str = "\
# fkq-cred profiles, read by fkq-credd. `fkq-cred configure` edits this
# file and keeps your comments; the README lists every key.
";

/// A config file loaded for editing.
pub struct ConfigFile {
    path: PathBuf,
    doc: DocumentMut,
}

impl ConfigFile {
    /// Reads `path`; a missing file is an empty document.
    pub fn load(path: &Path) -> Result<Self, CliError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => HEADER.into(),
            Err(e) => {
                return Err(CliError::failure(format!(
                    "cannot read {}: {e}",
                    path.display()
                )))
            }
        };
        let mut file = Self::parse(&text).map_err(|e| {
            CliError::new(
                fkq_cred_proto::exit::CONFIG,
                format!(
                    "{} is not valid TOML, so it was left alone: {e}",
                    path.display()
                ),
            )
        })?;
        file.path = path.to_path_buf();
        Ok(file)
    }

    /// Parses the text of a config file, not tied to a path yet.
    pub fn parse(text: &str) -> Result<Self, toml_edit::TomlError> {
        Ok(Self { path: PathBuf::new(), doc: text.parse()? })
    }

    /// `default_profile`, if set.
    pub fn default_profile(&self) -> Option<&str> {
        self.doc.get("default_profile").and_then(Item::as_str)
    }

    /// Sets `default_profile`.
    pub fn set_default_profile(&mut self, name: &str) {
        set_value(self.doc.as_table_mut(), "default_profile", name.into());
    }

    /// The names of the profiles in the file.
    pub fn profile_names(&self) -> Vec<String> {
        self.doc
            .get("profiles")
            .and_then(Item::as_table_like)
            .map(|t| t.iter().map(|(k, _)| k.to_owned()).collect())
            .unwrap_or_default()
    }

    /// A string key of a profile.
    pub fn get(&self, profile: &str, key: &str) -> Option<String> {
        self.doc
            .get("profiles")?
            .get(profile)?
            .get(key)?
            .as_str()
            .map(str::to_owned)
    }

    /// A profile's `password_command`.
    pub fn password_command(&self, profile: &str) -> Option<Vec<String>> {
        let array =
            self.doc.get("profiles")?.get(profile)?.get("password_command")?;
        array
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect()
    }

    /// Sets a string key of a profile, creating the profile if needed.
    pub fn set(
        &mut self,
        profile: &str,
        key: &str,
        value: &str,
    ) -> Result<(), CliError> {
        set_value(self.profile_table(profile)?, key, value.into());
        Ok(())
    }

    /// Sets or (with `None`) removes a profile's `password_command`.
    pub fn set_password_command(
        &mut self,
        profile: &str,
        command: Option<&[String]>,
    ) -> Result<(), CliError> {
        let table = self.profile_table(profile)?;
        match command {
            Some(words) => {
                let array: Array = words.iter().map(String::as_str).collect();
                set_value(table, "password_command", Value::Array(array));
            }
            None => {
                table.remove("password_command");
            }
        }
        Ok(())
    }

    /// Puts a comment above the profile's table header.
    pub fn set_profile_comment(
        &mut self,
        profile: &str,
        comment: &str,
    ) -> Result<(), CliError> {
        let table = self.profile_table(profile)?;
        let mut prefix = String::from("\n");
        for line in comment.lines() {
            prefix.push_str(&format!("# {line}\n"));
        }
        table.decor_mut().set_prefix(prefix);
        Ok(())
    }

    /// The text the file will hold.
    pub fn render(&self) -> String {
        self.doc.to_string()
    }

    /// Replaces the file: written beside it, flushed, then renamed over
    /// it. A symlinked file (a dotfiles manager's) is written through the
    /// link. The mode of an existing file is kept; a new one is 0600.
    pub fn save(&self) -> Result<(), CliError> {
        let failed = |what: &str, path: &Path, e: io::Error| {
            CliError::failure(format!(
                "cannot {what} {}: {e}; the old file is unchanged",
                path.display()
            ))
        };
        let target = std::fs::canonicalize(&self.path)
            .unwrap_or_else(|_| self.path.clone());
        let dir = target.parent().unwrap_or(Path::new("."));
        create_private_dir(dir).map_err(|e| failed("create", dir, e))?;
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        let temp =
            dir.join(format!(".{name}.fkq-cred-{}.tmp", std::process::id()));
        let result = write_new(&temp, self.render().as_bytes(), &target)
            .map_err(|e| failed("write", &temp, e))
            .and_then(|()| {
                std::fs::rename(&temp, &target)
                    .map_err(|e| failed("replace", &target, e))
            });
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }

    fn profile_table(&mut self, profile: &str) -> Result<&mut Table, CliError> {
        let root = self.doc.as_table_mut();
        if !root.contains_key("profiles") {
            let mut profiles = Table::new();
            profiles.set_implicit(true);
            root.insert("profiles", Item::Table(profiles));
        }
        let not_a_table = |what: &str| {
            CliError::new(
                fkq_cred_proto::exit::CONFIG,
                format!("{what} is not a table; fix the file by hand"),
            )
        };
        let profiles = root["profiles"]
            .as_table_mut()
            .ok_or_else(|| not_a_table("`profiles`"))?;
        if !profiles.contains_key(profile) {
            profiles.insert(profile, Item::Table(Table::new()));
        }
        profiles[profile]
            .as_table_mut()
            .ok_or_else(|| not_a_table(&format!("[profiles.{profile}]")))
    }
}

/// Sets `key`, keeping the comments and spacing around an existing value.
fn set_value(table: &mut Table, key: &str, mut value: Value) {
    if let Some(old) = table.get(key).and_then(Item::as_value) {
        *value.decor_mut() = old.decor().clone();
    } else {
        value.decor_mut().set_prefix(" ");
    }
    table.insert(key, Item::Value(value));
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

fn write_new(temp: &Path, bytes: &[u8], target: &Path) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mode = std::fs::metadata(target)
            .map_or(0o600, |m| m.permissions().mode() & 0o777);
        options.mode(mode);
    }
    let mut file = options.open(temp)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER_FILE: &str = r#"# my FormKiQ deployments
default_profile = "prod"   # the one scripts use

# production: do not touch
[profiles.prod]
auth_url = "https://auth.prod.example.com/" # from the stack
api_url = "https://api.prod.example.com/"
username = "me@example.com"
min_valid = "2m"  # my scripts are slow

[profiles.staging]
# staging is rebuilt weekly
auth_url = "https://auth.staging.example.com/"
api_url = "https://api.staging.example.com/"
"#;

    fn edited(edit: impl FnOnce(&mut ConfigFile)) -> String {
        let mut file = ConfigFile {
            path: PathBuf::from("/x/config.toml"),
            doc: USER_FILE.parse().unwrap(),
        };
        edit(&mut file);
        file.render()
    }

    #[test]
    fn changing_a_profile_keeps_every_comment_and_the_other_profile() {
        let text = edited(|f| {
            f.set("prod", "auth_url", "https://auth2.prod.example.com/")
                .unwrap();
            f.set("prod", "username", "you@example.com").unwrap();
        });
        let expected = USER_FILE
            .replace("https://auth.prod", "https://auth2.prod")
            .replace("me@example.com", "you@example.com");
        assert_eq!(text, expected);
    }

    #[test]
    fn a_new_profile_is_appended_and_the_rest_is_byte_for_byte_the_same() {
        let text = edited(|f| {
            f.set("dev", "auth_url", "http://127.0.0.1:9000/").unwrap();
            f.set_password_command(
                "dev",
                Some(&["pass".into(), "show".into(), "fkq dev".into()]),
            )
            .unwrap();
        });
        let (before, added) = text.split_at(USER_FILE.len());
        assert_eq!(before, USER_FILE);
        assert_eq!(
            added,
            "\n[profiles.dev]\nauth_url = \"http://127.0.0.1:9000/\"\npassword_command = [\"pass\", \"show\", \"fkq dev\"]\n"
        );
    }

    #[test]
    fn values_read_back_as_written() {
        let text = edited(|f| {
            f.set("prod", "username", "quote\"and\\slash").unwrap();
            f.set_password_command("prod", Some(&["a'b".into()])).unwrap();
        });
        let file = ConfigFile {
            path: PathBuf::from("/x"),
            doc: text.parse().unwrap(),
        };
        assert_eq!(
            file.get("prod", "username").as_deref(),
            Some("quote\"and\\slash")
        );
        assert_eq!(file.password_command("prod"), Some(vec!["a'b".into()]));
        assert_eq!(file.default_profile(), Some("prod"));
        assert_eq!(file.profile_names(), ["prod", "staging"]);
    }
}

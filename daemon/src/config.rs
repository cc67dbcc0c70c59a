//! The daemon's configuration: profiles read from `config.toml`, or one
//! profile built from the environment when there is no file.
//!
//! ```toml
//! default_profile = "prod"
//!
//! [profiles.prod]
//! auth_url = "https://abc.execute-api.us-east-1.amazonaws.com/"
//! api_url = "https://def.execute-api.us-east-1.amazonaws.com/"
//! username = "me@example.com"
//!
//! [profiles.direct]            # talking to the Cognito user pool itself
//! provider = "cognito"
//! region = "us-east-1"
//! client_id = "1example23456789"
//! api_url = "https://def.execute-api.us-east-1.amazonaws.com/"
//! ```
//!
//! Top-level keys besides the profiles: `default_profile`, and
//! `lock_memory = true`, which has the daemon lock all its memory so no
//! secret is ever written to swap (see [`crate::harden::lock_memory`]).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;
use thiserror::Error;

mod provider;

use provider::provider_of;
pub use provider::Provider;

/// The environment variable naming the config file, like `--config`.
pub const CONFIG_ENV: &str = fkq_cred_proto::paths::CONFIG_ENV;

/// The name of the profile built from environment variables.
pub const ENV_PROFILE: &str = "default";

/// How long a token must stay valid when handed out, unless the caller or
/// profile says otherwise: long enough for a script's next few requests.
pub const DEFAULT_MIN_VALID: Duration = Duration::from_secs(60);

/// How long an HTTP exchange with the auth server may take in all.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// The lifetime assumed for a token that states none (no `ExpiresIn`, no
/// JWT `exp`): a self-hosted server's API key. An hour keeps it re-checked
/// regularly without bothering the server.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// The longest pause between retries after transient failures.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(60);

/// A problem with the configuration, naming the file and what to change.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("cannot read config file {path:?}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("config file {path:?} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said, with the line.
        message: String,
    },
    /// A profile's values are unusable.
    #[error("profile {profile:?} in {source_name}: {message}")]
    Profile {
        /// The profile name.
        profile: String,
        /// The file, or "the environment".
        source_name: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// Every profile the daemon serves.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// Where the profiles came from, for messages.
    pub source_name: String,
    /// The profile used when a request names none.
    pub default_profile: Option<String>,
    /// Profiles by name.
    pub profiles: BTreeMap<String, Profile>,
    /// `autostart`: whether a client may start the daemon when it finds
    /// none; `None` means the default, yes. Read by a daemon started with
    /// `--autostart`, so the client never parses the config.
    pub autostart: Option<bool>,
    /// `idle_exit`: a daemon started on demand exits after this long
    /// without a request other than `status` or `ping`; `None`, never.
    pub idle_exit: Option<Duration>,
    /// Lock all of the daemon's memory (`mlockall`) so that no secret is
    /// ever written to swap. Read at start; a reload does not change it.
    pub lock_memory: bool,
}

/// One FormKiQ deployment and the user to log in as.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The profile's name.
    pub name: String,
    /// Who hands out the tokens.
    pub provider: Provider,
    /// Where logins go: the auth endpoint (stack output `UserAuthApiUrl`
    /// or `CognitoApiEndpoint`), or with `provider = "cognito"` the user
    /// pool's API (`cognito_endpoint`, by default the regional one).
    pub auth_url: Url,
    /// The API endpoint: stack output `HttpApiUrl`.
    pub api_url: Url,
    /// The user to log in as, unless `login` names another.
    pub username: Option<String>,
    /// Extra CA certificates (PEM) to trust besides the system store.
    pub ca_file: Option<PathBuf>,
    /// Minimum remaining validity of a token handed out.
    pub min_valid: Duration,
    /// Refresh this long before expiry; `None` means the larger of five
    /// minutes and a tenth of the lifetime.
    pub refresh_margin: Option<Duration>,
    /// Lifetime assumed for tokens that state none.
    pub default_lifetime: Duration,
    /// Limit for one HTTP exchange.
    pub timeout: Duration,
    /// Longest pause between retries after transient failures.
    pub retry_max: Duration,
    /// A command that prints the password, for unattended logins.
    pub password_command: Option<Vec<String>>,
    /// Keep the password typed at `login` in memory for re-logins.
    pub remember_password: bool,
}

impl Profile {
    /// Whether the daemon can log in again without the user.
    pub fn has_password_source(&self) -> bool {
        self.password_command.is_some() || self.remember_password
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    default_profile: Option<String>,
    autostart: Option<bool>,
    idle_exit: Option<DurationValue>,
    #[serde(default)]
    lock_memory: bool,
    #[serde(default)]
    profiles: BTreeMap<String, FileProfile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileProfile {
    provider: Option<String>,
    auth_url: Option<String>,
    region: Option<String>,
    client_id: Option<String>,
    cognito_endpoint: Option<String>,
    api_url: String,
    username: Option<String>,
    ca_file: Option<PathBuf>,
    min_valid: Option<DurationValue>,
    refresh_margin: Option<DurationValue>,
    default_lifetime: Option<DurationValue>,
    timeout: Option<DurationValue>,
    retry_max: Option<DurationValue>,
    password_command: Option<Vec<String>>,
    #[serde(default)]
    remember_password: bool,
}

/// A duration written as `"90s"`, `"5m"`, `"1h 30m"` or plain seconds.
#[derive(Deserialize)]
#[serde(untagged)]
enum DurationValue {
    Seconds(u64),
    Text(String),
}

impl DurationValue {
    fn resolve(&self, key: &str) -> Result<Duration, String> {
        match self {
            Self::Seconds(s) => Ok(Duration::from_secs(*s)),
            Self::Text(t) => humantime::parse_duration(t)
                .map_err(|e| format!("{key} = {t:?} is not a duration ({e}); write e.g. \"90s\" or \"5m\"")),
        }
    }
}

/// The default config file path: `$XDG_CONFIG_HOME/fkq-cred/config.toml`
/// on Linux, the platform's config directory elsewhere.
pub fn default_path() -> Option<PathBuf> {
    fkq_cred_proto::paths::default_config_path()
}

impl Config {
    /// Loads the config from `path` (or `FKQ_CRED_CONFIG`, or the default
    /// path). With no file there, builds the environment profile, and with
    /// no environment either, returns a config with no profiles: requests
    /// then get an error saying how to configure one.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let env_path = std::env::var_os(CONFIG_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let path =
            path.map(Path::to_path_buf).or(env_path).or_else(default_path);
        if let Some(path) = path {
            match std::fs::read_to_string(&path) {
                Ok(text) => return Self::parse(&text, &path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(ConfigError::Read { path, source }),
            }
        }
        Self::from_env(|name| std::env::var(name).ok())
    }

    /// Parses the text of a config file.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| {
            ConfigError::Parse { path: path.into(), message: e.to_string() }
        })?;
        let source_name = path.display().to_string();
        let mut profiles = BTreeMap::new();
        for (name, raw) in file.profiles {
            let profile = build_profile(&name, raw).map_err(|message| {
                ConfigError::Profile {
                    profile: name.clone(),
                    source_name: source_name.clone(),
                    message,
                }
            })?;
            profiles.insert(name, profile);
        }
        if let Some(default) = &file.default_profile {
            if !profiles.contains_key(default) {
                return Err(ConfigError::Parse {
                    path: path.into(),
                    message: format!("default_profile = {default:?} names no [profiles.{default}] table"),
                });
            }
        }
        let idle_exit = file
            .idle_exit
            .as_ref()
            .map(|v| v.resolve("idle_exit"))
            .transpose()
            .map_err(|message| ConfigError::Parse {
                path: path.into(),
                message,
            })?
            .filter(|d| !d.is_zero());
        Ok(Self {
            source_name,
            default_profile: file.default_profile,
            profiles,
            autostart: file.autostart,
            idle_exit,
            lock_memory: file.lock_memory,
        })
    }

    /// Whether a client may start the daemon on demand.
    pub fn autostart(&self) -> bool {
        self.autostart.unwrap_or(true)
    }

    /// Builds the environment-only profile from `FKQ_AUTH_URL` (or the
    /// guide's `COGNITO_API_ENDPOINT_URL`), `FKQ_API_URL` (or
    /// `HTTP_API_URL`) and `FKQ_USERNAME` (or `USERNAME`).
    pub fn from_env(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let pick = |a: &str, b: &str| {
            var(a)
                .filter(|v| !v.is_empty())
                .or_else(|| var(b).filter(|v| !v.is_empty()))
        };
        let source_name = "the environment".to_string();
        let Some(auth_url) = pick("FKQ_AUTH_URL", "COGNITO_API_ENDPOINT_URL")
        else {
            return Ok(Self { source_name, ..Self::default() });
        };
        let Some(api_url) = pick("FKQ_API_URL", "HTTP_API_URL") else {
            return Err(ConfigError::Profile {
                profile: ENV_PROFILE.into(),
                source_name,
                message: "FKQ_AUTH_URL is set but FKQ_API_URL (or HTTP_API_URL) is not; \
                          set it to the stack output HttpApiUrl"
                    .into(),
            });
        };
        let raw = FileProfile {
            provider: None,
            auth_url: Some(auth_url),
            region: None,
            client_id: None,
            cognito_endpoint: None,
            api_url,
            username: pick("FKQ_USERNAME", "USERNAME"),
            ca_file: pick("FKQ_CA_FILE", "FKQ_CA_FILE").map(PathBuf::from),
            min_valid: None,
            refresh_margin: None,
            default_lifetime: None,
            timeout: None,
            retry_max: None,
            password_command: None,
            remember_password: false,
        };
        let profile = build_profile(ENV_PROFILE, raw).map_err(|message| {
            ConfigError::Profile {
                profile: ENV_PROFILE.into(),
                source_name: source_name.clone(),
                message,
            }
        })?;
        let profiles = BTreeMap::from([(ENV_PROFILE.to_string(), profile)]);
        Ok(Self {
            source_name,
            default_profile: Some(ENV_PROFILE.into()),
            profiles,
            ..Self::default()
        })
    }

    /// The name of the profile used when a request names none.
    pub fn default_name(&self) -> Option<&str> {
        if let Some(name) = &self.default_profile {
            return Some(name);
        }
        if self.profiles.len() == 1 {
            return self.profiles.keys().next().map(String::as_str);
        }
        self.profiles.contains_key(ENV_PROFILE).then_some(ENV_PROFILE)
    }
}

fn build_profile(name: &str, raw: FileProfile) -> Result<Profile, String> {
    let (provider, auth_url) = provider_of(&raw)?;
    let api_url = parse_url("api_url", &raw.api_url, "HttpApiUrl")?;
    let duration =
        |v: &Option<DurationValue>, key: &str, default: Duration| match v {
            Some(v) => v.resolve(key),
            None => Ok(default),
        };
    if let Some(command) = &raw.password_command {
        if command.is_empty() || command[0].is_empty() {
            return Err("password_command must name a program, e.g. [\"pass\", \"show\", \"fkq\"]".into());
        }
    }
    let timeout = duration(&raw.timeout, "timeout", DEFAULT_TIMEOUT)?;
    if timeout.is_zero() {
        return Err("timeout must be more than zero".into());
    }
    Ok(Profile {
        name: name.into(),
        provider,
        auth_url,
        api_url,
        username: raw.username.filter(|u| !u.is_empty()),
        ca_file: raw.ca_file,
        min_valid: duration(&raw.min_valid, "min_valid", DEFAULT_MIN_VALID)?,
        refresh_margin: raw
            .refresh_margin
            .as_ref()
            .map(|v| v.resolve("refresh_margin"))
            .transpose()?,
        default_lifetime: duration(
            &raw.default_lifetime,
            "default_lifetime",
            DEFAULT_LIFETIME,
        )?,
        timeout,
        retry_max: duration(&raw.retry_max, "retry_max", DEFAULT_RETRY_MAX)?,
        password_command: raw.password_command,
        remember_password: raw.remember_password,
    })
}

/// Parses an endpoint URL: `https://`, or `http://` for loopback hosts only,
/// since a password sent over plain HTTP to another machine is a password
/// given away.
fn parse_url(key: &str, text: &str, stack_output: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim())
        .map_err(|e| format!("{key} = {text:?} is not a URL ({e}); use the stack output {stack_output}"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(format!(
                "{key} = {text:?} uses plain http:// to a host that is not loopback; \
                 use https:// (http:// is allowed only for 127.0.0.1, ::1 and localhost)"
            ));
        }
        other => {
            return Err(format!(
                "{key} = {text:?} has scheme {other:?}; use https://"
            ))
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{key} = {text:?} has no host"));
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/cfg/config.toml"))
    }

    #[test]
    fn profiles_parse_with_defaults_and_durations() {
        let config = parse(
            r#"
            default_profile = "prod"
            [profiles.prod]
            auth_url = "https://auth.example.com"
            api_url = "https://api.example.com/"
            username = "me@example.com"
            min_valid = "2m"
            timeout = 5
            "#,
        )
        .unwrap();
        let prod = &config.profiles["prod"];
        assert_eq!(prod.min_valid, Duration::from_secs(120));
        assert_eq!(prod.timeout, Duration::from_secs(5));
        assert_eq!(prod.default_lifetime, DEFAULT_LIFETIME);
        assert_eq!(config.default_name(), Some("prod"));
    }

    #[test]
    fn password_sources_parse_and_an_empty_command_is_refused() {
        let base =
            "[profiles.p]\nauth_url = \"https://a\"\napi_url = \"https://b\"\n";
        let config = parse(&format!(
            "{base}password_command = [\"pass\", \"show\", \"fkq\"]\nremember_password = true\n"
        ))
        .unwrap();
        let p = &config.profiles["p"];
        assert_eq!(
            p.password_command.as_deref(),
            Some(&["pass".to_string(), "show".into(), "fkq".into()][..])
        );
        assert!(p.remember_password && p.has_password_source());
        let err = parse(&format!("{base}password_command = []\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("password_command must name a program"), "{err}");
    }

    #[test]
    fn plain_http_is_refused_unless_loopback() {
        let text = |auth: &str| {
            format!("[profiles.p]\nauth_url = \"{auth}\"\napi_url = \"https://api.example.com\"\n")
        };
        assert!(parse(&text("http://127.0.0.1:8080/")).is_ok());
        assert!(parse(&text("http://localhost:8080/")).is_ok());
        assert!(parse(&text("http://[::1]:8080/")).is_ok());
        let err =
            parse(&text("http://auth.example.com/")).unwrap_err().to_string();
        assert!(err.contains("https://") && err.contains("\"p\""), "{err}");
    }

    #[test]
    fn typos_and_dangling_defaults_are_reported_with_the_file() {
        let err = parse("[profiles.p]\nauth_url = \"https://a\"\napi_url = \"https://b\"\nusernme = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("usernme") && err.contains("/cfg/config.toml"),
            "{err}"
        );
        let err =
            parse("default_profile = \"nope\"\n").unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn autostart_and_idle_exit_are_top_level_keys() {
        let config = parse("autostart = false\nidle_exit = \"8h\"\n").unwrap();
        assert!(!config.autostart());
        assert_eq!(config.idle_exit, Some(Duration::from_secs(8 * 3600)));

        let config = parse("idle_exit = 0\n").unwrap();
        assert!(config.autostart(), "on unless turned off");
        assert_eq!(config.idle_exit, None, "zero means never");

        let err = parse("idle_exit = \"soon\"\n").unwrap_err().to_string();
        assert!(err.contains("idle_exit") && err.contains("/cfg"), "{err}");
    }

    #[test]
    fn lock_memory_is_a_top_level_switch_that_defaults_to_off() {
        let profile =
            "[profiles.p]\nauth_url = \"https://a\"\napi_url = \"https://b\"\n";
        assert!(!parse(profile).unwrap().lock_memory);
        let on = parse(&format!("lock_memory = true\n{profile}")).unwrap();
        assert!(on.lock_memory);
        let err = parse("lock_memory = \"yes\"\n").unwrap_err().to_string();
        assert!(err.contains("lock_memory"), "{err}");
    }

    #[test]
    fn no_key_can_turn_tls_verification_off() {
        // Extra trust comes only from ca_file, the OS store or
        // SSL_CERT_FILE; a switch that skips verification does not exist,
        // and a config that tries one is refused, not silently ignored.
        for key in [
            "insecure = true",
            "danger_accept_invalid_certs = true",
            "verify_tls = false",
            "tls_verify = false",
        ] {
            let text = format!("[profiles.p]\nauth_url = \"https://a\"\napi_url = \"https://b\"\n{key}\n");
            let err = parse(&text).unwrap_err().to_string();
            let name = key.split(' ').next().unwrap();
            assert!(err.contains(name), "{key}: {err}");
        }
    }

    #[test]
    fn environment_profile_uses_the_guides_variable_names() {
        let env = |name: &str| match name {
            "COGNITO_API_ENDPOINT_URL" => {
                Some("https://auth.example.com/".into())
            }
            "HTTP_API_URL" => Some("https://api.example.com/".into()),
            "USERNAME" => Some("me@example.com".into()),
            _ => None,
        };
        let config = Config::from_env(env).unwrap();
        let profile = &config.profiles[ENV_PROFILE];
        assert_eq!(profile.auth_url.as_str(), "https://auth.example.com/");
        assert_eq!(profile.username.as_deref(), Some("me@example.com"));
        assert_eq!(config.default_name(), Some(ENV_PROFILE));
        assert!(Config::from_env(|_| None).unwrap().profiles.is_empty());
    }
}

//! A FormKiQ emulator: the auth and API endpoints of a FormKiQ deployment,
//! served on loopback so tests and demos run without an AWS account. It
//! speaks each dialect of `shared/FORMKIQ-AUTH.md` ([`Variant`]): the AWS
//! stack, the self-hosted server, and a Keycloak-backed server; it can hold
//! users who must set a new password first, and can lack `/login/refresh`.
//!
//! - [`start`] runs it inside the current tokio runtime, [`Emulator`].
//! - [`process::EmulatorProcess`] runs the `formkiq-emulator` binary.
//! - [`http_client`] is a small blocking HTTPS client for tests.
//! - [`Counters`] say how often each endpoint was asked and answered.
//! - [`Fault`]s make an endpoint fail, stall, drop the connection or send
//!   odd replies on purpose; [`Settings`] flip behaviour at run time.

mod clock;
mod control;
mod counters;
mod faults;
mod handlers;
pub mod http_client;
mod jwks;
pub mod process;
mod routes;
mod server;
pub(crate) mod tls;
mod tokens;
mod users;

#[cfg(test)]
mod tests;

use std::fmt;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

pub use clock::{Clock, ManualClock};
pub use control::{Settings, SETTINGS_PATH};
pub use counters::{Counters, Endpoint};
pub use faults::{Fault, FAULTS_PATH};
pub use tls::{client_config_trusting, CA_FILE_NAME};
pub use tokens::{AccessClaims, IdClaims, KeycloakClaims, TokenError};

use control::LiveSettings;
use counters::CounterSet;
use faults::FaultQueue;
use routes::{AppState, Role};
use tokens::{ClaimStyle, TokenIssuer};
use users::Directory;

/// The user an emulator knows when none is configured.
pub const DEFAULT_USERNAME: &str = "alice@example.com";

/// The password of [`DEFAULT_USERNAME`].
pub const DEFAULT_PASSWORD: &str = "correct-horse-battery-staple";

/// The default access and id token lifetime: one hour, short enough that a
/// long demo sees a refresh, within the 5..1440 minutes FormKiQ allows.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The default refresh token lifetime: 30 days, FormKiQ's default.
pub const DEFAULT_REFRESH_LIFETIME: Duration = Duration::from_secs(2_592_000);

/// The path of the counters on the auth server.
pub const COUNTERS_PATH: &str = "_emulator/counters";

/// The path on the auth server that zeroes the counters.
pub const RESET_PATH: &str = "_emulator/reset";

/// A user the emulator accepts, given on the command line as
/// `NAME:PASSWORD`.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// The user name sent as `username` to `/login`.
    pub name: String,
    /// The password sent as `password` to `/login`.
    pub password: String,
}

impl User {
    /// A user with the given name and password.
    pub fn new(name: impl Into<String>, password: impl Into<String>) -> Self {
        Self { name: name.into(), password: password.into() }
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("password", &"[redacted]")
            .finish()
    }
}

impl FromStr for User {
    type Err = anyhow::Error;

    /// Splits at the first `:`, so a password may itself contain colons.
    fn from_str(spec: &str) -> anyhow::Result<Self> {
        match spec.split_once(':') {
            Some((name, password)) if !name.is_empty() => {
                Ok(Self::new(name, password))
            }
            _ => anyhow::bail!(
                "user must be given as NAME:PASSWORD with a non-empty name"
            ),
        }
    }
}

/// Which kind of FormKiQ deployment the emulator plays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Variant {
    /// The AWS stack (variant A): Cognito-shaped JWTs with `ExpiresIn`.
    #[default]
    Aws,
    /// The self-hosted server (variant B): one API key for the run, not a
    /// JWT, no `ExpiresIn`, no `TokenType`, an empty `RefreshToken`, and
    /// errors with a `code`.
    SelfHosted,
    /// A Keycloak-backed server: JWTs whose only expiry is `exp` (with
    /// `iat`), no `ExpiresIn`, and Keycloak's claim names.
    Keycloak,
}

impl Variant {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Aws => "aws",
            Variant::SelfHosted => "self-hosted",
            Variant::Keycloak => "keycloak",
        }
    }
}

impl FromStr for Variant {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> anyhow::Result<Self> {
        match name {
            "aws" => Ok(Variant::Aws),
            "self-hosted" => Ok(Variant::SelfHosted),
            "keycloak" => Ok(Variant::Keycloak),
            _ => anyhow::bail!(
                "unknown variant {name:?}; use aws, self-hosted or keycloak"
            ),
        }
    }
}

/// How to run an emulator.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The users that can log in.
    pub users: Vec<User>,
    /// Lifetime of access and id tokens, whole seconds, at least one.
    pub token_lifetime: Duration,
    /// Lifetime of refresh tokens, whole seconds, at least one.
    pub refresh_lifetime: Duration,
    /// Serve plain HTTP instead of HTTPS.
    pub plain_http: bool,
    /// Where `ca.pem` is written; made if missing. The default is a fresh
    /// directory under the system's temporary directory.
    pub state_dir: PathBuf,
    /// Port of the auth server on 127.0.0.1; 0 lets the OS choose.
    pub auth_port: u16,
    /// Port of the API server on 127.0.0.1; 0 lets the OS choose.
    pub api_port: u16,
    /// The clock tokens are dated and checked with.
    pub clock: Clock,
    /// Each refresh returns a new refresh token and invalidates the old
    /// one; [`Emulator::set_rotate_refresh_tokens`] changes it later.
    pub rotate_refresh_tokens: bool,
    /// The kind of deployment to play.
    pub variant: Variant,
    /// Users (by name, each one of `users`) created by an administrator:
    /// their login answers `NEW_PASSWORD_REQUIRED` until they set one
    /// through `POST /respondToAuthChallenge`.
    pub force_change_password: Vec<String>,
    /// Answer `/login/refresh` with 404, as older stacks do.
    pub no_refresh_endpoint: bool,
    /// A JWKS document whose RSA keys `/sites` also trusts (RS256), as
    /// API Gateway trusts the user pool it is configured with.
    pub trusted_jwks: Option<String>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            users: vec![User::new(DEFAULT_USERNAME, DEFAULT_PASSWORD)],
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            refresh_lifetime: DEFAULT_REFRESH_LIFETIME,
            plain_http: false,
            state_dir: fresh_state_dir(),
            auth_port: 0,
            api_port: 0,
            clock: Clock::system(),
            rotate_refresh_tokens: false,
            variant: Variant::Aws,
            force_change_password: Vec::new(),
            no_refresh_endpoint: false,
            trusted_jwks: None,
        }
    }
}

/// The one JSON line the binary prints on stdout once it serves.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyLine {
    /// The auth endpoint, ending in `/`.
    pub auth_url: String,
    /// The API endpoint, ending in `/`.
    pub api_url: String,
    /// The CA certificate to trust; `None` with plain HTTP.
    pub ca_file: Option<PathBuf>,
    /// Where the counters are read.
    pub counters_url: String,
}

/// A running emulator. Dropping it stops both servers at once and removes
/// the `ca.pem` it wrote.
pub struct Emulator {
    ready: ReadyLine,
    state: Arc<AppState>,
    servers: Vec<JoinHandle<()>>,
    made_state_dir: Option<PathBuf>,
}

/// Starts an emulator in the current tokio runtime (IO and time enabled)
/// and returns once both listeners are bound, so a client may connect
/// right away.
///
/// The servers run as tasks of that runtime. A blocking client must not be
/// used from the only thread of a current-thread runtime that serves them;
/// use a multi-thread runtime, or an async client.
pub async fn start(config: EmulatorConfig) -> anyhow::Result<Emulator> {
    anyhow::ensure!(!config.users.is_empty(), "at least one user is needed");
    anyhow::ensure!(
        config.token_lifetime.as_secs() >= 1
            && config.refresh_lifetime.as_secs() >= 1,
        "token lifetimes must be at least one second"
    );
    let state_dir = config.state_dir.clone();
    let made_state_dir = !state_dir.exists();
    fs::create_dir_all(&state_dir).with_context(|| {
        format!("create the state directory {}", state_dir.display())
    })?;

    let started = start_in(config, made_state_dir).await;
    if started.is_err() && made_state_dir {
        // Nothing else can be in a directory made a moment ago but a CA
        // file written before the failure.
        let _ = fs::remove_file(state_dir.join(CA_FILE_NAME));
        let _ = fs::remove_dir(&state_dir);
    }
    started
}

async fn start_in(
    config: EmulatorConfig,
    made_state_dir: bool,
) -> anyhow::Result<Emulator> {
    let auth = bind(config.auth_port, "auth").await?;
    let api = bind(config.api_port, "API").await?;
    let scheme = if config.plain_http { "http" } else { "https" };
    let auth_url = url_of(scheme, auth.local_addr()?);
    let api_url = url_of(scheme, api.local_addr()?);

    let (tls, ca_file) = if config.plain_http {
        (None, None)
    } else {
        let authority = tls::Authority::generate()?;
        let ca_file = authority.write_ca(&config.state_dir)?;
        (Some(TlsAcceptor::from(authority.server_config()?)), Some(ca_file))
    };

    let rotate_refresh_tokens = config.rotate_refresh_tokens;
    let mut tokens = TokenIssuer::new(
        auth_url.clone(),
        config.token_lifetime,
        config.refresh_lifetime,
        config.clock,
        match config.variant {
            Variant::Keycloak => ClaimStyle::Keycloak,
            Variant::Aws | Variant::SelfHosted => ClaimStyle::Cognito,
        },
    )?;
    if let Some(jwks) = &config.trusted_jwks {
        tokens.trust(jwks::TrustedKeys::from_jwks(jwks)?);
    }
    let users = Directory::new(config.users, &config.force_change_password)?;
    let settings = Settings { rotate_refresh_tokens };
    let api_key = tokens.random_token()?;
    let state = Arc::new(AppState {
        users,
        variant: config.variant,
        api_key,
        has_refresh_endpoint: !config.no_refresh_endpoint,
        tokens,
        counters: CounterSet::default(),
        faults: FaultQueue::default(),
        settings: LiveSettings::new(settings),
    });

    let servers = vec![
        server::spawn(auth, tls.clone(), Arc::clone(&state), Role::Auth),
        server::spawn(api, tls, Arc::clone(&state), Role::Api),
    ];
    let counters_url = format!("{auth_url}{COUNTERS_PATH}");
    Ok(Emulator {
        ready: ReadyLine { auth_url, api_url, ca_file, counters_url },
        state,
        servers,
        made_state_dir: made_state_dir.then_some(config.state_dir),
    })
}

impl Emulator {
    /// The auth endpoint (`/login`, `/login/refresh`), ending in `/`.
    pub fn auth_url(&self) -> &str {
        &self.ready.auth_url
    }

    /// The API endpoint (`/sites`), ending in `/`.
    pub fn api_url(&self) -> &str {
        &self.ready.api_url
    }

    /// The CA certificate clients must trust; `None` with plain HTTP.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ready.ca_file.as_deref()
    }

    /// The URL of `GET /_emulator/counters`.
    pub fn counters_url(&self) -> &str {
        &self.ready.counters_url
    }

    /// What the binary prints once it serves.
    pub fn ready_line(&self) -> &ReadyLine {
        &self.ready
    }

    /// The counters as they are now.
    pub fn counters(&self) -> Counters {
        self.state.counters.snapshot()
    }

    /// Sets every counter back to zero.
    pub fn reset_counters(&self) {
        self.state.counters.reset();
    }

    /// Queues `fault` behind any pending ones, as `POST _emulator/faults`
    /// does; an impossible fault is refused with the reason.
    pub fn add_fault(&self, fault: Fault) -> anyhow::Result<()> {
        fault.check().map_err(anyhow::Error::msg)?;
        self.state.faults.push(fault);
        Ok(())
    }

    /// Drops every pending fault.
    pub fn clear_faults(&self) {
        self.state.faults.clear();
    }

    /// The runtime settings as they are now.
    pub fn settings(&self) -> Settings {
        self.state.settings.snapshot()
    }

    /// Turns refresh token rotation on or off from the next refresh on.
    pub fn set_rotate_refresh_tokens(&self, rotate: bool) {
        self.state.settings.set_rotate_refresh_tokens(rotate);
    }

    /// Stops both servers and waits until their tasks have ended. Requests
    /// in flight are cut off, which no test of a credential client needs.
    pub async fn shutdown(mut self) {
        for server in std::mem::take(&mut self.servers) {
            server.abort();
            // An aborted task reports cancellation; that is the expected end.
            let _ = server.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        for server in &self.servers {
            server.abort();
        }
        // Only what the emulator wrote is removed: the CA file, and the
        // state directory if it made it and nothing else was put there.
        if let Some(ca_file) = &self.ready.ca_file {
            let _ = fs::remove_file(ca_file);
        }
        if let Some(dir) = &self.made_state_dir {
            let _ = fs::remove_dir(dir);
        }
    }
}

async fn bind(port: u16, what: &str) -> anyhow::Result<TcpListener> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpListener::bind(address)
        .await
        .with_context(|| format!("bind the {what} server to {address}"))
}

fn url_of(scheme: &str, address: SocketAddr) -> String {
    format!("{scheme}://{address}/")
}

/// A state directory path no other emulator uses: the process id keeps
/// processes apart, the counter and the time keep emulators of one process
/// and reused process ids apart.
fn fresh_state_dir() -> PathBuf {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    std::env::temp_dir().join(format!(
        "formkiq-emulator-{}-{sequence}-{nanos:09}",
        std::process::id()
    ))
}

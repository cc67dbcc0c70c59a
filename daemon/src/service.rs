//! The daemon's state above the sessions: the configuration, one session
//! per profile, and the dispatch of requests to them.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use fkq_cred_proto::{
    ErrorKind, ProfileInfo, Request, Response, TokenKind, TokenReplyRef,
    WireError,
};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::auth;
use crate::clock::Clock;
use crate::config::{self, Config};
use crate::origin::Origin;
use crate::session::SessionHandle;

/// Everything a connection needs to answer requests.
pub struct Service {
    config_path: Option<PathBuf>,
    state: RwLock<State>,
    clock: Arc<dyn Clock>,
    shutdown_tx: watch::Sender<bool>,
    /// `lock_memory` as it was at start, the only time it is applied.
    memory_locked: bool,
    origin: Origin,
    /// When the service started; `last_use_ms` counts from here.
    started: Instant,
    /// When the last request that counts as use arrived, in milliseconds
    /// since `started`: an atomic, so that a burst of `get`s shares no
    /// lock for it.
    last_use_ms: AtomicU64,
    /// The configured `idle_exit`, updated on reload.
    idle_exit_tx: watch::Sender<Option<Duration>>,
    /// Connections of clients waiting for this daemon to be gone; closed
    /// when it is.
    farewells: Mutex<Vec<Box<dyn Any + Send>>>,
}

struct State {
    config: Arc<Config>,
    sessions: BTreeMap<String, SessionHandle>,
}

impl Service {
    /// Starts a session per profile. Must run inside the tokio runtime.
    pub fn new(
        config: Config,
        config_path: Option<PathBuf>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        Self::with_origin(config, config_path, clock, Origin::Manual)
    }

    /// Like [`Service::new`], for a daemon started by `origin`.
    pub fn with_origin(
        config: Config,
        config_path: Option<PathBuf>,
        clock: Arc<dyn Clock>,
        origin: Origin,
    ) -> Arc<Self> {
        let sessions = spawn_sessions(&config, &BTreeMap::new(), &clock);
        let (shutdown_tx, _) = watch::channel(false);
        let (idle_exit_tx, _) = watch::channel(config.idle_exit);
        Arc::new(Self {
            memory_locked: config.lock_memory,
            config_path,
            state: RwLock::new(State { config: Arc::new(config), sessions }),
            clock,
            shutdown_tx,
            origin,
            started: Instant::now(),
            last_use_ms: AtomicU64::new(0),
            idle_exit_tx,
            farewells: Mutex::new(Vec::new()),
        })
    }

    /// Who started this daemon.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The configured `idle_exit`, as a receiver that sees reloads.
    pub fn idle_exit(&self) -> watch::Receiver<Option<Duration>> {
        self.idle_exit_tx.subscribe()
    }

    /// How long since the last request that counts as use.
    pub fn idle_for(&self) -> Duration {
        let last = self.last_use_ms.load(Ordering::Relaxed);
        self.started.elapsed().saturating_sub(Duration::from_millis(last))
    }

    fn note_use(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis())
            .unwrap_or(u64::MAX);
        self.last_use_ms.fetch_max(now, Ordering::Relaxed);
    }

    /// Keeps `connection` open until [`Service::release_farewells`]: its
    /// client waits for the close to learn that this daemon is gone.
    pub fn keep_until_exit(&self, connection: Box<dyn Any + Send>) {
        self.farewells
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(connection);
    }

    /// Closes the connections kept by [`Service::keep_until_exit`]. Call it
    /// once the socket is gone.
    pub fn release_farewells(&self) {
        self.farewells.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// A receiver that turns true when a shutdown is requested.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown_tx.subscribe()
    }

    /// Asks the daemon to stop after in-flight requests.
    pub fn request_shutdown(&self) {
        self.shutdown_tx.send_replace(true);
    }

    /// Answers one request.
    pub async fn handle(&self, request: Request) -> Response {
        // Looking at the daemon is not using it: `daemon status` or a
        // monitoring loop must not keep an idle daemon alive.
        if !matches!(request, Request::Ping | Request::Status { .. }) {
            self.note_use();
        }
        let result = match request {
            Request::Ping => Ok(Response::Pong {
                version: env!("CARGO_PKG_VERSION").into(),
                pid: std::process::id(),
            }),
            Request::Get { profile, kind, min_valid_secs } => {
                let min_valid =
                    min_valid_secs.map(|s| Duration::from_secs(s.into()));
                match self.session(profile.as_deref()) {
                    Ok(session) => {
                        session.get(kind, min_valid).await.map(Response::Token)
                    }
                    Err(e) => Err(e),
                }
            }
            Request::Login { profile, username, password, new_password } => {
                match self.session(profile.as_deref()) {
                    Ok(session) => session
                        .login(username, password, new_password)
                        .await
                        .map(|done| Response::LoggedIn {
                            profile: session.profile().name.clone(),
                            username: done.username,
                            expires_at: done.expires_at,
                        }),
                    Err(e) => Err(e),
                }
            }
            Request::Logout { profile } => match self
                .session(profile.as_deref())
            {
                Ok(session) => session.logout().await.map(|()| Response::Done),
                Err(e) => Err(e),
            },
            Request::Status { profile } => {
                self.status(profile.as_deref()).await
            }
            Request::Profiles => Ok(Response::Profiles(self.profiles())),
            Request::Sites { profile } => {
                match self.session(profile.as_deref()) {
                    Ok(session) => session.sites().await.map(Response::Sites),
                    Err(e) => Err(e),
                }
            }
            Request::Reload => self.reload().map(|()| Response::Done),
            Request::Shutdown => {
                tracing::info!("shutdown requested by a client");
                self.request_shutdown();
                Ok(Response::Done)
            }
            Request::Probe(target) => {
                auth::probe::check(&target).await.map(|()| Response::Done)
            }
        };
        result.unwrap_or_else(Response::Error)
    }

    /// Answers a `get` from memory when the profile's token stays valid
    /// long enough: `reply` sees the token where the session keeps it, so
    /// no copy is made, and the session task is not woken. `None` when the
    /// request needs [`handle`](Self::handle): an unknown or default-less
    /// profile, a token too close to expiry, or no token of that kind.
    pub fn answer_get_from_memory<R>(
        &self,
        profile: Option<&str>,
        kind: TokenKind,
        min_valid_secs: Option<u32>,
        reply: impl FnOnce(TokenReplyRef<'_>) -> R,
    ) -> Option<R> {
        // A get is use, wherever it is answered (see `handle`).
        self.note_use();
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let name = match profile {
            Some(name) => name,
            None => state.config.default_name()?,
        };
        let session = state.sessions.get(name)?;
        let min_valid = min_valid_secs.map(|s| Duration::from_secs(s.into()));
        let tokens = session.fresh(min_valid)?;
        let token = tokens.token(kind);
        if token.is_empty() {
            return None;
        }
        Some(reply(TokenReplyRef {
            profile: &session.profile().name,
            kind,
            token,
            token_type: &tokens.token_type,
            expires_at: tokens.expires_at_unix(),
        }))
    }

    fn session(&self, name: Option<&str>) -> Result<SessionHandle, WireError> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let config = &state.config;
        let name = match name {
            Some(name) => name,
            None => config.default_name().ok_or_else(|| no_default(config))?,
        };
        state.sessions.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> =
                config.profiles.keys().map(String::as_str).collect();
            WireError::new(
                ErrorKind::UnknownProfile,
                format!(
                    "no profile named {name:?} in {}; configured profiles: {}",
                    config.source_name,
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            )
        })
    }

    async fn status(&self, name: Option<&str>) -> Result<Response, WireError> {
        let sessions: Vec<SessionHandle> = match name {
            Some(_) => vec![self.session(name)?],
            None => self.sessions(),
        };
        let mut report = Vec::with_capacity(sessions.len());
        for session in sessions {
            report.push(session.status().await?);
        }
        Ok(Response::Status(report))
    }

    fn sessions(&self) -> Vec<SessionHandle> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state.sessions.values().cloned().collect()
    }

    fn profiles(&self) -> Vec<ProfileInfo> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let default = state.config.default_name();
        state
            .sessions
            .values()
            .map(|session| {
                let p = session.profile();
                ProfileInfo {
                    name: p.name.clone(),
                    is_default: default == Some(p.name.as_str()),
                    username: p.username.clone(),
                    auth_url: p.auth_url.to_string(),
                    api_url: p.api_url.to_string(),
                    logged_in: session.is_logged_in(),
                }
            })
            .collect()
    }

    /// Rereads the configuration. Sessions of unchanged profiles keep their
    /// tokens; changed profiles start afresh; removed ones are dropped,
    /// which zeroes their tokens. An invalid file changes nothing.
    pub fn reload(&self) -> Result<(), WireError> {
        let config = Config::load(self.config_path.as_deref()).map_err(|e| {
            tracing::error!(error = %e, "reload failed; keeping the previous configuration");
            WireError::new(ErrorKind::Config, format!("{e}; the previous configuration stays in force"))
        })?;
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if config.lock_memory != self.memory_locked {
            tracing::warn!(
                lock_memory = config.lock_memory,
                "lock_memory differs from the value at start; it takes effect when fkq-credd restarts"
            );
        }
        state.sessions = spawn_sessions(&config, &state.sessions, &self.clock);
        self.idle_exit_tx.send_replace(config.idle_exit);
        state.config = Arc::new(config);
        tracing::info!(
            profiles = state.sessions.len(),
            "configuration reloaded"
        );
        #[cfg(unix)]
        crate::systemd::notify_status(&format!(
            "serving {} profiles (configuration reloaded)",
            state.sessions.len()
        ));
        Ok(())
    }

    /// The number of configured profiles.
    pub fn profile_count(&self) -> usize {
        self.state.read().unwrap_or_else(|e| e.into_inner()).sessions.len()
    }

    /// Forgets every token and remembered password, in every profile. A
    /// profile with a `password_command` logs in again on its next `get`.
    pub async fn forget_all(&self) {
        for session in self.sessions() {
            let _ = session.forget().await;
        }
    }
}

fn spawn_sessions(
    config: &Config,
    old: &BTreeMap<String, SessionHandle>,
    clock: &Arc<dyn Clock>,
) -> BTreeMap<String, SessionHandle> {
    config
        .profiles
        .iter()
        .map(|(name, profile)| {
            let session = match old.get(name) {
                Some(existing) if existing.profile() == profile => {
                    existing.clone()
                }
                _ => SessionHandle::spawn(profile.clone(), clock.clone()),
            };
            (name.clone(), session)
        })
        .collect()
}

fn no_default(config: &Config) -> WireError {
    if config.profiles.is_empty() {
        let path = config::default_path()
            .map_or_else(|| "config.toml".into(), |p| p.display().to_string());
        return WireError::new(
            ErrorKind::Config,
            format!(
                "no profiles are configured: run `fkq-cred configure`, or create {path} with a \
                 [profiles.NAME] table (see the README) and run `fkq-cred daemon reload`; \
                 FKQ_AUTH_URL, FKQ_API_URL and FKQ_USERNAME count only when the daemon starts, \
                 so after setting them run `fkq-cred daemon stop` and try again"
            ),
        );
    }
    let names: Vec<&str> = config.profiles.keys().map(String::as_str).collect();
    WireError::new(
        ErrorKind::Config,
        format!(
            "{} defines several profiles ({}) and no default_profile; pass --profile or set default_profile",
            config.source_name,
            names.join(", ")
        ),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    //! Tokens are dropped, and so zeroed, whenever the daemon lets go of a
    //! session: on logout, when a reload removes the profile, and when the
    //! runtime ends at exit. A weak reference shows the drop. A `get`
    //! answered from memory is the reply `handle` gives, byte for byte.

    use std::sync::Weak;
    use std::time::{SystemTime, UNIX_EPOCH};

    use fkq_cred_proto::codec;

    use super::*;
    use crate::clock::SystemClock;
    use crate::tokens::{AuthResult, TokenSet};

    const PROFILE: &str = "[profiles.p]\nauth_url = \"https://auth.invalid\"\napi_url = \"https://api.invalid\"\n";

    /// [`PROFILE`] as the default profile, for requests that name none.
    const DEFAULT_P: &str = "default_profile = \"p\"\n[profiles.p]\nauth_url = \"https://auth.invalid\"\napi_url = \"https://api.invalid\"\n";

    fn service(text: &str, path: Option<PathBuf>) -> Arc<Service> {
        let config =
            Config::parse(text, std::path::Path::new("test.toml")).unwrap();
        Service::new(config, path, Arc::new(SystemClock))
    }

    /// Gives profile `p` a token set and returns a weak reference to it.
    fn install(service: &Service) -> Weak<TokenSet> {
        let result = AuthResult {
            access_token: Some("access-sentinel".into()),
            refresh_token: Some("refresh-sentinel".into()),
            ..AuthResult::default()
        };
        let tokens = TokenSet::from_reply(
            result,
            SystemTime::now(),
            Duration::from_secs(3600),
            None,
        )
        .unwrap();
        let tokens = Arc::new(tokens);
        let weak = Arc::downgrade(&tokens);
        service.session(Some("p")).unwrap().install_tokens(tokens);
        weak
    }

    /// Lets the session tasks of a current-thread runtime run until `weak`
    /// is gone, or fails after a bounded number of turns.
    async fn dropped(weak: &Weak<TokenSet>) -> bool {
        for _ in 0..1000 {
            if weak.upgrade().is_none() {
                return true;
            }
            tokio::task::yield_now().await;
        }
        false
    }

    #[tokio::test]
    async fn logout_drops_the_tokens() {
        let service = service(PROFILE, None);
        let weak = install(&service);
        assert!(weak.upgrade().is_some());
        service.session(Some("p")).unwrap().logout().await.unwrap();
        assert!(dropped(&weak).await, "logout kept the tokens");
    }

    #[tokio::test]
    async fn removing_the_profile_drops_its_tokens() {
        let dir = std::env::temp_dir()
            .join(format!("fkq-service-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.toml");
        std::fs::write(&path, PROFILE).unwrap();
        let service = service(PROFILE, Some(path.clone()));
        let weak = install(&service);

        std::fs::write(&path, PROFILE.replace("[profiles.p]", "[profiles.q]"))
            .unwrap();
        service.reload().unwrap();
        let outcome = dropped(&weak).await;
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(outcome, "the removed profile's tokens were kept");
    }

    #[test]
    fn tokens_are_dropped_when_the_runtime_ends_at_exit() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let weak = runtime.block_on(async {
            let service = service(PROFILE, None);
            let weak = install(&service);
            // As in `run`: a task that holds the service to the end.
            tokio::spawn(async move {
                let _service = service;
                std::future::pending::<()>().await
            });
            weak
        });
        assert!(weak.upgrade().is_some());
        drop(runtime);
        assert!(weak.upgrade().is_none(), "tokens outlived the runtime");
    }

    /// A service whose one profile holds a fresh access and id token, for
    /// tests of the layers above. Must run inside a tokio runtime.
    pub(crate) fn logged_in_service() -> Arc<Service> {
        let service = service(DEFAULT_P, None);
        service.sessions()[0].install_tokens(Arc::new(tokens(
            Some("id-token"),
            SystemTime::now(),
        )));
        service
    }

    fn tokens(id: Option<&str>, received_at: SystemTime) -> TokenSet {
        let result = AuthResult {
            access_token: Some("access-token".into()),
            id_token: id.map(Into::into),
            expires_in: Some(3600),
            ..Default::default()
        };
        TokenSet::from_reply(
            result,
            received_at,
            Duration::from_secs(3600),
            None,
        )
        .unwrap()
    }

    /// The bytes of the reply `handle` gives, and of the one answered from
    /// memory (if it was).
    async fn both(
        service: &Service,
        profile: Option<&str>,
        kind: TokenKind,
        min_valid_secs: Option<u32>,
    ) -> (Vec<u8>, Option<Vec<u8>>) {
        let fast = service.answer_get_from_memory(
            profile,
            kind,
            min_valid_secs,
            |reply| codec::encode(&reply).unwrap(),
        );
        let request = Request::Get {
            profile: profile.map(Into::into),
            kind,
            min_valid_secs,
        };
        let slow = codec::encode(&service.handle(request).await).unwrap();
        (slow, fast)
    }

    #[tokio::test]
    async fn a_get_answered_from_memory_is_byte_for_byte_the_handled_reply() {
        let service = logged_in_service();
        for profile in [None, Some("p")] {
            for kind in [TokenKind::Access, TokenKind::Id] {
                for min_valid in [None, Some(0), Some(600), Some(u32::MAX)] {
                    let (slow, fast) =
                        both(&service, profile, kind, min_valid).await;
                    assert_eq!(
                        fast.as_ref(),
                        Some(&slow),
                        "{profile:?} {kind:?} {min_valid:?}"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn gets_that_need_the_session_task_are_not_answered_from_memory() {
        let service = service(DEFAULT_P, None);
        let session = service.sessions()[0].clone();

        session.install_tokens(Arc::new(tokens(None, SystemTime::now())));
        let (slow, fast) = both(&service, None, TokenKind::Id, None).await;
        assert_eq!(fast, None, "no id token: the handled path explains");
        let reply: Response = codec::decode(&slow, 4096).unwrap();
        assert!(
            matches!(reply, Response::Error(e) if e.kind == ErrorKind::BadResponse)
        );

        let (_, fast) =
            both(&service, Some("q"), TokenKind::Access, None).await;
        assert_eq!(fast, None, "unknown profile");

        session.install_tokens(Arc::new(tokens(None, UNIX_EPOCH)));
        let (slow, fast) = both(&service, None, TokenKind::Access, None).await;
        assert_eq!(fast, None, "expired: the session task must act");
        let reply: Response = codec::decode(&slow, 4096).unwrap();
        assert!(matches!(reply, Response::Error(_)), "{reply:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_get_answered_from_memory_counts_as_use_for_idle_exit() {
        let service = logged_in_service();
        tokio::time::advance(Duration::from_secs(600)).await;
        assert!(service.idle_for() >= Duration::from_secs(600));
        let answered = service.answer_get_from_memory(
            None,
            TokenKind::Access,
            None,
            |_| (),
        );
        assert!(answered.is_some());
        assert!(service.idle_for() < Duration::from_secs(1));
    }
}

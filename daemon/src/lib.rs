//! `fkq-credd`: logs in to FormKiQ once per profile, keeps the tokens in
//! memory, refreshes them before they expire, and serves them over a local
//! socket.
//!
//! Map of the crate:
//! - [`config`]: profiles from `config.toml` or the environment, each with
//!   its provider (the FormKiQ auth endpoint, or Cognito directly).
//! - [`auth`]: HTTP to the deployment through the profile's provider, in
//!   every dialect, and every failure as a typed error.
//! - [`tokens`]: token sets and their expiry, anchored at receipt.
//! - [`schedule`]: when to refresh and how long to back off.
//! - [`session`]: the handle callers use for one profile; [`actor`] is the
//!   task behind it that owns the tokens.
//! - [`password`]: running `password_command`.
//! - [`service`]: all sessions, and request dispatch.
//! - [`server`]: the socket, peer checks and framing.
//! - [`signals`], [`harden`], [`clock`]: process plumbing.

pub mod actor;
pub mod auth;
pub mod clock;
pub mod config;
pub mod harden;
pub mod password;
pub mod schedule;
pub mod server;
pub mod service;
pub mod session;
pub mod signals;
pub mod tokens;

use std::path::PathBuf;
use std::sync::Arc;

use fkq_cred_proto::{exit, location};
use thiserror::Error;

/// What the daemon was started with.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--socket`: overrides `FKQ_CRED_SOCKET` and the default location.
    pub socket: Option<PathBuf>,
    /// `--config`: overrides `FKQ_CRED_CONFIG` and the default path.
    pub config: Option<PathBuf>,
}

/// Why the daemon could not run.
#[derive(Debug, Error)]
pub enum DaemonError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The socket location is unusable.
    #[error(transparent)]
    Location(#[from] location::LocationError),
    /// The socket could not be bound.
    #[error(transparent)]
    Bind(#[from] server::BindError),
    /// The runtime or signal handling could not start.
    #[error("cannot start: {0}")]
    Start(std::io::Error),
}

impl DaemonError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => exit::CONFIG,
            Self::Bind(server::BindError::AlreadyRunning(_)) => {
                exit::ALREADY_RUNNING
            }
            _ => exit::FAILURE,
        }
    }
}

/// Runs the daemon in the foreground until SIGTERM, SIGINT or a shutdown
/// request.
pub fn run(options: Options) -> Result<(), DaemonError> {
    harden::harden();
    let config = config::Config::load(options.config.as_deref())?;
    let location = location::socket_location(options.socket.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("fkq-credd")
        .build()
        .map_err(DaemonError::Start)?;
    runtime.block_on(async move {
        let listener = server::bind(&location)?;
        let signals = signals::listen().map_err(DaemonError::Start)?;
        let service = service::Service::new(config, options.config.clone(), Arc::new(clock::SystemClock));
        tokio::spawn(signals::handle(signals, service.clone()));
        tracing::info!(socket = %location.path.display(), pid = std::process::id(), "ready");
        server::serve(listener, service).await;
        tracing::info!("stopped");
        Ok(())
    })
}

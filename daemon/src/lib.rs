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
//! - [`backend`]: what a session needs from the auth server, as a trait.
//! - [`password`]: running `password_command`.
//! - [`service`]: all sessions, and request dispatch.
//! - [`server`]: the socket, peer checks, framing, and the greeting flags
//!   that let another version stop the daemon.
//! - [`origin`]: who started the daemon, and so who may stop it.
//! - [`systemd`]: socket activation and `sd_notify` reports.
//! - [`detach`]: the log file and readiness report of a daemon started by
//!   a client; [`idle`]: its optional exit when unused.
//! - [`signals`], [`harden`], [`resources`], [`clock`]: process
//!   plumbing.

pub mod actor;
pub mod auth;
pub mod backend;
pub mod clock;
pub mod config;
pub mod detach;
pub mod harden;
pub mod idle;
pub mod origin;
pub mod password;
pub mod resources;
pub mod schedule;
pub mod server;
pub mod service;
pub mod session;
pub mod signals;
#[cfg(unix)]
pub mod systemd;
#[cfg(test)]
pub(crate) mod testing;
pub mod tokens;

use std::path::PathBuf;
use std::sync::Arc;

use fkq_cred_proto::{exit, location};
use interprocess::local_socket::traits::tokio::Listener as _;
use thiserror::Error;

use crate::detach::Readiness;
use crate::origin::Origin;
#[cfg(unix)]
use crate::systemd::Activation;

/// What the daemon was started with.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--socket`: overrides `FKQ_CRED_SOCKET` and the default location.
    pub socket: Option<PathBuf>,
    /// `--config`: overrides `FKQ_CRED_CONFIG` and the default path.
    pub config: Option<PathBuf>,
    /// Timeouts and the connection cap of the socket.
    pub limits: server::Limits,
    /// `--ready-fd`: a client started this daemon, holds the start lock for
    /// it, and waits for its readiness report on this descriptor.
    pub ready_fd: Option<i32>,
    /// `--autostart`: the client started it only because a command needed
    /// it, so `autostart = false` in the config forbids the start.
    pub autostart: bool,
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
    /// systemd passed sockets the daemon cannot serve.
    #[cfg(unix)]
    #[error(transparent)]
    Activation(#[from] systemd::ActivationError),
    /// A client tried to auto-start the daemon, and the config forbids it.
    #[error(
        "auto-start is turned off (`autostart = false` in {0}); start the \
         daemon yourself: `fkq-cred daemon start`, `systemctl --user start \
         fkq-cred.socket`, or `fkq-credd &`"
    )]
    AutostartOff(String),
    /// `lock_memory = true` could not be honoured.
    #[error(transparent)]
    LockMemory(#[from] harden::LockMemoryError),
}

impl DaemonError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => exit::CONFIG,
            Self::Bind(server::BindError::AlreadyRunning(_)) => {
                exit::ALREADY_RUNNING
            }
            Self::AutostartOff(_) => exit::DAEMON_UNREACHABLE,
            _ => exit::FAILURE,
        }
    }
}

/// Runs the daemon in the foreground until SIGTERM, SIGINT, a shutdown
/// request or, for a daemon started on demand, `idle_exit`.
///
/// Every token lives in a task of the runtime built here; the runtime is
/// dropped before this returns, which drops those tasks and so zeroes the
/// tokens before the process exits.
///
/// Call it before starting any thread: it reads and clears the variables
/// systemd sets for socket activation.
pub fn run(options: Options) -> Result<(), DaemonError> {
    harden::harden();
    let mut readiness = take_readiness(options.ready_fd);
    // SAFETY: per this function's contract, no other thread exists yet.
    #[cfg(unix)]
    let activation = unsafe { systemd::Activation::take() };
    #[cfg(not(unix))]
    let activation: Result<Activation, DaemonError> =
        Ok(Activation { listener: None, under_systemd: false });
    let result = activation
        .map_err(DaemonError::from)
        .and_then(|activation| run_with(options, activation, &mut readiness));
    if let Err(e) = &result {
        readiness.fail(e.exit_code(), &e.to_string());
    }
    result
}

/// What systemd handed over, on platforms without it.
#[cfg(not(unix))]
struct Activation {
    listener: Option<std::convert::Infallible>,
    under_systemd: bool,
}

fn take_readiness(fd: Option<i32>) -> Readiness {
    let Some(fd) = fd else {
        return Readiness::default();
    };
    #[cfg(unix)]
    {
        // SAFETY: called first thing at start, before anything else in
        // this process opens or owns descriptors.
        match unsafe { Readiness::from_raw_fd(fd) } {
            Ok(readiness) => return readiness,
            Err(e) => {
                tracing::warn!(fd, error = %e, "ignoring --ready-fd");
            }
        }
    }
    let _ = fd;
    Readiness::default()
}

fn run_with(
    options: Options,
    activation: Activation,
    readiness: &mut Readiness,
) -> Result<(), DaemonError> {
    let origin = if options.ready_fd.is_some() {
        Origin::Client
    } else if activation.under_systemd {
        Origin::Systemd { activated: activation.listener.is_some() }
    } else {
        Origin::Manual
    };
    if !matches!(origin, Origin::Systemd { .. }) {
        // A NOTIFY_SOCKET inherited from a service that ran the starter is
        // not ours to report to. Still single-threaded here.
        std::env::remove_var("NOTIFY_SOCKET");
    }
    let config = config::Config::load(options.config.as_deref())?;
    if options.autostart && !config.autostart() {
        return Err(DaemonError::AutostartOff(config.source_name));
    }
    if config.lock_memory {
        // Before the runtime exists, so its threads' stacks are locked
        // from their first page.
        harden::lock_memory()?;
    }
    let location = location::socket_location(options.socket.as_deref());
    #[cfg(unix)]
    if let Err(e) = resources::raise_open_files(options.limits.max_connections)
    {
        tracing::warn!(error = %e, "cannot raise the open file limit");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(resources::worker_threads())
        .enable_all()
        .thread_name("fkq-credd")
        .build()
        .map_err(DaemonError::Start)?;
    let activation_had_socket = activation.listener.is_some();
    runtime.block_on(async {
        let (mut listener, path) = match activation.listener {
            #[cfg(unix)]
            Some(socket) => {
                let path = socket.path.clone().unwrap_or_default();
                if let Ok(expected) = &location {
                    if expected.path != path {
                        tracing::warn!(
                            passed = %path.display(),
                            clients_look_at = %expected.path.display(),
                            "systemd passed a socket where clients do not look; check ListenStream= in fkq-cred.socket"
                        );
                    }
                }
                (server::adopt(socket.fd, &path)?, path)
            }
            #[cfg(not(unix))]
            Some(never) => match never {},
            None => {
                let location = location?;
                let listener = match origin {
                    Origin::Client => server::bind_held(&location)?,
                    _ => server::bind(&location)?,
                };
                (listener, location.path)
            }
        };
        let signals = signals::listen().map_err(DaemonError::Start)?;
        let (clock, offset_file) = clock::daemon_clock();
        if let Some(file) = offset_file {
            tracing::warn!(file = %file, "test build: the wall clock is shifted by the offset in this file");
        }
        let service = service::Service::with_origin(
            config,
            options.config.clone(),
            clock,
            origin,
        );
        tokio::spawn(signals::handle(signals, service.clone()));
        if origin.is_on_demand() {
            tokio::spawn(idle::watch(service.clone()));
        }
        let stopping = tokio::spawn(report_stopping(service.clone()));
        tracing::info!(
            socket = %path.display(),
            pid = std::process::id(),
            started = origin.as_str(),
            "ready"
        );
        readiness.ready();
        #[cfg(unix)]
        systemd::notify_ready(&format!(
            "serving {} profiles on {}",
            service.profile_count(),
            path.display()
        ));
        // A socket of our own is removed by us, at the right moment; one
        // systemd passed stays systemd's.
        let unlink = if activation_had_socket {
            None
        } else {
            listener.do_not_reclaim_name_on_drop();
            Some(path.clone())
        };
        // The accept loop runs on a worker, not on this thread: a
        // connection it spawns then starts on the same worker at once,
        // where handing it from here to a worker costs two wake-ups.
        let serving = tokio::spawn(server::serve_at(
            listener,
            service.clone(),
            options.limits,
            unlink,
        ));
        if let Err(e) = serving.await {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        // Serving ends only after a shutdown request, so this is quick; it
        // keeps the runtime from dropping the report unsent.
        let _ = stopping.await;
        // The socket is gone: clients waiting to start a successor may.
        service.release_farewells();
        tracing::info!("stopped");
        Ok(())
    })
}

/// Tells systemd the daemon is stopping as soon as a shutdown begins.
async fn report_stopping(service: Arc<service::Service>) {
    let mut stop = service.shutdown_signal();
    if stop.wait_for(|stop| *stop).await.is_ok() {
        #[cfg(unix)]
        systemd::notify_stopping();
    }
}

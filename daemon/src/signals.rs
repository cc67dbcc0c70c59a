//! Unix signals, received through signal-hook on a dedicated thread and
//! handed to the async side as messages.
//!
//! - SIGTERM, SIGINT: stop accepting, finish in-flight requests, exit 0.
//! - SIGHUP: reread the configuration.
//! - SIGUSR1: forget every token and remembered password.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::service::Service;

/// What a signal asks of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Stop.
    Terminate,
    /// Reread the configuration.
    Reload,
    /// Forget all tokens.
    Forget,
}

/// Starts listening for signals; returns the receiving end.
#[cfg(unix)]
pub fn listen() -> std::io::Result<mpsc::UnboundedReceiver<Signal>> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
    let mut signals = signal_hook::iterator::Signals::new([
        SIGTERM, SIGINT, SIGHUP, SIGUSR1,
    ])?;
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for signal in signals.forever() {
            let message = match signal {
                SIGHUP => Signal::Reload,
                SIGUSR1 => Signal::Forget,
                _ => Signal::Terminate,
            };
            if tx.send(message).is_err() {
                break;
            }
        }
    })?;
    Ok(rx)
}

/// Starts listening for Ctrl-C, the one signal Windows has.
#[cfg(not(unix))]
pub fn listen() -> std::io::Result<mpsc::UnboundedReceiver<Signal>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if tx.send(Signal::Terminate).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// Acts on signals until the daemon stops.
pub async fn handle(
    mut rx: mpsc::UnboundedReceiver<Signal>,
    service: Arc<Service>,
) {
    while let Some(signal) = rx.recv().await {
        match signal {
            Signal::Terminate => {
                tracing::info!(
                    "termination signal received; finishing in-flight requests"
                );
                service.request_shutdown();
            }
            Signal::Reload => {
                let _ = service.reload();
            }
            Signal::Forget => {
                tracing::info!("SIGUSR1: forgetting every token");
                service.forget_all().await;
            }
        }
    }
}

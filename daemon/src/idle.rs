//! Idle exit for a daemon started on demand (`idle_exit = "8h"`): after
//! that long without use it stops, and the next client that needs it
//! starts a fresh one. `status` and `ping` are not use (see
//! [`Service::handle`]), so a monitoring loop does not keep it alive.

use std::sync::Arc;
use std::time::Duration;

use crate::service::Service;

/// Stops the daemon once it has been idle for the configured time, which a
/// reload may change; returns when the daemon stops for any reason.
pub async fn watch(service: Arc<Service>) {
    let mut limit_rx = service.idle_exit();
    let mut shutdown = service.shutdown_signal();
    loop {
        let limit = *limit_rx.borrow_and_update();
        let wait = match limit {
            Some(limit) => {
                let idle = service.idle_for();
                if idle >= limit {
                    tracing::info!(
                        idle_exit = %humantime::format_duration(limit),
                        "unused for the idle_exit time; stopping"
                    );
                    service.request_shutdown();
                    return;
                }
                Some(limit - idle)
            }
            None => None,
        };
        tokio::select! {
            changed = limit_rx.changed() => if changed.is_err() { return },
            () = sleep_for(wait) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

async fn sleep_for(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use fkq_cred_proto::Request;

    use super::*;
    use crate::clock::SystemClock;
    use crate::config::Config;
    use crate::origin::Origin;

    const HOUR: Duration = Duration::from_secs(3600);
    const MINUTE: Duration = Duration::from_secs(60);

    fn service(idle_exit: Option<Duration>) -> Arc<Service> {
        let config = Config { idle_exit, ..Config::default() };
        Service::with_origin(
            config,
            None,
            Arc::new(SystemClock),
            Origin::Client,
        )
    }

    fn stopped(service: &Service) -> bool {
        *service.shutdown_signal().borrow()
    }

    #[tokio::test(start_paused = true)]
    async fn status_and_ping_do_not_keep_an_idle_daemon_alive() {
        let service = service(Some(HOUR));
        tokio::spawn(watch(service.clone()));

        tokio::time::sleep(50 * MINUTE).await;
        service.handle(Request::Profiles).await;
        tokio::time::sleep(50 * MINUTE).await;
        assert!(!stopped(&service), "used 50 minutes ago");

        service.handle(Request::Ping).await;
        service.handle(Request::Status { profile: None }).await;
        tokio::time::sleep(15 * MINUTE).await;
        assert!(stopped(&service), "65 minutes without use");
    }

    #[tokio::test(start_paused = true)]
    async fn without_idle_exit_the_daemon_never_stops_for_idleness() {
        let service = service(None);
        let watcher = tokio::spawn(watch(service.clone()));
        tokio::time::sleep(100 * HOUR).await;
        assert!(!stopped(&service));
        assert!(!watcher.is_finished());
    }
}

//! The worker runtime: typed async handlers, a concurrency limit, leases renewed by one
//! heartbeat, the reaper, wake-ups instead of polling, and graceful shutdown, and
//! [`ExecHandler`], which runs any program as a handler (the `queue-worker` binary's handler,
//! in the `queue-worker-cli` package).
#![deny(missing_docs, missing_debug_implementations)]

mod exec;
mod handler;
mod worker;

pub use exec::ExecHandler;
pub use handler::{JobContext, JobError, JobResult};
pub use tokio_util::sync::CancellationToken;
pub use worker::{QueueOrder, Worker, WorkerBuilder, WorkerReport};

use std::time::Duration;

use queue_core::{ConnectOptions, QueueClient, QueueConfig};

/// A token cancelled on the first SIGTERM or SIGINT (Ctrl-C). The handlers are installed
/// before this returns, so no signal slips through while the worker starts.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    let signalled = signals();
    tokio::spawn(async move {
        signalled.await;
        tracing::info!("shutdown signal received");
        cancel.cancel();
    });
    token
}

#[cfg(unix)]
fn signals() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("install the SIGTERM handler");
    let mut interrupt = signal(SignalKind::interrupt()).expect("install the SIGINT handler");
    async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    }
}

#[cfg(not(unix))]
fn signals() -> impl std::future::Future<Output = ()> {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Connects, waiting (with backoff, logging each failure) until Redis answers or `shutdown`
/// is cancelled (then `None`). A worker started before Redis simply waits for it.
pub async fn connect_when_available(
    options: &ConnectOptions,
    config: QueueConfig,
    shutdown: &CancellationToken,
) -> queue_core::Result<Option<QueueClient>> {
    let mut delay = Duration::from_millis(100);
    loop {
        match QueueClient::connect_with(options, config.clone()).await {
            Ok(client) => return Ok(Some(client)),
            Err(error @ queue_core::Error::Connect { .. }) => {
                tracing::warn!(%error, retry_in = ?delay, "Redis not reachable; waiting for it");
            }
            Err(error) => return Err(error),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return Ok(None),
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

//! The worker runtime: typed async handlers, a concurrency limit, leases renewed by one
//! heartbeat, the reaper, wake-ups instead of polling, and graceful shutdown, and
//! [`ExecHandler`], which runs any program as a handler (the `queue-worker` binary's handler,
//! in the `queue-worker-cli` package).
#![deny(missing_docs, missing_debug_implementations)]

mod exec;
mod handler;
pub mod metrics;
mod worker;

pub use exec::{ExecHandler, MAX_STDOUT_RESULT};
pub use handler::{JobContext, JobError, JobResult};
pub use tokio_util::sync::CancellationToken;
pub use worker::{QueueOrder, Worker, WorkerBuilder, WorkerReport};

use worker::RetryDelay;

use queue_core::{ConnectOptions, QueueClient, QueueConfig};

/// A token cancelled on the first SIGTERM or SIGINT (Ctrl-C): a graceful stop. A second
/// signal ends the process at once (exit status 130), as an operator who presses Ctrl-C again
/// expects; the leases of jobs still running then expire and the reaper returns those jobs.
/// The handlers are installed before this returns, so no signal slips through while the worker
/// starts.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    let mut signals = Signals::install();
    tokio::spawn(async move {
        signals.next().await;
        tracing::info!("shutdown signal received; a second one stops at once");
        cancel.cancel();
        signals.next().await;
        tracing::warn!("second shutdown signal: stopping now; running jobs return when their leases expire");
        std::process::exit(130);
    });
    token
}

#[cfg(unix)]
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            terminate: signal(SignalKind::terminate()).expect("install the SIGTERM handler"),
            interrupt: signal(SignalKind::interrupt()).expect("install the SIGINT handler"),
        }
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> Self {
        Signals
    }

    async fn next(&mut self) {
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
    let mut retry = RetryDelay::default();
    loop {
        let delay = match QueueClient::connect_with(options, config.clone()).await {
            Ok(client) => return Ok(Some(client)),
            Err(error @ queue_core::Error::Connect { .. }) => {
                let delay = retry.next();
                tracing::warn!(%error, retry_in = ?delay, "Redis not reachable; waiting for it");
                delay
            }
            Err(error) => return Err(error),
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return Ok(None),
        }
    }
}

//! Wake-ups instead of polling: an idle worker blocks on each queue's wake-up list, which every
//! path making a job ready touches.
use std::{sync::Arc, time::Duration};

use queue_core::fred::{
    clients::Client,
    interfaces::{ClientLike, ListInterface},
    types::{config::Blocking, Builder},
};
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{retry::RetryDelay, Runtime};

impl Runtime {
    /// Blocks on a queue's wake-up list (`key`) while the worker is idle, and wakes the fetch
    /// loop. A marker caught while the worker is busy is put back for another worker.
    pub(super) async fn listen(self: Arc<Self>, blocking: Client, key: String, stop: CancellationToken) {
        const BLOCK_SECS: f64 = 5.0;
        let mut idle = self.idle.subscribe();
        let mut retry = RetryDelay::default();
        let mut connected = false;
        loop {
            if !connected {
                let attempt = tokio::select! {
                    result = blocking.init() => result.map(drop),
                    _ = stop.cancelled() => return,
                };
                match attempt {
                    Ok(()) => connected = true,
                    Err(error) => {
                        debug!(%error, "wake-up connection not ready");
                        tokio::select! {
                            _ = sleep(retry.next()) => continue,
                            _ = stop.cancelled() => return,
                        }
                    }
                }
            }
            tokio::select! {
                changed = idle.wait_for(|idle| *idle) => if changed.is_err() { return },
                _ = stop.cancelled() => break,
            }
            // The timeout guards against a connection that died without telling us.
            let popped = tokio::select! {
                result = tokio::time::timeout(
                    Duration::from_secs_f64(BLOCK_SECS + 5.0),
                    blocking.blpop::<Option<(String, String)>, _>(key.as_str(), BLOCK_SECS),
                ) => result,
                _ = stop.cancelled() => break,
            };
            match popped {
                Ok(Ok(Some(_))) => {
                    retry.reset();
                    if *idle.borrow() {
                        self.wake.notify_one();
                    } else {
                        let _: Result<i64, _> = blocking.rpush(key.as_str(), "1").await;
                    }
                }
                Ok(Ok(None)) => retry.reset(),
                Ok(Err(error)) => {
                    debug!(%error, "wake-up wait failed; retrying");
                    tokio::select! {
                        _ = sleep(retry.next()) => {}
                        _ = stop.cancelled() => break,
                    }
                }
                Err(_) => {
                    // fred never takes a connection blocked in BLPOP for unresponsive, so one whose
                    // server froze or vanished would stay in use: make it again, from the topology
                    // or the sentinels' current master.
                    debug!("wake-up wait timed out on the client side; reconnecting");
                    let _ = tokio::time::timeout(Duration::from_secs(10), blocking.force_reconnection()).await;
                }
            }
        }
        // A BLPOP left blocked on the server would take the next wake-up marker meant for another
        // worker. In Interrupt mode any command first unblocks it (CLIENT UNBLOCK); QUIT alone
        // does not, so a PING goes first.
        let _ = tokio::time::timeout(Duration::from_secs(2), blocking.ping::<()>(None)).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), blocking.quit()).await;
    }
}

/// A connection of its own for blocking calls, so they never hold up the queue's commands.
pub(super) fn wake_client(main: &Client) -> queue_core::Result<Client> {
    let mut config = main.client_config();
    config.blocking = Blocking::Interrupt;
    let mut builder = Builder::from_config(config);
    let mut connection = main.connection_config().clone();
    // No command is sent again on a new connection: a BLPOP replayed after its caller gave up
    // (a dead server) would take a wake-up marker that nobody reads. `listen` retries instead.
    connection.max_command_attempts = 1;
    builder.set_connection_config(connection);
    builder.set_performance_config(main.perf_config());
    if let Some(policy) = main.client_reconnect_policy() {
        builder.set_policy(policy);
    }
    Ok(builder.build()?)
}

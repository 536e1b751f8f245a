//! Wake-ups instead of polling: every path making a job ready publishes on its queue's wake-up
//! channel (`wake()` in `lua/prelude.lua`), and a worker listens to all of its queues' channels
//! on one subscriber connection, however many queues it serves.
use std::{collections::HashMap, sync::Arc, time::Duration};

use queue_core::fred::{
    clients::SubscriberClient,
    interfaces::{ClientLike, EventInterface, PubsubInterface},
    types::{config::Options, Builder, ClusterHash},
    util::redis_keyslot,
};
use tokio::{
    sync::broadcast::error::RecvError,
    time::{sleep, Instant},
};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{in_flight::QueueIndex, retry::RetryDelay, Runtime};

/// How often a quiet subscriber connection is checked: a server that froze or vanished sends
/// nothing, which a subscriber cannot tell from a quiet queue without asking.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// What `lua/cron_add.lua` and `lua/cron_remove.lua` publish on the queue's channel: re-read
/// its schedules (not a wake-up: no job became ready).
const SCHEDULES_CHANGED: &str = "schedules";

impl Runtime {
    /// Wakes the fetch loop whenever one of the worker's queues publishes a wake-up, and once
    /// after every (re)subscription, since wake-ups published meanwhile were missed. A wake-up
    /// that comes while the worker is busy is kept (one permit) for when it next idles.
    pub(super) async fn listen(self: Arc<Self>, subscriber: SubscriberClient, stop: CancellationToken) {
        let channels: Vec<String> = self.queues.iter().map(|queue| queue.keys().wake().to_owned()).collect();
        let by_channel: HashMap<&str, QueueIndex> = channels
            .iter()
            .enumerate()
            .map(|(queue, channel)| (channel.as_str(), queue))
            .collect();
        let mut messages = subscriber.message_rx();
        let mut reconnects = subscriber.reconnect_rx();
        let mut retry = RetryDelay::default();
        // In a cluster the subscription lives on the node serving the slot of the client's id
        // (how the Redis client routes SUBSCRIBE): the check must ask that node.
        let check = subscriber.with_options(&Options {
            cluster_hash: Some(ClusterHash::Custom(redis_keyslot(subscriber.id().as_bytes()))),
            ..Options::default()
        });
        let (mut connected, mut subscribed, mut resubscribing) = (false, false, false);
        loop {
            if !subscribed {
                let attempt = tokio::select! {
                    result = subscribe(&subscriber, &channels, &mut connected) => result,
                    _ = stop.cancelled() => break,
                };
                match attempt {
                    Ok(()) => {
                        subscribed = true;
                        retry.reset();
                        self.ready.mark_all();
                        self.wake.notify_one();
                        // Every queue was looked at once at the start; after a reconnection,
                        // what the missed messages would have said is unknown.
                        if resubscribing {
                            self.missed_messages();
                        } else {
                            // The first connection announces itself as a reconnection too.
                            while reconnects.try_recv().is_ok() {}
                        }
                        resubscribing = true;
                    }
                    Err(error) => {
                        debug!(%error, "wake-up subscription not ready");
                        tokio::select! {
                            _ = sleep(retry.next()) => continue,
                            _ = stop.cancelled() => break,
                        }
                    }
                }
            }
            tokio::select! {
                message = messages.recv() => {
                    match message {
                        Ok(message) => {
                            let text = message.value.as_str().unwrap_or_default();
                            if self.on_cancel_message(&message.channel, &text) {
                                continue;
                            }
                            let Some(&queue) = by_channel.get(&*message.channel) else {
                                continue;
                            };
                            if text == SCHEDULES_CHANGED {
                                self.schedule_reads.by(queue, Instant::now());
                                continue;
                            }
                            self.ready.mark(queue);
                            // A job became ready, so a lease may begin: the queue needs a sweep
                            // within an interval, which learns when that lease expires.
                            self.sweeps.by(queue, Instant::now() + self.settings.reap_interval);
                        }
                        Err(RecvError::Lagged(_)) => {
                            self.ready.mark_all();
                            self.missed_messages();
                        }
                        Err(RecvError::Closed) => break,
                    }
                    self.wake.notify_one();
                }
                // A new connection has no subscriptions yet.
                _ = reconnects.recv() => subscribed = false,
                _ = sleep(CHECK_EVERY) => {
                    let answered = tokio::time::timeout(CHECK_EVERY, check.ping::<()>(None)).await;
                    if !matches!(answered, Ok(Ok(()))) {
                        debug!("wake-up connection did not answer; reconnecting");
                        let _ = tokio::time::timeout(Duration::from_secs(10), subscriber.force_reconnection()).await;
                        subscribed = false;
                    }
                }
                _ = stop.cancelled() => break,
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), subscriber.quit()).await;
    }
}

impl Runtime {
    /// After wake-ups may have been lost: every queue gets a sweep within an interval and a
    /// look at its schedules.
    fn missed_messages(&self) {
        self.sweeps.all_by(Instant::now() + self.settings.reap_interval);
        self.schedule_reads.all_by(Instant::now());
    }
}

/// Subscribes to `channels`, connecting first if the client never connected (after that, the
/// client's reconnect policy makes its connections again).
async fn subscribe(
    subscriber: &SubscriberClient,
    channels: &[String],
    connected: &mut bool,
) -> queue_core::fred::prelude::FredResult<()> {
    if !*connected {
        subscriber.init().await?;
        *connected = true;
    }
    subscriber.subscribe(channels.to_vec()).await
}

/// The worker's subscriber connection, from the main client's configuration (servers,
/// credentials, TLS, reconnect policy), so it follows failovers as the main one does.
pub(super) fn wake_subscriber(main: &queue_core::fred::clients::Client) -> queue_core::Result<SubscriberClient> {
    let mut builder = Builder::from_config(main.client_config());
    builder.set_connection_config(main.connection_config().clone());
    builder.set_performance_config(main.perf_config());
    if let Some(policy) = main.client_reconnect_policy() {
        builder.set_policy(policy);
    }
    Ok(builder.build_subscriber_client()?)
}

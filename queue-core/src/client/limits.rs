//! A queue's limits: read and change them while workers run (`lua/limits.lua`).
use fred::types::Value;

use super::QueueClient;
use crate::{scripts::Command, Limits, Rate, Result};

impl QueueClient {
    /// The queue's limits.
    pub async fn limits(&self, queue: &str) -> Result<Limits> {
        self.change_limits(queue, Vec::new()).await
    }

    /// Replaces the queue's limits (`None`: no such limit); workers apply them from their
    /// next fetch. Returns the limits now in force.
    pub async fn set_limits(&self, queue: &str, limits: Limits) -> Result<Limits> {
        let concurrency = Limits::concurrency_field(limits.concurrency)?;
        self.change_limits(
            queue,
            vec![("rate", Limits::rate_field(limits.rate)), ("concurrency", concurrency)],
        )
        .await
    }

    /// Sets (or with `None` removes) the rate limit only: at most `rate` jobs of the queue
    /// started per window, across all workers.
    pub async fn set_rate_limit(&self, queue: &str, rate: Option<Rate>) -> Result<Limits> {
        self.change_limits(queue, vec![("rate", Limits::rate_field(rate))])
            .await
    }

    /// Sets (or with `None` removes) the concurrency limit only: at most `n` jobs of the queue
    /// active at once, across all workers. Zero is refused ([`Error::InvalidLimit`](crate::Error)).
    pub async fn set_concurrency_limit(&self, queue: &str, n: Option<u32>) -> Result<Limits> {
        let concurrency = Limits::concurrency_field(n)?;
        self.change_limits(queue, vec![("concurrency", concurrency)]).await
    }

    /// Removes every limit of the queue.
    pub async fn clear_limits(&self, queue: &str) -> Result<Limits> {
        self.set_limits(queue, Limits::default()).await
    }

    async fn change_limits(&self, queue: &str, changes: Vec<(&str, String)>) -> Result<Limits> {
        let keys = self.existing(queue).await?;
        let args = changes
            .into_iter()
            .flat_map(|(field, value)| [Value::from(field), Value::from(value)])
            .collect();
        let (_, mut reply) = self.call(Command::Limits, &keys, None, args).await?;
        Limits::parse(&reply.string()?, &reply.string()?)
    }
}

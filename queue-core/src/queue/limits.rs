//! A queue's limits: read and change them while workers run (`lua/limits.lua`).
use fred::types::Value;

use super::Queue;
use crate::{scripts::Command, Limits, Rate, Result};

impl Queue {
    /// The queue's limits.
    pub async fn limits(&self) -> Result<Limits> {
        self.change_limits(Vec::new()).await
    }

    /// Replaces the queue's limits (`None`: no such limit); workers apply them from their
    /// next fetch. Returns the limits now in force.
    ///
    /// ```no_run
    /// use queue_core::{Limits, QueueClient};
    /// # async fn demo() -> queue_core::Result<()> {
    /// let client = QueueClient::connect("redis://127.0.0.1:6379").await?;
    /// // The mail provider takes 100 requests a second and 20 connections; one tenant at most 2.
    /// let limits = Limits {
    ///     rate: Some("100/1s".parse()?),
    ///     concurrency: Some(20),
    ///     group_concurrency: Some(2),
    ///     ..Limits::default()
    /// };
    /// client.queue("emails")?.set_limits(limits).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_limits(&self, limits: Limits) -> Result<Limits> {
        let concurrency = Limits::concurrency_field(limits.concurrency)?;
        let group_concurrency = Limits::concurrency_field(limits.group_concurrency)?;
        self.change_limits(vec![
            ("rate", Limits::rate_field(limits.rate)),
            ("concurrency", concurrency),
            ("group_rate", Limits::rate_field(limits.group_rate)),
            ("group_concurrency", group_concurrency),
        ])
        .await
    }

    /// Sets (or with `None` removes) the rate limit only: at most `rate` jobs of the queue
    /// started per window, across all workers.
    pub async fn set_rate_limit(&self, rate: Option<Rate>) -> Result<Limits> {
        self.change_limits(vec![("rate", Limits::rate_field(rate))]).await
    }

    /// Sets (or with `None` removes) the concurrency limit only: at most `n` jobs of the queue
    /// active at once, across all workers. Zero is refused ([`Error::InvalidLimit`](crate::Error)).
    pub async fn set_concurrency_limit(&self, n: Option<u32>) -> Result<Limits> {
        let concurrency = Limits::concurrency_field(n)?;
        self.change_limits(vec![("concurrency", concurrency)]).await
    }

    /// Sets (or with `None` removes) the rate limit of each group: at most `rate` jobs of any
    /// one group started per window, across all workers.
    pub async fn set_group_rate_limit(&self, rate: Option<Rate>) -> Result<Limits> {
        self.change_limits(vec![("group_rate", Limits::rate_field(rate))]).await
    }

    /// Sets (or with `None` removes) the concurrency limit of each group: at most `n` jobs of
    /// any one group active at once, across all workers. Zero is refused.
    pub async fn set_group_concurrency_limit(&self, n: Option<u32>) -> Result<Limits> {
        let concurrency = Limits::concurrency_field(n)?;
        self.change_limits(vec![("group_concurrency", concurrency)]).await
    }

    /// Gives `group` `weight` turns for every one of a group of weight 1 (from 1 to 1000;
    /// `None`: back to 1) when groups share the workers.
    pub async fn set_group_weight(&self, group: &str, weight: Option<u32>) -> Result<Limits> {
        crate::new_job::validate_group(group)?;
        let value = match weight {
            Some(w @ 1..=1000) => w.to_string(),
            Some(w) => {
                return Err(crate::Error::InvalidLimit(format!(
                    "a group weight is 1 to 1000, not {w}"
                )))
            }
            None => String::new(),
        };
        let field = format!("weight:{group}");
        self.change_limits(vec![(field.as_str(), value)]).await
    }

    /// Removes every limit of the queue.
    pub async fn clear_limits(&self) -> Result<Limits> {
        self.set_limits(Limits::default()).await
    }

    async fn change_limits(&self, changes: Vec<(&str, String)>) -> Result<Limits> {
        self.existing().await?;
        let args = changes
            .into_iter()
            .flat_map(|(field, value)| [Value::from(field), Value::from(value)])
            .collect();
        let (_, mut reply) = self.call(Command::Limits, None, args).await?;
        let fields = [reply.string()?, reply.string()?, reply.string()?, reply.string()?];
        Limits::parse([&fields[0], &fields[1], &fields[2], &fields[3]])
    }
}

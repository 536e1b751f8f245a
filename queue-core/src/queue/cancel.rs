//! Cancelling a job (`lua/cancel.lua`).
use fred::types::Value;

use super::Queue;
use crate::{
    millis,
    request::RequestId,
    scripts::{status, Command},
    Error, JobState, Result,
};

/// What [`Queue::cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancellation {
    /// The job was waiting (pending, scheduled or retrying) and is gone.
    Removed,
    /// The job was running: it ended as cancelled, and its worker is told to stop the handler
    /// (its cancellation token fires; an `--exec` command's process group is killed).
    Stopped,
    /// The job had finished (completed, dead or cancelled already): nothing changed.
    AlreadyFinished(JobState),
}

impl Queue {
    /// Cancels job `id`: a waiting job is removed, a running one ends now and its
    /// worker stops its handler. Either way it is never retried nor dead, counted in
    /// [`QueueStats::cancelled_total`](crate::QueueStats::cancelled_total), and callers
    /// waiting for it get [`Error::JobCancelled`]. It stays visible as
    /// [`JobState::Cancelled`] under the dead retention ([`QueueConfig::dead`](crate::QueueConfig::dead)),
    /// and its unique key, if any, is released.
    pub async fn cancel(&self, id: &str) -> Result<Cancellation> {
        self.existing().await?;
        let retention = self.client.config().dead;
        let args = vec![
            Value::from(id),
            Value::from(retention.max_count as i64),
            Value::from(millis(retention.max_age) as i64),
        ];
        let (status, mut reply) = self.call(Command::Cancel, Some(&RequestId::new()), args).await?;
        if status == status::NOT_FOUND {
            return Err(Error::JobNotFound {
                queue: self.name().to_owned(),
                id: id.to_owned(),
            });
        }
        Ok(match reply.string()?.as_str() {
            "removed" => Cancellation::Removed,
            "stopped" => Cancellation::Stopped,
            "completed" => Cancellation::AlreadyFinished(JobState::Completed),
            "cancelled" => Cancellation::AlreadyFinished(JobState::Cancelled),
            _ => Cancellation::AlreadyFinished(JobState::Dead),
        })
    }
}

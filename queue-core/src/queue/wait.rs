//! Waiting for a job to finish (`lua/wait.lua`, then blocking reads of the finished stream).
use std::time::{Duration, Instant};

use fred::types::Value;

use super::{admin::json_value, Queue};
use crate::{
    scripts::{status, Command},
    streams::StreamReader,
    Error, Result,
};

/// Where a job stands for a caller waiting for it.
enum Check {
    Completed(Option<serde_json::Value>),
    Dead(String),
    Cancelled,
    /// Not finished: the finished stream's last entry when it was marked as waited for.
    Waiting(String),
}

impl Queue {
    /// Waits up to `timeout` for job `id` to finish, and returns its result (`None`
    /// when its handler returned none); at once if it has finished already. A job that died
    /// is [`Error::JobDied`] with its last error, a cancelled one [`Error::JobCancelled`], one
    /// deleted meanwhile (`delete`, `drain`, `obliterate`) [`Error::JobDeleted`]; a job still
    /// unfinished at the timeout is [`Error::WaitTimedOut`]. A job retried after a
    /// failed attempt has not finished. No polling: the call blocks on a stream that the
    /// script finishing the job writes to, on a connection of its own for the time it waits.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<Option<serde_json::Value>> {
        self.existing().await?;
        let deadline = Instant::now() + timeout;
        let mut reader: Option<StreamReader> = None;
        let outcome = self.wait_until(id, timeout, deadline, &mut reader).await;
        if let Some(reader) = reader {
            reader.close().await;
        }
        outcome
    }

    async fn wait_until(
        &self,
        id: &str,
        timeout: Duration,
        deadline: Instant,
        reader: &mut Option<StreamReader>,
    ) -> Result<Option<serde_json::Value>> {
        let queue = self.name();
        let died = |error: String| Error::JobDied {
            queue: queue.to_owned(),
            id: id.to_owned(),
            error,
        };
        // What the last notice said, for a job forgotten (by retention) before the check after it.
        let mut told: Option<String> = None;
        loop {
            let check = match self.check_finished(id).await {
                Err(Error::JobNotFound { .. }) if told.as_deref() == Some("completed") => return Ok(None),
                Err(Error::JobNotFound { .. }) if told.as_deref() == Some("dead") => return Err(died(String::new())),
                other => other?,
            };
            let mut after = match check {
                Check::Completed(result) => return Ok(result),
                Check::Dead(error) => return Err(died(error)),
                Check::Cancelled => {
                    return Err(Error::JobCancelled {
                        queue: queue.to_owned(),
                        id: id.to_owned(),
                    })
                }
                Check::Waiting(after) => after,
            };
            let reader = match reader {
                Some(reader) => reader,
                None => reader.insert(self.client.stream_reader().await?),
            };
            told = loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::WaitTimedOut {
                        queue: queue.to_owned(),
                        id: id.to_owned(),
                        timeout,
                    });
                }
                let entries = reader.read(self.keys.finished(), &after, left).await?;
                let mut state = None;
                for entry in entries {
                    if entry.get("id") == Some(id) {
                        state = entry.get("state").map(str::to_owned);
                    }
                    after = entry.id;
                }
                match state.as_deref() {
                    Some("cancelled") => {
                        return Err(Error::JobCancelled {
                            queue: queue.to_owned(),
                            id: id.to_owned(),
                        })
                    }
                    Some("deleted") => {
                        return Err(Error::JobDeleted {
                            queue: queue.to_owned(),
                            id: id.to_owned(),
                        })
                    }
                    // Finished: the check reads the result or the error.
                    Some(_) => break state,
                    None => {}
                }
            };
        }
    }

    async fn check_finished(&self, id: &str) -> Result<Check> {
        let (status, mut reply) = self.call(Command::Wait, None, vec![Value::from(id)]).await?;
        if status == status::NOT_FOUND {
            return Err(Error::JobNotFound {
                queue: self.name().to_owned(),
                id: id.to_owned(),
            });
        }
        let state = reply.string()?;
        Ok(match state.as_str() {
            "completed" => Check::Completed(json_value(&reply.bytes()?)),
            "dead" => Check::Dead(reply.string()?),
            "cancelled" => Check::Cancelled,
            _ => Check::Waiting(reply.string()?),
        })
    }
}

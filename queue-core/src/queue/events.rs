//! The queue's event stream: turning it on (`lua/events.lua`) and reading it.
use std::time::Duration;

use fred::{interfaces::StreamsInterface, types::Value};
use serde::Serialize;

use super::Queue;
use crate::{
    scripts::Command,
    streams::{parse_entries, StreamEntry, StreamReader},
    Result,
};

/// One event of a queue's event stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Its stream id: read on after it with [`Queue::events_after`].
    pub stream_id: String,
    /// When it happened (Unix ms, Redis's clock).
    pub time_ms: i64,
    /// `enqueued`, `started`, `completed`, `failed`, `retried`, `dead`, `cancelled` or `progress`.
    pub event: String,
    /// The job.
    pub id: String,
    /// The attempt (1 for the first; 0 for a job not started yet).
    pub attempt: u32,
    /// The error (`failed`), the time of the next attempt in Unix ms (`retried`), or the progress
    /// value as JSON text (`progress`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl From<StreamEntry> for Event {
    fn from(entry: StreamEntry) -> Self {
        Event {
            time_ms: entry.time_ms(),
            event: entry.get("event").unwrap_or_default().to_owned(),
            id: entry.get("id").unwrap_or_default().to_owned(),
            attempt: entry.get("attempt").and_then(|a| a.parse().ok()).unwrap_or(0),
            detail: entry.get("detail").map(str::to_owned),
            stream_id: entry.id,
        }
    }
}

impl Queue {
    /// Makes the queue keep an event stream of at most about `max_len` events (the oldest are
    /// trimmed), or none with 0 (the default). Each state change then costs an entry. A queue
    /// may be told before its first job (it is then listed, as one that received a job is).
    pub async fn set_events(&self, max_len: u64) -> Result<()> {
        self.client.index(self.name()).await?;
        self.call(Command::Events, None, vec![Value::from(max_len as i64)])
            .await
            .map(drop)
    }

    /// The latest `count` events of the queue, oldest first.
    pub async fn events(&self, count: u64) -> Result<Vec<Event>> {
        self.existing().await?;
        let reply: Value = self
            .client
            .redis()
            .xrevrange(self.keys.events(), "+", "-", Some(count.max(1)))
            .await?;
        let mut events: Vec<Event> = parse_entries(reply).into_iter().map(Event::from).collect();
        events.reverse();
        Ok(events)
    }

    /// The events of the queue after stream id `after` (`"0-0"`: from the oldest kept), waiting
    /// up to `block` (at most [`MAX_BLOCK`](crate::MAX_BLOCK)) on `reader` for one to arrive.
    pub async fn events_after(&self, reader: &StreamReader, after: &str, block: Duration) -> Result<Vec<Event>> {
        let entries = reader.read(self.keys.events(), after, block).await?;
        Ok(entries.into_iter().map(Event::from).collect())
    }
}

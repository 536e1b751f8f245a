//! Reading the queue's streams: `finished` (what `wait` blocks on), `cancels` (what workers
//! block on) and `events`. Blocking reads get a connection of their own ([`StreamReader`]), so
//! they never hold up the calls that share the client's.
use std::time::Duration;

use fred::{
    clients::Client,
    interfaces::{ClientLike, StreamsInterface},
    types::Value,
};

use crate::{QueueClient, Result};

/// The longest one blocking read waits before it is made again: below the 5 s after which the
/// client takes a connection that leaves a command unanswered for dead (XREAD is not one of the
/// commands it knows to block).
pub const MAX_BLOCK: Duration = Duration::from_secs(4);

/// One entry of a stream: its id (`<ms>-<seq>`, the server time it was added) and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// The entry id.
    pub id: String,
    /// Field-value pairs, in order.
    pub fields: Vec<(String, String)>,
}

impl StreamEntry {
    /// The value of field `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }

    /// When it was added (Unix ms, Redis's clock), from its id.
    pub fn time_ms(&self) -> i64 {
        self.id.split('-').next().and_then(|ms| ms.parse().ok()).unwrap_or(0)
    }
}

/// A connection of its own for blocking reads of a queue's streams. Close it when done.
#[derive(Debug)]
pub struct StreamReader {
    redis: Client,
}

impl QueueClient {
    /// A new connection (with the client's settings) for blocking stream reads.
    pub async fn stream_reader(&self) -> Result<StreamReader> {
        let redis = self.redis().clone_new();
        redis.init().await?;
        Ok(StreamReader { redis })
    }
}

impl QueueClient {
    /// The id of the last entry of stream `key`, or `0-0` when it has none: reading after it
    /// gets exactly the entries added from now on.
    pub async fn stream_last_id(&self, key: &str) -> Result<String> {
        let reply: Value = self.redis().xrevrange(key, "+", "-", Some(1)).await?;
        Ok(parse_entries(reply)
            .pop()
            .map_or_else(|| "0-0".to_owned(), |entry| entry.id))
    }
}

impl StreamReader {
    /// The entries of stream `key` after id `after`, waiting up to `block` (at most
    /// [`MAX_BLOCK`]) for one to arrive; empty when none did.
    pub async fn read(&self, key: &str, after: &str, block: Duration) -> Result<Vec<StreamEntry>> {
        let block = block.min(MAX_BLOCK).as_millis().max(1) as u64;
        let reply: Value = self.redis.xread(Some(1_000), Some(block), key, after).await?;
        Ok(parse_read(reply))
    }

    /// Closes the connection.
    pub async fn close(self) {
        let _ = self.redis.quit().await;
    }
}

/// An XREAD reply for one stream: nil, `[[key, entries]]` (RESP2) or `{key: entries}` (RESP3).
pub(crate) fn parse_read(reply: Value) -> Vec<StreamEntry> {
    match reply {
        Value::Array(streams) => streams
            .into_iter()
            .flat_map(|stream| match stream {
                Value::Array(mut pair) if pair.len() == 2 => parse_entries(pair.pop().unwrap_or(Value::Null)),
                _ => Vec::new(),
            })
            .collect(),
        Value::Map(streams) => streams.inner().into_values().flat_map(parse_entries).collect(),
        _ => Vec::new(),
    }
}

/// An XRANGE reply (or the entries of one stream in an XREAD reply).
pub(crate) fn parse_entries(entries: Value) -> Vec<StreamEntry> {
    let Value::Array(entries) = entries else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter_map(|entry| {
            let Value::Array(mut parts) = entry else { return None };
            if parts.len() != 2 {
                return None;
            }
            let fields = parts.pop()?;
            let id = parts.pop()?.as_string()?;
            let text = |value: Value| value.as_string().unwrap_or_default();
            let fields = match fields {
                Value::Array(values) => {
                    let mut values = values.into_iter();
                    let mut pairs = Vec::new();
                    while let (Some(field), Some(value)) = (values.next(), values.next()) {
                        pairs.push((text(field), text(value)));
                    }
                    pairs
                }
                Value::Map(map) => map
                    .inner()
                    .into_iter()
                    .map(|(field, value)| (field.as_str().unwrap_or_default().to_string(), text(value)))
                    .collect(),
                _ => Vec::new(),
            };
            Some(StreamEntry { id, fields })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use fred::types::Value;

    #[test]
    fn an_xread_reply_gives_its_entries_in_order() {
        let entry = |id: &str, job: &str| {
            Value::Array(vec![
                id.into(),
                Value::Array(vec!["id".into(), job.into(), "state".into(), "completed".into()]),
            ])
        };
        let reply = Value::Array(vec![Value::Array(vec![
            "{queue:q}:finished".into(),
            Value::Array(vec![entry("5-0", "a"), entry("5-1", "b")]),
        ])]);
        let entries = super::parse_read(reply);
        assert_eq!(entries.len(), 2);
        assert_eq!((entries[1].id.as_str(), entries[1].get("id")), ("5-1", Some("b")));
        assert_eq!(entries[0].get("state"), Some("completed"));
        assert_eq!(entries[0].time_ms(), 5);
        assert!(super::parse_read(Value::Null).is_empty());
    }
}

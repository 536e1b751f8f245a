//! `queue-cli delete`, `retry`, `drain` and `obliterate`: what an operator does to jobs.
use queue_core::QueueClient;
use serde_json::json;

use crate::output;

pub(crate) async fn delete(client: &QueueClient, queue: &str, id: &str, as_json: bool) -> anyhow::Result<()> {
    let state = client.queue(queue)?.delete_job(id).await?;
    if as_json {
        return output::json(&json!({ "queue": queue, "id": id, "deleted_from": state }));
    }
    output::line(format_args!("deleted {state} job {id} from {queue}"))
}

pub(crate) async fn retry(client: &QueueClient, queue: &str, id: &str, as_json: bool) -> anyhow::Result<()> {
    let state = client.queue(queue)?.retry_job(id).await?;
    if as_json {
        return output::json(&json!({ "queue": queue, "id": id, "moved_from": state }));
    }
    output::line(format_args!("{state} job {id} of {queue} is pending now"))
}

pub(crate) async fn drain(client: &QueueClient, queue: &str, as_json: bool) -> anyhow::Result<()> {
    let removed = client.queue(queue)?.drain().await?;
    if as_json {
        return output::json(&json!({ "queue": queue, "removed": removed }));
    }
    output::line(format_args!("removed {removed} waiting jobs from {queue}"))
}

/// Without `--yes`, nothing is read or written (not even a connection is made).
pub(crate) fn refuse_obliterate(queue: &str) -> anyhow::Result<()> {
    anyhow::bail!("obliterate removes queue {queue} and every job in it, running ones included: add --yes to confirm")
}

pub(crate) async fn obliterate(client: &QueueClient, queue: &str, as_json: bool) -> anyhow::Result<()> {
    let removed = client.queue(queue)?.obliterate().await?;
    if as_json {
        return output::json(&json!({ "queue": queue, "removed": removed }));
    }
    output::line(format_args!("obliterated {queue}: removed {removed} jobs and its keys"))
}

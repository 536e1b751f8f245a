//! `queue-cli job`, `dead …` and `scripts`.
use queue_core::{Cancellation, QueueClient};
use serde_json::json;

use crate::output;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum DeadCommand {
    /// Dead jobs, most recent first: id, attempts, failed-at, last error.
    List {
        /// The queue.
        queue: String,
        /// How many to show.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move dead jobs back to pending with fresh attempts.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["ids", "all"])))]
    Retry {
        /// The queue.
        queue: String,
        /// The jobs to retry.
        ids: Vec<String>,
        /// Retry every dead job of the queue.
        #[arg(long)]
        all: bool,
    },
    /// Delete every dead job of the queue.
    Purge {
        /// The queue.
        queue: String,
    },
}

/// One job as `queue-cli job --json` prints it (and the dashboard's API serves it).
pub(crate) fn job_json(job: &queue_core::Job) -> serde_json::Value {
    json!({
        "id": job.envelope.id,
        "queue": job.envelope.queue,
        "kind": job.envelope.kind,
        "state": job.state,
        "attempts": job.attempts,
        "max_attempts": job.envelope.max_attempts,
        "priority": job.envelope.priority,
        "group": job.group,
        "backoff": job.envelope.backoff,
        "created_at_ms": job.created_at_ms,
        "run_at_ms": job.run_at_ms,
        "last_error": job.last_error,
        "payload": payload_json(job),
        "progress": job.progress,
        "result": job.result,
    })
}

/// The payload as JSON, or a string saying why it is not representable.
pub(crate) fn payload_json(job: &queue_core::Job) -> serde_json::Value {
    job.envelope
        .payload_json()
        .unwrap_or_else(|e| json!(format!("<not representable as JSON: {e}>")))
}

pub(crate) async fn job(client: &QueueClient, queue: &str, id: &str, as_json: bool) -> anyhow::Result<()> {
    let job = client.queue(queue)?.job(id).await?;
    if as_json {
        return output::json(&job_json(&job));
    }
    let payload = payload_json(&job);
    let lines = [
        ("id", job.envelope.id.clone()),
        ("queue", job.envelope.queue.clone()),
        ("kind", job.envelope.kind.clone()),
        ("state", job.state.to_string()),
        ("attempts", format!("{} of {}", job.attempts, job.envelope.max_attempts)),
        ("priority", job.envelope.priority.to_string()),
        ("group", job.group.clone().unwrap_or_else(|| "-".into())),
        ("created at", output::timestamp(job.created_at_ms)),
        ("run at", job.run_at_ms.map_or("-".into(), output::timestamp)),
        ("last error", job.last_error.clone().unwrap_or_else(|| "-".into())),
        ("payload", payload.to_string()),
        (
            "progress",
            job.progress.as_ref().map_or("-".into(), ToString::to_string),
        ),
        ("result", job.result.as_ref().map_or("-".into(), ToString::to_string)),
    ];
    for (name, value) in lines {
        output::line(format_args!("{name:<11} {value}"))?;
    }
    Ok(())
}

pub(crate) async fn cancel(client: &QueueClient, queue: &str, id: &str) -> anyhow::Result<()> {
    match client.queue(queue)?.cancel(id).await? {
        Cancellation::Removed => output::line(format_args!("cancelled {id}: it was waiting, and is removed")),
        Cancellation::Stopped => output::line(format_args!("cancelled {id}: it was running; its worker stops it")),
        Cancellation::AlreadyFinished(state) => {
            anyhow::bail!("job {id:?} of queue {queue:?} is {state} already; nothing to cancel")
        }
    }
}

pub(crate) async fn dead(client: &QueueClient, command: DeadCommand) -> anyhow::Result<()> {
    match command {
        DeadCommand::List { queue, limit, json } => {
            let page = client.queue(&queue)?.dead_list(0, limit).await?;
            if json {
                return output::json(&dead_page_json(&page));
            }
            if page.jobs.is_empty() {
                return output::line(format_args!("the dead letter of {queue} is empty"));
            }
            let mut table = output::table(["ID", "ATTEMPTS", "FAILED AT", "ERROR"]);
            for job in &page.jobs {
                let error = job.error.lines().collect::<Vec<_>>().join(" / ");
                table.add_row([
                    job.id.clone(),
                    job.attempts.to_string(),
                    output::timestamp(job.failed_at_ms),
                    error,
                ]);
            }
            output::line(format_args!("{table}"))?;
            output::line(format_args!("{} of {} dead jobs", page.jobs.len(), page.total))
        }
        DeadCommand::Retry { queue, ids, all } => {
            let moved = if all {
                client.queue(&queue)?.dead_replay_all().await?
            } else {
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                client.queue(&queue)?.dead_replay(&ids).await?
            };
            output::line(format_args!("moved {moved} jobs from the dead letter back to {queue}"))
        }
        DeadCommand::Purge { queue } => {
            let purged = client.queue(&queue)?.dead_purge().await?;
            output::line(format_args!("purged {purged} dead jobs from {queue}"))
        }
    }
}

/// A dead-letter page as `queue-cli dead list --json` prints it.
pub(crate) fn dead_page_json(page: &queue_core::DeadPage) -> serde_json::Value {
    json!({ "total": page.total, "jobs": page.jobs })
}

pub(crate) async fn scripts(client: &QueueClient) -> anyhow::Result<()> {
    let mut table = output::table(["NAME", "SHA1", "LOADED"]);
    for (script, loaded) in client.scripts().loaded(client.redis()).await? {
        table.add_row([
            script.name().to_owned(),
            script.sha1().to_owned(),
            if loaded { "yes" } else { "no" }.into(),
        ]);
    }
    output::line(format_args!("{table}"))
}

//! `queue-cli cron`: named schedules of a queue.
use queue_core::{NewJob, QueueClient, Schedule, ScheduleInfo};

use crate::output;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum CronCommand {
    /// Add a named schedule to a queue, or replace the one of that name. Running workers of
    /// the queue enqueue its job at every tick, once per tick.
    Add {
        /// The queue its jobs go to.
        queue: String,
        /// The schedule's name, unique in the queue.
        name: String,
        /// A cron expression: 5 fields (minute hour day month weekday), or 6 with seconds
        /// first; `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`; or `@every 10s`.
        expression: String,
        /// The payload of each job, as JSON.
        payload: String,
        /// The time zone the expression is read in (IANA name, e.g. Europe/Paris).
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// The kind of each job.
        #[arg(long, default_value = "default")]
        kind: String,
    },
    /// The schedules of one queue, or of every queue, with their next run times.
    List {
        /// The queue (default: every queue).
        queue: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a named schedule (jobs it already enqueued stay).
    Remove {
        /// The queue.
        queue: String,
        /// The schedule's name.
        name: String,
    },
}

pub(crate) async fn run(client: &QueueClient, command: CronCommand) -> anyhow::Result<()> {
    match command {
        CronCommand::Add {
            queue,
            name,
            expression,
            payload,
            tz,
            kind,
        } => {
            let job = NewJob::from_json(kind, &payload)?;
            let added = client
                .queue(&queue)?
                .cron_add(&name, Schedule::new(expression, job).time_zone(tz))
                .await?;
            output::line(format_args!(
                "schedule {name} of {queue}: next run {}",
                output::timestamp(added.next_run_ms)
            ))
        }
        CronCommand::List { queue, json } => {
            let queues = match queue {
                Some(queue) => vec![queue],
                None => client.queues().await?,
            };
            let mut schedules: Vec<ScheduleInfo> = Vec::new();
            for queue in &queues {
                schedules.extend(client.queue(queue)?.cron_list().await?);
            }
            if json {
                return output::json(&serde_json::json!({ "schedules": schedules }));
            }
            let mut table = output::table(["QUEUE", "NAME", "SCHEDULE", "TIME ZONE", "KIND", "NEXT RUN", "PAYLOAD"]);
            for s in &schedules {
                table.add_row(vec![
                    s.queue.clone(),
                    s.name.clone(),
                    s.expression.clone(),
                    s.time_zone.clone(),
                    s.kind.clone(),
                    output::timestamp(s.next_run_ms),
                    s.payload.to_string(),
                ]);
            }
            output::line(format_args!("{table}"))
        }
        CronCommand::Remove { queue, name } => {
            client.queue(&queue)?.cron_remove(&name).await?;
            output::line(format_args!("removed schedule {name} of {queue}"))
        }
    }
}

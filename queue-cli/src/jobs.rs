//! `queue-cli jobs`: a page of the jobs in one state.
use queue_core::{JobState, JobSummary, QueueClient, MAX_JOBS_PAGE};

use crate::output;

#[derive(Debug, clap::Args)]
pub(crate) struct JobsArgs {
    /// The queue.
    queue: String,
    /// Which jobs to list.
    #[arg(long, value_enum)]
    state: State,
    /// How many to show (at most 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=MAX_JOBS_PAGE))]
    limit: u64,
    /// How many to skip first.
    #[arg(long, default_value_t = 0)]
    offset: u64,
    /// Print JSON (the `JobPage` of the Rust client).
    #[arg(long)]
    json: bool,
}

/// The states a list can show, as `--state` takes them.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum State {
    Pending,
    Scheduled,
    Retrying,
    Active,
    Dead,
    Completed,
    Cancelled,
}

impl From<State> for JobState {
    fn from(state: State) -> Self {
        match state {
            State::Pending => JobState::Pending,
            State::Scheduled => JobState::Scheduled,
            State::Retrying => JobState::Retrying,
            State::Active => JobState::Active,
            State::Dead => JobState::Dead,
            State::Completed => JobState::Completed,
            State::Cancelled => JobState::Cancelled,
        }
    }
}

pub(crate) async fn run(client: &QueueClient, args: JobsArgs) -> anyhow::Result<()> {
    let state = JobState::from(args.state);
    let page = client.queue(&args.queue)?.jobs(state, args.offset, args.limit).await?;
    if args.json {
        return output::json(&page);
    }
    if page.jobs.is_empty() {
        return output::line(format_args!(
            "no {state} jobs in {} from {} on ({} in all)",
            page.queue, page.offset, page.total
        ));
    }
    // Each state's own time: when it became ready, is due, must renew its lease, or finished.
    let (time_header, time_of): (&str, fn(&JobSummary) -> Option<i64>) = match state {
        JobState::Pending => ("READY SINCE", |job| job.run_at_ms),
        JobState::Scheduled | JobState::Retrying => ("RUN AT", |job| job.run_at_ms),
        JobState::Active => ("LEASE UNTIL", |job| job.lease_expires_at_ms),
        JobState::Dead | JobState::Completed | JobState::Cancelled => ("FINISHED", |job| job.finished_at_ms),
    };
    let mut table = output::table(["ID", "KIND", "PRIORITY", "ATTEMPTS", "CREATED", time_header, "ERROR"]);
    for job in &page.jobs {
        let error = job
            .error
            .as_deref()
            .unwrap_or("-")
            .lines()
            .collect::<Vec<_>>()
            .join(" / ");
        table.add_row([
            job.id.clone(),
            if job.kind.is_empty() {
                "?".into()
            } else {
                job.kind.clone()
            },
            job.priority.to_string(),
            format!("{}/{}", job.attempts, job.max_attempts),
            output::timestamp(job.created_at_ms),
            time_of(job).map_or("-".into(), output::timestamp),
            error,
        ]);
    }
    output::line(format_args!("{table}"))?;
    output::line(format_args!(
        "{state} jobs {} to {} of {} in {}",
        page.offset + 1,
        page.offset + page.jobs.len() as u64,
        page.total,
        page.queue
    ))
}

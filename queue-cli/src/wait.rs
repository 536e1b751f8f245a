//! `queue-cli wait`: blocks until a job finishes, prints its result.
use std::time::Duration;

use queue_core::QueueClient;

use crate::output;

#[derive(Debug, clap::Args)]
pub(crate) struct WaitArgs {
    /// The queue.
    queue: String,
    /// The job id.
    id: String,
    /// How long to wait (e.g. `30s`, `5m`).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// Prints the result as JSON (nothing when the handler returned none) and succeeds; a job that
/// died, was cancelled or did not finish in time is an error (one line, exit 1).
pub(crate) async fn run(client: &QueueClient, args: WaitArgs) -> anyhow::Result<()> {
    match client.queue(&args.queue)?.wait(&args.id, args.timeout).await? {
        Some(result) => output::line(format_args!("{result}")),
        None => Ok(()),
    }
}

//! `queue-cli limit`: a queue's rate and concurrency limits, read and changed at runtime.
use queue_core::{QueueClient, Rate};

use crate::output;

#[derive(Debug, clap::Args)]
pub(crate) struct LimitArgs {
    /// The queue.
    queue: String,
    /// At most N jobs started per window, across all workers (e.g. `100/1s`, `1000/1m`).
    #[arg(long, value_name = "N/DURATION", value_parser = parse_rate)]
    rate: Option<Rate>,
    /// At most N jobs of the queue active at once, across all workers.
    #[arg(long, value_name = "N", value_parser = parse_concurrency)]
    concurrency: Option<u32>,
    /// Remove every limit of the queue.
    #[arg(long, conflicts_with_all = ["rate", "concurrency"])]
    clear: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn parse_rate(text: &str) -> Result<Rate, String> {
    text.parse::<Rate>().map_err(|e| e.to_string())
}

fn parse_concurrency(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(0) => Err("a concurrency limit must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{text:?} is not a whole number")),
    }
}

pub(crate) async fn run(client: &QueueClient, args: LimitArgs) -> anyhow::Result<()> {
    let queue = client.queue(&args.queue)?;
    let mut limits = if args.clear {
        queue.clear_limits().await?
    } else {
        queue.limits().await?
    };
    if let Some(rate) = args.rate {
        limits = queue.set_rate_limit(Some(rate)).await?;
    }
    if let Some(concurrency) = args.concurrency {
        limits = queue.set_concurrency_limit(Some(concurrency)).await?;
    }
    if args.json {
        return output::json(&limits);
    }
    output::line(format_args!("limits of {}: {limits}", queue.name()))
}

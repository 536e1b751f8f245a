//! `queue-cli limit`: a queue's rate and concurrency limits, queue-wide and per group, read and
//! changed at runtime.
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
    /// At most N jobs of any one group started per window (e.g. `10/1s`).
    #[arg(long, value_name = "N/DURATION", value_parser = parse_rate)]
    group_rate: Option<Rate>,
    /// At most N jobs of any one group active at once.
    #[arg(long, value_name = "N", value_parser = parse_concurrency)]
    group_concurrency: Option<u32>,
    /// A group's share of turns, `GROUP=N` (1 to 1000; 1 by default); repeat for more groups.
    #[arg(long, value_name = "GROUP=N", value_parser = parse_weight)]
    group_weight: Vec<(String, u32)>,
    /// Remove every limit of the queue (group weights stay).
    #[arg(long, conflicts_with_all = ["rate", "concurrency", "group_rate", "group_concurrency"])]
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

fn parse_weight(text: &str) -> Result<(String, u32), String> {
    let (group, weight) = text
        .rsplit_once('=')
        .ok_or_else(|| format!("{text:?}: expected GROUP=N"))?;
    match weight.parse::<u32>() {
        Ok(n @ 1..=1000) => Ok((group.to_owned(), n)),
        _ => Err(format!("{text:?}: the weight is a whole number from 1 to 1000")),
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
    if let Some(rate) = args.group_rate {
        limits = queue.set_group_rate_limit(Some(rate)).await?;
    }
    if let Some(concurrency) = args.group_concurrency {
        limits = queue.set_group_concurrency_limit(Some(concurrency)).await?;
    }
    for (group, weight) in &args.group_weight {
        limits = queue.set_group_weight(group, Some(*weight)).await?;
    }
    if args.json {
        return output::json(&limits);
    }
    output::line(format_args!("limits of {}: {limits}", queue.name()))
}

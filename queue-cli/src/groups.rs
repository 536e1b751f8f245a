//! `queue-cli groups`: a queue's busiest groups, with their ready and running jobs.
use queue_core::QueueClient;

use crate::output;

#[derive(Debug, clap::Args)]
pub(crate) struct GroupsArgs {
    /// The queue.
    queue: String,
    /// How many groups to list (1 to 1000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,
    /// Print JSON: `{"waiting", "running", "groups": [{"name", "pending", "active", "weight",
    /// "state"}]}`.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(client: &QueueClient, args: GroupsArgs) -> anyhow::Result<()> {
    let report = client.queue(&args.queue)?.groups(args.limit).await?;
    if args.json {
        return output::json(&report);
    }
    if report.groups.is_empty() {
        return output::line(format_args!("{}: no group has jobs ready or running", args.queue));
    }
    let mut table = output::table(["GROUP", "PENDING", "ACTIVE", "WEIGHT", "STATE"]);
    for group in &report.groups {
        table.add_row([
            group.name.clone(),
            group.pending.to_string(),
            group.active.to_string(),
            group.weight.to_string(),
            group.state.clone(),
        ]);
    }
    output::text(&format!(
        "{table}\n{} groups waiting, {} running\n",
        report.waiting, report.running
    ))
}

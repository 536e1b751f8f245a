//! `queue-cli events`: a queue's event stream, and turning it on or off.
use queue_core::{Event, QueueClient, MAX_BLOCK};

use crate::output;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("switch").args(["enable", "disable"])))]
pub(crate) struct EventsArgs {
    /// The queue.
    queue: String,
    /// Keep going: print new events as they happen, until interrupted.
    #[arg(long)]
    follow: bool,
    /// Print one JSON object per line.
    #[arg(long)]
    json: bool,
    /// How many of the latest events to print first.
    #[arg(long, default_value_t = 100)]
    limit: u64,
    /// Make the queue keep an event stream of about this many events (off by default: each
    /// event costs Redis time, see the README).
    #[arg(long, value_name = "MAX_LEN", value_parser = clap::value_parser!(u64).range(1..))]
    enable: Option<u64>,
    /// Stop keeping events (those kept stay until trimmed).
    #[arg(long)]
    disable: bool,
}

pub(crate) async fn run(client: &QueueClient, args: EventsArgs) -> anyhow::Result<()> {
    let queue = client.queue(&args.queue)?;
    if let Some(max_len) = args.enable {
        queue.set_events(max_len).await?;
        return output::line(format_args!("{} keeps its latest {max_len} events", args.queue));
    }
    if args.disable {
        queue.set_events(0).await?;
        return output::line(format_args!("{} keeps no events", args.queue));
    }
    if queue.stats().await?.events_max_len == 0 {
        // Said on stderr, so that a pipe reading JSON lines gets only events.
        eprintln!(
            "note: {} keeps no events; `queue-cli events {} --enable 10000` turns them on",
            args.queue, args.queue
        );
    }
    let mut after = "0-0".to_owned();
    for event in queue.events(args.limit).await? {
        print(&event, args.json)?;
        after = event.stream_id;
    }
    if !args.follow {
        return Ok(());
    }
    if after == "0-0" {
        after = client.stream_last_id(queue.keys().events()).await?;
    }
    let reader = client.stream_reader().await?;
    let stop = queue_worker::shutdown_on_signals();
    let followed = async {
        loop {
            for event in queue.events_after(&reader, &after, MAX_BLOCK).await? {
                print(&event, args.json)?;
                after = event.stream_id;
            }
        }
    };
    let outcome: anyhow::Result<()> = tokio::select! {
        outcome = followed => outcome,
        _ = stop.cancelled() => Ok(()),
    };
    reader.close().await;
    outcome
}

fn print(event: &Event, json: bool) -> anyhow::Result<()> {
    if json {
        return output::line(format_args!("{}", serde_json::to_string(event)?));
    }
    let detail = event.detail.as_deref().map(|d| format!(" {d}")).unwrap_or_default();
    output::line(format_args!(
        "{} {:<9} {} attempt {}{}",
        output::timestamp_ms(event.time_ms),
        event.event,
        event.id,
        event.attempt,
        detail
    ))
}

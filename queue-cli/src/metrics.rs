//! `queue-cli metrics`: every queue's gauges at `/metrics`, without running a worker.
use std::{net::SocketAddr, time::Duration};

use clap::Args;
use queue_worker::metrics::{serve, QueueGauges, QueueSelection};

use crate::ConnectArgs;

/// Arguments of `queue-cli metrics`.
#[derive(Debug, Args)]
pub(crate) struct MetricsArgs {
    /// Where to serve `/metrics`.
    #[arg(long, default_value = "127.0.0.1:9465")]
    listen: SocketAddr,
    /// How long one reading of Redis is served to scrapes before Redis is read again.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    cache: Duration,
}

pub(crate) async fn run(connect: &ConnectArgs, args: MetricsArgs) -> anyhow::Result<()> {
    // Keeps serving through Redis restarts: a scrape while Redis is down reports
    // queue_stats_up 0.
    let (options, config) = connect.options();
    let client = queue_core::QueueClient::connect_with(&options, config).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|error| anyhow::anyhow!("cannot listen on {}: {error}", args.listen))?;
    let gauges = QueueGauges::new(client, QueueSelection::All).max_age(args.cache);
    tracing::info!(address = %listener.local_addr()?, "serving every queue's gauges at /metrics");
    serve(listener, gauges, queue_worker::shutdown_on_signals()).await?;
    Ok(())
}

//! The `queue-worker` binary's code: runs a command per job, so handlers can be written in any
//! language. The binary only parses the command line and calls [`run`]; services that embed a
//! worker depend on the runtime (`queue-worker`) and never compile this command line.
#![deny(missing_docs)]

use std::time::Duration;

use clap::Parser;
use queue_cli::{ConnectArgs, LogFormat};
use queue_worker::{connect_when_available, shutdown_on_signals, ExecHandler, QueueOrder, Worker};

/// Runs jobs from Redis queues by executing a command per job.
///
/// The command runs through `sh -c` with the payload as JSON on stdin and QUEUE_JOB_ID,
/// QUEUE_JOB_QUEUE, QUEUE_JOB_KIND, QUEUE_JOB_ATTEMPT and QUEUE_JOB_FENCING_TOKEN in its
/// environment (but not the worker's own QUEUE_REDIS_URL, QUEUE_PREFIX and QUEUE_TLS_CA). Exit status 0
/// completes the job; any other status fails the attempt with the last lines of stderr.
/// SIGTERM or SIGINT: stop fetching, let running jobs finish up to --shutdown-timeout, hand
/// the rest back, exit 0.
#[derive(Debug, Parser)]
#[command(name = "queue-worker", version)]
pub struct Args {
    /// A queue to work on; repeat for several. `name=weight` (e.g. `critical=6`) picks queues
    /// at random in proportion to their weights; without weights, earlier queues go first.
    #[arg(long = "queue", short = 'q', required = true, value_name = "NAME[=WEIGHT]")]
    pub queues: Vec<String>,
    /// How many jobs run at once.
    #[arg(long, short = 'c', default_value_t = 10)]
    pub concurrency: usize,
    /// The command to run for each job (through `sh -c`).
    #[arg(long, value_name = "COMMAND")]
    pub exec: String,
    /// Time limit per job, e.g. `30s`, `500ms`, `1h`; the command's process group is killed.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Lease per attempt; renewed while the job runs. A crashed worker's jobs run again after it.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub lease: Duration,
    /// How long running jobs may finish after SIGTERM/SIGINT.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub shutdown_timeout: Duration,
    /// How often the fleet sweeps expired leases.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub reap_interval: Duration,
    /// Serve Prometheus metrics at `http://<ADDR>/metrics` (e.g. `127.0.0.1:9464`): what this
    /// worker did by queue and kind, and its queues' jobs by state.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// `replicated` or `replicated:N`: every completion and failure waits until N replicas
    /// (default 1) have it, and reports an error when they do not within 1 s.
    #[arg(long, value_name = "master|replicated[:N]", default_value = "master", value_parser = queue_cli::parse_durability)]
    pub durability: queue_core::Durability,
    /// How log lines (on stderr) are written.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// How to reach the queues.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Logs to stderr in `format`, filtered by `RUST_LOG` (default `info`).
pub fn init_logging(format: LogFormat) {
    queue_cli::init_logging(format);
}

/// Runs the worker described by `args` until SIGTERM or SIGINT.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let queues = parse_queues(&args.queues)?;
    let weighted = args.queues.iter().any(|q| q.contains('='));
    let (options, mut config) = args.connect.options();
    config.durability = args.durability;
    queue_core::validate_name(&config.prefix)?;
    for (name, _) in &queues {
        queue_core::validate_name(name)?;
    }
    let shutdown = shutdown_on_signals();
    let Some(client) = connect_when_available(&options, config, &shutdown).await? else {
        return Ok(());
    };
    let exec = ExecHandler::new(args.exec);
    let mut builder = Worker::builder(client)
        .concurrency(args.concurrency)
        .lease(args.lease)
        .shutdown_timeout(args.shutdown_timeout)
        .reap_interval(args.reap_interval)
        .order(if weighted {
            QueueOrder::Weighted
        } else {
            QueueOrder::Strict
        })
        .fallback(move |ctx| {
            let exec = exec.clone();
            async move { exec.run(ctx).await }
        });
    if let Some(timeout) = args.timeout {
        builder = builder.job_timeout(timeout);
    }
    if let Some(addr) = args.metrics_addr {
        builder = builder.metrics_addr(addr);
    }
    for (name, weight) in queues {
        builder = builder.queue_with_weight(name, weight);
    }
    builder.build().run(shutdown).await?;
    Ok(())
}

fn parse_queues(specs: &[String]) -> anyhow::Result<Vec<(String, u32)>> {
    specs
        .iter()
        .map(|spec| match spec.split_once('=') {
            None => Ok((spec.clone(), 1)),
            Some((name, weight)) => {
                let weight: u32 = weight
                    .parse()
                    .ok()
                    .filter(|w| *w > 0)
                    .ok_or_else(|| anyhow::anyhow!("--queue {spec}: the weight must be a positive integer"))?;
                Ok((name.to_owned(), weight))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_setting_read_from_the_environment_is_kept_from_exec_commands() {
        for arg in super::Args::command().get_arguments() {
            if let Some(name) = arg.get_env() {
                let name = name.to_str().unwrap();
                assert!(
                    queue_core::env::ALL.contains(&name),
                    "{name} is read by queue-worker but passed on to --exec commands"
                );
            }
        }
    }
}

//! `queue-cli`: the state of every queue, and the commands an operator needs in an incident.
//!
//! The binary (`src/main.rs`) only calls [`main`]; everything else lives here.
#![deny(missing_docs)]

mod admin;
mod bench;
mod cron;
mod dashboard;
mod enqueue;
mod events;
mod groups;
mod jobs;
mod limit;
mod logging;
mod metrics;
mod operations;
mod output;
mod stats;
mod wait;

use std::{process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};
use queue_core::{env, ConnectOptions, Durability, Pause, QueueClient, QueueConfig};

pub use logging::{init_logging, LogFormat};

/// Inspect and operate the queues.
#[derive(Debug, Parser)]
#[command(name = "queue-cli", version)]
pub struct Cli {
    #[command(flatten)]
    connect: ConnectArgs,
    /// How log lines (on stderr) are written.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How to reach the queues: the connection flags of `queue-cli` (accepted by every command)
/// and of `queue-worker`, each with the environment variable a service reads too
/// ([`queue_core::env`]). Flatten it into a clap command with `#[command(flatten)]`.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Redis URL (`redis://[user:password@]host:port[/db]`, `rediss://` for TLS).
    #[arg(
        long,
        global = true,
        env = env::REDIS_URL,
        default_value = env::DEFAULT_REDIS_URL,
        hide_env_values = true
    )]
    pub redis_url: String,
    /// Key prefix (namespace) of the queues.
    #[arg(long, global = true, env = env::PREFIX, default_value = env::DEFAULT_PREFIX)]
    pub prefix: String,
    /// For rediss:// URLs: trust the CA certificates in this PEM file instead of the system's.
    #[arg(long, global = true, env = env::TLS_CA, value_name = "PEM_FILE")]
    pub tls_ca: Option<std::path::PathBuf>,
}

impl ConnectArgs {
    /// The connection options (default timeouts and reconnecting) and the configuration
    /// (default but for the prefix) these flags describe.
    pub fn options(&self) -> (ConnectOptions, QueueConfig) {
        let options = ConnectOptions {
            tls_ca_file: self.tls_ca.clone(),
            ..ConnectOptions::new(&self.redis_url)
        };
        let config = QueueConfig {
            prefix: self.prefix.clone(),
            ..QueueConfig::default()
        };
        (options, config)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One row per queue: jobs in each state now, all-time totals (enqueued, completed, failed
    /// attempts, died), paused, latency.
    Stats(stats::StatsArgs),
    /// Enqueue one job, or one job per JSON line of a file (`--file -` for stdin).
    Enqueue(enqueue::EnqueueArgs),
    /// One job: state, attempts, priority, run-at, last error, payload.
    Job {
        /// The queue.
        queue: String,
        /// The job id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A page of the jobs in one state: id, kind, priority, attempts, times, last error.
    Jobs(jobs::JobsArgs),
    /// Delete one waiting or finished job (a running one is refused).
    Delete {
        /// The queue.
        queue: String,
        /// The job id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a scheduled or retrying job now.
    Retry {
        /// The queue.
        queue: String,
        /// The job id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove every waiting job (pending, scheduled, retrying); running and finished ones stay.
    Drain {
        /// The queue.
        queue: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a queue and everything in it; running jobs lose their lease.
    Obliterate {
        /// The queue.
        queue: String,
        /// Confirm: without it nothing is removed.
        #[arg(long)]
        yes: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Wait for a job to finish: prints its result (exit 0), or the error of a job that died,
    /// was cancelled or did not finish in time (exit 1).
    Wait(wait::WaitArgs),
    /// Cancel a job: a waiting one is removed, a running one is stopped (its worker's handler
    /// is cancelled; an `--exec` command is killed). Never retried, never dead; counted.
    Cancel {
        /// The queue.
        queue: String,
        /// The job id.
        id: String,
    },
    /// A queue's events (enqueued, started, completed, failed, retried, dead, cancelled,
    /// progress), oldest first; `--enable N` makes the queue keep them.
    Events(events::EventsArgs),
    /// The dead letter: list, retry, purge.
    #[command(subcommand)]
    Dead(admin::DeadCommand),
    /// Named schedules (cron expressions or intervals) that enqueue a job at every tick.
    #[command(subcommand)]
    Cron(cron::CronCommand),
    /// Stop workers from taking jobs from a queue (enqueueing still works). A queue with no jobs
    /// yet is paused ahead of them.
    Pause {
        /// The queue.
        queue: String,
    },
    /// Let workers take jobs from a paused queue again (an unknown queue is an error).
    Resume {
        /// The queue.
        queue: String,
    },
    /// Show a queue's limits, or change them while workers run (`--rate 100/1s`,
    /// `--concurrency 5`, `--group-rate 10/1s`, `--group-concurrency 2`, `--clear`).
    Limit(limit::LimitArgs),
    /// A queue's busiest groups: jobs ready and running per group.
    Groups(groups::GroupsArgs),
    /// Every queue under the prefix.
    Queues,
    /// The registered Lua scripts: name, SHA-1, whether the server has it cached.
    Scripts,
    /// Print the Redis ACL rules for a user limited to this prefix's queues and the commands
    /// the queue uses (for `ACL SETUSER <user> on ><password> <rules>`).
    Acl {
        /// The user name to put in the printed command.
        #[arg(long, default_value = "queue")]
        user: String,
    },
    /// Serve the queues in a browser: counts, rates, jobs, the dead letter, pause and resume
    /// (and a JSON API under `/api/`).
    Dashboard(dashboard::DashboardArgs),
    /// Measure enqueue and processing throughput, pickup latency, memory and idle cost
    /// against this Redis's own ceiling (uses a temporary queue, removed afterwards).
    Bench(bench::BenchArgs),
    /// Serve every queue's gauges (jobs by state, latency, paused, totals) as Prometheus
    /// metrics at `http://<listen>/metrics`, read from Redis when scraped, until Ctrl-C.
    Metrics(metrics::MetricsArgs),
}

/// Parses the command line, runs it, prints errors in one line, and returns the exit code:
/// 0 on success, 1 when the command failed, 2 for a malformed command line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return output::fail(&anyhow::anyhow!("cannot start the async runtime: {error}")),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if output::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => output::fail(&error),
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Stats(args) => stats::run(&cli.connect, args).await,
        Command::Enqueue(args) => enqueue::run(&connect_durable(&cli.connect, args.durability).await?, args).await,
        Command::Job { queue, id, json } => admin::job(&connect(&cli.connect).await?, &queue, &id, json).await,
        Command::Jobs(args) => jobs::run(&connect(&cli.connect).await?, args).await,
        Command::Delete { queue, id, json } => {
            operations::delete(&connect(&cli.connect).await?, &queue, &id, json).await
        }
        Command::Retry { queue, id, json } => operations::retry(&connect(&cli.connect).await?, &queue, &id, json).await,
        Command::Drain { queue, json } => operations::drain(&connect(&cli.connect).await?, &queue, json).await,
        Command::Obliterate { queue, yes, json } => {
            if !yes {
                return operations::refuse_obliterate(&queue);
            }
            operations::obliterate(&connect(&cli.connect).await?, &queue, json).await
        }
        Command::Dead(command) => admin::dead(&connect(&cli.connect).await?, command).await,
        Command::Wait(args) => wait::run(&connect(&cli.connect).await?, args).await,
        Command::Cancel { queue, id } => admin::cancel(&connect(&cli.connect).await?, &queue, &id).await,
        Command::Events(args) => events::run(&connect(&cli.connect).await?, args).await,
        Command::Cron(command) => cron::run(&connect(&cli.connect).await?, command).await,
        Command::Pause { queue } => match connect(&cli.connect).await?.queue(&queue)?.pause().await? {
            Pause::Paused => output::line(format_args!("paused {queue}")),
            Pause::AlreadyPaused => output::line(format_args!("{queue} was paused already")),
            Pause::Ahead => output::line(format_args!(
                "paused {queue}, which has no jobs yet: its first jobs will wait until it is resumed"
            )),
        },
        Command::Resume { queue } => {
            if connect(&cli.connect).await?.queue(&queue)?.resume().await? {
                output::line(format_args!("resumed {queue}"))
            } else {
                output::line(format_args!("{queue} was not paused; nothing changed"))
            }
        }
        Command::Limit(args) => limit::run(&connect(&cli.connect).await?, args).await,
        Command::Groups(args) => groups::run(&connect(&cli.connect).await?, args).await,
        Command::Queues => {
            for name in connect(&cli.connect).await?.queues().await? {
                output::line(format_args!("{name}"))?;
            }
            Ok(())
        }
        Command::Scripts => admin::scripts(&connect(&cli.connect).await?).await,
        Command::Bench(args) => bench::run(&cli.connect, args).await,
        Command::Metrics(args) => metrics::run(&cli.connect, args).await,
        Command::Dashboard(args) => dashboard::run(&cli.connect, args).await,
        Command::Acl { user } => output::line(format_args!(
            "ACL SETUSER {user} on >PASSWORD {}",
            queue_core::acl_rules(&cli.connect.prefix)
        )),
    }
}

/// Parses `--durability`: `master`, `replicated` or `replicated:N` (see [`Durability`]).
pub fn parse_durability(text: &str) -> Result<Durability, String> {
    text.parse().map_err(|e: queue_core::Error| e.to_string())
}

/// Connects once, failing within a few seconds when Redis is not there (no reconnecting: a
/// one-shot command reports the problem instead of waiting).
pub(crate) async fn connect(args: &ConnectArgs) -> anyhow::Result<QueueClient> {
    connect_durable(args, Durability::Master).await
}

/// [`connect`], with enqueues and settles waiting for replicas as `durability` says.
pub(crate) async fn connect_durable(args: &ConnectArgs, durability: Durability) -> anyhow::Result<QueueClient> {
    let (options, mut config) = args.options();
    config.durability = durability;
    let options = ConnectOptions {
        connect_timeout: Duration::from_secs(3),
        command_timeout: Duration::from_secs(10),
        reconnect: false,
        ..options
    };
    Ok(QueueClient::connect_with(&options, config).await?)
}

//! `queue-cli bench`: throughput, pickup latency and memory of the queue on this Redis,
//! measured against the ceiling of the same Redis in the same run.
//!
//! One phase per file: `ceiling.rs` (what this Redis can do at all), `phases.rs` (enqueue,
//! process, pickup latency, idle cost), `report.rs` (the figures and how they are shown).
mod ceiling;
mod phases;
mod report;

use std::time::{Duration, Instant};

use anyhow::Context;
use queue_core::{
    fred::{
        interfaces::{ClientLike, KeysInterface, SetsInterface},
        types::InfoKind,
    },
    info_field, QueueClient,
};

use crate::{connect_durable, output, ConnectArgs};
use ceiling::evalsha_ceiling;
use phases::{enqueue, idle_cpu, pickup_latency, process, Grouping};
use report::{render, Progress, Report};

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// No-op jobs to enqueue and process.
    #[arg(long, default_value_t = 100_000)]
    jobs: u64,
    /// Worker concurrency.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Payload size of each job, in bytes.
    #[arg(long, default_value_t = 0)]
    payload_bytes: usize,
    /// Jobs already waiting in the queue (at a lower priority) while the measured ones run.
    #[arg(long, default_value_t = 0)]
    backlog: u64,
    /// Queues the pickup and idle phases' workers serve (jobs go to each in turn).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    queues: u64,
    /// Idle workers to attach while measuring Redis's CPU use at idle (0 to skip).
    #[arg(long, default_value_t = 10)]
    idle_workers: usize,
    /// How long to measure Redis's CPU use at idle.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    idle_time: Duration,
    /// Single jobs enqueued into an idle worker to measure pickup latency.
    #[arg(long, default_value_t = 200)]
    pickup_samples: usize,
    /// Process under this queue rate limit (`N/DURATION`), to measure what the limit costs
    /// (choose one the run does not reach, e.g. `1000000/1s`).
    #[arg(long, value_name = "N/DURATION", value_parser = parse_rate)]
    limit_rate: Option<queue_core::Rate>,
    /// Process under this queue concurrency limit, to measure what it costs.
    #[arg(long, value_name = "N")]
    limit_concurrency: Option<u32>,
    /// Spread the measured jobs over this many groups in turn (see `enqueue --group`), to
    /// measure what fair share costs (0: no groups).
    #[arg(long, default_value_t = 0)]
    groups: u64,
    /// With `--groups N`: one large group holds the jobs but the last N - 1, which go one to each
    /// of the other groups (a large backlog beside small tenants).
    #[arg(long, requires = "groups")]
    skewed: bool,
    /// Start a throwaway local redis-server instead of using --redis-url (with as many
    /// replicas as `--durability` waits for).
    #[arg(long)]
    local: bool,
    /// With `--local`: start this many local replicas (default: as many as `--durability` waits
    /// for), so that a run with `--durability master` pays for replication too and the two
    /// compare what waiting costs.
    #[arg(long, value_name = "N", requires = "local")]
    replicas: Option<u32>,
    /// Enqueue and settle waiting for replicas (`replicated[:N]`), to measure what it costs.
    #[arg(long, value_name = "master|replicated[:N]", default_value = "master", value_parser = crate::parse_durability)]
    durability: queue_core::Durability,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Make the bench queue keep an event stream of this length (see `queue-cli events`), to
    /// measure what events cost.
    #[arg(long, value_name = "MAX_LEN")]
    events: Option<u64>,
}

fn parse_rate(text: &str) -> Result<queue_core::Rate, String> {
    text.parse().map_err(|e: queue_core::Error| e.to_string())
}

pub(crate) async fn run(connect_args: &ConnectArgs, args: BenchArgs) -> anyhow::Result<()> {
    let (local, connect_args) = if args.local {
        let server = throwaway_redis::RedisServer::start().context("cannot start a local redis-server")?;
        let url = server.url();
        let replicas = local_replicas(&server, args.replicas.unwrap_or(0).max(waited_for(args.durability)))?;
        (
            Some((server, replicas)),
            ConnectArgs {
                redis_url: url,
                prefix: connect_args.prefix.clone(),
                tls_ca: None,
            },
        )
    } else {
        (None, connect_args.clone())
    };
    let client = connect_durable(&connect_args, args.durability).await?;
    let started = local.as_ref().map_or(0, |(_, replicas)| replicas.len() as u32);
    // Replicas that are still syncing would load the master during the measurement.
    let online = started.max(waited_for(args.durability));
    if online > 0 {
        wait_for_replicas(&client, online).await?;
    }
    let queue = format!("bench-{}", std::process::id());
    let result = measure(&client, &connect_args, &queue, &args).await;
    for name in queue_names(&queue, args.queues) {
        cleanup(&client, &name).await?;
    }
    let report = result?;
    if args.json {
        output::json(&report)
    } else {
        output::text(&render(&report))
    }
}

async fn measure(
    client: &QueueClient,
    connect_args: &ConnectArgs,
    queue: &str,
    args: &BenchArgs,
) -> anyhow::Result<Report> {
    let progress = Progress::new(!args.json);
    progress.say("measuring the Redis ceiling (pipelined EVALSHA of a trivial script)");
    let (ceiling, ceiling_source) = evalsha_ceiling(client, connect_args).await?;

    if let Some(max_len) = args.events {
        client.queue(queue)?.set_events(max_len).await?;
    }
    if args.backlog > 0 {
        progress.say(&format!("queueing a backlog of {} jobs", args.backlog));
        enqueue(
            client,
            queue,
            args.backlog,
            args.payload_bytes,
            -1_000,
            Grouping::None,
            &progress,
        )
        .await?;
    }
    progress.say(&format!("enqueueing {} jobs", args.jobs));
    let script_time = script_usec(client).await?;
    let cpu = redis_cpu_seconds(client).await?;
    let memory = used_memory(client).await?;
    let started = Instant::now();
    let grouping = match (args.groups, args.skewed) {
        (0, _) => Grouping::None,
        (n, false) => Grouping::RoundRobin(n),
        (n, true) => Grouping::Skewed(n),
    };
    enqueue(client, queue, args.jobs, args.payload_bytes, 0, grouping, &progress).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let enqueue_rate = args.jobs as f64 / elapsed;
    let enqueue_cpu_seconds = redis_cpu_seconds(client).await? - cpu;
    let enqueue_us = (script_usec(client).await? - script_time) / args.jobs as f64;
    let bytes_per_job = (used_memory(client).await? - memory) / args.jobs as f64;

    let limits = queue_core::Limits {
        rate: args.limit_rate,
        concurrency: args.limit_concurrency,
        ..queue_core::Limits::default()
    };
    if limits != queue_core::Limits::default() {
        client.queue(queue)?.set_limits(limits).await?;
    }
    progress.say(&format!(
        "processing {} jobs at concurrency {} (queue limits: {limits})",
        args.jobs, args.concurrency
    ));
    let script_time = script_usec(client).await?;
    let cpu = redis_cpu_seconds(client).await?;
    let own_cpu = own_cpu_seconds();
    let started = Instant::now();
    let process_rate = process(client, queue, args, &progress).await?;
    let worker_cpu_seconds = own_cpu_seconds().zip(own_cpu).map(|(after, before)| after - before);
    let process_cpu_seconds = redis_cpu_seconds(client).await? - cpu;
    let process_cpu = process_cpu_seconds / started.elapsed().as_secs_f64() * 100.0;
    let process_us = (script_usec(client).await? - script_time) / args.jobs as f64;

    let queues = queue_names(queue, args.queues);
    progress.say(&format!(
        "measuring pickup latency into an idle worker on {} queues",
        queues.len()
    ));
    let (p50, p99) = pickup_latency(client, &queues, args.pickup_samples).await?;

    let idle_cpu = if args.idle_workers > 0 {
        progress.say(&format!(
            "measuring Redis CPU with {} idle workers for {:?}",
            args.idle_workers, args.idle_time
        ));
        Some(idle_cpu(client, &queues, args.idle_workers, args.idle_time).await?)
    } else {
        None
    };
    progress.done();
    let info: String = client.redis().info(Some(InfoKind::Server)).await?;
    Ok(Report {
        jobs: args.jobs,
        concurrency: args.concurrency,
        payload_bytes: args.payload_bytes,
        backlog: args.backlog,
        durability: args.durability.to_string(),
        groups: args.groups,
        skewed: args.skewed,
        redis_version: info_field(&info, "redis_version").to_owned(),
        redis_evalsha_per_s: ceiling.round(),
        ceiling_source,
        enqueue_jobs_per_s: enqueue_rate.round(),
        enqueue_ratio: round2(enqueue_rate / ceiling),
        enqueue_script_us_per_job: round2(enqueue_us),
        enqueue_redis_cpu_percent: (enqueue_cpu_seconds / elapsed * 100.0).round(),
        redis_us_per_job_enqueue: round2(enqueue_cpu_seconds * 1e6 / args.jobs as f64),
        process_jobs_per_s: process_rate.round(),
        process_ratio: round2(process_rate / ceiling),
        process_script_us_per_job: round2(process_us),
        process_redis_cpu_percent: process_cpu.round(),
        redis_us_per_job_process: round2(process_cpu_seconds * 1e6 / args.jobs as f64),
        worker_us_per_job_process: worker_cpu_seconds.map(|seconds| round2(seconds * 1e6 / args.jobs as f64)),
        redis_bytes_per_job: bytes_per_job.round(),
        pickup_p50_ms: round2(p50),
        pickup_p99_ms: round2(p99),
        pickup_samples: args.pickup_samples,
        peak_rss_bytes: peak_rss(),
        idle_workers: args.idle_workers,
        queues: args.queues,
        redis_idle_cpu_percent: idle_cpu.map(round2),
    })
}

/// How many replicas `durability` waits for.
fn waited_for(durability: queue_core::Durability) -> u32 {
    match durability {
        queue_core::Durability::Replicated { replicas, .. } => replicas,
        _ => 0,
    }
}

/// `count` replicas of the local `server`.
fn local_replicas(
    server: &throwaway_redis::RedisServer,
    count: u32,
) -> anyhow::Result<Vec<throwaway_redis::RedisServer>> {
    (0..count)
        .map(|_| {
            let options = throwaway_redis::Options {
                args: vec!["--replicaof".into(), "127.0.0.1".into(), server.port().to_string()],
                ..Default::default()
            };
            throwaway_redis::RedisServer::start_with(options).context("cannot start a local replica")
        })
        .collect()
}

/// Waits (up to 20 s) until the master has `replicas` replicas online.
async fn wait_for_replicas(client: &QueueClient, replicas: u32) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info: String = client.redis().info(Some(InfoKind::Replication)).await?;
        let online = info
            .lines()
            .filter(|line| line.starts_with("slave") && line.contains("state=online"))
            .count();
        if online >= replicas as usize {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "--durability replicated:{replicas}, but the master has {online} replicas online"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The bench's queues: its own, and `queues - 1` more named after it.
fn queue_names(queue: &str, queues: u64) -> Vec<String> {
    std::iter::once(queue.to_owned())
        .chain((1..queues).map(|i| format!("{queue}-{i}")))
        .collect()
}

/// Total microseconds Redis has spent in EVALSHA calls (INFO commandstats).
async fn script_usec(client: &QueueClient) -> anyhow::Result<f64> {
    let info: String = client.redis().info(Some(InfoKind::CommandStats)).await?;
    Ok(info
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_evalsha:"))
        .and_then(|stats| stats.split(',').find_map(|kv| kv.strip_prefix("usec=")))
        .and_then(|usec| usec.parse().ok())
        .unwrap_or(0.0))
}

/// The bytes Redis holds for data (INFO `used_memory`).
async fn used_memory(client: &QueueClient) -> anyhow::Result<f64> {
    let info: String = client.redis().info(Some(InfoKind::Memory)).await?;
    Ok(info_field(&info, "used_memory").parse().unwrap_or(0.0))
}

async fn redis_cpu_seconds(client: &QueueClient) -> anyhow::Result<f64> {
    let info: String = client.redis().info(Some(InfoKind::Cpu)).await?;
    let field = |name| info_field(&info, name).parse::<f64>().unwrap_or(0.0);
    Ok(field("used_cpu_sys") + field("used_cpu_user"))
}

/// This process's CPU time so far (user + system, all threads).
fn own_cpu_seconds() -> Option<f64> {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        (libc::getrusage(libc::RUSAGE_SELF, &mut usage) == 0).then_some(usage)
    }?;
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(seconds(usage.ru_utime) + seconds(usage.ru_stime))
}

/// The process's peak resident set (VmHWM), in bytes; 0 where /proc is not available.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmHWM:")
                    .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb * 1024)
}

async fn cleanup(client: &QueueClient, queue: &str) -> anyhow::Result<()> {
    let handle = client.queue(queue)?;
    let _: i64 = client.redis().del(handle.keys().all().to_vec()).await?;
    let _: i64 = client.redis().del("bench:noop").await?;
    let _: i64 = client
        .redis()
        .srem(queue_core::queue_index(&client.config().prefix), queue)
        .await?;
    Ok(())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

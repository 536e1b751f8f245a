//! `queue-cli bench`: throughput, pickup latency and memory of the queue on this Redis,
//! measured against the ceiling of the same Redis in the same run.
use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use queue_core::{
    fred::{
        interfaces::{ClientLike, KeysInterface, SetsInterface},
        types::{InfoKind, Value},
    },
    info_field, KeyCount, NewJob, QueueClient, ScriptRegistry,
};
use queue_worker::{CancellationToken, JobContext, Worker};
use serde::Serialize;

use crate::{connect, output, ConnectArgs};

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
    /// Idle workers to attach while measuring Redis's CPU use at idle (0 to skip).
    #[arg(long, default_value_t = 10)]
    idle_workers: usize,
    /// How long to measure Redis's CPU use at idle.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    idle_time: Duration,
    /// Single jobs enqueued into an idle worker to measure pickup latency.
    #[arg(long, default_value_t = 200)]
    pickup_samples: usize,
    /// Start a throwaway local redis-server instead of using --redis-url.
    #[arg(long)]
    local: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    jobs: u64,
    concurrency: usize,
    payload_bytes: usize,
    backlog: u64,
    redis_version: String,
    redis_evalsha_per_s: f64,
    /// How the ceiling was measured: `redis-benchmark` (the server's), or this client's own
    /// pipelines (bound by the client, so the ratios come out too high).
    ceiling_source: &'static str,
    enqueue_jobs_per_s: f64,
    enqueue_ratio: f64,
    /// Microseconds Redis spent in the queue's scripts per job enqueued.
    enqueue_script_us_per_job: f64,
    /// Redis's CPU use while enqueueing, % of one core: near 100 means Redis was the limit.
    enqueue_redis_cpu_percent: f64,
    process_jobs_per_s: f64,
    process_ratio: f64,
    /// Microseconds Redis spent in the queue's scripts per job processed (pop, extend,
    /// complete, reap).
    process_script_us_per_job: f64,
    /// Redis's CPU use while processing, % of one core.
    process_redis_cpu_percent: f64,
    pickup_p50_ms: f64,
    pickup_p99_ms: f64,
    pickup_samples: usize,
    peak_rss_bytes: u64,
    idle_workers: usize,
    redis_idle_cpu_percent: Option<f64>,
}

/// Enqueue batches in flight at once, and jobs per batch.
const ENQUEUE_STREAMS: usize = 4;
const ENQUEUE_BATCH: usize = 1_000;

pub(crate) async fn run(connect_args: &ConnectArgs, args: BenchArgs) -> anyhow::Result<()> {
    let (_local, connect_args) = if args.local {
        let server = throwaway_redis::RedisServer::start().context("cannot start a local redis-server")?;
        let url = server.url();
        (
            Some(server),
            ConnectArgs {
                redis_url: url,
                prefix: connect_args.prefix.clone(),
                tls_ca: None,
            },
        )
    } else {
        (None, connect_args.clone())
    };
    let client = connect(&connect_args).await?;
    let queue = format!("bench-{}", std::process::id());
    let result = measure(&client, &connect_args, &queue, &args).await;
    cleanup(&client, &queue).await?;
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

    if args.backlog > 0 {
        progress.say(&format!("queueing a backlog of {} jobs", args.backlog));
        enqueue(client, queue, args.backlog, args.payload_bytes, -1_000, &progress).await?;
    }
    progress.say(&format!("enqueueing {} jobs", args.jobs));
    let script_time = script_usec(client).await?;
    let cpu = redis_cpu_seconds(client).await?;
    let started = Instant::now();
    enqueue(client, queue, args.jobs, args.payload_bytes, 0, &progress).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let enqueue_rate = args.jobs as f64 / elapsed;
    let enqueue_cpu = (redis_cpu_seconds(client).await? - cpu) / elapsed * 100.0;
    let enqueue_us = (script_usec(client).await? - script_time) / args.jobs as f64;

    progress.say(&format!(
        "processing {} jobs at concurrency {}",
        args.jobs, args.concurrency
    ));
    let script_time = script_usec(client).await?;
    let cpu = redis_cpu_seconds(client).await?;
    let started = Instant::now();
    let process_rate = process(client, queue, args, &progress).await?;
    let process_cpu = (redis_cpu_seconds(client).await? - cpu) / started.elapsed().as_secs_f64() * 100.0;
    let process_us = (script_usec(client).await? - script_time) / args.jobs as f64;

    progress.say("measuring pickup latency into an idle worker");
    let (p50, p99) = pickup_latency(client, queue, args.pickup_samples).await?;

    let idle_cpu = if args.idle_workers > 0 {
        progress.say(&format!(
            "measuring Redis CPU with {} idle workers for {:?}",
            args.idle_workers, args.idle_time
        ));
        Some(idle_cpu(client, queue, args.idle_workers, args.idle_time).await?)
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
        redis_version: info_field(&info, "redis_version").to_owned(),
        redis_evalsha_per_s: ceiling.round(),
        ceiling_source,
        enqueue_jobs_per_s: enqueue_rate.round(),
        enqueue_ratio: round2(enqueue_rate / ceiling),
        enqueue_script_us_per_job: round2(enqueue_us),
        enqueue_redis_cpu_percent: enqueue_cpu.round(),
        process_jobs_per_s: process_rate.round(),
        process_ratio: round2(process_rate / ceiling),
        process_script_us_per_job: round2(process_us),
        process_redis_cpu_percent: process_cpu.round(),
        pickup_p50_ms: round2(p50),
        pickup_p99_ms: round2(p99),
        pickup_samples: args.pickup_samples,
        peak_rss_bytes: peak_rss(),
        idle_workers: args.idle_workers,
        redis_idle_cpu_percent: idle_cpu.map(round2),
    })
}

/// The ceiling of this Redis: calls/s of `return 1` by pipelined EVALSHA. Measured with
/// `redis-benchmark` (installed with redis-tools) where it is found, since a client written
/// for the queue saturates before Redis does; otherwise with this client's own pipelines.
async fn evalsha_ceiling(client: &QueueClient, connect_args: &ConnectArgs) -> anyhow::Result<(f64, &'static str)> {
    let registry = ScriptRegistry::new();
    let noop = registry.define("bench.noop", KeyCount::Fixed(1), "return 1")?;
    registry.preload(client.redis()).await?;
    if let Some(calls) = redis_benchmark(connect_args, noop.sha1()).await {
        return Ok((calls, "redis-benchmark -P 500 -c 4"));
    }
    const STREAMS: usize = 4;
    const PIPELINE: u64 = 500;
    let started = Instant::now();
    let mut streams = tokio::task::JoinSet::new();
    for _ in 0..STREAMS {
        let (registry, redis) = (registry.clone(), client.redis().clone());
        streams.spawn(async move {
            let mut calls = 0u64;
            while started.elapsed() < Duration::from_secs(2) {
                let mut pipeline = registry.pipeline(&redis);
                for _ in 0..PIPELINE {
                    pipeline.add("bench.noop", &["bench:noop"], Vec::<Value>::new())?;
                }
                for result in pipeline.execute().await? {
                    result?;
                }
                calls += PIPELINE;
            }
            anyhow::Ok(calls)
        });
    }
    let mut calls = 0;
    while let Some(done) = streams.join_next().await {
        calls += done??;
    }
    Ok((
        calls as f64 / started.elapsed().as_secs_f64(),
        "this client (client-bound: install redis-benchmark)",
    ))
}

/// `redis-benchmark` against the same server, or `None` when it is missing or fails (a
/// cluster URL, an old version): the caller falls back to its own measurement.
async fn redis_benchmark(connect_args: &ConnectArgs, sha1: &str) -> Option<f64> {
    let url = &connect_args.redis_url;
    let mut command = tokio::process::Command::new("redis-benchmark");
    if let Some(plain) = url.strip_prefix("rediss://") {
        command.arg("--tls").arg("-u").arg(format!("redis://{plain}"));
        if let Some(ca) = &connect_args.tls_ca {
            command.arg("--cacert").arg(ca);
        }
    } else if url.starts_with("redis://") {
        command.arg("-u").arg(url);
    } else {
        return None;
    }
    let output = command
        .args([
            "-P",
            "500",
            "-c",
            "4",
            "-n",
            "1000000",
            "--csv",
            "evalsha",
            sha1,
            "1",
            "bench:noop",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let row = text.lines().find(|line| line.starts_with("\"evalsha"))?;
    row.split(',').nth(1)?.trim_matches('"').parse().ok()
}

async fn enqueue(
    client: &QueueClient,
    queue: &str,
    count: u64,
    payload_bytes: usize,
    priority: i32,
    progress: &Progress,
) -> anyhow::Result<()> {
    let payload = serde_bytes_payload(payload_bytes);
    let next = Arc::new(AtomicU64::new(0));
    let mut streams = tokio::task::JoinSet::new();
    for _ in 0..ENQUEUE_STREAMS {
        let (client, queue, payload, next, bar) = (
            client.clone(),
            queue.to_owned(),
            payload.clone(),
            next.clone(),
            progress.bar.clone(),
        );
        streams.spawn(async move {
            loop {
                let start = next.fetch_add(ENQUEUE_BATCH as u64, Ordering::Relaxed);
                if start >= count {
                    return anyhow::Ok(());
                }
                let size = (count - start).min(ENQUEUE_BATCH as u64);
                let jobs = (0..size).map(|_| NewJob::new("noop", &payload).priority(priority));
                client.enqueue_bulk(&queue, jobs).await?;
                bar.inc(size);
            }
        });
    }
    while let Some(done) = streams.join_next().await {
        done??;
    }
    Ok(())
}

fn serde_bytes_payload(size: usize) -> serde_json::Value {
    serde_json::Value::String("x".repeat(size))
}

/// Jobs/s from the worker's start until the last measured job's completion is in Redis.
async fn process(client: &QueueClient, queue: &str, args: &BenchArgs, progress: &Progress) -> anyhow::Result<f64> {
    let before = client.stats(queue).await?.processed;
    let target = before + args.jobs;
    let worker = Worker::builder(client.clone())
        .queue(queue)
        .concurrency(args.concurrency)
        .handle_kind("noop", |_: serde_json::Value, _ctx: JobContext| async { Ok(()) })
        .build();
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let running = tokio::spawn(worker.run(shutdown.clone()));
    loop {
        let processed = client.stats(queue).await?.processed;
        progress.bar.set_position(processed - before);
        if processed >= target {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    running.await??;
    Ok(args.jobs as f64 / elapsed.as_secs_f64())
}

/// Enqueue-to-handler-start latency of single jobs enqueued into an idle worker, p50 and p99 (ms).
async fn pickup_latency(client: &QueueClient, queue: &str, samples: usize) -> anyhow::Result<(f64, f64)> {
    let samples = samples.max(1);
    let sent: Arc<Mutex<Option<Instant>>> = Arc::default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let seen = sent.clone();
    let worker = Worker::builder(client.clone())
        .queue(queue)
        .concurrency(10)
        .handle_kind("pickup", move |_: (), _ctx: JobContext| {
            let latency = seen.lock().expect("lock").map(|at| at.elapsed());
            let _ = tx.send(latency);
            async { Ok(()) }
        })
        .build();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(worker.run(shutdown.clone()));
    let mut latencies = Vec::with_capacity(samples);
    // Let the worker drain anything left and go idle first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..samples {
        *sent.lock().expect("lock") = Some(Instant::now());
        client.enqueue(queue, NewJob::new("pickup", &())).await?;
        let latency = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .context("a job enqueued into an idle worker did not start within 10 s")?
            .flatten()
            .context("pickup handler ran without a start time")?;
        latencies.push(latency.as_secs_f64() * 1000.0);
        // Give the worker time to settle back into its idle wait.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shutdown.cancel();
    running.await??;
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    Ok((at(0.50), at(0.99)))
}

/// Redis's CPU use (% of one core) while `workers` idle workers are attached to an empty queue.
async fn idle_cpu(client: &QueueClient, queue: &str, workers: usize, time: Duration) -> anyhow::Result<f64> {
    let shutdown = CancellationToken::new();
    let mut running = Vec::new();
    for _ in 0..workers {
        let worker = Worker::builder(client.clone())
            .queue(queue)
            .handle_kind("noop", |_: serde_json::Value, _ctx: JobContext| async { Ok(()) })
            .build();
        running.push(tokio::spawn(worker.run(shutdown.clone())));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = redis_cpu_seconds(client).await?;
    let started = Instant::now();
    tokio::time::sleep(time).await;
    let used = redis_cpu_seconds(client).await? - before;
    let percent = used / started.elapsed().as_secs_f64() * 100.0;
    shutdown.cancel();
    for worker in running {
        worker.await??;
    }
    Ok(percent)
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

async fn redis_cpu_seconds(client: &QueueClient) -> anyhow::Result<f64> {
    let info: String = client.redis().info(Some(InfoKind::Cpu)).await?;
    let field = |name| info_field(&info, name).parse::<f64>().unwrap_or(0.0);
    Ok(field("used_cpu_sys") + field("used_cpu_user"))
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
    let keys = client.keys(queue)?;
    let _: i64 = client.redis().del(keys.all().to_vec()).await?;
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

fn render(r: &Report) -> String {
    let idle = r
        .redis_idle_cpu_percent
        .map_or("not measured".into(), |p| format!("{p:.2}% of a core"));
    format!(
        "queue-cli bench: {jobs} no-op jobs, concurrency {c}, payload {p} bytes, backlog {b}, Redis {v}\n\
         \x20 Redis ceiling   {ceiling:>10.0} EVALSHA calls/s (pipelined, trivial script; {source})\n\
         \x20 enqueue         {enq:>10.0} jobs/s  ({er:.2}x the ceiling; scripts {eu:.1} us/job in Redis; Redis CPU {ec:.0}%)\n\
         \x20 process         {proc:>10.0} jobs/s  ({pr:.2}x the ceiling; scripts {pu:.1} us/job in Redis; Redis CPU {pc:.0}%)\n\
         \x20 pickup latency  p50 {p50:.2} ms, p99 {p99:.2} ms  ({samples} jobs into an idle worker)\n\
         \x20 peak RSS        {rss:.1} MB\n\
         \x20 Redis CPU idle  {idle} with {workers} idle workers\n",
        jobs = r.jobs,
        c = r.concurrency,
        p = r.payload_bytes,
        b = r.backlog,
        v = r.redis_version,
        ceiling = r.redis_evalsha_per_s,
        source = r.ceiling_source,
        enq = r.enqueue_jobs_per_s,
        er = r.enqueue_ratio,
        eu = r.enqueue_script_us_per_job,
        ec = r.enqueue_redis_cpu_percent,
        pc = r.process_redis_cpu_percent,
        pu = r.process_script_us_per_job,
        proc = r.process_jobs_per_s,
        pr = r.process_ratio,
        p50 = r.pickup_p50_ms,
        p99 = r.pickup_p99_ms,
        samples = r.pickup_samples,
        rss = r.peak_rss_bytes as f64 / 1e6,
        workers = r.idle_workers,
    )
}

/// A progress bar on a terminal (stderr); silent otherwise.
struct Progress {
    bar: indicatif::ProgressBar,
}

impl Progress {
    fn new(visible: bool) -> Self {
        let bar = if visible {
            output::spinner("{spinner} {msg} {pos} ({per_sec})")
        } else {
            indicatif::ProgressBar::hidden()
        };
        Progress { bar }
    }

    fn say(&self, message: &str) {
        self.bar.set_position(0);
        self.bar.set_message(message.to_owned());
    }

    fn done(&self) {
        self.bar.finish_and_clear();
    }
}

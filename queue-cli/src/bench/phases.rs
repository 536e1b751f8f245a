//! The measured phases: enqueue, process, pickup latency, idle cost.
use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use queue_core::{NewJob, QueueClient};
use queue_worker::{CancellationToken, JobContext, Worker};

use super::{redis_cpu_seconds, report::Progress, BenchArgs};

/// Enqueue batches in flight at once, and jobs per batch.
const ENQUEUE_STREAMS: usize = 4;
const ENQUEUE_BATCH: usize = 1_000;

/// How the bench puts its jobs in groups.
#[derive(Debug, Clone, Copy)]
pub(super) enum Grouping {
    None,
    /// Job i goes to group i mod N.
    RoundRobin(u64),
    /// The last N - 1 jobs go one to each small group, the rest to one large group.
    Skewed(u64),
}

impl Grouping {
    fn group_of(self, index: u64, count: u64) -> Option<String> {
        match self {
            Grouping::None => None,
            Grouping::RoundRobin(n) => Some(format!("g{}", index % n)),
            Grouping::Skewed(n) => {
                let small = n.saturating_sub(1).min(count);
                Some(if index >= count - small {
                    format!("g{}", count - index)
                } else {
                    "g0".to_owned()
                })
            }
        }
    }
}

pub(super) async fn enqueue(
    client: &QueueClient,
    queue: &str,
    count: u64,
    payload_bytes: usize,
    priority: i32,
    grouping: Grouping,
    progress: &Progress,
) -> anyhow::Result<()> {
    let payload = serde_bytes_payload(payload_bytes);
    let next = Arc::new(AtomicU64::new(0));
    let mut streams = tokio::task::JoinSet::new();
    for _ in 0..ENQUEUE_STREAMS {
        let (queue, payload, next, bar) = (
            client.queue(queue)?,
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
                let jobs = (start..start + size).map(|index| {
                    let job = NewJob::new("noop", &payload).priority(priority);
                    match grouping.group_of(index, count) {
                        Some(group) => job.group(group),
                        None => job,
                    }
                });
                queue.enqueue_bulk(jobs).await?;
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
pub(super) async fn process(
    client: &QueueClient,
    queue: &str,
    args: &BenchArgs,
    progress: &Progress,
) -> anyhow::Result<f64> {
    let handle = client.queue(queue)?;
    let before = handle.stats().await?.completed_total;
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
        let completed = handle.stats().await?.completed_total;
        progress.bar.set_position(completed - before);
        if completed >= target {
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
/// The worker serves every queue of `queues`; the jobs go to each in turn.
pub(super) async fn pickup_latency(
    client: &QueueClient,
    queues: &[String],
    samples: usize,
) -> anyhow::Result<(f64, f64)> {
    let samples = samples.max(1);
    let sent: Arc<Mutex<Option<Instant>>> = Arc::default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let seen = sent.clone();
    let mut builder = Worker::builder(client.clone()).concurrency(10);
    for queue in queues {
        builder = builder.queue(queue);
    }
    let worker = builder
        .handle_kind("pickup", move |_: (), _ctx: JobContext| {
            let latency = seen.lock().expect("lock").map(|at| at.elapsed());
            let _ = tx.send(latency);
            async { Ok(()) }
        })
        .build();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(worker.run(shutdown.clone()));
    let mut latencies = Vec::with_capacity(samples);
    // A worker that just started looks at each of its queues once (fetch, sweep, schedules):
    // that is start-up, not an idle worker's pickup, so the samples wait until it is done.
    until_quiet(client).await?;
    let handles = queues
        .iter()
        .map(|name| client.queue(name))
        .collect::<queue_core::Result<Vec<_>>>()?;
    for sample in 0..samples {
        *sent.lock().expect("lock") = Some(Instant::now());
        // Spread over the queues: the last one, then the first, then every queue in between.
        let queue = &handles[(handles.len() - 1 + sample * 7919) % handles.len()];
        queue.enqueue(NewJob::new("pickup", &())).await?;
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

/// Waits until Redis runs fewer than 20 commands in 100 ms (an idle worker makes a few a
/// second), for at most a minute.
async fn until_quiet(client: &QueueClient) -> anyhow::Result<()> {
    async fn commands(client: &QueueClient) -> anyhow::Result<u64> {
        use queue_core::fred::{interfaces::ClientLike, types::InfoKind};
        let info: String = client.redis().info(Some(InfoKind::Stats)).await?;
        Ok(queue_core::info_field(&info, "total_commands_processed")
            .parse()
            .unwrap_or(0))
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut before = commands(client).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = commands(client).await?;
        if now.saturating_sub(before) < 20 || Instant::now() > deadline {
            return Ok(());
        }
        before = now;
    }
}

/// Redis's CPU use (% of one core) while `workers` idle workers are attached to empty queues,
/// each worker serving all of `queues`.
pub(super) async fn idle_cpu(
    client: &QueueClient,
    queues: &[String],
    workers: usize,
    time: Duration,
) -> anyhow::Result<f64> {
    let shutdown = CancellationToken::new();
    let mut running = Vec::new();
    for _ in 0..workers {
        let mut builder = Worker::builder(client.clone());
        for queue in queues {
            builder = builder.queue(queue);
        }
        let worker = builder
            .handle_kind("noop", |_: serde_json::Value, _ctx: JobContext| async { Ok(()) })
            .build();
        running.push(tokio::spawn(worker.run(shutdown.clone())));
    }
    // Each worker's first look at each queue (fetch, sweep, schedules) is a start-up cost,
    // not an idle one: let it pass before measuring.
    tokio::time::sleep(Duration::from_millis(500 + 3 * (queues.len() * workers) as u64)).await;
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

//! What the bench shows: its report, as text or JSON, and a progress bar while it runs.
use serde::Serialize;

use crate::output;

#[derive(Debug, Serialize)]
pub(super) struct Report {
    pub(super) jobs: u64,
    pub(super) concurrency: usize,
    pub(super) payload_bytes: usize,
    pub(super) backlog: u64,
    /// `master`, or `replicated:N` when enqueues and settles waited for N replicas.
    pub(super) durability: String,
    /// Groups the measured jobs were spread over (0: none), and whether one held nearly all.
    pub(super) groups: u64,
    pub(super) skewed: bool,
    pub(super) redis_version: String,
    pub(super) redis_evalsha_per_s: f64,
    /// How the ceiling was measured: `redis-benchmark` (the server's), or this client's own
    /// pipelines (bound by the client, so the ratios come out too high).
    pub(super) ceiling_source: &'static str,
    pub(super) enqueue_jobs_per_s: f64,
    pub(super) enqueue_ratio: f64,
    /// Microseconds Redis spent in the queue's scripts per job enqueued.
    pub(super) enqueue_script_us_per_job: f64,
    /// Redis's CPU use while enqueueing, % of one core: near 100 means Redis was the limit.
    pub(super) enqueue_redis_cpu_percent: f64,
    /// Redis CPU time (user + system, networking included) per job enqueued, in microseconds.
    pub(super) redis_us_per_job_enqueue: f64,
    /// What Redis's memory grew by per job enqueued, payload included, in bytes.
    pub(super) redis_bytes_per_job: f64,
    pub(super) process_jobs_per_s: f64,
    pub(super) process_ratio: f64,
    /// Microseconds Redis spent in the queue's scripts per job processed (pop, extend,
    /// complete, reap).
    pub(super) process_script_us_per_job: f64,
    /// Redis's CPU use while processing, % of one core.
    pub(super) process_redis_cpu_percent: f64,
    /// Redis CPU time per job processed (fetch, renewals, complete), in microseconds.
    pub(super) redis_us_per_job_process: f64,
    /// The bench process's own CPU time per job processed (the worker: fetching, decoding,
    /// starting, settling), in microseconds.
    pub(super) worker_us_per_job_process: Option<f64>,
    pub(super) pickup_p50_ms: f64,
    pub(super) pickup_p99_ms: f64,
    pub(super) pickup_samples: usize,
    pub(super) peak_rss_bytes: u64,
    pub(super) idle_workers: usize,
    /// Queues the pickup and idle phases' workers served.
    pub(super) queues: u64,
    pub(super) redis_idle_cpu_percent: Option<f64>,
}

pub(super) fn render(r: &Report) -> String {
    let idle = r
        .redis_idle_cpu_percent
        .map_or("not measured".into(), |p| format!("{p:.2}% of a core"));
    let groups = match (r.groups, r.skewed) {
        (0, _) => String::new(),
        (n, false) => format!(" in {n} groups"),
        (n, true) => format!(" in {n} groups (one large)"),
    };
    let worker = r
        .worker_us_per_job_process
        .map_or("not measured".into(), |us| format!("{us:.1} us"));
    format!(
        "queue-cli bench: {jobs} no-op jobs{groups}, concurrency {c}, payload {p} bytes, backlog {b}, durability {d}, Redis {v}\n\
         \x20 Redis ceiling   {ceiling:>10.0} EVALSHA calls/s (pipelined, trivial script; {source})\n\
         \x20 enqueue         {enq:>10.0} jobs/s  ({er:.2}x the ceiling; scripts {eu:.1} us/job in Redis; Redis CPU {ec:.0}%, {ecu:.1} us/job)\n\
         \x20 process         {proc:>10.0} jobs/s  ({pr:.2}x the ceiling; scripts {pu:.1} us/job in Redis; Redis CPU {pc:.0}%, {pcu:.1} us/job)\n\
         \x20 Redis CPU       {total_us:.1} us per job, enqueue to completion\n\
         \x20 worker CPU      {worker} per job processed\n\
         \x20 Redis memory    {bytes:.0} bytes per pending job (payload included)\n\
         \x20 pickup latency  p50 {p50:.2} ms, p99 {p99:.2} ms  ({samples} jobs into an idle worker on {queues} queues)\n\
         \x20 peak RSS        {rss:.1} MB\n\
         \x20 Redis CPU idle  {idle} with {workers} idle workers on {queues} queues each\n",
        jobs = r.jobs,
        d = r.durability,
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
        ecu = r.redis_us_per_job_enqueue,
        pcu = r.redis_us_per_job_process,
        total_us = r.redis_us_per_job_enqueue + r.redis_us_per_job_process,
        bytes = r.redis_bytes_per_job,
        pc = r.process_redis_cpu_percent,
        pu = r.process_script_us_per_job,
        proc = r.process_jobs_per_s,
        pr = r.process_ratio,
        p50 = r.pickup_p50_ms,
        p99 = r.pickup_p99_ms,
        samples = r.pickup_samples,
        rss = r.peak_rss_bytes as f64 / 1e6,
        workers = r.idle_workers,
        queues = r.queues,
    )
}

/// A progress bar on a terminal (stderr); silent otherwise.
pub(super) struct Progress {
    pub(super) bar: indicatif::ProgressBar,
}

impl Progress {
    pub(super) fn new(visible: bool) -> Self {
        let bar = if visible {
            output::spinner("{spinner} {msg} {pos} ({per_sec})")
        } else {
            indicatif::ProgressBar::hidden()
        };
        Progress { bar }
    }

    pub(super) fn say(&self, message: &str) {
        self.bar.set_position(0);
        self.bar.set_message(message.to_owned());
    }

    pub(super) fn done(&self) {
        self.bar.finish_and_clear();
    }
}

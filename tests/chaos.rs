//! The chaos run: 20,000 jobs through three `queue-worker` processes while one of them is
//! SIGKILLed and replaced at each twelfth of the run, Redis (AOF, appendfsync always) is killed
//! and restarted once, and the script cache is flushed once, both with jobs pending and
//! active. Nothing may be lost, and every job run twice must be one a killed worker held.
use std::{
    collections::{HashMap, HashSet},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use queue::{
    fred::interfaces::{HashesInterface, LuaInterface},
    ConnectOptions, NewJob, QueueClient, QueueConfig,
};
use throwaway_redis::{Options, RedisServer};

use crate::support::{bin, eventually, Process, TestRng};

const JOBS: usize = 20_000;
const WORKERS: usize = 3;
const CONCURRENCY: usize = 10;
/// One kill at each twelfth of the run's progress.
const KILLS: usize = 11;
/// The script cache is flushed when this fraction of the jobs is done, Redis restarted at the
/// second; neither falls on a kill.
const FLUSH_AT: f64 = 0.30;
const RESTART_AT: f64 = 0.55;
/// A line of done.log: `job-NNNNN GGG\n` (job id, worker generation).
const LINE: u64 = 14;

/// A worker process; `generation` tells it apart from every other one of the run, in the
/// files its jobs write and in its environment.
fn worker(url: &str, dir: &Path, generation: usize) -> Process {
    let mut command = Command::new(bin("queue-worker"));
    command
        .args([
            "--queue",
            "chaos",
            "--concurrency",
            &CONCURRENCY.to_string(),
            "--lease",
            "2s",
            "--reap-interval",
            "300ms",
        ])
        .args([
            "--exec",
            r#"echo "$QUEUE_JOB_ID" >> "$D/started-$CHAOS_GEN.log"; echo "$QUEUE_JOB_ID $CHAOS_GEN" >> "$D/done.log""#,
        ])
        .env("QUEUE_REDIS_URL", url)
        .env("D", dir)
        .env("CHAOS_GEN", format!("{generation:03}"))
        .env("RUST_LOG", "warn");
    Process::spawn(command, dir.join(format!("worker-{generation:03}.log")))
}

/// Completions so far, duplicates included (every line has the same length).
fn completed_lines(dir: &Path) -> usize {
    std::fs::metadata(dir.join("done.log")).map_or(0, |m| (m.len() / LINE) as usize)
}

/// Processes still running with `CHAOS_GEN=<generation>` in their environment: the job shells
/// of that worker, which outlive it when it is killed (each runs in its own process group).
/// Each as its `/proc/<pid>/stat` line (pid, command, state), to say what a stuck one is doing.
fn shells_of(generation: usize) -> Vec<String> {
    let entry = format!("CHAOS_GEN={generation:03}\0");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter(|e| {
            std::fs::read(e.path().join("environ"))
                .is_ok_and(|env| env.split_inclusive(|b| *b == 0).any(|var| var == entry.as_bytes()))
        })
        .map(|e| std::fs::read_to_string(e.path().join("stat")).unwrap_or_default())
        .collect()
}

/// The jobs a killed worker held leases on when it died: those it started that are still
/// leased (a settled job has no lease token), once its job shells have ended. A job it leased
/// but never started cannot run twice.
async fn held_by(client: &QueueClient, dir: &Path, generation: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shells = shells_of(generation);
        if shells.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the killed worker's job shells did not end: {shells:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started: Vec<String> = std::fs::read_to_string(dir.join(format!("started-{generation:03}.log")))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    if started.is_empty() {
        return started;
    }
    let tokens = client.queue("chaos").unwrap().keys().all()[8].clone();
    let held: Vec<Option<String>> = eventually("the lease tokens", Duration::from_secs(20), || async {
        client.redis().hmget(&tokens, started.clone()).await.ok()
    })
    .await;
    started
        .into_iter()
        .zip(held)
        .filter_map(|(id, token)| token.map(|_| id))
        .collect()
}

/// Jobs whose lease a live worker lost (a stall past its lease): its log names each one.
fn lost_by_live_workers(dir: &Path) -> HashSet<String> {
    let mut ids = HashSet::new();
    for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        if !entry.file_name().to_string_lossy().starts_with("worker-") {
            continue;
        }
        let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in log.lines().filter(|l| l.contains("lease lost")) {
            let mut rest = line;
            while let Some(at) = rest.find("job-") {
                let id = &rest[at..(at + 9).min(rest.len())];
                if id.len() == 9 && id[4..].bytes().all(|b| b.is_ascii_digit()) {
                    ids.insert(id.to_owned());
                }
                rest = &rest[at + 4..];
            }
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_job_is_lost_through_kills_restarts_and_a_script_flush() {
    let started = Instant::now();
    let mut rng = TestRng::from_env_or_clock("CHAOS_SEED");
    let dir = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start_with(Options {
        args: ["--appendonly", "yes", "--appendfsync", "always"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    })
    .unwrap();
    let url = redis.url();
    let client = QueueClient::connect_with(&ConnectOptions::new(&url), QueueConfig::default())
        .await
        .unwrap();
    let ids: Vec<String> = (0..JOBS).map(|i| format!("job-{i:05}")).collect();
    for chunk in ids.chunks(1_000) {
        let jobs = chunk
            .iter()
            .map(|id| NewJob::new("chaos", &()).id(id).max_attempts(100));
        client.queue("chaos").unwrap().enqueue_bulk(jobs).await.unwrap();
    }

    // (process, generation) per worker slot.
    let mut workers: Vec<(Process, usize)> = (0..WORKERS).map(|n| (worker(&url, dir.path(), n), n)).collect();
    let mut generations = WORKERS;
    let (mut kills, mut redis_restarts, mut flushes) = (0, 0, 0);
    // The jobs the killed workers held leases on when they died: only these can run twice
    // (besides jobs whose lease a stalled live worker lost).
    let mut held_at_kills: HashSet<String> = HashSet::new();
    let mut held_counts = Vec::new();
    let mut waiting_at_faults = Vec::new();
    let mut spent_on_kills = Duration::ZERO;
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let done = completed_lines(dir.path());
        if done >= JOBS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "chaos run did not finish: {done} completions"
        );
        let progress = done as f64 / JOBS as f64;
        if kills < KILLS && progress >= (kills + 1) as f64 / (KILLS + 1) as f64 {
            let kill_started = Instant::now();
            let victim = rng.below(WORKERS as u64) as usize;
            let (process, generation) = &mut workers[victim];
            process.signal(libc::SIGKILL);
            process.wait(Duration::from_secs(10)).await;
            let held = held_by(&client, dir.path(), *generation).await;
            held_counts.push(held.len());
            held_at_kills.extend(held);
            workers[victim] = (worker(&url, dir.path(), generations), generations);
            generations += 1;
            kills += 1;
            spent_on_kills += kill_started.elapsed();
        }
        if flushes == 0 && progress >= FLUSH_AT {
            let stats = client.queue("chaos").unwrap().stats().await.unwrap();
            assert!(
                stats.pending > 0 && stats.active > 0,
                "the flush lands mid-run: {stats:?}"
            );
            waiting_at_faults.push(("flush", stats.pending, stats.active));
            let _: () = client.redis().script_flush(false).await.unwrap();
            flushes += 1;
        }
        if redis_restarts == 0 && progress >= RESTART_AT {
            let stats = client.queue("chaos").unwrap().stats().await.unwrap();
            assert!(
                stats.pending > 0 && stats.active > 0,
                "the restart lands mid-run: {stats:?}"
            );
            waiting_at_faults.push(("restart", stats.pending, stats.active));
            redis.restart().unwrap();
            redis_restarts += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        (kills, flushes, redis_restarts),
        (KILLS, 1, 1),
        "every fault landed before the last job was done"
    );

    // The queue drains to nothing: every job completed, nothing left leased or waiting.
    let stats = eventually("the queue to settle", Duration::from_secs(60), || async {
        client
            .queue("chaos")
            .unwrap()
            .stats()
            .await
            .ok()
            .filter(|s| s.active == 0 && s.pending == 0 && s.retrying == 0)
    })
    .await;
    for (mut worker, _) in workers {
        worker.signal(libc::SIGTERM);
        let status = worker.wait(Duration::from_secs(30)).await;
        assert!(status.success(), "a worker did not stop cleanly:\n{}", worker.output());
    }
    let log = std::fs::read_to_string(dir.path().join("done.log")).unwrap();
    let mut runs: HashMap<&str, usize> = HashMap::new();
    for line in log.lines() {
        *runs.entry(line.split(' ').next().unwrap()).or_default() += 1;
    }
    let lost = ids.iter().filter(|id| !runs.contains_key(id.as_str())).count();
    let duplicates: usize = runs.values().map(|n| n - 1).sum();
    // Held by no killed worker, a job can run twice only after a live worker lost its lease
    // (a stall): its log names the job. (Live workers also log "lease lost" for jobs whose
    // completion was recorded just before a heartbeat, so that list is no bound by itself.)
    let lost_leases = lost_by_live_workers(dir.path());
    let not_held: Vec<&str> = runs
        .iter()
        .filter(|(id, n)| **n > 1 && !held_at_kills.contains(**id))
        .map(|(id, _)| *id)
        .collect();
    let unexplained: Vec<&&str> = not_held.iter().filter(|id| !lost_leases.contains(**id)).collect();
    let held_total: usize = held_counts.iter().sum();
    eprintln!(
        "chaos: jobs={JOBS} workers={WORKERS}x{CONCURRENCY} kills={kills} redis_restarts={redis_restarts} \
         script_flushes={flushes} (pending, active) at faults={waiting_at_faults:?} lost={lost} \
         duplicates={duplicates} held_at_kills={held_total} {held_counts:?} run_twice_after_a_stall={} \
         processed={} failed_attempts={} dead={} duration={:.1}s (of which killing and replacing \
         workers {spent_on_kills:.1?})",
        not_held.len(),
        stats.completed_total,
        stats.failed_attempts_total,
        stats.dead_total,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(lost, 0, "every job ran to completion at least once");
    assert_eq!(stats.enqueued_total, JOBS as u64);
    assert_eq!(
        stats.enqueued_total,
        stats.completed_total + stats.dead_total,
        "the counters balance"
    );
    assert_eq!(stats.dead_total, 0);
    // A job runs twice only if the worker running it died (or stalled past its lease) after
    // the run but before its completion was recorded: each must be one of those jobs.
    assert!(
        unexplained.is_empty(),
        "jobs run twice that no killed worker held: {unexplained:?}"
    );
    assert!(
        duplicates <= held_total + not_held.len(),
        "{duplicates} duplicates; {held_total} jobs held by the killed workers, {} run twice after a stall",
        not_held.len()
    );
}

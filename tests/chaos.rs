//! The chaos run: 20,000 jobs through three `queue-worker` processes while one of them is
//! SIGKILLed and restarted every couple of seconds, Redis (AOF, appendfsync always) is killed
//! and restarted once, and the script cache is flushed once. Nothing may be lost.
use std::{
    collections::HashSet,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use queue::{fred::interfaces::LuaInterface, ConnectOptions, NewJob, QueueClient, QueueConfig};
use throwaway_redis::{Options, RedisServer};

use crate::support::{bin, eventually, Process};

const JOBS: usize = 20_000;
const WORKERS: usize = 3;
const CONCURRENCY: usize = 10;

fn worker(url: &str, dir: &Path, n: usize, generation: usize) -> Process {
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
        .args(["--exec", r#"echo "$QUEUE_JOB_ID" >> "$D/done.log""#])
        .env("QUEUE_REDIS_URL", url)
        .env("D", dir)
        .env("RUST_LOG", "warn");
    Process::spawn(command, dir.join(format!("worker-{n}-{generation}.log")))
}

fn completions(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("done.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_job_is_lost_through_kills_restarts_and_a_script_flush() {
    let started = Instant::now();
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
            .map(|id| NewJob::new("chaos", &()).unwrap().id(id).max_attempts(100));
        client.enqueue_bulk("chaos", jobs).await.unwrap();
    }

    let mut workers: Vec<Process> = (0..WORKERS).map(|n| worker(&url, dir.path(), n, 0)).collect();
    let (mut kills, mut redis_restarts, mut flushes, mut generation) = (0, 0, 0, 0);
    // Jobs leased (running, or finished but not yet acknowledged) when a worker died: only
    // these can run twice. Counted over all workers, so the bound is generous, never short.
    let mut leased_at_kills = 0;
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let done = completions(dir.path()).len();
        if done >= JOBS && kills >= 3 && redis_restarts == 1 && flushes == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "chaos run did not finish: {done} completions"
        );
        // Every couple of seconds, one worker dies without warning and a new one takes its place.
        let pause = Duration::from_millis(1_500 + rand_below(1_000));
        tokio::time::sleep(pause).await;
        let victim = rand_below(WORKERS as u64) as usize;
        if done < JOBS || kills < 3 {
            let leased = client.stats("chaos").await.map(|s| s.active as usize);
            leased_at_kills += leased.unwrap_or(WORKERS * CONCURRENCY);
            workers[victim].signal(libc::SIGKILL);
            workers[victim].wait(Duration::from_secs(10)).await;
            generation += 1;
            workers[victim] = worker(&url, dir.path(), victim, generation);
            kills += 1;
        }
        if flushes == 0 && done > JOBS / 4 {
            let _: () = client.redis().script_flush(false).await.unwrap();
            flushes += 1;
        }
        if redis_restarts == 0 && done > JOBS / 2 {
            redis.restart().unwrap();
            redis_restarts += 1;
        }
    }

    // The queue drains to nothing: every job completed, nothing left leased or waiting.
    let stats = eventually("the queue to settle", Duration::from_secs(60), || async {
        client
            .stats("chaos")
            .await
            .ok()
            .filter(|s| s.active == 0 && s.pending == 0 && s.retrying == 0)
    })
    .await;
    for mut worker in workers {
        worker.signal(libc::SIGTERM);
        let status = worker.wait(Duration::from_secs(30)).await;
        assert!(status.success(), "a worker did not stop cleanly:\n{}", worker.output());
    }
    let lines = completions(dir.path());
    let unique: HashSet<&str> = lines.iter().map(String::as_str).collect();
    let lost = ids.iter().filter(|id| !unique.contains(id.as_str())).count();
    let duplicates = lines.len() - unique.len();
    eprintln!(
        "chaos: jobs={JOBS} workers={WORKERS}x{CONCURRENCY} kills={kills} redis_restarts={redis_restarts} \
         script_flushes={flushes} lost={lost} duplicates={duplicates} leased_at_kills={leased_at_kills} processed={} failed_attempts={} dead={} \
         duration={:.1}s",
        stats.processed,
        stats.failed,
        stats.dead_total,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(lost, 0, "every job ran to completion at least once");
    assert_eq!(stats.enqueued, JOBS as u64);
    assert_eq!(
        stats.enqueued,
        stats.processed + stats.dead_total,
        "the counters balance"
    );
    assert_eq!(stats.dead_total, 0);
    // A duplicate is a job whose run finished but whose acknowledgement died with its worker.
    assert!(
        duplicates <= leased_at_kills,
        "{duplicates} duplicates; {leased_at_kills} jobs leased at the kills"
    );
}

fn rand_below(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    hasher.finish() % n
}

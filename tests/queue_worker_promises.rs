//! What the README promises of `queue-worker`, each checked against the binary: how soon a dead
//! worker's jobs come back, `--timeout` killing the whole process group, `name=weight`, and
//! `--prefix`.
use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use queue::{ConnectOptions, JobState, NewJob, QueueClient, QueueConfig};

use crate::support::{bin, eventually, job_in_state, run_with_deadline, spawn_queue_worker as worker, start};

/// SIGKILLs the process group whose id the job's shell wrote to `file`, if it is there.
fn kill_group_in(file: &Path) {
    if let Ok(pgid) = std::fs::read_to_string(file) {
        // SAFETY: signals the orphaned process group of a job of a killed worker.
        unsafe { libc::kill(-pgid.trim().parse::<i32>().unwrap(), libc::SIGKILL) };
    }
}

#[tokio::test]
async fn a_dead_workers_jobs_are_pending_again_within_its_lease_and_one_reap_interval() {
    let q = start().await;
    let dir = tempfile::tempdir().unwrap();
    let ids = ["a", "b", "c"];
    for id in ids {
        q.client
            .queue("q")
            .unwrap()
            .enqueue(NewJob::new("k", &1).id(id).max_attempts(3))
            .await
            .unwrap();
    }
    const LEASE: Duration = Duration::from_secs(1);
    const REAP_INTERVAL: Duration = Duration::from_secs(1);
    let timing = ["--lease", "1s", "--reap-interval", "1s"];
    let script = r#"echo $$ > "$D/$QUEUE_JOB_ID.pgid"; exec sleep 30"#;
    let first_args = [
        &["--queue", "q", "--concurrency", "3", "--exec", script][..],
        &timing[..],
    ]
    .concat();
    let mut first = worker(&q.redis.url(), dir.path(), "first", &first_args);
    for id in ids {
        job_in_state(&q.client, "q", id, JobState::Active).await;
    }
    // The rest of the fleet: a live worker whose reaper sweeps the queue. The queue is paused
    // so that it leases nothing, and the jobs stay visible as pending once they are back.
    q.queue().pause().await.unwrap();
    let live_args = [&["--queue", "q", "--exec", "true"][..], &timing[..]].concat();
    let live = worker(&q.redis.url(), dir.path(), "live", &live_args);
    eventually("the live worker started", Duration::from_secs(20), || async {
        live.output().contains("worker started").then_some(())
    })
    .await;

    first.signal(libc::SIGKILL);
    let killed = Instant::now();
    first.wait(Duration::from_secs(10)).await;
    for id in ids {
        kill_group_in(&dir.path().join(format!("{id}.pgid")));
    }
    let jobs = eventually(
        "the dead worker's jobs pending again",
        Duration::from_secs(30),
        || async {
            let mut jobs = Vec::new();
            for id in ids {
                jobs.push(
                    q.client
                        .queue("q")
                        .unwrap()
                        .job(id)
                        .await
                        .ok()
                        .filter(|j| j.state == JobState::Pending)?,
                );
            }
            Some(jobs)
        },
    )
    .await;
    let back_after = killed.elapsed();
    for job in &jobs {
        assert_eq!(
            (job.attempts, job.last_error.as_deref()),
            (1, Some("lease expired")),
            "{}: a failed attempt",
            job.envelope.id
        );
    }
    // The promise is a bound, not a speed: the lease (renewed until the kill) runs out within
    // LEASE, and the next sweep comes within one interval; the slack is for a loaded machine.
    let slack = Duration::from_millis(1_500);
    assert!(
        back_after <= LEASE + REAP_INTERVAL + slack,
        "back after {back_after:?}, more than lease {LEASE:?} + reap interval {REAP_INTERVAL:?} + {slack:?}"
    );
}

/// Whether `pid` has ended: gone, or a zombie (it has exited; only its exit status is left,
/// waiting for a parent that may not reap it in a container).
fn ended(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
    }
}

#[tokio::test]
async fn the_timeout_kills_the_jobs_whole_process_group() {
    let q = start().await;
    let dir = tempfile::tempdir().unwrap();
    // The command starts a child in the background that would leave a marker after 2 s, and
    // waits for it. Killing `sh` alone would orphan the child, and the marker would appear.
    let script = r#"(sleep 2; touch "$D/$QUEUE_JOB_ID.marker") & echo $! > "$D/$QUEUE_JOB_ID.child"; wait"#;
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("k", &1).id("timed").max_attempts(1))
        .await
        .unwrap();
    // A control with a limit of its own, longer than --timeout: its marker shows that the
    // command does leave one when not killed.
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("k", &1).id("control").timeout(Duration::from_secs(30)))
        .await
        .unwrap();
    let _worker = worker(
        &q.redis.url(),
        dir.path(),
        "w",
        &[
            "--queue",
            "q",
            "--concurrency",
            "2",
            "--timeout",
            "500ms",
            "--exec",
            script,
        ],
    );
    let timed = job_in_state(&q.client, "q", "timed", JobState::Dead).await;
    assert_eq!(timed.last_error.as_deref(), Some("timed out after 500ms"));
    let child: i32 = std::fs::read_to_string(dir.path().join("timed.child"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    eventually(
        &format!("the background child {child} to be killed"),
        Duration::from_secs(5),
        || async { ended(child).then_some(()) },
    )
    .await;

    job_in_state(&q.client, "q", "control", JobState::Completed).await;
    assert!(dir.path().join("control.marker").exists());
    // Both jobs started together, so the killed child's marker would be due by now too; one
    // more second covers the difference in their start times. This wait cannot be an event:
    // the check is that something never happens.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !dir.path().join("timed.marker").exists(),
        "the timed-out job's background child ran on"
    );
}

#[tokio::test]
async fn weights_on_the_command_line_share_fetches_in_proportion() {
    let q = start().await;
    let dir = tempfile::tempdir().unwrap();
    const FETCHES: usize = 200;
    for queue in ["heavy", "light"] {
        let jobs = (0..FETCHES + 50).map(|n| NewJob::new("k", &n));
        q.client.queue(queue).unwrap().enqueue_bulk(jobs).await.unwrap();
    }
    // One slot: each fetch leases one job from the first queue of its weighted order.
    let _worker = worker(
        &q.redis.url(),
        dir.path(),
        "w",
        &[
            "--queue",
            "heavy=3",
            "--queue",
            "light=1",
            "--concurrency",
            "1",
            "--exec",
            r#"echo "$QUEUE_JOB_QUEUE" >> "$D/order.log""#,
        ],
    );
    let order = eventually(&format!("{FETCHES} jobs run"), Duration::from_secs(60), || async {
        let log = std::fs::read_to_string(dir.path().join("order.log")).ok()?;
        let lines: Vec<String> = log.lines().map(str::to_owned).collect();
        (lines.len() >= FETCHES).then_some(lines)
    })
    .await;
    let light = order[..FETCHES].iter().filter(|q| *q == "light").count();
    // Expected 50 of 200; the bounds are 4 standard deviations (6.1) away. Without the weights
    // (strict order) it would be 0, with equal weights 100.
    assert!((26..=74).contains(&light), "light got {light} of the first {FETCHES}");
}

#[tokio::test]
async fn a_prefix_keeps_its_queues_apart_from_the_default_ones() {
    let q = start().await;
    let url = q.redis.url();
    let dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str], prefix: Option<&str>| {
        let mut command = Command::new(bin("queue-cli"));
        command
            .args(args)
            .env("QUEUE_REDIS_URL", &url)
            .env_remove("QUEUE_PREFIX");
        if let Some(prefix) = prefix {
            command.env("QUEUE_PREFIX", prefix);
        }
        let out = run_with_deadline(&mut command, "", Duration::from_secs(30));
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        cli(&["--prefix", "other", "enqueue", "q", "{}", "--id", "p1"], None),
        "p1\n"
    );
    // Every key written is under the prefix: `{other:q}` for the queue, `{other}` for the index.
    use queue::fred::interfaces::ClientLike;
    let keys: Vec<String> = q
        .client
        .redis()
        .custom(
            queue::fred::types::CustomCommand::new_static("KEYS", queue::fred::types::ClusterHash::Random, false),
            vec!["*"],
        )
        .await
        .unwrap();
    assert!(keys.iter().any(|k| k.starts_with("{other:q}:")), "{keys:?}");
    assert!(
        keys.iter()
            .all(|k| k.starts_with("{other:q}:") || k.starts_with("{other}:")),
        "{keys:?}"
    );
    assert_eq!(cli(&["queues"], None), "", "the default prefix has no queue");
    assert_eq!(cli(&["queues"], Some("other")), "q\n", "QUEUE_PREFIX works as --prefix");

    // A job of the same queue name under the default prefix, enqueued after p1: a worker that
    // saw p1 would run it first.
    q.queue().enqueue(NewJob::new("k", &1).id("d1")).await.unwrap();
    let run = r#"echo "$QUEUE_JOB_ID" >> "$D/ran.log""#;
    let _default = worker(
        &url,
        dir.path(),
        "default",
        &["--queue", "q", "--concurrency", "1", "--exec", run],
    );
    job_in_state(&q.client, "q", "d1", JobState::Completed).await;
    let other = QueueClient::connect_with(
        &ConnectOptions::new(&url),
        QueueConfig {
            prefix: "other".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        other.queue("q").unwrap().job("p1").await.unwrap().state,
        JobState::Pending
    );
    assert_eq!(std::fs::read_to_string(dir.path().join("ran.log")).unwrap(), "d1\n");

    let _other = worker(
        &url,
        dir.path(),
        "other",
        &["--prefix", "other", "--queue", "q", "--exec", run],
    );
    job_in_state(&other, "q", "p1", JobState::Completed).await;
    assert_eq!(std::fs::read_to_string(dir.path().join("ran.log")).unwrap(), "d1\np1\n");
}

#[tokio::test]
async fn a_worker_that_lost_no_lease_does_not_say_it_did() {
    let q = start().await;
    let dir = tempfile::tempdir().unwrap();
    const JOBS: u64 = 3_000;
    q.client
        .queue("q")
        .unwrap()
        .enqueue_bulk((0..JOBS).map(|n| NewJob::new("k", &n)))
        .await
        .unwrap();
    // Heartbeats every 333 ms while jobs finish and are acknowledged all the time.
    let mut w = worker(
        &q.redis.url(),
        dir.path(),
        "w",
        &["--queue", "q", "--concurrency", "10", "--lease", "1s", "--exec", "true"],
    );
    eventually("every job done", Duration::from_secs(120), || async {
        (q.queue().stats().await.ok()?.completed_total == JOBS).then_some(())
    })
    .await;
    w.signal(libc::SIGTERM);
    assert!(w.wait(Duration::from_secs(20)).await.success());
    let stats = q.queue().stats().await.unwrap();
    assert_eq!(stats.failed_attempts_total, 0, "no lease expired: nothing was reaped");
    let log = w.output();
    let claims: Vec<&str> = log.lines().filter(|l| l.contains("lease lost")).collect();
    assert!(
        claims.is_empty(),
        "{} `lease lost` warnings, first: {:?}",
        claims.len(),
        claims.first()
    );
}

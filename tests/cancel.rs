//! Cancelling jobs (`lua/cancel.lua`): waiting ones are removed, running ones stopped in their
//! worker; never retried nor dead, counted, and kept as cancelled under the dead retention.
use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use queue::{Cancellation, Error, JobContext, JobState, NewJob, Worker};

use crate::support::{eventually, file_appears, queue_cli, spawn_queue_worker, spawn_worker, start, TestQueue};

#[tokio::test]
async fn cancelling_waiting_jobs_removes_them_from_every_waiting_state() {
    let q = start().await;
    q.queue().enqueue(NewJob::new("k", &1).id("pending")).await.unwrap();
    q.queue()
        .enqueue(NewJob::new("k", &1).id("urgent").priority(5))
        .await
        .unwrap();
    q.queue()
        .enqueue(NewJob::new("k", &1).id("later").delay(Duration::from_secs(600)))
        .await
        .unwrap();
    q.queue().enqueue(NewJob::new("k", &1).id("flaky")).await.unwrap();
    q.queue().enqueue(NewJob::new("k", &1).id("kept")).await.unwrap();
    let flaky = q.queue().pop(10, Duration::from_secs(30)).await.unwrap().jobs;
    for job in &flaky {
        if job.id() != "flaky" {
            q.queue().release(std::slice::from_ref(&job.lease)).await.unwrap();
        } else {
            q.queue().fail(&job.lease, "try later", false).await.unwrap();
        }
    }
    assert_eq!(q.queue().job("flaky").await.unwrap().state, JobState::Retrying);
    for id in ["pending", "urgent", "later", "flaky"] {
        assert_eq!(q.queue().cancel(id).await.unwrap(), Cancellation::Removed, "{id}");
        assert_eq!(q.queue().job(id).await.unwrap().state, JobState::Cancelled, "{id}");
    }
    let stats = q.queue().stats().await.unwrap();
    assert_eq!(
        (stats.pending, stats.scheduled, stats.retrying, stats.cancelled_total),
        (1, 0, 0, 4)
    );
    assert_eq!(
        q.pop_ids(10).await,
        ["kept"],
        "only the job not cancelled is left to run"
    );
    assert!(matches!(q.queue().cancel("nope").await, Err(Error::JobNotFound { .. })));
}

#[tokio::test]
async fn a_cancelled_running_job_has_its_token_fire_and_is_neither_retried_nor_dead() {
    let q = start().await;
    q.queue().enqueue(NewJob::new("long", &1).id("long")).await.unwrap();
    let started = Arc::new(AtomicBool::new(false));
    let stopped = Arc::new(AtomicBool::new(false));
    let (on_start, on_stop) = (started.clone(), stopped.clone());
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .handle_kind("long", move |_: u32, ctx: JobContext| {
            let (started, stopped) = (on_start.clone(), on_stop.clone());
            async move {
                started.store(true, Ordering::SeqCst);
                // Dropping the handler's future also stops it; the token lets it clean up first.
                let _seen = SetOnDrop(stopped);
                ctx.cancellation().cancelled().await;
                Ok(())
            }
        })
        .build();
    let (shutdown, running) = spawn_worker(worker);
    eventually("the handler to start", Duration::from_secs(10), || async {
        started.load(Ordering::SeqCst).then_some(())
    })
    .await;
    worker_listens(&q).await;
    assert_eq!(q.queue().cancel("long").await.unwrap(), Cancellation::Stopped);
    // The 30 s lease's heartbeat is 10 s away: only the published cancellation stops it sooner.
    eventually("the handler to stop", Duration::from_secs(5), || async {
        stopped.load(Ordering::SeqCst).then_some(())
    })
    .await;
    let stats = q.queue().stats().await.unwrap();
    assert_eq!(
        (
            stats.active,
            stats.pending,
            stats.retrying,
            stats.dead,
            stats.completed_total
        ),
        (0, 0, 0, 0, 0)
    );
    assert_eq!((stats.cancelled_total, stats.failed_attempts_total), (1, 0));
    shutdown.cancel();
    let report = running.await.unwrap().unwrap();
    assert_eq!((report.cancelled, report.completed, report.retried), (1, 0, 0));
    assert_eq!(
        q.queue().cancel("long").await.unwrap(),
        Cancellation::AlreadyFinished(JobState::Cancelled)
    );
    let job = q.queue().job("long").await.unwrap();
    assert_eq!(
        (job.state, job.attempts),
        (JobState::Cancelled, 1),
        "its stopped attempt counts"
    );
}

/// Waits until a worker listens on the queue's channel: it hears of cancellations on its
/// subscriber connection, which it opens as it starts.
async fn worker_listens(q: &TestQueue) {
    let channel = q.queue().keys().wake().to_owned();
    eventually("the worker to listen", Duration::from_secs(10), || async {
        use queue::fred::interfaces::PubsubInterface;
        let counts: Vec<(String, i64)> = q.client.redis().pubsub_numsub(channel.clone()).await.ok()?;
        (counts.first()?.1 >= 1).then_some(())
    })
    .await;
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_cancelled_handler_may_clean_up_before_it_stops_and_one_ignoring_its_token_is_dropped() {
    let q = start().await;
    q.queue().enqueue(NewJob::new("tidy", &1).id("tidy")).await.unwrap();
    q.queue()
        .enqueue(NewJob::new("stubborn", &1).id("stubborn"))
        .await
        .unwrap();
    let (started, cleaned, dropped) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (tidy_started, stubborn_started) = (started.clone(), started.clone());
    let (on_clean, on_drop) = (cleaned.clone(), dropped.clone());
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .concurrency(2)
        .handle_kind("tidy", move |_: u32, ctx: JobContext| {
            let (started, cleaned) = (tidy_started.clone(), on_clean.clone());
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                ctx.cancellation().cancelled().await;
                // Cleaning up takes awaits of its own: the handler is not dropped at the first.
                for _ in 0..3 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                cleaned.store(true, Ordering::SeqCst);
                Err::<(), _>(queue::JobError::retry("stopped"))
            }
        })
        .handle_kind("stubborn", move |_: u32, _ctx: JobContext| {
            let (started, dropped) = (stubborn_started.clone(), on_drop.clone());
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                let _dropped = SetOnDrop(dropped);
                std::future::pending::<()>().await;
                Ok(())
            }
        })
        .build();
    let (shutdown, running) = spawn_worker(worker);
    eventually("both handlers to start", Duration::from_secs(10), || async {
        (started.load(Ordering::SeqCst) == 2).then_some(())
    })
    .await;
    worker_listens(&q).await;
    for id in ["tidy", "stubborn"] {
        assert_eq!(q.queue().cancel(id).await.unwrap(), Cancellation::Stopped, "{id}");
    }
    // Well before the heartbeat (10 s away) or the shutdown could stop either.
    eventually(
        "the tidy handler to clean up and the stubborn one to be dropped",
        Duration::from_secs(5),
        || async { (cleaned.load(Ordering::SeqCst) && dropped.load(Ordering::SeqCst)).then_some(()) },
    )
    .await;
    let stats = q.queue().stats().await.unwrap();
    assert_eq!(
        (
            stats.cancelled_total,
            stats.failed_attempts_total,
            stats.completed_total,
            stats.dead
        ),
        (2, 0, 0, 0),
        "what a handler returns after its cancellation is not recorded"
    );
    shutdown.cancel();
    let report = running.await.unwrap().unwrap();
    assert_eq!((report.cancelled, report.completed, report.retried), (2, 0, 0));
}

#[tokio::test]
async fn cancelling_an_exec_job_kills_its_process_group_and_the_cli_says_what_it_did() {
    let q = start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = q.redis.url();
    q.queue().enqueue(NewJob::new("k", &1).id("run")).await.unwrap();
    let script = r#"sleep 300 & echo $! > "$D/child"; touch "$D/started"; wait"#;
    let _worker = spawn_queue_worker(&url, dir.path(), "w", &["--queue", "q", "--exec", script]);
    file_appears(&dir.path().join("started")).await;
    let child: i32 = std::fs::read_to_string(dir.path().join("child"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let run = queue_cli(&url, &["cancel", "q", "run"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, "cancelled run: it was running; its worker stops it\n");
    eventually("the command's child to be killed", Duration::from_secs(10), || async {
        // SAFETY: signal 0 only asks whether the process exists.
        (unsafe { libc::kill(child, 0) } != 0).then_some(())
    })
    .await;

    q.queue()
        .enqueue(NewJob::new("k", &1).id("wait").delay(Duration::from_secs(600)))
        .await
        .unwrap();
    let run = queue_cli(&url, &["cancel", "q", "wait"]);
    assert_eq!(run.stdout, "cancelled wait: it was waiting, and is removed\n");
    let run = queue_cli(&url, &["cancel", "q", "wait"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            Some(1),
            "error: job \"wait\" of queue \"q\" is cancelled already; nothing to cancel\n"
        )
    );
    let stats = queue_cli(&url, &["stats", "q", "--json"]).stdout;
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["queues"][0]["cancelled_total"], 2);
}

#[tokio::test]
async fn a_finished_job_cannot_be_cancelled() {
    let q = start().await;
    q.queue().enqueue(NewJob::new("k", &1).id("done")).await.unwrap();
    let leased = q.pop_one().await;
    q.queue().complete(std::slice::from_ref(&leased.lease)).await.unwrap();
    assert_eq!(
        q.queue().cancel("done").await.unwrap(),
        Cancellation::AlreadyFinished(JobState::Completed)
    );
    let run = queue_cli(&q.redis.url(), &["cancel", "q", "done"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            Some(1),
            "error: job \"done\" of queue \"q\" is completed already; nothing to cancel\n"
        )
    );
    assert_eq!(q.queue().stats().await.unwrap().cancelled_total, 0);
}

#[tokio::test]
async fn a_cancelled_job_stays_visible_as_cancelled_and_cannot_be_run_again() {
    let q = start().await;
    let url = q.redis.url();
    q.queue()
        .enqueue(NewJob::new("k", &1).id("c").delay(Duration::from_secs(600)))
        .await
        .unwrap();
    q.queue().cancel("c").await.unwrap();
    let job = q.queue().job("c").await.unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Cancelled, 0));
    assert!(job.state_since_ms.is_some(), "when it was cancelled");

    let run = queue_cli(&url, &["job", "q", "c"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("cancelled"), "{}", run.stdout);
    let run = queue_cli(&url, &["job", "q", "c", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["state"], "cancelled");
    let run = queue_cli(&url, &["jobs", "q", "--state", "cancelled", "--json"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let page: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!((&page["total"], &page["jobs"][0]["id"]), (&1.into(), &"c".into()));
    let run = queue_cli(&url, &["jobs", "q", "--state", "cancelled"]);
    assert!(
        run.stdout.contains("FINISHED") && run.stdout.contains("| c "),
        "{}",
        run.stdout
    );

    // A wait on it answers at once; it counts once however often it is cancelled.
    assert!(matches!(
        q.queue().wait("c", Duration::ZERO).await,
        Err(Error::JobCancelled { .. })
    ));
    assert_eq!(
        q.queue().cancel("c").await.unwrap(),
        Cancellation::AlreadyFinished(JobState::Cancelled)
    );
    assert_eq!(q.queue().stats().await.unwrap().cancelled_total, 1);

    // Cancelling was a decision: running it again is refused (enqueue it anew to run it).
    let error = q.queue().retry_job("c").await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::NotRetryable {
                state: JobState::Cancelled,
                ..
            }
        ),
        "{error:?}"
    );
    let run = queue_cli(&url, &["retry", "q", "c"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            Some(1),
            "error: job \"c\" in queue \"q\" is cancelled, not scheduled or retrying\n"
        )
    );
    assert_eq!(q.pop_ids(10).await, Vec::<String>::new(), "nothing runs");

    // It can be deleted like any finished job.
    assert_eq!(q.queue().delete_job("c").await.unwrap(), JobState::Cancelled);
    assert!(matches!(q.queue().job("c").await, Err(Error::JobNotFound { .. })));
}

#[tokio::test]
async fn cancelled_jobs_are_bounded_by_the_dead_retention_under_load() {
    const KEEP: u64 = 20;
    let config = queue::QueueConfig {
        dead: queue::Retention {
            max_count: KEEP,
            max_age: Duration::ZERO,
        },
        ..Default::default()
    };
    let q = crate::support::start_with(config).await;
    q.queue()
        .enqueue_bulk((0..400).map(|i| NewJob::new("k", &i).id(format!("j{i}"))))
        .await
        .unwrap();
    // Eight callers cancel at once; after every call the bound holds.
    let cancellers = (0..8).map(|worker| {
        let queue = q.queue();
        tokio::spawn(async move {
            for i in (worker..400).step_by(8) {
                queue.cancel(&format!("j{i}")).await.unwrap();
                let kept = queue.jobs(JobState::Cancelled, 0, 1).await.unwrap().total;
                assert!(kept <= KEEP, "{kept} cancelled jobs kept");
            }
        })
    });
    for canceller in cancellers.collect::<Vec<_>>() {
        canceller.await.unwrap();
    }
    let stats = q.queue().stats().await.unwrap();
    assert_eq!((stats.pending, stats.cancelled_total), (0, 400));
    assert_eq!(q.queue().jobs(JobState::Cancelled, 0, 1).await.unwrap().total, KEEP);
    // What fell out is forgotten whole: only the kept jobs' records remain.
    use queue::fred::interfaces::HashesInterface;
    let records: u64 = q.client.redis().hlen(&q.queue().keys().all()[6]).await.unwrap();
    assert_eq!(records, KEEP + 1, "the kept jobs and the hash's pin");
}

#[tokio::test]
async fn cancelled_jobs_are_forgotten_by_age_on_a_queue_where_nothing_else_happens() {
    let config = queue::QueueConfig {
        dead: queue::Retention {
            max_count: 1_000,
            max_age: Duration::from_millis(200),
        },
        ..Default::default()
    };
    let q = crate::support::start_with(config).await;
    q.queue().enqueue(NewJob::new("k", &1).id("old")).await.unwrap();
    q.queue().cancel("old").await.unwrap();
    // Nothing else is cancelled; the reaper's sweeps alone forget it once it is too old.
    eventually("the cancelled job forgotten by age", Duration::from_secs(5), || async {
        q.queue().reap(Duration::from_millis(1), 100).await.unwrap();
        matches!(q.queue().job("old").await, Err(Error::JobNotFound { .. })).then_some(())
    })
    .await;
    assert_eq!(q.queue().stats().await.unwrap().cancelled_total, 1);
}

#[tokio::test]
async fn a_resent_cancel_or_pause_gets_the_first_answer() {
    use queue::fred::types::Value;
    let q = start().await;
    q.queue().enqueue(NewJob::new("k", &1).id("x")).await.unwrap();
    let first = q.run_script_as("queue.cancel", "cancel-1", &["x", "100", "0"]).await;
    let again = q.run_script_as("queue.cancel", "cancel-1", &["x", "100", "0"]).await;
    assert_eq!(first, vec![Value::Integer(0), Value::from("removed")]);
    assert_eq!(again, first, "the first answer, not 'cancelled already'");
    assert_eq!(q.queue().stats().await.unwrap().cancelled_total, 1, "counted once");
    assert_eq!(
        q.run_script("queue.cancel", &["x", "-1", "0"]).await,
        vec![Value::Integer(1), Value::from("expected id, keep_count, keep_age_ms")],
        "a bad retention is refused before any write"
    );

    let first = q.run_script_as("queue.pause", "pause-1", &[]).await;
    let again = q.run_script_as("queue.pause", "pause-1", &[]).await;
    assert_eq!(first, vec![Value::Integer(0), Value::from("paused")]);
    assert_eq!(again, first, "the first answer, not 'paused already'");
}

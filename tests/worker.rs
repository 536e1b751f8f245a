//! The worker runtime as a library.
use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use queue::{
    Backoff, ConnectOptions, JobContext, JobError, JobState, NewJob, QueueClient, QueueConfig, QueueOrder, Worker,
};
use serde::{Deserialize, Serialize};
use throwaway_redis::{Options, RedisServer};

use crate::support::{connected_clients, eventually, lease, spawn_worker, start, wake_listeners};

#[derive(Debug, Serialize, Deserialize)]
struct Task {
    n: u32,
}

struct OnDrop(Arc<AtomicUsize>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

async fn processed(client: &QueueClient, queue: &str, n: u64) {
    eventually(
        &format!("{n} jobs processed in {queue}"),
        Duration::from_secs(30),
        || async { (client.queue(queue).unwrap().stats().await.ok()?.completed_total >= n).then_some(()) },
    )
    .await
}

#[tokio::test]
async fn a_panicking_handler_fails_its_attempt_and_the_worker_keeps_going() {
    let q = start().await;
    let jobs = (0..5).map(|n| NewJob::new("task", &Task { n }).id(format!("t{n}")).max_attempts(1));
    q.queue().enqueue_bulk(jobs).await.unwrap();
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .handle_kind("task", |task: Task, _ctx: JobContext| async move {
            if task.n == 2 {
                panic!("boom at {}", task.n);
            }
            Ok(())
        })
        .build();
    let (shutdown, handle) = spawn_worker(worker);
    processed(&q.client, "q", 4).await;
    let dead = q.first_dead("the panicked job in the dead letter").await;
    assert_eq!(dead.id, "t2");
    assert_eq!(dead.error, "handler panicked: boom at 2");
    shutdown.cancel();
    let report = handle.await.unwrap().unwrap();
    assert_eq!((report.completed, report.dead), (4, 1));
}

#[tokio::test]
async fn a_payload_of_the_wrong_type_goes_to_the_dead_letter_with_the_decode_error() {
    let q = start().await;
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("task", &"not a task").id("bad").max_attempts(5))
        .await
        .unwrap();
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("unknown_kind", &1).id("orphan"))
        .await
        .unwrap();
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("task", &Task { n: 1 }).id("good"))
        .await
        .unwrap();
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .handle_kind("task", |_task: Task, _ctx: JobContext| async { Ok(()) })
        .build();
    let (shutdown, handle) = spawn_worker(worker);
    processed(&q.client, "q", 1).await;
    let page = eventually("two dead jobs", Duration::from_secs(10), || async {
        q.queue().dead_list(0, 10).await.ok().filter(|p| p.total == 2)
    })
    .await;
    let bad = page.jobs.iter().find(|j| j.id == "bad").unwrap();
    assert_eq!(bad.attempts, 1, "no retries for a payload that can never decode");
    assert!(bad.error.contains("does not decode as"), "{}", bad.error);
    let orphan = page.jobs.iter().find(|j| j.id == "orphan").unwrap();
    assert!(
        orphan.error.contains("no handler registered for kind \"unknown_kind\""),
        "{}",
        orphan.error
    );
    shutdown.cancel();
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_job_error_retries_and_a_permanent_one_does_not() {
    let q = start().await;
    let retry = Backoff::fixed(Duration::ZERO);
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("flaky", &()).id("flaky").max_attempts(3).backoff(retry))
        .await
        .unwrap();
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("bad", &()).id("bad").max_attempts(3))
        .await
        .unwrap();
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .handle_kind("flaky", |_: (), ctx: JobContext| async move {
            if ctx.attempt() < 3 {
                return Err(JobError::retry(format!("try {}", ctx.attempt())));
            }
            Ok(())
        })
        .handle_kind("bad", |_: (), _ctx: JobContext| async {
            Err::<(), _>(JobError::permanent("invalid data"))
        })
        .build();
    let (shutdown, handle) = spawn_worker(worker);
    processed(&q.client, "q", 1).await;
    let flaky = q.queue().job("flaky").await.unwrap();
    assert_eq!(
        (flaky.state, flaky.attempts, flaky.last_error.as_deref()),
        (JobState::Completed, 3, Some("try 2"))
    );
    let bad = eventually("bad in the dead letter", Duration::from_secs(10), || async {
        q.client
            .queue("q")
            .unwrap()
            .job("bad")
            .await
            .ok()
            .filter(|j| j.state == JobState::Dead)
    })
    .await;
    assert_eq!((bad.attempts, bad.last_error.as_deref()), (1, Some("invalid data")));
    shutdown.cancel();
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn each_lease_of_a_job_gives_its_handler_a_greater_fencing_token() {
    let q = start().await;
    q.client
        .queue("q")
        .unwrap()
        .enqueue(
            NewJob::new("flaky", &())
                .id("flaky")
                .max_attempts(3)
                .backoff(Backoff::fixed(Duration::ZERO)),
        )
        .await
        .unwrap();
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let seen = tokens.clone();
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .handle_kind("flaky", move |_: (), ctx: JobContext| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(ctx.fencing_token());
                if ctx.attempt() < 3 {
                    return Err(JobError::retry("again"));
                }
                Ok(())
            }
        })
        .build();
    let (shutdown, handle) = spawn_worker(worker);
    processed(&q.client, "q", 1).await;
    shutdown.cancel();
    handle.await.unwrap().unwrap();
    let tokens = tokens.lock().unwrap().clone();
    assert_eq!(tokens.len(), 3, "{tokens:?}");
    assert!(tokens[0] > 0 && tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
}

#[tokio::test]
async fn the_concurrency_limit_is_never_exceeded() {
    let q = start().await;
    q.client
        .queue("q")
        .unwrap()
        .enqueue_bulk((0..60).map(|n| NewJob::new("task", &Task { n })))
        .await
        .unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .concurrency(4)
        .handle_kind("task", move |_task: Task, _ctx: JobContext| {
            let (running, peak) = (r.clone(), p.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .build();
    let (shutdown, handle) = spawn_worker(worker);
    processed(&q.client, "q", 60).await;
    shutdown.cancel();
    handle.await.unwrap().unwrap();
    assert_eq!(peak.load(Ordering::SeqCst), 4, "all slots used, never more");
}

#[tokio::test]
async fn weighted_queues_are_taken_in_proportion_to_their_weights() {
    let q = start().await;
    // Both queues stay full for the whole count, so every fetch chooses between them.
    const FETCHES: usize = 400;
    for queue in ["heavy", "light"] {
        let jobs = (0..FETCHES as u32 + 50).map(|n| NewJob::new("task", &Task { n }));
        q.client.queue(queue).unwrap().enqueue_bulk(jobs).await.unwrap();
    }
    let order = Arc::new(Mutex::new(Vec::new()));
    let seen = order.clone();
    // One slot: each fetch leases one job, from the first queue of its weighted order.
    let worker = Worker::builder(q.client.clone())
        .queue_with_weight("heavy", 3)
        .queue("light")
        .order(QueueOrder::Weighted)
        .concurrency(1)
        .handle_kind("task", move |_task: Task, ctx: JobContext| {
            seen.lock().unwrap().push(ctx.queue().to_owned());
            async { Ok(()) }
        })
        .build();
    let (shutdown, handle) = spawn_worker(worker);
    eventually(&format!("{FETCHES} jobs run"), Duration::from_secs(30), || async {
        (order.lock().unwrap().len() >= FETCHES).then_some(())
    })
    .await;
    shutdown.cancel();
    handle.await.unwrap().unwrap();
    let first: Vec<String> = order.lock().unwrap()[..FETCHES].to_vec();
    let light = first.iter().filter(|q| *q == "light").count();
    // The order draws at random (unseeded, inside the worker). Expected 100 of 400 (3:1); the
    // bounds are 4 standard deviations (8.7) away. Equal weights would give 200 (strict order
    // 0, inverted weights 300), each far outside them.
    assert!(
        (65..=135).contains(&light),
        "light queue got {light} of the first {FETCHES}, heavy {}",
        FETCHES - light
    );
}

#[tokio::test]
async fn strict_order_drains_the_first_queue_first() {
    let q = start().await;
    for queue in ["first", "second"] {
        q.client
            .queue(queue)
            .unwrap()
            .enqueue_bulk((0..20).map(|n| NewJob::new("task", &Task { n })))
            .await
            .unwrap();
    }
    let order = Arc::new(Mutex::new(Vec::new()));
    let seen = order.clone();
    let worker = Worker::builder(q.client.clone())
        .queue("first")
        .queue("second")
        .concurrency(1)
        .handle_kind("task", move |_task: Task, ctx: JobContext| {
            seen.lock().unwrap().push(ctx.queue().to_owned());
            async { Ok(()) }
        })
        .build();
    let (shutdown, handle) = spawn_worker(worker);
    processed(&q.client, "second", 20).await;
    shutdown.cancel();
    handle.await.unwrap().unwrap();
    let order = order.lock().unwrap();
    assert!(order[..20].iter().all(|q| q == "first"), "{order:?}");
}

#[tokio::test]
async fn a_delayed_job_starts_at_its_time_not_at_the_next_idle_recheck() {
    let q = start().await;
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("task", &Task { n: 0 }))
        .await
        .unwrap(); // registers the queue
    let started = Arc::new(Mutex::new(Vec::new()));
    let seen = started.clone();
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .idle_recheck(Duration::from_secs(60))
        .handle_kind("task", move |task: Task, _ctx: JobContext| {
            seen.lock().unwrap().push((task.n, Instant::now()));
            async { Ok(()) }
        })
        .build();
    let (shutdown, handle) = spawn_worker(worker);
    processed(&q.client, "q", 1).await; // the worker is idle now
    let enqueued = Instant::now();
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("task", &Task { n: 1 }).delay(Duration::from_millis(400)))
        .await
        .unwrap();
    processed(&q.client, "q", 2).await;
    let (_, at) = started.lock().unwrap()[1];
    let waited = at - enqueued;
    // Not before its time; and far sooner than the 60 s idle recheck (the worker timed it).
    assert!(waited >= Duration::from_millis(390), "started after {waited:?}");
    assert!(waited < Duration::from_secs(5), "started after {waited:?}");
    shutdown.cancel();
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_job_enqueued_into_an_idle_worker_wakes_it() {
    let q = start().await;
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("task", &Task { n: 0 }))
        .await
        .unwrap();
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .idle_recheck(Duration::from_secs(60))
        .handle_kind("task", |_task: Task, _ctx: JobContext| async { Ok(()) })
        .build();
    let (shutdown, handle) = spawn_worker(worker);
    processed(&q.client, "q", 1).await;
    for n in 1..=3 {
        // The job must come after the worker listens for wake-ups.
        eventually("the worker to listen for wake-ups", Duration::from_secs(10), || async {
            (wake_listeners(&q.client, "q").await == 1).then_some(())
        })
        .await;
        q.queue().enqueue(NewJob::new("task", &Task { n })).await.unwrap();
        // Without the wake-up the worker would sleep for its 60 s recheck.
        eventually("the woken worker to run the job", Duration::from_secs(10), || async {
            (q.queue().stats().await.ok()?.completed_total > n as u64).then_some(())
        })
        .await;
    }
    shutdown.cancel();
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_timeout_cancels_the_handler_and_fails_the_attempt() {
    let q = start().await;
    let job = NewJob::new("slow", &())
        .id("slow")
        .max_attempts(1)
        .timeout(Duration::from_millis(100));
    q.queue().enqueue(job).await.unwrap();
    let stopped = Arc::new(AtomicUsize::new(0));
    let ran_to_the_end = Arc::new(AtomicUsize::new(0));
    let token = Arc::new(Mutex::new(None));
    let (seen_stop, seen_end, seen_token) = (stopped.clone(), ran_to_the_end.clone(), token.clone());
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .handle_kind("slow", move |_: (), ctx: JobContext| {
            let (stopped, ran_to_the_end, token) = (seen_stop.clone(), seen_end.clone(), seen_token.clone());
            async move {
                let _stopped = OnDrop(stopped);
                *token.lock().unwrap() = Some(ctx.cancellation().clone());
                tokio::time::sleep(Duration::from_secs(30)).await;
                ran_to_the_end.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .build();
    let started = Instant::now();
    let (shutdown, handle) = spawn_worker(worker);
    let job = eventually("the job in the dead letter", Duration::from_secs(10), || async {
        q.client
            .queue("q")
            .unwrap()
            .job("slow")
            .await
            .ok()
            .filter(|j| j.state == JobState::Dead)
    })
    .await;
    assert_eq!(job.last_error.as_deref(), Some("timed out after 100ms"));
    // The handler was stopped (its future dropped) well before its 30 s sleep could end, and
    // the token handed to it says why.
    assert_eq!(stopped.load(Ordering::SeqCst), 1, "the handler was stopped");
    assert_eq!(ran_to_the_end.load(Ordering::SeqCst), 0);
    assert!(started.elapsed() < Duration::from_secs(10));
    let token = token.lock().unwrap().clone().expect("the handler ran");
    assert!(token.is_cancelled(), "ctx.cancellation() is cancelled on timeout");
    shutdown.cancel();
    let report = handle.await.unwrap().unwrap();
    assert_eq!((report.completed, report.dead), (0, 1));
}

#[tokio::test]
async fn shutdown_waits_for_in_flight_jobs_then_hands_back_the_rest() {
    let q = start().await;
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("quick", &()).id("quick"))
        .await
        .unwrap();
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("stuck", &()).id("stuck"))
        .await
        .unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let seen = started.clone();
    let seen2 = started.clone();
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .concurrency(2)
        .shutdown_timeout(Duration::from_millis(500))
        .handle_kind("quick", move |_: (), _ctx: JobContext| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(())
            }
        })
        .handle_kind("stuck", move |_: (), _ctx: JobContext| {
            let seen = seen2.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await;
                Ok(())
            }
        })
        .build();
    let (shutdown, handle) = spawn_worker(worker);
    eventually("both jobs running", Duration::from_secs(10), || async {
        (started.load(Ordering::SeqCst) == 2).then_some(())
    })
    .await;
    shutdown.cancel();
    let report = handle.await.unwrap().unwrap();
    assert_eq!((report.completed, report.released), (1, 1));
    assert_eq!(
        q.queue().job("quick").await.unwrap().state,
        JobState::Completed,
        "finished within the deadline"
    );
    let stuck = q.queue().job("stuck").await.unwrap();
    assert_eq!(
        (stuck.state, stuck.attempts),
        (JobState::Pending, 0),
        "handed back without counting the attempt"
    );
}

#[tokio::test]
async fn a_lost_lease_cancels_the_job_and_its_late_result_is_refused() {
    let q = start().await;
    q.queue().enqueue(NewJob::new("slow", &()).id("j")).await.unwrap();
    let cancelled = Arc::new(AtomicUsize::new(0));
    let seen = cancelled.clone();
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .lease(Duration::from_millis(300))
        .handle_kind("slow", move |_: (), ctx: JobContext| {
            let seen = seen.clone();
            async move {
                // The runtime drops (aborts) a handler whose lease is lost; the guard sees it.
                let _stopped = OnDrop(seen);
                ctx.cancellation().cancelled().await;
                Ok(())
            }
        })
        .build();
    let (shutdown, handle) = spawn_worker(worker);
    let first = eventually("the job leased", Duration::from_secs(10), || async {
        q.client
            .queue("q")
            .unwrap()
            .job("j")
            .await
            .ok()
            .filter(|j| j.state == JobState::Active)
    })
    .await;
    // Steal the job as if the worker had stalled: a second consumer's attempt replaces its token.
    use queue::fred::interfaces::HashesInterface;
    let queue = q.queue();
    let keys = queue.keys();
    let tokens = &keys.all()[8];
    let workers_token: String = q.client.redis().hget(tokens, "j").await.unwrap();
    let _: i64 = q.client.redis().hset(tokens, ("j", "stolen")).await.unwrap();
    // The worker's next heartbeat sees the lease gone and cancels the handler (the handler
    // only returns when cancelled); its result is never recorded.
    tokio::time::timeout(Duration::from_secs(10), async {
        while cancelled.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("handler cancelled");
    shutdown.cancel();
    let report = handle.await.unwrap().unwrap();
    assert_eq!(report.completed, 0);
    let job = q.queue().job("j").await.unwrap();
    assert_eq!(
        (job.state, job.attempts),
        (first.state, first.attempts),
        "nothing recorded by the old worker"
    );
    // A late result under the old worker's token, as a worker that missed the cancellation
    // would send it, is refused and changes nothing.
    assert_eq!(
        q.queue().complete(&[lease("j", &workers_token)]).await.unwrap(),
        [false]
    );
    let late_fail = q.queue().fail(&lease("j", &workers_token), "late", false).await;
    assert!(
        matches!(late_fail, Err(queue::Error::LeaseLost { .. })),
        "{late_fail:?}"
    );
    let after = q.queue().job("j").await.unwrap();
    assert_eq!(
        (after.state, after.attempts, after.last_error),
        (JobState::Active, 1, None)
    );
    assert_eq!(q.queue().stats().await.unwrap().completed_total, 0);
}

#[tokio::test]
async fn a_completion_sent_after_the_lease_was_lost_is_refused() {
    // The handler finishes after its lease was taken over but before the worker's heartbeat
    // (every 10 s with a 30 s lease) could notice: the worker does send its completion, and the
    // token check refuses it.
    let q = start().await;
    q.queue().enqueue(NewJob::new("slow", &()).id("j")).await.unwrap();
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .handle_kind("slow", move |_: (), _ctx: JobContext| {
            let mut released = release_rx.clone();
            async move {
                // Ignores cancellation on purpose: a handler that just runs to its end.
                released.wait_for(|r| *r).await.unwrap();
                Ok(())
            }
        })
        .build();
    let (shutdown, handle) = spawn_worker(worker);
    q.job_in_state("j", JobState::Active).await;
    // As if its lease had expired and another worker had leased it since.
    q.hset("tokens", "j", "stolen").await;
    release_tx.send(true).unwrap();
    // Shutting down waits for the handler and for its completion to be sent and answered.
    shutdown.cancel();
    let report = handle.await.unwrap().unwrap();
    assert_eq!(report.completed, 0, "the late completion was refused");
    let job = q.queue().job("j").await.unwrap();
    assert_eq!(
        (job.state, job.attempts),
        (JobState::Active, 1),
        "still the new holder's"
    );
    let stats = q.queue().stats().await.unwrap();
    assert_eq!((stats.completed_total, stats.completed), (0, 0));
}

#[tokio::test]
async fn a_redis_restart_mid_run_loses_no_job() {
    let mut redis = RedisServer::start_with(Options {
        args: ["--appendonly", "yes", "--appendfsync", "always"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    })
    .unwrap();
    let client = QueueClient::connect_with(&ConnectOptions::new(redis.url()), QueueConfig::default())
        .await
        .unwrap();
    client
        .queue("q")
        .unwrap()
        .enqueue_bulk((0..300).map(|n| NewJob::new("task", &Task { n })))
        .await
        .unwrap();
    let done = Arc::new(Mutex::new(HashSet::new()));
    let seen = done.clone();
    let worker = Worker::builder(client.clone())
        .queue("q")
        .concurrency(8)
        .lease(Duration::from_secs(2))
        .reap_interval(Duration::from_millis(200))
        .handle_kind("task", move |task: Task, _ctx: JobContext| {
            let seen = seen.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                seen.lock().unwrap().insert(task.n);
                Ok(())
            }
        })
        .build();
    let (shutdown, handle) = spawn_worker(worker);
    eventually("some progress", Duration::from_secs(10), || async {
        (done.lock().unwrap().len() >= 50).then_some(())
    })
    .await;
    redis.restart().unwrap();
    processed(&client, "q", 300 - 60).await; // counters restart with the AOF; wait for the rest
    eventually("every job run", Duration::from_secs(60), || async {
        (done.lock().unwrap().len() == 300).then_some(())
    })
    .await;
    let stats = eventually("nothing left active", Duration::from_secs(30), || async {
        client
            .queue("q")
            .unwrap()
            .stats()
            .await
            .ok()
            .filter(|s| s.active == 0 && s.pending == 0)
    })
    .await;
    assert_eq!(stats.dead, 0);
    shutdown.cancel();
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_stopped_worker_leaves_no_connection_listening_for_wake_ups() {
    let q = start().await;
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("task", &Task { n: 0 }))
        .await
        .unwrap();
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .handle_kind("task", |_task: Task, _ctx: JobContext| async { Ok(()) })
        .build();
    let (shutdown, handle) = spawn_worker(worker);
    processed(&q.client, "q", 1).await;
    let listening = || wake_listeners(&q.client, "q");
    eventually("the worker to listen for wake-ups", Duration::from_secs(10), || async {
        (listening().await == 1).then_some(())
    })
    .await;
    shutdown.cancel();
    handle.await.unwrap().unwrap();
    // Redis answers QUIT before it closes the connection: the count drops a moment later.
    eventually("no connection left listening", Duration::from_secs(5), || async {
        (listening().await == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_worker_on_many_queues_listens_on_one_connection_and_wakes_for_any_of_them() {
    const QUEUES: usize = 300;
    let q = start().await;
    let before = connected_clients(&q.client).await;
    let names: Vec<String> = (0..QUEUES).map(|i| format!("q{i}")).collect();
    let mut builder = Worker::builder(q.client.clone()).idle_recheck(Duration::from_secs(60));
    for name in &names {
        builder = builder.queue(name);
    }
    let worker = builder
        .handle_kind("task", |_task: Task, _ctx: JobContext| async { Ok(()) })
        .build();
    let (shutdown, handle) = spawn_worker(worker);
    eventually("the worker to listen for wake-ups", Duration::from_secs(10), || async {
        (wake_listeners(&q.client, "q299").await == 1).then_some(())
    })
    .await;
    // Its connections: the client's own (shared with this test), and one to listen on.
    assert_eq!(connected_clients(&q.client).await - before, 1);
    for (n, name) in ["q299", "q0", "q150"].into_iter().enumerate() {
        let queue = q.client.queue(name).unwrap();
        queue.enqueue(NewJob::new("task", &Task { n: n as u32 })).await.unwrap();
        // Without its wake-up the worker would sleep for its 60 s recheck.
        eventually("the woken worker to run the job", Duration::from_secs(10), || async {
            (queue.stats().await.ok()?.completed_total == 1).then_some(())
        })
        .await;
    }
    shutdown.cancel();
    handle.await.unwrap().unwrap();
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Charge {
    cents: u64,
}

impl queue::JobPayload for Charge {
    const KIND: &'static str = "charge";
    fn options(job: queue::NewJob) -> queue::NewJob {
        job.max_attempts(7)
    }
}

#[tokio::test]
async fn a_payload_type_names_its_kind_and_handlers_share_the_workers_state() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let q = start().await;
    q.queue().enqueue(Charge { cents: 5 }).await.unwrap();
    let jobs = q
        .client
        .queue("q")
        .unwrap()
        .enqueue_bulk((1..=3).map(|cents| Charge { cents }))
        .await
        .unwrap();
    let job = q.queue().job(&jobs[0].id).await.unwrap();
    assert_eq!((job.envelope.kind.as_str(), job.envelope.max_attempts), ("charge", 7));

    struct Ledger {
        cents: AtomicU64,
    }
    let worker = Worker::builder(q.client.clone())
        .state(Ledger {
            cents: AtomicU64::new(0),
        })
        .queue("q")
        .handle(|charge: Charge, ctx: JobContext<Ledger>| async move {
            if charge.cents == 2 {
                // A message is an error too: the attempt fails and is retried.
                if ctx.attempt() == 1 {
                    return Err("card declined".into());
                }
            }
            ctx.state().cents.fetch_add(charge.cents, Ordering::Relaxed);
            Ok(())
        })
        .build();
    let report = tokio::time::timeout(
        Duration::from_secs(30),
        worker.run_until_drained(queue::CancellationToken::new()),
    )
    .await
    .expect("the worker stops once its queue is drained")
    .unwrap();
    assert_eq!((report.completed, report.retried, report.dead), (4, 1, 0));
    let stats = q.queue().stats().await.unwrap();
    assert_eq!(
        (stats.pending, stats.retrying, stats.active, stats.completed_total),
        (0, 0, 0, 4)
    );
}

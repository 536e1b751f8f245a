//! Leases on a live worker: a handler that runs for several leases keeps its job through the
//! heartbeat, and `JobContext::extend_lease` takes a lease past what the heartbeat gives.
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use queue::{CancellationToken, JobContext, JobState, NewJob, QueueClient, Worker};

use crate::support::{eventually, spawn_worker, start};

/// A short lease, so that a handler of a couple of seconds outlives several of them.
const LEASE: Duration = Duration::from_millis(600);

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A second member of the fleet sweeping expired leases as often as Redis lets it, until
/// stopped; returns how many sweeps it ran (not skipped by another sweeper's lock).
fn keep_reaping(client: QueueClient) -> (CancellationToken, tokio::task::JoinHandle<usize>) {
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let handle = tokio::spawn(async move {
        let mut sweeps = 0;
        while !stopped.is_cancelled() {
            if let Ok(Some(_)) = client.queue("q").unwrap().reap(Duration::from_millis(10), 100).await {
                sweeps += 1;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sweeps
    });
    (stop, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_running_several_leases_is_renewed_every_third_and_never_reaped() {
    let q = start().await;
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("long", &()).id("j").max_attempts(3))
        .await
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let seen = runs.clone();
    // The handler runs for more than four leases; the worker's own reaper and a second one
    // sweep every few milliseconds, so a lease that lapsed even briefly would be taken back.
    let run_for = LEASE * 4 + LEASE / 2;
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .lease(LEASE)
        .reap_interval(Duration::from_millis(20))
        .handle_kind("long", move |_: (), _ctx: JobContext| {
            let runs = seen.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(run_for).await;
                Ok(())
            }
        })
        .build();
    let (stop_reaping, reaper) = keep_reaping(q.client.clone());
    let (shutdown, handle) = spawn_worker(worker);

    // The lease deadline as `job` reports it, sampled while the handler runs.
    let mut samples: Vec<(i64, i64)> = Vec::new(); // (local time, deadline), both Unix ms
    let finished = loop {
        let job = q.queue().job("j").await.unwrap();
        match job.state {
            JobState::Active => {
                let at = now_ms();
                let deadline = job.state_since_ms.expect("an active job has a lease deadline");
                assert!(deadline > at, "the lease lapsed at {at} (deadline {deadline})");
                samples.push((at, deadline));
            }
            JobState::Pending if samples.is_empty() => {}
            _ => break job,
        }
        assert!(samples.len() < 2_000, "the job never finished");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    stop_reaping.cancel();
    let sweeps = reaper.await.unwrap();
    shutdown.cancel();
    let report = handle.await.unwrap().unwrap();

    assert_eq!(
        (finished.state, finished.attempts, finished.last_error.as_deref()),
        (JobState::Completed, 1, None),
        "completed by its one attempt, never reaped as `lease expired`"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the handler ran once");
    assert_eq!(report.completed, 1);
    let stats = q.queue().stats().await.unwrap();
    assert_eq!((stats.completed_total, stats.failed_attempts_total), (1, 0));
    assert!(sweeps > 10, "the second reaper swept ({sweeps} sweeps)");

    // The deadline moved forward while the handler ran, well past the first lease...
    let (first, last) = (samples[0].1, samples[samples.len() - 1].1);
    assert!(
        last - first >= (run_for - LEASE).as_millis() as i64,
        "deadline moved from {first} to {last} only"
    );
    // ... in renewals a third of a lease apart (the heartbeat), not once per lease: the median
    // time between two observed renewals stays well under half a lease.
    let mut changes: Vec<i64> = samples
        .windows(2)
        .filter(|w| w[1].1 != w[0].1)
        .map(|w| w[1].0)
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect();
    changes.sort();
    assert!(changes.len() >= 6, "renewals seen: {changes:?}");
    let median = changes[changes.len() / 2];
    assert!(
        median <= (LEASE.as_millis() as i64) * 45 / 100,
        "median time between renewals {median} ms for a {LEASE:?} lease: {changes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_lease_takes_a_lease_past_the_heartbeat() {
    let q = start().await;
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("long", &()).id("j").max_attempts(3))
        .await
        .unwrap();
    const EXTENDED: Duration = Duration::from_secs(6);
    // When the handler called extend_lease, and what it answered.
    let extended = Arc::new(Mutex::new(None));
    let seen = extended.clone();
    let runs = Arc::new(AtomicUsize::new(0));
    let seen_runs = runs.clone();
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .lease(LEASE)
        .reap_interval(Duration::from_millis(20))
        .handle_kind("long", move |_: (), ctx: JobContext| {
            let (extended, runs) = (seen.clone(), seen_runs.clone());
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                let called = now_ms();
                let answer = ctx.extend_lease(EXTENDED).await;
                *extended.lock().unwrap() = Some((called, answer.map_err(|e| e.to_string())));
                // Finish well after the original lease (and two more) would have expired.
                tokio::time::sleep(LEASE * 3).await;
                Ok(())
            }
        })
        .build();
    let (stop_reaping, reaper) = keep_reaping(q.client.clone());
    let (shutdown, handle) = spawn_worker(worker);
    let (at, answer) = eventually("the handler to extend its lease", Duration::from_secs(10), || async {
        extended.lock().unwrap().clone()
    })
    .await;
    assert_eq!(answer, Ok(()));
    // The heartbeat alone puts the deadline at most one lease (600 ms) from now; the handler's
    // extension put it 6 s from the call (Redis runs on this machine's clock), and the
    // heartbeat's renewals do not shorten it.
    let job = q.queue().job("j").await.unwrap();
    assert_eq!(job.state, JobState::Active);
    let deadline = job.state_since_ms.unwrap();
    assert!(
        deadline >= at + EXTENDED.as_millis() as i64 - 5,
        "deadline {deadline} is only {} ms after the call to extend_lease",
        deadline - at
    );
    let done = eventually("the job completed", Duration::from_secs(20), || async {
        q.client
            .queue("q")
            .unwrap()
            .job("j")
            .await
            .ok()
            .filter(|j| j.state != JobState::Active)
    })
    .await;
    stop_reaping.cancel();
    reaper.await.unwrap();
    shutdown.cancel();
    handle.await.unwrap().unwrap();
    assert_eq!(
        (done.state, done.attempts, done.last_error.as_deref()),
        (JobState::Completed, 1, None)
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn extend_lease_on_a_lost_lease_says_so() {
    let q = start().await;
    q.queue().enqueue(NewJob::new("k", &()).id("j")).await.unwrap();
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let answer = Arc::new(Mutex::new(None));
    let seen = answer.clone();
    // A 30 s lease: the heartbeat (every 10 s) does not notice the theft during the test.
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .handle_kind("k", move |_: (), ctx: JobContext| {
            let (mut go, answer) = (go_rx.clone(), seen.clone());
            async move {
                go.wait_for(|go| *go).await.unwrap();
                *answer.lock().unwrap() = Some(ctx.extend_lease(Duration::from_secs(60)).await);
                Ok(())
            }
        })
        .build();
    let (shutdown, handle) = spawn_worker(worker);
    q.job_in_state("j", JobState::Active).await;
    // As if its lease had expired and another worker had leased it since.
    q.hset("tokens", "j", "stolen").await;
    go_tx.send(true).unwrap();
    let answer = eventually("the handler's extend_lease", Duration::from_secs(10), || async {
        answer.lock().unwrap().take()
    })
    .await;
    assert!(
        matches!(&answer, Err(queue::Error::LeaseLost { id, .. }) if id == "j"),
        "{answer:?}"
    );
    shutdown.cancel();
    handle.await.unwrap().unwrap();
}

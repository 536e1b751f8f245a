use std::time::Duration;

use queue::{JobState, Leased, NewJob, QueueClient, QueueConfig, Retention};

use crate::support::{eventually, lease, start};

/// Enqueues job "j" (3 attempts), leases it briefly and waits until the reaper takes the
/// expired lease back as a failed attempt; returns the lease the "dead" worker still holds.
async fn lease_until_reaped(client: &QueueClient) -> Leased {
    client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("k", &1).id("j").max_attempts(3))
        .await
        .unwrap();
    let first = client
        .queue("q")
        .unwrap()
        .pop(1, Duration::from_millis(30))
        .await
        .unwrap()
        .jobs
        .remove(0);
    let swept = eventually("the lease to expire and be reaped", Duration::from_secs(5), || async {
        client
            .queue("q")
            .unwrap()
            .reap(Duration::from_millis(1), 100)
            .await
            .unwrap()
            .filter(|(requeued, _)| *requeued == 1)
    })
    .await;
    assert_eq!(swept, (1, 0));
    first
}

#[tokio::test]
async fn an_expired_lease_goes_back_to_pending_as_a_failed_attempt() {
    let q = start().await;
    let first = lease_until_reaped(&q.client).await;
    let job = q.queue().job("j").await.unwrap();
    assert_eq!(
        (job.state, job.last_error.as_deref()),
        (JobState::Pending, Some("lease expired"))
    );
    assert_eq!(q.queue().stats().await.unwrap().failed_attempts_total, 1);
    // The dead worker's late result is refused; the next worker finishes it exactly once.
    assert_eq!(
        q.queue().complete(&[lease("j", &first.lease.token)]).await.unwrap(),
        [false]
    );
    let second = q.pop_one().await;
    assert_eq!(second.attempt, 2);
    assert_eq!(
        q.queue().complete(&[lease("j", &second.lease.token)]).await.unwrap(),
        [true]
    );
    assert_eq!(q.queue().stats().await.unwrap().completed_total, 1);
}

#[tokio::test]
async fn an_expired_lease_on_the_last_attempt_goes_to_the_dead_letter() {
    let q = start().await;
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("k", &1).id("j").max_attempts(1))
        .await
        .unwrap();
    q.queue().pop(1, Duration::from_millis(20)).await.unwrap();
    eventually("the job to be buried", Duration::from_secs(5), || async {
        q.client
            .queue("q")
            .unwrap()
            .reap(Duration::from_millis(1), 100)
            .await
            .unwrap()
            .filter(|(_, buried)| *buried == 1)
    })
    .await;
    assert_eq!(q.queue().job("j").await.unwrap().state, JobState::Dead);
}

#[tokio::test]
async fn one_sweep_per_interval_across_callers() {
    let q = start().await;
    q.queue().enqueue(NewJob::new("k", &1)).await.unwrap();
    assert!(q
        .client
        .queue("q")
        .unwrap()
        .reap(Duration::from_secs(60), 100)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        q.queue().reap(Duration::from_secs(60), 100).await.unwrap(),
        None,
        "the lock holds"
    );
}

#[tokio::test]
async fn a_late_fail_from_the_reaped_worker_is_refused_and_changes_nothing() {
    let q = start().await;
    let first = lease_until_reaped(&q.client).await;
    let second = q.pop_one().await;
    let before = (q.queue().job("j").await.unwrap(), q.queue().stats().await.unwrap());

    let late = q
        .queue()
        .fail(&lease("j", &first.lease.token), "late failure", true)
        .await;
    assert!(matches!(late, Err(queue::Error::LeaseLost { .. })), "{late:?}");
    assert_eq!(
        q.client
            .queue("q")
            .unwrap()
            .extend(Duration::from_secs(60), [&first.lease])
            .await
            .unwrap(),
        [false]
    );
    let after = (q.queue().job("j").await.unwrap(), q.queue().stats().await.unwrap());
    assert_eq!(before, after, "nothing changed");

    assert_eq!(
        q.queue().complete(&[lease("j", &second.lease.token)]).await.unwrap(),
        [true]
    );
    let stats = q.queue().stats().await.unwrap();
    assert_eq!(
        (stats.completed_total, stats.dead, stats.active),
        (1, 0, 0),
        "finished exactly once"
    );
}

#[tokio::test]
async fn only_the_unsettled_jobs_of_an_expired_batch_are_reaped() {
    let q = start().await;
    q.client
        .queue("q")
        .unwrap()
        .enqueue_bulk(["done", "failed", "stuck"].map(|id| NewJob::new("k", &1).id(id).max_attempts(3)))
        .await
        .unwrap();
    let jobs = q.queue().pop(3, Duration::from_millis(30)).await.unwrap().jobs;
    let token_of = |id: &str| jobs.iter().find(|job| job.id() == id).unwrap().lease.token.clone();
    assert_eq!(
        q.queue().complete(&[lease("done", &token_of("done"))]).await.unwrap(),
        [true]
    );
    q.client
        .queue("q")
        .unwrap()
        .fail(&lease("failed", &token_of("failed")), "boom", false)
        .await
        .unwrap();
    let swept = eventually(
        "the batch's lease to expire and be reaped",
        Duration::from_secs(5),
        || async {
            q.client
                .queue("q")
                .unwrap()
                .reap(Duration::from_millis(1), 100)
                .await
                .unwrap()
                .filter(|(requeued, _)| *requeued > 0)
        },
    )
    .await;
    assert_eq!(swept, (1, 0), "only the job still held by the expired lease");
    let client = &q.client;
    let state = |id: &'static str| async move { client.queue("q").unwrap().job(id).await.unwrap() };
    assert_eq!(state("done").await.state, JobState::Completed);
    assert_eq!(state("failed").await.state, JobState::Retrying);
    let stuck = state("stuck").await;
    assert_eq!((stuck.state, stuck.attempts), (JobState::Pending, 1));
    assert_eq!(q.queue().stats().await.unwrap().active, 0);
}

#[tokio::test]
async fn a_large_sweep_goes_on_in_bounded_calls_until_every_expired_job_is_back() {
    let q = start().await;
    q.enqueue_numbers(25).await;
    // Three leases: 10 + 10 + 5 jobs, all left to expire.
    let mut last_deadline = 0;
    for _ in 0..3 {
        let popped = q.queue().pop(10, Duration::from_millis(20)).await.unwrap();
        last_deadline = popped.now_ms + 20;
    }
    // Redis's clock, from a pop that finds nothing left to lease.
    eventually("every lease to expire", Duration::from_secs(5), || async {
        let popped = q.queue().pop(1, Duration::from_secs(30)).await.unwrap();
        assert!(popped.jobs.is_empty());
        (popped.now_ms > last_deadline).then_some(())
    })
    .await;
    // One sweep, at most 4 jobs per script call: it takes several calls and splits leases.
    let swept = q.queue().reap(Duration::from_secs(60), 4).await.unwrap();
    assert_eq!(swept, Some((25, 0)));
    let stats = q.queue().stats().await.unwrap();
    assert_eq!((stats.pending, stats.active, stats.failed_attempts_total), (25, 0, 25));
}

#[tokio::test]
async fn a_record_that_does_not_parse_is_buried_with_the_reason_and_the_sweep_goes_on() {
    let q = start().await;
    for id in ["a", "corrupt", "b"] {
        q.client
            .queue("q")
            .unwrap()
            .enqueue(NewJob::new("k", &1).id(id).max_attempts(3))
            .await
            .unwrap();
    }
    q.queue().pop(3, Duration::from_millis(30)).await.unwrap();
    q.hset("jobs", "corrupt", "not a record").await;
    let swept = eventually("the expired lease swept", Duration::from_secs(5), || async {
        let swept = q.queue().reap(Duration::from_millis(1), 100).await.unwrap();
        swept.filter(|swept| *swept != (0, 0))
    })
    .await;
    assert_eq!(swept, (2, 1), "two back to pending, the corrupt one buried");
    let dead = q.first_dead("the corrupt job").await;
    assert_eq!(dead.id, "corrupt");
    assert!(dead.error.contains("does not parse"), "{}", dead.error);
    let stats = q.queue().stats().await.unwrap();
    assert_eq!(
        (stats.pending, stats.active, stats.dead, stats.failed_attempts_total),
        (2, 0, 1, 3)
    );

    // Later sweeps still work.
    q.queue().pop(2, Duration::from_millis(30)).await.unwrap();
    let swept = eventually("the next sweep", Duration::from_secs(5), || async {
        let swept = q.queue().reap(Duration::from_millis(1), 100).await.unwrap();
        swept.filter(|swept| *swept != (0, 0))
    })
    .await;
    assert_eq!(swept, (2, 0));
}

#[tokio::test]
async fn retention_bounds_hold_on_a_queue_where_nothing_finishes() {
    let short = Retention {
        max_count: 1_000,
        max_age: Duration::from_millis(200),
    };
    let q = crate::support::start_with(QueueConfig {
        completed: short,
        dead: short,
        ..Default::default()
    })
    .await;
    for id in ["done", "dead"] {
        q.client
            .queue("q")
            .unwrap()
            .enqueue(NewJob::new("k", &1).id(id).max_attempts(1))
            .await
            .unwrap();
    }
    let jobs = q.queue().pop(2, Duration::from_secs(30)).await.unwrap().jobs;
    q.queue()
        .complete(&[lease("done", &jobs[0].lease.token)])
        .await
        .unwrap();
    q.queue()
        .fail(&lease("dead", &jobs[0].lease.token), "boom", false)
        .await
        .unwrap();
    let stats = q.queue().stats().await.unwrap();
    assert_eq!((stats.completed, stats.dead), (1, 1));
    // Nothing else finishes; the reaper's sweeps alone forget them once they are too old.
    eventually("both forgotten by age", Duration::from_secs(5), || async {
        q.queue().reap(Duration::from_millis(1), 100).await.unwrap();
        let stats = q.queue().stats().await.unwrap();
        (stats.completed == 0 && stats.dead == 0).then_some(())
    })
    .await;
    assert!(matches!(
        q.queue().job("done").await,
        Err(queue::Error::JobNotFound { .. })
    ));
}

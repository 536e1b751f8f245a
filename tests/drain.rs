//! `lua/drain.lua`: every waiting job removed in bounded batches; running and finished jobs stay.
use std::time::Duration;

use queue::{Backoff, Error, JobState, NewJob};

use crate::support::{queue_cli, start};

#[tokio::test]
async fn drain_removes_every_waiting_job_in_batches_and_keeps_the_rest() {
    let q = start().await;
    let never = Backoff::fixed(Duration::from_secs(3600));
    // Two and a half batches of 1,000, in every waiting structure.
    q.enqueue_numbers(1_500).await;
    q.queue()
        .enqueue_bulk((0..700).map(|i| NewJob::new("k", &i).priority(if i % 2 == 0 { 3 } else { -3 })))
        .await
        .unwrap();
    q.queue()
        .enqueue_bulk((0..400).map(|i| NewJob::new("k", &i).delay(Duration::from_secs(600))))
        .await
        .unwrap();
    q.queue()
        .enqueue_bulk((0..3).map(|i| NewJob::new("k", &i).backoff(never)))
        .await
        .unwrap();
    // Three leased (priority 3 first, so the retrying and dead jobs come from those), one of
    // which retries, one dies, one keeps running; and one completed.
    let leased = q.queue().pop(4, Duration::from_secs(30)).await.unwrap().jobs;
    q.queue().fail(&leased[0].lease, "later", false).await.unwrap();
    q.queue().fail(&leased[1].lease, "never", true).await.unwrap();
    q.queue().complete([&leased[2].lease]).await.unwrap();
    let before = q.queue().stats().await.unwrap();
    assert_eq!((before.pending, before.scheduled, before.retrying), (2_199, 400, 1));

    assert_eq!(q.queue().drain().await.unwrap(), 2_600);
    let after = q.queue().stats().await.unwrap();
    assert_eq!(
        (
            after.pending,
            after.scheduled,
            after.retrying,
            after.active,
            after.dead,
            after.completed
        ),
        (0, 0, 0, 1, 1, 1)
    );
    assert_eq!(q.queue().job(leased[3].id()).await.unwrap().state, JobState::Active);
    assert!(matches!(
        q.queue().job(leased[0].id()).await,
        Err(Error::JobNotFound { .. })
    ));
    // What a drain leaves: the running, dead and completed jobs' records, and nothing else.
    use queue::fred::interfaces::HashesInterface;
    let keys = q.queue().keys().clone();
    let records: u64 = q.client.redis().hlen(&keys.all()[6]).await.unwrap();
    assert_eq!(records, 3 + 1, "three jobs and the hash's pin");
    // The running job still settles.
    assert_eq!(q.queue().complete([&leased[3].lease]).await.unwrap(), [true]);
    assert_eq!(q.queue().drain().await.unwrap(), 0);
}

#[tokio::test]
async fn queue_cli_drain_prints_how_many_it_removed() {
    let q = start().await;
    let url = q.redis.url();
    q.enqueue_numbers(5).await;
    let cli = |args: &[&str]| {
        let run = queue_cli(&url, args);
        (run.code, run.stdout, run.stderr)
    };
    assert_eq!(
        cli(&["drain", "q"]),
        (Some(0), "removed 5 waiting jobs from q\n".into(), "".into())
    );
    let (code, stdout, _) = cli(&["drain", "q", "--json"]);
    assert_eq!(code, Some(0));
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json, serde_json::json!({"queue": "q", "removed": 0}));
    assert_eq!(
        cli(&["drain", "nope"]),
        (Some(1), "".into(), "error: unknown queue \"nope\"\n".into())
    );
}

#[tokio::test]
async fn callers_waiting_for_drained_jobs_are_told_at_once() {
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
    let waiters = crate::wait::blocked_waiters(&q, &["pending", "urgent", "later"]).await;
    assert_eq!(q.queue().drain().await.unwrap(), 3);
    crate::wait::told_deleted(waiters).await;
}

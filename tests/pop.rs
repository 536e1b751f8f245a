use std::time::Duration;

use queue::NewJob;

use crate::support::{eventually, lease, start};
use queue::Lease;

const LEASE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn highest_priority_first_and_fifo_within_a_priority() {
    let q = start().await;
    let jobs = [
        ("low-1", -5),
        ("mid-1", 0),
        ("high-1", 7),
        ("mid-2", 0),
        ("high-2", 7),
        ("low-2", -5),
        ("mid-3", 0),
    ];
    for (id, priority) in jobs {
        q.client
            .queue("q")
            .unwrap()
            .enqueue(NewJob::new("k", &id).id(id).priority(priority))
            .await
            .unwrap();
    }
    let mut order = Vec::new();
    // Batches that cross from one priority to the next.
    for take in [1, 3, 3] {
        order.extend(q.pop_ids(take).await);
    }
    assert_eq!(order, ["high-1", "high-2", "mid-1", "mid-2", "mid-3", "low-1", "low-2"]);
}

#[tokio::test]
async fn each_pop_counts_an_attempt_and_issues_a_fresh_token() {
    let q = start().await;
    q.queue().enqueue(NewJob::new("k", &1).id("j")).await.unwrap();
    let first = q.queue().pop(10, LEASE).await.unwrap();
    assert_eq!(first.jobs.len(), 1);
    let leased = &first.jobs[0];
    assert_eq!(leased.attempt, 1);
    assert_eq!(leased.envelope().unwrap().decode::<i32>().unwrap(), 1);
    q.queue().release(&[lease("j", &leased.lease.token)]).await.unwrap();
    let second = q.queue().pop(10, LEASE).await.unwrap();
    assert_eq!(second.jobs[0].attempt, 1, "a released attempt is not counted");
    assert_ne!(second.jobs[0].lease.token, leased.lease.token);
    assert_eq!(q.queue().stats().await.unwrap().active, 1);
}

#[tokio::test]
async fn a_delayed_job_is_promoted_when_due() {
    let q = start().await;
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("k", &1).id("later").delay(Duration::from_millis(300)))
        .await
        .unwrap();
    q.queue().enqueue(NewJob::new("k", &2).id("now")).await.unwrap();
    let popped = q.queue().pop(10, LEASE).await.unwrap();
    assert_eq!(
        popped.jobs.iter().map(|j| j.lease.id.as_str()).collect::<Vec<_>>(),
        ["now"]
    );
    let due = popped.next_due_ms.expect("the delayed job's due time");
    assert!(
        (due - popped.now_ms) > 0 && (due - popped.now_ms) <= 300,
        "due within 300ms: {}",
        due - popped.now_ms
    );
    assert_eq!(q.queue().stats().await.unwrap().scheduled, 1);

    let popped = eventually("the delayed job", Duration::from_secs(5), || async {
        let p = q.queue().pop(10, LEASE).await.unwrap();
        (!p.jobs.is_empty()).then_some(p)
    })
    .await;
    assert_eq!(popped.jobs[0].lease.id, "later");
    assert!(popped.now_ms >= due, "not before its time");
}

#[tokio::test]
async fn a_run_at_time_in_the_past_runs_now() {
    let q = start().await;
    let past = std::time::SystemTime::now() - Duration::from_secs(60);
    q.queue().enqueue(NewJob::new("k", &1).run_at(past)).await.unwrap();
    assert_eq!(q.queue().pop(1, LEASE).await.unwrap().jobs.len(), 1);
}

#[tokio::test]
async fn a_backlog_larger_than_lua_unpack_limits_drains() {
    // Lua's unpack refuses ~8k values; a queue built on it hangs on a backlog like this one.
    let q = start().await;
    let jobs: Vec<NewJob> = (0..10_000).map(|i| NewJob::new("k", &i)).collect();
    for chunk in jobs.chunks(2_500) {
        q.queue().enqueue_bulk(chunk.to_vec()).await.unwrap();
    }
    let popped = q.queue().pop(9_000, LEASE).await.unwrap();
    assert_eq!(popped.jobs.len(), 9_000);
    assert_eq!(popped.jobs[0].envelope().unwrap().decode::<i32>().unwrap(), 0, "FIFO");
    let leases: Vec<Lease> = popped.jobs.iter().map(|j| j.lease.clone()).collect();
    assert_eq!(q.queue().complete(&leases).await.unwrap(), vec![true; 9_000]);
    assert_eq!(q.queue().stats().await.unwrap().pending, 1_000);
}

#[tokio::test]
async fn a_job_keeps_its_priority_through_delay_and_release() {
    let q = start().await;
    let job = |id: &str, priority: i32| NewJob::new("k", &1).id(id).priority(priority);
    q.client
        .queue("q")
        .unwrap()
        .enqueue(job("urgent", 5).delay(Duration::from_millis(100)))
        .await
        .unwrap();
    q.client
        .queue("q")
        .unwrap()
        .enqueue_bulk([job("normal", 0), job("low", -3)])
        .await
        .unwrap();
    // Once due, the delayed job goes ahead of the ones that waited at lower priorities.
    let popped = eventually(
        "the delayed job to be due and first in line",
        Duration::from_secs(5),
        || async {
            let job = q.pop_one().await;
            if job.lease.id == "urgent" {
                return Some(job);
            }
            q.queue().release([&job.lease]).await.unwrap();
            None
        },
    )
    .await;
    // Handed back, it is still ahead.
    assert_eq!(
        q.queue()
            .release(&[lease("urgent", &popped.lease.token)])
            .await
            .unwrap(),
        [true]
    );
    assert_eq!(q.pop_ids(3).await, ["urgent", "normal", "low"]);
}

#[tokio::test]
async fn lease_tokens_keep_increasing_when_redis_loses_its_last_writes() {
    let q = start().await;
    q.enqueue_numbers(2).await;
    let first = q.pop_one().await;
    // As after a crash under appendfsync everysec or a failover: the token counter is back
    // where it was long before.
    q.hset("meta", "token", "1").await;
    let second = q.pop_one().await;
    let (first, second): (u64, u64) = (first.lease.token.parse().unwrap(), second.lease.token.parse().unwrap());
    assert!(second > first, "token {second} after {first}");
}

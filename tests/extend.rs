use std::time::Duration;

use crate::support::start;
use queue::Lease;

#[tokio::test]
async fn extend_renews_many_leases_in_one_call() {
    let q = start().await;
    q.enqueue_numbers(4).await;
    let popped = q.queue().pop(3, Duration::from_millis(200)).await.unwrap();
    // A fourth job leased as long, and not renewed: the control that shows the wait below is
    // long enough for a lease to expire.
    let control = q.queue().pop(1, Duration::from_millis(200)).await.unwrap();
    assert_eq!(control.jobs.len(), 1);
    let leases: Vec<Lease> = popped.jobs.iter().map(|j| j.lease.clone()).collect();
    assert_eq!(
        q.queue().extend(Duration::from_secs(60), &leases).await.unwrap(),
        [true, true, true]
    );
    let job = q.queue().job(&leases[0].id).await.unwrap();
    let deadline = job.state_since_ms.unwrap();
    assert!(deadline - popped.now_ms >= 59_000, "lease now ends ~60s out");
    // The reaper does not touch renewed leases. The wait outlives the original 200 ms lease;
    // it cannot be an event, since the check is that the renewed jobs are not taken back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        q.queue().reap(Duration::from_millis(1), 100).await.unwrap(),
        Some((1, 0)),
        "only the control, whose lease was not renewed, is taken back"
    );
    assert_eq!(
        q.queue().job(&control.jobs[0].lease.id).await.unwrap().state,
        queue::JobState::Pending
    );
    for Lease { id, .. } in &leases {
        assert_eq!(q.queue().job(id).await.unwrap().state, queue::JobState::Active);
    }
}

#[tokio::test]
async fn a_lease_never_shrinks() {
    let q = start().await;
    q.enqueue_numbers(1).await;
    let leased = q.pop_one().await;
    let lease = [leased.lease.clone()];
    q.queue().extend(Duration::from_secs(600), &lease).await.unwrap();
    let extended = q.queue().job(&leased.lease.id).await.unwrap().state_since_ms.unwrap();
    // A heartbeat with the worker's usual lease comes after a handler asked for more.
    assert_eq!(q.queue().extend(Duration::from_secs(1), &lease).await.unwrap(), [true]);
    let after = q.queue().job(&leased.lease.id).await.unwrap().state_since_ms.unwrap();
    assert_eq!(after, extended, "the longer deadline stays");
}

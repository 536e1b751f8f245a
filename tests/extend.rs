use std::time::Duration;

use crate::support::start;

#[tokio::test]
async fn extend_renews_many_leases_in_one_call() {
    let q = start().await;
    q.enqueue_numbers(4).await;
    let popped = q.client.pop("q", 3, Duration::from_millis(200)).await.unwrap();
    // A fourth job leased as long, and not renewed: the control that shows the wait below is
    // long enough for a lease to expire.
    let control = q.client.pop("q", 1, Duration::from_millis(200)).await.unwrap();
    assert_eq!(control.jobs.len(), 1);
    let leases: Vec<(&str, &str)> = popped.jobs.iter().map(|j| (j.id.as_str(), j.token.as_str())).collect();
    assert_eq!(
        q.client.extend("q", Duration::from_secs(60), &leases).await.unwrap(),
        [true, true, true]
    );
    let job = q.client.job("q", leases[0].0).await.unwrap();
    let deadline = job.state_since_ms.unwrap();
    assert!(deadline - popped.now_ms >= 59_000, "lease now ends ~60s out");
    // The reaper does not touch renewed leases. The wait outlives the original 200 ms lease;
    // it cannot be an event, since the check is that the renewed jobs are not taken back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        q.client.reap("q", Duration::from_millis(1), 100).await.unwrap(),
        Some((1, 0)),
        "only the control, whose lease was not renewed, is taken back"
    );
    assert_eq!(
        q.client.job("q", &control.jobs[0].id).await.unwrap().state,
        queue::JobState::Pending
    );
    for (id, _) in &leases {
        assert_eq!(q.client.job("q", id).await.unwrap().state, queue::JobState::Active);
    }
}

#[tokio::test]
async fn a_lease_never_shrinks() {
    let q = start().await;
    q.enqueue_numbers(1).await;
    let leased = q.pop_one().await;
    let lease = [(leased.id.as_str(), leased.token.as_str())];
    q.client.extend("q", Duration::from_secs(600), &lease).await.unwrap();
    let extended = q.client.job("q", &leased.id).await.unwrap().state_since_ms.unwrap();
    // A heartbeat with the worker's usual lease comes after a handler asked for more.
    assert_eq!(
        q.client.extend("q", Duration::from_secs(1), &lease).await.unwrap(),
        [true]
    );
    let after = q.client.job("q", &leased.id).await.unwrap().state_since_ms.unwrap();
    assert_eq!(after, extended, "the longer deadline stays");
}

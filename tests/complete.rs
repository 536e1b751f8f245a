use std::time::Duration;

use queue::{JobState, Lease, NewJob, QueueConfig, Retention};

use crate::support::{lease, start, start_with};

const LEASE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn complete_finishes_the_job_and_counts_it() {
    let q = start().await;
    q.queue().enqueue(NewJob::new("k", &1).id("j")).await.unwrap();
    let leased = q.pop_one().await;
    assert_eq!(
        q.queue().complete(&[lease("j", &leased.lease.token)]).await.unwrap(),
        [true]
    );
    let stats = q.queue().stats().await.unwrap();
    assert_eq!(
        (stats.active, stats.completed, stats.completed_total, stats.pending),
        (0, 1, 1, 0)
    );
    assert_eq!(q.queue().job("j").await.unwrap().state, queue::JobState::Completed);
}

#[tokio::test]
async fn a_stale_token_is_refused_and_changes_nothing() {
    let q = start().await;
    q.queue().enqueue(NewJob::new("k", &1).id("j")).await.unwrap();
    let leased = q.pop_one().await;
    let before = q.queue().job("j").await.unwrap();
    let stale = "999999";
    assert_eq!(q.queue().complete(&[lease("j", stale)]).await.unwrap(), [false]);
    assert!(matches!(
        q.queue().fail(&lease("j", stale), "boom", false).await,
        Err(queue::Error::LeaseLost { .. })
    ));
    assert_eq!(q.queue().extend(LEASE, &[lease("j", stale)]).await.unwrap(), [false]);
    assert_eq!(q.queue().release(&[lease("j", stale)]).await.unwrap(), [false]);
    assert_eq!(q.queue().job("j").await.unwrap(), before, "nothing changed");
    let stats = q.queue().stats().await.unwrap();
    assert_eq!(
        (stats.active, stats.completed_total, stats.failed_attempts_total),
        (1, 0, 0)
    );
    // The real token still works.
    assert_eq!(
        q.queue().complete(&[lease("j", &leased.lease.token)]).await.unwrap(),
        [true]
    );
    // ...once: the same call again is a re-send of it, answered as the first and changing nothing.
    assert_eq!(
        q.queue().complete(&[lease("j", &leased.lease.token)]).await.unwrap(),
        [true]
    );
    assert_eq!(q.queue().stats().await.unwrap().completed_total, 1);
    assert_eq!(q.queue().stats().await.unwrap().completed, 1);
}

#[tokio::test]
async fn completed_jobs_are_retained_by_count() {
    let config = QueueConfig {
        completed: Retention {
            max_count: 3,
            max_age: Duration::ZERO,
        },
        ..Default::default()
    };
    let q = start_with(config).await;
    for i in 0..10 {
        q.client
            .queue("q")
            .unwrap()
            .enqueue(NewJob::new("k", &i).id(format!("j{i}")))
            .await
            .unwrap();
        let leased = q.pop_one().await;
        q.queue().complete([&leased.lease]).await.unwrap();
    }
    let stats = q.queue().stats().await.unwrap();
    assert_eq!((stats.completed, stats.completed_total), (3, 10));
    assert!(
        matches!(q.queue().job("j0").await, Err(queue::Error::JobNotFound { .. })),
        "forgotten"
    );
    assert_eq!(q.queue().job("j9").await.unwrap().state, queue::JobState::Completed);
}

#[tokio::test]
async fn a_batch_shares_one_lease_that_goes_when_its_last_job_settles() {
    use queue::fred::interfaces::KeysInterface;
    let q = start().await;
    q.enqueue_numbers(3).await;
    let jobs = q.queue().pop(3, LEASE).await.unwrap().jobs;
    assert_eq!(jobs.len(), 3);
    assert!(
        jobs.iter().all(|job| job.lease.token == jobs[0].lease.token),
        "one lease per fetched batch"
    );
    let queue = q.queue();
    let keys = queue.keys();
    let key = |suffix: &str| keys.all().iter().find(|k| k.ends_with(suffix)).unwrap().clone();
    let lease_keys = [key(":active"), key(":leases")];

    assert_eq!(q.queue().complete([&jobs[0].lease]).await.unwrap(), [true]);
    q.client
        .queue("q")
        .unwrap()
        .fail(&jobs[1].lease, "boom", false)
        .await
        .unwrap();
    assert_eq!(q.queue().stats().await.unwrap().active, 1);
    let exists: i64 = q.client.redis().exists(lease_keys.to_vec()).await.unwrap();
    assert_eq!(exists, 2, "the lease stays while one of its jobs is held");

    assert_eq!(q.queue().complete([&jobs[2].lease]).await.unwrap(), [true]);
    assert_eq!(q.queue().stats().await.unwrap().active, 0);
    let exists: i64 = q.client.redis().exists(lease_keys.to_vec()).await.unwrap();
    assert_eq!(exists, 0, "a settled batch leaves no lease record behind");
}

#[tokio::test]
async fn jobs_of_several_leases_settle_in_one_call_with_answers_in_order() {
    let q = start().await;
    q.enqueue_numbers(4).await;
    let a = q.queue().pop(2, LEASE).await.unwrap().jobs;
    let b = q.queue().pop(2, LEASE).await.unwrap().jobs;
    assert_ne!(a[0].lease.token, b[0].lease.token);
    let named = [
        a[0].lease.clone(),
        b[0].lease.clone(),
        lease(&a[1].lease.id, &b[0].lease.token), // another lease's token: refused
        b[1].lease.clone(),
    ];
    assert_eq!(q.queue().complete(&named).await.unwrap(), [true, true, false, true]);
    let stats = q.queue().stats().await.unwrap();
    assert_eq!((stats.completed_total, stats.active), (3, 1));
}

#[tokio::test]
async fn the_script_refuses_malformed_leases() {
    let q = start().await;
    for args in [
        &["10", "0", "0", "7"][..],
        &["10", "0", "0", "7", "2", "only-one-id"],
        &["10", "0", "0", "7", "x", "id"],
        &["10", "0", "1", "only-an-id"],
    ] {
        let reply = q.run_script("queue.complete", args).await;
        assert_eq!(reply[0].as_i64(), Some(1), "BAD_ARGUMENT");
    }
}

#[tokio::test]
async fn the_completed_count_bound_holds_after_a_call_that_finishes_many() {
    let config = QueueConfig {
        completed: Retention {
            max_count: 10,
            max_age: Duration::ZERO,
        },
        ..Default::default()
    };
    let q = start_with(config).await;
    // Ids in the order of the jobs: the 500 complete in the same millisecond, and the retention
    // breaks the tie by id.
    let numbered = (0..500).map(|n| queue::NewJob::new("k", &n).id(format!("j{n:03}")));
    q.queue().enqueue_bulk(numbered).await.unwrap();
    let jobs = q.queue().pop(500, LEASE).await.unwrap().jobs;
    let leases: Vec<Lease> = jobs.iter().map(|j| j.lease.clone()).collect();
    assert_eq!(q.queue().complete(&leases).await.unwrap(), vec![true; 500]);
    let stats = q.queue().stats().await.unwrap();
    assert_eq!((stats.completed, stats.completed_total), (10, 500));
    // The forgotten ones are gone with their records, the kept ones are the latest.
    assert!(q.queue().job(&jobs[0].lease.id).await.is_err());
    assert_eq!(
        q.queue().job(&jobs[499].lease.id).await.unwrap().state,
        JobState::Completed
    );
    let jobs_hash = q.queue().keys().all()[6].clone();
    let records: i64 = queue::fred::interfaces::HashesInterface::hlen(q.client.redis(), &jobs_hash)
        .await
        .unwrap();
    assert_eq!(records, 10 + 1, "ten records and the hash's pin");
}

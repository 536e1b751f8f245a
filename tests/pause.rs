use std::time::Duration;

use queue::{Error, NewJob};

use crate::support::start;

#[tokio::test]
async fn a_paused_queue_leases_nothing_until_resumed() {
    let q = start().await;
    q.queue().enqueue(NewJob::new("k", &1)).await.unwrap();
    q.queue().pause().await.unwrap();
    let popped = q.queue().pop(10, Duration::from_secs(30)).await.unwrap();
    assert!(popped.paused);
    assert!(popped.jobs.is_empty());
    q.queue().enqueue(NewJob::new("k", &2)).await.unwrap();
    let stats = q.queue().stats().await.unwrap();
    assert!(stats.paused);
    assert_eq!(stats.pending, 2, "enqueue still works while paused");

    q.queue().resume().await.unwrap();
    let popped = q.queue().pop(10, Duration::from_secs(30)).await.unwrap();
    assert!(!popped.paused);
    assert_eq!(popped.jobs.len(), 2);
}

#[tokio::test]
async fn a_queue_with_no_jobs_yet_can_be_paused_ahead_of_them() {
    let q = start().await;
    let fresh = q.client.queue("fresh").unwrap();
    fresh.pause().await.unwrap();
    // Listed, empty and paused, before its first job.
    assert_eq!(q.client.queues().await.unwrap(), ["fresh"]);
    let stats = fresh.stats().await.unwrap();
    assert_eq!((stats.pending, stats.enqueued_total, stats.paused), (0, 0, true));
    fresh.enqueue(NewJob::new("k", &1)).await.unwrap();
    let popped = fresh.pop(10, Duration::from_secs(30)).await.unwrap();
    assert!(popped.paused && popped.jobs.is_empty(), "its first job waits");
    fresh.resume().await.unwrap();
    assert_eq!(fresh.pop(10, Duration::from_secs(30)).await.unwrap().jobs.len(), 1);
    // Resuming a queue never paused writes nothing; a bad name is still refused.
    q.client.queue("never-seen").unwrap().resume().await.unwrap();
    assert_eq!(q.client.queues().await.unwrap(), ["fresh"]);
    assert!(matches!(q.client.queue("a{b}"), Err(Error::InvalidQueueName { .. })));
}

#[tokio::test]
async fn resume_wakes_idle_workers() {
    use queue::fred::{
        interfaces::{ClientLike, EventInterface, PubsubInterface},
        prelude::{Builder, Config},
    };
    let q = start().await;
    q.queue().enqueue(NewJob::new("k", &1)).await.unwrap();
    q.queue().pause().await.unwrap();
    let listener = Builder::from_config(Config::from_url(&q.redis.url()).unwrap())
        .build_subscriber_client()
        .unwrap();
    listener.init().await.unwrap();
    let mut wake_ups = listener.message_rx();
    listener.subscribe(q.queue().keys().wake()).await.unwrap();
    q.queue().resume().await.unwrap();
    let woken = tokio::time::timeout(Duration::from_secs(5), wake_ups.recv()).await;
    assert!(matches!(woken, Ok(Ok(_))), "resume published no wake-up: {woken:?}");
}

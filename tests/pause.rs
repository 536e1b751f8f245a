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
async fn pausing_an_unknown_queue_says_so() {
    let q = start().await;
    assert!(matches!(q.client.queue("nope").unwrap().pause().await, Err(Error::UnknownQueue(name)) if name == "nope"));
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

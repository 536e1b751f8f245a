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
    use queue::fred::interfaces::ListInterface;
    let q = start().await;
    q.queue().enqueue(NewJob::new("k", &1)).await.unwrap();
    let wake = q.queue().keys().wake().to_owned();
    q.queue().pause().await.unwrap();
    let _: Option<Vec<String>> = q.client.redis().lpop(&wake, Some(10)).await.unwrap(); // an idle worker took the marker
    q.queue().resume().await.unwrap();
    let marker: i64 = q.client.redis().llen(&wake).await.unwrap();
    assert_eq!(marker, 1, "resume left a wake-up marker");
}

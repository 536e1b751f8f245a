use std::time::Duration;

use queue::{Error, NewJob};

use crate::support::start;

#[tokio::test]
async fn a_paused_queue_leases_nothing_until_resumed() {
    let q = start().await;
    q.client.enqueue("q", NewJob::new("k", &1)).await.unwrap();
    q.client.pause("q").await.unwrap();
    let popped = q.client.pop("q", 10, Duration::from_secs(30)).await.unwrap();
    assert!(popped.paused);
    assert!(popped.jobs.is_empty());
    q.client.enqueue("q", NewJob::new("k", &2)).await.unwrap();
    let stats = q.client.stats("q").await.unwrap();
    assert!(stats.paused);
    assert_eq!(stats.pending, 2, "enqueue still works while paused");

    q.client.resume("q").await.unwrap();
    let popped = q.client.pop("q", 10, Duration::from_secs(30)).await.unwrap();
    assert!(!popped.paused);
    assert_eq!(popped.jobs.len(), 2);
}

#[tokio::test]
async fn a_queue_with_no_jobs_yet_can_be_paused_ahead_of_them() {
    let q = start().await;
    q.client.pause("fresh").await.unwrap();
    // Listed, empty and paused, before its first job.
    assert_eq!(q.client.queues().await.unwrap(), ["fresh"]);
    let stats = q.client.stats("fresh").await.unwrap();
    assert_eq!((stats.pending, stats.enqueued_total, stats.paused), (0, 0, true));
    q.client.enqueue("fresh", NewJob::new("k", &1)).await.unwrap();
    let popped = q.client.pop("fresh", 10, Duration::from_secs(30)).await.unwrap();
    assert!(popped.paused && popped.jobs.is_empty(), "its first job waits");
    q.client.resume("fresh").await.unwrap();
    assert_eq!(
        q.client
            .pop("fresh", 10, Duration::from_secs(30))
            .await
            .unwrap()
            .jobs
            .len(),
        1
    );
    // Resuming a queue never paused writes nothing; a bad name is still refused.
    q.client.resume("never-seen").await.unwrap();
    assert_eq!(q.client.queues().await.unwrap(), ["fresh"]);
    assert!(matches!(
        q.client.pause("a{b}").await,
        Err(Error::InvalidQueueName { .. })
    ));
}

#[tokio::test]
async fn resume_wakes_idle_workers() {
    use queue::fred::interfaces::ListInterface;
    let q = start().await;
    q.client.enqueue("q", NewJob::new("k", &1)).await.unwrap();
    let wake = q.client.keys("q").unwrap().wake().to_owned();
    q.client.pause("q").await.unwrap();
    let _: Option<Vec<String>> = q.client.redis().lpop(&wake, Some(10)).await.unwrap(); // an idle worker took the marker
    q.client.resume("q").await.unwrap();
    let marker: i64 = q.client.redis().llen(&wake).await.unwrap();
    assert_eq!(marker, 1, "resume left a wake-up marker");
}

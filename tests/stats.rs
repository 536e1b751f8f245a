use std::time::Duration;

use queue::{Backoff, NewJob};

use crate::support::{eventually, start};

#[tokio::test]
async fn stats_count_every_state() {
    let q = start().await;
    let client = &q.client;
    client
        .queue("q")
        .unwrap()
        .enqueue_bulk((0..6).map(|i| NewJob::new("k", &i).backoff(Backoff::fixed(Duration::from_secs(600)))))
        .await
        .unwrap();
    client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("k", &"later").delay(Duration::from_secs(600)))
        .await
        .unwrap();
    let jobs = client
        .queue("q")
        .unwrap()
        .pop(3, Duration::from_secs(30))
        .await
        .unwrap()
        .jobs;
    client.queue("q").unwrap().complete([&jobs[0].lease]).await.unwrap();
    client
        .queue("q")
        .unwrap()
        .fail(&jobs[1].lease, "retry me", false)
        .await
        .unwrap();
    client
        .queue("q")
        .unwrap()
        .fail(&jobs[2].lease, "bury me", true)
        .await
        .unwrap();
    let _active = client
        .queue("q")
        .unwrap()
        .pop(1, Duration::from_secs(30))
        .await
        .unwrap();

    let stats = client.queue("q").unwrap().stats().await.unwrap();
    assert_eq!(
        (
            stats.pending,
            stats.scheduled,
            stats.retrying,
            stats.active,
            stats.dead,
            stats.completed
        ),
        (2, 1, 1, 1, 1, 1)
    );
    assert_eq!(
        (
            stats.enqueued_total,
            stats.completed_total,
            stats.failed_attempts_total,
            stats.dead_total
        ),
        (7, 1, 2, 1)
    );
    assert!(!stats.paused);
}

#[tokio::test]
async fn latency_is_the_age_of_the_job_next_in_line() {
    let q = start().await;
    assert!(q.queue().enqueue(NewJob::new("k", &1)).await.unwrap().created);
    let latency = eventually("the job to age", Duration::from_secs(5), || async {
        let stats = q.queue().stats().await.unwrap();
        (stats.latency_ms >= 50).then_some(stats.latency_ms)
    })
    .await;
    assert!(latency < 5_000);
    q.queue().pop(1, Duration::from_secs(30)).await.unwrap();
    assert_eq!(q.queue().stats().await.unwrap().latency_ms, 0, "nothing pending");
}

#[tokio::test]
async fn queues_lists_every_queue_that_received_a_job() {
    let q = start().await;
    for name in ["b", "a", "c.d"] {
        q.client
            .queue(name)
            .unwrap()
            .enqueue(NewJob::new("k", &1))
            .await
            .unwrap();
    }
    assert_eq!(q.client.queues().await.unwrap(), ["a", "b", "c.d"]);
}

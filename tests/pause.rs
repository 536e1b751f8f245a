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
    // Resuming a queue that never existed is refused and writes nothing; a bad name too.
    assert!(matches!(
        q.client.queue("never-seen").unwrap().resume().await,
        Err(Error::UnknownQueue(_))
    ));
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

#[tokio::test]
async fn queue_cli_pause_and_resume_say_what_they_did() {
    let q = start().await;
    let url = q.redis.url();
    q.queue().enqueue(NewJob::new("k", &1)).await.unwrap();
    let cli = |args: &[&str]| {
        let run = crate::support::queue_cli(&url, args);
        (run.code, run.stdout, run.stderr)
    };
    let said = |line: &str| (Some(0), format!("{line}\n"), String::new());
    assert_eq!(cli(&["pause", "q"]), said("paused q"));
    assert_eq!(cli(&["pause", "q"]), said("q was paused already"));
    assert_eq!(cli(&["resume", "q"]), said("resumed q"));
    assert_eq!(cli(&["resume", "q"]), said("q was not paused; nothing changed"));
    // A queue that never existed: pausing it ahead of its jobs is a choice worth saying;
    // resuming it is a mistake (a typo, most likely), and nothing is written.
    assert_eq!(
        cli(&["resume", "typo"]),
        (Some(1), String::new(), "error: unknown queue \"typo\"\n".into())
    );
    assert_eq!(q.client.queues().await.unwrap(), ["q"]);
    assert_eq!(
        cli(&["pause", "later"]),
        said("paused later, which has no jobs yet: its first jobs will wait until it is resumed")
    );
    assert!(q.client.queue("later").unwrap().stats().await.unwrap().paused);
}

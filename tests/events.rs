//! The event stream (`lua/events.lua` turns it on; every state-changing script writes it).
use std::time::Duration;

use queue::{fred::interfaces::StreamsInterface, JobContext, JobError, NewJob, Worker};

use crate::support::{eventually, queue_cli, spawn_worker, start};

fn summary(events: &[queue::Event], id: &str) -> Vec<(String, u32)> {
    events
        .iter()
        .filter(|e| e.id == id)
        .map(|e| (e.event.clone(), e.attempt))
        .collect()
}

#[tokio::test]
async fn events_record_every_state_change_with_the_job_and_its_attempt() {
    let q = start().await;
    q.queue().enqueue(NewJob::new("k", &0).id("before")).await.unwrap();
    q.queue().set_events(1_000).await.unwrap();
    let flaky = NewJob::new("flaky", &0)
        .id("flaky")
        .backoff(queue::Backoff::fixed(Duration::ZERO));
    q.queue().enqueue(flaky).await.unwrap();
    q.queue()
        .enqueue(NewJob::new("doomed", &0).id("doomed").max_attempts(1))
        .await
        .unwrap();
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .handle_kind("flaky", |_: u32, ctx: JobContext| async move {
            if ctx.attempt() == 1 {
                return Err(JobError::retry("first try fails"));
            }
            ctx.progress(serde_json::json!({"done": 1})).await?;
            Ok(())
        })
        .handle_kind("doomed", |_: u32, _ctx: JobContext| async move {
            Err::<(), _>(JobError::permanent("never"))
        })
        .handle_kind("k", |_: u32, _ctx: JobContext| async move { Ok(()) })
        .build();
    let (shutdown, running) = spawn_worker(worker);
    eventually("the jobs to settle", Duration::from_secs(10), || async {
        let stats = q.queue().stats().await.ok()?;
        (stats.completed_total == 2 && stats.dead == 1).then_some(())
    })
    .await;
    shutdown.cancel();
    running.await.unwrap().unwrap();
    q.queue().enqueue(NewJob::new("k", &0).id("dropped")).await.unwrap();
    q.queue().cancel("dropped").await.unwrap();

    let events = q.queue().events(100).await.unwrap();
    let own = |event: &str, attempt: u32| (event.to_owned(), attempt);
    assert_eq!(
        summary(&events, "flaky"),
        [
            own("enqueued", 0),
            own("started", 1),
            own("failed", 1),
            own("retried", 1),
            own("started", 2),
            own("progress", 2),
            own("completed", 2)
        ]
    );
    assert_eq!(
        summary(&events, "doomed"),
        [own("enqueued", 0), own("started", 1), own("failed", 1), own("dead", 1)]
    );
    assert_eq!(summary(&events, "dropped"), [own("enqueued", 0), own("cancelled", 0)]);
    // Enqueued before the queue kept events: only what happened after.
    assert_eq!(summary(&events, "before"), [own("started", 1), own("completed", 1)]);
    let failed = events.iter().find(|e| e.id == "doomed" && e.event == "failed").unwrap();
    assert_eq!(failed.detail.as_deref(), Some("never"));
    assert!(events
        .windows(2)
        .all(|w| w[0].time_ms <= w[1].time_ms && w[0].stream_id < w[1].stream_id));
}

#[tokio::test]
async fn a_queue_keeps_no_events_until_told_and_then_a_capped_number() {
    let q = start().await;
    q.enqueue_numbers(10).await;
    assert!(q.queue().events(100).await.unwrap().is_empty());
    q.queue().set_events(10).await.unwrap();
    assert_eq!(q.queue().stats().await.unwrap().events_max_len, 10);
    for _ in 0..10 {
        q.enqueue_numbers(100).await;
    }
    let kept: u64 = q.client.redis().xlen(q.queue().keys().clone().events()).await.unwrap();
    // MAXLEN ~ trims whole nodes of the stream (100 entries each): about the cap, never all.
    assert!((10..=200).contains(&kept), "{kept}");
    q.queue().set_events(0).await.unwrap();
    q.enqueue_numbers(100).await;
    let after: u64 = q.client.redis().xlen(q.queue().keys().clone().events()).await.unwrap();
    assert_eq!(after, kept, "no events once turned off");
}

#[tokio::test]
async fn queue_cli_events_prints_follows_and_switches_the_stream() {
    let q = start().await;
    let url = q.redis.url();
    q.queue().enqueue(NewJob::new("k", &0).id("a")).await.unwrap();
    let run = queue_cli(&url, &["events", "q", "--enable", "500"]);
    assert_eq!(run.stdout, "q keeps its latest 500 events\n", "{}", run.stderr);
    q.queue().enqueue(NewJob::new("k", &0).id("b")).await.unwrap();
    let run = queue_cli(&url, &["events", "q", "--json"]);
    let event: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(
        (event["event"].as_str(), event["id"].as_str()),
        (Some("enqueued"), Some("b"))
    );
    assert!(event["time_ms"].as_i64().unwrap() > 0);
    let text = queue_cli(&url, &["events", "q"]).stdout;
    assert!(text.ends_with(" enqueued  b attempt 0\n"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(crate::support::bin("queue-cli"));
    command
        .args(["events", "q", "--follow", "--json"])
        .env("QUEUE_REDIS_URL", &url)
        .env_remove("QUEUE_PREFIX");
    let follower = crate::support::Process::spawn(command, dir.path().join("follow.log"));
    eventually(
        "the follower to print the kept event",
        Duration::from_secs(20),
        || async { follower.output().contains("\"id\":\"b\"").then_some(()) },
    )
    .await;
    q.queue().enqueue(NewJob::new("k", &0).id("c")).await.unwrap();
    eventually(
        "the follower to print the new event",
        Duration::from_secs(10),
        || async { follower.output().contains("\"id\":\"c\"").then_some(()) },
    )
    .await;
    let run = queue_cli(&url, &["events", "q", "--disable"]);
    assert_eq!(run.stdout, "q keeps no events\n");
    let run = queue_cli(&url, &["events", "q", "--enable", "0"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
}

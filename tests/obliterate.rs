//! `lua/obliterate.lua`: a queue removed whole, in bounded batches, with a worker running on it.
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use queue::{fred::interfaces::ClientLike, Backoff, Error, JobContext, NewJob, QueueClient, Worker};

use crate::support::{eventually, queue_cli, spawn_worker, start};

/// Every key in this Redis.
async fn all_keys(client: &QueueClient) -> Vec<String> {
    let mut keys: Vec<String> = client
        .redis()
        .custom(
            queue::fred::types::CustomCommand::new_static("KEYS", queue::fred::types::ClusterHash::Random, false),
            vec!["*"],
        )
        .await
        .unwrap();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_large_queue_in_every_state_goes_whole_in_batches() {
    let q = start().await;
    let never = Backoff::fixed(Duration::from_secs(3600));
    q.enqueue_numbers(1_200).await;
    q.queue()
        .enqueue_bulk((0..300).map(|i| NewJob::new("k", &i).priority(5)))
        .await
        .unwrap();
    q.queue()
        .enqueue_bulk((0..600).map(|i| NewJob::new("k", &i).delay(Duration::from_secs(600))))
        .await
        .unwrap();
    q.queue()
        .enqueue(NewJob::new("k", &0).id("r").priority(9).backoff(never))
        .await
        .unwrap();
    q.queue()
        .enqueue(NewJob::new("k", &0).id("d").priority(9))
        .await
        .unwrap();
    q.queue()
        .enqueue(NewJob::new("k", &0).id("c").priority(9))
        .await
        .unwrap();
    let leased = q.queue().pop(3, Duration::from_secs(30)).await.unwrap().jobs;
    q.queue().fail(&leased[0].lease, "later", false).await.unwrap();
    q.queue().fail(&leased[1].lease, "never", true).await.unwrap();
    q.queue().complete([&leased[2].lease]).await.unwrap();
    // Leases of more than one batch's worth of running jobs.
    let running = q.queue().pop(1_100, Duration::from_secs(30)).await.unwrap().jobs;
    q.queue().pause().await.unwrap();
    q.client
        .queue("other")
        .unwrap()
        .enqueue(NewJob::new("k", &1))
        .await
        .unwrap();
    let other_keys: Vec<String> = all_keys(&q.client)
        .await
        .into_iter()
        .filter(|k| k.contains(":other}"))
        .collect();

    assert_eq!(q.queue().obliterate().await.unwrap(), 2_103);
    let left = all_keys(&q.client).await;
    assert!(left.iter().all(|key| !key.starts_with("{queue:q}")), "{left:?}");
    assert_eq!(q.client.queues().await.unwrap(), ["other"]);
    assert!(matches!(q.queue().stats().await, Err(Error::UnknownQueue(_))));
    assert_eq!(
        left.iter()
            .filter(|k| k.contains(":other}"))
            .cloned()
            .collect::<Vec<_>>(),
        other_keys,
        "other queues are untouched"
    );
    // The running jobs' settle calls are refused and write nothing.
    let lost = q.queue().complete([&running[0].lease]).await.unwrap();
    assert_eq!(lost, [false]);
    assert!(matches!(
        q.queue().fail(&running[1].lease, "x", false).await,
        Err(Error::LeaseLost { .. })
    ));
    let held = [&running[2].lease];
    assert_eq!(q.queue().extend(Duration::from_secs(30), held).await.unwrap(), [false]);
    assert_eq!(q.queue().release(held).await.unwrap(), [false]);
    assert_eq!(
        q.queue().reap(Duration::from_secs(60), 100).await.unwrap(),
        Some((0, 0))
    );
    let left = all_keys(&q.client).await;
    assert!(
        left.iter()
            .all(|key| !key.starts_with("{queue:q}") || key == "{queue:q}:reaper"),
        "only the reaper's expiring lock: {left:?}"
    );
    // The name can be used again: a fresh queue, unpaused, counters from zero.
    q.queue().enqueue(NewJob::new("k", &1)).await.unwrap();
    let stats = q.queue().stats().await.unwrap();
    assert_eq!((stats.pending, stats.enqueued_total, stats.paused), (1, 1, false));
}

/// Counts up when dropped.
struct Ended(Arc<AtomicUsize>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_worker_running_jobs_loses_them_cleanly_and_writes_nothing_back() {
    let q = start().await;
    q.enqueue_numbers(3).await;
    let (started, cancelled) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (on_start, on_cancel) = (started.clone(), cancelled.clone());
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .concurrency(3)
        .lease(Duration::from_millis(600))
        .reap_interval(Duration::from_millis(50))
        .idle_recheck(Duration::from_millis(50))
        .handle_kind("k", move |_: u32, ctx: JobContext| {
            let (on_start, on_cancel) = (on_start.clone(), on_cancel.clone());
            async move {
                on_start.fetch_add(1, Ordering::SeqCst);
                // Counts the attempt's end however it comes: the worker stops a job whose lease
                // was lost by dropping its handler.
                let _ended = Ended(on_cancel);
                // Runs until the worker cancels it (its lease lost), or for long.
                tokio::select! {
                    _ = ctx.cancellation().cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                }
                Ok(())
            }
        })
        .build();
    let (shutdown, running) = spawn_worker(worker);
    eventually("the jobs to run", Duration::from_secs(10), || async {
        (started.load(Ordering::SeqCst) == 3).then_some(())
    })
    .await;
    assert_eq!(q.queue().obliterate().await.unwrap(), 3);
    // Its next renewal finds the leases lost: the worker cancels the jobs, and their settle
    // calls are refused. Its fetches and sweeps went on against nothing meanwhile.
    eventually("the jobs to be cancelled", Duration::from_secs(10), || async {
        (cancelled.load(Ordering::SeqCst) == 3).then_some(())
    })
    .await;
    // A stopped worker has settled everything it ran: nothing, every lease was lost.
    shutdown.cancel();
    assert_eq!(running.await.unwrap().unwrap(), queue::WorkerReport::default());
    let left = all_keys(&q.client).await;
    assert!(
        left.iter()
            .all(|key| !key.starts_with("{queue:q}") || key == "{queue:q}:reaper"),
        "no key of the queue came back but the reaper's expiring lock: {left:?}"
    );
    assert_eq!(q.client.queues().await.unwrap(), Vec::<String>::new());
}

#[tokio::test]
async fn an_index_entry_lost_to_an_obliterate_is_restored_when_the_queue_is_named() {
    let q = start().await;
    q.queue().enqueue(NewJob::new("k", &1)).await.unwrap();
    // Another client obliterates; this one had indexed "q" and does not index it again.
    let other = QueueClient::connect(&q.redis.url()).await.unwrap();
    other.queue("q").unwrap().obliterate().await.unwrap();
    q.queue().enqueue(NewJob::new("k", &2)).await.unwrap();
    assert_eq!(
        other.queue("q").unwrap().stats().await.unwrap().pending,
        1,
        "found by its keys"
    );
    assert_eq!(other.queues().await.unwrap(), ["q"], "and indexed again");
}

#[tokio::test]
async fn queue_cli_obliterate_needs_yes() {
    let q = start().await;
    let url = q.redis.url();
    q.enqueue_numbers(5).await;
    let cli = |args: &[&str]| {
        let run = queue_cli(&url, args);
        (run.code, run.stdout, run.stderr)
    };
    assert_eq!(
        cli(&["obliterate", "q"]),
        (
            Some(1),
            "".into(),
            "error: obliterate removes queue q and every job in it, running ones included: add --yes to confirm\n"
                .into()
        )
    );
    assert_eq!(q.queue().stats().await.unwrap().pending, 5, "nothing removed");
    assert_eq!(
        cli(&["obliterate", "q", "--yes"]),
        (
            Some(0),
            "obliterated q: removed 5 jobs and its keys\n".into(),
            "".into()
        )
    );
    assert_eq!(
        cli(&["obliterate", "q", "--yes", "--json"]),
        (Some(1), "".into(), "error: unknown queue \"q\"\n".into())
    );
    q.enqueue_numbers(2).await;
    let (code, stdout, _) = cli(&["obliterate", "q", "--yes", "--json"]);
    assert_eq!(code, Some(0));
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json, serde_json::json!({"queue": "q", "removed": 2}));
}

#[tokio::test]
async fn callers_waiting_for_jobs_of_an_obliterated_queue_are_told_and_no_key_is_left() {
    let q = start().await;
    q.queue().enqueue(NewJob::new("k", &1).id("pending")).await.unwrap();
    q.queue().enqueue(NewJob::new("k", &1).id("running")).await.unwrap();
    q.queue()
        .enqueue(NewJob::new("k", &1).id("later").delay(Duration::from_secs(600)))
        .await
        .unwrap();
    let running = q.pop_one().await;
    assert_eq!(running.id(), "pending");
    let waiters = crate::wait::blocked_waiters(&q, &["pending", "running", "later"]).await;
    assert_eq!(q.queue().obliterate().await.unwrap(), 3);
    crate::wait::told_deleted(waiters).await;
    let left = all_keys(&q.client).await;
    assert!(
        left.iter().all(|key| !key.starts_with("{queue:q}")),
        "the finished stream went too, once its news was read: {left:?}"
    );
}

//! What a worker costs Redis while its queues are idle: calls that do not grow with its queues,
//! and expired leases still taken back on any of them.
use std::{sync::Arc, time::Duration};

use queue::{
    fred::{interfaces::ClientLike, types::InfoKind},
    low_level::info_field,
    JobContext, JobState, NewJob, QueueClient, Worker,
};
use tokio::sync::Notify;

use crate::support::{self, eventually, job_in_state};

const QUEUES: usize = 300;

/// Commands Redis has run so far (each call of this counts one).
async fn commands(client: &QueueClient) -> u64 {
    let info: String = client.redis().info(Some(InfoKind::Stats)).await.unwrap();
    info_field(&info, "total_commands_processed").parse().unwrap()
}

#[tokio::test]
async fn a_worker_on_300_idle_queues_makes_few_calls_and_still_reaps_any_of_them() {
    let q = support::start().await;
    let client = q.client.clone();
    let names: Vec<String> = (0..QUEUES).map(|i| format!("idle-{i}")).collect();
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    // One slot, so that once a job holds it the worker fetches nothing and a test client can
    // lease a job as a worker that then crashes would.
    let mut builder = Worker::builder(client.clone())
        .concurrency(1)
        .reap_interval(Duration::from_secs(1));
    for name in &names {
        builder = builder.queue(name);
    }
    let (on_start, on_release) = (started.clone(), release.clone());
    let worker = builder
        .handle_kind("hold", move |_: (), _ctx: JobContext| {
            let (started, release) = (on_start.clone(), on_release.clone());
            async move {
                started.notify_one();
                release.notified().await;
                Ok(())
            }
        })
        .build();
    let (stop, running) = support::spawn_worker(worker);

    // The worker looks at every queue once when it starts; then it goes quiet.
    eventually(
        "the start-up pass over the queues to end",
        Duration::from_secs(30),
        || async {
            let before = commands(&client).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            (commands(&client).await - before <= 2).then_some(())
        },
    )
    .await;
    // Longer than the reap interval, which used to mean a sweep of every queue.
    let window = Duration::from_secs(3);
    let before = commands(&client).await;
    tokio::time::sleep(window).await;
    let calls = commands(&client).await - before - 1;
    assert!(
        calls <= 10 * window.as_secs(),
        "{calls} calls in {window:?} on {QUEUES} idle queues: at most 10 a second, whatever the queues"
    );

    // The worker's one slot taken: a job leased elsewhere on another queue and never settled
    // (its worker crashed) goes back to pending once its lease expires.
    let first = client.queue(&names[0]).unwrap();
    first.enqueue(NewJob::new("hold", &())).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), started.notified())
        .await
        .expect("the worker runs the first job");
    let last = client.queue(&names[QUEUES - 1]).unwrap();
    last.enqueue(NewJob::new("lost", &()).id("lost")).await.unwrap();
    let leased = last.pop(1, Duration::from_millis(500)).await.unwrap();
    assert_eq!(
        leased.jobs.len(),
        1,
        "the busy worker left the job to the test's client"
    );
    let job = job_in_state(&client, &names[QUEUES - 1], "lost", JobState::Pending).await;
    assert_eq!(job.last_error.as_deref(), Some("lease expired"));

    release.notify_one();
    stop.cancel();
    running.await.unwrap().unwrap();
}

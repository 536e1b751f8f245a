//! `lua/retry.lua`: a scheduled or retrying job runs now, and a waiting worker is woken for it.
use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use queue::{fred::types::Value, Backoff, Error, JobContext, JobState, NewJob, Worker};

use crate::support::{eventually, queue_cli, spawn_worker, start};

#[tokio::test]
async fn a_scheduled_or_retrying_job_becomes_pending_with_its_attempts() {
    let q = start().await;
    let never = Backoff::fixed(Duration::from_secs(3600));
    q.queue()
        .enqueue(NewJob::new("k", &1).id("later").delay(Duration::from_secs(3600)))
        .await
        .unwrap();
    q.queue()
        .enqueue(NewJob::new("k", &2).id("failed").backoff(never))
        .await
        .unwrap();
    let leased = q.pop_one().await;
    q.queue().fail(&leased.lease, "boom", false).await.unwrap();

    let before = q.queue().job("later").await.unwrap();
    assert_eq!(q.queue().retry_job("later").await.unwrap(), JobState::Scheduled);
    let now = q.queue().job("later").await.unwrap();
    assert_eq!((now.state, now.attempts), (JobState::Pending, 0));
    assert!(
        now.run_at_ms.unwrap() < before.run_at_ms.unwrap(),
        "ready now, not in an hour"
    );

    assert_eq!(q.queue().retry_job("failed").await.unwrap(), JobState::Retrying);
    let job = q.queue().job("failed").await.unwrap();
    assert_eq!(
        (job.state, job.attempts, job.last_error.as_deref()),
        (JobState::Pending, 1, Some("boom"))
    );
    let stats = q.queue().stats().await.unwrap();
    assert_eq!((stats.pending, stats.scheduled, stats.retrying), (2, 0, 0));
    let popped = q.queue().pop(10, Duration::from_secs(30)).await.unwrap().jobs;
    let attempts: Vec<(&str, u32)> = popped.iter().map(|j| (j.id(), j.attempt)).collect();
    assert_eq!(
        attempts,
        [("later", 1), ("failed", 2)],
        "the failed attempt still counts"
    );
}

#[tokio::test]
async fn a_job_in_another_state_is_refused_and_unchanged() {
    let q = start().await;
    q.queue().enqueue(NewJob::new("k", &1).id("p")).await.unwrap();
    let error = q.queue().retry_job("p").await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "job \"p\" in queue \"q\" is pending, not scheduled or retrying"
    );
    q.pop_one().await;
    assert!(matches!(
        q.queue().retry_job("p").await,
        Err(Error::NotRetryable {
            state: JobState::Active,
            ..
        })
    ));
    assert!(matches!(
        q.queue().retry_job("nope").await,
        Err(Error::JobNotFound { .. })
    ));
    assert!(matches!(
        q.client.queue("other").unwrap().retry_job("p").await,
        Err(Error::UnknownQueue(_))
    ));
    // A re-sent retry answers as the first delivery did.
    q.queue()
        .enqueue(NewJob::new("k", &1).id("s").delay(Duration::from_secs(60)))
        .await
        .unwrap();
    let first = q.run_script_as("queue.retry", "retry-1", &["s"]).await;
    let again = q.run_script_as("queue.retry", "retry-1", &["s"]).await;
    assert_eq!(
        first,
        vec![Value::Integer(0), Value::from("scheduled"), Value::Integer(1)]
    );
    assert_eq!(again, first);
    assert_eq!(q.queue().stats().await.unwrap().pending, 1);
}

#[tokio::test]
async fn a_waiting_worker_runs_a_retried_job_promptly() {
    let q = start().await;
    q.queue()
        .enqueue(NewJob::new("k", &1).id("tomorrow").delay(Duration::from_secs(86_400)))
        .await
        .unwrap();
    let ran = Arc::new(Mutex::new(None));
    let record = ran.clone();
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        // Only the wake-up can start the job within the test's deadline.
        .idle_recheck(Duration::from_secs(60))
        .handle_kind("k", move |_: u32, _ctx: JobContext| {
            let record = record.clone();
            async move {
                *record.lock().unwrap() = Some(Instant::now());
                Ok(())
            }
        })
        .build();
    let (shutdown, running) = spawn_worker(worker);
    // The worker listens for wake-ups (and would otherwise sleep for its 60 s recheck).
    eventually("the worker to listen for wake-ups", Duration::from_secs(10), || async {
        (crate::support::wake_listeners(&q.client, "q").await > 0).then_some(())
    })
    .await;
    let retried = Instant::now();
    q.queue().retry_job("tomorrow").await.unwrap();
    let started = eventually("the retried job to run", Duration::from_secs(10), || async {
        *ran.lock().unwrap()
    })
    .await;
    eprintln!("a retried job started {:?} after the call", started - retried);
    q.job_in_state("tomorrow", JobState::Completed).await;
    shutdown.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn queue_cli_retry_runs_a_job_now_or_says_why_not() {
    let q = start().await;
    let url = q.redis.url();
    q.queue()
        .enqueue(NewJob::new("k", &1).id("s").delay(Duration::from_secs(60)))
        .await
        .unwrap();
    let cli = |args: &[&str]| {
        let run = queue_cli(&url, args);
        (run.code, run.stdout, run.stderr)
    };
    assert_eq!(
        cli(&["retry", "q", "s"]),
        (Some(0), "scheduled job s of q is pending now\n".into(), "".into())
    );
    assert_eq!(
        cli(&["retry", "q", "s"]),
        (
            Some(1),
            "".into(),
            "error: job \"s\" in queue \"q\" is pending, not scheduled or retrying\n".into()
        )
    );
    q.queue()
        .enqueue(NewJob::new("k", &1).id("t").delay(Duration::from_secs(60)))
        .await
        .unwrap();
    let (code, stdout, _) = cli(&["retry", "q", "t", "--json"]);
    assert_eq!(code, Some(0));
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"queue": "q", "id": "t", "moved_from": "scheduled"})
    );
}

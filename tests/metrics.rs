//! Prometheus metrics, scraped over HTTP: an in-process worker (`metrics_addr`), the
//! `queue-worker` binary (`--metrics-addr`) and `queue-cli metrics`.
use std::{process::Command, time::Duration};

use queue::{Backoff, Error, JobError, NewJob, Worker};

use crate::support::{
    bin, eventually, free_addr, sample, scrape_until, spawn_queue_worker, spawn_worker, start, Process,
};

#[tokio::test]
async fn a_worker_serves_what_it_did_by_queue_and_kind_and_its_queues_by_state() {
    let q = start().await;
    for i in 0..5u32 {
        q.queue().enqueue(NewJob::new("ok", &i)).await.unwrap();
    }
    let twice = NewJob::new("flaky", &())
        .max_attempts(2)
        .backoff(Backoff::fixed(Duration::ZERO));
    q.queue().enqueue(twice).await.unwrap();
    // No handler for this kind: its label must not be the kind, which any producer chooses.
    q.queue().enqueue(NewJob::new("mystery-1234", &())).await.unwrap();

    let addr = free_addr();
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .metrics_addr(addr)
        .handle_kind("ok", |_: u32, _| async { Ok(()) })
        .handle_kind("flaky", |_: (), _| async { Err::<(), _>(JobError::retry("boom")) })
        .build();
    let (stop, handle) = spawn_worker(worker);

    let text = scrape_until(
        addr,
        &[
            (r#"queue_worker_jobs_processed_total{queue="q",kind="ok"}"#, 5.0),
            (r#"queue_worker_jobs_completed_total{queue="q",kind="ok"}"#, 5.0),
            (r#"queue_worker_jobs_failed_total{queue="q",kind="ok"}"#, 0.0),
            (r#"queue_worker_jobs_processed_total{queue="q",kind="flaky"}"#, 2.0),
            (r#"queue_worker_jobs_failed_total{queue="q",kind="flaky"}"#, 2.0),
            (r#"queue_worker_jobs_retried_total{queue="q",kind="flaky"}"#, 1.0),
            (r#"queue_worker_jobs_dead_total{queue="q",kind="flaky"}"#, 1.0),
            (r#"queue_worker_jobs_dead_total{queue="q",kind="unknown"}"#, 1.0),
            (r#"queue_worker_jobs_cancelled_total{queue="q",kind="ok"}"#, 0.0),
            (r#"queue_worker_jobs_in_flight{queue="q",kind="ok"}"#, 0.0),
            (r#"queue_worker_job_duration_seconds_count{queue="q",kind="ok"}"#, 5.0),
            (
                r#"queue_worker_job_duration_seconds_count{queue="q",kind="flaky"}"#,
                2.0,
            ),
            (r#"queue_worker_pickup_latency_seconds_count{queue="q",kind="ok"}"#, 5.0),
            (
                r#"queue_worker_pickup_latency_seconds_count{queue="q",kind="flaky"}"#,
                2.0,
            ),
            // From Redis, at scrape time.
            ("queue_stats_up", 1.0),
            (r#"queue_jobs{queue="q",state="completed"}"#, 5.0),
            (r#"queue_jobs{queue="q",state="dead"}"#, 2.0),
            (r#"queue_jobs{queue="q",state="pending"}"#, 0.0),
            (r#"queue_enqueued_total{queue="q"}"#, 7.0),
            (r#"queue_completed_total{queue="q"}"#, 5.0),
            (r#"queue_failed_attempts_total{queue="q"}"#, 3.0),
            (r#"queue_dead_total{queue="q"}"#, 2.0),
            (r#"queue_paused{queue="q"}"#, 0.0),
        ],
    )
    .await;
    assert!(
        !text.contains("mystery"),
        "an unregistered kind became a label:\n{text}"
    );
    assert!(
        text.contains(r#"queue_worker_job_duration_seconds_bucket{le="0.001",queue="q",kind="ok"}"#),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));

    // A second worker cannot take the address: it says so instead of running without metrics.
    let taken = Worker::builder(q.client.clone()).queue("q").metrics_addr(addr).build();
    let refused = taken.run(queue::CancellationToken::new()).await.unwrap_err();
    assert!(matches!(refused, Error::MetricsListen { .. }), "{refused}");
    assert!(
        refused
            .to_string()
            .starts_with(&format!("cannot serve metrics on {addr}")),
        "{refused}"
    );

    stop.cancel();
    handle.await.unwrap().unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the server stops with the worker"
    );
}

#[tokio::test]
async fn the_queue_worker_binary_serves_metrics_and_logs_json_with_the_jobs_span() {
    let q = start().await;
    let dir = tempfile::tempdir().unwrap();
    for i in 0..3u32 {
        q.queue().enqueue(NewJob::new("ok", &i)).await.unwrap();
    }
    q.queue()
        .enqueue(NewJob::new("fail", &()).max_attempts(1))
        .await
        .unwrap();
    let addr = free_addr();
    let worker = spawn_queue_worker(
        &q.redis.url(),
        dir.path(),
        "w",
        &[
            "--queue",
            "q",
            "--metrics-addr",
            &addr.to_string(),
            "--log-format",
            "json",
            "--exec",
            r#"case "$QUEUE_JOB_KIND" in fail) exit 3 ;; esac"#,
        ],
    );
    scrape_until(
        addr,
        &[
            (r#"queue_worker_jobs_completed_total{queue="q",kind="ok"}"#, 3.0),
            (r#"queue_worker_jobs_dead_total{queue="q",kind="fail"}"#, 1.0),
            (r#"queue_jobs{queue="q",state="completed"}"#, 3.0),
            (r#"queue_jobs{queue="q",state="dead"}"#, 1.0),
        ],
    )
    .await;

    let lines: Vec<serde_json::Value> = eventually("the dead job's log line", Duration::from_secs(10), || async {
        let output = worker.output();
        output.contains("dead letter").then(|| {
            output
                .lines()
                .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
                .collect()
        })
    })
    .await;
    let dead = lines
        .iter()
        .find(|line| line["fields"]["message"] == "job moved to the dead letter")
        .unwrap();
    let span = &dead["span"];
    assert_eq!(
        (
            &span["name"],
            &span["queue"],
            &span["kind"],
            &span["attempt"],
            &span["outcome"]
        ),
        (
            &"job".into(),
            &"q".into(),
            &"fail".into(),
            &serde_json::json!(1),
            &"dead".into()
        ),
        "{dead}"
    );
    assert!(span["id"].as_str().is_some_and(|id| !id.is_empty()), "{dead}");
}

#[tokio::test]
async fn queue_cli_metrics_serves_every_queues_gauges_without_a_worker() {
    let q = start().await;
    for i in 0..2u32 {
        q.client
            .queue("a")
            .unwrap()
            .enqueue(NewJob::new("k", &i))
            .await
            .unwrap();
    }
    let later = NewJob::new("k", &()).delay(Duration::from_secs(3600));
    q.client.queue("b").unwrap().enqueue(later).await.unwrap();
    q.client.queue("b").unwrap().pause().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut command = Command::new(bin("queue-cli"));
    command
        .args(["metrics", "--listen", &addr.to_string(), "--log-format", "json"])
        .env("QUEUE_REDIS_URL", q.redis.url())
        .env_remove("QUEUE_PREFIX");
    let cli = Process::spawn(command, dir.path().join("metrics.log"));

    let text = scrape_until(
        addr,
        &[
            ("queue_stats_up", 1.0),
            (r#"queue_jobs{queue="a",state="pending"}"#, 2.0),
            (r#"queue_jobs{queue="b",state="scheduled"}"#, 1.0),
            (r#"queue_paused{queue="a"}"#, 0.0),
            (r#"queue_paused{queue="b"}"#, 1.0),
            (r#"queue_enqueued_total{queue="a"}"#, 2.0),
        ],
    )
    .await;
    assert!(sample(&text, r#"queue_latency_seconds{queue="a"}"#).is_some(), "{text}");
    assert!(!text.contains("queue_worker_"), "no worker runs here:\n{text}");

    // A reading is kept for a second at most: new work shows at a later scrape.
    q.client
        .queue("a")
        .unwrap()
        .enqueue(NewJob::new("k", &3))
        .await
        .unwrap();
    scrape_until(addr, &[(r#"queue_jobs{queue="a",state="pending"}"#, 3.0)]).await;

    let first: serde_json::Value = serde_json::from_str(cli.output().lines().next().unwrap()).unwrap();
    assert_eq!(first["fields"]["message"], "serving every queue's gauges at /metrics");

    // The address is taken now: one line naming it, exit 1.
    let taken = Command::new(bin("queue-cli"))
        .args(["metrics", "--listen", &addr.to_string()])
        .env("QUEUE_REDIS_URL", q.redis.url())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&taken.stderr);
    assert_eq!(taken.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cannot listen on {addr}")), "{stderr}");
}

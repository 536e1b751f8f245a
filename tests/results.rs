//! What handlers return: kept with the completed job (`lua/complete.lua`), shown by `job`.
use std::time::Duration;

use queue::{fred::interfaces::HashesInterface, JobContext, JobState, NewJob, QueueConfig, Retention, Worker};
use serde_json::json;

use crate::support::{eventually, job_in_state, lease, queue_cli, spawn_queue_worker, spawn_worker, start, start_with};

#[derive(serde::Serialize)]
struct Receipt {
    sent: u32,
    to: String,
}

#[tokio::test]
async fn a_handlers_value_is_kept_with_the_completed_job_and_unit_keeps_none() {
    let q = start().await;
    q.queue()
        .enqueue(NewJob::new("send", &"a@b.c").id("valued"))
        .await
        .unwrap();
    q.queue().enqueue(NewJob::new("noop", &1).id("unit")).await.unwrap();
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .handle_kind("send", |to: String, _ctx: JobContext| async move {
            Ok(Receipt { sent: 1, to })
        })
        .handle_kind("noop", |_: u32, _ctx: JobContext| async move { Ok(()) })
        .build();
    let (shutdown, running) = spawn_worker(worker);
    let valued = q.job_in_state("valued", JobState::Completed).await;
    let unit = q.job_in_state("unit", JobState::Completed).await;
    shutdown.cancel();
    running.await.unwrap().unwrap();
    assert_eq!(valued.result, Some(json!({"sent": 1, "to": "a@b.c"})));
    assert_eq!(unit.result, None);

    let shown = queue_cli(&q.redis.url(), &["job", "q", "valued", "--json"]);
    assert_eq!(shown.code, Some(0), "{}", shown.stderr);
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(shown["result"], json!({"sent": 1, "to": "a@b.c"}));
    let table = queue_cli(&q.redis.url(), &["job", "q", "valued"]).stdout;
    assert!(table.contains(r#"result      {"sent":1,"to":"a@b.c"}"#), "{table}");
}

#[tokio::test]
async fn a_result_is_forgotten_with_its_job_by_the_completed_retention() {
    let config = QueueConfig {
        completed: Retention {
            max_count: 1,
            max_age: Duration::ZERO,
        },
        ..Default::default()
    };
    let q = start_with(config).await;
    q.enqueue_numbers(3).await;
    let jobs = q.queue().pop(3, Duration::from_secs(30)).await.unwrap().jobs;
    for job in &jobs {
        let result = format!("{{\"n\":\"{}\"}}", job.id());
        let held = q
            .queue()
            .complete_with_results(std::slice::from_ref(&job.lease), &[(job.id(), result.as_bytes())])
            .await
            .unwrap();
        assert_eq!(held, [true]);
    }
    let last = q.queue().job(jobs[2].id()).await.unwrap();
    assert_eq!(last.result, Some(json!({"n": jobs[2].id()})));
    assert!(q.queue().job(jobs[0].id()).await.is_err());
    let results_hash = q.queue().keys().clone().all()[20].clone();
    assert!(results_hash.ends_with(":results"));
    let kept: i64 = q.client.redis().hlen(&results_hash).await.unwrap();
    assert_eq!(kept, 1 + 1, "one result and the hash's pin");
}

#[tokio::test]
async fn a_stale_lease_keeps_no_result() {
    let q = start().await;
    q.enqueue_numbers(1).await;
    let leased = q.pop_one().await;
    let held = q
        .queue()
        .complete_with_results(&[lease(leased.id(), "1")], &[(leased.id(), b"\"late\"")])
        .await
        .unwrap();
    assert_eq!(held, [false]);
    let job = q.queue().job(leased.id()).await.unwrap();
    assert_eq!((job.state, job.result), (JobState::Active, None));
}

#[tokio::test]
async fn a_result_over_the_payload_limit_fails_the_job_for_good() {
    let config = QueueConfig {
        max_payload_bytes: 1_000,
        ..Default::default()
    };
    let q = start_with(config).await;
    q.queue().enqueue(NewJob::new("big", &1).id("big")).await.unwrap();
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .handle_kind("big", |_: u32, _ctx: JobContext| async move { Ok("x".repeat(2_000)) })
        .build();
    let (shutdown, running) = spawn_worker(worker);
    let dead = q.job_in_state("big", JobState::Dead).await;
    shutdown.cancel();
    running.await.unwrap().unwrap();
    assert_eq!(
        dead.last_error.as_deref(),
        Some("the handler's result of 2002 bytes exceeds the limit of 1000 bytes")
    );
    assert_eq!(dead.attempts, 1, "not retried: it would be as large again");
}

#[tokio::test]
async fn an_exec_commands_stdout_is_its_result() {
    let q = start().await;
    let dir = tempfile::tempdir().unwrap();
    for id in ["json", "text", "silent", "huge"] {
        q.queue().enqueue(NewJob::new("k", &1).id(id)).await.unwrap();
    }
    // 70,000 bytes for "huge": above the 64 KiB kept.
    let script = r#"case "$QUEUE_JOB_ID" in
        json) echo '{"rows": 3}' ;;
        text) echo "done: 3 rows" ;;
        huge) head -c 70000 /dev/zero | tr '\0' 'y' ;;
        *) ;;
    esac"#;
    let _worker = spawn_queue_worker(&q.redis.url(), dir.path(), "w", &["--queue", "q", "--exec", script]);
    let result = |id: &'static str| {
        let client = q.client.clone();
        async move { job_in_state(&client, "q", id, JobState::Completed).await.result }
    };
    assert_eq!(result("json").await, Some(json!({"rows": 3})));
    assert_eq!(result("text").await, Some(json!("done: 3 rows")));
    assert_eq!(result("silent").await, None);
    let huge = result("huge").await.unwrap();
    assert_eq!(huge.as_str().map(str::len), Some(queue::MAX_STDOUT_RESULT));
    eventually("the worker to warn about the cut", Duration::from_secs(10), || async {
        let log = std::fs::read_to_string(dir.path().join("w.log")).ok()?;
        log.contains("exceeds the result limit").then_some(())
    })
    .await;
}

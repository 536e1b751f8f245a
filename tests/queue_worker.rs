//! The `queue-worker` binary: the --exec contract, signals, crashes.
use std::{path::Path, process::Command, time::Duration};

use queue::{Backoff, JobState, NewJob, QueueClient};
use serde_json::json;

use crate::support::{bin, eventually, start, Process, RefusingPort};

fn worker(url: &str, dir: &Path, name: &str, args: &[&str]) -> Process {
    let mut command = Command::new(bin("queue-worker"));
    command
        .args(args)
        .env("QUEUE_REDIS_URL", url)
        .env("D", dir)
        .env("RUST_LOG", "info");
    Process::spawn(command, dir.join(format!("{name}.log")))
}

async fn job_in_state(client: &QueueClient, id: &str, state: JobState) -> queue::Job {
    eventually(&format!("{id} to be {state}"), Duration::from_secs(20), || async {
        client.job("q", id).await.ok().filter(|j| j.state == state)
    })
    .await
}

async fn file_appears(path: &Path) {
    eventually(
        &format!("{} to appear", path.display()),
        Duration::from_secs(20),
        || async { path.exists().then_some(()) },
    )
    .await
}

#[tokio::test]
async fn exec_gets_the_payload_on_stdin_and_the_job_in_its_environment() {
    let q = start().await;
    let dir = tempfile::tempdir().unwrap();
    let script = r#"cat > "$D/$QUEUE_JOB_ID.in"; env | grep '^QUEUE_JOB_' | sort > "$D/$QUEUE_JOB_ID.env"
        case "$QUEUE_JOB_ID" in
          fail*) echo "first line" >&2; echo "it broke" >&2; exit 3 ;;
          slow*) exec sleep 30 ;;
        esac"#;
    let once = || Backoff::fixed(Duration::ZERO);
    q.client
        .enqueue(
            "q",
            NewJob::new("resize", &json!({"image": "a.jpg", "w": 640}))
                .unwrap()
                .id("ok-1"),
        )
        .await
        .unwrap();
    q.client
        .enqueue(
            "q",
            NewJob::new("resize", &json!(null))
                .unwrap()
                .id("fail-1")
                .max_attempts(2)
                .backoff(once()),
        )
        .await
        .unwrap();
    q.client
        .enqueue(
            "q",
            NewJob::new("resize", &json!(1)).unwrap().id("slow-1").max_attempts(1),
        )
        .await
        .unwrap();
    let _worker = worker(
        &q.redis.url(),
        dir.path(),
        "w",
        &[
            "--queue",
            "q",
            "--concurrency",
            "3",
            "--timeout",
            "500ms",
            "--exec",
            script,
        ],
    );

    job_in_state(&q.client, "ok-1", JobState::Completed).await;
    let stdin: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("ok-1.in")).unwrap()).unwrap();
    assert_eq!(stdin, json!({"image": "a.jpg", "w": 640}));
    let env = std::fs::read_to_string(dir.path().join("ok-1.env")).unwrap();
    assert_eq!(
        env,
        "QUEUE_JOB_ATTEMPT=1\nQUEUE_JOB_ID=ok-1\nQUEUE_JOB_KIND=resize\nQUEUE_JOB_QUEUE=q\n"
    );

    let failed = job_in_state(&q.client, "fail-1", JobState::Dead).await;
    assert_eq!(failed.attempts, 2);
    assert_eq!(
        failed.last_error.as_deref(),
        Some("exit status 3: first line\nit broke")
    );
    let env = std::fs::read_to_string(dir.path().join("fail-1.env")).unwrap();
    assert!(env.contains("QUEUE_JOB_ATTEMPT=2"), "the second attempt says so: {env}");

    let slow = job_in_state(&q.client, "slow-1", JobState::Dead).await;
    assert_eq!(slow.last_error.as_deref(), Some("timed out after 500ms"));
}

#[tokio::test]
async fn sigterm_lets_running_jobs_finish_and_exits_zero() {
    let q = start().await;
    let dir = tempfile::tempdir().unwrap();
    q.client
        .enqueue("q", NewJob::new("k", &1).unwrap().id("j"))
        .await
        .unwrap();
    let script = r#"touch "$D/started"; sleep 1; touch "$D/finished""#;
    let mut w = worker(&q.redis.url(), dir.path(), "w", &["--queue", "q", "--exec", script]);
    file_appears(&dir.path().join("started")).await;
    w.signal(libc::SIGTERM);
    let status = w.wait(Duration::from_secs(20)).await;
    assert!(status.success(), "exit {status:?}; output:\n{}", w.output());
    assert!(dir.path().join("finished").exists(), "the job ran to its end");
    assert_eq!(q.client.job("q", "j").await.unwrap().state, JobState::Completed);
    assert!(w.output().contains("worker stopped"), "{}", w.output());
}

#[tokio::test]
async fn sigterm_past_the_shutdown_timeout_hands_the_job_back_uncounted() {
    let q = start().await;
    let dir = tempfile::tempdir().unwrap();
    q.client
        .enqueue("q", NewJob::new("k", &1).unwrap().id("j"))
        .await
        .unwrap();
    let script = r#"touch "$D/started"; exec sleep 30"#;
    let mut w = worker(
        &q.redis.url(),
        dir.path(),
        "w",
        &["--queue", "q", "--shutdown-timeout", "200ms", "--exec", script],
    );
    file_appears(&dir.path().join("started")).await;
    w.signal(libc::SIGINT);
    let status = w.wait(Duration::from_secs(20)).await;
    assert!(status.success(), "exit {status:?}; output:\n{}", w.output());
    let job = q.client.job("q", "j").await.unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Pending, 0));
}

#[tokio::test]
async fn a_worker_killed_mid_job_has_its_job_finished_by_another_after_the_lease() {
    let q = start().await;
    let dir = tempfile::tempdir().unwrap();
    q.client
        .enqueue("q", NewJob::new("k", &1).unwrap().id("j").max_attempts(3))
        .await
        .unwrap();
    // The first attempt records its process group so the test can clean up the orphan.
    let script = r#"if [ "$QUEUE_JOB_ATTEMPT" = 1 ]; then echo $$ > "$D/pgid"; exec sleep 30; fi; touch "$D/done""#;
    let args = [
        "--queue",
        "q",
        "--lease",
        "1s",
        "--reap-interval",
        "100ms",
        "--exec",
        script,
    ];
    let mut first = worker(&q.redis.url(), dir.path(), "first", &args);
    file_appears(&dir.path().join("pgid")).await;
    first.signal(libc::SIGKILL);
    first.wait(Duration::from_secs(5)).await;
    if let Ok(pgid) = std::fs::read_to_string(dir.path().join("pgid")) {
        // SAFETY: signals the orphaned `sleep` of the killed worker's job.
        unsafe { libc::kill(-pgid.trim().parse::<i32>().unwrap(), libc::SIGKILL) };
    }
    assert_eq!(
        q.client.job("q", "j").await.unwrap().state,
        JobState::Active,
        "still leased by the dead worker"
    );

    let _second = worker(&q.redis.url(), dir.path(), "second", &args);
    let job = job_in_state(&q.client, "j", JobState::Completed).await;
    assert_eq!(job.attempts, 2);
    assert!(dir.path().join("done").exists());
    let stats = q.client.stats("q").await.unwrap();
    assert_eq!(
        (stats.processed, stats.failed),
        (1, 1),
        "the lost attempt counts as one failure"
    );
}

#[tokio::test]
async fn a_worker_started_before_redis_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut attempts = 0;
    let (mut w, redis) = loop {
        // The port is held (connections refused) until redis-server is about to bind it; if
        // another process takes it in that moment, the server does not start and the test
        // starts over on another port.
        let refusing = RefusingPort::new();
        let port = refusing.port();
        let url = format!("redis://127.0.0.1:{port}");
        let mut w = worker(
            &url,
            dir.path(),
            &format!("w{attempts}"),
            &["--queue", "q", "--exec", r#"touch "$D/ran""#],
        );
        eventually(
            "the worker to report Redis unreachable",
            Duration::from_secs(10),
            || async { w.output().contains("Redis not reachable").then_some(()) },
        )
        .await;
        assert!(w.child.try_wait().unwrap().is_none(), "still running");
        drop(refusing);
        attempts += 1;
        match throwaway_redis::RedisServer::start_with(throwaway_redis::Options {
            port: Some(port),
            ..Default::default()
        }) {
            Ok(redis) => break (w, redis),
            Err(error) if attempts < 5 => eprintln!("redis-server on {port}: {error}; again"),
            Err(error) => panic!("redis-server did not start: {error}"),
        }
    };
    let client = QueueClient::connect(&redis.url()).await.unwrap();
    client.enqueue("q", NewJob::new("k", &1).unwrap()).await.unwrap();
    file_appears(&dir.path().join("ran")).await;
    w.signal(libc::SIGTERM);
    assert!(w.wait(Duration::from_secs(20)).await.success());
}

#[tokio::test]
async fn bad_arguments_exit_non_zero_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = worker(
        "redis://127.0.0.1:1",
        dir.path(),
        "w",
        &["--queue", "a{b}", "--exec", "true"],
    );
    let status = w.wait(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(2));
    assert!(
        w.output().contains("invalid queue name \"a{b}\": braces are reserved"),
        "{}",
        w.output()
    );
    let mut w = worker(
        "redis://127.0.0.1:1",
        dir.path(),
        "w2",
        &["--queue", "q", "--exec", "true", "--timeout", "soon"],
    );
    assert_eq!(w.wait(Duration::from_secs(10)).await.code(), Some(2));
    assert!(w.output().contains("--timeout"), "{}", w.output());
}

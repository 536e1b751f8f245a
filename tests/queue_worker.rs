//! The `queue-worker` binary: the --exec contract, signals, crashes.
use std::{process::Command, time::Duration};

use queue::{Backoff, JobState, NewJob, QueueClient};
use serde_json::json;

use crate::support::{
    bin, eventually, file_appears, job_in_state, spawn_queue_worker as worker, start, Process, RefusingPort,
};

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
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("resize", &json!({"image": "a.jpg", "w": 640})).id("ok-1"))
        .await
        .unwrap();
    q.client
        .queue("q")
        .unwrap()
        .enqueue(
            NewJob::new("resize", &json!(null))
                .id("fail-1")
                .max_attempts(2)
                .backoff(once()),
        )
        .await
        .unwrap();
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("resize", &json!(1)).id("slow-1").max_attempts(1))
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

    job_in_state(&q.client, "q", "ok-1", JobState::Completed).await;
    let stdin: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("ok-1.in")).unwrap()).unwrap();
    assert_eq!(stdin, json!({"image": "a.jpg", "w": 640}));
    let env = std::fs::read_to_string(dir.path().join("ok-1.env")).unwrap();
    let (fencing, rest): (Vec<&str>, Vec<&str>) = env
        .lines()
        .partition(|line| line.starts_with("QUEUE_JOB_FENCING_TOKEN="));
    assert_eq!(
        rest,
        [
            "QUEUE_JOB_ATTEMPT=1",
            "QUEUE_JOB_ID=ok-1",
            "QUEUE_JOB_KIND=resize",
            "QUEUE_JOB_QUEUE=q"
        ]
    );
    assert!(
        matches!(fencing[..], [line] if line["QUEUE_JOB_FENCING_TOKEN=".len()..].parse::<u64>().is_ok()),
        "{env}"
    );

    let failed = job_in_state(&q.client, "q", "fail-1", JobState::Dead).await;
    assert_eq!(failed.attempts, 2);
    assert_eq!(
        failed.last_error.as_deref(),
        Some("exit status 3: first line\nit broke")
    );
    let env = std::fs::read_to_string(dir.path().join("fail-1.env")).unwrap();
    assert!(env.contains("QUEUE_JOB_ATTEMPT=2"), "the second attempt says so: {env}");

    let slow = job_in_state(&q.client, "q", "slow-1", JobState::Dead).await;
    assert_eq!(slow.last_error.as_deref(), Some("timed out after 500ms"));
}

#[tokio::test]
async fn sigterm_lets_running_jobs_finish_and_exits_zero() {
    let q = start().await;
    let dir = tempfile::tempdir().unwrap();
    q.queue().enqueue(NewJob::new("k", &1).id("j")).await.unwrap();
    let script = r#"touch "$D/started"; sleep 1; touch "$D/finished""#;
    let mut w = worker(&q.redis.url(), dir.path(), "w", &["--queue", "q", "--exec", script]);
    file_appears(&dir.path().join("started")).await;
    w.signal(libc::SIGTERM);
    let status = w.wait(Duration::from_secs(20)).await;
    assert!(status.success(), "exit {status:?}; output:\n{}", w.output());
    assert!(dir.path().join("finished").exists(), "the job ran to its end");
    assert_eq!(q.queue().job("j").await.unwrap().state, JobState::Completed);
    assert!(w.output().contains("worker stopped"), "{}", w.output());
}

#[tokio::test]
async fn sigterm_past_the_shutdown_timeout_hands_the_job_back_uncounted() {
    let q = start().await;
    let dir = tempfile::tempdir().unwrap();
    q.queue().enqueue(NewJob::new("k", &1).id("j")).await.unwrap();
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
    let job = q.queue().job("j").await.unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Pending, 0));
}

#[tokio::test]
async fn a_worker_killed_mid_job_has_its_job_finished_by_another_after_the_lease() {
    let q = start().await;
    let dir = tempfile::tempdir().unwrap();
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("k", &1).id("j").max_attempts(3))
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
        q.queue().job("j").await.unwrap().state,
        JobState::Active,
        "still leased by the dead worker"
    );

    let _second = worker(&q.redis.url(), dir.path(), "second", &args);
    let job = job_in_state(&q.client, "q", "j", JobState::Completed).await;
    assert_eq!(job.attempts, 2);
    assert!(dir.path().join("done").exists());
    let stats = q.queue().stats().await.unwrap();
    assert_eq!(
        (stats.completed_total, stats.failed_attempts_total),
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
    client.queue("q").unwrap().enqueue(NewJob::new("k", &1)).await.unwrap();
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

#[tokio::test]
async fn sigterm_while_redis_is_down_exits_within_the_shutdown_timeout_and_grace() {
    let mut q = start().await;
    let dir = tempfile::tempdir().unwrap();
    q.queue().enqueue(NewJob::new("k", &1).id("j")).await.unwrap();
    // One slot, taken by the job: no fetch is in flight when the signal comes.
    let script = r#"touch "$D/started"; exec sleep 30"#;
    let mut w = worker(
        &q.redis.url(),
        dir.path(),
        "w",
        &[
            "--queue",
            "q",
            "--concurrency",
            "1",
            "--shutdown-timeout",
            "500ms",
            "--exec",
            script,
        ],
    );
    file_appears(&dir.path().join("started")).await;
    q.redis.server().kill();
    w.signal(libc::SIGTERM);
    // The shutdown timeout (0.5 s), then at most 5 s to hand the job back, plus slack.
    let status = w
        .wait(Duration::from_millis(500) + Duration::from_secs(5) + Duration::from_secs(5))
        .await;
    assert!(status.success(), "exit {status:?}; output:\n{}", w.output());
    let output = w.output();
    assert!(
        output.contains("could not hand jobs back") && output.contains("\"j\""),
        "the job not handed back is named:\n{output}"
    );
}

#[tokio::test]
async fn exec_settles_when_the_command_exits_even_if_a_child_keeps_stderr_open() {
    let q = start().await;
    let dir = tempfile::tempdir().unwrap();
    q.queue().enqueue(NewJob::new("k", &1).id("ok")).await.unwrap();
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("k", &1).id("fail").max_attempts(1))
        .await
        .unwrap();
    // The background `sleep` inherits the command's stderr and outlives it.
    let script = r#"echo "before exit" >&2; sleep 60 & if [ "$QUEUE_JOB_ID" = ok ]; then exit 0; else exit 4; fi"#;
    let _w = worker(&q.redis.url(), dir.path(), "w", &["--queue", "q", "--exec", script]);
    // Far less than the 60 s the background child holds stderr.
    let deadline = Duration::from_secs(15);
    eventually("the job that exited 0 to complete", deadline, || async {
        (q.queue().job("ok").await.ok()?.state == JobState::Completed).then_some(())
    })
    .await;
    let failed = eventually("the job that exited 4 to be dead", deadline, || async {
        q.client
            .queue("q")
            .unwrap()
            .job("fail")
            .await
            .ok()
            .filter(|j| j.state == JobState::Dead)
    })
    .await;
    assert_eq!(failed.last_error.as_deref(), Some("exit status 4: before exit"));
}

#[tokio::test]
async fn exec_commands_do_not_inherit_the_workers_configuration_and_its_password() {
    let redis = throwaway_redis::RedisServer::start_with(throwaway_redis::Options {
        args: vec!["--requirepass".into(), "s3cret-pw".into()],
        ..Default::default()
    })
    .unwrap();
    let url = format!("redis://:s3cret-pw@127.0.0.1:{}", redis.port());
    let client = QueueClient::connect(&url).await.unwrap();
    client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("k", &1).id("j").max_attempts(1))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Tells how many variables name the worker's settings or hold the password, then lists the
    // QUEUE_ ones, and fails: the error keeps what it printed.
    let script = r#"echo "found: $(env | grep -c -e s3cret-pw -e '^QUEUE_REDIS_URL=' -e '^QUEUE_PREFIX=')" >&2
        env | grep '^QUEUE_' | sort >&2; exit 1"#;
    let mut command = Command::new(bin("queue-worker"));
    command
        .args(["--queue", "q", "--exec", script])
        .env("QUEUE_REDIS_URL", &url)
        .env("QUEUE_PREFIX", "queue")
        .env("D", dir.path());
    let _w = Process::spawn(command, dir.path().join("w.log"));
    let dead = eventually("the job in the dead letter", Duration::from_secs(20), || async {
        client
            .queue("q")
            .unwrap()
            .dead_list(0, 10)
            .await
            .ok()?
            .jobs
            .into_iter()
            .next()
    })
    .await;
    assert!(dead.error.starts_with("exit status 1: found: 0\n"), "{}", dead.error);
    for secret in ["s3cret-pw", "QUEUE_REDIS_URL", "QUEUE_PREFIX"] {
        assert!(
            !dead.error.contains(secret),
            "{secret} in the job's error: {}",
            dead.error
        );
    }
    assert!(dead.error.contains("QUEUE_JOB_ID=j"), "{}", dead.error);
}

#[tokio::test]
async fn exec_commands_get_a_fencing_token_that_grows_with_each_lease() {
    let q = start().await;
    let dir = tempfile::tempdir().unwrap();
    q.client
        .queue("q")
        .unwrap()
        .enqueue(
            NewJob::new("k", &1)
                .id("j")
                .max_attempts(2)
                .backoff(Backoff::fixed(Duration::ZERO)),
        )
        .await
        .unwrap();
    let script = r#"echo "$QUEUE_JOB_FENCING_TOKEN" > "$D/token-$QUEUE_JOB_ATTEMPT"; [ "$QUEUE_JOB_ATTEMPT" = 2 ]"#;
    let _w = worker(&q.redis.url(), dir.path(), "w", &["--queue", "q", "--exec", script]);
    job_in_state(&q.client, "q", "j", JobState::Completed).await;
    let token = |attempt: u32| -> u64 {
        let text = std::fs::read_to_string(dir.path().join(format!("token-{attempt}"))).unwrap();
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("attempt {attempt}: token {text:?}"))
    };
    let (first, second) = (token(1), token(2));
    assert!(0 < first && first < second, "{first} then {second}");
}

#[tokio::test]
async fn a_failing_reaper_sweep_is_logged_as_a_warning() {
    use queue::fred::interfaces::KeysInterface;
    let q = start().await;
    // KEYS[4], the leases, made a string: every sweep (and fetch) fails with WRONGTYPE.
    let active = q.queue().keys().all()[3].clone();
    let _: () = q
        .client
        .redis()
        .set(&active, "not a sorted set", None, None, false)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let w = worker(
        &q.redis.url(),
        dir.path(),
        "w",
        &["--queue", "q", "--reap-interval", "100ms", "--exec", "true"],
    );
    eventually("the failed sweep logged at warn", Duration::from_secs(10), || async {
        let output = w.output();
        output
            .lines()
            .any(|line| line.contains("WARN") && line.contains("reap failed"))
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_second_signal_stops_at_once_and_the_job_comes_back_after_its_lease() {
    let q = start().await;
    let dir = tempfile::tempdir().unwrap();
    q.queue().enqueue(NewJob::new("k", &1).id("j")).await.unwrap();
    let script = r#"touch "$D/started"; exec sleep 30"#;
    let args = [
        "--queue",
        "q",
        "--shutdown-timeout",
        "60s",
        "--lease",
        "1s",
        "--exec",
        script,
    ];
    let mut w = worker(&q.redis.url(), dir.path(), "w", &args);
    file_appears(&dir.path().join("started")).await;
    w.signal(libc::SIGTERM);
    eventually("the first signal heard", Duration::from_secs(10), || async {
        w.output().contains("shutdown signal received").then_some(())
    })
    .await;
    // The graceful stop would wait up to 60 s for the job; the operator presses Ctrl-C again.
    w.signal(libc::SIGINT);
    let status = w.wait(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(130), "output:\n{}", w.output());
    assert!(w.output().contains("second shutdown signal"), "{}", w.output());
    // Nothing is lost: the lease expires and the reaper puts the job back.
    eventually("the job back in pending", Duration::from_secs(10), || async {
        q.queue().reap(Duration::from_millis(1), 100).await.ok()?;
        q.client
            .queue("q")
            .unwrap()
            .job("j")
            .await
            .ok()
            .filter(|j| j.state == JobState::Pending)
    })
    .await;
}

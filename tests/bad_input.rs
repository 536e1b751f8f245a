//! Bad input that must not take the system down or lose a job (the rest is covered beside
//! each command: push.rs, queue_cli.rs, worker.rs).
use std::{process::Command, time::Duration};

use queue::{
    fred::interfaces::{HashesInterface, ListInterface},
    ConnectOptions, Error, JobContext, JobState, NewJob, QueueClient, QueueConfig, Worker,
};
use throwaway_redis::{Options, RedisServer};

use crate::support::{bin, eventually, run_with_deadline, spawn_worker, start, Process};

#[tokio::test]
async fn a_job_record_that_does_not_decode_goes_to_the_dead_letter_and_the_worker_goes_on() {
    let q = start().await;
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("task", &1).id("corrupt").max_attempts(5))
        .await
        .unwrap();
    q.queue().enqueue(NewJob::new("task", &2).id("fine")).await.unwrap();
    let jobs_hash = q.queue().keys().all()[6].clone();
    let _: i64 = q
        .client
        .redis()
        .hset(&jobs_hash, ("corrupt", "\u{1}not msgpack"))
        .await
        .unwrap();

    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .handle_kind("task", |_: i32, _ctx: JobContext| async { Ok(()) })
        .build();
    let (shutdown, running) = spawn_worker(worker);
    let dead = q.first_dead("the corrupt job in the dead letter").await;
    assert_eq!((dead.id.as_str(), dead.attempts), ("corrupt", 1));
    assert!(
        dead.error.starts_with("invalid payload: undecodable envelope"),
        "{}",
        dead.error
    );
    eventually("the next job done", Duration::from_secs(10), || async {
        q.client
            .queue("q")
            .unwrap()
            .job("fine")
            .await
            .ok()
            .filter(|j| j.state == JobState::Completed)
    })
    .await;
    shutdown.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn redis_out_of_memory_during_enqueue_is_a_clear_error_with_nothing_half_written() {
    let redis = RedisServer::start_with(Options {
        args: ["--maxmemory", "3mb", "--maxmemory-policy", "noeviction"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    })
    .unwrap();
    let client = QueueClient::connect_with(&ConnectOptions::new(redis.url()), QueueConfig::default())
        .await
        .unwrap();
    let payload = "x".repeat(1_000);
    let mut written = 0u64;
    let error = loop {
        let jobs = (0..200).map(|_| NewJob::new("k", &payload));
        match client.queue("q").unwrap().enqueue_bulk(jobs).await {
            Ok(added) => written += added.len() as u64,
            Err(error) => break error,
        }
        assert!(written < 100_000, "maxmemory never reached");
    };
    assert!(matches!(error, Error::OutOfMemory(_)), "{error:?}");
    assert!(error
        .to_string()
        .starts_with("Redis is out of memory (maxmemory reached); nothing of this call was written: OOM"));
    // All or none: exactly the bulks that succeeded are there, in every structure.
    let queue = client.queue("q").unwrap();
    let keys = queue.keys();
    let stats = client.queue("q").unwrap().stats().await.unwrap();
    assert_eq!((stats.enqueued_total, stats.pending), (written, written));
    let key = |suffix: &str| keys.all().iter().find(|k| k.ends_with(suffix)).unwrap().clone();
    let records: u64 = client.redis().hlen(key(":jobs")).await.unwrap();
    let pending: u64 = client.redis().llen(key(":pending:default")).await.unwrap();
    // The jobs hash holds one more field: the pin of its encoding (prelude.lua).
    assert_eq!((records - 1, pending), (written, written));
    // Workers can still drain a full Redis: leasing and completing free memory first.
    let popped = client
        .queue("q")
        .unwrap()
        .pop(10, Duration::from_secs(30))
        .await
        .unwrap();
    let leases = popped.jobs.iter().map(|j| &j.lease);
    assert_eq!(client.queue("q").unwrap().complete(leases).await.unwrap(), [true; 10]);
}

#[tokio::test]
async fn a_worker_warns_when_redis_may_evict_job_data() {
    let redis = RedisServer::start_with(Options {
        args: ["--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(bin("queue-worker"));
    command
        .args(["--queue", "q", "--exec", "true"])
        .env("QUEUE_REDIS_URL", redis.url());
    let mut worker = Process::spawn(command, dir.path().join("worker.log"));
    eventually("the eviction warning", Duration::from_secs(10), || async {
        worker
            .output()
            .contains("Redis may evict job data under maxmemory-policy allkeys-lru")
            .then_some(())
    })
    .await;
    worker.signal(libc::SIGTERM);
    assert!(worker.wait(Duration::from_secs(10)).await.success());

    // The operator sees it in stats too.
    let stats = run_with_deadline(
        Command::new(bin("queue-cli"))
            .arg("stats")
            .env("QUEUE_REDIS_URL", redis.url()),
        "",
        Duration::from_secs(60),
    );
    let text = String::from_utf8_lossy(&stats.stdout);
    assert!(
        text.ends_with(
            "warning: Redis may evict job data under maxmemory-policy allkeys-lru: jobs can vanish; use noeviction \
             (or a volatile-* policy) for the queue's Redis\n"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_worker_without_a_queue_is_refused_by_name() {
    let q = start().await;
    let worker = Worker::builder(q.client.clone()).build();
    let refused = worker.run(queue::CancellationToken::new()).await.unwrap_err();
    assert!(matches!(refused, Error::NoQueues), "{refused:?}");
    assert_eq!(refused.to_string(), "a worker needs at least one queue");
}

//! The worker through the faults production brings, from the fault kit: connections cut (by the
//! network and by `CLIENT KILL`), Redis stalled past the client's timeouts (`DEBUG SLEEP`,
//! `CLIENT PAUSE`), replies that arrive after the client gave up on them. With leases far longer
//! than the faults, nothing may be lost and nothing may run twice.
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use queue::{
    fred::{
        interfaces::ClientLike,
        types::{ClusterHash, CustomCommand},
    },
    ConnectOptions, JobContext, NewJob, QueueClient, QueueConfig, Worker,
};
use throwaway_redis::{
    proxy::{evalsha, Fault},
    Options, RedisServer,
};

use crate::support::{eventually, spawn_worker};

const JOBS: u32 = 400;

async fn command(client: &QueueClient, name: &'static str, args: Vec<&str>) {
    let command = CustomCommand::new_static(name, ClusterHash::Random, false);
    let _: queue::fred::types::Value = client.redis().custom(command, args).await.unwrap();
}

#[tokio::test]
async fn a_worker_through_cuts_stalls_and_late_replies_runs_every_job_exactly_once() {
    let redis = RedisServer::start_with(Options {
        args: vec!["--enable-debug-command".into(), "local".into()],
        ..Default::default()
    })
    .unwrap();
    let admin = QueueClient::connect(&redis.url()).await.unwrap();
    admin
        .queue("q")
        .unwrap()
        .enqueue_bulk((0..JOBS).map(|i| NewJob::new("k", &i)))
        .await
        .unwrap();
    let proxy = throwaway_redis::proxy::FaultProxy::start(redis.port()).unwrap();
    let mut options = ConnectOptions::new(proxy.url());
    // Shorter than the stalls below, so calls time out on the client while Redis runs them.
    options.command_timeout = Duration::from_millis(800);
    let client = QueueClient::connect_with(&options, QueueConfig::default())
        .await
        .unwrap();
    client.scripts().preload(client.redis()).await.unwrap();

    let runs = Arc::new(Mutex::new(vec![0u32; JOBS as usize]));
    let seen = runs.clone();
    let worker = Worker::builder(client.clone())
        .queue("q")
        .concurrency(4)
        .lease(Duration::from_secs(60))
        .reap_interval(Duration::from_millis(100))
        .handle_kind("k", move |n: u32, _ctx: JobContext| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap()[n as usize] += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok(())
            }
        })
        .build();
    let (shutdown, running) = spawn_worker(worker);
    let processed_at_least = |n: u64| {
        let admin = admin.clone();
        async move {
            eventually("progress", Duration::from_secs(30), || async {
                (admin.queue("q").unwrap().stats().await.ok()?.completed_total >= n).then_some(())
            })
            .await
        }
    };

    processed_at_least(40).await;
    proxy.cut_all();
    processed_at_least(80).await;
    command(&admin, "DEBUG", vec!["SLEEP", "1.5"]).await;
    processed_at_least(120).await;
    command(&admin, "CLIENT", vec!["PAUSE", "1500", "ALL"]).await;
    processed_at_least(160).await;
    command(&admin, "CLIENT", vec!["KILL", "TYPE", "normal", "SKIPME", "yes"]).await;
    processed_at_least(200).await;
    let complete = admin.scripts().get("queue.complete").unwrap().sha1().to_owned();
    let late = proxy.inject(evalsha(&complete), Fault::DelayReply(Duration::from_millis(1_500)), 1);
    let pop = admin.scripts().get("queue.pop").unwrap().sha1().to_owned();
    let lost = proxy.inject(evalsha(&pop), Fault::SwallowReply, 1);
    processed_at_least(u64::from(JOBS)).await;

    shutdown.cancel();
    running.await.unwrap().unwrap();
    assert_eq!((late.fired(), lost.fired()), (1, 1), "every fault landed");
    let stats = admin.queue("q").unwrap().stats().await.unwrap();
    assert_eq!(
        (
            stats.completed_total,
            stats.failed_attempts_total,
            stats.dead_total,
            stats.pending,
            stats.active
        ),
        (u64::from(JOBS), 0, 0, 0, 0)
    );
    let runs = runs.lock().unwrap();
    let twice: Vec<usize> = (0..runs.len()).filter(|&i| runs[i] != 1).collect();
    assert!(twice.is_empty(), "jobs not run exactly once: {twice:?}");
}

#[tokio::test]
async fn a_stop_does_not_wait_for_a_fetch_stuck_on_a_silent_connection() {
    let redis = RedisServer::start().unwrap();
    let admin = QueueClient::connect(&redis.url()).await.unwrap();
    let proxy = throwaway_redis::proxy::FaultProxy::start(redis.port()).unwrap();
    let client = QueueClient::connect(&proxy.url()).await.unwrap();
    client.scripts().preload(client.redis()).await.unwrap();
    let pop = admin.scripts().get("queue.pop").unwrap().sha1().to_owned();
    let fetches = proxy.count(evalsha(&pop));
    let worker = Worker::builder(client)
        .queue("q")
        .concurrency(4)
        .shutdown_timeout(Duration::from_millis(500))
        .handle_kind("k", |_: u32, _ctx: JobContext| async { Ok(()) })
        .build();
    let (shutdown, running) = spawn_worker(worker);
    eventually("the worker's first fetch", Duration::from_secs(10), || async {
        (fetches.get() > 0).then_some(())
    })
    .await;
    // From now on the worker's connection answers nothing, like one to a host that vanished.
    let silent = proxy.inject(evalsha(&pop), Fault::SwallowReply, usize::MAX);
    admin.queue("q").unwrap().enqueue(NewJob::new("k", &1)).await.unwrap();
    eventually("a fetch that never returns", Duration::from_secs(10), || async {
        (silent.fired() > 0).then_some(())
    })
    .await;
    let stopping = std::time::Instant::now();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the worker stops within the shutdown timeout plus its grace")
        .unwrap()
        .unwrap();
    // The README's bound: the shutdown timeout, plus at most 5 s to record what it can.
    assert!(
        stopping.elapsed() < Duration::from_millis(500 + 5_000),
        "{:?}",
        stopping.elapsed()
    );
}

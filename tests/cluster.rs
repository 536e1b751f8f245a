//! The same queue on a 3-node Redis Cluster: every script's keys share one hash tag, so each
//! queue lives on one node and different queues spread over the cluster.
use std::{
    process::Command,
    time::{Duration, Instant},
};

use queue::{
    fred::interfaces::LuaInterface, CancellationToken, ConnectOptions, JobContext, NewJob, QueueClient, QueueConfig,
    Worker,
};
use throwaway_redis::Cluster;

use crate::support::{bin, eventually, expect_drained, run_numbers, start_cluster, Failure};

fn slot_of(client: &QueueClient, queue: &str) -> u16 {
    queue::fred::util::redis_keyslot(client.queue(queue).unwrap().keys().all()[0].as_bytes())
}

#[tokio::test]
async fn queues_spread_over_a_cluster_and_run_unchanged() {
    let (cluster, client) = start_cluster().await;
    // These three queues hash to slots served by three different nodes (0-5460, 5461-10922, 10923-16383).
    let queues = ["emails", "images", "reports"];
    let mut slots: Vec<u16> = queues.iter().map(|q| slot_of(&client, q) / 5461).collect();
    slots.sort();
    assert_eq!(slots, [0, 1, 2], "one queue per node");

    for queue in queues {
        // Half of them in groups, under a group limit: the groups' state lives under the
        // queue's hash tag too.
        let jobs = (0..50).map(|i| match i % 2 {
            0 => NewJob::new("task", &i).group(format!("tenant-{}", i % 3)),
            _ => NewJob::new("task", &i),
        });
        client.queue(queue).unwrap().enqueue_bulk(jobs).await.unwrap();
        client
            .queue(queue)
            .unwrap()
            .set_group_concurrency_limit(Some(2))
            .await
            .unwrap();
        client
            .queue(queue)
            .unwrap()
            .enqueue(NewJob::new("task", &-1).delay(Duration::from_millis(200)))
            .await
            .unwrap();
    }
    // Every node loses its script cache: calls recover there too.
    client.redis().script_flush_cluster(false).await.unwrap();

    let mut builder = Worker::builder(client.clone())
        .concurrency(8)
        .handle_kind("task", |_: i32, _ctx: JobContext| async { Ok(()) });
    for queue in queues {
        builder = builder.queue(queue);
    }
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(builder.build().run(shutdown.clone()));
    for queue in queues {
        eventually(&format!("{queue} drained"), Duration::from_secs(30), || async {
            client
                .queue(queue)
                .unwrap()
                .stats()
                .await
                .ok()
                .filter(|s| s.completed_total == 51 && s.active == 0)
        })
        .await;
    }
    shutdown.cancel();
    assert_eq!(running.await.unwrap().unwrap().completed, 153);
    assert_eq!(client.queues().await.unwrap(), queues);
    // Every call went straight to its queue's node: none was redirected (each MOVED costs a
    // round trip and a refresh of the client's whole view of the cluster).
    for node in cluster.nodes() {
        let errors = throwaway_redis::cli(node.port(), &["info", "errorstats"]).unwrap();
        assert!(!errors.contains("errorstat_MOVED"), "{errors}");
    }
}

/// A master crash (SIGKILL, no goodbye) under load: its replica takes over, and the worker and
/// the CLI follow the new topology with nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_rides_out_a_crashed_master() {
    lose_a_busy_master(Failure::Crash).await;
}

/// The same with a master that stops answering but keeps its connections open (SIGSTOP).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_rides_out_a_frozen_master() {
    lose_a_busy_master(Failure::Freeze).await;
}

async fn lose_a_busy_master(failure: Failure) {
    const JOBS: u32 = 3_000;
    let started = Instant::now();
    let mut cluster = Cluster::start(3, 1, Duration::from_millis(1_000)).unwrap();
    let probe = QueueClient::connect_with(&ConnectOptions::new(cluster.url(0)), QueueConfig::default())
        .await
        .unwrap();
    let slot = slot_of(&probe, "busy");
    drop(probe);
    let master = cluster.master_of(slot, 0).unwrap().expect("the queue's slot is served");
    // The worker's URL names the node about to fail: it must carry on with the nodes it learnt
    // from it. A new client (the CLI) needs a URL naming a live node.
    let live = (0..cluster.nodes().len()).find(|&i| i != master).unwrap();
    let client = QueueClient::connect_with(&ConnectOptions::new(cluster.url(master)), QueueConfig::default())
        .await
        .unwrap();
    let numbers = run_numbers(&client, "busy", JOBS).await;
    let runs = numbers.runs.clone();
    eventually("a few hundred jobs run", Duration::from_secs(20), || async {
        (runs.total() >= 300).then_some(())
    })
    .await;

    match failure {
        Failure::Crash => cluster.kill(master),
        Failure::Freeze => cluster.freeze(master).unwrap(),
    }
    let failed = Instant::now();
    let ran_before = runs.total();
    let promoted =
        tokio::task::block_in_place(|| cluster.wait_for_new_master(slot, master, live, Duration::from_secs(20)))
            .unwrap();
    eprintln!(
        "{failure:?}: cluster up in {:?}; node {master} failed after {ran_before} runs; node {promoted} took over in {:?}",
        failed - started,
        failed.elapsed()
    );

    // The nodes may still be agreeing on the new topology for a moment after the one asked saw
    // it: a failed attempt is shown, and the CLI must answer within a few seconds.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = tokio::task::block_in_place(|| {
            Command::new(bin("queue-cli"))
                .args(["stats", "busy", "--json", "--redis-url", &cluster.url(live)])
                .output()
                .unwrap()
        });
        let answer = format!(
            "{}{}",
            String::from_utf8_lossy(&stats.stdout),
            String::from_utf8_lossy(&stats.stderr)
        );
        if stats.status.success() && answer.contains("\"busy\"") {
            break;
        }
        eprintln!("queue-cli stats {:?} after the failure: {answer}", failed.elapsed());
        assert!(
            Instant::now() < deadline,
            "queue-cli stats does not answer after the failover"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    expect_drained(
        failed,
        &cluster.url(live),
        "busy",
        JOBS,
        numbers,
        Duration::from_secs(30),
    )
    .await;
}

/// Waiting and cancelling on a cluster: the waiter's blocking read of the finished stream and the
/// cancellation published to a running job's worker both go through the cluster client, for
/// queues on each node. (Schedules firing on a cluster: `cron::schedules_fire_on_a_cluster`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_and_cancelling_work_on_a_cluster() {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    use queue::{Cancellation, Error, JobState};

    let (_cluster, client) = start_cluster().await;
    // One queue per node (see queues_spread_over_a_cluster_and_run_unchanged).
    let queues = ["emails", "images", "reports"];
    for queue in queues {
        let q = client.queue(queue).unwrap();
        q.enqueue(NewJob::new("ok", &1).id("done")).await.unwrap();
        q.enqueue(NewJob::new("long", &1).id("running")).await.unwrap();
        q.enqueue(NewJob::new("ok", &1).id("waiting").delay(Duration::from_secs(600)))
            .await
            .unwrap();
    }
    // Callers wait for every job, each blocked in a read of its queue's stream on that node.
    let mut waiters = Vec::new();
    for queue in queues {
        for id in ["done", "running", "waiting"] {
            let client = client.clone();
            let waiter =
                tokio::spawn(async move { client.queue(queue).unwrap().wait(id, Duration::from_secs(60)).await });
            waiters.push((queue, id, waiter));
        }
    }
    for queue in queues {
        let marks = client.queue(queue).unwrap().keys().all()[22].clone();
        eventually(
            &format!("the waiters of {queue} to wait"),
            Duration::from_secs(10),
            || async {
                use queue::fred::interfaces::HashesInterface;
                let marked: u64 = client.redis().hlen(&marks).await.ok()?;
                (marked == 4).then_some(())
            },
        )
        .await;
    }

    let started = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicUsize::new(0));
    let (on_start, on_stop) = (started.clone(), stopped.clone());
    let mut builder = Worker::builder(client.clone())
        .concurrency(4)
        .handle_kind("ok", |_: i32, _ctx: JobContext| async { Ok(42) })
        .handle_kind("long", move |_: i32, ctx: JobContext| {
            let (on_start, on_stop) = (on_start.clone(), on_stop.clone());
            async move {
                on_start.fetch_add(1, Ordering::SeqCst);
                ctx.cancellation().cancelled().await;
                on_stop.fetch_add(1, Ordering::SeqCst);
                Ok(0)
            }
        });
    for queue in queues {
        builder = builder.queue(queue);
    }
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(builder.build().run(shutdown.clone()));
    eventually("the long jobs to start", Duration::from_secs(20), || async {
        (started.load(Ordering::SeqCst) == queues.len()).then_some(())
    })
    .await;
    for queue in queues {
        let q = client.queue(queue).unwrap();
        // Published on the cluster, heard by the worker subscribed through another node.
        assert_eq!(q.cancel("running").await.unwrap(), Cancellation::Stopped, "{queue}");
        assert_eq!(q.cancel("waiting").await.unwrap(), Cancellation::Removed, "{queue}");
    }
    for (queue, id, waiter) in waiters {
        let outcome = tokio::time::timeout(Duration::from_secs(20), waiter)
            .await
            .expect("the waiter returns long before its timeout")
            .unwrap();
        match id {
            "done" => assert_eq!(outcome.unwrap(), Some(serde_json::json!(42)), "{queue}"),
            _ => assert!(
                matches!(outcome, Err(Error::JobCancelled { .. })),
                "{queue} {id}: {outcome:?}"
            ),
        }
    }
    // Each running handler is stopped by its cancel, not by the shutdown below.
    eventually("the cancelled handlers to stop", Duration::from_secs(20), || async {
        (stopped.load(Ordering::SeqCst) == queues.len()).then_some(())
    })
    .await;
    shutdown.cancel();
    let report = running.await.unwrap().unwrap();
    assert_eq!((report.completed, report.cancelled), (3, 3));
    for queue in queues {
        let q = client.queue(queue).unwrap();
        assert_eq!(q.job("running").await.unwrap().state, JobState::Cancelled, "{queue}");
        assert_eq!(q.stats().await.unwrap().cancelled_total, 2, "{queue}");
    }
}

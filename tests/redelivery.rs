//! A state-changing call delivered twice (its reply lost with the connection after Redis ran
//! it, then re-sent) changes nothing the second time and gets the first answer.
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use queue::{
    fred::{
        interfaces::{ClientLike, HashesInterface, ListInterface},
        types::{ClusterHash, CustomCommand, Value},
    },
    ConnectOptions, FailOutcome, JobContext, NewJob, QueueClient, QueueConfig, RequestId, Worker,
};
use throwaway_redis::proxy::{evalsha, Fault, FaultProxy};

use crate::support::{eventually, lease, spawn_worker, start};

const LEASE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_fetch_delivered_twice_answers_the_same_lease() {
    let q = start().await;
    q.enqueue_numbers(10).await;
    let request = RequestId::new();
    let first = q.queue().pop_with_request(4, LEASE, &request).await.unwrap();
    let again = q.queue().pop_with_request(4, LEASE, &request).await.unwrap();
    let ids = |p: &queue::Popped| {
        p.jobs
            .iter()
            .map(|j| (j.lease.id.clone(), j.lease.token.clone(), j.attempt))
            .collect::<Vec<_>>()
    };
    assert_eq!(first.jobs.len(), 4);
    assert_eq!(ids(&first), ids(&again), "the same jobs, tokens and attempts");
    assert_eq!(first.jobs[0].raw_record, again.jobs[0].raw_record);
    let stats = q.queue().stats().await.unwrap();
    assert_eq!((stats.active, stats.pending), (4, 6), "one batch leased, not two");

    // Once some of its jobs settled, a late re-send answers only the jobs the lease still holds.
    assert_eq!(q.queue().complete([&first.jobs[0].lease]).await.unwrap(), [true]);
    let late = q.queue().pop_with_request(4, LEASE, &request).await.unwrap();
    assert_eq!(ids(&late), ids(&first)[1..]);
}

#[tokio::test]
async fn a_push_delivered_twice_creates_once_and_answers_created_both_times() {
    let q = start().await;
    // The client sends one push; deliver its exact arguments twice under one request id.
    q.enqueue_numbers(1).await;
    let args = ["1", "1", "0|3|f|1000|0|0", "", "j", "envelope"];
    let first = q.run_script_as("queue.push", "req-1", &args).await;
    let again = q.run_script_as("queue.push", "req-1", &args).await;
    assert_eq!(first, vec![Value::Integer(0), Value::Integer(1)], "OK, created");
    assert_eq!(again, first);
    // Another request with the same explicit id is an idempotent enqueue: nothing is created.
    let other = q.run_script_as("queue.push", "req-2", &args).await;
    assert_eq!(other, vec![Value::Integer(0), Value::Integer(0)]);
    let stats = q.queue().stats().await.unwrap();
    assert_eq!(
        (stats.enqueued_total, stats.pending),
        (2, 2),
        "j once, beside the first job"
    );
}

#[tokio::test]
async fn settling_calls_delivered_twice_answer_the_same_and_count_once() {
    let q = start().await;
    for id in ["done", "failed", "released"] {
        q.client
            .queue("q")
            .unwrap()
            .enqueue(NewJob::new("k", &1).id(id).max_attempts(1))
            .await
            .unwrap();
    }
    let jobs = q.queue().pop(3, LEASE).await.unwrap().jobs;
    let token = jobs[0].lease.token.clone();

    for _ in 0..2 {
        assert_eq!(q.queue().complete(&[lease("done", &token)]).await.unwrap(), [true]);
        assert_eq!(
            q.queue().fail(&lease("failed", &token), "boom", false).await.unwrap(),
            FailOutcome::Dead
        );
        assert_eq!(q.queue().release(&[lease("released", &token)]).await.unwrap(), [true]);
    }
    let stats = q.queue().stats().await.unwrap();
    assert_eq!(
        (
            stats.completed_total,
            stats.failed_attempts_total,
            stats.dead_total,
            stats.pending,
            stats.active
        ),
        (1, 1, 1, 1, 0),
        "each call counted once"
    );

    // A replay of the dead job, delivered twice, replays it once.
    let args = ["ids", "failed"];
    let first = q.run_script_as("queue.dead_replay", "replay-1", &args).await;
    let again = q.run_script_as("queue.dead_replay", "replay-1", &args).await;
    assert_eq!(first, vec![Value::Integer(0), Value::Integer(1)]);
    assert_eq!(again, first);
    assert_eq!(q.queue().stats().await.unwrap().pending, 2);
}

#[tokio::test]
async fn remembered_answers_are_bounded_by_count() {
    let q = start().await;
    q.enqueue_numbers(1).await;
    // Each reap call that goes on with a sweep writes, so each one is remembered.
    let limit = 50_000;
    let queue = q.queue();
    let keys = queue.keys();
    let reap = q.client.scripts().get("queue.reap").unwrap();
    q.client.scripts().preload(q.client.redis()).await.unwrap();
    let mut sent = 0;
    while sent < limit + 100 {
        let pipeline = q.client.redis().pipeline();
        for _ in 0..1_000 {
            sent += 1;
            let mut args: Vec<Value> = vec![reap.sha1().into(), (keys.all().len() as i64).into()];
            args.extend(keys.all().iter().map(|k| Value::from(k.as_str())));
            for arg in [format!("r{sent}").as_str(), "1000", "100", "1", "10", "0", "10", "0"] {
                args.push(arg.into());
            }
            let () = pipeline
                .custom(
                    CustomCommand::new_static("EVALSHA", ClusterHash::Offset(2), false),
                    args,
                )
                .await
                .unwrap();
        }
        let replies: Vec<Value> = pipeline.all().await.unwrap();
        assert!(
            replies.iter().all(|r| matches!(r, Value::Array(_))),
            "{:?}",
            replies.first()
        );
    }
    let requests: i64 = q.client.redis().llen(&keys.all()[17]).await.unwrap();
    let replies: i64 = q.client.redis().hlen(&keys.all()[18]).await.unwrap();
    assert_eq!((requests, replies), (limit, limit));
}

/// A client of queue "q"'s Redis whose connection runs through `proxy`, with every script
/// loaded: a cut must hit a call that ran, not one that met NOSCRIPT.
async fn through(proxy: &FaultProxy) -> QueueClient {
    let client = QueueClient::connect_with(&ConnectOptions::new(proxy.url()), QueueConfig::default())
        .await
        .unwrap();
    client.scripts().preload(client.redis()).await.unwrap();
    client
}

fn sha(client: &QueueClient, script: &str) -> String {
    client.scripts().get(script).unwrap().sha1().to_owned()
}

#[tokio::test]
async fn a_worker_whose_fetch_replies_are_lost_runs_every_job_once_and_buries_none() {
    let q = start().await;
    q.client
        .queue("q")
        .unwrap()
        .enqueue_bulk((0..20).map(|i| NewJob::new("k", &i).max_attempts(1)))
        .await
        .unwrap();
    let proxy = q.redis.proxy();
    let client = through(&proxy).await;
    // Two fetches run in Redis and lose their replies with their connections.
    let cut = proxy.inject(evalsha(&sha(&client, "queue.pop")), Fault::CutAfterReply, 2);
    let runs = Arc::new(Mutex::new(Vec::new()));
    let seen = runs.clone();
    let worker = Worker::builder(client)
        .queue("q")
        .concurrency(4)
        .lease(Duration::from_millis(600))
        .reap_interval(Duration::from_millis(50))
        .handle_kind("k", move |n: u32, _ctx: JobContext| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(n);
                Ok(())
            }
        })
        .build();
    let (shutdown, running) = spawn_worker(worker);
    // A batch leased a second time in the dark would settle only once its lease expired and
    // the reaper buried its jobs (one attempt each): settled means nothing is left out.
    let stats = eventually("all 20 jobs settled", Duration::from_secs(20), || async {
        let stats = q.queue().stats().await.ok()?;
        (stats.completed_total + stats.dead_total == 20).then_some(stats)
    })
    .await;
    shutdown.cancel();
    running.await.unwrap().unwrap();
    assert_eq!(cut.fired(), 2, "both fetch replies were lost");
    assert_eq!(
        (stats.completed_total, stats.dead_total, stats.failed_attempts_total),
        (20, 0, 0),
        "nothing leased twice, so nothing expired"
    );
    let mut runs = runs.lock().unwrap().clone();
    runs.sort();
    assert_eq!(runs, (0..20).collect::<Vec<_>>(), "each job ran once");
}

#[tokio::test]
async fn every_state_changing_call_answers_as_first_delivered_when_its_reply_is_lost() {
    let q = start().await;
    let proxy = q.redis.proxy();
    let client = through(&proxy).await;
    let lose_next_reply = |script: &str| proxy.inject(evalsha(&sha(&client, script)), Fault::CutAfterReply, 1);

    let cut = lose_next_reply("queue.push");
    let pushed = client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("k", &1).id("a").max_attempts(1))
        .await
        .unwrap();
    assert_eq!(
        (cut.fired(), pushed.created),
        (1, true),
        "created, as the first delivery answered"
    );
    for id in ["b", "c", "d"] {
        client
            .queue("q")
            .unwrap()
            .enqueue(NewJob::new("k", &1).id(id).max_attempts(1))
            .await
            .unwrap();
    }

    let cut = lose_next_reply("queue.pop");
    let jobs = client.queue("q").unwrap().pop(4, LEASE).await.unwrap().jobs;
    assert_eq!((cut.fired(), jobs.len()), (1, 4));
    let token = jobs[0].lease.token.as_str();

    let cut = lose_next_reply("queue.complete");
    assert_eq!(
        client.queue("q").unwrap().complete(&[lease("a", token)]).await.unwrap(),
        [true]
    );
    assert_eq!(cut.fired(), 1);

    let cut = lose_next_reply("queue.fail");
    assert_eq!(
        client
            .queue("q")
            .unwrap()
            .fail(&lease("b", token), "boom", false)
            .await
            .unwrap(),
        FailOutcome::Dead
    );
    assert_eq!(cut.fired(), 1);

    let cut = lose_next_reply("queue.release");
    assert_eq!(
        client.queue("q").unwrap().release(&[lease("c", token)]).await.unwrap(),
        [true]
    );
    assert_eq!(cut.fired(), 1);

    let cut = lose_next_reply("queue.dead_replay");
    assert_eq!(client.queue("q").unwrap().dead_replay(&["b"]).await.unwrap(), 1);
    assert_eq!(cut.fired(), 1);

    let jobs = client.queue("q").unwrap().pop(2, LEASE).await.unwrap().jobs;
    for job in &jobs {
        client
            .queue("q")
            .unwrap()
            .fail(&job.lease, "again", true)
            .await
            .unwrap();
    }
    let cut = lose_next_reply("queue.dead_purge");
    assert_eq!(client.queue("q").unwrap().dead_purge().await.unwrap(), 2);
    assert_eq!(cut.fired(), 1);

    let stats = q.queue().stats().await.unwrap();
    assert_eq!(
        (
            stats.enqueued_total,
            stats.completed_total,
            stats.failed_attempts_total,
            stats.dead_total,
            stats.active,
            stats.pending,
            stats.dead
        ),
        (4, 1, 3, 3, 1, 0, 0),
        "every call counted once: a complete, three failures, one job still leased"
    );
}

#[tokio::test]
async fn a_sweep_whose_reply_is_lost_answers_what_it_took_back() {
    let q = start().await;
    q.enqueue_numbers(3).await;
    q.queue().pop(3, Duration::from_millis(30)).await.unwrap();
    let proxy = q.redis.proxy();
    let client = through(&proxy).await;
    // Time itself must pass for the lease to end; no event announces it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cut = proxy.inject(evalsha(&sha(&client, "queue.reap")), Fault::CutAfterReply, 1);
    assert_eq!(
        client
            .queue("q")
            .unwrap()
            .reap(Duration::from_secs(60), 100)
            .await
            .unwrap(),
        Some((3, 0))
    );
    assert_eq!(cut.fired(), 1);
    assert_eq!(
        q.queue().stats().await.unwrap().failed_attempts_total,
        3,
        "counted once"
    );
}

#[tokio::test]
async fn a_fetch_delivered_again_late_gets_a_full_lease_for_what_it_still_holds() {
    let q = start().await;
    q.enqueue_numbers(1).await;
    let request = RequestId::new();
    let lease = Duration::from_millis(300);
    let first = q.queue().pop_with_request(1, lease, &request).await.unwrap();
    // The re-send arrives after the first delivery's lease ran out, before a sweep.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let again = q.queue().pop_with_request(1, lease, &request).await.unwrap();
    assert_eq!(again.jobs.len(), 1, "the lease still holds its job");
    assert!(again.now_ms >= first.now_ms + 400, "the answer's time is the re-send's");
    let deadline = q
        .client
        .queue("q")
        .unwrap()
        .job(&again.jobs[0].lease.id)
        .await
        .unwrap()
        .state_since_ms
        .unwrap();
    assert!(deadline >= again.now_ms + 300, "a full lease from the re-send");
    // So a sweep right now does not hand the job to a second worker.
    assert_eq!(
        q.queue().reap(Duration::from_millis(1), 100).await.unwrap(),
        Some((0, 0))
    );
}

#[tokio::test]
async fn a_bulk_answer_is_remembered_in_a_few_bytes_and_answered_in_full() {
    let q = start().await;
    q.enqueue_numbers(1).await;
    let mut args = vec!["1000".to_owned(), "1000".into(), "0|3|f|1000|0|0".into(), String::new()];
    for i in 0..1000 {
        args.push(format!("big-{i}"));
        args.push("envelope".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = q.run_script_as("queue.push", "bulk-1", &args).await;
    let again = q.run_script_as("queue.push", "bulk-1", &args).await;
    assert_eq!(first.len(), 1001);
    assert_eq!(again, first, "the whole answer, again");
    let replies = &q.queue().keys().all()[18].clone();
    let stored: i64 = q.client.redis().hstrlen(replies, "bulk-1").await.unwrap();
    assert!(stored < 32, "1,000 equal statuses kept in {stored} bytes");
}

//! A state-changing call delivered twice (its reply lost with the connection after Redis ran
//! it, then re-sent) changes nothing the second time and gets the first answer.
use std::time::Duration;

use queue::{
    fred::{
        interfaces::{ClientLike, HashesInterface, ListInterface},
        types::{ClusterHash, CustomCommand, Value},
    },
    FailOutcome, NewJob, RequestId,
};

use crate::support::start;

const LEASE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_fetch_delivered_twice_answers_the_same_lease() {
    let q = start().await;
    q.enqueue_numbers(10).await;
    let request = RequestId::new();
    let first = q.client.pop_with_request("q", 4, LEASE, &request).await.unwrap();
    let again = q.client.pop_with_request("q", 4, LEASE, &request).await.unwrap();
    let ids = |p: &queue::Popped| {
        p.jobs
            .iter()
            .map(|j| (j.id.clone(), j.token.clone(), j.attempt))
            .collect::<Vec<_>>()
    };
    assert_eq!(first.jobs.len(), 4);
    assert_eq!(ids(&first), ids(&again), "the same jobs, tokens and attempts");
    assert_eq!(first.jobs[0].raw_envelope, again.jobs[0].raw_envelope);
    let stats = q.client.stats("q").await.unwrap();
    assert_eq!((stats.active, stats.pending), (4, 6), "one batch leased, not two");

    // Once some of its jobs settled, a late re-send answers only the jobs the lease still holds.
    let settled = (first.jobs[0].id.as_str(), first.jobs[0].token.as_str());
    assert_eq!(q.client.complete("q", &[settled]).await.unwrap(), [true]);
    let late = q.client.pop_with_request("q", 4, LEASE, &request).await.unwrap();
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
    let stats = q.client.stats("q").await.unwrap();
    assert_eq!((stats.enqueued, stats.pending), (2, 2), "j once, beside the first job");
}

#[tokio::test]
async fn settling_calls_delivered_twice_answer_the_same_and_count_once() {
    let q = start().await;
    for id in ["done", "failed", "released"] {
        q.client
            .enqueue("q", NewJob::new("k", &1).unwrap().id(id).max_attempts(1))
            .await
            .unwrap();
    }
    let jobs = q.client.pop("q", 3, LEASE).await.unwrap().jobs;
    let token = jobs[0].token.clone();

    for _ in 0..2 {
        assert_eq!(q.client.complete("q", &[("done", &token)]).await.unwrap(), [true]);
        assert_eq!(
            q.client.fail("q", "failed", &token, "boom", false).await.unwrap(),
            FailOutcome::Dead
        );
        assert_eq!(q.client.release("q", &[("released", &token)]).await.unwrap(), [true]);
    }
    let stats = q.client.stats("q").await.unwrap();
    assert_eq!(
        (
            stats.processed,
            stats.failed,
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
    assert_eq!(q.client.stats("q").await.unwrap().pending, 2);
}

#[tokio::test]
async fn remembered_answers_are_bounded_by_count() {
    let q = start().await;
    q.enqueue_numbers(1).await;
    // Each reap call that goes on with a sweep writes, so each one is remembered.
    let limit = 50_000;
    let keys = q.client.keys("q").unwrap();
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

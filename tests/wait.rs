//! Waiting for a job (`lua/wait.lua` and the finished stream): woken by the script that
//! finishes the job, at once when it has finished already, no polling.
use std::time::Duration;

use queue::{
    fred::interfaces::{HashesInterface, KeysInterface},
    Error, JobContext, JobError, NewJob, Worker,
};
use serde_json::json;

use crate::support::{eventually, queue_cli, spawn_worker, start, TestQueue};

/// How many clients Redis has blocked in a blocking command (`blocked_clients` in INFO).
pub(crate) async fn blocked_clients(client: &queue::QueueClient) -> u32 {
    use queue::fred::{interfaces::ClientLike, types::InfoKind};
    let info: String = client.redis().info(Some(InfoKind::Clients)).await.unwrap();
    let field = queue::low_level::info_field(&info, "blocked_clients");
    field.parse().unwrap()
}

/// A caller waiting for a job, as spawned by [`blocked_waiters`].
pub(crate) type Waiter = tokio::task::JoinHandle<Result<Option<serde_json::Value>, Error>>;

/// Starts a caller waiting up to a minute for each of `ids` (jobs of queue "q"), and returns once
/// all of them are blocked in Redis: what happens next is what wakes them.
pub(crate) async fn blocked_waiters(q: &TestQueue, ids: &[&'static str]) -> Vec<Waiter> {
    let before = blocked_clients(&q.client).await;
    let waiters = ids
        .iter()
        .map(|&id| {
            let client = q.client.clone();
            tokio::spawn(async move { client.queue("q").unwrap().wait(id, Duration::from_secs(60)).await })
        })
        .collect();
    eventually("the waiters to block", Duration::from_secs(10), || async {
        (blocked_clients(&q.client).await >= before + ids.len() as u32).then_some(())
    })
    .await;
    waiters
}

/// Asserts that each waiter was told its job was deleted, well within its minute of waiting.
pub(crate) async fn told_deleted(waiters: Vec<Waiter>) {
    for waiter in waiters {
        let outcome = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("the waiter returns long before its timeout")
            .unwrap();
        assert!(matches!(outcome, Err(Error::JobDeleted { .. })), "{outcome:?}");
    }
}

#[tokio::test]
async fn wait_returns_the_result_as_soon_as_the_job_completes_and_leaves_nothing_behind() {
    let q = start().await;
    q.queue().enqueue(NewJob::new("k", &1).id("j")).await.unwrap();
    let client = q.client.clone();
    let waiting = tokio::spawn(async move { client.queue("q").unwrap().wait("j", Duration::from_secs(60)).await });
    // The waiter blocks in Redis (XREAD), it does not poll.
    eventually("the waiter to block", Duration::from_secs(10), || async {
        (blocked_clients(&q.client).await >= 1).then_some(())
    })
    .await;
    let leased = q.pop_one().await;
    q.queue()
        .complete_with_results(std::slice::from_ref(&leased.lease), &[(leased.id(), b"{\"ok\":true}")])
        .await
        .unwrap();
    // Far sooner than the 60 s it would wait: the completion woke it.
    let result = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result.unwrap(), Some(json!({"ok": true})));
    let keys = q.queue().keys().clone();
    let waiters: i64 = q.client.redis().hlen(&keys.all()[22]).await.unwrap();
    assert_eq!(waiters, 1, "only the hash's pin: the mark went with the notice");
    let ttl: i64 = q.client.redis().pttl(keys.finished()).await.unwrap();
    assert!(ttl > 0, "the finished stream expires when idle: {ttl}");
}

#[tokio::test]
async fn waiting_for_a_finished_job_answers_at_once() {
    let q = start().await;
    q.queue().enqueue(NewJob::new("k", &1).id("done")).await.unwrap();
    let leased = q.pop_one().await;
    q.queue().complete(std::slice::from_ref(&leased.lease)).await.unwrap();
    q.queue()
        .enqueue(NewJob::new("k", &1).id("gone").max_attempts(1))
        .await
        .unwrap();
    let leased = q.pop_one().await;
    q.queue().fail(&leased.lease, "boom", false).await.unwrap();
    // A timeout of zero still gets the answer: nothing needs waiting for.
    assert_eq!(q.queue().wait("done", Duration::ZERO).await.unwrap(), None);
    let error = q.queue().wait("gone", Duration::ZERO).await.unwrap_err();
    assert!(
        matches!(&error, Error::JobDied { error, .. } if error == "boom"),
        "{error:?}"
    );
    assert!(matches!(
        q.queue().wait("nope", Duration::ZERO).await,
        Err(Error::JobNotFound { .. })
    ));
}

#[tokio::test]
async fn a_waiter_learns_that_the_job_died_or_was_cancelled_and_gives_up_at_its_timeout() {
    let q = start().await;
    for id in ["dies", "cancelled"] {
        q.queue().enqueue(NewJob::new(id, &1).id(id)).await.unwrap();
    }
    let slow = NewJob::new("slow", &1).id("slow").delay(Duration::from_secs(600));
    q.queue().enqueue(slow).await.unwrap();
    let wait = |id: &'static str, timeout: Duration| {
        let client = q.client.clone();
        tokio::spawn(async move { client.queue("q").unwrap().wait(id, timeout).await })
    };
    let dies = wait("dies", Duration::from_secs(60));
    let cancelled = wait("cancelled", Duration::from_secs(60));
    let slow = wait("slow", Duration::from_millis(300));
    q.queue().cancel("cancelled").await.unwrap();
    let cancelled = tokio::time::timeout(Duration::from_secs(10), cancelled)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(cancelled, Err(Error::JobCancelled { .. })), "{cancelled:?}");
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .handle_kind("dies", |_: u32, _ctx: JobContext| async move {
            Err::<(), _>(JobError::permanent("no such account"))
        })
        .build();
    let (shutdown, running) = spawn_worker(worker);
    let dies = tokio::time::timeout(Duration::from_secs(10), dies)
        .await
        .unwrap()
        .unwrap();
    shutdown.cancel();
    running.await.unwrap().unwrap();
    let error = dies.unwrap_err();
    assert_eq!(error.to_string(), r#"job "dies" of queue "q" died: no such account"#);
    let slow = slow.await.unwrap().unwrap_err();
    assert_eq!(
        slow.to_string(),
        r#"job "slow" of queue "q" did not finish within 300ms"#
    );
}

#[tokio::test]
async fn queue_cli_wait_prints_the_result_or_one_line_of_error() {
    let q = start().await;
    let url = q.redis.url();
    q.queue().enqueue(NewJob::new("k", &1).id("ok")).await.unwrap();
    q.queue()
        .enqueue(NewJob::new("k", &1).id("bad").max_attempts(1))
        .await
        .unwrap();
    let waiting = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || queue_cli(&url, &["wait", "q", "ok", "--timeout", "60s"]))
    };
    eventually("the CLI to block", Duration::from_secs(20), || async {
        (blocked_clients(&q.client).await >= 1).then_some(())
    })
    .await;
    let leased = q.queue().pop(2, Duration::from_secs(30)).await.unwrap().jobs;
    let (ok, bad) = (&leased[0], &leased[1]);
    q.queue()
        .complete_with_results(std::slice::from_ref(&ok.lease), &[(ok.id(), b"[1,2]")])
        .await
        .unwrap();
    q.queue().fail(&bad.lease, "bad input", false).await.unwrap();
    let run = waiting.await.unwrap();
    assert_eq!((run.code, run.stdout.as_str()), (Some(0), "[1,2]\n"), "{}", run.stderr);
    let run = queue_cli(&url, &["wait", "q", "bad"]);
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stderr, "error: job \"bad\" of queue \"q\" died: bad input\n");
    let run = queue_cli(&url, &["wait", "q", "bad", "--timeout", "soon"]);
    assert_eq!(
        run.code,
        Some(2),
        "a malformed duration is a usage error: {}",
        run.stderr
    );
}

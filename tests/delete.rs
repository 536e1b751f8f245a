//! `lua/delete.lua`: one job removed from any waiting or finished state; a running one refused.
use std::time::Duration;

use queue::{fred::types::Value, Backoff, Error, JobState, NewJob};

use crate::support::{queue_cli, start};

#[tokio::test]
async fn a_job_is_deleted_from_each_waiting_and_finished_state() {
    let q = start().await;
    let never = Backoff::fixed(Duration::from_secs(3600));
    let job = |id: &str| NewJob::new("k", &id).id(id).backoff(never);
    for id in ["completed", "retrying", "dead", "active"] {
        q.queue().enqueue(job(id)).await.unwrap();
    }
    let leased = q.queue().pop(4, Duration::from_secs(30)).await.unwrap().jobs;
    let lease = |id: &str| leased.iter().find(|job| job.id() == id).unwrap().lease.clone();
    q.queue().complete([&lease("completed")]).await.unwrap();
    q.queue().fail(&lease("retrying"), "later", false).await.unwrap();
    q.queue().fail(&lease("dead"), "never", true).await.unwrap();
    q.queue()
        .enqueue(job("scheduled").delay(Duration::from_secs(60)))
        .await
        .unwrap();
    // Pending both in the default-priority list and in the sorted set of other priorities.
    for id in ["p1", "pending", "p2"] {
        q.queue().enqueue(job(id)).await.unwrap();
    }
    q.queue().enqueue(job("urgent").priority(7)).await.unwrap();

    for (id, state) in [
        ("pending", JobState::Pending),
        ("urgent", JobState::Pending),
        ("scheduled", JobState::Scheduled),
        ("retrying", JobState::Retrying),
        ("dead", JobState::Dead),
        ("completed", JobState::Completed),
    ] {
        assert_eq!(q.queue().delete_job(id).await.unwrap(), state, "{id}");
        assert!(
            matches!(q.queue().job(id).await, Err(Error::JobNotFound { .. })),
            "{id} is forgotten"
        );
    }
    let stats = q.queue().stats().await.unwrap();
    assert_eq!(
        (
            stats.pending,
            stats.scheduled,
            stats.retrying,
            stats.active,
            stats.dead,
            stats.completed
        ),
        (2, 0, 0, 1, 0, 0)
    );
    // The other pending jobs keep their order, and nothing deleted runs.
    assert_eq!(q.pop_ids(10).await, ["p1", "p2"]);
    // Every hash keyed by id forgot the deleted jobs: only the held and popped ones remain.
    use queue::fred::interfaces::HashesInterface;
    let keys = q.queue().keys().clone();
    let jobs: Vec<String> = q.client.redis().hkeys(&keys.all()[6]).await.unwrap();
    let mut jobs: Vec<&str> = jobs.iter().map(String::as_str).filter(|id| !id.is_empty()).collect();
    jobs.sort();
    assert_eq!(jobs, ["active", "p1", "p2"]);
    for hash in [7, 9, 10, 11] {
        let left: Vec<String> = q.client.redis().hkeys(&keys.all()[hash]).await.unwrap();
        assert!(
            left.iter()
                .all(|id| id.is_empty() || ["active", "p1", "p2"].contains(&id.as_str())),
            "{}: {left:?}",
            keys.all()[hash]
        );
    }
}

#[tokio::test]
async fn a_running_job_is_refused_and_kept() {
    let q = start().await;
    q.queue().enqueue(NewJob::new("k", &1).id("busy")).await.unwrap();
    let leased = q.pop_one().await;
    let error = q.queue().delete_job("busy").await.unwrap_err();
    assert!(matches!(error, Error::JobActive { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "job \"busy\" in queue \"q\" is running (active): it can be deleted once its attempt ends"
    );
    assert_eq!(q.queue().complete([&leased.lease]).await.unwrap(), [true]);
    assert_eq!(q.queue().delete_job("busy").await.unwrap(), JobState::Completed);
}

#[tokio::test]
async fn unknown_ids_and_queues_are_named_and_a_resent_delete_answers_the_same() {
    let q = start().await;
    q.queue().enqueue(NewJob::new("k", &1).id("x")).await.unwrap();
    for id in ["nope", ""] {
        assert!(matches!(
            q.queue().delete_job(id).await,
            Err(Error::JobNotFound { id: named, .. }) if named == id
        ));
    }
    assert!(matches!(
        q.client.queue("other").unwrap().delete_job("x").await,
        Err(Error::UnknownQueue(_))
    ));
    let first = q.run_script_as("queue.delete", "delete-1", &["x"]).await;
    let again = q.run_script_as("queue.delete", "delete-1", &["x"]).await;
    assert_eq!(
        first,
        vec![Value::Integer(0), Value::from("pending"), Value::Integer(1)]
    );
    assert_eq!(again, first, "the first answer, not 'not found'");
    assert_eq!(q.run_script("queue.delete", &["x"]).await, vec![Value::Integer(2)]);
}

#[tokio::test]
async fn queue_cli_delete_says_what_it_removed_or_why_not() {
    let q = start().await;
    let url = q.redis.url();
    q.queue().enqueue(NewJob::new("k", &1).id("a")).await.unwrap();
    q.queue().enqueue(NewJob::new("k", &1).id("b")).await.unwrap();
    let cli = |args: &[&str]| {
        let run = queue_cli(&url, args);
        (run.code, run.stdout, run.stderr)
    };
    assert_eq!(
        cli(&["delete", "q", "a"]),
        (Some(0), "deleted pending job a from q\n".into(), "".into())
    );
    let (code, stdout, _) = cli(&["delete", "q", "b", "--json"]);
    assert_eq!(code, Some(0));
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"queue": "q", "id": "b", "deleted_from": "pending"})
    );
    assert_eq!(
        cli(&["delete", "q", "a"]),
        (Some(1), "".into(), "error: job \"a\" not found in queue \"q\"\n".into())
    );
    q.queue().enqueue(NewJob::new("k", &1).id("c")).await.unwrap();
    q.pop_one().await;
    let (code, _, stderr) = cli(&["delete", "q", "c"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "error: job \"c\" in queue \"q\" is running (active): it can be deleted once its attempt ends\n"
    );
}

#[tokio::test]
async fn a_caller_waiting_for_a_deleted_job_is_told_at_once() {
    let q = start().await;
    q.queue().enqueue(NewJob::new("k", &1).id("pending")).await.unwrap();
    q.queue()
        .enqueue(NewJob::new("k", &1).id("later").delay(Duration::from_secs(600)))
        .await
        .unwrap();
    let waiters = crate::wait::blocked_waiters(&q, &["pending", "later"]).await;
    for id in ["pending", "later"] {
        q.queue().delete_job(id).await.unwrap();
    }
    crate::wait::told_deleted(waiters).await;
    // The CLI says so in one line, and fails.
    q.queue().enqueue(NewJob::new("k", &1).id("cli")).await.unwrap();
    let url = q.redis.url();
    let waiting = tokio::task::spawn_blocking(move || queue_cli(&url, &["wait", "q", "cli", "--timeout", "60s"]));
    // Marked as waited for: the deletion's notice reaches it even if its read starts later.
    let waiters = q.queue().keys().all()[22].clone();
    crate::support::eventually("the CLI to wait", Duration::from_secs(20), || async {
        use queue::fred::interfaces::HashesInterface;
        let marked: bool = q.client.redis().hexists(&waiters, "cli").await.unwrap();
        marked.then_some(())
    })
    .await;
    q.queue().delete_job("cli").await.unwrap();
    let run = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr,
        "error: job \"cli\" of queue \"q\" was deleted before it finished\n"
    );
}

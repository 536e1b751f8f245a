//! Unique keys and debounce (`lua/push.lua`): a duplicate writes nothing and answers the
//! holder's id; a debounce replaces the waiting job.
use std::{process::Command, time::Duration};

use queue::{JobState, NewJob, QueueConfig, Retention, Unique};
use serde_json::json;

use crate::support::{bin, eventually, run_with_deadline, start, start_with};

#[tokio::test]
async fn a_key_held_for_a_time_refuses_duplicates_until_then_whatever_the_job_does() {
    let q = start().await;
    let unique = |n: i32| NewJob::new("k", &n).unique("sync:1", Unique::For(Duration::from_millis(300)));
    let first = q.queue().enqueue(unique(1)).await.unwrap();
    assert!(first.created && !first.duplicate);
    let second = q.queue().enqueue(unique(2)).await.unwrap();
    assert_eq!(
        (second.id.as_str(), second.created, second.duplicate),
        (first.id.as_str(), false, true)
    );
    // The job finishing does not release the key: it is held for its time.
    let leased = q.pop_one().await;
    q.queue().complete(std::slice::from_ref(&leased.lease)).await.unwrap();
    assert!(q.queue().enqueue(unique(3)).await.unwrap().duplicate);
    let stats = q.queue().stats().await.unwrap();
    assert_eq!(stats.enqueued_total, 1);
    // Each refused enqueue writes nothing, so polling with them is harmless.
    let third = eventually("the key's time to pass", Duration::from_secs(5), || async {
        Some(q.queue().enqueue(unique(4)).await.unwrap()).filter(|e| e.created)
    })
    .await;
    assert!(third.id != first.id);
    // Another key is independent, and so is the job id.
    let other = NewJob::new("k", &5).unique("sync:2", Unique::For(Duration::from_secs(60)));
    assert!(!q.queue().enqueue(other.id(first.id.clone())).await.unwrap().created);
}

#[tokio::test]
async fn a_key_held_until_the_job_finishes_is_released_by_completion_and_by_death() {
    let q = start().await;
    let unique = |n: i32| {
        NewJob::new("k", &n)
            .max_attempts(1)
            .unique("import:7", Unique::UntilFinished)
    };
    let first = q.queue().enqueue(unique(1)).await.unwrap();
    assert!(q.queue().enqueue(unique(2)).await.unwrap().duplicate);
    // Running still holds it.
    let leased = q.pop_one().await;
    assert_eq!(q.queue().enqueue(unique(3)).await.unwrap().id, first.id);
    q.queue().complete(std::slice::from_ref(&leased.lease)).await.unwrap();
    let second = q.queue().enqueue(unique(4)).await.unwrap();
    assert!(second.created, "completion released the key");
    let leased = q.pop_one().await;
    q.queue().fail(&leased.lease, "boom", false).await.unwrap();
    q.job_in_state(&second.id, JobState::Dead).await;
    assert!(
        q.queue().enqueue(unique(5)).await.unwrap().created,
        "death released the key"
    );
}

#[tokio::test]
async fn a_bulk_takes_the_first_job_of_a_key_and_answers_its_id_for_the_others() {
    let q = start().await;
    let jobs = vec![
        NewJob::new("k", &1).unique("a", Unique::UntilFinished),
        NewJob::new("k", &2),
        NewJob::new("k", &3).unique("a", Unique::UntilFinished),
    ];
    let added = q.queue().enqueue_bulk(jobs).await.unwrap();
    assert!(added[0].created && added[1].created);
    assert_eq!((added[2].id.as_str(), added[2].duplicate), (added[0].id.as_str(), true));
    assert_eq!(q.queue().stats().await.unwrap().pending, 2);
}

#[tokio::test]
async fn a_re_sent_push_of_a_unique_job_answers_the_same() {
    let q = start().await;
    // push ARGV: count, then a run: n, props with "|<mode><ms>|<key>", when, id, envelope.
    let args = ["1", "1", "0|3|f|0|0|0|c0|key", "", "a", "envelope-a"];
    let first = q.run_script_as("queue.push", "request-1", &args).await;
    let again = q.run_script_as("queue.push", "request-1", &args).await;
    assert_eq!(first, again);
    assert_eq!(first[1], queue::fred::types::Value::Integer(1));
    // A new push of the key, as another request: the holder's id.
    let args = ["1", "1", "0|3|f|0|0|0|c0|key", "", "b", "envelope-b"];
    let duplicate = q.run_script_as("queue.push", "request-2", &args).await;
    assert_eq!(duplicate[1].as_string().as_deref(), Some("a"));
    // A unique key names one job: a run of two is refused, and nothing is written.
    let args = ["2", "2", "0|3|f|0|0|0|c0|other", "", "c", "e", "d", "e"];
    let refused = q.run_script("queue.push", &args).await;
    assert!(refused[1].as_string().unwrap().contains("a run of one"), "{refused:?}");
    assert_eq!(q.pop_ids(10).await, ["a"]);
}

#[tokio::test]
async fn a_debounce_replaces_the_waiting_job_and_pushes_its_run_time_back() {
    let q = start().await;
    let debounced = |n: i32| NewJob::new("k", &json!({"n": n})).debounce("user:9", Duration::from_secs(60));
    let first = q.queue().enqueue(debounced(1)).await.unwrap();
    let before = q.queue().job(&first.id).await.unwrap();
    let second = q.queue().enqueue(debounced(2)).await.unwrap();
    assert!(second.created && !second.duplicate);
    assert!(matches!(
        q.queue().job(&first.id).await,
        Err(queue::Error::JobNotFound { .. })
    ));
    let after = q.queue().job(&second.id).await.unwrap();
    assert_eq!(after.state, JobState::Scheduled);
    assert_eq!(after.envelope.payload_json().unwrap(), json!({"n": 2}));
    assert!(after.run_at_ms >= before.run_at_ms, "{after:?} {before:?}");
    let stats = q.queue().stats().await.unwrap();
    assert_eq!((stats.scheduled, stats.enqueued_total), (1, 1));

    // Once the job has started, the next enqueue of the key makes a new job.
    let short = NewJob::new("k", &json!({"n": 3})).debounce("user:8", Duration::from_millis(1));
    let running = q.queue().enqueue(short).await.unwrap();
    // Pop promotes the job once its millisecond has passed.
    let leased = eventually("the debounced job to start", Duration::from_secs(5), || async {
        q.pop_ids(1).await.pop()
    })
    .await;
    assert_eq!(leased, running.id);
    let next = NewJob::new("k", &json!({"n": 4})).debounce("user:8", Duration::from_secs(60));
    let next = q.queue().enqueue(next).await.unwrap();
    assert!(next.created && next.id != running.id);
    assert_eq!(q.queue().job(&running.id).await.unwrap().state, JobState::Active);
}

fn cli(url: &str, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(bin("queue-cli"));
    command
        .args(args)
        .env("QUEUE_REDIS_URL", url)
        .env_remove("QUEUE_PREFIX");
    run_with_deadline(&mut command, "", Duration::from_secs(60))
}

#[tokio::test]
async fn the_cli_prints_the_holders_id_for_a_duplicate_and_says_so_in_json() {
    let q = start().await;
    let url = q.redis.url();
    let enqueue = |payload: &str, extra: &[&str]| {
        let mut args = vec!["enqueue", "q", payload, "--unique-key", "report:1"];
        args.extend_from_slice(extra);
        cli(&url, &args)
    };
    let first = enqueue("{}", &["--unique-for", "10m"]);
    assert!(first.status.success());
    let id = String::from_utf8(first.stdout).unwrap().trim().to_owned();
    let again = enqueue(r#"{"n": 2}"#, &["--unique-for", "10m"]);
    assert!(again.status.success(), "a duplicate is not an error");
    assert_eq!(String::from_utf8(again.stdout).unwrap().trim(), id);
    assert!(String::from_utf8(again.stderr)
        .unwrap()
        .contains("holds unique key \"report:1\""));
    let json: serde_json::Value =
        serde_json::from_slice(&enqueue("{}", &["--unique-for", "10m", "--json"]).stdout).unwrap();
    assert_eq!(json, json!({"id": id, "created": false, "duplicate": true}));
    assert_eq!(q.queue().stats().await.unwrap().enqueued_total, 1);

    let debounce = cli(
        &url,
        &["enqueue", "q", "{}", "--unique-key", "d", "--debounce", "30s", "--json"],
    );
    let json: serde_json::Value = serde_json::from_slice(&debounce.stdout).unwrap();
    assert_eq!(json["created"], true);
    let without_key = cli(&url, &["enqueue", "q", "{}", "--debounce", "30s"]);
    assert_eq!(without_key.status.code(), Some(2), "a debounce needs a unique key");
}

#[tokio::test]
async fn keys_are_forgotten_with_their_jobs_and_once_their_time_is_up() {
    use queue::fred::interfaces::{HashesInterface, SortedSetsInterface};
    // Completed jobs are not retained: a job's key goes with the job.
    let q = start_with(QueueConfig {
        completed: Retention {
            max_count: 0,
            max_age: Duration::ZERO,
        },
        ..QueueConfig::default()
    })
    .await;
    let until_done = NewJob::new("k", &1).unique("a", Unique::UntilFinished);
    q.queue().enqueue(until_done).await.unwrap();
    let leased = q.pop_one().await;
    q.queue().complete(std::slice::from_ref(&leased.lease)).await.unwrap();
    let unique: u64 = q.client.redis().hlen("{queue:q}:unique").await.unwrap();
    assert_eq!(unique, 0, "the completed job's key is forgotten with it");

    // A key held for a time is forgotten by a later unique push once its time is up.
    let briefly = NewJob::new("k", &2).unique("b", Unique::For(Duration::from_millis(1)));
    q.queue().enqueue(briefly).await.unwrap();
    let pushes = std::sync::atomic::AtomicU32::new(0);
    eventually(
        "b's time to pass, as a later push sees it",
        Duration::from_secs(5),
        || async {
            // A new key each time: only a push that takes a key forgets expired ones.
            let n = pushes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let later = NewJob::new("k", &3).unique(format!("c{n}"), Unique::For(Duration::from_secs(60)));
            q.queue().enqueue(later).await.unwrap();
            let b: Option<String> = q.client.redis().hget("{queue:q}:unique", "k:b").await.unwrap();
            b.is_none().then_some(())
        },
    )
    .await;
    let b: Option<f64> = q.client.redis().zscore("{queue:q}:unique:expiry", "b").await.unwrap();
    assert_eq!(b, None, "b's time is forgotten too");
}

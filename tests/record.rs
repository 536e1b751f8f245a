//! The job record as stored in the jobs hash: compact for new jobs, and records written by
//! earlier versions (the whole envelope as named MessagePack) still run.
use std::{
    sync::atomic::{AtomicU32, Ordering},
    sync::Arc,
    time::Duration,
};

use queue::{
    fred::interfaces::{HashesInterface, ListInterface},
    Backoff, Envelope, JobContext, JobError, JobState, NewJob, Worker,
};

use crate::support::{queue_cli, spawn_worker, start};

/// A record as versions before the compact form wrote it (`created|props|` then
/// `Envelope::to_msgpack`), for job "old-1" of queue "q": kind "task", payload `{"i":1}`,
/// priority 0, 1 attempt, exponential backoff 1 s to 1 h with jitter, a 60 s timeout.
const OLD_RECORD_HEX: &str = "\
    313739353337303430303030307c307c317c657c313030307c333630303030307c317c\
    88a26964a56f6c642d31a57175657565a171a46b696e64a47461736ba77061796c6f6164c40481a16901a870\
    72696f7269747900ac6d61785f617474656d70747301a76261636b6f666684a46b696e64ab6578706f6e656e\
    7469616ca7626173655f6d73cd03e8a66361705f6d73ce0036ee80a66a6974746572c3aa74696d656f75745f\
    6d73cdea60";

fn old_envelope() -> Envelope {
    Envelope {
        id: "old-1".into(),
        queue: "q".into(),
        kind: "task".into(),
        payload: rmp_serde::to_vec_named(&serde_json::json!({"i": 1})).unwrap(),
        priority: 0,
        max_attempts: 1,
        backoff: Backoff::default(),
        timeout_ms: Some(60_000),
        trace_parent: None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    let text: String = text.split_whitespace().collect();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn the_old_record_fixture_is_what_earlier_versions_wrote() {
    let mut record = b"1795370400000|0|1|e|1000|3600000|1|".to_vec();
    record.extend(old_envelope().to_msgpack());
    assert_eq!(hex(&record), hex(&unhex(OLD_RECORD_HEX)));
}

#[tokio::test]
async fn an_old_record_is_fetched_run_shown_dead_lettered_and_retried() {
    let q = start().await;
    let url = q.redis.url();
    // A job enqueued today makes the queue known; the old one is written as an earlier version
    // left it: its record, and its id at the end of the default pending list.
    q.queue()
        .enqueue(NewJob::new("task", &serde_json::json!({"i": 0})).id("new-1"))
        .await
        .unwrap();
    let queue = q.queue();
    let keys = queue.keys().all();
    let (jobs, pending_default) = (keys[6].clone(), keys[16].clone());
    let _: i64 = q
        .client
        .redis()
        .hset(&jobs, ("old-1", unhex(OLD_RECORD_HEX)))
        .await
        .unwrap();
    let _: i64 = q.client.redis().rpush(&pending_default, "old-1").await.unwrap();

    let shown = q.queue().job("old-1").await.unwrap();
    assert_eq!((shown.envelope, shown.state), (old_envelope(), JobState::Pending));
    assert_eq!(shown.created_at_ms, 1_795_370_400_000);
    let cli = queue_cli(&url, &["job", "q", "old-1", "--json"]);
    assert_eq!(cli.code, Some(0), "{}", cli.stderr);
    let json: serde_json::Value = serde_json::from_str(&cli.stdout).unwrap();
    assert_eq!(
        (json["kind"].as_str(), json["max_attempts"].as_u64()),
        (Some("task"), Some(1))
    );
    let listed = queue_cli(&url, &["jobs", "q", "--state", "pending", "--json"]);
    assert!(
        listed.stdout.contains("old-1") && listed.stdout.contains("task"),
        "{}",
        listed.stdout
    );

    // The first run fails (its one attempt): dead; replayed, it runs again and completes.
    let runs = Arc::new(AtomicU32::new(0));
    let seen = runs.clone();
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .handle_kind("task", move |payload: serde_json::Value, ctx: JobContext| {
            let seen = seen.clone();
            async move {
                if ctx.id() == "old-1" {
                    assert_eq!(payload, serde_json::json!({"i": 1}));
                    assert_eq!(ctx.envelope().timeout_ms, Some(60_000));
                    if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                        return Err(JobError::retry("first run fails"));
                    }
                }
                Ok(())
            }
        })
        .build();
    let (shutdown, running) = spawn_worker(worker);
    let dead = q.first_dead("the old job dead after its one attempt").await;
    assert_eq!((dead.id.as_str(), dead.envelope), ("old-1", Some(old_envelope())));
    assert_eq!(q.queue().dead_replay(&["old-1"]).await.unwrap(), 1);
    q.job_in_state("old-1", JobState::Completed).await;
    q.job_in_state("new-1", JobState::Completed).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    shutdown.cancel();
    running.await.unwrap().unwrap();
}

/// What a default job costs in the jobs hash and the pending list beside its payload: a 12-byte
/// generated id, and a record of its creation time (14 bytes with its `|`), the compact
/// envelope's 2 bytes, its kind (1 + 4 bytes for "noop") and its payload.
#[tokio::test]
async fn a_default_job_is_stored_in_a_few_bytes_beyond_its_payload() {
    let q = start().await;
    let payload = rmp_serde::to_vec_named(&"").unwrap();
    let enqueued = q.queue().enqueue(NewJob::new("noop", &"")).await.unwrap();
    assert_eq!(enqueued.id.len(), 12, "{}", enqueued.id);
    assert!(
        enqueued.id.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{}",
        enqueued.id
    );
    let queue = q.queue();
    let keys = queue.keys().all();
    let record_len: u64 = q.client.redis().hstrlen(&keys[6], &enqueued.id).await.unwrap();
    assert_eq!(record_len as usize, 14 + 2 + 5 + payload.len());
    let pending: Vec<String> = q.client.redis().lrange(&keys[16], 0, -1).await.unwrap();
    assert_eq!(pending, std::slice::from_ref(&enqueued.id));
    // Only the properties that differ from the defaults are stored.
    let job = NewJob::new("noop", &"").priority(5).max_attempts(7);
    let prioritized = q.queue().enqueue(job).await.unwrap();
    let record: Vec<u8> = q.client.redis().hget(&keys[6], &prioritized.id).await.unwrap();
    assert!(record[13..].starts_with(b"|5|7|e|1000|3600000|1|\x01"), "{record:?}");
    let leased = q.queue().pop(2, Duration::from_secs(30)).await.unwrap().jobs;
    let envelope = leased[0].envelope().unwrap();
    assert_eq!(
        (envelope.id.as_str(), envelope.priority, envelope.max_attempts),
        (prioritized.id.as_str(), 5, 7)
    );
    let envelope = leased[1].envelope().unwrap();
    assert_eq!(
        (envelope.id.as_str(), envelope.queue.as_str()),
        (enqueued.id.as_str(), "q")
    );
    assert_eq!((envelope.kind.as_str(), envelope.payload), ("noop", payload));
}

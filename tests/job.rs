use std::time::Duration;

use queue::{Backoff, Error, JobState, NewJob};

use crate::support::{lease, start};

#[tokio::test]
async fn job_shows_state_envelope_and_times() {
    let q = start().await;
    let job = NewJob::new("send", &serde_json::json!({"to": "x"}))
        .id("j")
        .priority(3)
        .max_attempts(4)
        .backoff(Backoff::fixed(Duration::from_secs(5)))
        .delay(Duration::from_secs(60));
    q.queue().enqueue(job).await.unwrap();
    let job = q.queue().job("j").await.unwrap();
    assert_eq!(job.state, JobState::Scheduled);
    assert_eq!(
        (
            job.envelope.kind.as_str(),
            job.envelope.priority,
            job.envelope.max_attempts
        ),
        ("send", 3, 4)
    );
    assert_eq!(job.envelope.backoff, Backoff::Fixed { delay_ms: 5_000 });
    assert_eq!(job.run_at_ms.unwrap() - job.created_at_ms, 60_000);
    assert_eq!(job.envelope.payload_json().unwrap(), serde_json::json!({"to": "x"}));
    assert_eq!(job.attempts, 0);
    assert_eq!(job.last_error, None);
    assert!(matches!(q.queue().job("other").await, Err(Error::JobNotFound { .. })));
}

#[tokio::test]
async fn an_empty_id_names_no_job() {
    let q = start().await;
    q.enqueue_numbers(1).await;
    // The field '' of every hash keyed by id holds its encoding pin, not a job.
    assert!(matches!(q.queue().job("").await, Err(Error::JobNotFound { .. })));
    let leased = q.pop_one().await;
    assert_eq!(
        q.queue().complete(&[lease("", &leased.lease.token)]).await.unwrap(),
        [false]
    );
    assert_eq!(q.queue().stats().await.unwrap().completed_total, 0);
}

#[tokio::test]
async fn looking_a_pending_job_up_does_not_search_the_pending_list() {
    use queue::fred::{
        interfaces::ClientLike,
        types::{ClusterHash, CustomCommand, InfoKind},
    };
    let q = start().await;
    q.enqueue_numbers(1_000).await;
    q.queue().enqueue(NewJob::new("k", &1).id("last")).await.unwrap();
    let reset = CustomCommand::new_static("CONFIG RESETSTAT", ClusterHash::Random, false);
    let () = q.client.redis().custom(reset, Vec::<String>::new()).await.unwrap();
    assert_eq!(q.queue().job("last").await.unwrap().state, JobState::Pending);
    // Only O(1) and O(log n) commands: no search (LPOS) or range read of the pending list.
    let stats: String = q.client.redis().info(Some(InfoKind::CommandStats)).await.unwrap();
    let called: Vec<&str> = stats
        .lines()
        .filter_map(|line| line.strip_prefix("cmdstat_")?.split(':').next())
        .collect();
    let constant = [
        "evalsha",
        "script|load",
        "hget",
        "zscore",
        "sismember",
        "time",
        "info",
        "config|resetstat",
    ];
    assert!(called.contains(&"evalsha"), "the lookup is counted: {called:?}");
    assert!(called.iter().all(|c| constant.contains(c)), "{called:?}");
}

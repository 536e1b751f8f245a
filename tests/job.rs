use std::time::Duration;

use queue::{Backoff, Error, JobState, NewJob};

use crate::support::start;

#[tokio::test]
async fn job_shows_state_envelope_and_times() {
    let q = start().await;
    let job = NewJob::new("send", &serde_json::json!({"to": "x"}))
        .unwrap()
        .id("j")
        .priority(3)
        .max_attempts(4)
        .backoff(Backoff::fixed(Duration::from_secs(5)))
        .delay(Duration::from_secs(60));
    q.client.enqueue("q", job).await.unwrap();
    let job = q.client.job("q", "j").await.unwrap();
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
    assert!(matches!(
        q.client.job("q", "other").await,
        Err(Error::JobNotFound { .. })
    ));
}

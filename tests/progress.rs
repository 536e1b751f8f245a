//! Progress reports (`lua/progress.lua`): written by the attempt holding the lease only.
use queue::{Error, NewJob};
use serde_json::json;

use crate::support::{lease, queue_cli, start};

#[tokio::test]
async fn progress_shows_in_job_and_a_stale_attempt_cannot_write_it() {
    let q = start().await;
    q.queue().enqueue(NewJob::new("k", &1).id("j")).await.unwrap();
    let leased = q.pop_one().await;
    q.queue()
        .progress(&leased.lease, &json!({"rows": 10, "of": 40}))
        .await
        .unwrap();
    let job = q.queue().job("j").await.unwrap();
    assert_eq!(job.progress, Some(json!({"rows": 10, "of": 40})));
    let shown = queue_cli(&q.redis.url(), &["job", "q", "j", "--json"]).stdout;
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["progress"], json!({"rows": 10, "of": 40}));

    // Another attempt's token (one that lost its lease) is refused and changes nothing.
    let stale = q.queue().progress(&lease("j", "1"), &json!("late")).await.unwrap_err();
    assert!(matches!(stale, Error::LeaseLost { .. }), "{stale:?}");
    assert_eq!(
        q.queue().job("j").await.unwrap().progress,
        Some(json!({"rows": 10, "of": 40}))
    );
}

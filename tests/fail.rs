use std::time::Duration;

use queue::{Backoff, FailOutcome, JobState, Leased, NewJob, QueueClient};

use crate::support::{eventually, lease, start};

const LEASE: Duration = Duration::from_secs(30);

async fn lease_next(client: &QueueClient) -> (Leased, i64) {
    eventually("a job to lease", Duration::from_secs(10), || async {
        let mut popped = client.queue("q").unwrap().pop(1, LEASE).await.unwrap();
        (!popped.jobs.is_empty()).then(|| (popped.jobs.remove(0), popped.now_ms))
    })
    .await
}

/// Fails the next attempt and returns the retry delay the script chose.
async fn fail_and_measure(client: &QueueClient) -> i64 {
    let (leased, _) = lease_next(client).await;
    match client
        .queue("q")
        .unwrap()
        .fail(&leased.lease, "boom", false)
        .await
        .unwrap()
    {
        FailOutcome::Retry { at_ms, delay_ms } => {
            let job = client.queue("q").unwrap().job(&leased.lease.id).await.unwrap();
            assert_eq!(job.run_at_ms, Some(at_ms), "parked until then");
            delay_ms
        }
        FailOutcome::Dead => panic!("expected a retry"),
    }
}

#[tokio::test]
async fn fixed_backoff_waits_the_same_each_time() {
    let q = start().await;
    let job = NewJob::new("k", &1)
        .max_attempts(3)
        .backoff(Backoff::fixed(Duration::from_millis(150)));
    q.queue().enqueue(job).await.unwrap();
    for _ in 0..2 {
        let delay = fail_and_measure(&q.client).await;
        assert_eq!(delay, 150);
    }
}

#[tokio::test]
async fn exponential_backoff_doubles_up_to_its_cap() {
    let q = start().await;
    let backoff = Backoff::Exponential {
        base_ms: 100,
        cap_ms: 300,
        jitter: false,
    };
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("k", &1).max_attempts(5).backoff(backoff))
        .await
        .unwrap();
    for expected in [100, 200, 300, 300] {
        let delay = fail_and_measure(&q.client).await;
        assert_eq!(delay, expected);
    }
}

#[tokio::test]
async fn jitter_keeps_at_least_half_the_delay() {
    let q = start().await;
    let backoff = Backoff::Exponential {
        base_ms: 2_000,
        cap_ms: 2_000,
        jitter: true,
    };
    let jobs: Vec<NewJob> = (0..20).map(|i| NewJob::new("k", &i).backoff(backoff)).collect();
    q.queue().enqueue_bulk(jobs).await.unwrap();
    let mut delays = Vec::new();
    for _ in 0..20 {
        delays.push(fail_and_measure(&q.client).await);
    }
    assert!(delays.iter().all(|d| (1_000..=2_000).contains(d)), "{delays:?}");
    delays.sort();
    delays.dedup();
    assert!(delays.len() > 5, "spread out: {delays:?}");
}

#[tokio::test]
async fn the_dead_letter_takes_a_job_when_attempts_run_out() {
    let q = start().await;
    let job = NewJob::new("k", &1)
        .id("j")
        .max_attempts(2)
        .backoff(Backoff::fixed(Duration::ZERO));
    q.queue().enqueue(job).await.unwrap();
    let (first, _) = lease_next(&q.client).await;
    let outcome = q
        .client
        .queue("q")
        .unwrap()
        .fail(&lease("j", &first.lease.token), "first failure", false)
        .await
        .unwrap();
    assert!(matches!(outcome, FailOutcome::Retry { delay_ms: 0, .. }), "{outcome:?}");
    let (second, _) = lease_next(&q.client).await;
    assert_eq!(second.attempt, 2);
    assert_eq!(
        q.client
            .queue("q")
            .unwrap()
            .fail(&lease("j", &second.lease.token), "second failure", false)
            .await
            .unwrap(),
        FailOutcome::Dead
    );
    let job = q.queue().job("j").await.unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Dead, 2));
    assert_eq!(job.last_error.as_deref(), Some("second failure"));
    let stats = q.queue().stats().await.unwrap();
    assert_eq!(
        (stats.dead, stats.failed_attempts_total, stats.pending, stats.active),
        (1, 2, 0, 0)
    );
}

#[tokio::test]
async fn a_permanent_failure_goes_to_the_dead_letter_at_once() {
    let q = start().await;
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("k", &1).id("j").max_attempts(10))
        .await
        .unwrap();
    let (leased, _) = lease_next(&q.client).await;
    assert_eq!(
        q.queue()
            .fail(&lease("j", &leased.lease.token), "bad data", true)
            .await
            .unwrap(),
        FailOutcome::Dead
    );
    let page = q.queue().dead_list(0, 10).await.unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(
        (
            page.jobs[0].id.as_str(),
            page.jobs[0].attempts,
            page.jobs[0].error.as_str()
        ),
        ("j", 1, "bad data")
    );
}

#[tokio::test]
async fn a_retryable_failure_of_a_job_whose_record_does_not_parse_buries_it_with_the_reason() {
    let q = start().await;
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("k", &1).id("j").max_attempts(5))
        .await
        .unwrap();
    let leased = q.pop_one().await;
    q.hset("jobs", "j", "garbage").await;
    let outcome = q
        .queue()
        .fail(&lease("j", &leased.lease.token), "boom", false)
        .await
        .unwrap();
    assert_eq!(outcome, FailOutcome::Dead);
    let job = q.first_dead("the job in the dead letter").await;
    assert!(
        job.error.starts_with("boom") && job.error.contains("does not parse"),
        "{}",
        job.error
    );
    let stats = q.queue().stats().await.unwrap();
    assert_eq!(
        (stats.active, stats.pending, stats.dead, stats.failed_attempts_total),
        (0, 0, 1, 1)
    );
}

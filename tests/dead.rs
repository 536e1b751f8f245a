use std::time::Duration;

use queue::{Error, JobState, NewJob, QueueClient, QueueConfig, Retention};

use crate::support::{lease, start, start_with};

async fn bury(client: &QueueClient, ids: &[&str]) {
    for id in ids {
        client
            .queue("q")
            .unwrap()
            .enqueue(NewJob::new("k", id).id(*id).max_attempts(1))
            .await
            .unwrap();
        let leased = client
            .queue("q")
            .unwrap()
            .pop(1, Duration::from_secs(30))
            .await
            .unwrap()
            .jobs
            .remove(0);
        client
            .queue("q")
            .unwrap()
            .fail(&lease(id, &leased.lease.token), &format!("{id} failed"), false)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn list_shows_the_most_recent_first_with_errors() {
    let q = start().await;
    // Buried in an order that is not the ids' order, each in a later millisecond than the one
    // before: ties in time would be listed by id, which would hide the order by time.
    for id in ["c", "a", "b"] {
        bury(&q.client, &[id]).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let page = q.queue().dead_list(0, 2).await.unwrap();
    assert_eq!(page.total, 3);
    let ids: Vec<_> = page.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["b", "a"], "the most recent first");
    assert!(page.jobs[0].failed_at_ms > page.jobs[1].failed_at_ms);
    for job in &page.jobs {
        assert_eq!(
            (job.error.as_str(), job.attempts),
            (format!("{} failed", job.id).as_str(), 1)
        );
    }
}

#[tokio::test]
async fn replay_one_resets_attempts_and_runs_again() {
    let q = start().await;
    bury(&q.client, &["a", "b"]).await;
    assert_eq!(q.queue().dead_replay(&["a"]).await.unwrap(), 1);
    let job = q.queue().job("a").await.unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Pending, 0));
    let leased = q.queue().pop(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(leased.jobs.len(), 1);
    assert_eq!(leased.jobs[0].attempt, 1);
    assert!(matches!(
        q.queue().dead_replay(&["a"]).await,
        Err(Error::NotInDeadLetter { .. })
    ));
    assert_eq!(q.queue().stats().await.unwrap().dead, 1);
}

#[tokio::test]
async fn replay_all_and_purge() {
    let q = start().await;
    bury(&q.client, &["a", "b", "c"]).await;
    assert_eq!(q.queue().dead_replay_all().await.unwrap(), 3);
    let stats = q.queue().stats().await.unwrap();
    assert_eq!((stats.dead, stats.pending), (0, 3));

    let jobs = q.queue().pop(3, Duration::from_secs(30)).await.unwrap().jobs;
    for job in &jobs {
        q.queue().fail(&job.lease, "again", true).await.unwrap();
    }
    assert_eq!(q.queue().dead_purge().await.unwrap(), 3);
    assert_eq!(q.queue().stats().await.unwrap().dead, 0);
    assert!(
        matches!(q.queue().job("a").await, Err(Error::JobNotFound { .. })),
        "purged jobs are forgotten"
    );
}

#[tokio::test]
async fn the_dead_letter_is_bounded_by_count() {
    let config = QueueConfig {
        dead: Retention {
            max_count: 2,
            max_age: Duration::ZERO,
        },
        ..Default::default()
    };
    let q = start_with(config).await;
    bury(&q.client, &["a", "b", "c", "d"]).await;
    let stats = q.queue().stats().await.unwrap();
    assert_eq!((stats.dead, stats.dead_total), (2, 4));
}

#[tokio::test]
async fn the_dead_letter_is_bounded_by_age() {
    let config = QueueConfig {
        dead: Retention {
            max_count: 100,
            max_age: Duration::from_millis(50),
        },
        ..Default::default()
    };
    let q = start_with(config).await;
    bury(&q.client, &["old"]).await;
    tokio::time::sleep(Duration::from_millis(100)).await; // let "old" age past the 50ms limit
    bury(&q.client, &["new"]).await;
    let page = q.queue().dead_list(0, 10).await.unwrap();
    assert_eq!(page.jobs.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ["new"]);
}

#[tokio::test]
async fn an_id_named_twice_is_replayed_once_and_the_counters_balance() {
    let q = start().await;
    bury(&q.client, &["x"]).await;
    assert_eq!(q.queue().dead_replay(&["x", "x"]).await.unwrap(), 1);
    let stats = q.queue().stats().await.unwrap();
    assert_eq!((stats.pending, stats.dead), (1, 0), "one pending job, not two");
    let leased = q.pop_one().await;
    assert_eq!(
        q.queue().complete(&[lease("x", &leased.lease.token)]).await.unwrap(),
        [true]
    );
    assert_eq!(q.queue().stats().await.unwrap().pending, 0, "nothing left to run again");
}

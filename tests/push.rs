use std::time::Duration;

use queue::{Error, NewJob};
use serde_json::json;

use crate::support::start;

#[tokio::test]
async fn bulk_is_all_or_none() {
    let q = start().await;
    let good = NewJob::new("k", &json!({"n": 1}));
    let bad = NewJob::new("k", &json!({"n": 2})).priority(5000);
    let err = q.queue().enqueue_bulk([good.clone(), bad]).await.unwrap_err();
    assert!(matches!(err, Error::InvalidPriority(5000)), "{err}");
    // Nothing of the bulk was written: not the good job, not even the queue's registration.
    let stats = q.queue().stats().await;
    assert!(matches!(stats, Err(Error::UnknownQueue(_))), "{stats:?}");
    use queue::fred::interfaces::KeysInterface;
    let queue = q.queue();
    let keys = queue.keys();
    let count: i64 = q.client.redis().exists(keys.all().to_vec()).await.unwrap();
    assert_eq!(count, 0, "no key of the queue written");

    let added = q.queue().enqueue_bulk(vec![good; 3]).await.unwrap();
    assert_eq!(added.len(), 3);
    assert!(added.iter().all(|e| e.created));
    assert_eq!(q.queue().stats().await.unwrap().pending, 3);
}

#[tokio::test]
async fn the_script_itself_refuses_a_bad_bulk_and_writes_nothing() {
    // A caller bypassing the client's checks (another language, a bug) still cannot write half.
    let q = start().await;
    let queue = q.queue();
    let keys = queue.keys();
    let good_run = ["1", "0|3|f|0|0|0", "", "a", "env"];
    let bad_bulks: [(&[&str], &str); 4] = [
        (
            &[
                "2",
                good_run[0],
                good_run[1],
                good_run[2],
                good_run[3],
                good_run[4],
                "1",
                "0|3|bogus",
                "",
                "b",
                "env",
            ],
            "job 2: malformed properties",
        ),
        (
            &["2", "2", "0|3|f|0|0|0", "", "a", "env", "b"],
            "malformed run of jobs at argument 2",
        ),
        (
            &["2", good_run[0], good_run[1], good_run[2], good_run[3], good_run[4]],
            "expected 2 jobs, got 1",
        ),
        (
            &["1", "1", "0|3|f|0|0|0", "soon", "a", "env"],
            "job 1: malformed run time",
        ),
    ];
    for (args, error) in bad_bulks {
        let items = q.run_script("queue.push", args).await;
        assert_eq!(items[0].as_i64(), Some(1), "BAD_ARGUMENT");
        let message = items[1].as_str().unwrap().to_string();
        assert!(message.contains(error), "{message}");
    }
    use queue::fred::interfaces::KeysInterface;
    let count: i64 = q.client.redis().exists(keys.all().to_vec()).await.unwrap();
    assert_eq!(count, 0, "no key written");
}

#[tokio::test]
async fn an_existing_explicit_id_is_returned_and_nothing_is_written() {
    let q = start().await;
    let first = q
        .client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("k", &json!(1)).id("order-42"))
        .await
        .unwrap();
    assert_eq!(first.id, "order-42");
    assert!(first.created);
    let again = q
        .client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("k", &json!(2)).id("order-42").priority(9))
        .await
        .unwrap();
    assert_eq!(again.id, "order-42");
    assert!(!again.created);
    let job = q.queue().job("order-42").await.unwrap();
    assert_eq!(job.envelope.decode::<i32>().unwrap(), 1, "the first payload is kept");
    assert_eq!(job.envelope.priority, 0);
    let stats = q.queue().stats().await.unwrap();
    assert_eq!((stats.pending, stats.enqueued_total), (1, 1));

    // Within one bulk, the second use of an id is a duplicate too.
    let bulk = q
        .client
        .queue("q")
        .unwrap()
        .enqueue_bulk([NewJob::new("k", &1).id("x"), NewJob::new("k", &2).id("x")])
        .await
        .unwrap();
    assert_eq!(bulk.iter().map(|e| e.created).collect::<Vec<_>>(), [true, false]);
}

#[tokio::test]
async fn bad_input_gets_typed_errors() {
    let q = start().await;
    let job = || NewJob::new("k", &json!({}));
    for (name, reason) in [
        ("", "empty"),
        ("a{b}", "braces"),
        ("has space", "only ASCII"),
        (&"x".repeat(129)[..], "longer"),
    ] {
        // The handle checks the name: no call on a bad name gets as far as Redis.
        match q.client.queue(name) {
            Err(Error::InvalidQueueName { reason: r, .. }) => assert!(r.contains(reason), "{name}: {r}"),
            other => panic!("{name:?}: {other:?}"),
        }
    }
    let big = NewJob::new("k", &"x".repeat(2 << 20));
    assert!(matches!(q.queue().enqueue(big).await, Err(Error::PayloadTooLarge { limit, .. }) if limit == 1 << 20));
    assert!(matches!(
        q.queue().enqueue(job().max_attempts(0)).await,
        Err(Error::InvalidMaxAttempts)
    ));
    assert!(matches!(
        q.client
            .queue("q")
            .unwrap()
            .enqueue(job().delay(Duration::from_secs(20 * 365 * 24 * 3600)))
            .await,
        Err(Error::InvalidDelay(_))
    ));
    assert!(matches!(
        q.queue().enqueue(job().id("")).await,
        Err(Error::InvalidJobId { .. })
    ));
    assert!(matches!(
        NewJob::from_json("k", "{\"a\": 1,}"),
        Err(Error::MalformedJson(_))
    ));
    assert!(matches!(q.queue().job("nope").await, Err(Error::UnknownQueue(_))));
}

#[tokio::test]
async fn a_mixed_bulk_keeps_each_jobs_own_properties() {
    let q = start().await;
    let job = |id: &str| NewJob::new("k", &json!(1)).id(id);
    let added = q
        .client
        .queue("q")
        .unwrap()
        .enqueue_bulk([
            job("a"),
            job("b").priority(5),
            job("c").priority(5),
            job("later").delay(Duration::from_secs(60)),
            job("d").max_attempts(7),
        ])
        .await
        .unwrap();
    assert_eq!(added.len(), 5);
    assert!(added.iter().all(|e| e.created));
    assert_eq!(q.pop_ids(10).await, ["b", "c", "a", "d"]);
    let stats = q.queue().stats().await.unwrap();
    assert_eq!((stats.scheduled, stats.active), (1, 4));
    assert_eq!(q.queue().job("d").await.unwrap().envelope.max_attempts, 7);
    assert_eq!(q.queue().job("later").await.unwrap().state, queue::JobState::Scheduled);
}

#[tokio::test]
async fn a_bulk_larger_than_one_call_takes_is_refused_whole() {
    let q = start().await;
    let jobs = (0..=queue::MAX_BULK_JOBS).map(|i| NewJob::new("k", &i));
    let refused = q.queue().enqueue_bulk(jobs).await.unwrap_err();
    assert!(matches!(refused, Error::BulkTooLarge { .. }), "{refused}");
    assert!(refused.to_string().contains("split it"), "{refused}");
    assert!(
        matches!(q.queue().stats().await, Err(Error::UnknownQueue(_))),
        "nothing written"
    );
    let exactly = (0..queue::MAX_BULK_JOBS).map(|i| NewJob::new("k", &i));
    assert_eq!(
        q.queue().enqueue_bulk(exactly).await.unwrap().len(),
        queue::MAX_BULK_JOBS
    );
}

#[tokio::test]
async fn a_prefix_with_a_colon_is_refused_so_prefixes_never_share_keys() {
    let redis = crate::support::TestRedis::start().await;
    let config = queue::QueueConfig {
        prefix: "a:b".into(),
        ..Default::default()
    };
    let refused = queue::QueueClient::connect_with(&queue::ConnectOptions::new(redis.url()), config).await;
    let Err(Error::InvalidQueueName { name, reason }) = refused else {
        panic!("a prefix with ':' must be refused");
    };
    assert_eq!(name, "a:b");
    assert!(reason.contains("':'"), "{reason}");
}

#[tokio::test]
async fn run_at_times_before_1970_or_over_10_years_ahead_are_refused() {
    use std::time::{SystemTime, UNIX_EPOCH};
    let q = start().await;
    let job = || NewJob::new("k", &json!({}));
    let year = Duration::from_secs(365 * 24 * 3600);
    for (at, why) in [
        (UNIX_EPOCH - Duration::from_secs(1), "run-at time is before 1970"),
        (
            SystemTime::now() + queue::MAX_DELAY + Duration::from_secs(3600),
            "run-at time is more than 10 years ahead",
        ),
        (SystemTime::now() + 11 * year, "run-at time is more than 10 years ahead"),
    ] {
        let refused = q.queue().enqueue(job().run_at(at)).await.unwrap_err();
        assert!(
            matches!(&refused, Error::InvalidDelay(reason) if reason == why),
            "{refused:?}"
        );
        assert!(refused.to_string().starts_with("invalid delay: "), "{refused}");
    }
    let refused = q
        .client
        .queue("q")
        .unwrap()
        .enqueue(job().delay(queue::MAX_DELAY + Duration::from_secs(1)))
        .await
        .unwrap_err();
    assert!(refused.to_string().starts_with("invalid delay: "), "{refused}");
    assert!(
        matches!(q.queue().stats().await, Err(Error::UnknownQueue(_))),
        "nothing written"
    );

    // Inside the bounds: 9 years ahead waits until then; 1970 itself (in the past) means now.
    let later = SystemTime::now() + 9 * year;
    q.queue().enqueue(job().id("later").run_at(later)).await.unwrap();
    let job_later = q.queue().job("later").await.unwrap();
    assert_eq!(job_later.state, queue::JobState::Scheduled);
    let expected = later.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    assert!((job_later.run_at_ms.unwrap() - expected).abs() <= 1, "{job_later:?}");
    q.client
        .queue("q")
        .unwrap()
        .enqueue(job().id("epoch").run_at(UNIX_EPOCH))
        .await
        .unwrap();
    assert_eq!(q.queue().job("epoch").await.unwrap().state, queue::JobState::Pending);
}

//! `lua/jobs.lua`: a page of the jobs in one state, through the client and `queue-cli jobs`.
use std::{process::Command, time::Duration};

use queue::{Backoff, Error, JobState, NewJob, QueueClient};

use crate::support::{bin, run_with_deadline, start};

fn ids(page: &queue::JobPage) -> Vec<&str> {
    page.jobs.iter().map(|job| job.id.as_str()).collect()
}

/// Every page of `state` of queue "q", `limit` at a time, and the totals each page reported.
async fn all_pages(client: &QueueClient, state: JobState, limit: u64) -> (Vec<String>, Vec<u64>) {
    let (mut seen, mut totals) = (Vec::new(), Vec::new());
    loop {
        let page = client
            .queue("q")
            .unwrap()
            .jobs(state, seen.len() as u64, limit)
            .await
            .unwrap();
        assert!(page.jobs.len() as u64 <= limit);
        assert!(page.jobs.iter().all(|job| job.state == state));
        totals.push(page.total);
        if page.jobs.is_empty() {
            return (seen, totals);
        }
        seen.extend(page.jobs.iter().map(|job| job.id.clone()));
    }
}

#[tokio::test]
async fn pending_jobs_are_listed_in_pop_order_across_pages() {
    let q = start().await;
    // Priorities above 0 (sorted set), 0 (the list), below 0 (sorted set again), interleaved.
    for (id, priority) in [
        ("d1", 0),
        ("h1", 5),
        ("l1", -5),
        ("d2", 0),
        ("h2", 9),
        ("d3", 0),
        ("l2", -1),
    ] {
        q.queue()
            .enqueue(NewJob::new("k", &id).id(id).priority(priority))
            .await
            .unwrap();
    }
    let expected = ["h2", "h1", "d1", "d2", "d3", "l2", "l1"];
    for limit in [1, 2, 3, 7, 100] {
        let (seen, totals) = all_pages(&q.client, JobState::Pending, limit).await;
        assert_eq!(seen, expected, "pages of {limit}");
        assert!(totals.iter().all(|total| *total == 7));
    }
    // It is the order pop takes them in.
    assert_eq!(q.pop_ids(7).await, expected);
}

#[tokio::test]
async fn each_state_lists_its_jobs_with_their_times_and_errors() {
    let q = start().await;
    let never = Backoff::fixed(Duration::from_secs(3600));
    let job = |id: &str| NewJob::new("send", &id).id(id).backoff(never).max_attempts(3);
    for id in ["completed", "retrying", "dead", "active"] {
        q.queue().enqueue(job(id)).await.unwrap();
    }
    q.queue()
        .enqueue(job("scheduled").delay(Duration::from_secs(60)))
        .await
        .unwrap();
    let leased = q.queue().pop(4, Duration::from_secs(30)).await.unwrap().jobs;
    let lease = |id: &str| leased.iter().find(|job| job.id() == id).unwrap().lease.clone();
    q.queue().complete([&lease("completed")]).await.unwrap();
    q.queue().fail(&lease("retrying"), "smtp down", false).await.unwrap();
    q.queue().fail(&lease("dead"), "bad address", true).await.unwrap();
    q.queue().enqueue(job("pending").priority(-3)).await.unwrap();

    for state in [
        JobState::Pending,
        JobState::Scheduled,
        JobState::Retrying,
        JobState::Active,
        JobState::Dead,
        JobState::Completed,
    ] {
        let page = q.queue().jobs(state, 0, 10).await.unwrap();
        assert_eq!((page.total, page.offset, page.limit), (1, 0, 10), "{state}");
        let listed = &page.jobs[0];
        let shown = q.queue().job(&listed.id).await.unwrap();
        assert_eq!(listed.id, state.as_str(), "one job in each state, named after it");
        assert_eq!((listed.state, listed.kind.as_str()), (state, "send"));
        assert_eq!((listed.attempts, listed.max_attempts), (shown.attempts, 3), "{state}");
        assert_eq!(listed.created_at_ms, shown.created_at_ms);
        assert_eq!(listed.error, shown.last_error, "{state}");
        match state {
            JobState::Active => {
                assert_eq!(listed.lease_expires_at_ms, shown.state_since_ms);
                assert_eq!(listed.finished_at_ms, None);
            }
            JobState::Dead | JobState::Completed => {
                assert_eq!(listed.finished_at_ms, shown.state_since_ms);
                assert_eq!(listed.lease_expires_at_ms, None);
            }
            _ => {
                assert_eq!(listed.run_at_ms, shown.run_at_ms, "{state}");
                assert_eq!((listed.lease_expires_at_ms, listed.finished_at_ms), (None, None));
            }
        }
    }
    let pending = q.queue().jobs(JobState::Pending, 0, 10).await.unwrap();
    assert_eq!(pending.jobs[0].priority, -3);
    let scheduled = &q.queue().jobs(JobState::Scheduled, 0, 10).await.unwrap().jobs[0];
    assert_eq!(scheduled.run_at_ms.unwrap() - scheduled.created_at_ms, 60_000);
    let retrying = &q.queue().jobs(JobState::Retrying, 0, 10).await.unwrap().jobs[0];
    assert_eq!(retrying.error.as_deref(), Some("smtp down"));
    assert!(retrying.run_at_ms.unwrap() >= retrying.created_at_ms + 3_600_000);
}

#[tokio::test]
async fn active_jobs_are_found_through_their_leases_and_paged() {
    let q = start().await;
    q.enqueue_numbers(10).await;
    // Three leases (3, 3 and 4 jobs); one job of the first settles, so its lease holds two.
    let first = q.queue().pop(3, Duration::from_secs(30)).await.unwrap().jobs;
    let second = q.queue().pop(3, Duration::from_secs(40)).await.unwrap().jobs;
    let third = q.queue().pop(4, Duration::from_secs(50)).await.unwrap().jobs;
    q.queue().complete([&first[1].lease]).await.unwrap();
    let expected: Vec<String> = [&first[0], &first[2]]
        .into_iter()
        .chain(&second)
        .chain(&third)
        .map(|job| job.id().to_owned())
        .collect();
    for limit in [1, 2, 4, 9, 50] {
        let (seen, totals) = all_pages(&q.client, JobState::Active, limit).await;
        assert_eq!(
            seen, expected,
            "pages of {limit}: leases by deadline, each in its order"
        );
        assert!(totals.iter().all(|total| *total == 9));
    }
    let page = q.queue().jobs(JobState::Active, 2, 3).await.unwrap();
    assert_eq!(ids(&page), &expected[2..5]);
    assert!(page
        .jobs
        .iter()
        .all(|job| job.attempts == 1 && job.lease_expires_at_ms.is_some()));
}

#[tokio::test]
async fn finished_jobs_are_listed_most_recent_first() {
    let q = start().await;
    for id in ["a", "b", "c"] {
        q.queue().enqueue(NewJob::new("k", &id).id(id)).await.unwrap();
        let leased = q.pop_one().await;
        q.queue().complete([&leased.lease]).await.unwrap();
        // Each in a later millisecond: ties in time are listed by id, which would hide the order.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let page = q.queue().jobs(JobState::Completed, 1, 5).await.unwrap();
    assert_eq!((page.total, ids(&page)), (3, vec!["b", "a"]));
    assert_eq!(page.jobs[0].attempts, 1);
    let past = q.queue().jobs(JobState::Completed, 10, 5).await.unwrap();
    assert_eq!((past.total, past.jobs.len()), (3, 0), "a page past the end is empty");
}

#[tokio::test]
async fn a_page_is_bounded_and_bad_input_is_refused() {
    let q = start().await;
    q.enqueue_numbers(1_100).await;
    let page = q.queue().jobs(JobState::Pending, 0, 5_000).await.unwrap();
    assert_eq!((page.limit, page.jobs.len(), page.total), (1_000, 1_000, 1_100));
    let page = q.queue().jobs(JobState::Pending, 0, 0).await.unwrap();
    assert_eq!((page.limit, page.jobs.len()), (1, 1), "a limit of 0 is taken as 1");
    assert!(matches!(
        q.client.queue("nope").unwrap().jobs(JobState::Pending, 0, 10).await,
        Err(Error::UnknownQueue(name)) if name == "nope"
    ));
    // The script checks its arguments itself, for callers that bypass the client.
    let reply = q.run_script("queue.jobs", &["finished", "0", "10"]).await;
    assert_eq!(reply[0], queue::fred::types::Value::Integer(1));
    assert!(
        format!("{:?}", reply[1]).contains("unknown state finished"),
        "{reply:?}"
    );
    let reply = q.run_script("queue.jobs", &["pending", "0", "1001"]).await;
    assert_eq!(reply[0], queue::fred::types::Value::Integer(1), "{reply:?}");
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
async fn queue_cli_jobs_prints_a_table_or_the_page_as_json() {
    let q = start().await;
    let url = q.redis.url();
    q.queue().enqueue(NewJob::new("send", &1).id("one")).await.unwrap();
    q.queue().enqueue(NewJob::new("send", &2).id("two")).await.unwrap();
    let leased = q.pop_one().await;
    q.queue().fail(&leased.lease, "line one\nline two", true).await.unwrap();

    let out = cli(&url, &["jobs", "q", "--state", "dead"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8(out.stdout).unwrap();
    for header in ["ID", "KIND", "ATTEMPTS", "CREATED", "FINISHED", "ERROR"] {
        assert!(table.contains(header), "{table}");
    }
    assert!(
        table.contains("| one ") && table.contains("| send ") && table.contains("1/3"),
        "{table}"
    );
    assert!(table.contains("line one / line two"), "errors on one line: {table}");
    assert!(table.trim_end().ends_with("dead jobs 1 to 1 of 1 in q"), "{table}");

    let out = cli(&url, &["jobs", "q", "--state", "pending", "--limit", "5", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let job = &page["jobs"][0];
    assert_eq!(
        (
            &page["queue"],
            &page["state"],
            &page["total"],
            &page["offset"],
            &page["limit"]
        ),
        (&"q".into(), &"pending".into(), &1.into(), &0.into(), &5.into())
    );
    assert_eq!(
        (&job["id"], &job["kind"], &job["attempts"]),
        (&"two".into(), &"send".into(), &0.into())
    );
    for field in [
        "priority",
        "max_attempts",
        "created_at_ms",
        "run_at_ms",
        "lease_expires_at_ms",
        "finished_at_ms",
        "error",
    ] {
        assert!(job.get(field).is_some(), "{field} in {job}");
    }
    // The JSON is the client's own type.
    let typed: queue::JobPage = serde_json::from_value(page).unwrap();
    assert_eq!(typed, q.queue().jobs(JobState::Pending, 0, 5).await.unwrap());

    let out = cli(&url, &["jobs", "q", "--state", "retrying"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "no retrying jobs in q from 0 on (0 in all)"
    );

    // Bad input: an unknown state or limit is a usage error (exit 2) naming it; an unknown
    // queue is one line, exit 1.
    let out = cli(&url, &["jobs", "q", "--state", "finished"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: invalid value 'finished' for '--state <STATE>'"),
        "{stderr}"
    );
    assert!(
        stderr.contains("pending, scheduled, retrying, active, dead, completed"),
        "{stderr}"
    );
    let out = cli(&url, &["jobs", "q", "--state", "dead", "--limit", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let out = cli(&url, &["jobs", "nope", "--state", "dead"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "error: unknown queue \"nope\"\n");
}

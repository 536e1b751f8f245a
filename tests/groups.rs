//! Groups (`NewJob::group`, `lua/lib/fair_share.lua` in `lua/pop.lua`): fair turns between
//! groups and the jobs outside them, per-group concurrency and rate limits, weights, and every
//! path that makes a job ready or ends an attempt keeping a group's state right; as the ACL user.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use queue::{fred::interfaces::ClientLike, JobContext, Limits, NewJob, Queue, QueueClient, Worker};
use serde::{Deserialize, Serialize};

use crate::support::{acl_user_client, acl_user_url, eventually, queue_cli, spawn_worker, TestRedis};

#[derive(Debug, Serialize, Deserialize)]
struct Task {
    group: String,
    n: u32,
}

fn task(group: &str, n: u32) -> NewJob {
    NewJob::new("k", &Task { group: group.into(), n }).group(group)
}

const LEASE: Duration = Duration::from_secs(30);

/// Leases up to `count` jobs and returns them with their groups, in the order given.
async fn pop_tasks(q: &Queue, count: usize) -> Vec<(queue::Leased, Task)> {
    let popped = q.pop(count, LEASE).await.unwrap();
    popped
        .jobs
        .into_iter()
        .map(|job| {
            let task: Task = job.envelope().unwrap().decode().unwrap();
            (job, task)
        })
        .collect()
}

async fn acl_queue() -> (TestRedis, Queue) {
    let redis = TestRedis::start().await;
    let q = acl_user_client(&redis).await.queue("q").unwrap();
    (redis, q)
}

#[tokio::test]
async fn a_small_group_waits_about_one_turn_behind_a_large_backlog() {
    let (_redis, q) = acl_queue().await;
    q.enqueue_bulk((0..2_000).map(|n| task("big", n))).await.unwrap();
    for small in 1..=5 {
        q.enqueue_bulk((0..3).map(|n| task(&format!("small-{small}"), n)))
            .await
            .unwrap();
    }
    let first = pop_tasks(&q, 6).await;
    let mut groups: Vec<_> = first.iter().map(|(_, t)| t.group.clone()).collect();
    groups.sort();
    assert_eq!(
        groups,
        ["big", "small-1", "small-2", "small-3", "small-4", "small-5"],
        "one turn each, whatever the backlog"
    );
    // Three turns serve every small group's three jobs; within a group, FIFO.
    let next = pop_tasks(&q, 12).await;
    let mut seen: HashMap<String, Vec<u32>> = HashMap::new();
    for (_, t) in first.iter().chain(next.iter()) {
        seen.entry(t.group.clone()).or_default().push(t.n);
    }
    for small in 1..=5 {
        assert_eq!(seen[&format!("small-{small}")], [0, 1, 2]);
    }
    assert_eq!(seen["big"], [0, 1, 2]);
    // With the small groups done, the big one has the workers to itself.
    let rest = pop_tasks(&q, 100).await;
    assert!(rest.iter().all(|(_, t)| t.group == "big"));
    assert_eq!(rest.len(), 100);
    assert_eq!(rest[0].1.n, 3);
}

#[tokio::test]
async fn jobs_outside_groups_take_turns_like_one_more_group_and_priority_orders_a_group() {
    let (_redis, q) = acl_queue().await;
    q.enqueue_bulk((0..500u32).map(|n| {
        NewJob::new(
            "k",
            &Task {
                group: String::new(),
                n,
            },
        )
    }))
    .await
    .unwrap();
    q.enqueue_bulk([task("g", 0), task("g", 1), task("g", 2).priority(5)])
        .await
        .unwrap();
    let popped = pop_tasks(&q, 6).await;
    let order: Vec<_> = popped.iter().map(|(_, t)| (t.group.as_str(), t.n)).collect();
    // Turns alternate; within the group, the higher priority first, then FIFO.
    assert_eq!(order, [("", 0), ("g", 2), ("", 1), ("g", 0), ("", 2), ("g", 1)]);
    assert_eq!(q.stats().await.unwrap().pending, 497);
}

#[tokio::test]
async fn a_heavier_group_gets_more_turns_in_proportion() {
    let (_redis, q) = acl_queue().await;
    q.enqueue_bulk((0..100).map(|n| task("heavy", n))).await.unwrap();
    q.set_group_weight("heavy", Some(3)).await.unwrap();
    q.enqueue_bulk((0..100).map(|n| task("light", n))).await.unwrap();
    let popped = pop_tasks(&q, 40).await;
    let heavy = popped.iter().filter(|(_, t)| t.group == "heavy").count();
    assert!((29..=31).contains(&heavy), "{heavy} of 40 to the group of weight 3");
}

#[tokio::test]
async fn group_limits_hold_per_group_and_change_at_runtime() {
    let (_redis, q) = acl_queue().await;
    for group in ["a", "b"] {
        q.enqueue_bulk((0..10).map(|n| task(group, n))).await.unwrap();
    }
    let limits = q.set_group_concurrency_limit(Some(2)).await.unwrap();
    assert_eq!(limits.group_concurrency, Some(2));
    let first = pop_tasks(&q, 100).await;
    assert_eq!(first.len(), 4, "2 per group");
    assert!(pop_tasks(&q, 100).await.is_empty(), "both groups are full");

    // An attempt that ends makes room in its group only.
    let a_job = first.iter().find(|(_, t)| t.group == "a").unwrap();
    q.complete([&a_job.0.lease]).await.unwrap();
    let next = pop_tasks(&q, 100).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].1.group, "a");

    // Raised while the groups are full: the next fetch sees it.
    q.set_group_concurrency_limit(Some(3)).await.unwrap();
    let more = pop_tasks(&q, 100).await;
    assert_eq!(more.len(), 2, "one more per group");
    let groups = q.groups(10).await.unwrap();
    assert_eq!(groups.running, 2);
    let a = groups.groups.iter().find(|g| g.name == "a").unwrap();
    assert_eq!((a.pending, a.active, a.state.as_str()), (6, 3, "limited"));

    // Removed: everything left is takeable.
    q.set_group_concurrency_limit(None).await.unwrap();
    assert_eq!(pop_tasks(&q, 100).await.len(), 13);
}

#[tokio::test]
async fn a_group_rate_holds_per_group_and_the_fetch_says_when_to_come_back() {
    let (_redis, q) = acl_queue().await;
    for group in ["a", "b"] {
        q.enqueue_bulk((0..12).map(|n| task(group, n))).await.unwrap();
    }
    q.set_group_rate_limit(Some("5/400ms".parse().unwrap())).await.unwrap();
    q.enqueue(NewJob::new(
        "k",
        &Task {
            group: String::new(),
            n: 0,
        },
    ))
    .await
    .unwrap();
    let mut started: Vec<(i64, String)> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while started.len() < 25 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} jobs leased",
            started.len()
        );
        let popped = q.pop(100, LEASE).await.unwrap();
        for job in &popped.jobs {
            let task: Task = job.envelope().unwrap().decode().unwrap();
            started.push((job.leased_at_ms, task.group));
        }
        if popped.jobs.is_empty() {
            // Limited: the reply says when a slot frees, within the window.
            let due = popped.next_due_ms.expect("a due time while limited") - popped.now_ms;
            assert!((1..=400).contains(&due), "come back in {due} ms");
            tokio::time::sleep(Duration::from_millis(due as u64)).await;
        }
    }
    for group in ["a", "b"] {
        let times: Vec<i64> = started.iter().filter(|(_, g)| g == group).map(|(t, _)| *t).collect();
        assert_eq!(times.len(), 12);
        let busiest = times
            .iter()
            .map(|&from| times.iter().filter(|&&t| t >= from && t < from + 400).count())
            .max()
            .unwrap();
        assert!(busiest <= 5, "{busiest} jobs of {group} within 400 ms (limit 5)");
    }
    assert_eq!(
        started.iter().filter(|(_, g)| g.is_empty()).count(),
        1,
        "the ungrouped job is not limited"
    );
}

#[tokio::test]
async fn retried_reaped_released_and_removed_jobs_keep_their_group_right() {
    let (_redis, q) = acl_queue().await;
    q.enqueue_bulk((0..3).map(|n| task("g", n).max_attempts(5)))
        .await
        .unwrap();
    q.set_group_concurrency_limit(Some(1)).await.unwrap();

    // A failed attempt frees the group's slot; the retry comes back into the group.
    let (job, _) = pop_tasks(&q, 10).await.remove(0);
    assert!(pop_tasks(&q, 10).await.is_empty());
    q.fail(&job.lease, "boom", false).await.unwrap();
    q.retry_job(job.id()).await.unwrap();
    // Leased for a moment: an expired lease, reaped, frees the group's slot as well.
    let again = q.pop(10, Duration::from_millis(50)).await.unwrap().jobs.remove(0);
    let t: Task = again.envelope().unwrap().decode().unwrap();
    assert_eq!(t.n, 1, "FIFO: the retried job went to the back of its group");
    eventually("the lease to expire and be reaped", Duration::from_secs(5), || async {
        let reaped = q.reap(Duration::from_millis(1), 100).await.unwrap();
        reaped
            .is_some_and(|(requeued, buried)| requeued + buried > 0)
            .then_some(())
    })
    .await;
    let (held, _) = pop_tasks(&q, 10).await.remove(0);
    // Released: handed back without an attempt.
    q.release([&held.lease]).await.unwrap();
    let (held, _) = pop_tasks(&q, 10).await.remove(0);

    // Deleted and cancelled while waiting in the group: gone from its line.
    let page = q.jobs(queue::JobState::Pending, 0, 10).await.unwrap();
    assert_eq!(page.total, 2);
    q.delete_job(&page.jobs[0].id).await.unwrap();
    q.cancel(&page.jobs[1].id).await.unwrap();
    q.complete([&held.lease]).await.unwrap();
    assert!(pop_tasks(&q, 10).await.is_empty());
    let stats = q.stats().await.unwrap();
    assert_eq!((stats.pending, stats.active), (0, 0));
    assert_eq!(q.groups(10).await.unwrap().groups, []);
}

#[tokio::test]
async fn drain_and_obliterate_remove_grouped_jobs() {
    let redis = TestRedis::start().await;
    let admin = QueueClient::connect(&redis.url()).await.unwrap();
    let q = acl_user_client(&redis).await.queue("q").unwrap();
    q.enqueue_bulk((0..50).map(|n| task(&format!("g{}", n % 5), n)))
        .await
        .unwrap();
    assert_eq!(q.drain().await.unwrap(), 50);
    assert!(pop_tasks(&q, 10).await.is_empty());
    q.enqueue_bulk((0..50).map(|n| task(&format!("g{}", n % 5), n)))
        .await
        .unwrap();
    q.set_group_concurrency_limit(Some(1)).await.unwrap();
    pop_tasks(&q, 3).await;
    assert_eq!(q.obliterate().await.unwrap(), 50);
    let keys: Vec<String> = admin
        .redis()
        .custom(
            queue::fred::types::CustomCommand::new_static("KEYS", queue::fred::types::ClusterHash::Random, false),
            vec!["*"],
        )
        .await
        .unwrap();
    assert!(keys.iter().all(|key| !key.starts_with("{queue:q}")), "{keys:?}");
}

/// Handlers that count, per group, how many run at once.
#[derive(Default)]
struct PerGroup {
    now: Mutex<HashMap<String, usize>>,
    most: Mutex<HashMap<String, usize>>,
    total_most: Mutex<usize>,
    done: Mutex<usize>,
}

fn worker(client: QueueClient, seen: Arc<PerGroup>) -> Worker {
    Worker::builder(client)
        .queue("q")
        .concurrency(8)
        .handle_kind("k", move |task: Task, _ctx: JobContext| {
            let seen = seen.clone();
            async move {
                {
                    let mut now = seen.now.lock().unwrap();
                    let n = now.entry(task.group.clone()).or_default();
                    *n += 1;
                    let in_group = *n;
                    let total: usize = now.values().sum();
                    let mut most = seen.most.lock().unwrap();
                    let m = most.entry(task.group.clone()).or_default();
                    *m = (*m).max(in_group);
                    let mut total_most = seen.total_most.lock().unwrap();
                    *total_most = (*total_most).max(total);
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
                *seen.now.lock().unwrap().get_mut(&task.group).unwrap() -= 1;
                *seen.done.lock().unwrap() += 1;
                Ok(())
            }
        })
        .build()
}

#[tokio::test]
async fn group_concurrency_is_never_exceeded_across_three_workers_as_the_handlers_see_it() {
    let redis = TestRedis::start().await;
    let url = acl_user_url(&redis).await;
    let q = QueueClient::connect(&url).await.unwrap().queue("q").unwrap();
    for group in ["a", "b", "c"] {
        q.enqueue_bulk((0..30).map(|n| task(group, n))).await.unwrap();
    }
    q.set_limits(Limits {
        group_concurrency: Some(2),
        ..Limits::default()
    })
    .await
    .unwrap();
    let seen = Arc::new(PerGroup::default());
    let mut running = Vec::new();
    for _ in 0..3 {
        let client = QueueClient::connect(&url).await.unwrap();
        running.push(spawn_worker(worker(client, seen.clone())));
    }
    eventually("90 jobs done", Duration::from_secs(60), || async {
        (*seen.done.lock().unwrap() >= 90).then_some(())
    })
    .await;
    for (shutdown, handle) in running {
        shutdown.cancel();
        handle.await.unwrap().unwrap();
    }
    let most = seen.most.lock().unwrap().clone();
    assert_eq!(most.len(), 3);
    assert!(most.values().all(|&m| m <= 2), "at most 2 per group at once: {most:?}");
    assert!(*seen.total_most.lock().unwrap() > 2, "groups ran side by side");
}

#[tokio::test]
async fn the_cli_enqueues_into_groups_sets_group_limits_and_lists_groups() {
    let redis = TestRedis::start().await;
    let url = acl_user_url(&redis).await;
    for (group, n) in [("tenant-1", "1"), ("tenant-1", "2"), ("tenant-2", "3")] {
        let run = queue_cli(&url, &["enqueue", "q", n, "--group", group]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
    }
    let run = queue_cli(
        &url,
        &[
            "limit",
            "q",
            "--group-rate",
            "10/1s",
            "--group-concurrency",
            "3",
            "--group-weight",
            "tenant-2=4",
        ],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "limits of q: group rate 10/1s, group concurrency 3");
    let run = queue_cli(&url, &["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(stats["queues"][0]["limits"]["group_concurrency"], 3, "{}", run.stdout);

    let client = QueueClient::connect(&url).await.unwrap();
    let page = client
        .queue("q")
        .unwrap()
        .jobs(queue::JobState::Pending, 0, 1)
        .await
        .unwrap();
    let run = queue_cli(&url, &["job", "q", &page.jobs[0].id, "--json"]);
    let job: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(job["group"], "tenant-1", "{}", run.stdout);

    let run = queue_cli(&url, &["groups", "q", "--json"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["waiting"], 2);
    assert_eq!(report["groups"][0]["name"], "tenant-1");
    assert_eq!(report["groups"][0]["pending"], 2);
    assert_eq!(report["groups"][1]["weight"], 4);
    let run = queue_cli(&url, &["groups", "q"]);
    assert!(
        run.stdout.contains("tenant-2") && run.stdout.contains("2 groups waiting"),
        "{}",
        run.stdout
    );

    // Bad input: one line naming what is wrong, non-zero, nothing written.
    for (args, wanted) in [
        (vec!["enqueue", "q", "1", "--group", ""], "invalid group"),
        (vec!["limit", "q", "--group-concurrency", "0"], "at least 1"),
        (vec!["limit", "q", "--group-weight", "tenant-2"], "GROUP=N"),
        (vec!["groups", "q", "--limit", "0"], "0"),
    ] {
        let run = queue_cli(&url, &args);
        assert_ne!(run.code, Some(0), "{args:?}");
        assert!(run.stderr.contains(wanted), "{args:?}: {}", run.stderr);
    }
    assert_eq!(client.queue("q").unwrap().stats().await.unwrap().pending, 3);
}

/// A small deterministic generator (xorshift), so a failure replays.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % sides
    }
}

#[tokio::test]
async fn random_operations_lose_no_job_and_keep_every_groups_count_and_limit() {
    let (_redis, q) = acl_queue().await;
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15);
    let job = |dice: &mut Dice, n: u32| {
        let group = match dice.roll(6) {
            5 => String::new(),
            g => format!("g{g}"),
        };
        let job = NewJob::new(
            "k",
            &Task {
                group: group.clone(),
                n,
            },
        )
        .priority(dice.roll(3) as i32)
        .max_attempts(2)
        .backoff(queue::Backoff::fixed(Duration::from_millis(1)));
        if group.is_empty() {
            job
        } else {
            job.group(group)
        }
    };
    q.enqueue(job(&mut dice, 0)).await.unwrap();
    let mut limit: Option<u32> = Some(2);
    q.set_group_concurrency_limit(limit).await.unwrap();
    let (mut enqueued, mut removed) = (1u64, 0u64);
    let mut active: Vec<(queue::Leased, Task)> = Vec::new();
    for step in 0..400u32 {
        match dice.roll(10) {
            0..=2 => {
                let count = 1 + dice.roll(4) as u32;
                let jobs: Vec<_> = (0..count).map(|i| job(&mut dice, step * 10 + i)).collect();
                q.enqueue_bulk(jobs).await.unwrap();
                enqueued += u64::from(count);
            }
            3..=4 => {
                let popped = pop_tasks(&q, 1 + dice.roll(5) as usize).await;
                let groups: Vec<String> = popped.iter().map(|(_, t)| t.group.clone()).collect();
                active.extend(popped);
                for group in groups.iter().filter(|g| !g.is_empty()) {
                    let running = active.iter().filter(|(_, t)| &t.group == group).count();
                    assert!(
                        limit.is_none_or(|l| running <= l as usize),
                        "step {step}: {running} of {group} running, limit {limit:?}"
                    );
                }
            }
            5..=6 if !active.is_empty() => {
                let (leased, _) = active.swap_remove(dice.roll(active.len() as u64) as usize);
                if dice.roll(3) == 0 {
                    q.fail(&leased.lease, "boom", false).await.unwrap();
                } else {
                    assert_eq!(q.complete([&leased.lease]).await.unwrap(), [true]);
                }
            }
            7 => {
                let page = q.jobs(queue::JobState::Pending, 0, 50).await.unwrap();
                if !page.jobs.is_empty() {
                    let id = &page.jobs[dice.roll(page.jobs.len() as u64) as usize].id;
                    if dice.roll(2) == 0 {
                        q.delete_job(id).await.unwrap();
                    } else {
                        q.cancel(id).await.unwrap();
                    }
                    removed += 1;
                }
            }
            8 => {
                limit = [None, Some(1), Some(2), Some(3)][dice.roll(4) as usize];
                q.set_group_concurrency_limit(limit).await.unwrap();
            }
            _ => {
                // What Redis counts per group is what is running.
                let report = q.groups(100).await.unwrap();
                for group in (0..5).map(|g| format!("g{g}")) {
                    let running = active.iter().filter(|(_, t)| t.group == group).count() as u64;
                    let counted = report.groups.iter().find(|g| g.name == group).map_or(0, |g| g.active);
                    assert_eq!(counted, running, "step {step}: running jobs of {group}");
                }
            }
        }
    }
    // Everything left runs to an end once the limit is gone: nothing is stuck or lost.
    q.set_group_concurrency_limit(None).await.unwrap();
    for (leased, _) in active.drain(..) {
        q.complete([&leased.lease]).await.unwrap();
    }
    eventually("every job to end", Duration::from_secs(20), || async {
        for (leased, _) in pop_tasks(&q, 100).await {
            q.complete([&leased.lease]).await.unwrap();
        }
        let s = q.stats().await.unwrap();
        (s.pending + s.scheduled + s.retrying + s.active == 0).then_some(s)
    })
    .await;
    let s = q.stats().await.unwrap();
    assert_eq!(enqueued, s.completed_total + s.dead_total + removed, "{s:?}");
    assert_eq!(q.groups(100).await.unwrap(), queue::GroupsReport::default());
}

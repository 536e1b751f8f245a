//! A queue's limits (`lua/limits.lua`, applied by `lua/pop.lua`) across workers and worker
//! processes, changed while they run, from the API and `queue-cli limit`; as the ACL user.
use std::{
    process::Command,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use queue::{Error, JobContext, Limits, NewJob, QueueClient, Rate, Worker};

use crate::support::{
    acl_user_client, acl_user_url, bin, eventually, run_with_deadline, spawn_queue_worker, spawn_worker, TestRedis,
};

/// `queue-cli` as the ACL user: exit code, stdout, stderr.
fn cli(url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let mut command = Command::new(bin("queue-cli"));
    command
        .args(args)
        .env("QUEUE_REDIS_URL", url)
        .env_remove("QUEUE_PREFIX");
    let out = run_with_deadline(&mut command, "", Duration::from_secs(60));
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (out.status.code(), text(out.stdout), text(out.stderr))
}

#[tokio::test]
async fn the_fetch_takes_no_more_than_the_limits_allow_and_says_when_to_come_back() {
    let redis = TestRedis::start().await;
    let q = acl_user_client(&redis).await.queue("q").unwrap();
    let lease = Duration::from_secs(30);
    q.enqueue_bulk((0..10).map(|i| NewJob::new("k", &i))).await.unwrap();

    q.set_rate_limit(Some("3/10s".parse().unwrap())).await.unwrap();
    let popped = q.pop(10, lease).await.unwrap();
    assert_eq!(popped.jobs.len(), 3, "the rate's window holds 3");
    let empty = q.pop(10, lease).await.unwrap();
    assert!(empty.jobs.is_empty());
    let due = empty.next_due_ms.expect("when the window frees a slot") - empty.now_ms;
    assert!(due > 9_000 && due <= 10_000, "{due} ms");

    q.set_rate_limit(None).await.unwrap();
    q.set_concurrency_limit(Some(4)).await.unwrap();
    let more = q.pop(10, lease).await.unwrap();
    assert_eq!(more.jobs.len(), 1, "3 are active: room for one");
    assert!(q.pop(10, lease).await.unwrap().jobs.is_empty());
    // An attempt that ends makes room for one.
    q.complete([&popped.jobs[0].lease]).await.unwrap();
    assert_eq!(q.pop(10, lease).await.unwrap().jobs.len(), 1);
    let stats = q.stats().await.unwrap();
    assert_eq!((stats.active, stats.pending), (4, 5));
    assert_eq!(
        stats.limits,
        Limits {
            concurrency: Some(4),
            ..Limits::default()
        }
    );
}

#[tokio::test]
async fn a_rate_limit_holds_over_several_windows_with_three_worker_processes() {
    let redis = TestRedis::start().await;
    let url = acl_user_url(&redis).await;
    let rated = QueueClient::connect(&url).await.unwrap().queue("rated").unwrap();
    let dir = tempfile::tempdir().unwrap();
    const JOBS: usize = 50;
    rated
        .enqueue_bulk((0..JOBS).map(|i| NewJob::new("k", &i)))
        .await
        .unwrap();
    let (code, out, err) = cli(&url, &["limit", "rated", "--rate", "10/500ms"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "limits of rated: rate 10/500ms");
    let args = [
        "--queue",
        "rated",
        "--concurrency",
        "5",
        "--exec",
        // The lease's fencing token is the server's clock in µs when the fetch leased the job.
        r#"echo "$QUEUE_JOB_FENCING_TOKEN" >> "$D/starts""#,
    ];
    let _workers: Vec<_> = (0..3)
        .map(|i| spawn_queue_worker(&url, dir.path(), &format!("w{i}"), &args))
        .collect();
    let starts = dir.path().join("starts");
    let mut starts: Vec<u64> = eventually("every job to be leased", Duration::from_secs(30), || async {
        let text = std::fs::read_to_string(&starts).unwrap_or_default();
        let times: Vec<u64> = text
            .lines()
            .filter_map(|l| l.trim().parse::<u64>().ok())
            .map(|us| us / 1000)
            .collect();
        (times.len() >= JOBS).then_some(times)
    })
    .await;
    starts.sort_unstable();
    assert_eq!(starts.len(), JOBS, "each job started once");
    // 10 per 500 ms: 50 jobs need 4 more windows after the first, on the server's clock.
    let span = starts[JOBS - 1] - starts[0];
    assert!(span >= 2_000, "50 jobs at 10/500ms leased within {span} ms");
    let busiest = starts
        .iter()
        .map(|&from| starts.iter().filter(|&&t| t >= from && t < from + 500).count())
        .max()
        .unwrap();
    assert!(busiest <= 10, "{busiest} jobs leased within 500 ms (limit 10)");
    // Workers come back when the window frees a slot, not much later.
    assert!(span < 10_000, "50 jobs at 10/500ms took {span} ms");
    eprintln!("50 jobs at 10/500ms: leased over {span} ms, at most {busiest} in any 500 ms");
}

/// Handlers that count how many of them run at once, and the most they ever saw.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    most: AtomicUsize,
    done: AtomicUsize,
}

impl InFlight {
    fn worker(self: &Arc<Self>, client: QueueClient, queue: &str, hold: Duration) -> Worker {
        let seen = self.clone();
        Worker::builder(client)
            .queue(queue)
            .concurrency(10)
            // Only wake-ups start held-back jobs within the tests' deadlines.
            .idle_recheck(Duration::from_secs(60))
            .handle_kind("k", move |_: u32, _ctx: JobContext| {
                let seen = seen.clone();
                async move {
                    let now = seen.now.fetch_add(1, Ordering::SeqCst) + 1;
                    seen.most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(hold).await;
                    seen.now.fetch_sub(1, Ordering::SeqCst);
                    seen.done.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            })
            .build()
    }

    async fn wait_done(&self, count: usize) {
        eventually(&format!("{count} jobs done"), Duration::from_secs(30), || async {
            (self.done.load(Ordering::SeqCst) >= count).then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn a_concurrency_limit_is_never_exceeded_as_the_handlers_see_it() {
    let redis = TestRedis::start().await;
    let url = acl_user_url(&redis).await;
    let seen = Arc::new(InFlight::default());
    let q = QueueClient::connect(&url).await.unwrap().queue("q").unwrap();
    q.enqueue_bulk((0..60u32).map(|i| NewJob::new("k", &i))).await.unwrap();
    q.set_concurrency_limit(Some(4)).await.unwrap();
    // Three workers of 10 slots, each on connections of its own as in separate processes.
    let mut running = Vec::new();
    for _ in 0..3 {
        let client = QueueClient::connect(&url).await.unwrap();
        running.push(spawn_worker(seen.worker(client, "q", Duration::from_millis(20))));
    }
    seen.wait_done(60).await;
    assert_eq!(seen.most.load(Ordering::SeqCst), 4, "4 at once, never more");
    for (shutdown, worker) in running {
        shutdown.cancel();
        worker.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn limits_changed_while_workers_run_apply_at_once() {
    let redis = TestRedis::start().await;
    let client = acl_user_client(&redis).await;
    let seen = Arc::new(InFlight::default());
    let q = client.queue("q").unwrap();
    q.enqueue(NewJob::new("k", &0u32)).await.unwrap();
    q.set_limits(Limits {
        rate: Some("1/1h".parse().unwrap()),
        ..Limits::default()
    })
    .await
    .unwrap();
    let (shutdown, worker) = spawn_worker(seen.worker(client.clone(), "q", Duration::from_millis(50)));
    seen.wait_done(1).await;
    q.enqueue_bulk((1..21u32).map(|i| NewJob::new("k", &i))).await.unwrap();
    // Held back by the rate: the worker sleeps until the window frees a slot (an hour away).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.done.load(Ordering::SeqCst), 1, "the rate holds the rest back");
    assert_eq!(q.stats().await.unwrap().pending, 20);

    // Raising the limits wakes the worker: it does not wait out the hour (nor its idle recheck).
    let started = Instant::now();
    q.set_concurrency_limit(Some(2)).await.unwrap();
    let limits = q.set_rate_limit(None).await.unwrap();
    assert_eq!(
        limits,
        Limits {
            concurrency: Some(2),
            ..Limits::default()
        }
    );
    seen.wait_done(21).await;
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(seen.most.load(Ordering::SeqCst), 2, "the new concurrency limit held");

    // Cleared: the worker's own 10 slots are the only bound again.
    assert_eq!(q.clear_limits().await.unwrap(), Limits::default());
    seen.most.store(0, Ordering::SeqCst);
    q.enqueue_bulk((0..30u32).map(|i| NewJob::new("k", &i))).await.unwrap();
    seen.wait_done(51).await;
    assert!(seen.most.load(Ordering::SeqCst) > 2, "no limit left");
    shutdown.cancel();
    worker.await.unwrap().unwrap();
}

#[tokio::test]
async fn queue_cli_limit_sets_prints_and_clears_and_refuses_bad_input_in_one_line() {
    let redis = TestRedis::start().await;
    let url = acl_user_url(&redis).await;
    let emails = QueueClient::connect(&url).await.unwrap().queue("emails").unwrap();
    emails.enqueue(NewJob::new("k", &1)).await.unwrap();

    let run = |args: &[&str]| cli(&url, args);
    let (code, out, _) = run(&["limit", "emails"]);
    assert_eq!((code, out.trim()), (Some(0), "limits of emails: none"));
    let (code, out, _) = run(&["limit", "emails", "--rate", "100/1s", "--concurrency", "5"]);
    assert_eq!(
        (code, out.trim()),
        (Some(0), "limits of emails: rate 100/1s, concurrency 5")
    );
    let (_, out, _) = run(&["limit", "emails", "--concurrency", "8"]);
    assert_eq!(
        out.trim(),
        "limits of emails: rate 100/1s, concurrency 8",
        "the rate stays"
    );
    let (_, json, _) = run(&["limit", "emails", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"rate": {"limit": 100, "window_ms": 1000}, "concurrency": 8, "group_rate": null,
            "group_concurrency": null})
    );
    let (_, table, _) = run(&["stats"]);
    assert!(
        table.contains("limits of emails: rate 100/1s, concurrency 8"),
        "{table}"
    );
    let (_, stats, _) = run(&["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["queues"][0]["limits"], json);

    let (code, out, _) = run(&["limit", "emails", "--clear"]);
    assert_eq!((code, out.trim()), (Some(0), "limits of emails: none"));
    assert_eq!(emails.limits().await.unwrap(), Limits::default());

    for (args, says) in [
        (vec!["--rate", "100/0s"], "invalid limit: rate \"100/0s\""),
        (vec!["--rate", "x/1s"], "invalid limit: rate \"x/1s\""),
        (vec!["--rate", "100"], "invalid limit: rate \"100\""),
        (vec!["--concurrency", "0"], "a concurrency limit must be at least 1"),
        (vec!["--concurrency", "-1"], "unexpected argument"),
    ] {
        let mut all = vec!["limit", "emails"];
        all.extend(args.iter().copied());
        let (code, _, err) = run(&all);
        assert_eq!(code, Some(2), "{all:?}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(first.starts_with("error: ") && first.contains(says), "{all:?}: {err}");
    }
    let (code, _, err) = run(&["limit", "nope", "--concurrency", "2"]);
    assert_eq!((code, err.trim()), (Some(1), "error: unknown queue \"nope\""));
    assert!(matches!(
        emails.set_concurrency_limit(Some(0)).await,
        Err(Error::InvalidLimit(_))
    ));
    assert!(matches!("100/0s".parse::<Rate>(), Err(Error::InvalidLimit(_))));
}

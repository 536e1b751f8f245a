//! Named schedules (`lua/cron_*.lua`): one job per tick however many workers run, one catch-up
//! job after an outage, the CLI, the ACL user and Redis Cluster.
use std::{
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use queue::{fred::types::Value, JobContext, NewJob, QueueClient, Schedule, Worker, WorkerReport};
use serde_json::json;
use throwaway_redis::RedisServer;

use crate::{
    locked_down::{acl_setuser, user_url},
    support::{bin, eventually, run_with_deadline, spawn_worker, start, start_cluster},
};

type Running = (
    queue::CancellationToken,
    tokio::task::JoinHandle<queue::Result<WorkerReport>>,
);

/// A worker of queue "q" on its own connection that records the ids of the "tick" jobs it ran.
async fn ticking_worker(url: &str, ran: &Arc<Mutex<Vec<String>>>) -> Running {
    let client = QueueClient::connect(url).await.unwrap();
    let ran = ran.clone();
    let worker = Worker::builder(client)
        .queue("q")
        .handle_kind("tick", move |_: serde_json::Value, ctx: JobContext| {
            let ran = ran.clone();
            async move {
                ran.lock().unwrap().push(ctx.id().to_owned());
                Ok(())
            }
        })
        .build();
    spawn_worker(worker)
}

/// The tick of a schedule's job id, `cron:<name>:<tick ms>`.
fn tick_of(id: &str) -> i64 {
    id.rsplit(':').next().unwrap().parse().unwrap()
}

async fn stop(workers: Vec<Running>) {
    for (shutdown, _) in &workers {
        shutdown.cancel();
    }
    for (_, running) in workers {
        running.await.unwrap().unwrap();
    }
}

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_enqueue_each_tick_once() {
    let q = start().await;
    let every_second = Schedule::new("* * * * * *", NewJob::new("tick", &json!({"n": 1})));
    q.queue().cron_add("every-second", every_second).await.unwrap();
    let ran = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(ticking_worker(&q.redis.url(), &ran).await);
    }
    eventually("four ticks ran", Duration::from_secs(20), || async {
        (ran.lock().unwrap().len() >= 4).then_some(())
    })
    .await;
    stop(workers).await;

    let ran = ran.lock().unwrap().clone();
    let mut ticks: Vec<i64> = ran.iter().map(|id| tick_of(id)).collect();
    ticks.sort();
    // Every second in a row, none twice, none skipped.
    assert!(ticks.windows(2).all(|pair| pair[1] - pair[0] == 1000), "{ticks:?}");
    let stats = q.queue().stats().await.unwrap();
    assert_eq!(
        stats.enqueued_total,
        ran.len() as u64 + stats.pending,
        "one job per tick: {stats:?}"
    );
}

#[tokio::test]
async fn a_tick_is_fired_once_even_by_calls_that_read_it_at_the_same_time() {
    // Two workers that read the schedule together both call the fire script: only the first
    // call enqueues, whatever job id each computed.
    let q = start().await;
    q.client
        .queue("q")
        .unwrap()
        .cron_add("s", Schedule::new("@every 1h", NewJob::new("tick", &1)))
        .await
        .unwrap();
    let listed = q.run_script("queue.cron_list", &[]).await;
    let definition = listed[3].as_bytes().unwrap().to_vec();
    let due = listed[4].as_string().unwrap();
    let sha = sha1_hex(&definition);
    let fire = |id: &'static str| {
        let (due, sha) = (due.clone(), sha.clone());
        let q = &q;
        async move {
            let args = ["s", &due, &sha, "9999999999999", "0|3|f|0|0|0", id, "envelope"];
            q.run_script_as("queue.cron_fire", id, &args).await
        }
    };
    assert_eq!(fire("first").await[0], Value::Integer(0));
    assert_eq!(fire("second").await[0], Value::Integer(4), "SKIPPED");
    let stats = q.queue().stats().await.unwrap();
    assert_eq!((stats.enqueued_total, stats.pending), (1, 1));
    assert_eq!(q.pop_ids(10).await, ["first"]);
}

fn sha1_hex(bytes: &[u8]) -> String {
    sha1_smol::Sha1::from(bytes).digest().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_missed_while_no_worker_ran_make_one_job() {
    let q = start().await;
    q.client
        .queue("q")
        .unwrap()
        .cron_add("s", Schedule::new("@every 1s", NewJob::new("tick", &1)))
        .await
        .unwrap();
    // An outage of ten ticks: the schedule was due ten seconds ago and nobody fired it.
    let started = unix_ms();
    q.hset("schedules", "#s", &(started - 10_000).to_string()).await;
    let ran = Arc::new(Mutex::new(Vec::new()));
    let worker = ticking_worker(&q.redis.url(), &ran).await;
    eventually("a tick after the outage ran", Duration::from_secs(20), || async {
        ran.lock()
            .unwrap()
            .iter()
            .any(|id| tick_of(id) >= started)
            .then_some(())
    })
    .await;
    stop(vec![worker]).await;
    let ran = ran.lock().unwrap().clone();
    let missed: Vec<String> = ran.iter().filter(|id| tick_of(id) < started).cloned().collect();
    assert_eq!(
        missed,
        [format!("cron:s:{}", started - 10_000)],
        "one job for the ten missed ticks"
    );
    // The schedule kept its rhythm: the next tick is a whole number of seconds later.
    let after: Vec<i64> = ran
        .iter()
        .map(|id| tick_of(id))
        .filter(|tick| *tick >= started)
        .collect();
    assert!(
        after.iter().all(|tick| (tick - (started - 10_000)) % 1000 == 0),
        "{after:?}"
    );
}

#[tokio::test]
async fn adding_a_schedule_again_replaces_it_and_removing_it_stops_it() {
    let q = start().await;
    let first = q
        .client
        .queue("q")
        .unwrap()
        .cron_add("s", Schedule::new("@every 1h", NewJob::new("a", &1)))
        .await
        .unwrap();
    assert!(first.next_run_ms > unix_ms() + 3_500_000, "{first:?}");
    q.queue()
        .cron_add(
            "s",
            Schedule::new("0 9 * * 1-5", NewJob::new("b", &json!({"to": "team"}))).time_zone("Europe/Paris"),
        )
        .await
        .unwrap();
    let listed = q.queue().cron_list().await.unwrap();
    assert_eq!(listed.len(), 1);
    let s = &listed[0];
    assert_eq!(
        (s.expression.as_str(), s.time_zone.as_str(), s.kind.as_str(), &s.payload),
        ("0 9 * * 1-5", "Europe/Paris", "b", &json!({"to": "team"}))
    );
    q.queue().cron_remove("s").await.unwrap();
    assert!(q.queue().cron_list().await.unwrap().is_empty());
    let again = q.queue().cron_remove("s").await.unwrap_err();
    assert!(matches!(again, queue::Error::ScheduleNotFound { .. }), "{again}");
    let error = q
        .client
        .queue("q")
        .unwrap()
        .cron_add("bad name", Schedule::new("@hourly", NewJob::new("a", &1)))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("invalid schedule name \"bad name\""),
        "{error}"
    );
}

fn cli(url: &str, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(bin("queue-cli"));
    command
        .args(args)
        .env("QUEUE_REDIS_URL", url)
        .env_remove("QUEUE_PREFIX");
    run_with_deadline(&mut command, "", Duration::from_secs(60))
}

fn ok(output: std::process::Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn error_line(output: std::process::Output) -> String {
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

#[tokio::test]
async fn the_cli_adds_lists_and_removes_schedules_and_names_what_is_wrong() {
    let q = start().await;
    let url = q.redis.url();
    let added = ok(cli(
        &url,
        &[
            "cron",
            "add",
            "reports",
            "daily",
            "30 6 * * *",
            r#"{"kind":"daily"}"#,
            "--tz",
            "Europe/Paris",
            "--kind",
            "report",
        ],
    ));
    assert!(added.starts_with("schedule daily of reports: next run 20"), "{added}");
    ok(cli(&url, &["cron", "add", "emails", "digest", "@every 10m", "{}"]));
    let table = ok(cli(&url, &["cron", "list"]));
    for expected in [
        "daily",
        "30 6 * * *",
        "Europe/Paris",
        "report",
        r#"{"kind":"daily"}"#,
        "digest",
        "@every 10m",
        "UTC",
    ] {
        assert!(table.contains(expected), "{expected} in\n{table}");
    }
    let json: serde_json::Value = serde_json::from_str(&ok(cli(&url, &["cron", "list", "reports", "--json"]))).unwrap();
    let daily = &json["schedules"][0];
    assert_eq!(daily["name"], "daily");
    assert_eq!(daily["time_zone"], "Europe/Paris");
    // 06:30 in Paris is 05:30 UTC in winter and 04:30 UTC in summer.
    let next = daily["next_run_ms"].as_i64().unwrap();
    assert!(
        next > unix_ms() && [5 * 60 + 30, 4 * 60 + 30].contains(&((next / 60_000) % (24 * 60))),
        "{next}"
    );
    assert_eq!(json["schedules"].as_array().unwrap().len(), 1);

    let bad_expression = error_line(cli(&url, &["cron", "add", "q", "s", "61 * * * *", "{}"]));
    assert!(
        bad_expression.contains("invalid schedule \"61 * * * *\""),
        "{bad_expression}"
    );
    let bad_fields = error_line(cli(&url, &["cron", "add", "q", "s", "* * *", "{}"]));
    assert!(bad_fields.contains("expected 5 fields"), "{bad_fields}");
    let bad_zone = error_line(cli(
        &url,
        &["cron", "add", "q", "s", "@daily", "{}", "--tz", "Europe/Atlantis"],
    ));
    assert!(bad_zone.contains("unknown time zone \"Europe/Atlantis\""), "{bad_zone}");
    let bad_json = error_line(cli(&url, &["cron", "add", "q", "s", "@daily", "{"]));
    assert!(bad_json.contains("malformed JSON"), "{bad_json}");

    assert_eq!(
        ok(cli(&url, &["cron", "remove", "reports", "daily"])),
        "removed schedule daily of reports\n"
    );
    let gone = error_line(cli(&url, &["cron", "remove", "reports", "daily"]));
    assert!(gone.contains("no schedule \"daily\" in queue \"reports\""), "{gone}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_fire_as_the_acl_user() {
    let redis = RedisServer::start().unwrap();
    acl_setuser(&redis, "queue", &queue::acl_rules("queue")).await;
    let url = user_url(&redis, "queue");
    let client = QueueClient::connect(&url).await.unwrap();
    client
        .queue("q")
        .unwrap()
        .cron_add("s", Schedule::new("@every 1s", NewJob::new("tick", &1)))
        .await
        .unwrap();
    ok(cli(&url, &["cron", "list", "--json"]));
    let ran = Arc::new(Mutex::new(Vec::new()));
    let worker = ticking_worker(&url, &ran).await;
    eventually("a tick ran", Duration::from_secs(20), || async {
        (!ran.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    stop(vec![worker]).await;
    ok(cli(&url, &["cron", "remove", "q", "s"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_fire_on_a_cluster() {
    let (_cluster, client) = start_cluster().await;
    for queue in ["emails", "images", "reports"] {
        client
            .queue(queue)
            .unwrap()
            .cron_add("s", Schedule::new("@every 1s", NewJob::new("tick", &1)))
            .await
            .unwrap();
    }
    let mut builder = Worker::builder(client.clone()).handle_kind("tick", |_: i32, _ctx: JobContext| async { Ok(()) });
    for queue in ["emails", "images", "reports"] {
        builder = builder.queue(queue);
    }
    let running = spawn_worker(builder.build());
    for queue in ["emails", "images", "reports"] {
        eventually(&format!("a tick of {queue} ran"), Duration::from_secs(20), || async {
            client
                .queue(queue)
                .unwrap()
                .stats()
                .await
                .ok()
                .filter(|s| s.completed_total >= 1)
        })
        .await;
    }
    stop(vec![running]).await;
}

//! The `queue-cli` binary: golden output for a known state, each command, each error path.
use std::{
    process::{Command, Output, Stdio},
    time::Duration,
};

use queue::{Backoff, NewJob, QueueClient};
use serde_json::json;

use crate::support::{bin, lease, run_with_deadline, start, RefusingPort};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn cli(url: &str, args: &[&str]) -> Run {
    cli_with_stdin(url, args, "")
}

fn cli_with_stdin(url: &str, args: &[&str], stdin: &str) -> Run {
    let mut command = Command::new(bin("queue-cli"));
    command
        .args(args)
        .env("QUEUE_REDIS_URL", url)
        .env_remove("QUEUE_PREFIX");
    let Output { status, stdout, stderr } = run_with_deadline(&mut command, stdin, Duration::from_secs(120));
    let run = Run {
        code: status.code(),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    };
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("RUST_BACKTRACE"),
        "{}",
        run.stderr
    );
    run
}

fn ok(run: Run) -> String {
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    run.stdout
}

/// One line on stderr starting with `error: `, exit code 1.
fn error_line(run: Run) -> String {
    assert_eq!(run.code, Some(1), "stdout: {} stderr: {}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {:?}", run.stderr);
    assert!(lines[0].starts_with("error: "), "{}", lines[0]);
    lines[0].to_owned()
}

/// A known state: two queues, every column non-zero somewhere.
async fn known_state(client: &QueueClient) {
    let never = Backoff::fixed(Duration::from_secs(3600));
    let jobs = (0..5).map(|i| NewJob::new("k", &i).backoff(never));
    client.queue("emails").unwrap().enqueue_bulk(jobs).await.unwrap();
    client
        .queue("emails")
        .unwrap()
        .enqueue(NewJob::new("k", &"later").delay(Duration::from_secs(3600)))
        .await
        .unwrap();
    let jobs = client
        .queue("emails")
        .unwrap()
        .pop(4, Duration::from_secs(600))
        .await
        .unwrap()
        .jobs;
    client
        .queue("emails")
        .unwrap()
        .complete([&jobs[0].lease])
        .await
        .unwrap();
    client
        .queue("emails")
        .unwrap()
        .fail(&jobs[1].lease, "smtp down", false)
        .await
        .unwrap();
    client
        .queue("emails")
        .unwrap()
        .fail(&jobs[2].lease, "bad address", true)
        .await
        .unwrap();
    client
        .queue("images")
        .unwrap()
        .enqueue(NewJob::new("k", &1))
        .await
        .unwrap();
    client.queue("images").unwrap().pause().await.unwrap();
}

/// Latency and the Redis line change from run to run.
fn normalise_table(table: &str) -> String {
    table
        .lines()
        .map(|line| {
            if line.starts_with("| ") && !line.starts_with("| QUEUE") {
                let end = line.len() - 1;
                let start = line[..end].rfind('|').unwrap() + 1;
                let width = end - start;
                let cell = line[start..end].trim();
                let shown = if cell.is_empty() {
                    " ".repeat(width)
                } else {
                    format!("{}* ", " ".repeat(width - 2))
                };
                format!("{}{}|", &line[..start], shown)
            } else if let Some(index) = line.find(" · Redis ") {
                format!("{} · Redis <version> · memory used <memory>", &line[..index])
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn stats_table_for_a_known_state() {
    let q = start().await;
    known_state(&q.client).await;
    let table = ok(cli(&q.redis.url(), &["stats"]));
    let expected = "\
+--------+---------+-----------+----------+--------+------+-----------+-----------+------------+---------------+-------+------------+--------+---------+
| QUEUE  | PENDING | SCHEDULED | RETRYING | ACTIVE | DEAD | COMPLETED | ENQUEUED* | COMPLETED* | FAILED TRIES* | DIED* | CANCELLED* | PAUSED | LATENCY |
+======================================================================================================================================================+
| emails |       1 |         1 |        1 |      1 |    1 |         1 |         6 |          1 |             2 |     1 |          0 |     no |       * |
| images |       1 |         0 |        0 |      0 |    0 |         0 |         1 |          0 |             0 |     0 |          0 |    yes |       * |
| TOTAL  |       2 |         1 |        1 |      1 |    1 |         1 |         7 |          1 |             2 |     1 |          0 |        |       * |
+--------+---------+-----------+----------+--------+------+-----------+-----------+------------+---------------+-------+------------+--------+---------+
* all time; the other counts are jobs in each state now
2 queues · Redis <version> · memory used <memory>";
    assert_eq!(normalise_table(&table), expected, "\n{table}");

    let one = ok(cli(&q.redis.url(), &["stats", "images"]));
    assert!(
        one.contains("| images |") && !one.contains("| emails |") && one.contains("1 queue ·"),
        "{one}"
    );
}

#[tokio::test]
async fn stats_json_for_a_known_state() {
    let q = start().await;
    known_state(&q.client).await;
    let mut report: serde_json::Value = serde_json::from_str(&ok(cli(&q.redis.url(), &["stats", "--json"]))).unwrap();
    for row in report["queues"].as_array_mut().unwrap() {
        assert!(row["latency_ms"].is_u64());
        row["latency_ms"] = json!(0);
    }
    assert!(report["totals"]["latency_ms"].is_u64());
    report["totals"]["latency_ms"] = json!(0);
    assert!(report["redis"]["version"].as_str().unwrap().contains('.'));
    assert!(report["redis"]["used_memory_bytes"].as_u64().unwrap() > 0);
    report["redis"] = json!(null);
    let row = |name: &str, counts: [u64; 10], paused: bool| {
        let [pending, scheduled, retrying, active, dead, completed, enqueued_total, completed_total, failed_attempts_total, dead_total] =
            counts;
        let cancelled_total = 0;
        json!({"name": name, "pending": pending, "scheduled": scheduled, "retrying": retrying, "active": active,
               "dead": dead, "completed": completed, "enqueued_total": enqueued_total,
               "completed_total": completed_total, "failed_attempts_total": failed_attempts_total,
               "dead_total": dead_total, "cancelled_total": cancelled_total, "paused": paused, "latency_ms": 0,
               "limits": {"rate": null, "concurrency": null, "group_rate": null, "group_concurrency": null}})
    };
    assert_eq!(
        report,
        json!({
            "queues": [
                row("emails", [1, 1, 1, 1, 1, 1, 6, 1, 2, 1], false),
                row("images", [1, 0, 0, 0, 0, 0, 1, 0, 0, 0], true),
            ],
            "totals": {"pending": 2, "scheduled": 1, "retrying": 1, "active": 1, "dead": 1, "completed": 1,
                       "enqueued_total": 7, "completed_total": 1, "failed_attempts_total": 2, "dead_total": 1,
                       "cancelled_total": 0, "latency_ms": 0},
            "redis": null,
        })
    );
}

#[tokio::test]
async fn stats_watch_redraws_until_interrupted() {
    let q = start().await;
    known_state(&q.client).await;
    let mut child = Command::new(bin("queue-cli"))
        .args(["stats", "--json", "--watch", "100ms"])
        .env("QUEUE_REDIS_URL", q.redis.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Lines are read on a thread, so that a CLI that stops printing fails the test in time
    // instead of blocking it.
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(stdout) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut reports = 0;
    while reports < 3 {
        let line = match lines.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => line.unwrap(),
            Err(error) => {
                let _ = child.kill();
                panic!("no report within 10 s ({error}); {reports} so far");
            }
        };
        if line.starts_with('{') {
            reports += 1;
        }
    }
    // SAFETY: signals our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("stats --watch ignored SIGINT");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success());
}

#[tokio::test]
async fn enqueue_prints_the_id_and_applies_the_options() {
    let q = start().await;
    let url = q.redis.url();
    let id = ok(cli(
        &url,
        &[
            "enqueue",
            "emails",
            r#"{"to": "a@b.c"}"#,
            "--kind",
            "send",
            "--priority",
            "-7",
            "--max-attempts",
            "9",
            "--backoff",
            "exponential:2s:1m",
            "--delay",
            "1h",
        ],
    ));
    let id = id.trim();
    let job = q.client.queue("emails").unwrap().job(id).await.unwrap();
    assert_eq!(job.envelope.payload_json().unwrap(), json!({"to": "a@b.c"}));
    assert_eq!(
        (
            job.envelope.kind.as_str(),
            job.envelope.priority,
            job.envelope.max_attempts
        ),
        ("send", -7, 9)
    );
    assert_eq!(
        job.envelope.backoff,
        Backoff::Exponential {
            base_ms: 2_000,
            cap_ms: 60_000,
            jitter: true
        }
    );
    assert_eq!(job.run_at_ms.unwrap() - job.created_at_ms, 3_600_000);

    let at = ok(cli(
        &url,
        &[
            "enqueue",
            "emails",
            "{}",
            "--at",
            "2030-01-01T10:00:00+02:00",
            "--id",
            "new-year",
        ],
    ));
    assert_eq!(at, "new-year\n");
    assert_eq!(
        q.client
            .queue("emails")
            .unwrap()
            .job("new-year")
            .await
            .unwrap()
            .run_at_ms,
        Some(1_893_484_800_000)
    );

    let again = cli(&url, &["enqueue", "emails", r#"{"other": true}"#, "--id", "new-year"]);
    assert_eq!(again.stderr, "job new-year already exists in emails; nothing written\n");
    assert_eq!(ok(again), "new-year\n");
}

#[tokio::test]
async fn enqueue_from_a_file_in_all_or_none_batches() {
    let q = start().await;
    let url = q.redis.url();
    let lines: String = (0..2_500).map(|i| format!("{{\"n\": {i}}}\n\n")).collect();
    assert_eq!(
        ok(cli_with_stdin(&url, &["enqueue", "bulk", "--file", "-"], &lines)),
        "added 2500 jobs to bulk\n"
    );
    // Several batches are in flight at once, yet the jobs are queued in the file's order.
    let bulk = q.client.queue("bulk").unwrap();
    assert_eq!(bulk.stats().await.unwrap().pending, 2_500);
    let popped = bulk.pop(2_500, Duration::from_secs(30)).await.unwrap().jobs;
    let order: Vec<u64> = popped
        .iter()
        .map(|job| {
            job.envelope().unwrap().decode::<serde_json::Value>().unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(order, (0..2_500).collect::<Vec<u64>>());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.jsonl");
    let mut bad: Vec<String> = (0..1_500).map(|i| format!("{{\"n\": {i}}}")).collect();
    bad[1_199] = r#"{"n": 1199,}"#.into();
    std::fs::write(&path, bad.join("\n")).unwrap();
    let line = error_line(cli(&url, &["enqueue", "partial", "--file", path.to_str().unwrap()]));
    assert_eq!(
        line,
        "error: line 1200: malformed JSON payload: trailing comma at line 1 column 12 \
         (nothing of its batch was written; 1000 jobs from earlier lines were)"
    );
    assert_eq!(
        q.client.queue("partial").unwrap().stats().await.unwrap().pending,
        1_000,
        "the first batch only"
    );

    let missing = error_line(cli(&url, &["enqueue", "q", "--file", "/nonexistent/jobs.jsonl"]));
    assert!(
        missing.starts_with("error: cannot open /nonexistent/jobs.jsonl: No such file"),
        "{missing}"
    );
}

#[tokio::test]
async fn job_shows_a_job_as_text_and_json() {
    let q = start().await;
    let job = NewJob::new("send", &json!({"to": "x"}))
        .id("j1")
        .priority(4)
        .max_attempts(2);
    q.client.queue("emails").unwrap().enqueue(job).await.unwrap();
    let leased = q
        .client
        .queue("emails")
        .unwrap()
        .pop(1, Duration::from_secs(60))
        .await
        .unwrap()
        .jobs
        .remove(0);
    q.client
        .queue("emails")
        .unwrap()
        .fail(&lease("j1", &leased.lease.token), "smtp down", false)
        .await
        .unwrap();
    let text = ok(cli(&q.redis.url(), &["job", "emails", "j1"]));
    let fields: Vec<(&str, &str)> = text.lines().map(|l| (l[..11].trim_end(), l[12..].trim())).collect();
    let get = |name: &str| fields.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).unwrap();
    assert_eq!(get("state"), "retrying");
    assert_eq!(get("attempts"), "1 of 2");
    assert_eq!(get("priority"), "4");
    assert_eq!(get("last error"), "smtp down");
    assert_eq!(get("payload"), r#"{"to":"x"}"#);
    assert!(get("run at").ends_with('Z'));

    let json: serde_json::Value =
        serde_json::from_str(&ok(cli(&q.redis.url(), &["job", "emails", "j1", "--json"]))).unwrap();
    assert_eq!(json["state"], "retrying");
    assert_eq!(json["attempts"], 1);
    assert_eq!(json["payload"], json!({"to": "x"}));
    assert_eq!(json["last_error"], "smtp down");
}

#[tokio::test]
async fn dead_list_retry_and_purge() {
    let q = start().await;
    let url = q.redis.url();
    for id in ["a", "b", "c"] {
        q.client
            .queue("q")
            .unwrap()
            .enqueue(NewJob::new("k", &1).id(id).max_attempts(1))
            .await
            .unwrap();
        let leased = q
            .client
            .queue("q")
            .unwrap()
            .pop(1, Duration::from_secs(60))
            .await
            .unwrap()
            .jobs
            .remove(0);
        q.client
            .queue("q")
            .unwrap()
            .fail(
                &lease(id, &leased.lease.token),
                &format!("{id} broke\nsecond line"),
                false,
            )
            .await
            .unwrap();
    }
    let list = ok(cli(&url, &["dead", "list", "q"]));
    let header = list.lines().find(|l| l.starts_with("| ID ")).expect("a header row");
    let columns: Vec<&str> = header.split('|').map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(columns, ["ID", "ATTEMPTS", "FAILED AT", "ERROR"], "{list}");
    for id in ["a", "b", "c"] {
        assert!(list.contains(&format!("{id} broke / second line")), "{list}");
    }
    assert!(list.ends_with("3 of 3 dead jobs\n"), "{list}");
    let json: serde_json::Value = serde_json::from_str(&ok(cli(&url, &["dead", "list", "q", "--json"]))).unwrap();
    assert_eq!(json["total"], 3);
    let first = &json["jobs"][0];
    assert!(first["id"].is_string() && first["attempts"] == 1 && first["failed_at_ms"].as_i64().unwrap() > 0);
    assert!(first["error"].as_str().unwrap().ends_with("broke\nsecond line"));

    assert_eq!(
        ok(cli(&url, &["dead", "retry", "q", "a"])),
        "moved 1 jobs from the dead letter back to q\n"
    );
    let missing = error_line(cli(&url, &["dead", "retry", "q", "a"]));
    assert_eq!(missing, "error: job \"a\" is not in the dead letter of queue \"q\"");
    assert_eq!(
        ok(cli(&url, &["dead", "retry", "q", "--all"])),
        "moved 2 jobs from the dead letter back to q\n"
    );
    let stats = q.queue().stats().await.unwrap();
    assert_eq!((stats.pending, stats.dead), (3, 0));
    for leased in q.queue().pop(3, Duration::from_secs(60)).await.unwrap().jobs {
        q.client
            .queue("q")
            .unwrap()
            .fail(&leased.lease, "again", true)
            .await
            .unwrap();
    }
    assert_eq!(ok(cli(&url, &["dead", "purge", "q"])), "purged 3 dead jobs from q\n");
    assert_eq!(ok(cli(&url, &["dead", "list", "q"])), "the dead letter of q is empty\n");
}

#[tokio::test]
async fn pause_resume_queues_and_scripts() {
    let q = start().await;
    let url = q.redis.url();
    for name in ["b", "a"] {
        q.client
            .queue(name)
            .unwrap()
            .enqueue(NewJob::new("k", &1))
            .await
            .unwrap();
    }
    assert_eq!(ok(cli(&url, &["queues"])), "a\nb\n");
    assert_eq!(ok(cli(&url, &["pause", "a"])), "paused a\n");
    assert!(q.client.queue("a").unwrap().stats().await.unwrap().paused);
    assert_eq!(ok(cli(&url, &["resume", "a"])), "resumed a\n");
    assert!(!q.client.queue("a").unwrap().stats().await.unwrap().paused);

    // One row per queue script: name, SHA1, loaded.
    let rows = |table: &str| -> Vec<[String; 3]> {
        table
            .lines()
            .filter(|l| l.starts_with("| queue."))
            .map(|l| {
                let cells: Vec<String> = l
                    .split('|')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty())
                    .collect();
                cells
                    .try_into()
                    .unwrap_or_else(|cells| panic!("three cells: {cells:?}"))
            })
            .collect()
    };
    let mut expected: Vec<&str> = queue::low_level::Command::ALL.iter().map(|c| c.name()).collect();
    expected.sort();
    let scripts = ok(cli(&url, &["scripts"]));
    let before = rows(&scripts);
    let mut names: Vec<&str> = before.iter().map(|[name, _, _]| name.as_str()).collect();
    names.sort();
    assert_eq!(names, expected, "{scripts}");
    for [name, sha1, _] in &before {
        assert_eq!(sha1, q.client.scripts().get(name).unwrap().sha1(), "{name}");
    }
    let loaded = |rows: &[[String; 3]], name: &str| rows.iter().find(|[n, _, _]| n == name).unwrap()[2].clone();
    assert_eq!(loaded(&before, "queue.push"), "yes", "{scripts}");
    let _: () = queue::fred::interfaces::LuaInterface::script_flush(q.client.redis(), false)
        .await
        .unwrap();
    let scripts = ok(cli(&url, &["scripts"]));
    let after = rows(&scripts);
    assert_eq!(after.len(), expected.len(), "{scripts}");
    assert!(after.iter().all(|[_, _, loaded]| loaded == "no"), "{scripts}");
}

#[tokio::test]
async fn errors_are_one_clear_line_with_a_non_zero_exit() {
    let q = start().await;
    let url = q.redis.url();
    q.queue().enqueue(NewJob::new("k", &1)).await.unwrap();
    assert_eq!(
        error_line(cli(&url, &["stats", "nope"])),
        "error: unknown queue \"nope\""
    );
    assert_eq!(
        error_line(cli(&url, &["resume", "a{b}"])),
        "error: invalid queue name \"a{b}\": braces are reserved for the hash tag"
    );
    assert_eq!(
        error_line(cli(&url, &["job", "q", "nope"])),
        "error: job \"nope\" not found in queue \"q\""
    );
    assert_eq!(
        error_line(cli(&url, &["enqueue", "q", r#"{"to": }"#])),
        "error: malformed JSON payload: expected value at line 1 column 8"
    );
    assert_eq!(
        error_line(cli(&url, &["enqueue", "a{b}", "{}"])),
        "error: invalid queue name \"a{b}\": braces are reserved for the hash tag"
    );
    let big = format!("\"{}\"\n", "x".repeat(1 << 20));
    assert_eq!(
        error_line(cli_with_stdin(&url, &["enqueue", "q", "--file", "-"], &big)),
        "error: line 1: payload of 1048581 bytes exceeds the limit of 1048576 bytes \
         (nothing of its batch was written; 0 jobs from earlier lines were)"
    );
    let usage = cli(&url, &["enqueue", "q", "{}", "--delay", "-5s"]);
    assert_eq!(usage.code, Some(2));
    assert!(usage.stderr.contains("a delay cannot be negative"), "{}", usage.stderr);
}

#[tokio::test]
async fn an_unreachable_redis_is_named_with_the_password_masked() {
    let refusing = RefusingPort::new();
    let port = refusing.port();
    let url = format!("redis://ops:hunter2@127.0.0.1:{port}");
    let line = error_line(cli(&url, &["stats"]));
    assert_eq!(
        line,
        format!("error: cannot connect to Redis at redis://ops:***@127.0.0.1:{port}: connection refused (is redis-server running there?)")
    );
    assert!(!line.contains("hunter2"));
}

#[tokio::test]
async fn a_wrong_password_says_so() {
    let redis = throwaway_redis::RedisServer::start_with(throwaway_redis::Options {
        args: vec!["--requirepass".into(), "right-one".into()],
        ..Default::default()
    })
    .unwrap();
    let url = format!("redis://:wrong-one@127.0.0.1:{}", redis.port());
    let line = error_line(cli(&url, &["queues"]));
    assert_eq!(
        line,
        format!(
            "error: cannot connect to Redis at redis://:***@127.0.0.1:{}: wrong username or password",
            redis.port()
        )
    );
    let no_password = error_line(cli(&format!("redis://127.0.0.1:{}", redis.port()), &["queues"]));
    assert!(no_password.contains("authentication required"), "{no_password}");
    assert_eq!(
        ok(cli(
            &format!("redis://:right-one@127.0.0.1:{}", redis.port()),
            &["queues"]
        )),
        ""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_reports_every_figure_and_cleans_up() {
    let q = start().await;
    let url = q.redis.url();
    let args = [
        "bench",
        "--jobs",
        "500",
        "--concurrency",
        "20",
        "--backlog",
        "100",
        "--idle-workers",
        "2",
    ];
    let more = ["--idle-time", "200ms", "--pickup-samples", "5", "--json"];
    let report: serde_json::Value = serde_json::from_str(&ok(cli(&url, &[&args[..], &more[..]].concat()))).unwrap();
    for figure in [
        "redis_evalsha_per_s",
        "enqueue_jobs_per_s",
        "process_jobs_per_s",
        "pickup_p50_ms",
        "pickup_p99_ms",
    ] {
        assert!(report[figure].as_f64().unwrap() > 0.0, "{figure}: {report}");
    }
    assert!(report["peak_rss_bytes"].as_u64().unwrap() > 1_000_000);
    for figure in [
        "redis_idle_cpu_percent",
        "enqueue_redis_cpu_percent",
        "process_redis_cpu_percent",
        "redis_us_per_job_enqueue",
        "redis_us_per_job_process",
        "worker_us_per_job_process",
        "redis_bytes_per_job",
    ] {
        assert!(report[figure].as_f64().is_some(), "{figure}: {report}");
    }
    // Each ratio is its rate over the ceiling (rounded to hundredths: a slow run may show 0.00).
    let ceiling = report["redis_evalsha_per_s"].as_f64().unwrap();
    for phase in ["enqueue", "process"] {
        let rate = report[format!("{phase}_jobs_per_s")].as_f64().unwrap();
        let ratio = report[format!("{phase}_ratio")].as_f64().unwrap();
        assert!((ratio - rate / ceiling).abs() <= 0.005 + 1e-9, "{phase}: {report}");
    }
    assert_eq!(
        (report["jobs"].as_u64(), report["backlog"].as_u64()),
        (Some(500), Some(100))
    );
    // The temporary queue and its keys are gone.
    assert_eq!(ok(cli(&url, &["queues"])), "");
    use queue::fred::interfaces::ClientLike;
    let keys: Vec<String> = q
        .client
        .redis()
        .custom(
            queue::fred::types::CustomCommand::new_static("KEYS", queue::fred::types::ClusterHash::Random, false),
            vec!["*"],
        )
        .await
        .unwrap();
    assert!(keys.iter().all(|k| !k.contains("bench-")), "{keys:?}");
}

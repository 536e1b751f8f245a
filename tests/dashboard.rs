//! `queue-cli dashboard` in a real browser (headless Chromium, `browser.rs`) against a real
//! Redis with jobs in every state: what a person sees, the actions they click, what changed in
//! Redis, the token beyond loopback, and the Redis password kept out of every page.
use std::time::Duration;

use fantoccini::Client;
use queue::{fred::interfaces::ClientLike, Backoff, JobState, Limits, NewJob, QueueClient, Schedule};

use crate::{
    browser::{browser, click, find, text},
    support::{bin, eventually, run_with_deadline, Process, TestRedis},
};

/// The password of the dashboard's Redis user: no page may show it.
const PASSWORD: &str = "dashboard-s3cret-pw";

/// A real Redis with two queues, jobs in every state, and a dashboard on it that connects as
/// an ACL user with the documented rules and a password.
struct Running {
    url: String,
    admin: QueueClient,
    redis_port: u16,
    _dashboard: Process,
    _redis: TestRedis,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn start(extra: &[&str]) -> Self {
        let redis = TestRedis::start().await;
        let admin = QueueClient::connect(&redis.url()).await.unwrap();
        let mut args = vec!["dash".to_owned(), "on".into(), format!(">{PASSWORD}")];
        args.extend(queue::acl_rules("queue").split(' ').map(str::to_owned));
        let setuser = queue::fred::types::CustomCommand::new_static(
            "ACL SETUSER",
            queue::fred::types::ClusterHash::Random,
            false,
        );
        let _: () = admin.redis().custom(setuser, args).await.unwrap();
        known_state(&admin).await;
        let dir = tempfile::tempdir().unwrap();
        let mut command = std::process::Command::new(bin("queue-cli"));
        command
            .args(["dashboard", "--sample-every", "200ms"])
            .args(if extra.is_empty() {
                &["--listen", "127.0.0.1:0"][..]
            } else {
                extra
            })
            .env(
                "QUEUE_REDIS_URL",
                format!("redis://dash:{PASSWORD}@127.0.0.1:{}", redis.port()),
            )
            .env_remove("QUEUE_PREFIX")
            .env_remove("QUEUE_DASHBOARD_TOKEN");
        let dashboard = Process::spawn(command, dir.path().join("dashboard.log"));
        let url = eventually("the dashboard's address", Duration::from_secs(20), || async {
            let output = dashboard.output();
            let line = output.lines().find(|l| l.starts_with("dashboard listening on "))?;
            let url = line.trim_start_matches("dashboard listening on ").trim_end_matches('/');
            Some(url.replace("0.0.0.0", "127.0.0.1"))
        })
        .await;
        Running {
            url,
            redis_port: redis.port(),
            admin,
            _dashboard: dashboard,
            _redis: redis,
            _dir: dir,
        }
    }

    /// Opens `path` and checks the page as a whole: no Redis password in it.
    async fn visit(&self, browser: &Client, path: &str) {
        browser.goto(&format!("{}{path}", self.url)).await.unwrap();
        self.no_password(browser).await;
    }

    async fn no_password(&self, browser: &Client) {
        let source = browser.source().await.unwrap();
        assert!(
            !source.contains(PASSWORD),
            "the password is on {path}",
            path = browser.current_url().await.unwrap()
        );
    }

    async fn stats(&self, queue: &str) -> queue::QueueStats {
        self.admin.queue(queue).unwrap().stats().await.unwrap()
    }
}

/// emails: 2 pending, 1 scheduled, 1 retrying, 1 active (with progress 40), 2 dead, 1
/// completed (with a result); limits, and a schedule;
/// images: 31 pending (more than a page), paused;
/// reports: jobs of two groups, acme (weight 2) and globex, at most 1 running per group.
async fn known_state(admin: &QueueClient) {
    let emails = admin.queue("emails").unwrap();
    let never = Backoff::fixed(Duration::from_secs(3600));
    let ids = [
        "welcome-ann",
        "welcome-bob",
        "receipt-1042",
        "reset-cara",
        "digest-weekly",
        "welcome-dan",
        "welcome-eve",
    ];
    let jobs = ids.map(|id| {
        let to = format!("{}@example.com", id.rsplit('-').next().unwrap());
        NewJob::new("send_email", &serde_json::json!({ "to": to, "template": id }))
            .id(id)
            .backoff(never)
    });
    emails.enqueue_bulk(jobs).await.unwrap();
    let later = NewJob::new("send_email", &serde_json::json!({ "to": "all@example.com" }))
        .id("newsletter")
        .delay(Duration::from_secs(3600));
    emails.enqueue(later).await.unwrap();
    let leased = emails.pop(5, Duration::from_secs(600)).await.unwrap().jobs;
    let lease = |id: &str| &leased.iter().find(|j| j.lease.id == id).expect("leased").lease;
    let result = br#"{"message_id":"<ann-1@mx.example.com>"}"#;
    emails
        .complete_with_results([lease("welcome-ann")], &[("welcome-ann", &result[..])])
        .await
        .unwrap();
    emails
        .progress(lease("digest-weekly"), &serde_json::json!(40))
        .await
        .unwrap();
    let limits = Limits {
        rate: Some("100/1s".parse().unwrap()),
        concurrency: Some(20),
        ..Limits::default()
    };
    emails.set_limits(limits).await.unwrap();
    let digest = NewJob::new("send_digest", &serde_json::json!({ "list": "weekly" }));
    emails
        .cron_add(
            "weekly-digest",
            Schedule::new("0 8 * * 1", digest).time_zone("Europe/Paris"),
        )
        .await
        .unwrap();
    emails
        .fail(
            lease("welcome-bob"),
            "smtp: connection refused by mx.example.com",
            false,
        )
        .await
        .unwrap();
    emails
        .fail(lease("receipt-1042"), "bad address: mailbox unavailable", true)
        .await
        .unwrap();
    emails
        .fail(lease("reset-cara"), "template reset.html missing", true)
        .await
        .unwrap();
    let images = admin.queue("images").unwrap();
    let resizes = (0..31).map(|n| NewJob::new("resize", &serde_json::json!({ "w": 640 })).id(format!("img-{n:02}")));
    images.enqueue_bulk(resizes).await.unwrap();
    images.pause().await.unwrap();
    let reports = admin.queue("reports").unwrap();
    let tenants = ["acme", "acme", "acme", "globex"];
    let grouped = tenants.map(|tenant| NewJob::new("render", &serde_json::json!({ "tenant": tenant })).group(tenant));
    reports.enqueue_bulk(grouped).await.unwrap();
    reports.set_group_concurrency_limit(Some(1)).await.unwrap();
    reports.set_group_weight("acme", Some(2)).await.unwrap();
}

/// Waits until the element `css` selects reads `expected` (after a navigation or a live
/// refresh), failing with what it read instead.
async fn shows(browser: &Client, css: &str, expected: &str) {
    let mut last = String::new();
    let found = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if let Ok(element) = browser.find(fantoccini::Locator::Css(css)).await {
                last = element.text().await.unwrap_or_default();
                if last.contains(expected) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(found.is_ok(), "{css} reads {last:?}, not {expected:?}");
}

#[tokio::test]
async fn the_overview_shows_every_queue_with_its_counts_and_stays_live() {
    let running = Running::start(&[]).await;
    let browser = browser().await;
    running.visit(&browser, "/").await;
    let cell = |queue: &str, state: &str| format!("tr[data-queue='{queue}'] td[data-state='{state}']");
    let expected = [
        ("pending", "2"),
        ("scheduled", "1"),
        ("retrying", "1"),
        ("active", "1"),
        ("dead", "2"),
        ("completed", "1"),
    ];
    for (state, count) in expected {
        assert_eq!(text(&browser, &cell("emails", state)).await, count, "emails {state}");
    }
    assert_eq!(
        text(&browser, "tr[data-queue='images'] td[data-field='paused']").await,
        "paused"
    );
    assert_eq!(
        text(&browser, "tr[data-queue='emails'] td[data-field='paused']").await,
        "no"
    );
    assert!(text(&browser, "tr[data-queue='emails'] td a").await.contains("emails"));

    // Live: a job completed now shows up without reloading, and so does the chart's first rate.
    let emails = running.admin.queue("emails").unwrap();
    let popped = emails.pop(1, Duration::from_secs(60)).await.unwrap().jobs;
    emails.complete([&popped[0].lease]).await.unwrap();
    shows(&browser, &cell("emails", "pending"), "1").await;
    shows(&browser, &cell("emails", "completed"), "2").await;
    find(&browser, "figure.chart polyline.processed").await;
    running.no_password(&browser).await;
}

#[tokio::test]
async fn a_queue_page_shows_its_limits_schedules_and_jobs_and_a_job_page_its_error_result_and_progress() {
    let running = Running::start(&[]).await;
    let browser = browser().await;
    running.visit(&browser, "/queues/emails").await;
    assert_eq!(text(&browser, "[data-state='dead'] dd").await, "2");
    // The limits and the schedule, with its next run in its time zone.
    assert_eq!(text(&browser, "[data-limit='rate'] dd").await, "100/1s");
    assert_eq!(text(&browser, "[data-limit='concurrency'] dd").await, "20");
    let schedule = text(&browser, "tr[data-schedule='weekly-digest']").await;
    assert!(
        schedule.contains("0 8 * * 1") && schedule.contains("Europe/Paris") && schedule.contains("send_digest"),
        "{schedule}"
    );
    // 8:00 in Paris is 7:00 UTC in winter, 6:00 in summer.
    let next = text(&browser, "tr[data-schedule='weekly-digest'] [data-field='next-run']").await;
    assert!(next.ends_with("T07:00:00Z") || next.ends_with("T06:00:00Z"), "{next}");
    // A queue without either says how to add them.
    running.visit(&browser, "/queues/images").await;
    assert_eq!(text(&browser, "[data-limit='rate'] dd").await, "none");
    assert!(text(&browser, "#schedules").await.contains("queue-cli cron add images"));
    // A queue of groups: its group limit and its busiest groups.
    running.visit(&browser, "/queues/reports").await;
    assert_eq!(text(&browser, "[data-limit='group-concurrency'] dd").await, "1");
    let acme = text(&browser, "tr[data-group='acme']").await;
    assert!(
        acme.contains("acme") && acme.contains('3') && acme.contains('2'),
        "{acme}"
    );
    assert!(text(&browser, "tr[data-group='globex']").await.contains("globex"));
    click(&browser, "a[data-tab='pending']").await;
    click(&browser, "#jobs tbody tr:first-child a").await;
    assert!(["acme", "globex"].contains(&text(&browser, "#group").await.as_str()));
    running.visit(&browser, "/queues/emails").await;
    // The pending jobs first, in the order workers take them; a tab per state.
    assert_eq!(text(&browser, "#jobs h2").await, "Pending jobs (2)");
    assert!(text(&browser, "#jobs tbody tr:first-child")
        .await
        .contains("welcome-dan"));
    click(&browser, "a[data-tab='dead']").await;
    shows(&browser, "#jobs h2", "Dead jobs (2)").await;
    let row = text(&browser, "tr[data-job='receipt-1042']").await;
    assert!(row.contains("bad address: mailbox unavailable"), "{row}");

    // The job's page, through its link.
    click(&browser, "tr[data-job='reset-cara'] a").await;
    assert_eq!(text(&browser, "#state").await, "dead");
    assert!(text(&browser, "pre.error")
        .await
        .contains("template reset.html missing"));
    assert!(text(&browser, "pre.payload").await.contains("cara@example.com"));
    running.no_password(&browser).await;

    // A completed job's result, a running job's progress.
    running.visit(&browser, "/queues/emails/jobs/welcome-ann").await;
    assert!(text(&browser, "#result pre.result")
        .await
        .contains(r#""message_id": "<ann-1@mx.example.com>""#));
    running.visit(&browser, "/queues/emails/jobs/digest-weekly").await;
    assert_eq!(text(&browser, "#progress").await, "40");
    let bar = find(&browser, "#progress progress").await;
    assert_eq!(bar.attr("value").await.unwrap().as_deref(), Some("40"));

    // Lookup by id, of a job in another state.
    running.visit(&browser, "/queues/emails").await;
    find(&browser, "#lookup-id")
        .await
        .send_keys("welcome-bob")
        .await
        .unwrap();
    click(&browser, "form.lookup button").await;
    assert_eq!(text(&browser, "#state").await, "retrying");
    assert!(text(&browser, "pre.error").await.contains("connection refused"));

    // Paging: 31 pending images, 25 a page.
    running.visit(&browser, "/queues/images?state=pending").await;
    assert_eq!(
        browser
            .find_all(fantoccini::Locator::Css("#jobs tbody tr"))
            .await
            .unwrap()
            .len(),
        25
    );
    click(&browser, "#next").await;
    shows(&browser, "p.pager", "26–31 of 31").await;
    assert!(text(&browser, "#jobs tbody tr:last-child").await.contains("img-30"));

    // An unknown job is a page that says so.
    running.visit(&browser, "/queues/emails/jobs/nope").await;
    assert!(
        text(&browser, "p.error").await.contains("nope"),
        "the error names the job"
    );
    running.visit(&browser, "/queues/emails/confirm/purge").await;
    running.visit(&browser, "/api/queues").await;
    running.visit(&browser, "/api/queues/emails/jobs/reset-cara").await;
}

#[tokio::test]
async fn a_dead_job_is_retried_the_dead_letter_purged_and_a_queue_paused_through_the_page() {
    let running = Running::start(&[]).await;
    let browser = browser().await;
    running.visit(&browser, "/queues/emails?state=dead").await;

    // One dead job back to pending.
    click(&browser, "tr[data-job='receipt-1042'] button.retry").await;
    shows(&browser, "p.notice", "Moved 1 job from the dead letter").await;
    let job = running
        .admin
        .queue("emails")
        .unwrap()
        .job("receipt-1042")
        .await
        .unwrap();
    assert_eq!(job.state, JobState::Pending);

    // Purge asks first: cancelling keeps the job, confirming deletes it.
    click(&browser, "#purge").await;
    assert!(text(&browser, "p.question")
        .await
        .contains("Delete 1 dead job of emails for good?"));
    click(&browser, "#cancel").await;
    assert_eq!(running.stats("emails").await.dead, 1);
    click(&browser, "#purge").await;
    click(&browser, "#confirm").await;
    shows(&browser, "p.notice", "Purged 1 dead job.").await;
    assert_eq!(running.stats("emails").await.dead, 0);

    // Pause and resume.
    click(&browser, "#pause").await;
    shows(&browser, "p.notice", "Paused emails").await;
    assert!(running.stats("emails").await.paused);
    click(&browser, "#resume").await;
    shows(&browser, "p.notice", "Resumed emails").await;
    assert!(!running.stats("emails").await.paused);
    running.no_password(&browser).await;

    // A form without this dashboard's form token changes nothing.
    let script = "const done = arguments[0];
        fetch('/queues/emails/pause', { method: 'POST', body: new URLSearchParams({ csrf: 'forged' }) })
          .then(r => done(r.status));";
    assert_eq!(browser.execute_async(script, vec![]).await.unwrap(), 403);
    assert!(!running.stats("emails").await.paused);
}

#[tokio::test]
async fn retry_all_asks_first_and_moves_every_dead_job() {
    let running = Running::start(&[]).await;
    let browser = browser().await;
    running.visit(&browser, "/queues/emails?state=dead").await;
    click(&browser, "#retry-all").await;
    assert!(text(&browser, "p.question")
        .await
        .contains("Move 2 dead jobs of emails back to pending"));
    click(&browser, "#confirm").await;
    shows(&browser, "p.notice", "Moved 2 jobs").await;
    let stats = running.stats("emails").await;
    assert_eq!((stats.dead, stats.pending), (0, 4));
}

#[tokio::test]
async fn a_job_is_deleted_run_now_or_cancelled_and_a_queue_drained_through_the_page() {
    let running = Running::start(&[]).await;
    let browser = browser().await;
    let emails = running.admin.queue("emails").unwrap();

    // Delete asks first, on the job's page.
    running.visit(&browser, "/queues/emails/jobs/welcome-dan").await;
    click(&browser, "#job-actions a.delete").await;
    assert!(text(&browser, "p.question")
        .await
        .contains("Delete job welcome-dan (pending) of emails"));
    click(&browser, "#confirm").await;
    shows(&browser, "p.notice", "Deleted the job.").await;
    assert!(matches!(
        emails.job("welcome-dan").await,
        Err(queue::Error::JobNotFound { .. })
    ));

    // A scheduled job runs now.
    running.visit(&browser, "/queues/emails?state=scheduled").await;
    click(&browser, "tr[data-job='newsletter'] button.run-now").await;
    shows(&browser, "p.notice", "pending now").await;
    assert_eq!(emails.job("newsletter").await.unwrap().state, JobState::Pending);

    // A running job offers no delete.
    running.visit(&browser, "/queues/emails/jobs/digest-weekly").await;
    assert_eq!(text(&browser, "#state").await, "active");
    assert!(browser
        .find_all(fantoccini::Locator::Css("#job-actions a.delete"))
        .await
        .unwrap()
        .is_empty());

    // Cancel asks first; keeping the job leads back to it.
    let cancelled_before = running.stats("emails").await.cancelled_total;
    running.visit(&browser, "/queues/emails/jobs/welcome-eve").await;
    click(&browser, "#job-actions a.cancel-job").await;
    assert!(text(&browser, "p.question")
        .await
        .contains("Cancel job welcome-eve (pending) of emails?"));
    click(&browser, "#cancel").await;
    assert_eq!(text(&browser, "#state").await, "pending");
    click(&browser, "#job-actions a.cancel-job").await;
    click(&browser, "#confirm").await;
    shows(&browser, "p.notice", "it was waiting, and is removed").await;
    // The running job: its lease ends now.
    running.visit(&browser, "/queues/emails/jobs/digest-weekly").await;
    click(&browser, "#job-actions a.cancel-job").await;
    assert!(text(&browser, "p.question").await.contains("It is running"));
    click(&browser, "#confirm").await;
    shows(&browser, "p.notice", "it was running, and its worker stops it").await;
    let stats = running.stats("emails").await;
    assert_eq!((stats.active, stats.cancelled_total), (0, cancelled_before + 2));
    for id in ["welcome-eve", "digest-weekly"] {
        // Forgotten, or kept as cancelled where cancelled jobs stay visible.
        match emails.job(id).await {
            Err(queue::Error::JobNotFound { .. }) => {}
            Ok(job) => assert_eq!(job.state.as_str(), "cancelled", "{id}"),
            Err(error) => panic!("{id}: {error}"),
        }
    }
    // A finished job offers no cancel.
    running.visit(&browser, "/queues/emails/jobs/reset-cara").await;
    find(&browser, "#job-actions a.delete").await;
    assert!(browser
        .find_all(fantoccini::Locator::Css("#job-actions a.cancel-job"))
        .await
        .unwrap()
        .is_empty());

    // Drain: every waiting job of images, after the question.
    running.visit(&browser, "/queues/images").await;
    click(&browser, "#drain").await;
    assert!(text(&browser, "p.question")
        .await
        .contains("Remove 31 waiting jobs of images"));
    click(&browser, "#confirm").await;
    shows(&browser, "p.notice", "Removed 31 waiting jobs.").await;
    assert_eq!(running.stats("images").await.pending, 0);
    running.no_password(&browser).await;
}

#[tokio::test]
async fn beyond_loopback_the_dashboard_needs_a_token() {
    // Without one it refuses to start, in one line.
    let mut command = std::process::Command::new(bin("queue-cli"));
    command
        .args(["dashboard", "--listen", "0.0.0.0:0"])
        .env_remove("QUEUE_DASHBOARD_TOKEN");
    let output = run_with_deadline(&mut command, "", Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with("error: listening on 0.0.0.0:0 (beyond loopback) needs --token"),
        "{stderr}"
    );

    let running = Running::start(&["--listen", "0.0.0.0:0", "--token", "t0ken-for-test"]).await;
    let browser = browser().await;
    running.visit(&browser, "/").await;
    assert!(text(&browser, "body").await.contains("needs its token"));
    // The API answers a bearer token, and nothing else.
    let status = |auth: &'static str| {
        let browser = &browser;
        async move {
            let script = "const [auth, done] = arguments;
                fetch('/api/queues', { headers: auth ? { Authorization: auth } : {} })
                  .then(r => done(r.status));";
            browser.execute_async(script, vec![auth.into()]).await.unwrap()
        }
    };
    assert_eq!(status("").await, 401);
    assert_eq!(status("Bearer wrong").await, 401);
    assert_eq!(status("Bearer t0ken-for-test").await, 200);
    // A person opens it once with ?token=: a cookie keeps it, the address bar drops it.
    running.visit(&browser, "/queues/emails?token=t0ken-for-test").await;
    assert_eq!(browser.current_url().await.unwrap().query(), None);
    assert_eq!(text(&browser, "[data-state='dead'] dd").await, "2");
    running.visit(&browser, "/").await;
    assert!(text(&browser, "tr[data-queue='images']").await.contains("images"));
}

#[tokio::test]
async fn the_api_answers_in_the_shapes_of_the_cli_json() {
    let running = Running::start(&[]).await;
    let browser = browser().await;
    let get = |path: &'static str| {
        let browser = &browser;
        async move {
            let script = "const [path, done] = arguments; fetch(path).then(r => r.json()).then(done);";
            browser.execute_async(script, vec![path.into()]).await.unwrap()
        }
    };
    running.visit(&browser, "/").await;
    let cli = |args: &[&str]| {
        let mut command = std::process::Command::new(bin("queue-cli"));
        command
            .args(args)
            .env(
                "QUEUE_REDIS_URL",
                format!("redis://dash:{PASSWORD}@127.0.0.1:{}", running.redis_port),
            )
            .env_remove("QUEUE_PREFIX");
        let output = run_with_deadline(&mut command, "", Duration::from_secs(60));
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    assert_eq!(
        get("/api/queues/emails/jobs/reset-cara").await,
        cli(&["job", "emails", "reset-cara", "--json"])
    );
    assert_eq!(
        get("/api/queues/emails/dead").await,
        cli(&["dead", "list", "emails", "--json"])
    );
    assert_eq!(
        get("/api/queues/emails/limits").await,
        cli(&["limit", "emails", "--json"])
    );
    assert_eq!(
        get("/api/queues/emails/cron").await,
        cli(&["cron", "list", "emails", "--json"])
    );
    assert_eq!(
        get("/api/queues/reports/limits").await,
        cli(&["limit", "reports", "--json"])
    );
    assert_eq!(
        get("/api/queues/reports/groups").await,
        cli(&["groups", "reports", "--json"])
    );
    assert_eq!(
        get("/api/queues/emails/jobs/welcome-ann").await,
        cli(&["job", "emails", "welcome-ann", "--json"])
    );
    let api = get("/api/queues").await;
    let stats = cli(&["stats", "--json"]);
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&api), keys(&stats));
    assert_eq!(keys(&api["queues"][0]), keys(&stats["queues"][0]));
    assert_eq!(api["queues"][0]["dead"], 2);
    assert_eq!(
        get("/api/queues/emails/jobs?state=dead").await,
        cli(&["jobs", "emails", "--state", "dead", "--json"])
    );
    assert!(get("/api/queues/emails/jobs").await["error"]
        .as_str()
        .unwrap()
        .contains("?state="));
    assert_eq!(get("/api/queues/emails").await["name"], "emails");
    assert_eq!(get("/api/queues/nope").await["error"], "unknown queue \"nope\"");
}

#[tokio::test]
async fn under_a_base_path_every_link_form_and_redirect_stays_under_it() {
    let running = Running::start(&["--listen", "127.0.0.1:0", "--base-path", "/ops/queues/"]).await;
    assert!(running.url.ends_with("/ops/queues"), "{}", running.url);
    let browser = browser().await;
    let under = format!("{}/", running.url);
    // Every link, asset and form of each page: written relative (so a proxy that strips the
    // prefix works as well), resolved under the prefix, and every link opens.
    let pages = [
        "/",
        "/queues/emails",
        "/queues/emails?state=dead",
        "/queues/emails/jobs/reset-cara",
        "/queues/emails/jobs/digest-weekly",
        "/queues/emails/confirm/purge",
        "/queues/emails/confirm/cancel?id=welcome-eve",
        "/queues/emails/jobs/nope",
    ];
    let script = "const done = arguments[0];
        const targets = [...document.querySelectorAll('a[href], link[href], script[src], form')]
          .map(e => ({ written: e.getAttribute('href') ?? e.getAttribute('src') ?? e.getAttribute('action'),
                       resolved: e.href ?? e.src ?? e.action, get: e.tagName !== 'FORM' }));
        Promise.all(targets.map(t => t.get
            ? fetch(t.resolved).then(r => ({ ...t, status: r.status }))
            : Promise.resolve({ ...t, status: 0 })))
          .then(done);";
    for page in pages {
        running.visit(&browser, page).await;
        let targets = browser.execute_async(script, vec![]).await.unwrap();
        let targets = targets.as_array().unwrap();
        assert!(targets.len() >= 3, "{page}: {targets:?}");
        for target in targets {
            let written = target["written"].as_str().unwrap();
            let resolved = target["resolved"].as_str().unwrap();
            assert!(
                !written.starts_with('/') && !written.contains("://"),
                "{page}: {written}"
            );
            assert!(resolved.starts_with(&under), "{page}: {written} resolves to {resolved}");
            let status = target["status"].as_u64().unwrap();
            assert!(status == 0 || status == 200, "{page}: {resolved} answers {status}");
        }
    }
    // A form posted under the prefix changes Redis and lands back under it.
    running.visit(&browser, "/queues/emails").await;
    click(&browser, "#pause").await;
    shows(&browser, "p.notice", "Paused emails").await;
    assert!(running.stats("emails").await.paused);
    assert!(browser.current_url().await.unwrap().as_str().starts_with(&under));
    // The prefix alone is sent to the overview; a path outside it is not found.
    running.visit(&browser, "").await;
    assert_eq!(browser.current_url().await.unwrap().as_str(), under);
    let outside = running.url.replace("/ops/queues", "/queues/emails");
    browser.goto(&outside).await.unwrap();
    assert!(text(&browser, "body").await.contains("served under /ops/queues/"));
}

/// Not a check: takes the README's screenshots (`docs/dashboard-*.png`) of a run with some
/// traffic. `cargo test --test tests dashboard::screenshots -- --ignored`
#[tokio::test]
#[ignore]
async fn screenshots() {
    let running = Running::start(&[]).await;
    let emails = running.admin.queue("emails").unwrap();
    // Fifteen seconds of traffic at a rate that rises and falls, for the chart: this paces the
    // traffic (the dashboard samples every 200 ms), it waits for nothing.
    let never = Backoff::fixed(Duration::from_secs(3600));
    for step in 0..150u32 {
        let count = [1, 2, 4, 6, 4, 2][(step / 25) as usize % 6];
        let jobs = (0..count).map(|n| NewJob::new("send_email", &n).backoff(never));
        emails.enqueue_bulk(jobs).await.unwrap();
        let leased = emails.pop(count as usize, Duration::from_secs(60)).await.unwrap().jobs;
        for (n, job) in leased.iter().enumerate() {
            match n % 5 == 4 {
                true => drop(
                    emails
                        .fail(&job.lease, "smtp: connection refused", false)
                        .await
                        .unwrap(),
                ),
                false => drop(emails.complete([&job.lease]).await.unwrap()),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The known state's active and pending jobs again, for the counts.
    known_state_counts_again(&running.admin).await;
    let browser = browser().await;
    browser.set_window_size(1100, 900).await.unwrap();
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    for (path, name) in [
        ("/", "overview"),
        ("/queues/emails?state=dead", "queue"),
        ("/queues/emails/jobs/reset-cara", "job"),
        ("/queues/emails/jobs/digest-weekly", "job-running"),
    ] {
        running.visit(&browser, path).await;
        find(&browser, "main h1").await;
        std::fs::write(
            docs.join(format!("dashboard-{name}.png")),
            browser.screenshot().await.unwrap(),
        )
        .unwrap();
    }
}

/// Puts a few jobs back in pending and active after the screenshot traffic drained them.
async fn known_state_counts_again(admin: &QueueClient) {
    let emails = admin.queue("emails").unwrap();
    let jobs = (0..6).map(|n| NewJob::new("send_email", &serde_json::json!({ "n": n })));
    emails.enqueue_bulk(jobs).await.unwrap();
    emails.pop(2, Duration::from_secs(600)).await.unwrap();
}

//! A locked-down Redis: an ACL user limited to the queue's keys and commands, TLS, and
//! passwords kept out of every message.
use std::{path::Path, process::Command, time::Duration};

use queue::{
    fred::interfaces::ClientLike, ConnectOptions, Error, JobContext, JobState, Lease, NewJob, QueueClient, QueueConfig,
    Worker,
};
use throwaway_redis::{Options, RedisServer};

use crate::support::{bin, eventually, run_with_deadline, spawn_worker, Process, RefusingPort};

async fn admin(redis: &RedisServer) -> QueueClient {
    QueueClient::connect(&redis.url()).await.unwrap()
}

async fn acl_setuser(redis: &RedisServer, user: &str, rules: &str) {
    let mut args = vec![user.to_owned(), "on".into(), ">s3cret-pw".into()];
    args.extend(rules.split(' ').map(str::to_owned));
    let admin = admin(redis).await;
    let _: () = admin
        .redis()
        .custom(
            queue::fred::types::CustomCommand::new_static(
                "ACL SETUSER",
                queue::fred::types::ClusterHash::Random,
                false,
            ),
            args,
        )
        .await
        .unwrap();
}

fn user_url(redis: &RedisServer, user: &str) -> String {
    format!("redis://{user}:s3cret-pw@127.0.0.1:{}", redis.port())
}

#[tokio::test]
async fn the_documented_acl_rules_are_enough_for_clients_workers_and_the_cli() {
    let redis = RedisServer::start().unwrap();
    acl_setuser(&redis, "queue", &queue::acl_rules("queue")).await;
    let url = user_url(&redis, "queue");
    let client = QueueClient::connect(&url).await.unwrap();
    client
        .queue("emails")
        .unwrap()
        .enqueue_bulk((0..20).map(|i| NewJob::new("send", &i)))
        .await
        .unwrap();
    client
        .queue("emails")
        .unwrap()
        .enqueue(NewJob::new("send", &-1).id("bad").max_attempts(1))
        .await
        .unwrap();
    client
        .queue("emails")
        .unwrap()
        .enqueue(NewJob::new("send", &99).delay(Duration::from_millis(100)))
        .await
        .unwrap();

    let worker = Worker::builder(client.clone())
        .queue("emails")
        .reap_interval(Duration::from_millis(50))
        .handle_kind("send", |n: i32, _ctx: JobContext| async move {
            if n < 0 {
                return Err(queue::JobError::permanent("negative"));
            }
            Ok(())
        })
        .build();
    let (shutdown, running) = spawn_worker(worker);
    eventually("all jobs settled", Duration::from_secs(10), || async {
        client
            .queue("emails")
            .unwrap()
            .stats()
            .await
            .ok()
            .filter(|s| s.completed_total == 21 && s.dead == 1)
    })
    .await;
    shutdown.cancel();
    running.await.unwrap().unwrap();

    // The operator's commands, as the same user.
    for args in [
        vec!["stats"],
        vec!["queues"],
        vec!["scripts"],
        vec!["pause", "emails"],
        vec!["resume", "emails"],
        vec!["dead", "list", "emails"],
        vec!["dead", "retry", "emails", "--all"],
        vec!["job", "emails", "bad"],
        vec!["enqueue", "emails", "{}"],
        vec!["enqueue", "emails", "{}", "--id", "later", "--delay", "1h"],
        vec!["enqueue", "emails", "{}", "--id", "urgent", "--priority", "5"],
        vec!["jobs", "emails", "--state", "pending"],
        vec!["jobs", "emails", "--state", "scheduled"],
        vec!["jobs", "emails", "--state", "completed"],
        vec!["retry", "emails", "later"],
        vec!["delete", "emails", "urgent"],
        vec!["drain", "emails"],
        vec!["pause", "not-yet"],
        vec!["obliterate", "emails", "--yes"],
    ] {
        let out = run_with_deadline(
            Command::new(bin("queue-cli")).args(&args).env("QUEUE_REDIS_URL", &url),
            "",
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Nothing was refused along the way.
    let log: Vec<queue::fred::types::Value> = admin(&redis).await.redis().custom(acl_log(), vec!["10"]).await.unwrap();
    assert!(log.is_empty(), "ACL refusals: {log:?}");
}

fn acl_log() -> queue::fred::types::CustomCommand {
    queue::fred::types::CustomCommand::new_static("ACL LOG", queue::fred::types::ClusterHash::Random, false)
}

#[tokio::test]
async fn a_missing_permission_is_named() {
    let redis = RedisServer::start().unwrap();
    let rules = queue::acl_rules("queue").replace(" +lpop", "");
    acl_setuser(&redis, "limited", &rules).await;
    let client = QueueClient::connect(&user_url(&redis, "limited")).await.unwrap();
    client.queue("q").unwrap().enqueue(NewJob::new("k", &1)).await.unwrap();
    let error = client
        .queue("q")
        .unwrap()
        .pop(1, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::PermissionDenied(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.starts_with("the Redis user lacks a permission: "), "{message}");
    assert!(
        message.contains("script queue.pop") && message.contains("redis.call('LPOP'"),
        "names it: {message}"
    );

    // A refusal inside a batched write names its command too.
    let rules = queue::acl_rules("queue").replace(" +rpush", "");
    acl_setuser(&redis, "no-rpush", &rules).await;
    let client = QueueClient::connect(&user_url(&redis, "no-rpush")).await.unwrap();
    let message = client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("k", &1))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("(RPUSH)") && message.contains("script queue.push"),
        "{message}"
    );

    // A user confined to another prefix is told it cannot touch these keys.
    acl_setuser(&redis, "elsewhere", &queue::acl_rules("other")).await;
    let client = QueueClient::connect(&user_url(&redis, "elsewhere")).await.unwrap();
    let error = client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("k", &1))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("no permissions to access"), "{error}");
}

/// A CA and a server certificate for 127.0.0.1, made with openssl.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = run_with_deadline(
            Command::new("openssl").args(args).current_dir(dir),
            "",
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=queue test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
}

#[tokio::test]
async fn works_over_tls_with_a_private_ca() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let file = |name: &str| certs.path().join(name).to_str().unwrap().to_owned();
    // The TLS port is one found free, which another process may take before redis-server binds
    // it: then the server does not start, and the test tries again on another port.
    let mut attempts = 0;
    let (_redis, tls_port) = loop {
        let tls_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // The plain port only tells the test harness that the server is up.
        let started = RedisServer::start_with(Options {
            args: vec![
                "--tls-port".into(),
                tls_port.to_string(),
                "--tls-cert-file".into(),
                file("server.crt"),
                "--tls-key-file".into(),
                file("server.key"),
                "--tls-ca-cert-file".into(),
                file("ca.crt"),
                "--tls-auth-clients".into(),
                "no".into(),
                "--requirepass".into(),
                "tls-secret".into(),
            ],
            ..Default::default()
        });
        attempts += 1;
        match started {
            Ok(redis) => break (redis, tls_port),
            Err(error) if attempts < 5 => eprintln!("redis-server with TLS on {tls_port}: {error}; again"),
            Err(error) => panic!("redis-server with TLS did not start: {error}"),
        }
    };
    let url = format!("rediss://:tls-secret@127.0.0.1:{tls_port}");
    let options = ConnectOptions {
        tls_ca_file: Some(certs.path().join("ca.crt")),
        ..ConnectOptions::new(&url)
    };
    let client = QueueClient::connect_with(&options, QueueConfig::default())
        .await
        .unwrap();
    client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::new("k", &1).id("over-tls"))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(bin("queue-worker"));
    command
        .args(["--queue", "q", "--exec", "cat >/dev/null"])
        .env("QUEUE_REDIS_URL", &url)
        .env("QUEUE_TLS_CA", certs.path().join("ca.crt"));
    let mut worker = Process::spawn(command, dir.path().join("worker.log"));
    eventually("the job done over TLS", Duration::from_secs(20), || async {
        client
            .queue("q")
            .unwrap()
            .job("over-tls")
            .await
            .ok()
            .filter(|j| j.state == JobState::Completed)
    })
    .await;
    worker.signal(libc::SIGTERM);
    assert!(worker.wait(Duration::from_secs(10)).await.success());
    assert!(!worker.output().contains("tls-secret"));

    let stats = run_with_deadline(
        Command::new(bin("queue-cli"))
            .args(["stats", "--json", "--tls-ca", &file("ca.crt")])
            .env("QUEUE_REDIS_URL", &url),
        "",
        Duration::from_secs(60),
    );
    assert!(stats.status.success(), "{}", String::from_utf8_lossy(&stats.stderr));
    assert!(String::from_utf8_lossy(&stats.stdout).contains("\"completed_total\": 1"));

    // Without the CA, the server's certificate is not trusted: a clear error, not a hang.
    let untrusted = run_with_deadline(
        Command::new(bin("queue-cli"))
            .arg("queues")
            .env("QUEUE_REDIS_URL", &url),
        "",
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert_eq!(untrusted.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: cannot connect to Redis at rediss://:***@127.0.0.1:{tls_port}"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("tls-secret"));
    // A plain client on the TLS port is not silently accepted either.
    assert!(
        QueueClient::connect(&format!("redis://:tls-secret@127.0.0.1:{tls_port}"))
            .await
            .is_err()
    );
    let _ = client.redis().quit().await;
}

#[tokio::test]
async fn passwords_stay_out_of_worker_logs() {
    let refusing = RefusingPort::new();
    let port = refusing.port();
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(bin("queue-worker"));
    command
        .args(["--queue", "q", "--exec", "true"])
        .env("QUEUE_REDIS_URL", format!("redis://ops:hunter2-pw@127.0.0.1:{port}"));
    let mut worker = Process::spawn(command, dir.path().join("worker.log"));
    eventually("a connection failure logged", Duration::from_secs(10), || async {
        worker.output().contains("Redis not reachable").then_some(())
    })
    .await;
    worker.signal(libc::SIGTERM);
    worker.wait(Duration::from_secs(10)).await;
    let log = worker.output();
    assert!(log.contains("redis://ops:***@127.0.0.1"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
}

#[tokio::test]
async fn every_path_runs_as_the_acl_user_big_sweeps_replays_and_purges_included() {
    let redis = RedisServer::start().unwrap();
    acl_setuser(&redis, "queue", &queue::acl_rules("queue")).await;
    let config = QueueConfig {
        completed: queue::Retention {
            max_count: 5,
            max_age: Duration::from_millis(200),
        },
        ..Default::default()
    };
    let client = QueueClient::connect_with(&ConnectOptions::new(user_url(&redis, "queue")), config)
        .await
        .unwrap();
    let lease = Duration::from_secs(30);

    // A sweep of more than one call's worth of expired jobs (the reaper takes 100 per call).
    client
        .queue("q")
        .unwrap()
        .enqueue_bulk((0..250).map(|i| NewJob::new("k", &i).max_attempts(2)))
        .await
        .unwrap();
    client
        .queue("q")
        .unwrap()
        .pop(250, Duration::from_millis(30))
        .await
        .unwrap();
    let swept = eventually("the big sweep", Duration::from_secs(5), || async {
        let swept = client
            .queue("q")
            .unwrap()
            .reap(Duration::from_millis(1), 100)
            .await
            .unwrap();
        swept.filter(|swept| *swept != (0, 0))
    })
    .await;
    assert_eq!(swept, (250, 0));

    // Every settle call, and the retention trims they and the reaper do.
    let jobs = client.queue("q").unwrap().pop(250, lease).await.unwrap().jobs;
    let lease_of = |i: usize| jobs[i].lease.clone();
    let held = |i: usize| [lease_of(i)];
    assert_eq!(
        client.queue("q").unwrap().extend(lease, &held(0)).await.unwrap(),
        [true]
    );
    let finished: Vec<Lease> = (0..100).map(lease_of).collect();
    assert_eq!(
        client.queue("q").unwrap().complete(&finished).await.unwrap(),
        vec![true; 100]
    );
    assert_eq!(client.queue("q").unwrap().release(&held(100)).await.unwrap(), [true]);
    for i in 101..111 {
        client
            .queue("q")
            .unwrap()
            .fail(&lease_of(i), "boom", i % 2 == 0)
            .await
            .unwrap();
    }
    let stats = client.queue("q").unwrap().stats().await.unwrap();
    // Their second attempt (the reaper counted the first): every failure is the last one.
    assert_eq!((stats.completed, stats.dead, stats.pending), (5, 10, 1));
    eventually("completed jobs forgotten by age", Duration::from_secs(5), || async {
        client
            .queue("q")
            .unwrap()
            .reap(Duration::from_millis(1), 100)
            .await
            .unwrap();
        (client.queue("q").unwrap().stats().await.unwrap().completed == 0).then_some(())
    })
    .await;

    // The dead letter and the admin calls.
    let dead = client.queue("q").unwrap().dead_list(0, 10).await.unwrap();
    let one = dead.jobs[0].id.clone();
    assert_eq!(
        client.queue("q").unwrap().dead_replay(&[one.as_str()]).await.unwrap(),
        1
    );
    assert_eq!(client.queue("q").unwrap().dead_replay_all().await.unwrap(), 9);
    client.queue("q").unwrap().job(&one).await.unwrap();
    client.queue("q").unwrap().pause().await.unwrap();
    client.queue("q").unwrap().resume().await.unwrap();
    client.queues().await.unwrap();
    for state in [queue::JobState::Pending, queue::JobState::Active, queue::JobState::Dead] {
        client.queue("q").unwrap().jobs(state, 0, 10).await.unwrap();
    }
    let jobs = client.queue("q").unwrap().pop(250, lease).await.unwrap().jobs;
    for job in &jobs {
        client
            .queue("q")
            .unwrap()
            .fail(&job.lease, "again", true)
            .await
            .unwrap();
    }
    assert_eq!(jobs.len(), 11);
    assert_eq!(client.queue("q").unwrap().dead_purge().await.unwrap(), 11);

    // The job operations, big enough for several batches, over every kind of key they remove:
    // running jobs, waiting ones, and strays in a hash keyed by id that no state names (which
    // obliterate scans for).
    let q = client.queue("q").unwrap();
    q.enqueue_bulk((0..2_500).map(|i| NewJob::new("k", &i))).await.unwrap();
    let running = q.pop(20, lease).await.unwrap().jobs;
    assert_eq!(q.jobs(queue::JobState::Active, 5, 10).await.unwrap().jobs.len(), 10);
    let seventh = q.jobs(queue::JobState::Pending, 7, 1).await.unwrap().jobs.remove(0);
    q.delete_job(&seventh.id).await.unwrap();
    assert_eq!(q.drain().await.unwrap(), 2_479);
    use queue::fred::interfaces::HashesInterface;
    let strays: Vec<(String, String)> = (0..1_500).map(|i| (format!("stray-{i}"), "x".to_owned())).collect();
    let _: i64 = client.redis().hset("{queue:q}:errors", strays).await.unwrap();
    let stats = q.stats().await.unwrap();
    let jobs = stats.pending + stats.scheduled + stats.retrying + stats.active + stats.dead + stats.completed;
    assert_eq!(stats.active, 139 + 20, "these 20 and the ones left running above");
    assert_eq!(q.obliterate().await.unwrap(), jobs);
    assert!(!client.queues().await.unwrap().contains(&"q".to_owned()));
    assert_eq!(q.complete([&running[0].lease]).await.unwrap(), [false]);
    let left: Vec<String> = admin(&redis)
        .await
        .redis()
        .custom(
            queue::fred::types::CustomCommand::new_static("KEYS", queue::fred::types::ClusterHash::Random, false),
            vec!["{queue:q}*"],
        )
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");

    let log: Vec<queue::fred::types::Value> = admin(&redis).await.redis().custom(acl_log(), vec!["10"]).await.unwrap();
    assert!(log.is_empty(), "ACL refusals: {log:?}");
}

#[test]
fn the_readme_shows_the_acl_line_the_code_grants() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let line = format!("ACL SETUSER queue on >PASSWORD {}", queue::acl_rules("queue"));
    assert!(readme.contains(&line), "README.md should show:\n{line}");
}

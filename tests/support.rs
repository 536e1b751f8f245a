//! Each test gets its own real redis-server (free loopback port, temp dir, killed on drop).
use std::time::{Duration, Instant};

use queue::{
    CancellationToken, ConnectOptions, DeadJob, Lease, Leased, Queue, QueueClient, QueueConfig, Worker, WorkerReport,
};
use throwaway_redis::RedisServer;

pub struct TestQueue {
    pub client: QueueClient,
    pub redis: TestRedis,
}

/// The Redis a test runs against: a local redis-server (the default), or a Docker container
/// when built with `--features testcontainers` and run with `QUEUE_TEST_REDIS=testcontainers`.
pub enum TestRedis {
    Local(RedisServer),
    #[cfg(feature = "testcontainers")]
    Container(Box<throwaway_redis::container::RedisContainer>),
}

impl TestRedis {
    pub async fn start() -> Self {
        #[cfg(feature = "testcontainers")]
        if std::env::var("QUEUE_TEST_REDIS").as_deref() == Ok("testcontainers") {
            let container = throwaway_redis::container::RedisContainer::start("7.2").await;
            return TestRedis::Container(Box::new(
                container.expect("start a Redis container (is Docker running?)"),
            ));
        }
        TestRedis::Local(RedisServer::start().expect("start redis-server"))
    }

    pub fn url(&self) -> String {
        match self {
            TestRedis::Local(server) => server.url(),
            #[cfg(feature = "testcontainers")]
            TestRedis::Container(container) => container.url(),
        }
    }

    /// The port of its URL (the container's mapped port).
    pub fn port(&self) -> u16 {
        let url = self.url();
        url.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port in the URL")
    }

    /// The local redis-server, to kill or restart it (not available with a container).
    pub fn server(&mut self) -> &mut RedisServer {
        match self {
            TestRedis::Local(server) => server,
            #[cfg(feature = "testcontainers")]
            TestRedis::Container(_) => panic!("this test needs a local redis-server"),
        }
    }

    /// A fault-injecting proxy in front of it (`throwaway_redis::proxy`).
    pub fn proxy(&self) -> throwaway_redis::proxy::FaultProxy {
        throwaway_redis::proxy::FaultProxy::start(self.port()).expect("start the proxy")
    }
}

/// A lease for the settle calls, from a job id and a lease token.
pub fn lease(id: &str, token: &str) -> Lease {
    Lease {
        id: id.to_owned(),
        token: token.to_owned(),
    }
}

impl TestQueue {
    /// The queue most tests use, "q".
    pub fn queue(&self) -> Queue {
        self.client.queue("q").expect("a valid name")
    }

    /// Leases the next job of queue "q" (30 s lease); there must be one.
    pub async fn pop_one(&self) -> Leased {
        let mut popped = self.queue().pop(1, Duration::from_secs(30)).await.unwrap();
        assert!(!popped.jobs.is_empty(), "a job to lease in q");
        popped.jobs.remove(0)
    }

    /// Waits for the first job in queue "q"'s dead letter.
    pub async fn first_dead(&self, what: &str) -> DeadJob {
        eventually(what, Duration::from_secs(10), || async {
            let page = self.queue().dead_list(0, 10).await.ok()?;
            page.jobs.into_iter().next()
        })
        .await
    }

    /// Enqueues `count` jobs of kind "k" into queue "q", payloads 0..count.
    pub async fn enqueue_numbers(&self, count: u32) {
        let jobs = (0..count).map(|n| queue::NewJob::new("k", &n));
        self.queue().enqueue_bulk(jobs).await.unwrap();
    }

    /// Leases up to `count` jobs of queue "q" (30 s lease) and returns their ids in order.
    pub async fn pop_ids(&self, count: usize) -> Vec<String> {
        let popped = self.queue().pop(count, Duration::from_secs(30)).await.unwrap();
        popped.jobs.into_iter().map(|job| job.lease.id).collect()
    }

    /// Runs a queue script directly on queue "q", as a caller bypassing the client would, and
    /// returns its reply's elements.
    pub async fn run_script(&self, script: &str, args: &[&str]) -> Vec<queue::fred::types::Value> {
        // '' asks the script to remember nothing.
        self.run_script_as(script, "", args).await
    }

    /// [`run_script`](Self::run_script) as one delivery of the call `request`.
    pub async fn run_script_as(&self, script: &str, request: &str, args: &[&str]) -> Vec<queue::fred::types::Value> {
        let queue = self.queue();
        let keys = queue.keys();
        let args: Vec<queue::fred::types::Value> = std::iter::once(request)
            .chain(args.iter().copied())
            .map(Into::into)
            .collect();
        self.client
            .scripts()
            .run::<queue::fred::types::Value, _>(self.client.redis(), script, keys.all(), args)
            .await
            .unwrap()
            .into_array()
    }

    /// Waits until job `id` of queue "q" is in `state`, and returns it.
    pub async fn job_in_state(&self, id: &str, state: queue::JobState) -> queue::Job {
        eventually(&format!("job {id} {state}"), Duration::from_secs(10), || async {
            self.queue().job(id).await.ok().filter(|job| job.state == state)
        })
        .await
    }

    /// A field of queue "q"'s hash `suffix` (e.g. "jobs", "meta"), raw.
    pub async fn hset(&self, suffix: &str, field: &str, value: &str) {
        use queue::fred::interfaces::HashesInterface;
        let key = format!("{{queue:q}}:{suffix}");
        let _: i64 = self.client.redis().hset(key, (field, value)).await.unwrap();
    }
}

pub async fn start() -> TestQueue {
    start_with(QueueConfig::default()).await
}

pub async fn start_with(config: QueueConfig) -> TestQueue {
    let redis = TestRedis::start().await;
    let client = QueueClient::connect_with(&ConnectOptions::new(redis.url()), config)
        .await
        .expect("connect");
    TestQueue { client, redis }
}

/// Polls `check` until it returns Some or the deadline passes (then panics with `what`).
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A binary built from this workspace (`scripts/test` builds them before the tests run; built
/// here when missing).
pub fn bin(name: &str) -> std::path::PathBuf {
    use std::sync::OnceLock;
    // CARGO_BIN_EXE_* exists only for the binaries of the package that owns the tests (the
    // facade `queue`), so the others are found beside the test binary, and built here when
    // missing: plain `cargo test` needs no `cargo build --bins` first. Once per binary per run.
    static QUEUE_CLI: OnceLock<()> = OnceLock::new();
    static QUEUE_WORKER: OnceLock<()> = OnceLock::new();
    let (package, built) = match name {
        "queue-cli" => ("queue-cli", &QUEUE_CLI),
        "queue-worker" => ("queue-worker-cli", &QUEUE_WORKER),
        _ => panic!("no package known to build the binary {name:?}"),
    };
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target dir");
    let path = dir.join(name);
    built.get_or_init(|| {
        if path.exists() {
            return;
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = std::process::Command::new(&cargo);
        command
            .args(["build", "--bin", name, "-p", package])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        // What cargo set for this test would reach build scripts that watch it (ring's watches
        // CARGO_MANIFEST_DIR) and make the next plain `cargo build` compile them again.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            let set_for_the_test = [
                "CARGO_PKG_",
                "CARGO_BIN_EXE_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_TARGET_TMPDIR",
            ]
            .iter()
            .any(|prefix| key.starts_with(prefix))
                || [
                    "OUT_DIR",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_RUSTC_CURRENT_DIR",
                    "CARGO_BIN_NAME",
                ]
                .contains(&&*key);
            if set_for_the_test {
                command.env_remove(&*key);
            }
        }
        let status = command.status();
        match status {
            Ok(status) if status.success() && path.exists() => {}
            Ok(status) => panic!(
                "`cargo build --bin {name} -p {package}` ended with {status}, and {} is missing: \
                 run `cargo build --workspace --bins` and look at its errors",
                path.display()
            ),
            Err(error) => panic!("cannot run {cargo:?} to build {name}: {error}"),
        }
    });
    path
}

/// A child process killed on drop, with its stderr kept in a file for failure messages.
pub struct Process {
    pub child: std::process::Child,
    pub log: std::path::PathBuf,
}

impl Process {
    pub fn spawn(mut command: std::process::Command, log: std::path::PathBuf) -> Self {
        let file = std::fs::File::create(&log).expect("log file");
        command
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .stdin(std::process::Stdio::null());
        Process {
            child: command.spawn().expect("spawn"),
            log,
        }
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for exit, up to `timeout`.
    pub async fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit; its output:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a worker in the background until the returned token is cancelled.
pub fn spawn_worker(worker: Worker) -> (CancellationToken, tokio::task::JoinHandle<queue::Result<WorkerReport>>) {
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(worker.run(shutdown.clone()));
    (shutdown, handle)
}

/// Runs `command` to its end with `stdin` as its input, failing the test (and killing the
/// command) if it has not exited within `timeout`: a hang is reported, not waited out.
pub fn run_with_deadline(command: &mut std::process::Command, stdin: &str, timeout: Duration) -> std::process::Output {
    use std::{
        io::{Read, Write},
        process::Stdio,
    };
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let input = stdin.as_bytes().to_vec();
    let mut pipe_in = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || {
        let _ = pipe_in.write_all(&input);
    });
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = reader(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = reader(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = writer.join();
    std::process::Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// A loopback port held for the test's duration by a socket that is bound but not listening:
/// connections to it are refused, and no other process can take the port meanwhile (unlike a
/// port found free, released, and hoped to stay free).
pub struct RefusingPort {
    fd: i32,
    port: u16,
}

impl RefusingPort {
    pub fn new() -> Self {
        // SAFETY: plain socket calls on a socket this struct owns; the address structs are
        // initialised before use.
        unsafe {
            // Close-on-exec: a child process must not inherit (and keep) the port.
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
            addr.sin_port = 0;
            let size = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let bound = libc::bind(fd, &addr as *const libc::sockaddr_in as *const libc::sockaddr, size);
            assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
            let mut len = size;
            let named = libc::getsockname(fd, &mut addr as *mut libc::sockaddr_in as *mut libc::sockaddr, &mut len);
            assert_eq!(named, 0, "getsockname: {}", std::io::Error::last_os_error());
            RefusingPort {
                fd,
                port: u16::from_be(addr.sin_port),
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for RefusingPort {
    fn drop(&mut self) {
        // SAFETY: closes the socket this struct owns, once.
        unsafe {
            libc::close(self.fd);
        }
    }
}

/// A small seeded random number generator (SplitMix64) for tests: the seed comes from the
/// environment variable `var` when set, otherwise from the clock, and is printed so that a
/// failing run can be repeated.
pub struct TestRng(u64);

impl TestRng {
    pub fn from_env_or_clock(var: &str) -> Self {
        let seed = std::env::var(var).ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
        eprintln!("random seed: {var}={seed}");
        TestRng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// How many connections listen on the wake-up channel of `queue` (PUBSUB NUMSUB).
pub async fn wake_listeners(client: &QueueClient, queue: &str) -> i64 {
    use queue::fred::{interfaces::PubsubInterface, types::Value};
    let handle = client.queue(queue).unwrap();
    let answer: Vec<Value> = client.redis().pubsub_numsub(handle.keys().wake()).await.unwrap();
    answer[1].as_i64().expect("a count")
}

/// How many clients are connected to the Redis of `client` (`connected_clients` in INFO).
pub async fn connected_clients(client: &QueueClient) -> u64 {
    use queue::fred::{interfaces::ClientLike, types::InfoKind};
    let info: String = client.redis().info(Some(InfoKind::Clients)).await.unwrap();
    queue::low_level::info_field(&info, "connected_clients")
        .parse()
        .unwrap()
}

/// What a worker ran: every run counted, and which jobs (by payload) ran at least once.
#[derive(Default)]
pub struct Runs {
    pub total: std::sync::atomic::AtomicUsize,
    pub seen: std::sync::Mutex<std::collections::HashSet<u32>>,
}

impl Runs {
    pub fn total(&self) -> usize {
        self.total.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn distinct(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// Enqueues `count` jobs of kind "n" (payloads 0..count) into `queue` and starts a worker on it
/// whose handler takes a few milliseconds and records each run. Leases are short (3 s, swept
/// every second), so jobs whose lease or completion was lost in a failover come back quickly.
pub async fn run_numbers(client: &QueueClient, queue: &str, count: u32) -> Numbers {
    let jobs = (0..count).map(|n| queue::NewJob::new("n", &n));
    client.queue(queue).unwrap().enqueue_bulk(jobs).await.unwrap();
    let runs = std::sync::Arc::new(Runs::default());
    let recorder = runs.clone();
    let worker = Worker::builder(client.clone())
        .queue(queue)
        .concurrency(10)
        .lease(Duration::from_secs(3))
        .reap_interval(Duration::from_secs(1))
        // Only a wake-up starts a job on an idle worker within the test's deadlines.
        .idle_recheck(Duration::from_secs(60))
        .handle_kind("n", move |n: u32, _ctx: queue::JobContext| {
            let runs = recorder.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(3)).await;
                runs.seen.lock().unwrap().insert(n);
                runs.total.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            }
        })
        .build();
    let (shutdown, worker) = spawn_worker(worker);
    Numbers { runs, shutdown, worker }
}

/// The worker started by [`run_numbers`], and what it ran.
pub struct Numbers {
    pub runs: std::sync::Arc<Runs>,
    shutdown: CancellationToken,
    worker: tokio::task::JoinHandle<queue::Result<WorkerReport>>,
}

/// How a failover test takes the master down.
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    /// SIGKILL: the kernel closes its connections, clients see them drop.
    Crash,
    /// SIGSTOP: its connections stay open and unanswered, as with a host that hung or dropped
    /// off the network.
    Freeze,
}

/// Waits until every one of `count` jobs in `queue` was processed and nothing is left in any
/// state; then that the idle worker is still woken for a new job (payload `count`); then stops
/// the worker and checks that each job ran at least once. Each look is a
/// fresh one-shot client on `url` (as `queue-cli stats` would be), so that the observer does not
/// share the fate of the worker's connections.
pub async fn expect_drained(
    failed: Instant,
    url: &str,
    queue: &str,
    count: u32,
    numbers: Numbers,
    timeout: Duration,
) -> queue::QueueStats {
    let Numbers { runs, shutdown, worker } = numbers;
    let options = ConnectOptions {
        connect_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_secs(2),
        reconnect: false,
        ..ConnectOptions::new(url)
    };
    let look = || async {
        let client = QueueClient::connect_with(&options, QueueConfig::default()).await.ok()?;
        client.queue(queue).unwrap().stats().await.ok()
    };
    let deadline = Instant::now() + timeout;
    let mut last = None;
    let stats = loop {
        // Bounded, so that a look stuck on a dead node cannot outlast the deadline.
        if let Ok(Some(stats)) = tokio::time::timeout(Duration::from_secs(5), look()).await {
            if stats.completed_total >= u64::from(count)
                && stats.pending + stats.scheduled + stats.retrying + stats.active == 0
            {
                break stats;
            }
            last = Some(stats);
        }
        assert!(
            Instant::now() < deadline,
            "not all {count} jobs of {queue} processed within {timeout:?} ({} runs); last stats: {last:?}",
            runs.total()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "all {count} jobs processed {:?} after the failure ({} runs)",
        failed.elapsed(),
        runs.total()
    );
    // The worker is idle now: one more job reaches it only through its wake-up connection,
    // which must have found the new master too.
    let late = Instant::now();
    let deadline = late + Duration::from_secs(30);
    loop {
        let enqueue = async {
            let client = QueueClient::connect_with(&options, QueueConfig::default()).await.ok()?;
            client
                .queue(queue)
                .unwrap()
                .enqueue(queue::NewJob::new("n", &count))
                .await
                .ok()
        };
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(5), enqueue).await {
            break;
        }
        assert!(Instant::now() < deadline, "cannot enqueue after the failover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    while !runs.seen.lock().unwrap().contains(&count) {
        assert!(Instant::now() < deadline, "an idle worker was not woken for a new job");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("a new job woke the idle worker in {:?}", late.elapsed());
    shutdown.cancel();
    worker.await.unwrap().unwrap();
    // A completion recorded on a master that died before its replica got it is lost with it:
    // the job runs again, so it is processed once in the data that survived.
    assert_eq!((stats.completed_total, stats.dead), (u64::from(count), 0), "{stats:?}");
    assert_eq!(runs.distinct(), count as usize + 1, "every job ran at least once");
    stats
}

/// A `queue-worker` process on `url` with `args`, its log in `dir/<name>.log`, and `$D` set to
/// `dir` for its `--exec` commands (the worker's own prefix is never inherited from the tests).
pub fn spawn_queue_worker(url: &str, dir: &std::path::Path, name: &str, args: &[&str]) -> Process {
    let mut command = std::process::Command::new(bin("queue-worker"));
    command
        .args(args)
        .env("QUEUE_REDIS_URL", url)
        .env_remove("QUEUE_PREFIX")
        .env("D", dir)
        .env("RUST_LOG", "info");
    Process::spawn(command, dir.join(format!("{name}.log")))
}

/// Waits until job `id` of `queue` is in `state`, and returns it.
pub async fn job_in_state(client: &QueueClient, queue: &str, id: &str, state: queue::JobState) -> queue::Job {
    eventually(&format!("{id} to be {state}"), Duration::from_secs(20), || async {
        client
            .queue(queue)
            .unwrap()
            .job(id)
            .await
            .ok()
            .filter(|j| j.state == state)
    })
    .await
}

/// Waits until `path` exists (a marker an `--exec` command leaves).
pub async fn file_appears(path: &std::path::Path) {
    eventually(
        &format!("{} to appear", path.display()),
        Duration::from_secs(20),
        || async { path.exists().then_some(()) },
    )
    .await
}

/// Creates the user "queue" with exactly the documented ACL rules (`acl_rules` for the prefix
/// "queue") on `redis`, and returns a URL that logs in as it: a test using it proves those rules
/// are enough for what it does.
pub async fn acl_user_url(redis: &TestRedis) -> String {
    use queue::fred::{
        interfaces::ClientLike,
        types::{ClusterHash, CustomCommand},
    };
    let admin = QueueClient::connect(&redis.url()).await.expect("connect as admin");
    let mut args = vec!["queue".to_owned(), "on".into(), ">s3cret-pw".into()];
    args.extend(queue::acl_rules("queue").split(' ').map(str::to_owned));
    let _: () = admin
        .redis()
        .custom(
            CustomCommand::new_static("ACL SETUSER", ClusterHash::Random, false),
            args,
        )
        .await
        .expect("ACL SETUSER");
    format!("redis://queue:s3cret-pw@127.0.0.1:{}", redis.port())
}

/// A client logged in as the user of [`acl_user_url`].
pub async fn acl_user_client(redis: &TestRedis) -> QueueClient {
    QueueClient::connect(&acl_user_url(redis).await)
        .await
        .expect("connect as the ACL user")
}

/// A loopback address on a port that was free a moment ago (for servers given an address).
pub fn free_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address")
}

/// `GET /metrics` from `addr`, the body as text; `None` while nothing answers there.
pub async fn scrape(addr: std::net::SocketAddr) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    Some(body.to_owned())
}

/// The value of the sample `series` (`name{label="value",...}` exactly as exposed) in `text`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().expect("a number"))
}

/// Scrapes `addr` until the samples `want` (series, value) all hold, and returns the last text.
pub async fn scrape_until(addr: std::net::SocketAddr, want: &[(&str, f64)]) -> String {
    let mut last = String::new();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(text) = scrape(addr).await {
                if want.iter().all(|(series, value)| sample(&text, series) == Some(*value)) {
                    return text;
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    match found {
        Ok(text) => text,
        Err(_) => {
            let missing: Vec<_> = want
                .iter()
                .filter(|(series, value)| sample(&last, series) != Some(*value))
                .map(|(series, value)| format!("{series} = {value} (is {:?})", sample(&last, series)))
                .collect();
            panic!("timed out waiting for {missing:?}; last scrape:\n{last}")
        }
    }
}

/// What a `queue-cli` run printed, and its exit code.
pub struct CliRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `queue-cli args` against `url` (default prefix) to its end, within two minutes.
pub fn queue_cli(url: &str, args: &[&str]) -> CliRun {
    let mut command = std::process::Command::new(bin("queue-cli"));
    command
        .args(args)
        .env("QUEUE_REDIS_URL", url)
        .env_remove("QUEUE_PREFIX");
    let output = run_with_deadline(&mut command, "", Duration::from_secs(120));
    CliRun {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A Redis Cluster of 3 masters without replicas, and a client connected to it once it accepts
/// clients.
pub async fn start_cluster() -> (throwaway_redis::Cluster, QueueClient) {
    let cluster = throwaway_redis::Cluster::start(3, 0, Duration::from_secs(2)).expect("start a cluster");
    let url = cluster.url(0);
    let client = eventually("the cluster to accept the client", Duration::from_secs(20), || async {
        QueueClient::connect_with(&ConnectOptions::new(&url), QueueConfig::default())
            .await
            .ok()
    })
    .await;
    (cluster, client)
}

//! The queue client: connecting, naming queues, and running the queue's scripts. What one
//! queue can do is on its handle, [`Queue`](crate::Queue) (`queue.rs`).
use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use fred::{
    clients::Client,
    interfaces::{ClientLike, SetsInterface},
    types::{ClusterHash, CustomCommand, InfoKind, Value},
};

use crate::{
    keys::{queue_index, validate_name, validate_prefix, QueueKeys},
    new_job::NewJob,
    registry::{run_script, run_script_then, Script},
    request::RequestId,
    scripts::{self, Command, Reply},
    ConnectOptions, Durability, Error, Queue, QueueConfig, Result, ScriptRegistry,
};

/// The queue client: cheap to clone, share it.
///
/// ```no_run
/// use queue_core::{NewJob, QueueClient};
/// # async fn demo() -> queue_core::Result<()> {
/// let client = QueueClient::connect("redis://127.0.0.1:6379").await?;
/// let emails = client.queue("emails")?;
/// let job = emails.enqueue(NewJob::new("send", &serde_json::json!({"to": "a@b.c"}))).await?;
/// println!("enqueued {}", job.id);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct QueueClient {
    redis: Client,
    scripts: ScriptRegistry,
    config: Arc<QueueConfig>,
    indexed: Arc<Mutex<HashSet<String>>>,
    /// When this client last dropped its connections after a call timed out.
    reconnected: Arc<Mutex<Option<std::time::Instant>>>,
}

/// Shows the prefix and the configuration (the Redis client has no `Debug` of its own).
impl std::fmt::Debug for QueueClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueClient")
            .field("prefix", &self.config.prefix)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl QueueClient {
    /// Connects with default options and configuration.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(&ConnectOptions::new(url), QueueConfig::default()).await
    }

    /// Connects as the binaries do: to `QUEUE_REDIS_URL` (default `redis://127.0.0.1:6379`),
    /// trusting `QUEUE_TLS_CA` if set, under `QUEUE_PREFIX` (default `queue`), with the
    /// default configuration otherwise.
    ///
    /// ```no_run
    /// # async fn demo() -> queue_core::Result<()> {
    /// let client = queue_core::QueueClient::connect_from_env().await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_from_env() -> Result<Self> {
        use crate::env;
        let mut options =
            ConnectOptions::new(env::var(env::REDIS_URL).unwrap_or_else(|| env::DEFAULT_REDIS_URL.into()));
        options.tls_ca_file = env::var(env::TLS_CA).map(Into::into);
        let config = QueueConfig {
            prefix: env::var(env::PREFIX).unwrap_or_else(|| env::DEFAULT_PREFIX.into()),
            ..QueueConfig::default()
        };
        Self::connect_with(&options, config).await
    }

    /// Connects with explicit options and configuration.
    pub async fn connect_with(options: &ConnectOptions, config: QueueConfig) -> Result<Self> {
        let redis = options.connect().await?;
        Self::from_client(redis, config)
    }

    /// Wraps a connected fred client.
    pub fn from_client(redis: Client, config: QueueConfig) -> Result<Self> {
        validate_prefix(&config.prefix)?;
        let scripts = ScriptRegistry::new();
        scripts::register(&scripts)?;
        Ok(QueueClient {
            redis,
            scripts,
            config: Arc::new(config),
            indexed: Default::default(),
            reconnected: Default::default(),
        })
    }

    /// The underlying Redis client.
    pub fn redis(&self) -> &Client {
        &self.redis
    }

    /// The script registry: the queue's own scripts, and yours if you define them here.
    pub fn scripts(&self) -> &ScriptRegistry {
        &self.scripts
    }

    /// The configuration.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// The handle of the queue `name`, which every call on one queue goes through. The name is
    /// checked here, once ([`validate_name`](crate::validate_name)); nothing is written until
    /// the first job is enqueued.
    ///
    /// ```
    /// # fn demo(client: &queue_core::QueueClient) {
    /// assert!(client.queue("emails").is_ok());
    /// assert!(client.queue("no spaces").is_err());
    /// # }
    /// ```
    pub fn queue(&self, name: &str) -> Result<Queue> {
        validate_name(name)?;
        Ok(Queue::new(self.clone(), QueueKeys::new(&self.config.prefix, name)))
    }

    /// Checks a job against this client's rules (payload limit, priority range, attempts,
    /// delay, id) without writing anything; enqueue runs the same checks.
    pub fn validate(&self, job: &NewJob) -> Result<()> {
        job.check(self.config.max_payload_bytes)
    }

    /// The server's `maxmemory-policy` (from INFO, which managed Redis services allow where
    /// CONFIG is disabled). Under an `allkeys-*` policy Redis may evict job data to make room.
    pub async fn maxmemory_policy(&self) -> Result<String> {
        let info: String = self.redis.info(Some(InfoKind::Memory)).await?;
        Ok(info_field(&info, "maxmemory_policy").to_owned())
    }

    /// Every queue that has received a job under this prefix, sorted.
    pub async fn queues(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self.redis.smembers(queue_index(&self.config.prefix)).await?;
        names.sort();
        Ok(names)
    }

    /// Runs a queue script. `request` identifies a state-changing call across its deliveries
    /// (`None` for calls whose second delivery changes nothing and answers the same).
    pub(crate) async fn call(
        &self,
        command: Command,
        keys: &QueueKeys,
        request: Option<&RequestId>,
        mut args: Vec<Value>,
    ) -> Result<(i64, Reply)> {
        let script = self.scripts.get(command.name())?;
        let keys: Vec<Value> = keys.all().iter().map(|k| Value::from(k.as_str())).collect();
        args.insert(0, Value::from(request.map_or("", RequestId::as_str)));
        let value = match (command, self.config.durability) {
            (Command::Push | Command::Complete | Command::Fail, Durability::Replicated { replicas, timeout }) => {
                self.run_replicated(&script, &keys, &args, replicas, timeout).await
            }
            _ => run_script(&self.redis, &script, &keys, &args).await,
        }
        .inspect_err(|error| self.reconnect_after_timeout(error))?;
        Reply::new(command, value)
    }

    /// Runs a write script followed by Redis `WAIT` for `replicas` replicas, as one unit on one
    /// connection ([`run_script_then`]): `WAIT` counts only the writes made on its own
    /// connection (on Redis 7.2 and later, the writing commands sent on it), so one sent apart
    /// from the script (after a reconnection) could report replicas that never got the write. A re-sent script answers from the request
    /// memory and writes that memory again, which the `WAIT` behind it then covers (the
    /// replication stream is in order, so the first delivery's write is covered too).
    async fn run_replicated(
        &self,
        script: &Script,
        keys: &[Value],
        args: &[Value],
        replicas: u32,
        timeout: Duration,
    ) -> Result<Value> {
        let slot = keys[0].as_bytes().map_or(0, fred::util::redis_keyslot);
        // Not marked blocking: later calls are pipelined behind it, where Redis holds them
        // until the replicas answer (they would wait as long for a blocking one).
        let wait = CustomCommand::new_static("WAIT", ClusterHash::Custom(slot), false);
        let timeout_ms = timeout.as_millis().clamp(1, i64::MAX as u128) as i64;
        let wait_args = vec![Value::from(replicas as i64), Value::from(timeout_ms)];
        let (value, acknowledged) = run_script_then(&self.redis, script, keys, args, wait, wait_args).await?;
        let acknowledged = acknowledged.as_i64().unwrap_or(0);
        if acknowledged < replicas as i64 {
            return Err(Error::NotReplicated {
                acknowledged: acknowledged.max(0) as u32,
                wanted: replicas,
                timeout,
            });
        }
        Ok(value)
    }

    /// A call that timed out may have met a connection that went silent (a frozen server, a
    /// dropped network path): fred notices one only when nothing was written to it for its
    /// unresponsive timeout, which a busy client never leaves. So the connections are made
    /// again, at most once per command timeout. The calls in flight on them are sent again,
    /// which every queue call answers as it first did.
    fn reconnect_after_timeout(&self, error: &Error) {
        let Error::Redis(error) = error else { return };
        if *error.kind() != fred::error::ErrorKind::Timeout {
            return;
        }
        // While the client is not connected it is reconnecting already: a forced reconnect
        // would only queue behind it, and resend the calls in flight once more.
        if !self.redis.is_connected() {
            return;
        }
        let now = std::time::Instant::now();
        let every = self.redis.perf_config().default_command_timeout;
        {
            let mut last = self.reconnected.lock().expect("reconnect lock");
            if last.is_some_and(|at| now.duration_since(at) < every) {
                return;
            }
            *last = Some(now);
        }
        tracing::warn!("a call timed out; making the connections to Redis again");
        let redis = self.redis.clone();
        tokio::spawn(async move {
            let _ = redis.force_reconnection().await;
        });
    }

    /// Adds `queue` to the index of queues, once per client.
    pub(crate) async fn index(&self, queue: &str) -> Result<()> {
        if self.indexed.lock().expect("index lock").contains(queue) {
            return Ok(());
        }
        let _: i64 = self.redis.sadd(queue_index(&self.config.prefix), queue).await?;
        self.indexed.lock().expect("index lock").insert(queue.to_owned());
        Ok(())
    }

    /// Whether `queue` is in the index of queues.
    pub(crate) async fn is_known(&self, queue: &str) -> Result<bool> {
        Ok(self.redis.sismember(queue_index(&self.config.prefix), queue).await?)
    }

    /// Removes `queue` from the index of queues, and from this client's memory of having added
    /// it, so that its next enqueue adds it again.
    pub(crate) async fn unindex(&self, queue: &str) -> Result<()> {
        let _: i64 = self.redis.srem(queue_index(&self.config.prefix), queue).await?;
        self.indexed.lock().expect("index lock").remove(queue);
        Ok(())
    }
}

/// The value of `name` in an INFO reply (`name:value` lines), or "" when it is not there.
///
/// ```
/// assert_eq!(queue_core::info_field("# Server\r\nredis_version:7.0.15\r\n", "redis_version"), "7.0.15");
/// assert_eq!(queue_core::info_field("used_memory_human:1M\r\n", "used_memory"), "");
/// ```
pub fn info_field<'a>(info: &'a str, name: &str) -> &'a str {
    info.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(':')))
        .unwrap_or("")
        .trim()
}

/// The warning for a Redis whose `maxmemory-policy` ([`QueueClient::maxmemory_policy`]) may
/// evict job data (`allkeys-*`), or `None` for a policy that keeps it. The worker logs it at
/// start and `queue-cli stats` ends with it.
///
/// ```
/// assert!(queue_core::eviction_warning("allkeys-lru").unwrap().contains("may evict job data"));
/// assert_eq!(queue_core::eviction_warning("noeviction"), None);
/// ```
pub fn eviction_warning(policy: &str) -> Option<String> {
    policy.starts_with("allkeys").then(|| {
        format!(
            "Redis may evict job data under maxmemory-policy {policy}: jobs can vanish; use noeviction \
             (or a volatile-* policy) for the queue's Redis"
        )
    })
}

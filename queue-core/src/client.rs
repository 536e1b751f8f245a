//! The queue client: connecting, running the queue's scripts, and enqueueing. The operator's
//! calls are in `client/admin.rs`, the lease calls workers are built on in `client/lease.rs`.
use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use fred::{
    clients::Client,
    interfaces::{ClientLike, SetsInterface},
    types::Value,
};

use crate::{
    keys::{queue_index, validate_name, validate_prefix, QueueKeys},
    new_job::NewJob,
    registry::run_script,
    request::RequestId,
    scripts::{self, Command, Reply},
    ConnectOptions, Enqueued, Error, QueueConfig, Result, ScriptRegistry,
};

mod admin;
mod cron;
mod lease;

pub use cron::FiredSchedules;

/// The most jobs one [`QueueClient::enqueue_bulk`] takes: a bulk is one atomic script call, and
/// this bounds how long it blocks Redis. Split larger bulks (each part is all-or-none).
pub const MAX_BULK_JOBS: usize = 10_000;

/// The most encoded bytes (payloads and envelopes) one bulk takes, for the same reason.
pub const MAX_BULK_BYTES: usize = 32 << 20;

/// The queue client: cheap to clone, share it.
///
/// ```no_run
/// use queue_core::{NewJob, QueueClient};
/// # async fn demo() -> queue_core::Result<()> {
/// let client = QueueClient::connect("redis://127.0.0.1:6379").await?;
/// let job = client.enqueue("emails", NewJob::new("send", &serde_json::json!({"to": "a@b.c"}))).await?;
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

    /// The keys of `queue` (validated).
    pub fn keys(&self, queue: &str) -> Result<QueueKeys> {
        validate_name(queue)?;
        Ok(QueueKeys::new(&self.config.prefix, queue))
    }

    /// Runs a queue script. `request` identifies a state-changing call across its deliveries
    /// (`None` for calls whose second delivery changes nothing and answers the same).
    async fn call(
        &self,
        command: Command,
        keys: &QueueKeys,
        request: Option<&RequestId>,
        mut args: Vec<Value>,
    ) -> Result<(i64, Reply)> {
        let script = self.scripts.get(command.name())?;
        let keys: Vec<Value> = keys.all().iter().map(|k| Value::from(k.as_str())).collect();
        args.insert(0, Value::from(request.map_or("", RequestId::as_str)));
        let value = run_script(&self.redis, &script, &keys, &args)
            .await
            .inspect_err(|error| self.reconnect_after_timeout(error))?;
        Reply::new(command, value)
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

    async fn index(&self, queue: &str) -> Result<()> {
        if self.indexed.lock().expect("index lock").contains(queue) {
            return Ok(());
        }
        let _: i64 = self.redis.sadd(queue_index(&self.config.prefix), queue).await?;
        self.indexed.lock().expect("index lock").insert(queue.to_owned());
        Ok(())
    }

    /// Keys of a queue that must already exist (admin calls on a typo'd name say so).
    async fn existing(&self, queue: &str) -> Result<QueueKeys> {
        let keys = self.keys(queue)?;
        let known: bool = self.redis.sismember(queue_index(&self.config.prefix), queue).await?;
        if !known {
            return Err(Error::UnknownQueue(queue.to_owned()));
        }
        Ok(keys)
    }

    /// Checks a job against this client's rules (payload limit, priority range, attempts,
    /// delay, id) without writing anything; enqueue runs the same checks.
    pub fn validate(&self, job: &NewJob) -> Result<()> {
        job.check(self.config.max_payload_bytes)
    }

    /// Enqueues one job: a [`NewJob`], or a [`JobPayload`](crate::JobPayload) value.
    pub async fn enqueue(&self, queue: &str, job: impl Into<NewJob>) -> Result<Enqueued> {
        let mut outcome = self.enqueue_bulk(queue, [job.into()]).await?;
        Ok(outcome.remove(0))
    }

    /// Enqueues jobs in one atomic call: all are written or, if any is invalid, none. A bulk
    /// takes at most [`MAX_BULK_JOBS`] jobs and [`MAX_BULK_BYTES`] bytes: split larger ones.
    pub async fn enqueue_bulk(
        &self,
        queue: &str,
        jobs: impl IntoIterator<Item = impl Into<NewJob>>,
    ) -> Result<Vec<Enqueued>> {
        let keys = self.keys(queue)?;
        let mut ids = Vec::new();
        let mut bytes = 0;
        let mut args = vec![Value::Null];
        // Consecutive jobs with the same properties and run time form one run (see push.lua).
        let mut run: Option<(usize, Vec<u8>, Vec<u8>)> = None;
        let mut run_len = 0;
        for job in jobs {
            let fields = job.into().into_push_fields(queue, self.config.max_payload_bytes)?;
            bytes += fields.envelope.len() + fields.id.len();
            if ids.len() == MAX_BULK_JOBS || bytes > MAX_BULK_BYTES {
                return Err(Error::BulkTooLarge {
                    jobs_limit: MAX_BULK_JOBS,
                    bytes_limit: MAX_BULK_BYTES,
                });
            }
            // A job with a unique key is a run of its own (the script takes its key from the run).
            let same_run = !fields.unique
                && run
                    .as_ref()
                    .is_some_and(|(_, props, when)| *props == fields.props && *when == fields.when);
            if !same_run {
                if let Some((at, _, _)) = run.take() {
                    args[at] = Value::from(run_len);
                }
                run_len = 0;
                run = Some((args.len(), fields.props.clone(), fields.when.clone()));
                args.push(Value::Null);
                args.push(Value::Bytes(fields.props.into()));
                args.push(Value::Bytes(fields.when.into()));
            }
            run_len += 1;
            args.push(Value::from(fields.id.as_str()));
            args.push(Value::Bytes(fields.envelope.into()));
            ids.push(fields.id);
        }
        let Some((at, _, _)) = run else {
            return Ok(Vec::new());
        };
        args[at] = Value::from(run_len);
        args[0] = Value::from(ids.len() as i64);
        self.index(queue).await?;
        let (_, mut reply) = self.call(Command::Push, &keys, Some(&RequestId::new()), args).await?;
        ids.into_iter()
            .map(|id| {
                Ok(match reply.int_or_string()? {
                    Ok(created) => Enqueued {
                        id,
                        created: created == 1,
                        duplicate: false,
                    },
                    Err(holder) => Enqueued {
                        id: holder,
                        created: false,
                        duplicate: true,
                    },
                })
            })
            .collect()
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

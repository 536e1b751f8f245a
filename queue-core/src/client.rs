//! The queue client: enqueue, inspect, administer, and the lease calls workers are built on.
use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use fred::{
    clients::Client,
    interfaces::{ClientLike, SetsInterface},
    types::{InfoKind, Value},
};
use serde::Serialize;

use crate::{
    envelope::{Envelope, Job, JobRecord, JobState},
    keys::{queue_index, validate_name, validate_prefix, QueueKeys},
    new_job::NewJob,
    registry::run_script,
    request::RequestId,
    scripts::{self, status, Command, Reply},
    ConnectOptions, Error, Result, ScriptRegistry,
};

/// How long finished jobs are kept: at most `max_count`, none older than `max_age`
/// (`Duration::ZERO` means no age limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many.
    pub max_count: u64,
    /// Forget those older than this (zero: no age limit).
    pub max_age: Duration,
}

/// Client settings beyond the connection.
///
/// Retention is applied by whoever finishes a job: the worker's client for completions and
/// failures, and for the reaper's trims. Give workers the retention you want; a producer's
/// setting matters only for the calls it makes itself (such as `dead_purge`).
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Namespace for every key (default `queue`).
    pub prefix: String,
    /// Largest encoded payload accepted (default 1 MiB).
    pub max_payload_bytes: usize,
    /// Completed jobs kept for inspection (default 1,000 for at most 1 hour).
    pub completed: Retention,
    /// Dead jobs kept (default 10,000 for at most 30 days).
    pub dead: Retention,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            prefix: crate::env::DEFAULT_PREFIX.into(),
            max_payload_bytes: 1 << 20,
            completed: Retention {
                max_count: 1_000,
                max_age: Duration::from_secs(3600),
            },
            dead: Retention {
                max_count: 10_000,
                max_age: Duration::from_secs(30 * 24 * 3600),
            },
        }
    }
}

/// The outcome of enqueueing one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The job id (generated, or the explicit one).
    pub id: String,
    /// False when the explicit id already existed and nothing was written.
    pub created: bool,
}

/// A job leased by [`QueueClient::pop`]: run it, then complete or fail it with its token.
#[derive(Debug, Clone)]
pub struct Leased {
    /// The job id.
    pub id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The lease token; only this attempt's token is accepted by complete, fail and extend.
    pub token: String,
    /// The raw envelope (see [`Leased::envelope`]).
    pub raw_envelope: Vec<u8>,
}

impl Leased {
    /// Decodes the envelope; a record that does not decode belongs in the dead letter.
    pub fn envelope(&self) -> Result<Envelope> {
        Envelope::from_msgpack(&self.raw_envelope)
    }
}

/// What one [`QueueClient::pop`] call returned.
#[derive(Debug, Clone)]
pub struct Popped {
    /// The leased jobs, highest priority first.
    pub jobs: Vec<Leased>,
    /// Server time of the call (Unix ms).
    pub now_ms: i64,
    /// When the next scheduled or retrying job is due (Unix ms), if any.
    pub next_due_ms: Option<i64>,
    /// Whether the queue is paused (then `jobs` is empty).
    pub paused: bool,
}

/// What happened to a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// It will run again at this time (Unix ms), after the backoff the script chose.
    Retry {
        /// Unix ms.
        at_ms: i64,
        /// The backoff the script chose, in ms.
        delay_ms: i64,
    },
    /// It went to the dead letter.
    Dead,
}

/// A job in the dead letter.
#[derive(Debug, Clone, Serialize)]
pub struct DeadJob {
    /// The job id.
    pub id: String,
    /// When it died (Unix ms).
    pub failed_at_ms: i64,
    /// Attempts it had.
    pub attempts: u32,
    /// The error of its last attempt.
    pub error: String,
    /// Its envelope, if it decodes.
    #[serde(skip)]
    pub envelope: Option<Envelope>,
}

/// One page of the dead letter.
#[derive(Debug, Clone)]
pub struct DeadPage {
    /// How many jobs the dead letter holds in all.
    pub total: u64,
    /// This page, most recent first.
    pub jobs: Vec<DeadJob>,
}

/// Counts for one queue, as `queue-cli stats` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Queue name.
    pub name: String,
    /// Ready to run.
    pub pending: u64,
    /// Delayed by the producer.
    pub scheduled: u64,
    /// Waiting out a backoff.
    pub retrying: u64,
    /// Leased by workers.
    pub active: u64,
    /// In the dead letter.
    pub dead: u64,
    /// Completed and still retained.
    pub completed: u64,
    /// Completed, all time.
    pub processed: u64,
    /// Failed attempts, all time.
    pub failed: u64,
    /// Paused.
    pub paused: bool,
    /// Age of the job next in line, in ms (0 when none is pending).
    pub latency_ms: u64,
    /// Enqueued, all time.
    pub enqueued: u64,
    /// Sent to the dead letter, all time.
    pub dead_total: u64,
}

/// The most jobs one [`QueueClient::enqueue_bulk`] takes: a bulk is one atomic script call, and
/// this bounds how long it blocks Redis. Split larger bulks (each part is all-or-none).
pub const MAX_BULK_JOBS: usize = 10_000;

/// The most encoded bytes (payloads and envelopes) one bulk takes, for the same reason.
pub const MAX_BULK_BYTES: usize = 32 << 20;

/// How many dead jobs one replay or purge call moves; the client repeats until done, so no
/// single script call blocks Redis for long.
const DEAD_BATCH: u64 = 1_000;

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
            let same_run = run
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
                Ok(Enqueued {
                    id,
                    created: reply.int()? == 1,
                })
            })
            .collect()
    }

    /// A job's state and record.
    pub async fn job(&self, queue: &str, id: &str) -> Result<Job> {
        let keys = self.existing(queue).await?;
        let (status, mut reply) = self.call(Command::Job, &keys, None, vec![id.into()]).await?;
        if status == status::NOT_FOUND {
            return Err(Error::JobNotFound {
                queue: queue.to_owned(),
                id: id.to_owned(),
            });
        }
        let state = reply.string()?;
        let record = JobRecord::new(reply.bytes()?);
        let envelope = Envelope::from_msgpack(record.envelope())?;
        let attempts = reply.int()? as u32;
        let last_error = Some(reply.string()?).filter(|e| !e.is_empty());
        let run_at = reply.string()?;
        let since = reply.string()?;
        Ok(Job {
            envelope,
            state: JobState::parse(&state).ok_or_else(|| Error::UnexpectedReply {
                script: Command::Job.name().into(),
                detail: format!("unknown job state {state:?}"),
            })?,
            attempts,
            created_at_ms: record.created_ms().unwrap_or(0),
            run_at_ms: run_at.parse().ok(),
            state_since_ms: since.parse().ok(),
            last_error,
        })
    }

    /// Stops workers from leasing jobs of `queue`.
    pub async fn pause(&self, queue: &str) -> Result<()> {
        let keys = self.existing(queue).await?;
        self.call(Command::Pause, &keys, None, vec![]).await.map(drop)
    }

    /// Lets workers lease jobs of `queue` again, and wakes them.
    pub async fn resume(&self, queue: &str) -> Result<()> {
        let keys = self.existing(queue).await?;
        self.call(Command::Resume, &keys, None, vec![]).await.map(drop)
    }

    /// Counts for one queue.
    pub async fn stats(&self, queue: &str) -> Result<QueueStats> {
        let keys = self.existing(queue).await?;
        let (_, mut r) = self.call(Command::Stats, &keys, None, vec![]).await?;
        let mut n = || r.int().map(|v| v.max(0) as u64);
        Ok(QueueStats {
            name: queue.to_owned(),
            pending: n()?,
            scheduled: n()?,
            retrying: n()?,
            active: n()?,
            dead: n()?,
            completed: n()?,
            enqueued: n()?,
            processed: n()?,
            failed: n()?,
            dead_total: n()?,
            paused: n()? == 1,
            latency_ms: n()?,
        })
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

    /// A page of the dead letter, most recent first.
    pub async fn dead_list(&self, queue: &str, offset: u64, limit: u64) -> Result<DeadPage> {
        let keys = self.existing(queue).await?;
        let args = vec![Value::from(offset as i64), Value::from(limit.max(1) as i64)];
        let (_, mut r) = self.call(Command::DeadList, &keys, None, args).await?;
        let total = r.int()? as u64;
        let mut jobs = Vec::new();
        while r.has_more() {
            let id = r.string()?;
            let failed_at_ms = r.int()?;
            let envelope = Envelope::from_msgpack(JobRecord::new(r.bytes()?).envelope()).ok();
            let attempts = r.int()? as u32;
            let error = r.string()?;
            jobs.push(DeadJob {
                id,
                failed_at_ms,
                attempts,
                error,
                envelope,
            });
        }
        Ok(DeadPage { total, jobs })
    }

    /// Moves the named dead jobs back to pending with fresh attempts. Returns how many moved;
    /// ids not in the dead letter are an error ([`Error::NotInDeadLetter`]) naming the first of
    /// them, after the others moved.
    pub async fn dead_replay(&self, queue: &str, ids: &[&str]) -> Result<u64> {
        let keys = self.existing(queue).await?;
        let mut args = vec![Value::from("ids")];
        args.extend(ids.iter().map(|id| Value::from(*id)));
        let (_, mut r) = self
            .call(Command::DeadReplay, &keys, Some(&RequestId::new()), args)
            .await?;
        let replayed = r.int()? as u64;
        if r.has_more() {
            return Err(Error::NotInDeadLetter {
                queue: queue.to_owned(),
                id: r.string()?,
            });
        }
        Ok(replayed)
    }

    /// Moves every dead job back to pending, oldest first; returns how many moved.
    pub async fn dead_replay_all(&self, queue: &str) -> Result<u64> {
        let keys = self.existing(queue).await?;
        self.drain_dead(&keys, Command::DeadReplay, || {
            vec!["oldest".into(), (DEAD_BATCH as i64).into()]
        })
        .await
    }

    /// Forgets every dead job; returns how many.
    pub async fn dead_purge(&self, queue: &str) -> Result<u64> {
        let keys = self.existing(queue).await?;
        self.drain_dead(&keys, Command::DeadPurge, || vec![(DEAD_BATCH as i64).into()])
            .await
    }

    async fn drain_dead(&self, keys: &QueueKeys, command: Command, args: impl Fn() -> Vec<Value>) -> Result<u64> {
        let mut total = 0;
        loop {
            let (_, mut r) = self.call(command, keys, Some(&RequestId::new()), args()).await?;
            let moved = r.int()? as u64;
            total += moved;
            if moved < DEAD_BATCH {
                return Ok(total);
            }
        }
    }

    /// Leases up to `count` jobs for `lease`, all under one token. Due delayed and retrying
    /// jobs are promoted first.
    pub async fn pop(&self, queue: &str, count: usize, lease: Duration) -> Result<Popped> {
        self.pop_with_request(queue, count, lease, &RequestId::new()).await
    }

    /// [`pop`](Self::pop) as one logical call: after an error whose reply may have been lost
    /// ([`Error::is_transient`]), call again with the same `request` to get the lease the
    /// first delivery took (the jobs it still holds), instead of leasing a second batch and
    /// leaving the first to expire.
    pub async fn pop_with_request(
        &self,
        queue: &str,
        count: usize,
        lease: Duration,
        request: &RequestId,
    ) -> Result<Popped> {
        let keys = self.keys(queue)?;
        let args = vec![
            Value::from(count.max(1) as i64),
            Value::from(millis(lease)),
            Value::from(1_000),
        ];
        let (_, mut r) = self.call(Command::Pop, &keys, Some(request), args).await?;
        let now_ms = r.int()?;
        let next_due = r.int()?;
        let paused = r.int()? == 1;
        // One lease covers the whole batch.
        let token = r.string()?;
        let mut jobs = Vec::new();
        while r.has_more() {
            let id = r.string()?;
            let raw_envelope = JobRecord::new(r.bytes()?).into_envelope();
            let attempt = r.int()? as u32;
            jobs.push(Leased {
                id,
                attempt,
                token: token.clone(),
                raw_envelope,
            });
        }
        Ok(Popped {
            jobs,
            now_ms,
            next_due_ms: (next_due >= 0).then_some(next_due),
            paused,
        })
    }

    /// Completes leased jobs; for each, whether its token still held the lease (a stale token
    /// changes nothing).
    pub async fn complete(&self, queue: &str, leases: &[(&str, &str)]) -> Result<Vec<bool>> {
        let keys = self.keys(queue)?;
        let retention = self.config.completed;
        let mut args = vec![
            Value::from(retention.max_count as i64),
            Value::from(millis(retention.max_age)),
        ];
        let sent = push_leases(&mut args, leases);
        let request = settle_request("complete", &args[2..]);
        let (_, mut r) = self.call(Command::Complete, &keys, Some(&request), args).await?;
        held_in_order(&sent, &mut r)
    }

    /// Fails one attempt; the script retries it after its backoff or buries it. `permanent`
    /// sends it to the dead letter at once. Calling again for the same attempt (after an error
    /// that may have lost the reply) changes nothing and answers what the first call did.
    pub async fn fail(&self, queue: &str, id: &str, token: &str, error: &str, permanent: bool) -> Result<FailOutcome> {
        let keys = self.keys(queue)?;
        let dead = self.config.dead;
        let args = vec![
            Value::from(id),
            Value::from(token),
            Value::from(truncate(error, 8 * 1024)),
            Value::from(if permanent { "1" } else { "0" }),
            Value::from(rand::random::<u32>() as i64),
            Value::from(dead.max_count as i64),
            Value::from(millis(dead.max_age)),
        ];
        let request = RequestId::derived(&[b"fail", id.as_bytes(), token.as_bytes()]);
        let (status, mut r) = self.call(Command::Fail, &keys, Some(&request), args).await?;
        if status == status::LEASE_LOST {
            return Err(Error::LeaseLost {
                queue: queue.to_owned(),
                id: id.to_owned(),
            });
        }
        let outcome = r.string()?;
        let at_ms = r.int()?;
        Ok(if outcome == "dead" {
            FailOutcome::Dead
        } else {
            FailOutcome::Retry {
                at_ms,
                delay_ms: r.int()?,
            }
        })
    }

    /// Renews leases for `lease` from now; for each, whether it was still held. A lease is
    /// shared by the jobs one [`pop`](Self::pop) returned: renewing one job's renews them all.
    pub async fn extend(&self, queue: &str, lease: Duration, leases: &[(&str, &str)]) -> Result<Vec<bool>> {
        let keys = self.keys(queue)?;
        let mut args = vec![Value::from(millis(lease))];
        let sent = push_leases(&mut args, leases);
        let (_, mut r) = self.call(Command::Extend, &keys, None, args).await?;
        let _deadline = r.int()?;
        held_in_order(&sent, &mut r)
    }

    /// Hands leased jobs back to pending without counting the attempt; for each, whether it
    /// was still held.
    pub async fn release(&self, queue: &str, leases: &[(&str, &str)]) -> Result<Vec<bool>> {
        let keys = self.keys(queue)?;
        let mut args = Vec::new();
        let sent = push_leases(&mut args, leases);
        let request = settle_request("release", &args);
        let (_, mut r) = self.call(Command::Release, &keys, Some(&request), args).await?;
        held_in_order(&sent, &mut r)
    }

    /// Takes back the jobs of expired leases, unless another caller swept within `interval`,
    /// and trims the completed and dead jobs past their retention (so its bounds hold on a
    /// queue where nothing finishes). Each script call handles at most `limit` jobs (bounding
    /// how long it blocks Redis and how many records it reads); the sweep goes on call after
    /// call until none are left. Returns `(requeued, buried)`, or `None` when skipped.
    pub async fn reap(&self, queue: &str, interval: Duration, limit: usize) -> Result<Option<(u64, u64)>> {
        let keys = self.keys(queue)?;
        let (dead, completed) = (self.config.dead, self.config.completed);
        let args = |continuing: bool| {
            vec![
                Value::from(millis(interval).max(1)),
                Value::from(limit.max(1) as i64),
                Value::from(if continuing { "1" } else { "0" }),
                Value::from(dead.max_count as i64),
                Value::from(millis(dead.max_age)),
                Value::from(completed.max_count as i64),
                Value::from(millis(completed.max_age)),
            ]
        };
        let (mut requeued, mut buried) = (0, 0);
        let (status, mut r) = self
            .call(Command::Reap, &keys, Some(&RequestId::new()), args(false))
            .await?;
        if status == status::SKIPPED {
            return Ok(None);
        }
        // Each call handles at most `limit` jobs; the script says when more are left.
        loop {
            requeued += r.int()? as u64;
            buried += r.int()? as u64;
            if r.int()? == 0 {
                return Ok(Some((requeued, buried)));
            }
            (_, r) = self
                .call(Command::Reap, &keys, Some(&RequestId::new()), args(true))
                .await?;
        }
    }
}

/// Adds `(id, token)` leases to `args` as the settle scripts take them: runs of `token, n, n ids`
/// (the jobs of one fetched batch share a token). Returns, for each id in the order sent, its
/// index in `leases`, to put the per-job answers back in the caller's order.
fn push_leases(args: &mut Vec<Value>, leases: &[(&str, &str)]) -> Vec<usize> {
    let mut by_token: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut position: HashMap<&str, usize> = HashMap::new();
    for (index, (_, token)) in leases.iter().enumerate() {
        let at = *position.entry(token).or_insert_with(|| {
            by_token.push((token, Vec::new()));
            by_token.len() - 1
        });
        by_token[at].1.push(index);
    }
    let mut sent = Vec::with_capacity(leases.len());
    for (token, indices) in by_token {
        args.push(Value::from(token));
        args.push(Value::from(indices.len() as i64));
        for &index in &indices {
            args.push(Value::from(leases[index].0));
        }
        sent.extend(indices);
    }
    sent
}

/// The request id of a settle call (complete, release): its leases (`token, n, ids` runs, as
/// sent) are unique to it, so every retry of the same call derives the same id.
fn settle_request(command: &str, leases: &[Value]) -> RequestId {
    let mut parts: Vec<&[u8]> = vec![command.as_bytes()];
    parts.extend(leases.iter().filter_map(Value::as_bytes));
    RequestId::derived(&parts)
}

/// Per-job statuses read in the order sent, as "held" flags in the caller's order.
fn held_in_order(sent: &[usize], reply: &mut Reply) -> Result<Vec<bool>> {
    let mut held = vec![false; sent.len()];
    for &index in sent {
        held[index] = reply.int()? == status::OK;
    }
    Ok(held)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
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

#[cfg(test)]
mod tests {
    use fred::types::Value;

    use super::push_leases;

    #[test]
    fn leases_go_as_runs_per_token_and_answers_map_back_to_the_callers_order() {
        let leases = [("a", "t1"), ("b", "t2"), ("c", "t1")];
        let mut args = Vec::new();
        let sent = push_leases(&mut args, &leases);
        let text: Vec<String> = args
            .iter()
            .map(|v| v.as_string().unwrap_or_else(|| format!("{v:?}")))
            .collect();
        assert_eq!(text, ["t1", "2", "a", "c", "t2", "1", "b"]);
        // The script answers in the order sent: a, c, b.
        assert_eq!(sent, [0, 2, 1]);
        assert!(matches!(args[1], Value::Integer(2)));
    }
}

//! The script library's distributed lock (`lua/lib/lock.lua`): one owner token at a time, with a
//! TTL; extend and release by that owner only; force unlock for operators.
use std::time::Duration;

use fred::{clients::Client, types::Value};

use crate::{millis, registry::KeyCount, Error, QueueClient, Result, ScriptRegistry};

/// The registry name of the lock script.
pub const LOCK_SCRIPT: &str = "lib.lock";

const SOURCE: &str = include_str!("../../lua/lib/lock.lua");

/// Who holds a lock, and for how much longer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockStatus {
    /// The owner token of the holder.
    pub owner: String,
    /// Time left before the lock frees itself.
    pub ttl: Duration,
}

/// A lock on one Redis key, held under this handle's owner token (random unless given) until
/// its TTL runs out. Every call is one atomic script: only the owner extends or releases it, so
/// a holder whose lock expired and was taken by another cannot free the other's lock.
///
/// ```no_run
/// use queue_core::{Lock, QueueClient};
/// use std::time::Duration;
/// # async fn demo() -> queue_core::Result<()> {
/// let client = QueueClient::connect("redis://127.0.0.1:6379").await?;
/// let lock = Lock::new(&client, "locks:nightly-report")?;
/// if lock.acquire(Duration::from_secs(30)).await? {
///     // ... work, calling lock.extend(..) before the 30 s run out ...
///     lock.release().await?;
/// } else if let Some(status) = lock.status().await? {
///     println!("held by {} for {:?} more", status.owner, status.ttl);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Lock {
    redis: Client,
    scripts: ScriptRegistry,
    key: String,
    owner: String,
}

impl Lock {
    /// A handle on the lock `key` with a fresh random owner token.
    pub fn new(client: &QueueClient, key: impl Into<String>) -> Result<Self> {
        Self::with_owner(client, key, uuid::Uuid::now_v7().to_string())
    }

    /// A handle on the lock `key` under `owner` (not empty): the same owner in another
    /// process (after a restart, say) may extend or release what this one acquired.
    pub fn with_owner(client: &QueueClient, key: impl Into<String>, owner: impl Into<String>) -> Result<Self> {
        Self::with_registry(client.redis().clone(), client.scripts(), key, owner)
    }

    /// The same on a fred client and a registry of your own.
    pub fn with_registry(
        redis: Client,
        scripts: &ScriptRegistry,
        key: impl Into<String>,
        owner: impl Into<String>,
    ) -> Result<Self> {
        let owner = owner.into();
        if owner.is_empty() {
            return Err(Error::InvalidLimit("a lock owner cannot be empty".into()));
        }
        register(scripts)?;
        Ok(Lock {
            redis,
            scripts: scripts.clone(),
            key: key.into(),
            owner,
        })
    }

    /// The lock's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// This handle's owner token.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Takes the lock for `ttl` if it is free (or renews it to `ttl` if this owner holds it);
    /// whether this owner holds it now.
    pub async fn acquire(&self, ttl: Duration) -> Result<bool> {
        Ok(self.call("acquire", Some(ttl)).await?.0)
    }

    /// Sets the time left to `ttl` if this owner holds the lock; whether it does.
    pub async fn extend(&self, ttl: Duration) -> Result<bool> {
        Ok(self.call("extend", Some(ttl)).await?.0)
    }

    /// Frees the lock if this owner holds it; whether it did.
    pub async fn release(&self) -> Result<bool> {
        Ok(self.call("release", None).await?.0)
    }

    /// Frees the lock whoever holds it (for operators: a holder that died with a long TTL);
    /// whether it was held.
    pub async fn force_unlock(&self) -> Result<bool> {
        Ok(self.call("force", None).await?.0)
    }

    /// Who holds the lock and for how long, or `None` when it is free.
    pub async fn status(&self) -> Result<Option<LockStatus>> {
        Ok(self.call("status", None).await?.1)
    }

    async fn call(&self, op: &str, ttl: Option<Duration>) -> Result<(bool, Option<LockStatus>)> {
        let mut args = vec![Value::from(op)];
        if op != "force" && op != "status" {
            args.push(Value::from(self.owner.as_str()));
        }
        if let Some(ttl) = ttl {
            if ttl < Duration::from_millis(1) {
                return Err(Error::InvalidLimit(format!(
                    "a lock's TTL must be at least 1ms, not {ttl:?}"
                )));
            }
            args.push(Value::from(millis(ttl) as i64));
        }
        let reply: Vec<Value> = self
            .scripts
            .run(&self.redis, LOCK_SCRIPT, &[self.key.as_str()], args)
            .await?;
        let unexpected = || Error::UnexpectedReply {
            script: LOCK_SCRIPT.into(),
            detail: format!("{reply:?}"),
        };
        let done = match reply.first().and_then(Value::as_i64) {
            Some(done @ (0 | 1)) => done == 1,
            _ => return Err(unexpected()),
        };
        let owner = reply.get(1).and_then(Value::as_string).ok_or_else(unexpected)?;
        let ttl = reply.get(2).and_then(Value::as_i64).ok_or_else(unexpected)?;
        let status = (!owner.is_empty()).then(|| LockStatus {
            owner,
            ttl: Duration::from_millis(ttl.max(0) as u64),
        });
        Ok((done, status))
    }
}

/// Registers the lock script (as [`LOCK_SCRIPT`]) in `registry`.
pub fn register(registry: &ScriptRegistry) -> Result<()> {
    registry.define(LOCK_SCRIPT, KeyCount::Fixed(1), SOURCE).map(drop)
}

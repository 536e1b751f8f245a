//! The script library's rate limiter (`lua/lib/rate_limit.lua`): a sliding window with burst,
//! checked and consumed in one atomic call. The queue's own rate limit runs the same Lua
//! (`lua/lib/sliding_window.lua`) inside its fetch script.
use std::{fmt, str::FromStr, time::Duration};

use fred::{clients::Client, types::Value};

use crate::{millis, registry::KeyCount, Error, QueueClient, Result, ScriptRegistry};

/// The registry name of the rate-limit script.
pub const RATE_LIMIT_SCRIPT: &str = "lib.rate_limit";

const SOURCE: &str = concat!(
    include_str!("../../lua/lib/sliding_window.lua"),
    "\n",
    include_str!("../../lua/lib/rate_limit.lua")
);

/// At most `limit` units in any window of `window`: `100/1s`, `10/1h`. Parses from and prints
/// as `N/DURATION` (`ms`, `s`, `m`, `h`, `d`).
///
/// ```
/// use queue_core::Rate;
/// use std::time::Duration;
/// let rate: Rate = "100/1s".parse().unwrap();
/// assert_eq!(rate, Rate::new(100, Duration::from_secs(1)).unwrap());
/// assert_eq!(rate.to_string(), "100/1s");
/// assert!("100/0s".parse::<Rate>().is_err());
/// assert!("x/1s".parse::<Rate>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    limit: u32,
    window: Duration,
}

impl Rate {
    /// `limit` per `window`; both must be at least 1 (the window at least 1 ms).
    pub fn new(limit: u32, window: Duration) -> Result<Self> {
        if limit == 0 {
            return Err(Error::InvalidLimit("a rate must allow at least 1 per window".into()));
        }
        if window < Duration::from_millis(1) || millis(window) > u64::from(u32::MAX) {
            return Err(Error::InvalidLimit(format!(
                "a rate's window must be from 1ms to 49 days, not {window:?}"
            )));
        }
        Ok(Rate { limit, window })
    }

    /// Units per window.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }
}

impl FromStr for Rate {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let bad = |why: &str| Error::InvalidLimit(format!("rate {text:?}: {why} (expected N/DURATION, e.g. 100/1s)"));
        let (limit, window) = text.split_once('/').ok_or_else(|| bad("no '/'"))?;
        let limit: u32 = limit
            .trim()
            .parse()
            .map_err(|_| bad("the count is not a whole number"))?;
        let window = window.trim();
        let digits = window.find(|c: char| !c.is_ascii_digit()).unwrap_or(window.len());
        let (amount, unit) = window.split_at(digits);
        let amount: u64 = if amount.is_empty() {
            1 // "100/s"
        } else {
            amount.parse().map_err(|_| bad("the window is not a duration"))?
        };
        let unit_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad("the window's unit is not ms, s, m, h or d")),
        };
        let ms = amount
            .checked_mul(unit_ms)
            .ok_or_else(|| bad("the window is too long"))?;
        Rate::new(limit, Duration::from_millis(ms)).map_err(|e| match e {
            Error::InvalidLimit(why) => bad(&why),
            other => other,
        })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = millis(self.window);
        let (amount, unit) = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s")]
            .into_iter()
            .find(|(unit, _)| ms.is_multiple_of(*unit))
            .map_or((ms, "ms"), |(unit, name)| (ms / unit, name));
        write!(f, "{}/{amount}{unit}", self.limit)
    }
}

impl serde::Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut rate = serializer.serialize_struct("Rate", 2)?;
        rate.serialize_field("limit", &self.limit)?;
        rate.serialize_field("window_ms", &millis(self.window))?;
        rate.end()
    }
}

/// What a rate limiter answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the call was allowed (and its cost consumed).
    pub allowed: bool,
    /// Units that would be allowed now, after this call.
    pub remaining: u32,
    /// How long until a call of the same cost would be allowed: zero while it would be now.
    pub retry_after: Duration,
}

/// A sliding-window rate limiter on one Redis key: at most `rate` units in any window, and at
/// most `burst` of them within any `window * burst / limit` (by default `burst` is the limit:
/// a plain sliding window). Each [`try_acquire`](Self::try_acquire) checks and consumes in one
/// atomic script call, so any number of processes share it. Memory: one sorted-set member per
/// unit in the window.
///
/// ```no_run
/// use queue_core::{QueueClient, RateLimiter};
/// # async fn demo(user_id: u64) -> queue_core::Result<()> {
/// let client = QueueClient::connect("redis://127.0.0.1:6379").await?;
/// // At most 10 password resets per user per hour, no more than 3 within 18 minutes.
/// let resets = RateLimiter::new(&client, format!("resets:{user_id}"), "10/1h".parse()?)?.burst(3)?;
/// let decision = resets.try_acquire().await?;
/// if !decision.allowed {
///     println!("too many resets; try again in {:?}", decision.retry_after);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RateLimiter {
    redis: Client,
    scripts: ScriptRegistry,
    key: String,
    rate: Rate,
    burst: u32,
}

impl RateLimiter {
    /// A limiter on `key` (a key of yours: on a cluster, or as the queue's ACL user, pick a key
    /// the user may touch), registering its script in the client's registry.
    pub fn new(client: &QueueClient, key: impl Into<String>, rate: Rate) -> Result<Self> {
        Self::with_registry(client.redis().clone(), client.scripts(), key, rate)
    }

    /// The same on a fred client and a registry of your own.
    pub fn with_registry(redis: Client, scripts: &ScriptRegistry, key: impl Into<String>, rate: Rate) -> Result<Self> {
        register(scripts)?;
        Ok(RateLimiter {
            redis,
            scripts: scripts.clone(),
            key: key.into(),
            rate,
            burst: rate.limit,
        })
    }

    /// At most `burst` (1..=limit) units at once; capacity then comes back at the rate's pace.
    pub fn burst(mut self, burst: u32) -> Result<Self> {
        if burst == 0 || burst > self.rate.limit {
            return Err(Error::InvalidLimit(format!(
                "a burst must be from 1 to the rate's limit {}, not {burst}",
                self.rate.limit
            )));
        }
        self.burst = burst;
        Ok(self)
    }

    /// The key it counts in.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Takes one unit if it fits.
    pub async fn try_acquire(&self) -> Result<RateDecision> {
        self.try_acquire_n(1).await
    }

    /// Takes `cost` units (1..=burst) if they all fit, else none.
    pub async fn try_acquire_n(&self, cost: u32) -> Result<RateDecision> {
        if cost == 0 || cost > self.burst {
            return Err(Error::InvalidLimit(format!(
                "a cost must be from 1 to the burst {}, not {cost}",
                self.burst
            )));
        }
        let args = vec![
            Value::from(i64::from(self.rate.limit)),
            Value::from(millis(self.rate.window) as i64),
            Value::from(i64::from(self.burst)),
            Value::from(i64::from(cost)),
        ];
        let reply: Vec<Value> = self
            .scripts
            .run(&self.redis, RATE_LIMIT_SCRIPT, &[self.key.as_str()], args)
            .await?;
        let int = |i: usize| reply.get(i).and_then(Value::as_i64);
        match (int(0), int(1), int(2)) {
            (Some(allowed @ (0 | 1)), Some(remaining), Some(wait)) => Ok(RateDecision {
                allowed: allowed == 1,
                remaining: remaining.max(0) as u32,
                retry_after: Duration::from_millis(wait.max(0) as u64),
            }),
            _ => Err(Error::UnexpectedReply {
                script: RATE_LIMIT_SCRIPT.into(),
                detail: format!("{reply:?}"),
            }),
        }
    }
}

/// Registers the rate-limit script (as [`RATE_LIMIT_SCRIPT`]) in `registry`.
pub fn register(registry: &ScriptRegistry) -> Result<()> {
    registry.define(RATE_LIMIT_SCRIPT, KeyCount::Fixed(1), SOURCE).map(drop)
}

#[cfg(test)]
mod tests {
    use super::Rate;
    use std::time::Duration;

    #[test]
    fn rates_parse_and_print_back() {
        for (text, limit, ms, printed) in [
            ("100/1s", 100, 1_000, "100/1s"),
            ("5/250ms", 5, 250, "5/250ms"),
            ("1000/1m", 1000, 60_000, "1000/1m"),
            ("10/h", 10, 3_600_000, "10/1h"),
            ("7/90s", 7, 90_000, "7/90s"),
        ] {
            let rate: Rate = text.parse().unwrap();
            assert_eq!(rate, Rate::new(limit, Duration::from_millis(ms)).unwrap(), "{text}");
            assert_eq!(rate.to_string(), printed);
        }
        for bad in ["100/0s", "x/1s", "0/1s", "100", "100/1y", "-1/1s", "100/1.5s"] {
            let error = bad.parse::<Rate>().unwrap_err().to_string();
            assert!(error.starts_with("invalid limit: rate"), "{bad}: {error}");
            assert!(!error.contains('\n'));
        }
    }
}

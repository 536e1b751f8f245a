//! What a Redis ACL user needs to run the queue: the exact rules, from one place.

/// Every command the client, the workers and the scripts run (scripts run with the caller's
/// permissions). Scripts publish wake-ups that workers subscribe to (on the queues' channels
/// only, see [`acl_rules`]); the Redis client asks each new connection its `client|id`; `info`
/// gives stats and the eviction-policy check.
pub const REQUIRED_COMMANDS: &[&str] = &[
    "evalsha",
    "script|load",
    "script|exists",
    "time",
    "hget",
    "hmget",
    "hset",
    "hdel",
    "hlen",
    "hexists",
    "hsetnx",
    "hscan",
    "hincrby",
    "zadd",
    "zrem",
    "zremrangebyrank",
    "zrange",
    "zrangebyscore",
    "zrevrange",
    "zcard",
    "zcount",
    "zscore",
    "llen",
    "rpush",
    "lpop",
    "lindex",
    "lrange",
    "lrem",
    "set",
    "del",
    "sadd",
    "smembers",
    "sismember",
    "srem",
    "info",
    "ping",
    "client|id",
    "publish",
    "subscribe",
    "unsubscribe",
];

/// The ACL rules for a user limited to the queues under `prefix` and to the commands the queue
/// uses, for `ACL SETUSER <name> on ><password> <rules>`.
///
/// ```
/// let rules = queue_core::acl_rules("queue");
/// assert!(rules.starts_with("resetkeys ~{queue:* ~{queue}:* resetchannels &{queue:* -@all +evalsha"));
/// ```
pub fn acl_rules(prefix: &str) -> String {
    let commands: Vec<String> = REQUIRED_COMMANDS.iter().map(|c| format!("+{c}")).collect();
    format!(
        "resetkeys ~{{{prefix}:* ~{{{prefix}}}:* resetchannels &{{{prefix}:* -@all {}",
        commands.join(" ")
    )
}

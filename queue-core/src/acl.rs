//! What a Redis ACL user needs to run the queue: the exact rules, from one place.

/// Every command the client, the workers and the scripts run (scripts run with the caller's
/// permissions). Scripts publish wake-ups that workers subscribe to (on the queues' channels
/// only, see [`acl_rules`]); the Redis client asks each new connection its `client|id`; `info`
/// gives stats and the eviction-policy check; the stream
/// commands carry waiting (`wait`), cancellations to workers and the event stream; `lrem`
/// removes a cancelled pending job, `pexpire` lets the notice streams expire when idle;
/// `wait` waits for replicas under [`Durability::Replicated`](crate::Durability).
pub const REQUIRED_COMMANDS: &[&str] = &[
    "evalsha",
    "script|load",
    "script|exists",
    "time",
    "hget",
    "hgetall",
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
    "zremrangebyscore",
    "zrangebylex",
    "zremrangebylex",
    "zlexcount",
    "llen",
    "rpush",
    "lpop",
    "lindex",
    "lrange",
    "lrem",
    "set",
    "get",
    "pexpire",
    "xadd",
    "xread",
    "xrevrange",
    "del",
    "pttl",
    "sadd",
    "smembers",
    "sismember",
    "srem",
    "info",
    "ping",
    "wait",
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

#[cfg(test)]
mod tests {
    #[test]
    fn each_command_is_granted_once() {
        let mut commands = super::REQUIRED_COMMANDS.to_vec();
        commands.sort_unstable();
        commands.dedup();
        assert_eq!(commands.len(), super::REQUIRED_COMMANDS.len());
    }
}

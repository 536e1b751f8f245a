//! A script of your own on the queue's registry: compare-and-set with an expiry, run by name
//! with EVALSHA (and loaded again by itself after a Redis restart or SCRIPT FLUSH).
//!
//! `QUEUE_REDIS_URL=redis://127.0.0.1:6379 cargo run --example compare_and_set`
use queue::{
    fred::types::Value,
    low_level::{KeyCount, ScriptRegistry},
    QueueClient,
};

/// Sets KEYS[1] to ARGV[2] with a TTL of ARGV[3] ms, only if it holds ARGV[1] now ('' = unset).
/// Answers 1 if it set the value, 0 if the key held something else.
pub const COMPARE_AND_SET: &str = r#"
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"#;

/// Defines the script (a no-op if it is defined already with the same source).
pub fn define(registry: &ScriptRegistry) -> queue::Result<()> {
    registry.define("compare_and_set", KeyCount::Fixed(1), COMPARE_AND_SET)?;
    Ok(())
}

/// Whether `key` went from `expected` to `new` (with a TTL of `ttl_ms`).
pub async fn compare_and_set(
    client: &QueueClient,
    key: &str,
    expected: &str,
    new: &str,
    ttl_ms: u64,
) -> queue::Result<bool> {
    let args = vec![Value::from(expected), Value::from(new), Value::from(ttl_ms as i64)];
    let set: i64 = client
        .scripts()
        .run(client.redis(), "compare_and_set", &[key], args)
        .await?;
    Ok(set == 1)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client = QueueClient::connect_from_env().await?;
    define(client.scripts())?;
    let key = "{queue}:example:config-version";
    println!(
        "unset -> v1: {}",
        compare_and_set(&client, key, "", "v1", 60_000).await?
    );
    println!("v1 -> v2: {}", compare_and_set(&client, key, "v1", "v2", 60_000).await?);
    println!(
        "v1 -> v3 (stale): {}",
        compare_and_set(&client, key, "v1", "v3", 60_000).await?
    );
    Ok(())
}

//! The environment variables the library and both binaries read, so that a service and the
//! `queue-worker` / `queue-cli` processes beside it find the same Redis and prefix.

/// The Redis URL (`redis://`, `rediss://`, `redis-cluster://`, `redis-sentinel://`).
pub const REDIS_URL: &str = "QUEUE_REDIS_URL";
/// The key prefix (default `queue`).
pub const PREFIX: &str = "QUEUE_PREFIX";
/// A PEM file of CA certificates to trust for `rediss://`.
pub const TLS_CA: &str = "QUEUE_TLS_CA";
/// Every variable above: none of them is handed on to the programs `queue-worker --exec` runs,
/// since the URL may carry a password.
pub const ALL: [&str; 3] = [REDIS_URL, PREFIX, TLS_CA];

/// The URL used when `QUEUE_REDIS_URL` is not set.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// The prefix used when `QUEUE_PREFIX` is not set.
pub const DEFAULT_PREFIX: &str = "queue";

pub(crate) fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use fred::interfaces::KeysInterface;

    use crate::{NewJob, QueueClient};

    // The only test of this binary that touches the process environment.
    #[tokio::test]
    async fn connect_from_env_finds_the_url_and_prefix_the_binaries_use() {
        let redis = throwaway_redis::RedisServer::start().unwrap();
        std::env::set_var(super::REDIS_URL, redis.url());
        std::env::set_var(super::PREFIX, "from-env");
        let client = QueueClient::connect_from_env().await.unwrap();
        assert_eq!(client.config().prefix, "from-env");
        client.queue("q").unwrap().enqueue(NewJob::new("k", &1)).await.unwrap();
        let stored: i64 = client.redis().exists("{from-env:q}:jobs").await.unwrap();
        assert_eq!(stored, 1);
    }
}

//! Each test gets its own real redis-server (free loopback port, temp dir, killed on drop).
use std::time::{Duration, Instant};

use queue::{ConnectOptions, QueueClient, QueueConfig};
use throwaway_redis::RedisServer;

#[allow(dead_code)] // `redis` keeps the server alive; some tests also restart it
pub struct TestQueue {
    pub client: QueueClient,
    pub redis: RedisServer,
}

pub async fn start() -> TestQueue {
    start_with(QueueConfig::default()).await
}

pub async fn start_with(config: QueueConfig) -> TestQueue {
    let redis = RedisServer::start().expect("start redis-server");
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

//! The ceiling of this Redis, which the bench's figures are measured against.
use std::time::{Duration, Instant};

use queue_core::{fred::types::Value, KeyCount, QueueClient, ScriptRegistry};

use crate::ConnectArgs;

/// The ceiling of this Redis: calls/s of `return 1` by pipelined EVALSHA. Measured with
/// `redis-benchmark` (installed with redis-tools) where it is found, since a client written
/// for the queue saturates before Redis does; otherwise with this client's own pipelines.
pub(super) async fn evalsha_ceiling(
    client: &QueueClient,
    connect_args: &ConnectArgs,
) -> anyhow::Result<(f64, &'static str)> {
    let registry = ScriptRegistry::new();
    let noop = registry.define("bench.noop", KeyCount::Fixed(1), "return 1")?;
    registry.preload(client.redis()).await?;
    if let Some(calls) = redis_benchmark(connect_args, noop.sha1()).await {
        return Ok((calls, "redis-benchmark -P 500 -c 4"));
    }
    const STREAMS: usize = 4;
    const PIPELINE: u64 = 500;
    let started = Instant::now();
    let mut streams = tokio::task::JoinSet::new();
    for _ in 0..STREAMS {
        let (registry, redis) = (registry.clone(), client.redis().clone());
        streams.spawn(async move {
            let mut calls = 0u64;
            while started.elapsed() < Duration::from_secs(2) {
                let mut pipeline = registry.pipeline(&redis);
                for _ in 0..PIPELINE {
                    pipeline.add("bench.noop", &["bench:noop"], Vec::<Value>::new())?;
                }
                for result in pipeline.execute().await? {
                    result?;
                }
                calls += PIPELINE;
            }
            anyhow::Ok(calls)
        });
    }
    let mut calls = 0;
    while let Some(done) = streams.join_next().await {
        calls += done??;
    }
    Ok((
        calls as f64 / started.elapsed().as_secs_f64(),
        "this client (client-bound: install redis-benchmark)",
    ))
}

/// `redis-benchmark` against the same server, or `None` when it is missing or fails (a
/// cluster URL, an old version): the caller falls back to its own measurement.
async fn redis_benchmark(connect_args: &ConnectArgs, sha1: &str) -> Option<f64> {
    let url = &connect_args.redis_url;
    let mut command = tokio::process::Command::new("redis-benchmark");
    if let Some(plain) = url.strip_prefix("rediss://") {
        command.arg("--tls").arg("-u").arg(format!("redis://{plain}"));
        if let Some(ca) = &connect_args.tls_ca {
            command.arg("--cacert").arg(ca);
        }
    } else if url.starts_with("redis://") {
        command.arg("-u").arg(url);
    } else {
        return None;
    }
    let output = command
        .args([
            "-P",
            "500",
            "-c",
            "4",
            "-n",
            "1000000",
            "--csv",
            "evalsha",
            sha1,
            "1",
            "bench:noop",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let row = text.lines().find(|line| line.starts_with("\"evalsha"))?;
    row.split(',').nth(1)?.trim_matches('"').parse().ok()
}

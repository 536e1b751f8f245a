//! Redis Sentinel: a master, its replica and three sentinels. The worker connects through the
//! sentinels (`redis-sentinel://`) and follows them to the promoted replica when the master fails.
use std::time::{Duration, Instant};

use queue::{ConnectOptions, QueueClient, QueueConfig};
use throwaway_redis::Sentinels;

use crate::support::{eventually, expect_drained, run_numbers, Failure};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_follows_the_sentinels_after_a_crash() {
    lose_the_master(Failure::Crash).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_follows_the_sentinels_after_a_freeze() {
    lose_the_master(Failure::Freeze).await;
}

async fn lose_the_master(failure: Failure) {
    const JOBS: u32 = 2_000;
    let started = Instant::now();
    let mut sentinels = Sentinels::start().unwrap();
    let client = QueueClient::connect_with(&ConnectOptions::new(sentinels.url()), QueueConfig::default())
        .await
        .unwrap();
    let numbers = run_numbers(&client, "busy", JOBS).await;
    let runs = numbers.runs.clone();
    eventually("a few hundred jobs run", Duration::from_secs(20), || async {
        (runs.total() >= 300).then_some(())
    })
    .await;

    let old = match failure {
        Failure::Crash => sentinels.kill_master(),
        Failure::Freeze => sentinels.freeze_master(),
    }
    .unwrap();
    let failed = Instant::now();
    let ran_before = runs.total();
    let new = tokio::task::block_in_place(|| sentinels.wait_for_new_master(old, Duration::from_secs(20))).unwrap();
    eprintln!(
        "{failure:?}: sentinels up in {:?}; the master ({old}) failed after {ran_before} runs; {new} promoted in {:?}",
        failed - started,
        failed.elapsed()
    );

    expect_drained(failed, &sentinels.url(), "busy", JOBS, numbers, Duration::from_secs(30)).await;
}

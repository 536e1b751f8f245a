//! `lua/lib/rate_limit.lua` through `RateLimiter`, as the ACL user (keys under `{queue}:`).
use std::time::Duration;

use queue::{Error, Rate, RateLimiter};

use crate::support::{acl_user_client, eventually, TestRedis};

#[tokio::test]
async fn a_window_allows_its_limit_then_says_when_the_next_slot_frees() {
    let redis = TestRedis::start().await;
    let client = acl_user_client(&redis).await;
    let limiter = RateLimiter::new(&client, "{queue}:rl:a", "3/2s".parse().unwrap()).unwrap();
    for remaining in [2, 1, 0] {
        let decision = limiter.try_acquire().await.unwrap();
        assert!(decision.allowed);
        assert_eq!(decision.remaining, remaining);
    }
    let denied = limiter.try_acquire().await.unwrap();
    assert!(!denied.allowed);
    assert_eq!(denied.remaining, 0);
    assert!(
        denied.retry_after > Duration::ZERO && denied.retry_after <= Duration::from_secs(2),
        "{denied:?}"
    );
    // Another key is another window.
    let other = RateLimiter::new(&client, "{queue}:rl:b", "3/2s".parse().unwrap()).unwrap();
    assert!(other.try_acquire().await.unwrap().allowed);
    // The slot comes back when the oldest unit leaves the window, not before.
    tokio::time::sleep(denied.retry_after).await;
    eventually("a slot after retry_after", Duration::from_secs(1), || async {
        limiter.try_acquire().await.unwrap().allowed.then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_burst_spreads_the_limit_out_and_a_cost_takes_all_or_nothing() {
    let redis = TestRedis::start().await;
    let client = acl_user_client(&redis).await;
    // 10 per 10 s, at most 2 within 2 s.
    let limiter = RateLimiter::new(&client, "{queue}:rl:burst", "10/10s".parse().unwrap())
        .unwrap()
        .burst(2)
        .unwrap();
    let first = limiter.try_acquire_n(2).await.unwrap();
    assert!(first.allowed);
    assert_eq!(first.remaining, 0);
    assert!(first.retry_after > Duration::ZERO && first.retry_after <= Duration::from_secs(2));
    let denied = limiter.try_acquire().await.unwrap();
    assert!(!denied.allowed, "the burst is used up");
    assert!(denied.retry_after <= Duration::from_secs(2), "{denied:?}");
    // Nothing was taken by the refused call: after the burst span, two fit again.
    tokio::time::sleep(denied.retry_after).await;
    eventually("the burst back", Duration::from_secs(1), || async {
        limiter.try_acquire_n(2).await.unwrap().allowed.then_some(())
    })
    .await;
}

#[tokio::test]
async fn impossible_settings_are_refused_before_anything_is_sent() {
    let redis = TestRedis::start().await;
    let client = acl_user_client(&redis).await;
    let rate: Rate = "5/1s".parse().unwrap();
    let limiter = RateLimiter::new(&client, "{queue}:rl:c", rate).unwrap();
    for error in [
        limiter.clone().burst(0).unwrap_err(),
        limiter.clone().burst(6).unwrap_err(),
        limiter.try_acquire_n(0).await.unwrap_err(),
        limiter.try_acquire_n(6).await.unwrap_err(),
        Rate::new(0, Duration::from_secs(1)).unwrap_err(),
        Rate::new(1, Duration::ZERO).unwrap_err(),
    ] {
        assert!(matches!(error, Error::InvalidLimit(_)), "{error}");
    }
}

//! `lua/lib/lock.lua` through `Lock`, as the ACL user (keys under `{queue}:`).
use std::time::Duration;

use queue::Lock;

use crate::support::{acl_user_client, eventually, TestRedis};

#[tokio::test]
async fn only_the_owner_extends_or_releases_a_lock() {
    let redis = TestRedis::start().await;
    let client = acl_user_client(&redis).await;
    let a = Lock::new(&client, "{queue}:lock:report").unwrap();
    let b = Lock::new(&client, "{queue}:lock:report").unwrap();
    assert_ne!(a.owner(), b.owner(), "random owner tokens");
    assert_eq!(a.status().await.unwrap(), None);

    assert!(a.acquire(Duration::from_secs(30)).await.unwrap());
    assert!(!b.acquire(Duration::from_secs(30)).await.unwrap());
    assert!(!b.extend(Duration::from_secs(60)).await.unwrap());
    assert!(!b.release().await.unwrap());
    let status = b.status().await.unwrap().expect("held");
    assert_eq!(status.owner, a.owner());
    assert!(status.ttl > Duration::from_secs(25) && status.ttl <= Duration::from_secs(30));

    assert!(a.extend(Duration::from_secs(60)).await.unwrap());
    assert!(a.status().await.unwrap().unwrap().ttl > Duration::from_secs(55));
    // Acquiring again as the owner renews it (a re-sent acquire succeeds).
    assert!(a.acquire(Duration::from_secs(30)).await.unwrap());
    // The same owner token in another handle (another process) holds it too.
    let a_again = Lock::with_owner(&client, "{queue}:lock:report", a.owner()).unwrap();
    assert!(a_again.release().await.unwrap());
    assert_eq!(a.status().await.unwrap(), None);
    assert!(!a.release().await.unwrap(), "nothing left to release");
    assert!(b.acquire(Duration::from_secs(30)).await.unwrap());
}

#[tokio::test]
async fn a_lock_frees_itself_when_its_ttl_runs_out() {
    let redis = TestRedis::start().await;
    let client = acl_user_client(&redis).await;
    let a = Lock::new(&client, "{queue}:lock:ttl").unwrap();
    let b = Lock::new(&client, "{queue}:lock:ttl").unwrap();
    assert!(a.acquire(Duration::from_millis(200)).await.unwrap());
    assert!(!b.acquire(Duration::from_secs(30)).await.unwrap());
    eventually("b takes the expired lock", Duration::from_secs(5), || async {
        b.acquire(Duration::from_secs(30)).await.unwrap().then_some(())
    })
    .await;
    // The late first holder can neither extend nor free the lock it lost.
    assert!(!a.extend(Duration::from_secs(30)).await.unwrap());
    assert!(!a.release().await.unwrap());
    assert_eq!(a.status().await.unwrap().unwrap().owner, b.owner());
}

#[tokio::test]
async fn an_operator_force_unlocks_a_lock_anyone_holds() {
    let redis = TestRedis::start().await;
    let client = acl_user_client(&redis).await;
    let holder = Lock::new(&client, "{queue}:lock:stuck").unwrap();
    let operator = Lock::new(&client, "{queue}:lock:stuck").unwrap();
    assert!(!operator.force_unlock().await.unwrap(), "a free lock was not held");
    assert!(holder.acquire(Duration::from_secs(3600)).await.unwrap());
    assert!(operator.force_unlock().await.unwrap());
    assert_eq!(holder.status().await.unwrap(), None);
    assert!(!holder.extend(Duration::from_secs(60)).await.unwrap());
    assert!(operator.acquire(Duration::from_secs(1)).await.unwrap());
    assert!(Lock::with_owner(&client, "{queue}:lock:stuck", "").is_err());
}

//! Durability across failovers: with `Durability::Replicated`, an acknowledged enqueue or settle
//! is on the replica already, and one the replica did not get is reported as such.
use std::time::Duration;

use queue::{
    fred::{
        interfaces::{ClientLike, KeysInterface, SortedSetsInterface},
        types::InfoKind,
    },
    ConnectOptions, Durability, Error, NewJob, QueueClient, QueueConfig,
};
use throwaway_redis::{Options, RedisServer};

use crate::{
    locked_down::{acl_setuser, user_url},
    support::{self, eventually},
};

fn replica_of(master: &RedisServer) -> RedisServer {
    RedisServer::start_with(Options {
        args: vec!["--replicaof".into(), "127.0.0.1".into(), master.port().to_string()],
        ..Default::default()
    })
    .unwrap()
}

/// A client logged in as the ACL user, waiting for one replica up to `timeout`.
async fn replicated_client(master: &RedisServer, timeout: Duration) -> QueueClient {
    let config = QueueConfig {
        durability: Durability::Replicated { replicas: 1, timeout },
        ..QueueConfig::default()
    };
    QueueClient::connect_with(&ConnectOptions::new(user_url(master, "queue")), config)
        .await
        .unwrap()
}

async fn wait_until_online(master: &RedisServer) {
    let admin = QueueClient::connect(&master.url()).await.unwrap();
    eventually("the replica to be online", Duration::from_secs(20), || async {
        let info: String = admin.redis().info(Some(InfoKind::Replication)).await.ok()?;
        info.contains("state=online").then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_acknowledged_enqueue_and_settle_are_on_the_replica_at_once() {
    let master = RedisServer::start().unwrap();
    acl_setuser(&master, "queue", &queue::acl_rules("queue")).await;
    let replica = replica_of(&master);
    wait_until_online(&master).await;
    let client = replicated_client(&master, Duration::from_secs(5)).await;
    let on_replica = QueueClient::connect(&replica.url()).await.unwrap();
    let q = client.queue("q").unwrap();
    // The replica's own view of the queue's keys, read without running a script there.
    let jobs_key = q.keys().all().iter().find(|k| k.ends_with(":jobs")).unwrap().clone();
    let completed_key = q
        .keys()
        .all()
        .iter()
        .find(|k| k.ends_with(":completed"))
        .unwrap()
        .clone();

    q.enqueue(NewJob::new("k", &1).id("j")).await.unwrap();
    let there: i64 = on_replica.redis().exists(&jobs_key).await.unwrap();
    assert_eq!(
        there, 1,
        "the enqueued job is on the replica as soon as enqueue returns"
    );

    let leased = q.pop(1, Duration::from_secs(30)).await.unwrap().jobs.remove(0);
    q.complete(&[leased.lease]).await.unwrap();
    let done: i64 = on_replica.redis().zcard(&completed_key).await.unwrap();
    assert_eq!(done, 1, "the completion is on the replica as soon as complete returns");
}

#[tokio::test]
async fn an_enqueue_the_replica_did_not_get_reports_it_and_is_on_the_master() {
    let master = RedisServer::start().unwrap();
    acl_setuser(&master, "queue", &queue::acl_rules("queue")).await;
    let mut replica = replica_of(&master);
    wait_until_online(&master).await;
    let client = replicated_client(&master, Duration::from_millis(200)).await;
    replica.kill();

    let q = client.queue("q").unwrap();
    let error = q.enqueue(NewJob::new("k", &1).id("j")).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::NotReplicated {
                acknowledged: 0,
                wanted: 1,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("the write is done on the master"), "{error}");
    q.job("j").await.expect("the job is on the master");
}

#[test]
fn the_cli_takes_durability_and_reports_what_was_not_replicated() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let q = runtime.block_on(support::start());
    let url = q.redis.url();
    let lone = support::queue_cli(&url, &["enqueue", "q", "1", "--durability", "replicated", "--id", "a"]);
    assert_eq!(lone.code, Some(1), "{}", lone.stderr);
    assert!(lone.stderr.contains("only 0 of 1 replicas"), "{}", lone.stderr);
    let bad = support::queue_cli(&url, &["enqueue", "q", "1", "--durability", "replicated:0"]);
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    assert!(bad.stderr.contains("invalid durability"), "{}", bad.stderr);
}

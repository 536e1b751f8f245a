//! Durability across failovers: with `Durability::Replicated`, an acknowledged enqueue or settle
//! is on the replica already, and one the replica did not get is reported as such.
use std::time::Duration;

use queue::{
    fred::{
        interfaces::{ClientLike, HashesInterface, KeysInterface, SortedSetsInterface},
        types::InfoKind,
    },
    low_level::Command,
    ConnectOptions, Durability, Error, NewJob, QueueClient, QueueConfig,
};
use throwaway_redis::{
    proxy::{evalsha, named, Fault, FaultProxy},
    Options, RedisServer,
};

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

/// A client through `proxy` (to the master) waiting for one replica up to 1 s.
async fn replicated_through(proxy: &FaultProxy) -> QueueClient {
    let config = QueueConfig {
        durability: Durability::Replicated {
            replicas: 1,
            timeout: Duration::from_secs(1),
        },
        ..QueueConfig::default()
    };
    let client = QueueClient::connect_with(&ConnectOptions::new(proxy.url()), config)
        .await
        .unwrap();
    client.scripts().preload(client.redis()).await.unwrap();
    client
}

/// A master with one online replica, a fault proxy in front of the master, and a client that
/// waits for the replica through the proxy.
async fn replicated_behind_a_proxy() -> (RedisServer, RedisServer, FaultProxy, QueueClient) {
    let master = RedisServer::start().unwrap();
    let replica = replica_of(&master);
    wait_until_online(&master).await;
    let proxy = FaultProxy::start(master.port()).unwrap();
    let client = replicated_through(&proxy).await;
    (master, replica, proxy, client)
}

fn push_sha(client: &QueueClient) -> String {
    client.scripts().get(Command::Push.name()).unwrap().sha1().to_owned()
}

#[tokio::test]
async fn an_enqueue_whose_reply_was_lost_is_sent_again_with_its_own_wait() {
    let (_master, replica, proxy, client) = replicated_behind_a_proxy().await;
    let pushes = proxy.count(evalsha(&push_sha(&client)));
    let waits = proxy.count(named("WAIT"));
    let cut = proxy.inject(evalsha(&push_sha(&client)), Fault::CutAfterReply, 1);

    let q = client.queue("q").unwrap();
    q.enqueue(NewJob::new("k", &1).id("j")).await.unwrap();
    assert_eq!(cut.fired(), 1);
    assert_eq!(pushes.get(), 2, "the push was sent again after the cut");
    assert!(waits.get() >= 1, "the second push was followed by a WAIT");
    let on_replica = QueueClient::connect(&replica.url()).await.unwrap();
    let jobs_key = q.keys().all().iter().find(|k| k.ends_with(":jobs")).unwrap().clone();
    let there: bool = on_replica.redis().hexists(&jobs_key, "j").await.unwrap();
    assert!(there, "the job is on the replica when enqueue returns");
    assert_eq!(q.stats().await.unwrap().enqueued_total, 1, "enqueued once");
}

/// The gap this closes: `WAIT` counts only the writes of its own connection, so one sent on a
/// new connection after a reconnect would count a replica that never got the write. With the
/// replica frozen (SIGSTOP: the master still lists it online, at the offset it last
/// acknowledged), a connection cut before the `WAIT` answered must not end in success.
#[tokio::test]
async fn a_connection_cut_between_the_write_and_its_wait_never_reports_replicated() {
    let (_master, replica, proxy, client) = replicated_behind_a_proxy().await;
    let q = client.queue("q").unwrap();
    // A first write the replica acknowledges, so that it counts for a WAIT that covers nothing.
    q.enqueue(NewJob::new("k", &1).id("before")).await.unwrap();
    replica.freeze().unwrap();

    // The script ran, and its reply was lost with the connection.
    let cut = proxy.inject(evalsha(&push_sha(&client)), Fault::CutAfterReply, 1);
    let error = q.enqueue(NewJob::new("k", &1).id("a")).await.unwrap_err();
    assert_eq!(cut.fired(), 1);
    assert!(
        matches!(error, Error::NotReplicated { acknowledged: 0, .. }),
        "{error:?}"
    );

    // The script's reply arrived; the WAIT ran and its reply was lost with the connection.
    // The push is sent again with it: a WAIT sent alone on the new connection would count
    // only what that connection wrote.
    let cut = proxy.inject(named("WAIT"), Fault::CutAfterReply, 1);
    let pushes = proxy.count(evalsha(&push_sha(&client)));
    let waits = proxy.count(named("WAIT"));
    let error = q.enqueue(NewJob::new("k", &1).id("b")).await.unwrap_err();
    assert_eq!(cut.fired(), 1);
    assert_eq!(
        (pushes.get(), waits.get()),
        (2, 2),
        "the push and its WAIT, sent twice together"
    );
    assert!(
        matches!(error, Error::NotReplicated { acknowledged: 0, .. }),
        "{error:?}"
    );

    let stats = q.stats().await.unwrap();
    assert_eq!(
        (stats.enqueued_total, stats.pending),
        (3, 3),
        "each job once, on the master"
    );
}

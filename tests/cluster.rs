//! The same queue on a 3-node Redis Cluster: every script's keys share one hash tag, so each
//! queue lives on one node and different queues spread over the cluster.
use std::{process::Command, time::Duration};

use queue::{
    fred::interfaces::LuaInterface, CancellationToken, ConnectOptions, JobContext, NewJob, QueueClient, QueueConfig,
    Worker,
};
use throwaway_redis::{Options, RedisServer};

use crate::support::eventually;

fn cluster_node() -> RedisServer {
    let args = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        "2000",
    ];
    RedisServer::start_with(Options {
        args: args.map(String::from).to_vec(),
        ..Default::default()
    })
    .unwrap()
}

fn slot_of(client: &QueueClient, queue: &str) -> u16 {
    queue::fred::util::redis_keyslot(client.keys(queue).unwrap().all()[0].as_bytes())
}

#[tokio::test]
async fn queues_spread_over_a_cluster_and_run_unchanged() {
    let nodes: Vec<RedisServer> = (0..3).map(|_| cluster_node()).collect();
    let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())).collect();
    let created = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addresses)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli (installed with redis-server)");
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stdout));

    let url = format!("redis-cluster://{}", addresses[0]);
    let client = eventually("the cluster to accept the client", Duration::from_secs(20), || async {
        QueueClient::connect_with(&ConnectOptions::new(&url), QueueConfig::default())
            .await
            .ok()
    })
    .await;
    // These three queues hash to slots served by three different nodes (0-5460, 5461-10922, 10923-16383).
    let queues = ["emails", "images", "reports"];
    let mut slots: Vec<u16> = queues.iter().map(|q| slot_of(&client, q) / 5461).collect();
    slots.sort();
    assert_eq!(slots, [0, 1, 2], "one queue per node");

    for queue in queues {
        let jobs = (0..50).map(|i| NewJob::new("task", &i));
        client.enqueue_bulk(queue, jobs).await.unwrap();
        client
            .enqueue(queue, NewJob::new("task", &-1).delay(Duration::from_millis(200)))
            .await
            .unwrap();
    }
    // Every node loses its script cache: calls recover there too.
    client.redis().script_flush_cluster(false).await.unwrap();

    let mut builder = Worker::builder(client.clone())
        .concurrency(8)
        .handle_kind("task", |_: i32, _ctx: JobContext| async { Ok(()) });
    for queue in queues {
        builder = builder.queue(queue);
    }
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(builder.build().run(shutdown.clone()));
    for queue in queues {
        eventually(&format!("{queue} drained"), Duration::from_secs(30), || async {
            client
                .stats(queue)
                .await
                .ok()
                .filter(|s| s.processed == 51 && s.active == 0)
        })
        .await;
    }
    shutdown.cancel();
    assert_eq!(running.await.unwrap().unwrap().completed, 153);
    assert_eq!(client.queues().await.unwrap(), queues);
}

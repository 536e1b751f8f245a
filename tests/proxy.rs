//! The fault-injecting proxy of the test kit (`throwaway_redis::proxy`), against a real Redis.
use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use queue::{
    fred::{clients::Client, interfaces::KeysInterface, prelude::*},
    ConnectOptions, NewJob, QueueClient, QueueConfig,
};
use throwaway_redis::proxy::{any, evalsha, named, Fault, FaultProxy};

use crate::support::start;

/// A raw connection through the proxy, reading replies with a deadline.
struct Raw(TcpStream);

impl Raw {
    fn connect(proxy: &FaultProxy) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        Raw(stream)
    }

    fn send(&mut self, wire: &str) {
        self.0.write_all(wire.as_bytes()).unwrap();
    }

    /// What arrives before the connection closes or stays quiet for 300 ms, and whether it closed.
    fn read_all(&mut self) -> (String, bool) {
        let mut got = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            match self.0.read(&mut chunk) {
                Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), true),
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return (String::from_utf8_lossy(&got).into_owned(), false)
                }
                Err(_) => return (String::from_utf8_lossy(&got).into_owned(), true),
            }
        }
    }
}

fn incr(key: &str) -> String {
    format!("*2\r\n$4\r\nINCR\r\n${}\r\n{key}\r\n", key.len())
}

/// A fred client through the proxy that does not reconnect (nor resend commands).
async fn one_shot_client(proxy: &FaultProxy) -> Client {
    let client = Builder::from_config(Config::from_url(&proxy.url()).unwrap())
        .with_performance_config(|p| p.default_command_timeout = Duration::from_secs(5))
        .build()
        .unwrap();
    client.init().await.unwrap();
    client
}

#[tokio::test]
async fn cut_after_reply_runs_the_command_and_loses_its_reply() {
    let q = start().await;
    let direct = q.client.redis();
    let proxy = q.redis.proxy();
    let cut = proxy.inject(named("INCR"), Fault::CutAfterReply, 1);

    let client = one_shot_client(&proxy).await;
    let result: Result<i64, _> = client.incr("counter").await;
    assert!(result.is_err(), "the client saw no reply: {result:?}");
    assert_eq!(cut.fired(), 1);
    let counter: i64 = direct.get("counter").await.unwrap();
    assert_eq!(counter, 1, "Redis ran the INCR once");

    // Pipelined: the reply before the cut arrives, the cut one and everything after it do not.
    let cut = proxy.inject(|c| c.is("INCR") && c.arg(1) == Some(b"b"), Fault::CutAfterReply, 1);
    let mut raw = Raw::connect(&proxy);
    raw.send(&format!("{}{}{}", incr("a"), incr("b"), incr("c")));
    let (replies, closed) = raw.read_all();
    assert_eq!((replies.as_str(), closed), (":1\r\n", true));
    assert_eq!(cut.fired(), 1);
    let ran: Vec<Option<i64>> = direct.mget(vec!["a", "b", "c"]).await.unwrap();
    assert_eq!(
        ran[..2],
        [Some(1), Some(1)],
        "Redis ran the command whose reply was cut"
    );

    // The rule fired its one time: the next connection works.
    let mut raw = Raw::connect(&proxy);
    raw.send(&incr("b"));
    assert_eq!(raw.read_all(), (":2\r\n".to_owned(), false));
}

#[tokio::test]
async fn cut_after_a_script_ran_leaves_its_write_in_redis() {
    let q = start().await;
    q.client.scripts().preload(q.client.redis()).await.unwrap();
    let proxy = q.redis.proxy();
    let push = q.client.scripts().get(queue::low_level::Command::Push.name()).unwrap();
    let cut = proxy.inject(evalsha(push.sha1()), Fault::CutAfterReply, 1);
    let pushes = proxy.count(evalsha(push.sha1()));

    let options = ConnectOptions {
        reconnect: false,
        ..ConnectOptions::new(proxy.url())
    };
    let through = QueueClient::connect_with(&options, QueueConfig::default())
        .await
        .unwrap();
    let enqueued = through.queue("q").unwrap().enqueue(NewJob::new("k", &1).id("j")).await;
    assert!(enqueued.is_err(), "the caller saw no reply: {enqueued:?}");
    assert_eq!((cut.fired(), pushes.get()), (1, 1));
    assert_eq!(q.queue().stats().await.unwrap().pending, 1, "the push ran");
}

#[tokio::test]
async fn a_swallowed_reply_never_arrives_and_the_connection_stays_open() {
    let q = start().await;
    let proxy = q.redis.proxy();
    let swallowed = proxy.inject(|c| c.is("INCR") && c.arg(1) == Some(b"s"), Fault::SwallowReply, 1);
    let mut raw = Raw::connect(&proxy);
    raw.send(&format!("{}{}", incr("before"), incr("s")));
    assert_eq!(
        raw.read_all(),
        (":1\r\n".to_owned(), false),
        "open, and silent after the swallowed reply"
    );
    assert_eq!(swallowed.fired(), 1);
    assert_eq!(proxy.connections(), 1);
    raw.send(&incr("after"));
    assert_eq!(raw.read_all(), (String::new(), false), "the connection stays silent");
    let ran: Vec<Option<i64>> = q.client.redis().mget(vec!["s", "after"]).await.unwrap();
    assert_eq!(ran, [Some(1), Some(1)], "Redis ran both");

    proxy.cut_all();
    assert_eq!(raw.read_all(), (String::new(), true), "cut_all closes it");
    assert_eq!(proxy.connections(), 0);
}

#[tokio::test]
async fn replies_can_be_delayed_and_commands_counted() {
    let q = start().await;
    let proxy = q.redis.proxy();
    let client = one_shot_client(&proxy).await;
    let incrs = proxy.count(named("INCR"));
    let everything = proxy.count(any());
    let delay = Duration::from_millis(300);
    let delayed = proxy.inject(named("INCR"), Fault::DelayReply(delay), 2);

    let started = Instant::now();
    let (a, b): (i64, i64) = tokio::join!(async { client.incr("d").await.unwrap() }, async {
        client.incr("d").await.unwrap()
    });
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
    assert_eq!((a.min(b), a.max(b)), (1, 2));
    assert_eq!(delayed.fired(), 2);
    let _: i64 = client.incr("d").await.unwrap();
    let _: Option<i64> = client.get("d").await.unwrap();
    assert_eq!(delayed.fired(), 2, "a rule fires the times it was given");
    assert_eq!((incrs.get(), everything.get()), (3, 4));
}

//! Redis Cluster and Redis Sentinel deployments made of [`RedisServer`]s, for failover tests:
//! every process on a free loopback port, killed on drop. They are driven with `redis-cli`.
use std::{
    io,
    process::Command,
    time::{Duration, Instant},
};

use crate::{Options, RedisServer};

/// Runs `redis-cli -p <port> <args>` and returns its output (`$REDIS_CLI` or the one on PATH).
pub fn cli(port: u16, args: &[&str]) -> io::Result<String> {
    let program = std::env::var("REDIS_CLI").unwrap_or_else(|_| "redis-cli".into());
    let output = Command::new(&program)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {program}: {e} (install redis-tools)")))?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "{program} {args:?} on port {port}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Polls `check` every 50 ms until it returns `Some`, or fails after `timeout` naming `what`.
fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> io::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "timed out after {timeout:?} waiting for {what}"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Redis Cluster: `masters` masters, each with `replicas` replicas, joined with
/// `redis-cli --cluster create`. Nodes are indexed in the order they were started; which of them
/// serves a slot is asked of the cluster ([`master_of`](Self::master_of)).
pub struct Cluster {
    nodes: Vec<RedisServer>,
}

impl Cluster {
    /// Starts the nodes with `--cluster-node-timeout node_timeout` (a short one makes failovers
    /// quick), creates the cluster, and returns once every slot is served and every replica is in
    /// sync with its master.
    pub fn start(masters: usize, replicas: usize, node_timeout: Duration) -> io::Result<Self> {
        let args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            &node_timeout.as_millis().to_string(),
        ]
        .map(String::from)
        .to_vec();
        let nodes = (0..masters * (1 + replicas))
            .map(|_| {
                RedisServer::start_with(Options {
                    args: args.clone(),
                    ..Default::default()
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        let cluster = Cluster { nodes };
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addresses.iter().map(String::as_str));
        let replicas = replicas.to_string();
        args.extend(["--cluster-replicas", &replicas, "--cluster-yes"]);
        cli(cluster.nodes[0].port(), &args)?;
        wait_for("the cluster to be ready", Duration::from_secs(30), || {
            cluster.nodes.iter().all(|node| node_ready(node.port())).then_some(())
        })?;
        Ok(cluster)
    }

    /// The nodes, masters and replicas, in the order they were started.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// `redis-cluster://127.0.0.1:<port>` of node `index`.
    pub fn url(&self, index: usize) -> String {
        format!("redis-cluster://127.0.0.1:{}", self.nodes[index].port())
    }

    /// The index of the node serving `slot` as master, as node `asking` sees it (`None` when no
    /// live master serves it there).
    pub fn master_of(&self, slot: u16, asking: usize) -> io::Result<Option<usize>> {
        let nodes = cli(self.nodes[asking].port(), &["cluster", "nodes"])?;
        let port = nodes.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            if !flags.contains("master") || flags.contains("fail") {
                return None;
            }
            let serves = fields.iter().skip(8).any(|range| {
                let mut bounds = range.split('-').map(|b| b.parse::<u16>().ok());
                match (bounds.next().flatten(), bounds.next()) {
                    (Some(first), None) => first == slot,
                    (Some(first), Some(Some(last))) => (first..=last).contains(&slot),
                    _ => false, // slots being migrated: [slot->-node]
                }
            });
            let address = fields.get(1)?.split('@').next()?;
            serves
                .then(|| address.rsplit(':').next()?.parse::<u16>().ok())
                .flatten()
        });
        Ok(port.and_then(|port| self.nodes.iter().position(|n| n.port() == port)))
    }

    /// Waits until node `asking` sees a live master other than `not` serving `slot`, and returns
    /// its index: after a master was killed, the replica that took over.
    pub fn wait_for_new_master(&self, slot: u16, not: usize, asking: usize, timeout: Duration) -> io::Result<usize> {
        wait_for("a replica to take over the slot", timeout, || {
            self.master_of(slot, asking)
                .ok()
                .flatten()
                .filter(|&master| master != not)
        })
    }

    /// Kills node `index` at once (SIGKILL).
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].kill();
    }

    /// Freezes node `index` (SIGSTOP, see [`RedisServer::freeze`]).
    pub fn freeze(&self, index: usize) -> io::Result<()> {
        self.nodes[index].freeze()
    }
}

/// Serves all slots, and is either a master or a replica whose link to its master is up.
fn node_ready(port: u16) -> bool {
    let info = cli(port, &["cluster", "info"]).unwrap_or_default();
    let replication = cli(port, &["info", "replication"]).unwrap_or_default();
    info.contains("cluster_state:ok")
        && (replication.contains("role:master") || replication.contains("master_link_status:up"))
}

/// Redis Sentinel: a master, one replica and three sentinels (quorum 2) watching it under the
/// service name `mymaster`, with short timeouts: a dead master is noticed after 1 s and its
/// replica promoted a second or two later.
pub struct Sentinels {
    /// The master (index 0) and the replica (index 1).
    servers: Vec<RedisServer>,
    sentinels: Vec<RedisServer>,
}

/// The service name the sentinels watch.
pub const SENTINEL_SERVICE: &str = "mymaster";

impl Sentinels {
    /// Starts everything and returns once every sentinel knows the replica and the other two
    /// sentinels, and the replica is in sync.
    pub fn start() -> io::Result<Self> {
        let master = RedisServer::start()?;
        let replica = RedisServer::start_with(Options {
            args: ["--replicaof", "127.0.0.1", &master.port().to_string()]
                .map(String::from)
                .to_vec(),
            ..Default::default()
        })?;
        let config = format!(
            "sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {port} 2\n\
             sentinel down-after-milliseconds {SENTINEL_SERVICE} 1000\n\
             sentinel failover-timeout {SENTINEL_SERVICE} 2000\n",
            port = master.port()
        );
        // The same binary as redis-server: `redis-sentinel` is only a link to it.
        let sentinels = (0..3)
            .map(|_| {
                RedisServer::start_with(Options {
                    args: vec!["--sentinel".into()],
                    config: Some(config.clone()),
                    ..Default::default()
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        let setup = Sentinels {
            servers: vec![master, replica],
            sentinels,
        };
        wait_for(
            "the sentinels to see each other and the replica",
            Duration::from_secs(30),
            || {
                let synced = cli(setup.servers[1].port(), &["info", "replication"])
                    .is_ok_and(|info| info.contains("master_link_status:up"));
                let known = setup.sentinels.iter().all(|s| {
                    cli(s.port(), &["sentinel", "master", SENTINEL_SERVICE]).is_ok_and(|state| {
                        let lines: Vec<&str> = state.lines().collect();
                        let field = |name: &str| lines.iter().position(|l| *l == name).and_then(|i| lines.get(i + 1));
                        field("num-slaves") == Some(&"1") && field("num-other-sentinels") == Some(&"2")
                    })
                });
                (synced && known).then_some(())
            },
        )?;
        Ok(setup)
    }

    /// `redis-sentinel://` URL naming all three sentinels and the service.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self.sentinels[1..]
            .iter()
            .map(|s| format!("&node=127.0.0.1:{}", s.port()))
            .collect();
        format!(
            "redis-sentinel://127.0.0.1:{}/?sentinelServiceName={SENTINEL_SERVICE}{}",
            self.sentinels[0].port(),
            nodes.concat()
        )
    }

    /// The master's port as the first sentinel reports it.
    pub fn master_port(&self) -> io::Result<u16> {
        let reply = cli(
            self.sentinels[0].port(),
            &["sentinel", "get-master-addr-by-name", SENTINEL_SERVICE],
        )?;
        reply
            .lines()
            .nth(1)
            .and_then(|port| port.trim().parse().ok())
            .ok_or_else(|| io::Error::other(format!("no master address in {reply:?}")))
    }

    /// Kills the current master at once (SIGKILL) and returns its port.
    pub fn kill_master(&mut self) -> io::Result<u16> {
        let port = self.master_port()?;
        if let Some(master) = self.servers.iter_mut().find(|s| s.port() == port) {
            master.kill();
        }
        Ok(port)
    }

    /// Freezes the current master (SIGSTOP, see [`RedisServer::freeze`]) and returns its port.
    pub fn freeze_master(&self) -> io::Result<u16> {
        let port = self.master_port()?;
        if let Some(master) = self.servers.iter().find(|s| s.port() == port) {
            master.freeze()?;
        }
        Ok(port)
    }

    /// Waits until the sentinels report a master other than the one on port `old`, and it
    /// answers as a master.
    pub fn wait_for_new_master(&self, old: u16, timeout: Duration) -> io::Result<u16> {
        wait_for("the sentinels to promote the replica", timeout, || {
            let port = self.master_port().ok().filter(|&port| port != old)?;
            cli(port, &["info", "replication"])
                .is_ok_and(|info| info.contains("role:master"))
                .then_some(port)
        })
    }
}

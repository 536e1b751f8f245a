//! A fault-injecting TCP proxy in front of Redis, for tests of what a client does when the
//! network misbehaves.
//!
//! The proxy listens on a free loopback port and forwards every connection to Redis. It reads
//! the RESP commands clients send and the replies Redis sends back, and pairs them in order
//! (pipelining included: any number of commands may be in flight on a connection). Rules
//! chosen by a predicate over a command's arguments then act on that command's reply:
//!
//! - [`Fault::CutAfterReply`]: Redis ran the command; its reply is read and dropped, and both
//!   sockets are closed ("Redis ran it, the reply was lost");
//! - [`Fault::SwallowReply`]: the reply never arrives and the connection stays open;
//! - [`Fault::DelayReply`]: the reply arrives late.
//!
//! [`FaultProxy::cut_all`] closes every open connection, and [`FaultProxy::count`] counts
//! the commands forwarded. Our client calls scripts as `EVALSHA <sha> <numkeys> keys... args`,
//! which [`evalsha`] matches:
//!
//! ```no_run
//! use throwaway_redis::{proxy::{evalsha, Fault, FaultProxy}, RedisServer};
//!
//! let redis = RedisServer::start().unwrap();
//! let proxy = FaultProxy::start(redis.port()).unwrap();
//! let sha = "0123456789abcdef0123456789abcdef01234567"; // the script's SHA-1
//! // The next call of that script runs, and its caller sees the connection drop instead of the reply.
//! let cut = proxy.inject(evalsha(sha), Fault::CutAfterReply, 1);
//! // ... connect the client under test to proxy.url() and run it ...
//! assert_eq!(cut.fired(), 1);
//! ```
//!
//! Replies are RESP2 (and RESP3's aggregate and simple types); push messages, attributes and
//! pub/sub or MONITOR connections are not supported: they would break the pairing. Inline
//! commands (plain text lines) are forwarded and paired, split at spaces without quoting.
//! Plain threads do the work, so a proxy never competes with the test's async runtime.
//!
//! The RESP parsing is in `proxy/resp.rs`; this file is the proxy: its rules and one protocol
//! loop per connection direction.
mod resp;

use std::{
    collections::VecDeque,
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        mpsc, Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use resp::{parse_command, reply_len};

/// One command as a client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    args: Vec<Vec<u8>>,
}

impl Command {
    /// All arguments, the command's name first.
    pub fn args(&self) -> &[Vec<u8>] {
        &self.args
    }

    /// Argument `index` (0 is the name).
    pub fn arg(&self, index: usize) -> Option<&[u8]> {
        self.args.get(index).map(Vec::as_slice)
    }

    /// Whether the command's name is `name`, ignoring case.
    pub fn is(&self, name: &str) -> bool {
        self.arg(0).is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()))
    }
}

/// Matches the commands named `name` (any case), e.g. `named("INCR")`.
pub fn named(name: &str) -> impl Fn(&Command) -> bool + Send + Sync + 'static {
    let name = name.to_owned();
    move |command| command.is(&name)
}

/// Matches `EVALSHA <sha> ...`: the calls of one script, by its SHA-1 (any case).
pub fn evalsha(sha: &str) -> impl Fn(&Command) -> bool + Send + Sync + 'static {
    let sha = sha.to_owned();
    move |command| command.is("EVALSHA") && command.arg(1).is_some_and(|s| s.eq_ignore_ascii_case(sha.as_bytes()))
}

/// Matches every command.
pub fn any() -> impl Fn(&Command) -> bool + Send + Sync + 'static {
    |_| true
}

/// What a rule does to the reply of a command it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Redis runs the command; its reply is read from Redis and dropped, then the client's
    /// connection and the proxy's connection to Redis are both closed.
    CutAfterReply,
    /// The reply is never delivered and the connection stays open. So that the client never
    /// pairs a later reply with this command, the connection goes silent from here on: later
    /// replies on it are dropped too (as on a connection that hangs), while the client's
    /// commands still reach Redis.
    SwallowReply,
    /// The reply is delivered this long after Redis sent it. Replies stay in order, so the
    /// replies behind it on the same connection wait too.
    DelayReply(Duration),
}

/// How a rule added by [`FaultProxy::inject`] is doing.
#[derive(Debug, Clone)]
pub struct Rule {
    state: Arc<RuleState>,
}

impl Rule {
    /// How many commands the rule has acted on so far.
    pub fn fired(&self) -> usize {
        self.state.fired.load(Ordering::SeqCst)
    }
}

/// Counts the commands a predicate matches; see [`FaultProxy::count`].
#[derive(Debug, Clone)]
pub struct Counter {
    count: Arc<AtomicUsize>,
}

impl Counter {
    /// How many matching commands were forwarded to Redis so far.
    pub fn get(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

type Predicate = Box<dyn Fn(&Command) -> bool + Send + Sync>;

#[derive(Debug)]
struct RuleState {
    fault: Fault,
    times: usize,
    fired: AtomicUsize,
}

struct RuleEntry {
    when: Predicate,
    state: Arc<RuleState>,
}

#[derive(Default)]
struct Rules {
    rules: Vec<RuleEntry>,
    counters: Vec<(Predicate, Arc<AtomicUsize>)>,
}

impl Rules {
    /// Counts `command`, and takes one firing of the first rule it matches that has some left.
    fn on_forward(&self, command: &Command) -> Option<Fault> {
        for (when, count) in &self.counters {
            if when(command) {
                count.fetch_add(1, Ordering::SeqCst);
            }
        }
        self.rules.iter().find_map(|rule| {
            if !(rule.when)(command) {
                return None;
            }
            let taken = rule.state.fired.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < rule.state.times).then_some(n + 1)
            });
            taken.is_ok().then_some(rule.state.fault)
        })
    }
}

struct Shared {
    upstream: SocketAddr,
    rules: Mutex<Rules>,
    /// Open connections: (id, client socket, Redis socket), for `cut_all`.
    connections: Mutex<Vec<(u64, TcpStream, TcpStream)>>,
    next_id: AtomicU64,
    stopped: AtomicBool,
}

impl Shared {
    fn close(&self, id: u64) {
        let mut connections = self.connections.lock().expect("connections lock");
        if let Some(index) = connections.iter().position(|(c, _, _)| *c == id) {
            let (_, client, redis) = connections.swap_remove(index);
            let _ = client.shutdown(Shutdown::Both);
            let _ = redis.shutdown(Shutdown::Both);
        }
    }
}

/// A TCP proxy to Redis that injects faults; see the [module docs](self). Dropping it stops
/// listening and closes every connection.
pub struct FaultProxy {
    shared: Arc<Shared>,
    address: SocketAddr,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port forwarding to Redis on `127.0.0.1:<redis_port>`.
    pub fn start(redis_port: u16) -> io::Result<Self> {
        Self::start_to(SocketAddr::from(([127, 0, 0, 1], redis_port)))
    }

    /// Starts a proxy on a free loopback port forwarding to `upstream`.
    pub fn start_to(upstream: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            rules: Mutex::default(),
            connections: Mutex::default(),
            next_id: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        });
        let accepting = shared.clone();
        let acceptor = thread::Builder::new()
            .name("fault-proxy-accept".into())
            .spawn(move || accept(listener, accepting))?;
        Ok(FaultProxy {
            shared,
            address,
            acceptor: Some(acceptor),
        })
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// `redis://127.0.0.1:<port>`: the proxy's address as a client's URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port())
    }

    /// Applies `fault` to the replies of the next `times` commands `when` matches
    /// (`usize::MAX`: every one). A command forwarded from now on takes the first rule, in the
    /// order added, that matches it and has firings left.
    pub fn inject(&self, when: impl Fn(&Command) -> bool + Send + Sync + 'static, fault: Fault, times: usize) -> Rule {
        let state = Arc::new(RuleState {
            fault,
            times,
            fired: AtomicUsize::new(0),
        });
        self.shared.rules.lock().expect("rules lock").rules.push(RuleEntry {
            when: Box::new(when),
            state: state.clone(),
        });
        Rule { state }
    }

    /// Counts the commands `when` matches that are forwarded to Redis from now on.
    pub fn count(&self, when: impl Fn(&Command) -> bool + Send + Sync + 'static) -> Counter {
        let count = Arc::new(AtomicUsize::new(0));
        self.shared
            .rules
            .lock()
            .expect("rules lock")
            .counters
            .push((Box::new(when), count.clone()));
        Counter { count }
    }

    /// Removes every rule (counters keep counting). Commands already forwarded keep the fault
    /// they were given.
    pub fn clear(&self) {
        self.shared.rules.lock().expect("rules lock").rules.clear();
    }

    /// Closes every open connection now, both sides; new connections are accepted as before.
    pub fn cut_all(&self) {
        let open: Vec<u64> = {
            let connections = self.shared.connections.lock().expect("connections lock");
            connections.iter().map(|(id, _, _)| *id).collect()
        };
        for id in open {
            self.shared.close(id);
        }
    }

    /// How many client connections are open.
    pub fn connections(&self) -> usize {
        self.shared.connections.lock().expect("connections lock").len()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wakes the acceptor, which sees `stopped` and returns.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        self.cut_all();
    }
}

fn accept(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        // Redis unreachable: the client sees its connection closed at once.
        let Ok(redis) = TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(5)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = redis.set_nodelay(true);
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        // Each socket: one handle per thread using it, one kept for `cut_all`.
        let clones = (|| {
            Ok::<_, io::Error>([
                client.try_clone()?,
                client.try_clone()?,
                redis.try_clone()?,
                redis.try_clone()?,
            ])
        })();
        let Ok([client_read, client_kept, redis_read, redis_kept]) = clones else {
            continue;
        };
        shared
            .connections
            .lock()
            .expect("connections lock")
            .push((id, client_kept, redis_kept));
        let (pending_tx, pending_rx) = mpsc::channel();
        let forwarding = shared.clone();
        let _ = thread::Builder::new()
            .name(format!("fault-proxy-{id}-commands"))
            .spawn(move || {
                forward_commands(client_read, redis, &forwarding, pending_tx);
                forwarding.close(id);
            });
        let replying = shared.clone();
        let _ = thread::Builder::new()
            .name(format!("fault-proxy-{id}-replies"))
            .spawn(move || {
                forward_replies(redis_read, client, pending_rx);
                replying.close(id);
            });
    }
}

/// Client to Redis: each complete command is registered (with its fault) before it is sent,
/// so its reply always finds it.
fn forward_commands(
    mut client: TcpStream,
    mut redis: TcpStream,
    shared: &Shared,
    pending: mpsc::Sender<Option<Fault>>,
) {
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match client.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buffer.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        while let Some((command, len)) = match parse_command(&buffer[start..]) {
            Ok(parsed) => parsed,
            Err(()) => return,
        } {
            let fault = shared.rules.lock().expect("rules lock").on_forward(&command);
            if pending.send(fault).is_err() || redis.write_all(&buffer[start..start + len]).is_err() {
                return;
            }
            start += len;
        }
        buffer.drain(..start);
    }
}

/// Redis to client: each complete reply is paired with the oldest command waiting for one.
fn forward_replies(mut redis: TcpStream, mut client: TcpStream, pending: mpsc::Receiver<Option<Fault>>) {
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut silent = false;
    let mut waiting: VecDeque<Option<Fault>> = VecDeque::new();
    loop {
        let n = match redis.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let arrived = Instant::now();
        buffer.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        while let Some(len) = match reply_len(&buffer[start..]) {
            Ok(len) => len,
            Err(()) => return,
        } {
            let reply = &buffer[start..start + len];
            start += len;
            // A reply comes only after its command was registered.
            waiting.extend(pending.try_iter());
            let fault = waiting.pop_front().flatten();
            match fault {
                Some(Fault::CutAfterReply) => return,
                Some(Fault::SwallowReply) => silent = true,
                Some(Fault::DelayReply(delay)) => {
                    if let Some(wait) = (arrived + delay).checked_duration_since(Instant::now()) {
                        thread::sleep(wait);
                    }
                }
                None => {}
            }
            if !silent && client.write_all(reply).is_err() {
                return;
            }
        }
        buffer.drain(..start);
    }
}

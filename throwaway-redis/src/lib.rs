//! A real `redis-server` for tests, examples and benchmarks: a free loopback port, a temp dir,
//! stopped (and its files removed) on drop. No shared server, no fixed port, no cleanup.
//!
//! ```no_run
//! let redis = throwaway_redis::RedisServer::start().expect("redis-server on PATH");
//! println!("{}", redis.url());
//! ```
#![deny(missing_docs)]

pub mod proxy;

use std::{
    io::{self, Read},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// How to start the server.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extra `redis-server` arguments, e.g. `["--appendonly", "yes"]`.
    pub args: Vec<String>,
    /// A fixed port (to restart on the same address); a free one when `None`.
    pub port: Option<u16>,
    /// Lines of a config file, written to the server's directory and given to `redis-server`
    /// before the arguments: a sentinel (`--sentinel` in `args`) needs a file it can rewrite.
    pub config: Option<String>,
}

/// A running `redis-server`. Dropping it kills the process and deletes its directory.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    options: Options,
}

impl RedisServer {
    /// Starts a server with default options.
    pub fn start() -> io::Result<Self> {
        Self::start_with(Options::default())
    }

    /// Starts a server with `options`.
    pub fn start_with(options: Options) -> io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("throwaway-redis-").tempdir()?;
        let mut server = RedisServer {
            child: None,
            port: 0,
            dir,
            options,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> io::Result<()> {
        // A port taken from the OS can be grabbed by someone else before redis binds it, so a
        // failed start is retried on a new port.
        let mut last_error = None;
        for _ in 0..5 {
            let port = match self.options.port.or((self.port != 0).then_some(self.port)) {
                Some(port) => port,
                None => free_port()?,
            };
            match self.spawn_on(port) {
                Ok(child) => {
                    self.child = Some(child);
                    self.port = port;
                    return Ok(());
                }
                Err(error) if self.options.port.is_none() && self.port == 0 => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("redis-server did not start")))
    }

    fn spawn_on(&self, port: u16) -> io::Result<Child> {
        let log = self.dir.path().join("redis.log");
        let mut command = Command::new(binary());
        if let Some(config) = &self.options.config {
            let file = self.dir.path().join("redis.conf");
            std::fs::write(&file, config)?;
            command.arg(file);
        }
        command
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--daemonize",
                "no",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .args(&self.options.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot run {}: {e} (install redis-server, e.g. `apt-get install redis-server`)",
                    binary()
                ),
            )
        })?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait()? {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(io::Error::other(format!(
                    "redis-server exited with {status} on port {port}: {}{}",
                    stderr.trim(),
                    log.lines().rev().take(3).collect::<Vec<_>>().join(" | ")
                )));
            }
            if ping(port) {
                return Ok(child);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(io::Error::other(format!(
                    "redis-server on port {port} did not answer PING within 10 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's working directory (AOF and RDB files live here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server at once (SIGKILL): data not persisted is lost.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server with SIGSTOP, leaving its connections open and unanswered: from the
    /// network, a host that hung or vanished without closing anything. [`kill`](Self::kill)
    /// (or drop) still ends it.
    pub fn freeze(&self) -> io::Result<()> {
        let Some(child) = &self.child else { return Ok(()) };
        let status = Command::new("kill").args(["-STOP", &child.id().to_string()]).status()?;
        if !status.success() {
            return Err(io::Error::other(format!("kill -STOP {} failed: {status}", child.id())));
        }
        Ok(())
    }

    /// Starts the server again on the same port and directory (after [`kill`](Self::kill)).
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.spawn()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

mod cluster;
pub use cluster::{cli, Cluster, Sentinels, SENTINEL_SERVICE};

/// The `redis-server` to run: `$REDIS_SERVER` or the one on PATH.
pub fn binary() -> String {
    std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn ping(port: u16) -> bool {
    use std::io::Write;
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    // A server with a password answers NOAUTH: it is up all the same.
    matches!(stream.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH"))
}

/// Redis in a Docker container through testcontainers: the opt-in alternative where a Docker
/// engine runs (`--features testcontainers`). These machines have none, so the local
/// `redis-server` stays the default path.
#[cfg(feature = "testcontainers")]
pub mod container {
    use testcontainers::{
        core::{IntoContainerPort, WaitFor},
        runners::AsyncRunner,
        ContainerAsync, GenericImage,
    };

    /// A Redis container; stopped and removed on drop.
    pub struct RedisContainer {
        _container: ContainerAsync<GenericImage>,
        url: String,
    }

    impl RedisContainer {
        /// Starts `redis:<tag>` and waits until it accepts connections.
        pub async fn start(tag: &str) -> Result<Self, testcontainers::TestcontainersError> {
            let container = GenericImage::new("redis", tag)
                .with_exposed_port(6379.tcp())
                .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
                .start()
                .await?;
            let host = container.get_host().await?;
            let port = container.get_host_port_ipv4(6379).await?;
            Ok(RedisContainer {
                _container: container,
                url: format!("redis://{host}:{port}"),
            })
        }

        /// The URL to connect to.
        pub fn url(&self) -> String {
            self.url.clone()
        }
    }
}

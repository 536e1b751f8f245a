//! Connecting to Redis from a URL, with the password kept out of every message.
use std::time::Duration;

use fred::{
    clients::Client,
    interfaces::ClientLike,
    types::{
        config::{ClusterDiscoveryPolicy, Config, ReconnectPolicy, UnresponsiveConfig},
        Builder,
    },
};

use crate::{Error, Result};

/// How long a connection may leave a command unanswered before it is taken for dead, dropped
/// and made again. A master that dies without closing its connections (a crashed host, a
/// network partition, a frozen process) otherwise keeps every command waiting for its timeout,
/// for good: fred only looks for a new master or a new cluster topology when it reconnects.
/// Well above what any of the queue's scripts takes; a false alarm costs one reconnect.
const UNRESPONSIVE_AFTER: Duration = Duration::from_secs(5);

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `redis://[user[:password]@]host[:port][/db]` or `rediss://` for TLS.
    pub url: String,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// How long one command may take before it fails with a timeout (blocking calls excepted).
    pub command_timeout: Duration,
    /// Reconnect (forever, with exponential backoff) after the connection drops. Workers want
    /// this; a one-shot command-line call does not.
    pub reconnect: bool,
    /// For `rediss://`: a PEM file of the CA certificates to trust instead of the system's
    /// (a private CA, or a test certificate).
    pub tls_ca_file: Option<std::path::PathBuf>,
}

impl ConnectOptions {
    /// Defaults for `url`: 5 s to connect, 30 s per command, reconnecting.
    pub fn new(url: impl Into<String>) -> Self {
        ConnectOptions {
            url: url.into(),
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(30),
            reconnect: true,
            tls_ca_file: None,
        }
    }

    /// Builds a client and makes the first connection; fails fast if Redis is not there.
    pub async fn connect(&self) -> Result<Client> {
        let client = self.client()?;
        client.init().await.map_err(|error| self.connect_error(&error))?;
        Ok(client)
    }

    /// Builds a client without connecting (for callers that wait for Redis to appear).
    pub fn client(&self) -> Result<Client> {
        let mut config = Config::from_url(&self.url).map_err(|e| Error::InvalidUrl {
            url: redact_url(&self.url),
            reason: e.details().to_owned(),
        })?;
        if let Some(ca) = &self.tls_ca_file {
            if !self.url.starts_with("rediss://") && !self.url.starts_with("rediss-cluster://") {
                return Err(Error::InvalidUrl {
                    url: redact_url(&self.url),
                    reason: "a TLS CA file needs a rediss:// URL".into(),
                });
            }
            config.tls = Some(tls_trusting(ca)?.into());
        }
        // On a reconnect, look for the cluster's topology through every master of the last one
        // known, not only through the URL's node, which may be the one that died.
        let _not_a_cluster = config
            .server
            .set_cluster_discovery_policy(ClusterDiscoveryPolicy::UseCache);
        let mut builder = Builder::from_config(config);
        builder.with_connection_config(|c| {
            c.connection_timeout = self.connect_timeout;
            c.internal_command_timeout = self.connect_timeout;
            c.unresponsive = UnresponsiveConfig {
                max_timeout: Some(UNRESPONSIVE_AFTER),
                interval: Duration::from_millis(500),
            };
        });
        builder.with_performance_config(|p| {
            p.default_command_timeout = self.command_timeout;
        });
        if self.reconnect {
            builder.set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2));
        }
        Ok(builder.build()?)
    }

    /// The error for a failed connection, naming the address with the password masked.
    pub fn connect_error(&self, error: &fred::error::Error) -> Error {
        let details = error.details();
        let reason = if details.contains("WRONGPASS") || details.contains("invalid password") {
            "wrong username or password".to_owned()
        } else if details.contains("NOAUTH") {
            "authentication required: put the password in the URL (redis://:password@host)".to_owned()
        } else if details.contains("Connection refused") {
            "connection refused (is redis-server running there?)".to_owned()
        } else if *error.kind() == fred::error::ErrorKind::Timeout || details.contains("timed out") {
            format!("no answer within {}s", self.connect_timeout.as_secs_f64())
        } else if details.contains("failed to lookup") || details.contains("Name or service not known") {
            format!("cannot resolve the host name ({details})")
        } else if details.is_empty() {
            format!("{:?}", error.kind())
        } else {
            details.to_owned()
        };
        Error::Connect {
            address: redact_url(&self.url),
            reason,
        }
    }
}

/// The URL with its password replaced by `***`.
///
/// ```
/// assert_eq!(queue_core::redact_url("redis://app:s3cret@db:6379/0"), "redis://app:***@db:6379/0");
/// assert_eq!(queue_core::redact_url("redis://db:6379"), "redis://db:6379");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    // Without a colon the whole userinfo may be a password, so all of it is masked.
    let masked = match userinfo.find(':') {
        Some(colon) => format!("{}:***", &userinfo[..colon]),
        None => "***".to_owned(),
    };
    format!("{}{masked}@{}", &url[..scheme_end + 3], &rest[at + 1..])
}

/// A rustls client configuration that trusts the CA certificates in `ca_file` (PEM).
fn tls_trusting(ca_file: &std::path::Path) -> Result<fred::types::config::TlsConnector> {
    use rustls_pki_types::{pem::PemObject, CertificateDer};
    let unreadable = |reason: String| Error::Connect {
        address: ca_file.display().to_string(),
        reason: format!("cannot use the TLS CA file: {reason}"),
    };
    let mut roots = rustls::RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(ca_file).map_err(|e| unreadable(e.to_string()))?;
    for certificate in certificates {
        roots
            .add(certificate.map_err(|e| unreadable(e.to_string()))?)
            .map_err(|e| unreadable(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(unreadable("no certificate in it".into()));
    }
    // The provider is named, not left to a process-wide default that another crate could set.
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unreadable(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config.into())
}

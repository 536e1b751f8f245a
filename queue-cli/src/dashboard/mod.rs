//! `queue-cli dashboard`: the queues in a browser, served by this process.
//!
//! Server-rendered pages (maud) over the same client calls and JSON shapes as the CLI, a small
//! script for live refresh, and an SVG chart of the rates this process has sampled. Every asset
//! is compiled into the binary: the dashboard needs no internet access.
mod access;
mod api;
mod history;
mod links;
mod pages;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use axum::{
    routing::{get, post},
    Router,
};
use queue_core::QueueClient;

use crate::{output, ConnectArgs};

/// Where the token comes from when `--token` is not given.
const TOKEN_ENV: &str = "QUEUE_DASHBOARD_TOKEN";

#[derive(Debug, clap::Args)]
pub(crate) struct DashboardArgs {
    /// Address to listen on. Anything beyond loopback needs a token.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// A secret every request must carry (open the dashboard once with `?token=...`; API
    /// clients send `Authorization: Bearer ...`).
    #[arg(long, env = TOKEN_ENV, hide_env_values = true)]
    token: Option<String>,
    /// How often the counters are sampled for the rate chart (the last hour is kept).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    sample_every: Duration,
    /// The path the dashboard is served under, for a reverse proxy that passes it on (e.g.
    /// `/ops/queues`). Its links are relative, so a proxy that strips the prefix needs nothing.
    #[arg(long, default_value = "/", value_parser = links::parse_base_path)]
    base_path: String,
}

/// What every handler shares.
pub(crate) struct Dashboard {
    client: QueueClient,
    access: access::Access,
    history: history::History,
    /// The Redis URL with its password masked, for the page footer.
    redis: String,
}

type Shared = Arc<Dashboard>;

pub(crate) async fn run(connect: &ConnectArgs, args: DashboardArgs) -> anyhow::Result<()> {
    let token = args.token.filter(|t| !t.is_empty());
    if !args.listen.ip().is_loopback() && token.is_none() {
        anyhow::bail!(
            "listening on {} (beyond loopback) needs --token or {TOKEN_ENV}: anyone who reaches \
             the port could purge queues",
            args.listen
        );
    }
    if args.sample_every.is_zero() {
        anyhow::bail!("--sample-every must be above zero");
    }
    // A long-running process: it reconnects after a Redis restart instead of exiting.
    let (options, config) = connect.options();
    let client = QueueClient::connect_with(&options, config)
        .await
        .with_context(|| format!("cannot connect to {}", queue_core::redact_url(&connect.redis_url)))?;
    let dashboard = Arc::new(Dashboard {
        client,
        access: access::Access::new(token),
        history: history::History::new(args.sample_every),
        redis: queue_core::redact_url(&connect.redis_url),
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    let stop = queue_worker::shutdown_on_signals();
    tokio::spawn(history::sample(dashboard.clone(), stop.clone()));
    output::line(format_args!(
        "dashboard listening on http://{address}{}/",
        args.base_path
    ))?;
    let app = match args.base_path.as_str() {
        "" => router(dashboard),
        // Around the whole router, so the routes see the path without the prefix.
        base => Router::new()
            .fallback_service(router(dashboard))
            .layer(axum::middleware::from_fn_with_state(
                base.to_owned(),
                links::under_base_path,
            )),
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
        .context("the dashboard's server stopped")
}

fn router(dashboard: Shared) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/queues/{queue}", get(pages::queue))
        .route("/queues/{queue}/lookup", get(pages::lookup))
        .route("/queues/{queue}/jobs/{id}", get(pages::job))
        .route("/queues/{queue}/confirm/{action}", get(pages::confirm))
        .route("/queues/{queue}/pause", post(pages::pause))
        .route("/queues/{queue}/resume", post(pages::resume))
        .route("/queues/{queue}/dead/retry", post(pages::dead_retry))
        .route("/queues/{queue}/dead/retry-all", post(pages::dead_retry_all))
        .route("/queues/{queue}/dead/purge", post(pages::dead_purge))
        .route("/queues/{queue}/jobs/delete", post(pages::delete_job))
        .route("/queues/{queue}/jobs/run-now", post(pages::run_now))
        .route("/queues/{queue}/jobs/cancel", post(pages::cancel_job))
        .route("/queues/{queue}/drain", post(pages::drain))
        .route("/api/queues", get(api::queues))
        .route("/api/queues/{queue}", get(api::queue))
        .route("/api/queues/{queue}/dead", get(api::dead))
        .route("/api/queues/{queue}/limits", get(api::limits))
        .route("/api/queues/{queue}/cron", get(api::cron))
        .route("/api/queues/{queue}/groups", get(api::groups))
        .route("/api/queues/{queue}/jobs", get(api::jobs))
        .route("/api/queues/{queue}/jobs/{id}", get(api::job))
        .route("/api/history", get(api::history))
        .route("/assets/style.css", get(pages::style))
        .route("/assets/live.js", get(pages::script))
        .layer(axum::middleware::from_fn(pages::render_failure))
        .layer(axum::middleware::from_fn_with_state(dashboard.clone(), access::check))
        .with_state(dashboard)
}

/// A request that failed: its status and a one-line message. Pages show it in the layout; the
/// API sends it as `{"error": ...}`.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        use queue_core::Error;
        let error = error.into();
        let status = match error.downcast_ref::<Error>() {
            Some(Error::UnknownQueue(_) | Error::JobNotFound { .. } | Error::NotInDeadLetter { .. }) => {
                StatusCode::NOT_FOUND
            }
            Some(Error::InvalidQueueName { .. } | Error::InvalidJobId { .. } | Error::InvalidLimit(_)) => {
                StatusCode::BAD_REQUEST
            }
            // A running job cannot be deleted, a pending one cannot be run ahead of its time.
            Some(Error::JobActive { .. } | Error::NotRetryable { .. }) => StatusCode::CONFLICT,
            // Redis is the server behind this one: its failures are a bad gateway.
            _ => StatusCode::BAD_GATEWAY,
        };
        Failure::new(status, format!("{error:#}"))
    }
}

impl IntoResponse for Failure {
    /// The status and the failure itself: `pages::render_failure`, which knows the page's
    /// place for its links, makes the page of it.
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

//! `/metrics` over HTTP (axum on the worker's tokio runtime).
use std::sync::Arc;

use axum::{extract::State, http::header, response::IntoResponse, routing::get, Router};
use prometheus_client::{encoding::text, registry::Registry};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{QueueGauges, WorkerMetrics, CONTENT_TYPE};

/// What one scrape shows: a worker's own metrics, if any, and the queues' gauges.
#[derive(Debug)]
pub(crate) struct Exposition {
    pub(crate) worker: Option<Arc<WorkerMetrics>>,
    pub(crate) queues: QueueGauges,
}

impl Exposition {
    async fn render(&self) -> String {
        let mut queues = Registry::default();
        self.queues.register_reading(&mut queues).await;
        let mut text = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        if let Some(worker) = &self.worker {
            let _ = text::encode_registry(&mut text, &worker.registry);
        }
        let _ = text::encode_registry(&mut text, &queues);
        let _ = text::encode_eof(&mut text);
        text
    }
}

/// Serves the queues' gauges at `/metrics` on `listener` until `shutdown` is cancelled: what
/// `queue-cli metrics` runs. A worker serves its own metrics beside them (see
/// [`WorkerBuilder::metrics_addr`](crate::WorkerBuilder::metrics_addr)).
pub async fn serve(listener: TcpListener, queues: QueueGauges, shutdown: CancellationToken) -> std::io::Result<()> {
    serve_exposition(listener, Exposition { worker: None, queues }, shutdown).await
}

pub(crate) async fn serve_exposition(
    listener: TcpListener,
    exposition: Exposition,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(Arc::new(exposition));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn scrape(State(exposition): State<Arc<Exposition>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], exposition.render().await)
}

//! A worker only: charges the orders the producer enqueued, with the service's own state and
//! error types, until SIGTERM or Ctrl-C (a second one stops at once).
//!
//! `QUEUE_REDIS_URL=redis://127.0.0.1:6379 cargo run --example worker`
mod orders;

use std::sync::atomic::{AtomicU64, Ordering};

use orders::{ChargeOrder, QUEUE};
use queue::{JobContext, JobError, QueueClient, Worker};

/// What the handlers share, given once to the builder: a database pool, an HTTP client...
struct Payments {
    charged_cents: AtomicU64,
}

async fn charge(order: ChargeOrder, ctx: JobContext<Payments>) -> Result<(), JobError> {
    if order.cents == 0 {
        return Err(JobError::permanent("nothing to charge")); // the dead letter, no retries
    }
    // Any error a service has converts with `?` (std, anyhow, boxed, a message): retried.
    let receipt = serde_json::to_string(&order)?;
    ctx.state().charged_cents.fetch_add(order.cents, Ordering::Relaxed);
    tracing::debug!(receipt, "charged");
    // The lease token grows with every lease: a fence for writes an older attempt must not make.
    println!(
        "charged order {} (attempt {}, fence {})",
        order.order_id,
        ctx.attempt(),
        ctx.fencing_token()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt::init(); // the runtime logs retries, dead jobs and Redis errors
    let client = QueueClient::connect_from_env().await?;
    let worker = Worker::builder(client)
        .state(Payments {
            charged_cents: AtomicU64::new(0),
        })
        .queue(QUEUE)
        .concurrency(20)
        .handle(charge)
        .build();
    let report = worker.run(queue::shutdown_on_signals()).await?;
    println!("stopped: {report:?}");
    Ok(())
}

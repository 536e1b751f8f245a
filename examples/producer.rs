//! A producer only: enqueues orders to charge, as a web handler would, and exits.
//!
//! `QUEUE_REDIS_URL=redis://127.0.0.1:6379 cargo run --example producer`; run
//! `cargo run --example worker` beside it to work them off.
mod orders;

use orders::{ChargeOrder, QUEUE};
use queue::{NewJob, QueueClient};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client = QueueClient::connect_from_env().await?;
    let orders = client.queue(QUEUE)?;
    // One order, as a value of its type: its kind and options come with it.
    let one = orders
        .enqueue(ChargeOrder {
            order_id: 1,
            cents: 1999,
        })
        .await?;
    println!("enqueued order 1 as job {}", one.id);
    // An explicit id: enqueueing order 1 again while its job is in Redis writes nothing.
    let again = orders
        .enqueue(
            NewJob::of(&ChargeOrder {
                order_id: 1,
                cents: 1999,
            })
            .id("charge-1"),
        )
        .await?;
    println!("charge-1 created: {}", again.created);
    // A bulk: all or none, in one call.
    let bulk = (2..=100).map(|order_id| ChargeOrder { order_id, cents: 500 });
    let jobs = orders.enqueue_bulk(bulk).await?;
    println!("enqueued {} more orders", jobs.len());
    Ok(())
}

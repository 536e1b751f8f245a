//! The job types the examples share: a producer and a worker agree on them by type.
use queue::{JobPayload, NewJob};
use std::time::Duration;

/// Charge a customer for an order.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ChargeOrder {
    pub order_id: u64,
    pub cents: u64,
}

impl JobPayload for ChargeOrder {
    const KIND: &'static str = "charge_order";

    fn options(job: NewJob) -> NewJob {
        job.max_attempts(5).timeout(Duration::from_secs(30))
    }
}

/// The queue both sides use.
pub const QUEUE: &str = "orders";

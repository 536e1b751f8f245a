//! The delay between retries of a Redis call.
use std::time::Duration;

/// Exponential retry delay for Redis errors: 100 ms doubling up to 5 s. The worker's loops
/// use it, and so does [`connect_when_available`](crate::connect_when_available).
#[derive(Default)]
pub(crate) struct RetryDelay {
    failures: u32,
}

impl RetryDelay {
    pub(crate) fn next(&mut self) -> Duration {
        let delay = Duration::from_millis(100u64.saturating_mul(1 << self.failures.min(6))).min(Duration::from_secs(5));
        self.failures += 1;
        delay
    }

    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

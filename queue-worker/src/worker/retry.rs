//! The delay between retries of a Redis call.
use std::time::Duration;

/// Exponential retry delay for Redis errors: 100 ms doubling up to 5 s.
#[derive(Default)]
pub(super) struct RetryDelay {
    failures: u32,
}

impl RetryDelay {
    pub(super) fn next(&mut self) -> Duration {
        let delay = Duration::from_millis(100u64.saturating_mul(1 << self.failures.min(6))).min(Duration::from_secs(5));
        self.failures += 1;
        delay
    }

    pub(super) fn reset(&mut self) {
        self.failures = 0;
    }
}

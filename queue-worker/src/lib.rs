//! The worker runtime (typed handlers, concurrency, leases, reaper, graceful shutdown).
#![deny(missing_docs)]

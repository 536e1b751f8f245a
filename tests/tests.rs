//! Integration tests against real redis-server processes, one module per queue command.
mod support;

mod bad_input;
mod chaos;
mod cluster;
mod complete;
mod dead;
mod envelope;
mod extend;
mod fail;
mod faults;
mod job;
mod leases;
mod locked_down;
mod pause;
mod pop;
mod proxy;
mod push;
mod queue_cli;
mod queue_worker;
mod queue_worker_promises;
mod reap;
mod redelivery;
mod registry;
mod sentinel;
mod stats;
mod worker;

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
mod job;
mod locked_down;
mod pause;
mod pop;
mod push;
mod queue_cli;
mod queue_worker;
mod reap;
mod registry;
mod sentinel;
mod stats;
mod worker;

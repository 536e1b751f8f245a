//! A Redis job queue whose every state change is one atomic Lua script.
//!
//! This crate is the facade a service depends on: it re-exports [`queue_core`].
#![deny(missing_docs)]

pub use queue_core::*;

//! The operator's command line: stats and admin commands.
#![deny(missing_docs)]

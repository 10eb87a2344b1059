//! bintrail: turns a MySQL server's binary log into a queryable, durable history of every row change.
//!
//! The binary (`src/main.rs`, `src/cli.rs`, `src/commands/`) is a thin shell around this library:
//! clap types stop at `cli.rs`, everything here takes validated configs from [`config`].

pub mod config;
pub mod dsn;
pub mod encoding;
pub mod filter;
pub mod position;
pub mod service;
pub mod source;
pub mod tls;

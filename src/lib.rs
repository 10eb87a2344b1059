//! bintrail: turns a MySQL server's binary log into a queryable, durable history of every row change.
//!
//! The binary (`src/main.rs`, `src/cli.rs`, `src/commands/`) is a thin shell around this library:
//! clap types stop at `cli.rs`, everything here takes validated configs from [`config`].

pub mod archive;
pub mod change;
pub mod classify;
pub mod config;
pub mod connect;
pub mod dry_run;
pub mod dsn;
pub mod encoding;
pub mod files;
pub mod fill_gap;
pub mod filter;
pub mod history;
pub mod index;
pub mod metrics;
pub mod percent;
pub mod policy;
pub mod position;
pub mod service;
pub mod source;
pub mod sql;
pub mod stream;
pub mod telemetry;
pub mod time;
pub mod tls;

//! The one integration test binary (each extra binary is another slow link on 2 cores).

mod cli;
mod filters;
mod refusals;
mod resume;
mod servers;
mod stream_basic;
mod support;

//! The change index: its tables ([`ddl`]), the per-stream checkpoint ([`state`]), the skipped
//! history ([`gaps`]) and the batch
//! writer ([`writer`]).

pub mod ddl;
pub mod gaps;
pub mod state;
pub mod writer;

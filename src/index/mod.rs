//! The change index: its tables ([`ddl`]), the per-stream checkpoint ([`state`]) and the batch
//! writer ([`writer`]).

pub mod ddl;
pub mod state;
pub mod writer;

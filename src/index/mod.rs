//! The change index: its tables ([`ddl`]), the per-stream checkpoint ([`state`]), the skipped
//! history ([`gaps`]), the batch writer ([`writer`]) and the takeover of an index the
//! established tool created ([`adopt`]).

pub mod adopt;
pub mod ddl;
pub mod gaps;
pub mod state;
pub mod writer;

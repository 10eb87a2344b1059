//! Whether the reader has anything more to give right now: the signal that lets the writer
//! flush a small batch at once when traffic is light, and keep filling large ones under a backlog.
//!
//! # Invariant
//! [`Idle::is_waiting`] is true only while the reader waits on the replica socket with no event
//! buffered (every chunk it made so far is already in the channel), and each time it becomes true
//! the writer is woken. It is a level, not an edge: a wake-up that arrives after the reader got
//! busy again reads `false` and changes nothing, so a stale wake-up never costs a small batch.
//! It only ever moves a flush earlier; what a flush writes, and its checkpoint, are unchanged.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// Shared between the reader (which sets it) and the writer (which reads it).
#[derive(Debug, Default)]
pub struct Idle {
    waiting: AtomicBool,
    wake: Notify,
}

impl Idle {
    /// The reader is about to wait on the socket with nothing buffered.
    pub fn enter(&self) {
        self.waiting.store(true, Ordering::Release);
        // notify_one keeps a permit when the writer is not waiting yet, so no wake-up is lost.
        self.wake.notify_one();
    }

    /// The reader has an event again.
    pub fn leave(&self) {
        self.waiting.store(false, Ordering::Release);
    }

    /// Whether the reader is waiting on the socket with nothing buffered right now.
    pub fn is_waiting(&self) -> bool {
        self.waiting.load(Ordering::Acquire)
    }

    /// Completes when the reader has (possibly) become idle since the last call.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_up_before_the_writer_waits_is_kept() {
        let idle = Idle::default();
        idle.enter();
        // Would hang if the permit had been lost.
        idle.woken().await;
        assert!(idle.is_waiting());
    }

    #[tokio::test]
    async fn a_stale_wake_up_reads_busy() {
        let idle = Idle::default();
        idle.enter();
        idle.leave();
        idle.woken().await;
        assert!(!idle.is_waiting());
    }
}

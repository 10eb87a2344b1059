//! The replica connection's wire: the read deadline measures bytes, not events.
//!
//! # Why bytes
//! The source sends a heartbeat only when it has nothing else to send. Between events the
//! connection proves it is alive with heartbeats; in the middle of one event it can only do so
//! with that event's own bytes. A deadline on whole events cannot tell a 20 MB row arriving
//! slowly from a dead link. It gave up on the row after four heartbeats, reconnected, and
//! started the same row again, for ever. So the deadline counts silence from the last byte
//! received on the replica connection. A large event on a slow link completes, and a connection
//! that sends nothing is still replaced one read deadline after its last byte. A link that stays
//! alive without moving forward (a byte now and then) is not this deadline's concern.
//!
//! # Why a relay
//! mysql_async 0.37.1 owns the socket and offers no hook to see its bytes. Its `Endpoint` is a
//! private enum over a concrete `TcpStream` (or TLS over one), and the packet codec that builds
//! an event from its packets (16 MiB each at most) is private too. The stream yields nothing
//! before the whole event is there. So the replica connection is dialled through a relay in this
//! process ([`Wire::tunnel`]): a loopback listener that accepts one connection (the driver's),
//! pipes it to the source, and notes the time of every read from the source. The relay passes
//! bytes unchanged, so TLS still runs end to end between the driver and the source, and the
//! certificate is checked against the DSN's host (`connect::connect_through`). The cost is one
//! loopback copy per byte on this connection only. The lookup connection and the index are
//! dialled directly.
//!
//! The listener exists until the driver connects (at most the connect timeout) and accepts one
//! connection. A local process that got there first would only get a connection to the source,
//! which it could open itself; the driver's attempt would then fail and be retried.
//!
//! # Silence counts only while waiting
//! While the reader waits for the writer (a full channel), nobody reads the connection, the
//! relay's buffers fill, and the source stops sending. That silence is ours, not the link's, so
//! each wait for an event counts from the later of its start and the last byte.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::connect::CONNECT_TIMEOUT;

/// Bytes the relay moves at once.
const RELAY_BUFFER: usize = 64 * 1024;

/// When the replica connection last received a byte from the source.
#[derive(Debug)]
pub struct Wire {
    /// The clock's zero (tokio's clock, so that paused-time tests drive it).
    epoch: Instant,
    /// Milliseconds from `epoch` to the last byte received.
    last_ms: AtomicU64,
}

/// No byte arrived within the read deadline.
#[derive(Debug, PartialEq, Eq)]
pub struct Silent;

impl Wire {
    /// A clock that last heard the source now.
    pub fn new() -> Arc<Wire> {
        Arc::new(Wire {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    /// Notes that bytes arrived now.
    pub fn heard(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// When bytes last arrived.
    pub fn last_heard(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// Connects to `host:port` and returns a loopback address that leads there, for one
    /// connection, whose received bytes this clock notes.
    pub async fn tunnel(self: Arc<Self>, host: String, port: u16) -> std::io::Result<SocketAddr> {
        // The source first, so that its refusal is the error the caller sees.
        let source = TcpStream::connect((host.as_str(), port)).await?;
        source.set_nodelay(true)?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        tokio::spawn(relay(listener, source, self));
        Ok(addr)
    }
}

/// Waits for the driver, then pipes both ways until either side closes; dropping both sockets
/// then closes the other side too.
async fn relay(listener: TcpListener, source: TcpStream, wire: Arc<Wire>) {
    let accepted = tokio::time::timeout(CONNECT_TIMEOUT, listener.accept()).await;
    drop(listener);
    let Ok(Ok((driver, _))) = accepted else {
        return;
    };
    let _ = driver.set_nodelay(true);
    let (from_driver, to_driver) = driver.into_split();
    let (from_source, to_source) = source.into_split();
    tokio::select! {
        () = pipe(from_driver, to_source, None) => {}
        () = pipe(from_source, to_driver, Some(&wire)) => {}
    }
}

/// Copies until end of stream or an error, noting each read on `wire`.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, wire: Option<&Wire>) {
    let mut buf = vec![0u8; RELAY_BUFFER];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Some(wire) = wire {
            wire.heard();
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The next item of `stream`, unless `wire` hears nothing for `deadline` while waiting for it.
/// Bytes arriving count as life, however long the item takes.
pub async fn next_within<S: Stream + Unpin>(
    stream: &mut S,
    wire: &Wire,
    deadline: Duration,
) -> Result<Option<S::Item>, Silent> {
    let waiting_since = Instant::now();
    let quiet_since = || wire.last_heard().max(waiting_since);
    let mut next = stream.next();
    loop {
        let quiet = quiet_since();
        tokio::select! {
            biased;
            item = &mut next => return Ok(item),
            () = tokio::time::sleep_until(quiet + deadline) => {
                if quiet_since() == quiet {
                    return Err(Silent);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use futures_util::stream;

    const DEADLINE: Duration = Duration::from_secs(4);

    /// An item after `after`, while `wire` hears a byte every `every` until then.
    async fn item_after(after: Duration, every: Duration, wire: &Wire) -> u32 {
        let until = Instant::now() + after;
        while Instant::now() + every < until {
            tokio::time::sleep(every).await;
            wire.heard();
        }
        tokio::time::sleep_until(until).await;
        7
    }

    #[tokio::test(start_paused = true)]
    async fn an_item_that_trickles_in_for_many_deadlines_arrives() {
        let wire = Wire::new();
        let started = Instant::now();
        let mut items = Box::pin(stream::once(item_after(
            DEADLINE * 5,
            Duration::from_secs(3),
            &wire,
        )));
        assert_eq!(next_within(&mut items, &wire, DEADLINE).await, Ok(Some(7)));
        assert_eq!(started.elapsed(), DEADLINE * 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_wire_is_given_up_one_deadline_after_its_last_byte() {
        let wire = Wire::new();
        let mut items = Box::pin(stream::pending::<u32>());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        let waiter = next_within(&mut items, &wire, DEADLINE);
        let bytes = async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            wire.heard();
        };
        let (outcome, ()) = tokio::join!(waiter, bytes);
        assert_eq!(outcome, Err(Silent));
        assert_eq!(started.elapsed(), Duration::from_secs(3) + DEADLINE);
    }

    #[tokio::test(start_paused = true)]
    async fn silence_before_the_wait_began_does_not_count() {
        let wire = Wire::new();
        // The reader was busy elsewhere (a full channel) for longer than the deadline.
        tokio::time::sleep(DEADLINE * 3).await;
        let started = Instant::now();
        let mut items = Box::pin(stream::once(async {
            tokio::time::sleep(DEADLINE - Duration::from_millis(10)).await;
            7u32
        }));
        assert_eq!(next_within(&mut items, &wire, DEADLINE).await, Ok(Some(7)));
        let mut nothing = Box::pin(stream::pending::<u32>());
        assert_eq!(
            next_within(&mut nothing, &wire, DEADLINE).await,
            Err(Silent)
        );
        assert_eq!(started.elapsed(), DEADLINE * 2 - Duration::from_millis(10));
    }
}

//! A small TCP proxy on loopback that can freeze (hold every byte, keep the sockets open: a
//! half-open or hung peer), cut (close every connection: a network failure) or throttle (a slow
//! link from the server to its clients) the traffic to a test server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// The slowest link a test may ask for: below this, a test would wait minutes, not seconds.
pub const MIN_RATE: u64 = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Flow,
    Frozen,
    /// Server-to-client bytes pass at this many bytes per second at most.
    Throttled(u64),
}

/// A running proxy; dropped, it stops accepting.
pub struct Proxy {
    /// The port to connect to instead of the server's.
    pub port: u16,
    mode: watch::Sender<Mode>,
    generation: watch::Sender<u64>,
    to_clients: Arc<AtomicU64>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts forwarding a free loopback port to `target_port` (on loopback too).
    pub async fn start(target_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mode, mode_rx) = watch::channel(Mode::Flow);
        let (generation, gen_rx) = watch::channel(0u64);
        let to_clients = Arc::new(AtomicU64::new(0));
        let counter = to_clients.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)).await else {
                    continue;
                };
                let (mode_rx, gen_rx) = (mode_rx.clone(), gen_rx.clone());
                tokio::spawn(pipe_pair(client, server, mode_rx, gen_rx, counter.clone()));
            }
        });
        Proxy {
            port,
            mode,
            generation,
            to_clients,
            accept,
        }
    }

    /// Bytes passed from the server to clients so far, all connections together.
    pub fn bytes_to_clients(&self) -> u64 {
        self.to_clients.load(Ordering::Relaxed)
    }

    /// Holds all traffic; connections stay open but nothing passes.
    pub fn freeze(&self) {
        self.mode.send_replace(Mode::Frozen);
    }

    /// Lets traffic pass again at full speed.
    pub fn thaw(&self) {
        self.mode.send_replace(Mode::Flow);
    }

    /// Lets the server's bytes reach each client at `bytes_per_second` at most (at least
    /// [`MIN_RATE`]); the client's bytes still pass at full speed.
    pub fn throttle(&self, bytes_per_second: u64) {
        assert!(
            bytes_per_second >= MIN_RATE,
            "a throttle below {MIN_RATE} B/s would make the test wait for minutes"
        );
        self.mode.send_replace(Mode::Throttled(bytes_per_second));
    }

    /// Closes every connection open now.
    pub fn cut(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn pipe_pair(
    client: TcpStream,
    server: TcpStream,
    mode: watch::Receiver<Mode>,
    mut generation: watch::Receiver<u64>,
    to_clients: Arc<AtomicU64>,
) {
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let born = *generation.borrow_and_update();
    let shared = Arc::new(());
    let up = tokio::spawn(pump(cr, sw, mode.clone(), None, shared.clone()));
    let down = tokio::spawn(pump(sr, cw, mode, Some(to_clients), shared));
    // Dropping both halves of both sockets closes them.
    loop {
        if generation.changed().await.is_err() || *generation.borrow() != born {
            break;
        }
    }
    up.abort();
    down.abort();
}

/// Bytes read at once: also the largest burst a throttled link lets through.
const CHUNK: usize = 16 * 1024;

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    to_clients: Option<Arc<AtomicU64>>,
    _shared: Arc<()>,
) {
    let mut buf = vec![0u8; CHUNK];
    let mut pace = Pace::default();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // While frozen, hold the bytes (and stop reading) until thawed.
        let current = loop {
            let current = *mode.borrow_and_update();
            if current != Mode::Frozen {
                break current;
            }
            if mode.changed().await.is_err() {
                return;
            }
        };
        // Only the server's bytes (the counted ones) are throttled.
        match (&to_clients, current) {
            (Some(_), Mode::Throttled(rate)) => pace.wait(n, rate).await,
            _ => pace = Pace::default(),
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        if let Some(count) = &to_clients {
            count.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

/// Longest lull that a paced run rides through; after a longer one the link starts afresh, so an
/// idle link saves up no credit for a burst.
const LULL: Duration = Duration::from_millis(100);

/// Spaces writes so that a throttled link carries `rate` bytes per second. Holding the bytes
/// stops the pump reading, so TCP's own flow control slows the server: nothing queues here beyond
/// one [`CHUNK`]. Writes are timed from the start of the run, so that timer slack does not add
/// up (it would slow the link below `rate`).
#[derive(Default)]
struct Pace {
    /// When the current paced run began, its rate, and the bytes let through since.
    run: Option<(Instant, u64, u64)>,
}

impl Pace {
    async fn wait(&mut self, n: usize, rate: u64) {
        let now = Instant::now();
        let (start, run_rate, sent) = self.run.get_or_insert((now, rate, 0));
        let caught_up = *start + Duration::from_secs_f64(*sent as f64 / *run_rate as f64);
        if *run_rate != rate || caught_up + LULL < now {
            (*start, *run_rate, *sent) = (now, rate, 0);
        }
        *sent += n as u64;
        // These bytes may leave once the link would have carried everything of this run.
        let due = *start + Duration::from_secs_f64(*sent as f64 / rate as f64);
        tokio::time::sleep_until(due).await;
    }
}

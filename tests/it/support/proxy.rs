//! A small TCP proxy on loopback that can freeze (hold every byte, keep the sockets open: a
//! half-open or hung peer) or cut (close every connection: a network failure) the traffic to a
//! test server.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Flow,
    Frozen,
}

/// A running proxy; dropped, it stops accepting.
pub struct Proxy {
    /// The port to connect to instead of the server's.
    pub port: u16,
    mode: watch::Sender<Mode>,
    generation: watch::Sender<u64>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts forwarding a free loopback port to `target_port`.
    pub async fn start(target_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mode, mode_rx) = watch::channel(Mode::Flow);
        let (generation, gen_rx) = watch::channel(0u64);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)).await else {
                    continue;
                };
                let (mode_rx, gen_rx) = (mode_rx.clone(), gen_rx.clone());
                tokio::spawn(pipe_pair(client, server, mode_rx, gen_rx));
            }
        });
        Proxy {
            port,
            mode,
            generation,
            accept,
        }
    }

    /// Holds all traffic; connections stay open but nothing passes.
    pub fn freeze(&self) {
        self.mode.send_replace(Mode::Frozen);
    }

    /// Lets traffic pass again.
    pub fn thaw(&self) {
        self.mode.send_replace(Mode::Flow);
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
) {
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let born = *generation.borrow_and_update();
    let shared = Arc::new(());
    let up = tokio::spawn(pump(cr, sw, mode.clone(), shared.clone()));
    let down = tokio::spawn(pump(sr, cw, mode, shared));
    // Dropping both halves of both sockets closes them.
    loop {
        if generation.changed().await.is_err() || *generation.borrow() != born {
            break;
        }
    }
    up.abort();
    down.abort();
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    _shared: Arc<()>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // While frozen, hold the bytes (and stop reading) until thawed.
        while *mode.borrow_and_update() == Mode::Frozen {
            if mode.changed().await.is_err() {
                return;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

//! A delaying TCP proxy in front of each node's peer listener, standing in
//! for `tc netem` (absent from this kernel).
//!
//! The proxy for host `i` listens on `10.77.0.<i>:<peer port>` *inside host
//! `i`'s namespace* and forwards to the node's peer listener on that
//! namespace's loopback. Peers therefore reach each other only through it,
//! their packets still cross the veth links (so iptables rules in the
//! namespaces cut them), and the proxy sees each connection's real source
//! host. While a delay fault is set, every chunk in either direction of a
//! connection from another host is held for `delay + uniform(0, jitter)`
//! (in order within a connection; connections overtake each other, which
//! reorders messages between nodes).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The delay fault currently applied at one host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delay {
    /// Fixed delay per chunk and direction.
    pub base_ms: u64,
    /// Extra uniform random delay, 0..=jitter.
    pub jitter_ms: u64,
}

/// One host's proxy: its listening task and the delay it applies.
pub struct Proxy {
    delay: Arc<Mutex<Delay>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts the proxy for a host: `listen` (inside the host) forwards to
    /// `127.0.0.1:target_port` (inside the host).
    pub async fn start(
        ns: &std::fs::File,
        listen: SocketAddr,
        target_port: u16,
    ) -> Result<Proxy, String> {
        let listener = super::netns::in_ns(ns, move || {
            let l = std::net::TcpListener::bind(listen)?;
            l.set_nonblocking(true)?;
            Ok::<_, std::io::Error>(l)
        })?
        .map_err(|e| format!("proxy bind {listen}: {e}"))?;
        let listener = TcpListener::from_std(listener).map_err(|e| e.to_string())?;
        let delay = Arc::new(Mutex::new(Delay::default()));
        let ns = ns.try_clone().map_err(|e| e.to_string())?;
        let own_ip = listen.ip();
        let d = delay.clone();
        let ns = Arc::new(ns);
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, from)) = listener.accept().await else {
                    continue;
                };
                let ns = ns.clone();
                let delayed = from.ip() != own_ip && !from.ip().is_loopback();
                let d = d.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = connect_in(&ns, target_port).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let delay = if delayed { Some(d) } else { None };
                    forward(inbound, outbound, delay).await;
                });
            }
        });
        Ok(Proxy { delay, task })
    }

    /// Sets (or with `Delay::default()`, clears) the delay fault.
    pub fn set_delay(&self, delay: Delay) {
        *self.delay.lock().expect("delay lock") = delay;
    }

    /// The delay in force.
    pub fn delay(&self) -> Delay {
        *self.delay.lock().expect("delay lock")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn connect_in(ns: &Arc<std::fs::File>, port: u16) -> Result<TcpStream, String> {
    let ns = ns.clone();
    let std_stream = tokio::task::spawn_blocking(move || {
        super::netns::in_ns(&ns, move || {
            let s = std::net::TcpStream::connect(("127.0.0.1", port))?;
            s.set_nonblocking(true)?;
            Ok::<_, std::io::Error>(s)
        })
    })
    .await
    .map_err(|e| e.to_string())??
    .map_err(|e| e.to_string())?;
    TcpStream::from_std(std_stream).map_err(|e| e.to_string())
}

async fn forward(inbound: TcpStream, outbound: TcpStream, delay: Option<Arc<Mutex<Delay>>>) {
    let (in_r, in_w) = inbound.into_split();
    let (out_r, out_w) = outbound.into_split();
    let up = tokio::spawn(pump(in_r, out_w, delay.clone()));
    let down = tokio::spawn(pump(out_r, in_w, delay));
    let _ = tokio::join!(up, down);
}

/// Copies one direction, holding each chunk until its release time.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Option<Arc<Mutex<Delay>>>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut last = Instant::now();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let hold = delay.as_ref().map_or(Duration::ZERO, |d| {
            let d = *d.lock().expect("delay lock");
            let jitter = if d.jitter_ms > 0 {
                rand::rng().random_range(0..=d.jitter_ms)
            } else {
                0
            };
            Duration::from_millis(d.base_ms + jitter)
        });
        last = last.max(Instant::now() + hold);
        if tx.send((last, buf[..n].to_vec())).is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

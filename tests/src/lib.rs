//! keel-tests: a harness that runs real `keel server` processes on
//! loopback (fresh temp dirs, free ports) and talks to them over HTTP.
//!
//! Tests wait on conditions with deadlines ([`eventually`]), never on fixed
//! sleeps. When a test fails, every node's log tail is printed.

mod api;
mod cluster;
mod process;

pub use api::{Api, Reply};
pub use cluster::{Cluster, ClusterBuilder};
pub use process::{Node, keel_bin};

use std::future::Future;
use std::time::Duration;

/// Polls `check` until it yields `Some`, or panics after `deadline` with
/// `what` and the last observation.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let until = tokio::time::Instant::now() + deadline;
    let mut last;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(e) => last = e,
        }
        if tokio::time::Instant::now() >= until {
            panic!("timed out after {deadline:?} waiting for {what}; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(0, 20_000 + (std::process::id() % 20_000) as u16, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        if port > 60_000 {
            NEXT.store(20_000, Ordering::SeqCst);
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

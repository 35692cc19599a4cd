//! keel-tests: a harness that runs real `keel server` processes on
//! loopback (fresh temp dirs, free ports) and talks to them over HTTP.
//!
//! Tests wait on conditions with deadlines ([`eventually`]), never on fixed
//! sleeps. When a test fails, every node's log tail is printed.

mod api;
mod cluster;
pub mod config_cluster;
pub mod due;
pub mod guard;
pub mod jepsen;
pub mod leases;
pub mod manager_log;
pub mod pki;
mod process;
pub mod raw;
pub mod snapshot_memory;
pub mod snapshots;
pub mod workload;
pub mod writer;

pub use api::{Api, Reply, http_client};
pub use cluster::{CLUSTER_SECRET, Cluster, ClusterBuilder, TOKEN};
pub use process::{Finished, Node, keel_bin, run_keel};

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

/// RFC 3339 UTC for the wall clock `secs` seconds from now.
pub fn rfc3339_in(secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    rfc3339(now + secs)
}

/// RFC 3339 UTC of a Unix time (civil-from-days, proleptic Gregorian).
pub fn rfc3339(unix: i64) -> String {
    let (days, rem) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The lowest port the kernel hands out to outgoing connections
/// (`ip_local_port_range`); listeners are placed below it so a client's
/// ephemeral port can never take a port a node is about to bind.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A free TCP port on 127.0.0.1, below the ephemeral range. Each test
/// process starts at a different offset, so concurrent test binaries
/// rarely probe the same ports.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const LOW: u16 = 10_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let high = ephemeral_low().max(LOW + 1_000);
    let span = u32::from(high - LOW);
    let _ = NEXT.compare_exchange(
        0,
        LOW + (std::process::id() % span) as u16,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        if port >= high {
            NEXT.store(LOW, Ordering::SeqCst);
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_formats_unix_times() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}

//! Time you can trust: every node measures its wall-clock offset to every
//! peer and applies the max-offset rule to itself.
//!
//! A node probes each peer's `/raft/time` (see [`probe`]), keeps a short
//! window of round-trip corrected samples per peer ([`window`]), and, on
//! every probe round, judges its own clock: it is *clock-healthy* iff the
//! peers whose offset is within `--max-clock-offset` form, with itself, a
//! majority of the voters. A node that is not clock-healthy does not lead,
//! does not propose, does not serve reads derived from its clock and is not
//! ready; the [`ClockMonitor`] is the shared record those gates read.
//!
//! With every leader clock-healthy, stamped time is within the bound of
//! the majority's clocks, and with stamps never going backwards (see
//! `State::stamp_time`) no lease is seen expired before
//! `deadline - max offset` nor outlives `deadline + max offset` plus the
//! time it takes to elect a leader.

pub mod probe;
pub mod window;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use window::{Estimate, Sample, Verdict};
use window::{PeerWindow, assess};

/// This node's judgement of its own clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClockHealth {
    /// Whether this node's clock is within the bound of a majority.
    pub healthy: bool,
    /// This node's clock minus the majority's, when known.
    pub offset_from_majority_ms: Option<i64>,
    /// Voters agreeing with this clock within the bound (itself included).
    pub agreeing: usize,
    /// Voters that make a majority.
    pub quorum: usize,
    /// The bound in force.
    pub max_offset_ms: u64,
    /// Why, in a sentence.
    pub reason: String,
}

/// Whom a node measures its clock against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClockPeers {
    /// Every other member's peer address: each is probed.
    pub probed: BTreeSet<String>,
    /// The other voters' peer addresses: the majority rule counts these.
    pub other_voters: Vec<String>,
    /// Whether this node is a voter (it then counts itself).
    pub self_votes: bool,
}

/// What this node knows of one peer's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerClock {
    /// The peer's address (`host:port` of its peer listener).
    pub addr: String,
    /// Its clock minus ours, from fresh samples.
    pub offset_ms: Option<i64>,
    /// How far the true offset may be from `offset_ms`.
    pub uncertainty_ms: Option<u64>,
    /// Milliseconds since it last answered a probe.
    pub last_contact_ms: Option<u64>,
    /// Its keel version, from its last answer.
    pub version: Option<String>,
}

#[derive(Debug, Default)]
struct PeerRecord {
    window: PeerWindow,
    version: Option<String>,
}

#[derive(Debug)]
struct Inner {
    peers: BTreeMap<String, PeerRecord>,
    health: ClockHealth,
}

/// The shared record of clock offsets and of this node's clock health.
/// Cheap to clone. The prober writes it; the write and read gates,
/// readiness, metrics and the cluster view read it.
#[derive(Debug, Clone)]
pub struct ClockMonitor {
    max_offset: Duration,
    inner: Arc<Mutex<Inner>>,
    healthy: Arc<AtomicBool>,
}

impl ClockMonitor {
    /// A monitor for the bound `max_offset`. Until the first assessment
    /// the clock is not trusted.
    pub fn new(max_offset: Duration) -> Self {
        let health = ClockHealth {
            healthy: false,
            offset_from_majority_ms: None,
            agreeing: 0,
            quorum: 0,
            max_offset_ms: max_offset.as_millis() as u64,
            reason: "no clock assessment yet".into(),
        };
        ClockMonitor {
            max_offset,
            inner: Arc::new(Mutex::new(Inner {
                peers: BTreeMap::new(),
                health,
            })),
            healthy: Arc::new(AtomicBool::new(false)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bound.
    pub fn max_offset(&self) -> Duration {
        self.max_offset
    }

    /// Records one probe of the peer at `addr`.
    pub fn record(&self, addr: &str, sample: Sample, version: String) {
        let mut inner = self.lock();
        let peer = inner.peers.entry(addr.to_string()).or_default();
        peer.window.record(sample);
        peer.version = Some(version);
    }

    /// Forgets peers that are no longer probed (removed members).
    pub fn retain(&self, addrs: &BTreeSet<String>) {
        self.lock().peers.retain(|addr, _| addrs.contains(addr));
    }

    /// Judges this node's clock now, against the other voters at
    /// `other_voters` (peer addresses) and, if `self_votes`, itself; the
    /// verdict becomes the health every gate reads. Returns it.
    pub fn assess(&self, other_voters: &[String], self_votes: bool) -> ClockHealth {
        let now = Instant::now();
        let max_offset_ms = self.max_offset.as_millis() as u64;
        let mut inner = self.lock();
        for peer in inner.peers.values_mut() {
            peer.window.expire(now);
        }
        let estimates: Vec<Option<Estimate>> = other_voters
            .iter()
            .map(|addr| inner.peers.get(addr).and_then(|p| p.window.estimate(now)))
            .collect();
        let verdict = assess(&estimates, self_votes, max_offset_ms);
        let health = ClockHealth {
            healthy: verdict.healthy,
            offset_from_majority_ms: verdict.offset_from_majority_ms,
            agreeing: verdict.agreeing,
            quorum: verdict.quorum,
            max_offset_ms,
            reason: verdict.reason,
        };
        inner.health = health.clone();
        self.healthy.store(health.healthy, Ordering::Release);
        health
    }

    /// The latest verdict.
    pub fn health(&self) -> ClockHealth {
        self.lock().health.clone()
    }

    /// Whether the latest verdict trusts this node's clock. Cheap: it is
    /// on every request's path.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// What is known of the peer at `addr`.
    pub fn peer(&self, addr: &str) -> Option<PeerClock> {
        let now = Instant::now();
        self.lock()
            .peers
            .get(addr)
            .map(|p| peer_clock(addr, p, now))
    }

    /// Every probed peer, by address.
    pub fn peers(&self) -> Vec<PeerClock> {
        let now = Instant::now();
        self.lock()
            .peers
            .iter()
            .map(|(addr, p)| peer_clock(addr, p, now))
            .collect()
    }
}

fn peer_clock(addr: &str, p: &PeerRecord, now: Instant) -> PeerClock {
    let estimate = p.window.estimate(now);
    PeerClock {
        addr: addr.to_string(),
        offset_ms: estimate.map(|e| e.offset_ms),
        uncertainty_ms: estimate.map(|e| e.uncertainty_ms),
        last_contact_ms: p
            .window
            .last_contact()
            .map(|t| now.saturating_duration_since(t).as_millis() as u64),
        version: p.version.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(offset_ms: i64) -> Sample {
        Sample {
            offset_ms,
            rtt: Duration::from_millis(2),
            at: Instant::now(),
        }
    }

    #[test]
    fn untrusted_until_assessed_then_follows_the_majority() {
        let m = ClockMonitor::new(Duration::from_millis(500));
        assert!(!m.is_healthy());
        let voters = vec!["b:1".to_string(), "c:1".to_string()];
        assert!(!m.assess(&voters, true).healthy);
        m.record("b:1", sample(-30_000), "0.1.0".into());
        m.record("c:1", sample(-30_002), "0.1.0".into());
        let h = m.assess(&voters, true);
        assert!(!h.healthy && !m.is_healthy(), "{h:?}");
        assert_eq!(h.offset_from_majority_ms, Some(30_000));
        // The clock is corrected: the next samples agree.
        m.record(
            "b:1",
            Sample {
                rtt: Duration::from_millis(1),
                ..sample(3)
            },
            "0.1.0".into(),
        );
        assert!(m.assess(&voters, true).healthy);
        assert!(m.is_healthy());
        let b = m.peer("b:1").unwrap();
        assert_eq!(b.offset_ms, Some(3));
        assert_eq!(b.version.as_deref(), Some("0.1.0"));
        m.retain(&BTreeSet::from(["c:1".to_string()]));
        assert!(m.peer("b:1").is_none());
        assert_eq!(m.peers().len(), 1);
    }

    #[test]
    fn a_single_voter_is_healthy() {
        let m = ClockMonitor::new(Duration::from_millis(500));
        assert!(m.assess(&[], true).healthy);
        assert_eq!(m.health().offset_from_majority_ms, Some(0));
    }
}

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
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::clock::{Millis, now_ms};

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
///
/// A verdict is only as good as the clock it judged: if this node's wall
/// clock steps by more than a quarter of the bound after a verdict (seen
/// against the monotonic clock), the clock is not trusted from that
/// instant until a new verdict, so not one command is stamped nor one read
/// served with a stepped clock in between probe rounds.
#[derive(Debug, Clone)]
pub struct ClockMonitor {
    max_offset: Duration,
    inner: Arc<Mutex<Inner>>,
    healthy: Arc<AtomicBool>,
    /// Wall clock minus monotonic clock (ms) at the latest verdict.
    anchor_ms: Arc<AtomicI64>,
    /// The monotonic origin `anchor_ms` is measured from.
    origin: Instant,
}

/// How far this node's wall clock moved against its monotonic clock since
/// `anchor_ms` was taken at `origin`, in ms.
fn stepped_since(anchor_ms: i64, origin: Instant, now: Instant, now_wall: Millis) -> i64 {
    clock_anchor(origin, now, now_wall) - anchor_ms
}

fn clock_anchor(origin: Instant, now: Instant, now_wall: Millis) -> i64 {
    now_wall as i64 - now.saturating_duration_since(origin).as_millis() as i64
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
            anchor_ms: Arc::new(AtomicI64::new(0)),
            origin: Instant::now(),
        }
    }

    /// How far the wall clock may step after a verdict before the verdict
    /// stops counting.
    fn step_tolerance_ms(&self) -> i64 {
        (self.max_offset.as_millis() / 4) as i64
    }

    /// How far this node's wall clock stepped since the latest verdict, if
    /// beyond the tolerance.
    fn step_since_verdict(&self) -> Option<i64> {
        let step = stepped_since(
            self.anchor_ms.load(Ordering::Acquire),
            self.origin,
            Instant::now(),
            now_ms(),
        );
        (step.abs() > self.step_tolerance_ms()).then_some(step)
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
        let now_wall = now_ms();
        let max_offset_ms = self.max_offset.as_millis() as u64;
        let mut inner = self.lock();
        for peer in inner.peers.values_mut() {
            peer.window.expire(now);
        }
        let estimates: Vec<Option<Estimate>> = other_voters
            .iter()
            .map(|addr| {
                inner
                    .peers
                    .get(addr)
                    .and_then(|p| p.window.estimate(now, now_wall))
            })
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
        self.anchor_ms
            .store(clock_anchor(self.origin, now, now_wall), Ordering::Release);
        self.healthy.store(health.healthy, Ordering::Release);
        health
    }

    /// The latest verdict, overruled if the wall clock stepped since.
    pub fn health(&self) -> ClockHealth {
        let mut health = self.lock().health.clone();
        if health.healthy
            && let Some(step) = self.step_since_verdict()
        {
            health.healthy = false;
            health.reason = format!(
                "this node's wall clock stepped {step:+} ms since its offset was last \
                 measured; untrusted until measured again"
            );
        }
        health
    }

    /// Whether the latest verdict trusts this node's clock and the clock
    /// has not stepped since. Cheap: it is on every request's path.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire) && self.step_since_verdict().is_none()
    }

    /// This node's wall clock, if it is trusted: the verdict holds and the
    /// clock has not stepped since, judged on this very reading. A check
    /// followed by a separate reading could let a step that lands between
    /// them through, and one stamp from a jumped clock would carry
    /// replicated time forward (stamps never go backwards).
    pub fn trusted_now(&self) -> Option<Millis> {
        let now_wall = now_ms();
        let step = stepped_since(
            self.anchor_ms.load(Ordering::Acquire),
            self.origin,
            Instant::now(),
            now_wall,
        );
        (self.healthy.load(Ordering::Acquire) && step.abs() <= self.step_tolerance_ms())
            .then_some(now_wall)
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
    let estimate = p.window.estimate(now, now_ms());
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
            wall_at_ms: now_ms(),
        }
    }

    #[test]
    fn a_wall_clock_step_after_a_verdict_revokes_trust_at_once() {
        let origin = Instant::now();
        let now = origin + Duration::from_secs(10);
        let anchor = clock_anchor(origin, now, 1_000_000);
        // One second later on both clocks: no step.
        let later = now + Duration::from_secs(1);
        assert_eq!(stepped_since(anchor, origin, later, 1_001_000), 0);
        // The wall clock jumped 30 s ahead, or 2 min back.
        assert_eq!(stepped_since(anchor, origin, later, 1_031_000), 30_000);
        assert_eq!(stepped_since(anchor, origin, later, 881_000), -120_000);
        // Through the monitor: healthy now, and still healthy with no step.
        let m = ClockMonitor::new(Duration::from_millis(500));
        assert!(m.assess(&[], true).healthy);
        assert!(m.is_healthy() && m.health().healthy);
        let read = m.trusted_now().expect("a trusted reading");
        assert!(read.abs_diff(now_ms()) < 1_000);
        // Pretend the verdict was taken with the wall clock 10 s behind
        // where it is now: that is a 10 s step since the verdict.
        m.anchor_ms.fetch_sub(10_000, Ordering::AcqRel);
        assert!(!m.is_healthy());
        assert_eq!(m.trusted_now(), None, "a stepped clock gives no reading");
        let h = m.health();
        assert!(!h.healthy && h.reason.contains("stepped"), "{h:?}");
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
        // Samples carry wall and monotonic readings taken a moment apart:
        // a millisecond either way is rounding, not offset.
        let off = h.offset_from_majority_ms.expect("an offset");
        assert!((29_998..=30_002).contains(&off), "{off}");
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
        let b_off = b.offset_ms.expect("an offset for b");
        assert!((2..=4).contains(&b_off), "{b_off}");
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

//! The pure part of clock-offset measurement: the sample a probe yields,
//! the window of recent samples kept per peer, the estimate drawn from it,
//! and the majority rule that decides whether this node's clock may be
//! trusted.
//!
//! Nothing here reads a clock: every function takes the instant it judges
//! at, so the rules are tested exactly. A sample is *fresh* for
//! [`SAMPLE_TTL`]; a peer's estimate is its fresh sample with the shortest
//! round trip (the one whose midpoint assumption can be off the least).
//! A node is clock-healthy iff the peers whose fresh estimate is within
//! the max offset form, with this node if it votes, a majority of the
//! voters (CockroachDB's rule: a node far from most of the cluster is the
//! one that is wrong).
//!
//! A sample also remembers this node's wall clock when it was taken, so a
//! step of *this* node's wall clock since then (an NTP step, an operator's
//! `date -s`) shows in every estimate at once: the sample is carried
//! forward on the monotonic clock and compared with the wall clock now.
//! Without that, samples taken before a step would vouch for the stepped
//! clock until they aged out.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::clock::Millis;

/// Samples kept per peer.
pub const WINDOW: usize = 5;
/// How long a sample counts: a peer not heard from for this long gives no
/// evidence either way.
pub const SAMPLE_TTL: Duration = Duration::from_secs(3);

/// One round trip to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// The peer's wall clock minus this node's, at the same instant, in ms
    /// (positive: the peer is ahead).
    pub offset_ms: i64,
    /// Round trip, measured on the monotonic clock.
    pub rtt: Duration,
    /// When the answer arrived (monotonic).
    pub at: Instant,
    /// This node's wall clock when the answer arrived.
    pub wall_at_ms: Millis,
}

impl Sample {
    /// The sample of one probe: sent at local wall time `sent_wall_ms`,
    /// answered with the peer's wall time `remote_ms`, after `rtt`. The
    /// peer read its clock, as far as can be known, halfway through.
    pub fn from_probe(sent_wall_ms: Millis, remote_ms: Millis, rtt: Duration, at: Instant) -> Self {
        let midpoint = i128::from(sent_wall_ms) + (rtt.as_millis() / 2) as i128;
        let offset = i128::from(remote_ms) - midpoint;
        Sample {
            offset_ms: offset.clamp(i64::MIN.into(), i64::MAX.into()) as i64,
            rtt,
            at,
            wall_at_ms: sent_wall_ms.saturating_add(rtt.as_millis() as Millis),
        }
    }

    /// The offset this sample implies at monotonic `now`, when this node's
    /// wall clock reads `now_wall_ms`: the sample's offset less however far
    /// this node's wall clock stepped since (the peer's clock is taken to
    /// advance like our monotonic one over a sample's short life).
    pub fn offset_at(&self, now: Instant, now_wall_ms: Millis) -> i64 {
        let expected = i128::from(self.wall_at_ms)
            + now.saturating_duration_since(self.at).as_millis() as i128;
        let stepped = i128::from(now_wall_ms) - expected;
        (i128::from(self.offset_ms) - stepped).clamp(i64::MIN.into(), i64::MAX.into()) as i64
    }
}

/// What is known of one peer's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Best estimate of the peer's clock minus ours, in ms.
    pub offset_ms: i64,
    /// Half the round trip of the sample it comes from: how far the true
    /// offset may be from it.
    pub uncertainty_ms: u64,
    /// Fresh samples behind it.
    pub samples: usize,
}

/// The recent samples of one peer, newest last.
#[derive(Debug, Clone, Default)]
pub struct PeerWindow {
    samples: VecDeque<Sample>,
    /// When the newest sample arrived, kept after the samples themselves
    /// expire: a peer that stopped answering shows how long ago it last
    /// did, not "never".
    last_contact: Option<Instant>,
}

impl PeerWindow {
    /// Adds a sample, dropping the oldest beyond [`WINDOW`].
    pub fn record(&mut self, sample: Sample) {
        self.last_contact = Some(self.last_contact.map_or(sample.at, |t| t.max(sample.at)));
        self.samples.push_back(sample);
        while self.samples.len() > WINDOW {
            self.samples.pop_front();
        }
    }

    /// Drops samples that are no longer fresh at `now`.
    pub fn expire(&mut self, now: Instant) {
        self.samples.retain(|s| is_fresh(s, now));
    }

    /// When the newest sample arrived (also once it expired).
    pub fn last_contact(&self) -> Option<Instant> {
        self.last_contact
    }

    /// The estimate from the fresh samples at monotonic `now`, when this
    /// node's wall clock reads `now_wall_ms`, if any.
    pub fn estimate(&self, now: Instant, now_wall_ms: Millis) -> Option<Estimate> {
        let fresh = self.samples.iter().filter(|s| is_fresh(s, now));
        let samples = fresh.clone().count();
        let best = fresh.min_by_key(|s| s.rtt)?;
        Some(Estimate {
            offset_ms: best.offset_at(now, now_wall_ms),
            uncertainty_ms: (best.rtt.as_millis() / 2) as u64,
            samples,
        })
    }
}

fn is_fresh(sample: &Sample, now: Instant) -> bool {
    now.saturating_duration_since(sample.at) <= SAMPLE_TTL
}

/// Whether an estimate is within `max_offset_ms`, as far as can be told:
/// an offset beyond the bound by less than its uncertainty is given the
/// benefit of the doubt (a slow answer from a busy peer is not proof of a
/// wrong clock).
pub fn within(estimate: &Estimate, max_offset_ms: u64) -> bool {
    estimate
        .offset_ms
        .unsigned_abs()
        .saturating_sub(estimate.uncertainty_ms)
        <= max_offset_ms
}

/// The verdict of the majority rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether this node's clock may be trusted.
    pub healthy: bool,
    /// Voters (this node included if it votes) whose clock agrees with
    /// this node's within the bound.
    pub agreeing: usize,
    /// How many make a majority of the voters.
    pub quorum: usize,
    /// This node's clock minus the cluster's: the median of the negated
    /// fresh peer offsets and, if this node votes, its own zero. `None`
    /// without a fresh sample (unless this node is the only voter).
    pub offset_from_majority_ms: Option<i64>,
    /// Why, in a sentence.
    pub reason: String,
}

/// Applies the majority rule. `others` holds, for each *other* voter, its
/// fresh estimate if any; `self_votes` whether this node is a voter.
pub fn assess(others: &[Option<Estimate>], self_votes: bool, max_offset_ms: u64) -> Verdict {
    let voters = others.len() + usize::from(self_votes);
    let quorum = voters / 2 + 1;
    let fresh: Vec<&Estimate> = others.iter().flatten().collect();
    let agreeing =
        fresh.iter().filter(|e| within(e, max_offset_ms)).count() + usize::from(self_votes);
    let mut ours: Vec<i64> = fresh.iter().map(|e| e.offset_ms.saturating_neg()).collect();
    if self_votes {
        ours.push(0);
    }
    let offset_from_majority_ms = if !fresh.is_empty() {
        Some(median(&mut ours))
    } else if voters == 1 && self_votes {
        Some(0)
    } else {
        None
    };
    if voters == 0 {
        return Verdict {
            healthy: true,
            agreeing,
            quorum: 0,
            offset_from_majority_ms,
            reason: "no voters known yet: nothing to compare with".into(),
        };
    }
    let healthy = agreeing >= quorum;
    let reason = if voters == 1 && self_votes {
        "the only voter: its clock is the cluster's".to_string()
    } else if healthy {
        format!(
            "{agreeing} of {voters} voters agree within {max_offset_ms} ms (a majority is {quorum})"
        )
    } else {
        let silent = others.iter().filter(|e| e.is_none()).count();
        let far = fresh.len() - fresh.iter().filter(|e| within(e, max_offset_ms)).count();
        let mut why = format!(
            "only {agreeing} of {voters} voters agree within {max_offset_ms} ms (a majority is {quorum})"
        );
        if far > 0 {
            why.push_str(&format!("; {far} beyond the bound"));
        }
        if silent > 0 {
            why.push_str(&format!("; {silent} without a fresh sample"));
        }
        if let Some(off) = offset_from_majority_ms {
            why.push_str(&format!("; this clock is {off:+} ms off the majority"));
        }
        why
    };
    Verdict {
        healthy,
        agreeing,
        quorum,
        offset_from_majority_ms,
        reason,
    }
}

/// The median (the mean of the two middle values for an even count);
/// 0 for none.
fn median(values: &mut [i64]) -> i64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        let (a, b) = (i128::from(values[n / 2 - 1]), i128::from(values[n / 2]));
        ((a + b) / 2) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 500;
    /// This node's wall clock at the tests' `t0`.
    const W0: Millis = 1_800_000_000_000;

    #[test]
    fn a_step_of_this_nodes_wall_clock_shows_in_old_samples_at_once() {
        let t0 = Instant::now();
        let mut w = PeerWindow::default();
        // Clocks agree at t0.
        w.record(Sample::from_probe(W0, W0 + 1, Duration::from_millis(2), t0));
        let t1 = t0 + Duration::from_millis(400);
        assert_eq!(w.estimate(t1, W0 + 402).unwrap().offset_ms, 0);
        // Our wall clock jumps 30 s ahead: the same sample now says the
        // peer is 30 s behind us, though no new probe was made.
        assert_eq!(
            w.estimate(t1, W0 + 402 + 30_000).unwrap().offset_ms,
            -30_000
        );
        // And 2 min back.
        assert_eq!(
            w.estimate(t1, W0 + 402 - 120_000).unwrap().offset_ms,
            120_000
        );
    }

    fn est(offset_ms: i64) -> Option<Estimate> {
        est_u(offset_ms, 0)
    }

    fn est_u(offset_ms: i64, uncertainty_ms: u64) -> Option<Estimate> {
        Some(Estimate {
            offset_ms,
            uncertainty_ms,
            samples: 1,
        })
    }

    #[test]
    fn a_probe_is_corrected_by_half_its_round_trip() {
        let t = Instant::now();
        // Sent at 1000 (ours), 40 ms round trip, the peer said 1520: at our
        // 1020 the peer read 1520, so it is 500 ms ahead.
        let s = Sample::from_probe(1_000, 1_520, Duration::from_millis(40), t);
        assert_eq!(s.offset_ms, 500);
        // A peer behind us.
        let s = Sample::from_probe(31_000, 1_010, Duration::from_millis(20), t);
        assert_eq!(s.offset_ms, -30_000);
        // Same clocks, any round trip: zero.
        let s = Sample::from_probe(5_000, 5_150, Duration::from_millis(300), t);
        assert_eq!(s.offset_ms, 0);
    }

    #[test]
    fn the_window_keeps_the_newest_and_picks_the_shortest_round_trip() {
        let t0 = Instant::now();
        let mut w = PeerWindow::default();
        assert_eq!(w.estimate(t0, W0), None);
        for (i, (off, rtt)) in [(90, 80), (10, 4), (50, 40), (20, 10), (30, 20), (40, 30)]
            .into_iter()
            .enumerate()
        {
            w.record(Sample {
                offset_ms: off,
                rtt: Duration::from_millis(rtt),
                at: t0 + Duration::from_millis(100 * i as u64),
                wall_at_ms: W0 + 100 * i as u64,
            });
        }
        // Six recorded, five kept: the (90, 80) one fell out; the best of
        // the rest has the 4 ms round trip.
        let e = w
            .estimate(t0 + Duration::from_millis(600), W0 + 600)
            .unwrap();
        assert_eq!(e.samples, WINDOW);
        assert_eq!(e.offset_ms, 10);
        assert_eq!(e.uncertainty_ms, 2);
        assert_eq!(w.last_contact(), Some(t0 + Duration::from_millis(500)));
    }

    #[test]
    fn samples_expire() {
        let t0 = Instant::now();
        let mut w = PeerWindow::default();
        w.record(Sample {
            offset_ms: 5,
            rtt: Duration::from_millis(1),
            at: t0,
            wall_at_ms: W0,
        });
        w.record(Sample {
            offset_ms: 7,
            rtt: Duration::from_millis(3),
            at: t0 + Duration::from_secs(2),
            wall_at_ms: W0 + 2_000,
        });
        let wall = |t: Instant| W0 + t.duration_since(t0).as_millis() as u64;
        let e = w.estimate(t0 + SAMPLE_TTL, wall(t0 + SAMPLE_TTL)).unwrap();
        assert_eq!((e.offset_ms, e.samples), (5, 2));
        // The first one is stale now: the estimate moves to the second.
        let later = t0 + SAMPLE_TTL + Duration::from_millis(1);
        assert_eq!(w.estimate(later, wall(later)).unwrap().offset_ms, 7);
        w.expire(later);
        assert_eq!(w.estimate(later, wall(later)).unwrap().samples, 1);
        let gone = t0 + Duration::from_secs(2) + SAMPLE_TTL + Duration::from_millis(1);
        assert_eq!(w.estimate(gone, wall(gone)), None);
        w.expire(gone);
        // The last contact outlives the samples: a silent peer shows how
        // long ago it answered, not "never".
        assert_eq!(w.last_contact(), Some(t0 + Duration::from_secs(2)));
    }

    #[test]
    fn majority_rule_table() {
        // (case, other voters' estimates, self votes, healthy, agreeing,
        // offset from majority)
        type Row = (
            &'static str,
            Vec<Option<Estimate>>,
            bool,
            bool,
            usize,
            Option<i64>,
        );
        let rows: Vec<Row> = vec![
            ("single voter", vec![], true, true, 1, Some(0)),
            (
                "three in agreement",
                vec![est(3), est(-2)],
                true,
                true,
                3,
                Some(0),
            ),
            (
                "one peer far, one near",
                vec![est(30_000), est(10)],
                true,
                true,
                2,
                Some(-10),
            ),
            (
                "this node 30 s fast",
                vec![est(-30_000), est(-30_010)],
                true,
                false,
                1,
                Some(30_000),
            ),
            (
                "this node 30 s slow",
                vec![est(30_000), est(29_990)],
                true,
                false,
                1,
                Some(-29_990),
            ),
            ("no samples yet", vec![None, None], true, false, 1, None),
            (
                "one fresh near, one silent",
                vec![est(100), None],
                true,
                true,
                2,
                Some(-50),
            ),
            (
                "exactly at the bound",
                vec![est(500), est(-500)],
                true,
                true,
                3,
                Some(0),
            ),
            (
                "just beyond the bound",
                vec![est(501), est(-501)],
                true,
                false,
                1,
                Some(0),
            ),
            (
                "beyond by less than the uncertainty",
                vec![est_u(520, 30), est_u(-530, 40)],
                true,
                true,
                3,
                Some(0),
            ),
            (
                "beyond by more than the uncertainty",
                vec![est_u(540, 30), est_u(-560, 40)],
                true,
                false,
                1,
                Some(0),
            ),
            (
                "two voters, peer near",
                vec![est(20)],
                true,
                true,
                2,
                Some(-10),
            ),
            (
                "two voters, peer far",
                vec![est(20_000)],
                true,
                false,
                1,
                Some(-10_000),
            ),
            (
                "learner, majority near",
                vec![est(1), est(2), est(90_000)],
                false,
                true,
                2,
                Some(-2),
            ),
            (
                "learner, majority far",
                vec![est(1), est(9_000), est(9_000)],
                false,
                false,
                1,
                Some(-9_000),
            ),
            (
                "five voters, two near",
                vec![est(0), est(0), est(-9_000), est(-9_000)],
                true,
                true,
                3,
                Some(0),
            ),
            (
                "five voters, one near",
                vec![est(0), None, est(-9_000), est(-9_000)],
                true,
                false,
                2,
                Some(4_500),
            ),
            ("nothing known", vec![], false, true, 0, None),
        ];
        for (case, others, self_votes, healthy, agreeing, off) in rows {
            let v = assess(&others, self_votes, MAX);
            assert_eq!(v.healthy, healthy, "{case}: {}", v.reason);
            assert_eq!(v.agreeing, agreeing, "{case}");
            assert_eq!(v.offset_from_majority_ms, off, "{case}");
            assert!(!v.reason.is_empty(), "{case}");
        }
    }

    #[test]
    fn an_unhealthy_verdict_says_why() {
        let v = assess(&[est(-30_000), None], true, MAX);
        assert!(!v.healthy);
        assert!(v.reason.contains("1 beyond the bound"), "{}", v.reason);
        assert!(
            v.reason.contains("1 without a fresh sample"),
            "{}",
            v.reason
        );
        assert!(v.reason.contains("+15000 ms off"), "{}", v.reason);
    }
}

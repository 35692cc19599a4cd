//! The lease timing checker: no lease is seen expired before its
//! acknowledged deadline minus the clock bound, and none is seen active
//! after its deadline plus the bound.
//!
//! Observations (any read, any node, plus renewals):
//! - a read answering `expired`, or a renewal answering 404, completed at
//!   harness time `t`: early if `t < D - bound`, where `D` is the latest
//!   deadline acknowledged (grant or renewal) before the observation was
//!   invoked. A `local` read may be stale (it answers what its node has
//!   applied), so it is held to the deadline it shows itself instead of
//!   the acknowledged one. A 404 from a linearizable or leader lookup also
//!   counts, unless a revocation of the lease was invoked before the
//!   lookup completed.
//! - a read answering `active` or `suspended` with deadline `E`, invoked at
//!   harness time `t`: late if `t > E + bound`.
//!
//! The harness's wall clock is never faulted; nodes under a clock fault
//! are exactly what the bound is about.

use std::collections::BTreeMap;

use super::super::history::{Call, Op, Outcome};

/// A timing violation.
#[derive(Debug, Clone)]
pub struct TimingViolation {
    /// History index of the observation.
    pub op: usize,
    /// Lease id.
    pub lease: String,
    /// What was wrong.
    pub what: String,
}

/// What the checker found.
#[derive(Debug, Default, Clone)]
pub struct TimingReport {
    /// Violations (must be empty).
    pub violations: Vec<TimingViolation>,
    /// The earliest expiry observed relative to its acknowledged deadline
    /// (ms; negative = before the deadline), if any expiry was observed.
    pub earliest_expiry_ms: Option<i64>,
    /// The latest `active` observation relative to its deadline (ms).
    pub latest_active_ms: Option<i64>,
    /// Expiry observations checked.
    pub expiry_observations: usize,
}

/// Checks `ops` with `bound_ms` (the cluster's `--max-clock-offset`).
pub fn check(ops: &[Op], bound_ms: i64) -> TimingReport {
    // Per lease: (completion ns, deadline) of every acknowledged deadline,
    // and invocation ns of every revocation.
    let mut acked: BTreeMap<&str, Vec<(u64, i64)>> = BTreeMap::new();
    let mut revokes: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for op in ops {
        match (&op.call, &op.outcome) {
            (Call::Grant { .. }, Outcome::Ok(Some(s))) => {
                acked
                    .entry(&s.id)
                    .or_default()
                    .push((op.complete_ns, s.expires_at_ms));
            }
            (Call::Renew { lease }, Outcome::Ok(Some(s))) => {
                acked
                    .entry(lease)
                    .or_default()
                    .push((op.complete_ns, s.expires_at_ms));
            }
            (Call::Revoke { lease }, _) => revokes.entry(lease).or_default().push(op.invoke_ns),
            _ => {}
        }
    }
    let deadline_before = |lease: &str, ns: u64| -> Option<i64> {
        acked
            .get(lease)?
            .iter()
            .filter(|(done, _)| *done < ns)
            .map(|(_, d)| *d)
            .max()
    };
    let revoked_by = |lease: &str, ns: u64| {
        revokes
            .get(lease)
            .is_some_and(|v| v.iter().any(|&at| at < ns))
    };
    let mut report = TimingReport::default();
    let note_expiry = |report: &mut TimingReport, op: &Op, lease: &str, d: i64, what: &str| {
        report.expiry_observations += 1;
        let rel = op.complete_wall_ms - d;
        report.earliest_expiry_ms = Some(report.earliest_expiry_ms.map_or(rel, |e| e.min(rel)));
        if op.complete_wall_ms < d - bound_ms {
            report.violations.push(TimingViolation {
                op: op.index,
                lease: lease.to_string(),
                what: format!(
                    "{what} {} ms before its deadline (bound {bound_ms} ms)",
                    d - op.complete_wall_ms
                ),
            });
        }
    };
    for op in ops {
        if op.complete_ns == u64::MAX {
            continue;
        }
        match (&op.call, &op.outcome) {
            (Call::Lookup { lease, consistency }, Outcome::Ok(Some(s))) => {
                let stale_ok = consistency == "local";
                if s.state == "expired" {
                    let d = if stale_ok {
                        Some(s.expires_at_ms)
                    } else {
                        deadline_before(lease, op.invoke_ns).map(|d| d.max(s.expires_at_ms))
                    };
                    if let Some(d) = d {
                        note_expiry(
                            &mut report,
                            op,
                            lease,
                            d,
                            &format!("{consistency} read saw it expired"),
                        );
                    }
                } else {
                    let rel = op.invoke_wall_ms - s.expires_at_ms;
                    report.latest_active_ms =
                        Some(report.latest_active_ms.map_or(rel, |l| l.max(rel)));
                    if rel > bound_ms {
                        report.violations.push(TimingViolation {
                            op: op.index,
                            lease: lease.clone(),
                            what: format!(
                                "{consistency} read saw it {} {rel} ms after its deadline (bound {bound_ms} ms)",
                                s.state
                            ),
                        });
                    }
                }
            }
            (Call::Lookup { lease, consistency }, Outcome::Fail { status: 404, .. })
                if consistency != "local" && !revoked_by(lease, op.complete_ns) =>
            {
                if let Some(d) = deadline_before(lease, op.invoke_ns) {
                    note_expiry(
                        &mut report,
                        op,
                        lease,
                        d,
                        &format!("{consistency} read found it gone"),
                    );
                }
            }
            (Call::Renew { lease }, Outcome::Fail { status: 404, .. })
                if !revoked_by(lease, op.complete_ns) =>
            {
                if let Some(d) = deadline_before(lease, op.invoke_ns) {
                    note_expiry(&mut report, op, lease, d, "renewal found it expired");
                }
            }
            _ => {}
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::super::super::history::{Op, Seen};
    use super::*;

    fn op(index: usize, call: Call, outcome: Outcome, invoke_ms: i64, complete_ms: i64) -> Op {
        Op {
            index,
            process: 0,
            node: 1,
            call,
            invoke_ns: invoke_ms as u64 * 1_000_000,
            complete_ns: complete_ms as u64 * 1_000_000,
            invoke_wall_ms: invoke_ms,
            complete_wall_ms: complete_ms,
            outcome,
            attempts: 1,
        }
    }
    fn granted(d: i64) -> Op {
        op(
            0,
            Call::Grant {
                name: "n".into(),
                ttl_s: 1,
                account: None,
            },
            Outcome::Ok(Some(Seen {
                id: "L".into(),
                state: "active".into(),
                expires_at_ms: d,
            })),
            0,
            10,
        )
    }
    fn lookup(index: usize, consistency: &str, outcome: Outcome, at: i64) -> Op {
        op(
            index,
            Call::Lookup {
                lease: "L".into(),
                consistency: consistency.into(),
            },
            outcome,
            at,
            at + 5,
        )
    }
    fn seen(state: &str, d: i64) -> Outcome {
        Outcome::Ok(Some(Seen {
            id: "L".into(),
            state: state.into(),
            expires_at_ms: d,
        }))
    }

    #[test]
    fn expiry_at_the_deadline_passes() {
        let ops = [
            granted(10_000),
            lookup(1, "linearizable", seen("expired", 10_000), 10_000),
        ];
        let r = check(&ops, 500);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!(r.earliest_expiry_ms, Some(5));
    }

    #[test]
    fn an_expiry_seen_too_early_is_rejected() {
        let gone = Outcome::Fail {
            status: 404,
            code: "lease_not_found".into(),
        };
        let ops = [granted(10_000), lookup(1, "linearizable", gone, 8_000)];
        let r = check(&ops, 500);
        assert_eq!(r.violations.len(), 1, "{r:?}");
        // ...unless someone revoked it first.
        let revoke = op(
            2,
            Call::Revoke { lease: "L".into() },
            Outcome::Ok(None),
            7_000,
            7_500,
        );
        let gone = Outcome::Fail {
            status: 404,
            code: "lease_not_found".into(),
        };
        let ops = [
            granted(10_000),
            revoke,
            lookup(1, "linearizable", gone, 8_000),
        ];
        assert!(check(&ops, 500).violations.is_empty());
    }

    #[test]
    fn a_stale_local_read_is_held_to_the_deadline_it_shows() {
        let renewed = op(
            1,
            Call::Renew { lease: "L".into() },
            seen("active", 20_000),
            5_000,
            5_010,
        );
        // A lagging node shows the old deadline, expired: allowed for local.
        let ops = [
            granted(10_000),
            renewed.clone(),
            lookup(2, "local", seen("expired", 10_000), 11_000),
        ];
        assert!(check(&ops, 500).violations.is_empty());
        // ...but not for a linearizable read.
        let ops = [
            granted(10_000),
            renewed,
            lookup(2, "linearizable", seen("expired", 10_000), 11_000),
        ];
        assert_eq!(check(&ops, 500).violations.len(), 1);
        // And a local read calling it expired before its own deadline is early.
        let ops = [
            granted(10_000),
            lookup(2, "local", seen("expired", 10_000), 9_000),
        ];
        assert_eq!(check(&ops, 500).violations.len(), 1);
    }

    #[test]
    fn an_active_lease_past_its_deadline_is_rejected() {
        let ops = [
            granted(10_000),
            lookup(1, "local", seen("active", 10_000), 10_400),
        ];
        assert!(check(&ops, 500).violations.is_empty());
        let ops = [
            granted(10_000),
            lookup(1, "local", seen("active", 10_000), 11_000),
        ];
        assert_eq!(check(&ops, 500).violations.len(), 1);
    }
}

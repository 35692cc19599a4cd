//! The per-lease sequential model the linearizability checker uses, and
//! the extraction of each lease's operations from a history.
//!
//! A lease is `Absent` until its grant, `Live` while the state machine
//! holds it, and `Gone` once revoked or expired. `Live` carries the
//! deadline (exact, or only a lower bound after a renewal whose answer was
//! lost) and whether its deadline has passed in cluster time (`dead`: a
//! renewal can never succeed again). Expiry is not a client operation: the
//! model lets a live lease become gone (or dead) at any step where an
//! answer shows it, and the timing checker bounds *when* that may happen.
//! Only linearizable lookups take part; `leader` and `local` reads are
//! allowed to be stale and are checked by the timing checker alone.

use std::collections::BTreeMap;

use super::super::history::{Call, Op, Outcome, Seen};
use super::linear::{Model, Timed};

/// One possible state of a lease.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LeaseState {
    /// Not granted yet.
    Absent,
    /// Held by the state machine.
    Live {
        /// Deadline (ms), or its lower bound when `exact` is false.
        deadline: i64,
        /// Whether `deadline` is known exactly.
        exact: bool,
        /// Whether cluster time has passed the deadline.
        dead: bool,
    },
    /// Revoked or expired (removed).
    Gone,
}

/// One operation on a lease with what it observed.
#[derive(Debug, Clone)]
pub enum LeaseOp {
    /// An acknowledged grant with the deadline it returned.
    Granted(i64),
    /// A renewal.
    Renew(Outcome),
    /// A revocation.
    Revoke(Outcome),
    /// A linearizable lookup.
    Lookup(Outcome),
}

/// The model.
pub struct LeaseModel;

fn seen_matches(deadline: i64, exact: bool, seen: &Seen) -> Option<i64> {
    // An exact deadline must be read back as it is; a lower bound (after a
    // lost renewal) by anything at or above it.
    let fits = if exact {
        seen.expires_at_ms == deadline
    } else {
        seen.expires_at_ms >= deadline
    };
    fits.then_some(seen.expires_at_ms)
}

impl Model for LeaseModel {
    type State = LeaseState;
    type Op = LeaseOp;

    fn init(&self) -> LeaseState {
        LeaseState::Absent
    }

    fn step(&self, s: &LeaseState, op: &LeaseOp) -> Vec<LeaseState> {
        use LeaseState::*;
        let live = |deadline, exact, dead| Live {
            deadline,
            exact,
            dead,
        };
        match (s, op) {
            (Absent, LeaseOp::Granted(d)) => vec![live(*d, true, false)],
            (_, LeaseOp::Granted(_)) => vec![],
            // Nothing but a grant happens to a lease that does not exist.
            (Absent, _) => vec![],

            // Renew.
            (
                Live {
                    deadline,
                    dead: false,
                    ..
                },
                LeaseOp::Renew(Outcome::Ok(Some(seen))),
            ) => {
                // A renewal never shortens a lease.
                if seen.expires_at_ms >= *deadline {
                    vec![live(seen.expires_at_ms, true, false)]
                } else {
                    vec![]
                }
            }
            (_, LeaseOp::Renew(Outcome::Ok(_))) => vec![],
            (
                Live {
                    deadline, exact, ..
                },
                LeaseOp::Renew(Outcome::Fail { status: 404, .. }),
            ) => {
                vec![live(*deadline, *exact, true), Gone]
            }
            (Gone, LeaseOp::Renew(Outcome::Fail { status: 404, .. })) => vec![Gone],
            (Live { dead: false, .. }, LeaseOp::Renew(Outcome::Fail { status: 409, .. })) => {
                vec![s.clone()]
            }
            (_, LeaseOp::Renew(Outcome::Fail { status: 409, .. })) => vec![],
            (_, LeaseOp::Renew(Outcome::Fail { .. })) => vec![s.clone()],
            (
                Live {
                    deadline,
                    dead: false,
                    ..
                },
                LeaseOp::Renew(Outcome::Unknown(_)),
            ) => {
                vec![s.clone(), live(*deadline, false, false)]
            }
            (_, LeaseOp::Renew(Outcome::Unknown(_))) => vec![s.clone()],

            // Revoke.
            (Live { .. }, LeaseOp::Revoke(Outcome::Ok(_))) => vec![Gone],
            (Gone, LeaseOp::Revoke(Outcome::Ok(_))) => vec![],
            (_, LeaseOp::Revoke(Outcome::Fail { status: 404, .. })) => vec![Gone],
            (_, LeaseOp::Revoke(Outcome::Fail { .. })) => vec![s.clone()],
            (Live { .. }, LeaseOp::Revoke(Outcome::Unknown(_))) => vec![s.clone(), Gone],
            (_, LeaseOp::Revoke(Outcome::Unknown(_))) => vec![s.clone()],

            // Linearizable lookup.
            (
                Live {
                    deadline,
                    exact,
                    dead,
                },
                LeaseOp::Lookup(Outcome::Ok(Some(seen))),
            ) => {
                let Some(d) = seen_matches(*deadline, *exact, seen) else {
                    return vec![];
                };
                match seen.state.as_str() {
                    "expired" => vec![live(d, true, true)],
                    _ if *dead => vec![],
                    _ => vec![live(d, true, false)],
                }
            }
            (Gone, LeaseOp::Lookup(Outcome::Ok(_))) => vec![],
            (_, LeaseOp::Lookup(Outcome::Ok(None))) => vec![],
            (_, LeaseOp::Lookup(Outcome::Fail { status: 404, .. })) => vec![Gone],
            (_, LeaseOp::Lookup(_)) => vec![s.clone()],
        }
    }
}

/// Each lease's operations (by lease id) in the form the checker takes:
/// the acknowledged grant that created it, then its renewals, revocations
/// and linearizable lookups. Unknown lookups are dropped (a read that
/// returned nothing constrains nothing).
pub fn lease_histories(ops: &[Op]) -> BTreeMap<String, Vec<(usize, Timed<LeaseOp>)>> {
    let mut by_lease: BTreeMap<String, Vec<(usize, Timed<LeaseOp>)>> = BTreeMap::new();
    for op in ops {
        let timed = |lop| Timed {
            invoke: op.invoke_ns,
            complete: op.complete_ns,
            op: lop,
        };
        let (lease, lop) = match (&op.call, &op.outcome) {
            (Call::Grant { .. }, Outcome::Ok(Some(seen))) => {
                (seen.id.clone(), LeaseOp::Granted(seen.expires_at_ms))
            }
            (Call::Renew { lease }, o) => (lease.clone(), LeaseOp::Renew(o.clone())),
            (Call::Revoke { lease }, o) => (lease.clone(), LeaseOp::Revoke(o.clone())),
            (Call::Lookup { lease, consistency }, o)
                if consistency == "linearizable" && !matches!(o, Outcome::Unknown(_)) =>
            {
                (lease.clone(), LeaseOp::Lookup(o.clone()))
            }
            _ => continue,
        };
        by_lease
            .entry(lease)
            .or_default()
            .push((op.index, timed(lop)));
    }
    by_lease
}

#[cfg(test)]
mod tests {
    use super::super::linear::linearizable;
    use super::*;

    fn seen(state: &str, d: i64) -> Outcome {
        Outcome::Ok(Some(Seen {
            id: "L".into(),
            state: state.into(),
            expires_at_ms: d,
        }))
    }
    fn not_found() -> Outcome {
        Outcome::Fail {
            status: 404,
            code: "lease_not_found".into(),
        }
    }
    fn t(i: u64, c: u64, op: LeaseOp) -> Timed<LeaseOp> {
        Timed {
            invoke: i,
            complete: c,
            op,
        }
    }

    #[test]
    fn grant_renew_lookup_revoke_is_linearizable() {
        let h = [
            t(0, 1, LeaseOp::Granted(100)),
            t(2, 3, LeaseOp::Renew(seen("active", 150))),
            t(4, 5, LeaseOp::Lookup(seen("active", 150))),
            t(6, 7, LeaseOp::Revoke(Outcome::Ok(None))),
            t(8, 9, LeaseOp::Lookup(not_found())),
        ];
        assert!(linearizable(&LeaseModel, &h));
    }

    #[test]
    fn a_lookup_that_misses_a_completed_renewal_is_rejected() {
        let h = [
            t(0, 1, LeaseOp::Granted(100)),
            t(2, 3, LeaseOp::Renew(seen("active", 150))),
            t(4, 5, LeaseOp::Lookup(seen("active", 100))),
        ];
        assert!(!linearizable(&LeaseModel, &h));
    }

    #[test]
    fn a_revoked_lease_seen_again_is_rejected() {
        let h = [
            t(0, 1, LeaseOp::Granted(100)),
            t(2, 3, LeaseOp::Revoke(Outcome::Ok(None))),
            t(4, 5, LeaseOp::Lookup(seen("active", 100))),
        ];
        assert!(!linearizable(&LeaseModel, &h));
    }

    #[test]
    fn a_renewal_after_the_lease_was_seen_gone_is_rejected() {
        let h = [
            t(0, 1, LeaseOp::Granted(100)),
            t(2, 3, LeaseOp::Lookup(not_found())),
            t(4, 5, LeaseOp::Renew(seen("active", 200))),
        ];
        assert!(!linearizable(&LeaseModel, &h));
        let h = [
            t(0, 1, LeaseOp::Granted(100)),
            t(2, 3, LeaseOp::Lookup(seen("expired", 100))),
            t(4, 5, LeaseOp::Renew(seen("active", 200))),
        ];
        assert!(!linearizable(&LeaseModel, &h));
    }

    #[test]
    fn a_renewal_that_shortens_the_lease_is_rejected() {
        let h = [
            t(0, 1, LeaseOp::Granted(100)),
            t(2, 3, LeaseOp::Renew(seen("active", 90))),
        ];
        assert!(!linearizable(&LeaseModel, &h));
    }

    #[test]
    fn an_unknown_renewal_explains_a_later_deadline_or_none() {
        let lost = Outcome::Unknown("timeout".into());
        let applied = [
            t(0, 1, LeaseOp::Granted(100)),
            t(2, u64::MAX, LeaseOp::Renew(lost.clone())),
            t(4, 5, LeaseOp::Lookup(seen("active", 180))),
            t(6, 7, LeaseOp::Lookup(seen("active", 180))),
        ];
        assert!(linearizable(&LeaseModel, &applied));
        let not_applied = [
            t(0, 1, LeaseOp::Granted(100)),
            t(2, u64::MAX, LeaseOp::Renew(lost.clone())),
            t(4, 5, LeaseOp::Lookup(seen("active", 100))),
        ];
        assert!(linearizable(&LeaseModel, &not_applied));
        // Once a deadline was read, it cannot move by itself.
        let flapping = [
            t(0, 1, LeaseOp::Granted(100)),
            t(2, u64::MAX, LeaseOp::Renew(lost)),
            t(4, 5, LeaseOp::Lookup(seen("active", 180))),
            t(6, 7, LeaseOp::Lookup(seen("active", 100))),
        ];
        assert!(!linearizable(&LeaseModel, &flapping));
    }

    #[test]
    fn concurrent_revoke_and_lookup_may_order_either_way() {
        let h = [
            t(0, 1, LeaseOp::Granted(100)),
            t(2, 10, LeaseOp::Revoke(Outcome::Ok(None))),
            t(3, 4, LeaseOp::Lookup(not_found())),
            t(5, 6, LeaseOp::Lookup(not_found())),
        ];
        assert!(linearizable(&LeaseModel, &h));
        let h = [
            t(0, 1, LeaseOp::Granted(100)),
            t(2, 10, LeaseOp::Revoke(Outcome::Ok(None))),
            t(3, 4, LeaseOp::Lookup(not_found())),
            t(5, 6, LeaseOp::Lookup(seen("active", 100))),
        ];
        assert!(!linearizable(&LeaseModel, &h));
    }
}

//! A linearizability checker: the Wing–Gong search with Lowe's
//! memoization (the algorithm behind Knossos' `wgl` and porcupine), over a
//! nondeterministic model.
//!
//! Each operation has an invocation and a completion time; an operation
//! whose outcome is unknown completes at +inf (it may take effect at any
//! point after its invocation, or never: the model gives it a "did
//! nothing" successor). A history is linearizable when some total order
//! of its operations respects real time (an operation that completed
//! before another was invoked comes first) and every step is one the
//! model allows. Model states are sets of possible states (the powerset
//! construction), so a nondeterministic step is one deterministic step of
//! the set.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Debug;
use std::hash::Hash;

/// A sequential specification.
pub trait Model {
    /// One possible state.
    type State: Clone + Ord + Hash + Debug;
    /// One operation with its observed outcome.
    type Op: Debug;
    /// The state before any operation.
    fn init(&self) -> Self::State;
    /// Every state `op` (with the outcome it observed) may lead to from
    /// `state`; empty if `op` could not have been observed there.
    fn step(&self, state: &Self::State, op: &Self::Op) -> Vec<Self::State>;
}

/// An operation placed in time.
#[derive(Debug, Clone)]
pub struct Timed<O> {
    /// Invocation, monotonic ns.
    pub invoke: u64,
    /// Completion, monotonic ns (`u64::MAX`: unknown outcome).
    pub complete: u64,
    /// The operation and what it observed.
    pub op: O,
}

type States<S> = BTreeSet<S>;

fn step_all<M: Model>(model: &M, states: &States<M::State>, op: &M::Op) -> States<M::State> {
    states.iter().flat_map(|s| model.step(s, op)).collect()
}

/// Whether `history` is linearizable under `model`. Exponential in the
/// worst case; meant for per-key histories (tens to hundreds of ops).
pub fn linearizable<M: Model>(model: &M, history: &[Timed<M::Op>]) -> bool {
    let n = history.len();
    if n == 0 {
        return true;
    }
    // Events: (time, is_return, op). Calls sort before returns at equal
    // times only when they are distinct ops: ties count as concurrent.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, t) in history.iter().enumerate() {
        events.push((t.invoke, false, i));
        events.push((t.complete, true, i));
    }
    events.sort_by_key(|&(t, ret, i)| (t, ret, i));
    // A doubly linked list over event positions (0 and len+1 are sentinels).
    let len = events.len();
    let mut next: Vec<usize> = (0..len + 2).map(|i| (i + 1).min(len + 1)).collect();
    let mut prev: Vec<usize> = (0..len + 2).map(|i| i.saturating_sub(1)).collect();
    // position of each op's call and return in the list (1-based)
    let mut call_pos = vec![0; n];
    let mut ret_pos = vec![0; n];
    for (p, &(_, ret, i)) in events.iter().enumerate() {
        if ret {
            ret_pos[i] = p + 1;
        } else {
            call_pos[i] = p + 1;
        }
    }
    let lift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, p: usize| {
        let (a, b) = (prev[p], next[p]);
        next[a] = b;
        prev[b] = a;
    };
    let unlift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, p: usize| {
        let (a, b) = (prev[p], next[p]);
        next[a] = p;
        prev[b] = p;
    };
    let end = len + 1;
    let mut state: States<M::State> = BTreeSet::from([model.init()]);
    let mut linearized = vec![false; n];
    let mut cache: HashSet<(Vec<bool>, States<M::State>)> = HashSet::new();
    let mut stack: Vec<(usize, States<M::State>)> = Vec::new();
    let mut entry = next[0];
    while next[0] != end {
        if entry == end {
            // Ran past every pending call without linearizing one.
            match stack.pop() {
                None => return false,
                Some((op, old)) => {
                    state = old;
                    linearized[op] = false;
                    unlift(&mut next, &mut prev, ret_pos[op]);
                    unlift(&mut next, &mut prev, call_pos[op]);
                    entry = next[call_pos[op]];
                }
            }
            continue;
        }
        let (_, is_ret, op) = events[entry - 1];
        if !is_ret {
            let after = step_all(model, &state, &history[op].op);
            let mut applied = false;
            if !after.is_empty() {
                linearized[op] = true;
                if cache.insert((linearized.clone(), after.clone())) {
                    stack.push((op, std::mem::replace(&mut state, after)));
                    lift(&mut next, &mut prev, call_pos[op]);
                    lift(&mut next, &mut prev, ret_pos[op]);
                    entry = next[0];
                    applied = true;
                } else {
                    linearized[op] = false;
                }
            }
            if !applied {
                entry = next[entry];
            }
        } else {
            // A return whose call is still pending: something before it
            // must be undone.
            match stack.pop() {
                None => return false,
                Some((op, old)) => {
                    state = old;
                    linearized[op] = false;
                    unlift(&mut next, &mut prev, ret_pos[op]);
                    unlift(&mut next, &mut prev, call_pos[op]);
                    entry = next[call_pos[op]];
                }
            }
        }
    }
    true
}

/// A 1-minimal failing sub-history: drops operations one at a time while
/// the rest still fails (so every operation left is needed to fail).
/// Operations `pinned` says so are never dropped (a lease's grant: without
/// it any operation on the lease fails, which explains nothing).
pub fn minimize<M: Model>(
    model: &M,
    history: &[Timed<M::Op>],
    pinned: impl Fn(&M::Op) -> bool,
) -> Vec<usize>
where
    M::Op: Clone,
{
    let mut keep: Vec<usize> = (0..history.len()).collect();
    let mut i = 0;
    while i < keep.len() {
        if pinned(&history[keep[i]].op) {
            i += 1;
            continue;
        }
        let trial: Vec<usize> = keep
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, &k)| k)
            .collect();
        let sub: Vec<Timed<M::Op>> = trial.iter().map(|&k| history[k].clone()).collect();
        if linearizable(model, &sub) {
            i += 1;
        } else {
            keep = trial;
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register: write(v) / read -> v.
    struct Register;
    #[derive(Debug, Clone)]
    enum RegOp {
        Write(u8),
        Read(u8),
        /// A write whose outcome is unknown.
        MaybeWrite(u8),
    }
    impl Model for Register {
        type State = u8;
        type Op = RegOp;
        fn init(&self) -> u8 {
            0
        }
        fn step(&self, s: &u8, op: &RegOp) -> Vec<u8> {
            match op {
                RegOp::Write(v) => vec![*v],
                RegOp::Read(v) => {
                    if v == s {
                        vec![*s]
                    } else {
                        vec![]
                    }
                }
                RegOp::MaybeWrite(v) => vec![*s, *v],
            }
        }
    }
    fn t(invoke: u64, complete: u64, op: RegOp) -> Timed<RegOp> {
        Timed {
            invoke,
            complete,
            op,
        }
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let h = [t(0, 1, RegOp::Write(1)), t(2, 3, RegOp::Read(1))];
        assert!(linearizable(&Register, &h));
    }

    #[test]
    fn stale_read_after_a_completed_write_is_rejected() {
        let h = [
            t(0, 1, RegOp::Write(1)),
            t(2, 3, RegOp::Write(2)),
            t(4, 5, RegOp::Read(1)),
        ];
        assert!(!linearizable(&Register, &h));
    }

    #[test]
    fn concurrent_operations_may_order_either_way() {
        let h = [
            t(0, 10, RegOp::Write(1)),
            t(1, 2, RegOp::Read(0)),
            t(3, 4, RegOp::Read(1)),
        ];
        assert!(linearizable(&Register, &h));
        // ...but reads may not go back once the new value was seen.
        let h = [
            t(0, 10, RegOp::Write(1)),
            t(1, 2, RegOp::Read(1)),
            t(3, 4, RegOp::Read(0)),
        ];
        assert!(!linearizable(&Register, &h));
    }

    #[test]
    fn an_unknown_write_may_take_effect_late_or_never() {
        let late = [
            t(0, u64::MAX, RegOp::MaybeWrite(7)),
            t(5, 6, RegOp::Read(0)),
            t(7, 8, RegOp::Read(7)),
        ];
        assert!(linearizable(&Register, &late));
        let never = [
            t(0, u64::MAX, RegOp::MaybeWrite(7)),
            t(5, 6, RegOp::Read(0)),
        ];
        assert!(linearizable(&Register, &never));
        // It cannot take effect before it was invoked.
        let early = [
            t(0, 1, RegOp::Read(7)),
            t(2, u64::MAX, RegOp::MaybeWrite(7)),
        ];
        assert!(!linearizable(&Register, &early));
    }

    #[test]
    fn minimize_keeps_only_what_the_violation_needs() {
        let h = [
            t(0, 1, RegOp::Write(1)),
            t(2, 3, RegOp::Read(1)),
            t(4, 5, RegOp::Write(2)),
            t(6, 7, RegOp::Read(2)),
            t(8, 9, RegOp::Write(0)),
            t(10, 11, RegOp::Write(3)),
            t(12, 13, RegOp::Read(0)),
        ];
        assert!(!linearizable(&Register, &h));
        let kept = minimize(&Register, &h, |_| false);
        // Write 3 completed before read 0 began: those two alone fail.
        assert_eq!(kept, vec![5, 6]);
        // 1-minimal: the kept history fails, and dropping any op passes.
        let sub = |keep: &[usize]| keep.iter().map(|&k| h[k].clone()).collect::<Vec<_>>();
        assert!(!linearizable(&Register, &sub(&kept)));
        for i in 0..kept.len() {
            let mut fewer = kept.clone();
            fewer.remove(i);
            assert!(linearizable(&Register, &sub(&fewer)));
        }
    }
}

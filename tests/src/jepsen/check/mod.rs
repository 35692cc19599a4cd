//! The checkers of a fault run, as library code with unit tests of their
//! own: per-lease linearizability ([`linear`] + [`lease_model`]), lease
//! timing ([`timing`]), durability and idempotency ([`writes`]), agreement
//! and derived state on every node ([`derived`]); liveness is measured by
//! the nemesis after each heal and judged here.

pub mod derived;
pub mod final_state;
pub mod lease_model;
pub mod linear;
pub mod timing;
pub mod writes;

use std::fmt::Write as _;

use super::history::{Op, Recorded};
use final_state::NodeState;

/// Everything the checkers found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Leases whose history is not linearizable, each with its 1-minimal
    /// failing sub-history (rendered).
    pub not_linearizable: Vec<String>,
    /// Leases checked for linearizability.
    pub leases_checked: usize,
    /// Lease timing.
    pub timing: timing::TimingReport,
    /// Durability and idempotency.
    pub writes: writes::WritesReport,
    /// Agreement and derivation.
    pub derived: Vec<String>,
    /// Heals after which the cluster did not recover within the bound.
    pub liveness: Vec<String>,
}

impl Verdict {
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.not_linearizable.is_empty()
            && self.timing.violations.is_empty()
            && self.writes.ok()
            && self.derived.is_empty()
            && self.liveness.is_empty()
    }

    /// A readable account of every failure.
    pub fn describe(&self, ops: &[Op]) -> String {
        let mut s = String::new();
        for l in &self.not_linearizable {
            let _ = writeln!(s, "NOT LINEARIZABLE: {l}");
        }
        for v in &self.timing.violations {
            let _ = writeln!(
                s,
                "TIMING: lease {}: {}\n    {}",
                v.lease,
                v.what,
                render(&ops[v.op])
            );
        }
        for l in &self.writes.lost {
            let _ = writeln!(s, "LOST: {l}");
        }
        for d in &self.writes.duplicated {
            let _ = writeln!(s, "DUPLICATE: {d}");
        }
        for d in &self.writes.lies {
            let _ = writeln!(s, "REFUSED BUT APPLIED: {d}");
        }
        for d in &self.derived {
            let _ = writeln!(s, "DISAGREEMENT: {d}");
        }
        for d in &self.liveness {
            let _ = writeln!(s, "LIVENESS: {d}");
        }
        s
    }
}

/// One operation on one line.
pub fn render(op: &Op) -> String {
    let done = if op.complete_ns == u64::MAX {
        "   (never)".to_string()
    } else {
        format!("{:>10.3}", op.complete_ns as f64 / 1e9)
    };
    format!(
        "#{:<6} p{:<2} n{} {:>10.3}s..{done}s {:?} -> {:?}",
        op.index,
        op.process,
        op.node,
        op.invoke_ns as f64 / 1e9,
        op.call,
        op.outcome
    )
}

/// Runs every checker. `finals` holds every node's final state;
/// `liveness` the failures the nemesis recorded.
pub fn check_all(
    rec: &Recorded,
    finals: &[NodeState],
    bound_ms: i64,
    liveness: Vec<String>,
) -> Verdict {
    let mut v = Verdict {
        liveness,
        ..Verdict::default()
    };
    for (lease, ops) in lease_model::lease_histories(&rec.ops) {
        v.leases_checked += 1;
        let timed: Vec<_> = ops.iter().map(|(_, t)| t.clone()).collect();
        if !linear::linearizable(&lease_model::LeaseModel, &timed) {
            let keep = linear::minimize(&lease_model::LeaseModel, &timed, |op| {
                matches!(op, lease_model::LeaseOp::Granted(_))
            });
            let mut text = format!("lease {lease}, minimal failing sub-history:");
            for k in keep {
                let _ = write!(text, "\n    {}", render(&rec.ops[ops[k].0]));
            }
            v.not_linearizable.push(text);
        }
    }
    v.timing = timing::check(&rec.ops, bound_ms);
    if let Some(first) = finals.first() {
        v.writes = writes::check(&rec.ops, first, bound_ms);
    }
    v.derived = derived::check(finals);
    v
}

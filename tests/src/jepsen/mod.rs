//! A Jepsen-style fault suite for keel: nodes on hosts with their own
//! network ([`netns`], [`proxy`], [`hosts`]), a [`nemesis`] that injects
//! partitions, slow and lossy links, crashes and pauses, clock jumps, lost
//! or rolled-back data dirs and membership changes, a [`workload`] whose
//! every operation is recorded in a [`history`], and the checkers in
//! [`check`]. [`run`] puts them together; `tests/tests/jepsen.rs` runs the
//! short profile, `src/bin/jepsen.rs` the long one.

pub mod check;
pub mod history;
pub mod hosts;
pub mod nemesis;
pub mod netns;
pub mod proxy;
pub mod run;
pub mod workload;

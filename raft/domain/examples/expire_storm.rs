//! A benchmark of one replica's share of a deadline storm: `N` named
//! leases sharing one deadline, removed by `ExpireLeases`-sized batches in
//! the order the expiration manager lists them. It prints how long apply
//! took in all, per lease and for the slowest batch (every request waits
//! behind an apply), so a change to the lease table or its indexes can be
//! measured without a cluster. A program, not a test.
//!
//! `cargo run --release -p keel-domain --example expire_storm -- [N] [BATCH] [ROUNDS]`

use std::collections::BTreeMap;
use std::time::Instant;

use keel_domain::account::Accounts;
use keel_domain::lease::{Grant, Leases};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let mut next = |default: usize| args.next().map_or(default, |a| a.expect("a number"));
    let n = next(1_000_000);
    let batch = next(2_000);
    let rounds = next(3);
    for round in 1..=rounds {
        let filled = Instant::now();
        let (mut leases, mut accounts) = fill(n, round as u64);
        let held = leases.len();
        let filled = filled.elapsed();
        let now = 60_000;
        let started = Instant::now();
        let mut expired = 0;
        // The slowest batch: every request waits behind an apply.
        let mut slowest = std::time::Duration::ZERO;
        loop {
            let due = leases.due(now, batch);
            if due.is_empty() {
                break;
            }
            let ids: Vec<u64> = due.iter().map(|(id, _)| *id).collect();
            let applied = Instant::now();
            expired += leases.expire(now, &ids, &mut accounts);
            slowest = slowest.max(applied.elapsed());
        }
        let took = started.elapsed();
        assert_eq!(expired as usize, held, "every lease expires");
        assert!(leases.is_empty());
        println!(
            "round {round}: {held} leases in batches of {batch} expired in {:.3} s ({:.0} ns per lease, slowest batch {:.1} ms; granting them took {:.3} s)",
            took.as_secs_f64(),
            took.as_nanos() as f64 / held as f64,
            slowest.as_secs_f64() * 1e3,
            filled.as_secs_f64()
        );
    }
}

/// `n` leases named `deadline/i` with pseudo-random ids (as proposers draw
/// them), all due at 10 s.
fn fill(n: usize, seed: u64) -> (Leases, Accounts) {
    let mut leases = Leases::default();
    let mut accounts = Accounts::default();
    let mut rng = StdRng::seed_from_u64(seed);
    for i in 0..n {
        let grant = Grant {
            id: rng.random(),
            ttl_ms: 10_000,
            max_ttl_ms: 10_000,
            name: Some(format!("deadline/{i}")),
            account: None,
            metadata: BTreeMap::new(),
        };
        // A repeated id (vanishingly rare) is refused; `held` counts
        // what was granted.
        let _ = leases.grant(0, grant, &mut accounts);
    }
    (leases, accounts)
}

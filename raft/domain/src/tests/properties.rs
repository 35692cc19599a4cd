//! Property tests of the pure domain: random grant/renew/revoke/expire and
//! account sequences keep the lease invariants, and the same log gives the
//! same state, byte for byte, on every replica (also after a snapshot).

use super::*;

#[derive(Debug, Clone)]
enum RandomOp {
    Grant {
        id: u8,
        ttl_s: u8,
        extra_s: u8,
        owned: bool,
    },
    Renew {
        id: u8,
        inc_s: Option<u8>,
    },
    Revoke {
        id: u8,
    },
    Expire {
        ids: Vec<u8>,
    },
    ExtendAccount {
        by_s: u8,
    },
    ExpireAccount,
    Disable(bool),
    Tick {
        s: u8,
    },
}

fn random_op() -> impl Strategy<Value = RandomOp> {
    prop_oneof![
        4 => (any::<u8>(), 1u8..30, 0u8..60, any::<bool>())
            .prop_map(|(id, ttl_s, extra_s, owned)| RandomOp::Grant { id: id % 16, ttl_s, extra_s, owned }),
        3 => (any::<u8>(), proptest::option::of(1u8..90))
            .prop_map(|(id, inc_s)| RandomOp::Renew { id: id % 16, inc_s }),
        1 => any::<u8>().prop_map(|id| RandomOp::Revoke { id: id % 16 }),
        2 => proptest::collection::vec(any::<u8>(), 0..8)
            .prop_map(|ids| RandomOp::Expire { ids: ids.into_iter().map(|i| i % 16).collect() }),
        1 => (1u8..60).prop_map(|by_s| RandomOp::ExtendAccount { by_s }),
        1 => Just(RandomOp::ExpireAccount),
        1 => any::<bool>().prop_map(RandomOp::Disable),
        3 => (1u8..20).prop_map(|s| RandomOp::Tick { s }),
    ]
}

/// Turns random operations into a log of stamped proposals.
fn build_log(ops: &[RandomOp]) -> Vec<Proposal> {
    let mut now = T0;
    let mut log = vec![at(now, create_account("acme", Some(now + 30 * SEC), None))];
    for op in ops {
        let cmd = match op.clone() {
            RandomOp::Grant {
                id,
                ttl_s,
                extra_s,
                owned,
            } => grant(
                u64::from(id) + 1,
                u64::from(ttl_s) * SEC,
                u64::from(ttl_s + extra_s / 2 + 1) * SEC,
                owned.then_some("acme"),
            ),
            RandomOp::Renew { id, inc_s } => Command::RenewLease {
                id: u64::from(id) + 1,
                increment_ms: inc_s.map(|s| u64::from(s) * SEC),
            },
            RandomOp::Revoke { id } => Command::RevokeLease {
                id: u64::from(id) + 1,
            },
            RandomOp::Expire { ids } => Command::ExpireLeases {
                ids: ids.into_iter().map(|i| u64::from(i) + 1).collect(),
            },
            RandomOp::ExtendAccount { by_s } => Command::UpdateAccount {
                name: "acme".into(),
                expires_at: Patch::Set(now + u64::from(by_s) * SEC),
                limits: LimitsPatch::default(),
            },
            RandomOp::ExpireAccount => Command::ExpireAccount {
                name: "acme".into(),
            },
            RandomOp::Disable(disabled) => Command::SetAccountDisabled {
                name: "acme".into(),
                disabled,
            },
            RandomOp::Tick { s } => {
                now += u64::from(s) * SEC;
                continue;
            }
        };
        log.push(at(now, cmd));
    }
    log
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_logs_keep_lease_invariants(ops in proptest::collection::vec(random_op(), 1..120)) {
        let log = build_log(&ops);
        let mut s = State::default();
        for p in &log {
            let before = s.clone();
            let result = s.apply(p);
            if result.is_err() {
                prop_assert_eq!(&s, &before, "a refused command changed state: {:?}", p);
            }
            prop_assert!(s.leases.check_invariants().is_ok(), "{:?}", s.leases.check_invariants());
            for lease in s.leases.iter() {
                // Never active past the deadline, at any time of reading.
                for t in [p.now, lease.expires_at, lease.expires_at + 1, lease.hard_expires_at] {
                    let st = Leases::state_of(lease, t, &s.accounts);
                    prop_assert!(!(st == LeaseState::Active && t >= lease.expires_at));
                }
                prop_assert!(lease.expires_at <= lease.issued_at + lease.max_ttl_ms);
            }
            let owned = s.leases.iter().filter(|l| l.account.as_deref() == Some("acme")).count() as u64;
            prop_assert_eq!(s.accounts.find("acme").map(|a| a.lease_count), Some(owned));
        }
    }

    #[test]
    fn same_log_gives_byte_identical_state(ops in proptest::collection::vec(random_op(), 1..120)) {
        let log = build_log(&ops);
        let mut a = State::default();
        let mut b = State::default();
        let mut ra = Vec::new();
        let mut rb = Vec::new();
        for p in &log {
            ra.push(a.apply(p));
        }
        for p in &log {
            rb.push(b.apply(p));
        }
        prop_assert_eq!(ra, rb);
        prop_assert_eq!(encode_state(&a).unwrap(), encode_state(&b).unwrap());
        // A replica restored from a snapshot mid-way ends identical too.
        let mid = log.len() / 2;
        let mut c = State::default();
        for p in &log[..mid] {
            let _ = c.apply(p);
        }
        let mut c = crate::encoding::decode_state(&encode_state(&c).unwrap()).unwrap();
        for p in &log[mid..] {
            let _ = c.apply(p);
        }
        prop_assert_eq!(encode_state(&a).unwrap(), encode_state(&c).unwrap());
    }

    #[test]
    fn a_frozen_copy_encodes_the_state_it_was_taken_from(
        ops in proptest::collection::vec(random_op(), 2..120)
    ) {
        // A snapshot is encoded from a frozen copy while apply goes on:
        // whatever is applied afterwards, the copy encodes exactly the
        // state at the moment it was taken.
        let log = build_log(&ops);
        let mid = log.len() / 2;
        let mut s = State::default();
        for p in &log[..mid] {
            let _ = s.apply(p);
        }
        let expected = encode_state(&s).unwrap();
        let frozen = s.frozen();
        for p in &log[mid..] {
            let _ = s.apply(p);
        }
        prop_assert_eq!(encode_state(&frozen).unwrap(), expected);
        // And the state it was taken from is unaffected by the copy.
        let mut fresh = State::default();
        for p in &log {
            let _ = fresh.apply(p);
        }
        prop_assert_eq!(encode_state(&s).unwrap(), encode_state(&fresh).unwrap());
    }

    #[test]
    fn lease_counts_from_indexes_match_a_walk_of_every_lease(
        ops in proptest::collection::vec(random_op(), 1..120),
        offsets in proptest::collection::vec(0u64..400_000, 1..6),
    ) {
        let mut s = State::default();
        for p in &build_log(&ops) {
            let _ = s.apply(p);
        }
        for offset in offsets {
            let now = T0 + offset;
            let (mut active, mut suspended, mut expired) = (0, 0, 0);
            for lease in s.leases.iter() {
                match Leases::state_of(lease, now, &s.accounts) {
                    LeaseState::Active => active += 1,
                    LeaseState::Suspended => suspended += 1,
                    LeaseState::Expired => expired += 1,
                    LeaseState::Revoked => {}
                }
            }
            let c = s.census(now).leases;
            prop_assert_eq!((c.active, c.suspended, c.expired), (active, suspended, expired), "at +{} ms", offset);
        }
    }
}

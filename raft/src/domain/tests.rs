//! Tests of the pure domain: table-driven cases for every account state
//! against every operation, lease lifecycle edges, and property tests that
//! random command sequences keep the invariants and replay identically.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::account::{AccountState, LimitsPatch};
use super::lease::{LeaseState, Leases, MIN_TTL_MS};
use super::*;
use crate::command::{IdempotencyStamp, Outcome};
use crate::store::encode_state;

const T0: Millis = 1_800_000_000_000;
const SEC: u64 = 1_000;

fn at(now: Millis, command: Command) -> Proposal {
    Proposal {
        now,
        command,
        idempotency: None,
    }
}

fn grant(id: u64, ttl: u64, max: u64, account: Option<&str>) -> Command {
    Command::GrantLease {
        id,
        ttl_ms: ttl,
        max_ttl_ms: max,
        name: Some(format!("svc/{id}")),
        account: account.map(str::to_string),
        metadata: BTreeMap::new(),
    }
}

fn create_account(name: &str, expires_at: Option<Millis>, max_leases: Option<u64>) -> Command {
    Command::CreateAccount {
        name: name.into(),
        expires_at,
        limits: LimitsPatch {
            max_leases: Some(max_leases),
            max_certificates: None,
        },
    }
}

fn lease_state(s: &State, id: u64, now: Millis) -> Option<LeaseState> {
    s.leases
        .get(id)
        .map(|l| Leases::state_of(l, now, &s.accounts))
}

#[test]
fn grant_renew_revoke_lifecycle() {
    let mut s = State::default();
    let Ok(Outcome::Lease(v)) = s.apply(&at(T0, grant(1, 10 * SEC, 25 * SEC, None))) else {
        panic!("grant failed")
    };
    assert_eq!(v.state, LeaseState::Active);
    assert_eq!(v.lease.expires_at, T0 + 10 * SEC);
    assert_eq!(v.lease.hard_expires_at, T0 + 25 * SEC);

    // Renewal extends from the renewal time, never past the hard deadline.
    let Ok(Outcome::Lease(v)) = s.apply(&at(
        T0 + 5 * SEC,
        Command::RenewLease {
            id: 1,
            increment_ms: None,
        },
    )) else {
        panic!("renew failed")
    };
    assert_eq!(v.lease.expires_at, T0 + 15 * SEC);
    let Ok(Outcome::Lease(v)) = s.apply(&at(
        T0 + 14 * SEC,
        Command::RenewLease {
            id: 1,
            increment_ms: Some(60 * SEC),
        },
    )) else {
        panic!("renew failed")
    };
    assert_eq!(v.lease.expires_at, T0 + 25 * SEC);
    assert_eq!(v.lease.renewals, 2);

    // Past its deadline a lease is expired, whatever was applied.
    assert_eq!(lease_state(&s, 1, T0 + 25 * SEC), Some(LeaseState::Expired));
    assert_eq!(
        s.apply(&at(
            T0 + 25 * SEC,
            Command::RenewLease {
                id: 1,
                increment_ms: None
            }
        )),
        Err(DomainError::LeaseNotFound("0000000000000001".into()))
    );
    assert_eq!(
        s.apply(&at(T0 + 1, Command::RevokeLease { id: 1 })),
        Ok(Outcome::Done)
    );
    assert!(s.leases.is_empty());
    assert!(matches!(
        s.apply(&at(T0 + 2, Command::RevokeLease { id: 1 })),
        Err(DomainError::LeaseNotFound(_))
    ));
}

#[test]
fn expire_rechecks_deadlines_so_stale_batches_are_harmless() {
    let mut s = State::default();
    s.apply(&at(T0, grant(1, 2 * SEC, 60 * SEC, None))).unwrap();
    s.apply(&at(T0, grant(2, 5 * SEC, 60 * SEC, None))).unwrap();
    // A batch proposed before lease 2 is due expires only lease 1.
    assert_eq!(
        s.apply(&at(
            T0 + 2 * SEC,
            Command::ExpireLeases { ids: vec![1, 2, 3] }
        )),
        Ok(Outcome::Count(1))
    );
    // Repeating it changes nothing.
    assert_eq!(
        s.apply(&at(T0 + 2 * SEC, Command::ExpireLeases { ids: vec![1, 2] })),
        Ok(Outcome::Count(0))
    );
    // A lease renewed after being listed in a stale batch survives it.
    s.apply(&at(
        T0 + 4 * SEC,
        Command::RenewLease {
            id: 2,
            increment_ms: None,
        },
    ))
    .unwrap();
    assert_eq!(
        s.apply(&at(T0 + 6 * SEC, Command::ExpireLeases { ids: vec![2] })),
        Ok(Outcome::Count(0))
    );
    assert!(s.leases.get(2).is_some());
}

#[test]
fn bad_lease_input_is_refused_without_change() {
    let mut s = State::default();
    let before = s.clone();
    for cmd in [
        grant(1, 0, 10 * SEC, None),
        grant(1, MIN_TTL_MS - 1, 10 * SEC, None),
        grant(1, 10 * SEC, 5 * SEC, None),
        grant(1, 10 * SEC, 400 * 24 * 3600 * SEC, None),
        grant(1, 10 * SEC, 20 * SEC, Some("nobody")),
        Command::RevokeLeasePrefix {
            prefix: String::new(),
        },
        Command::RenewLease {
            id: 9,
            increment_ms: None,
        },
    ] {
        assert!(
            s.apply(&at(T0, cmd.clone())).is_err(),
            "{cmd:?} was accepted"
        );
    }
    assert_eq!(s, before);
}

#[test]
fn revoke_prefix_takes_only_matching_names() {
    let mut s = State::default();
    for (id, name) in [(1, "svc/a/1"), (2, "svc/a/2"), (3, "svc/ab"), (4, "svc/b")] {
        let cmd = Command::GrantLease {
            id,
            ttl_ms: 10 * SEC,
            max_ttl_ms: 10 * SEC,
            name: Some(name.into()),
            account: None,
            metadata: BTreeMap::new(),
        };
        s.apply(&at(T0, cmd)).unwrap();
    }
    assert_eq!(
        s.apply(&at(
            T0,
            Command::RevokeLeasePrefix {
                prefix: "svc/a/".into()
            }
        )),
        Ok(Outcome::Count(2))
    );
    assert_eq!(
        s.apply(&at(
            T0,
            Command::RevokeLeasePrefix {
                prefix: "svc/a".into()
            }
        )),
        Ok(Outcome::Count(1))
    );
    assert_eq!(s.leases.len(), 1);
}

/// The account operations of the transition matrix.
#[derive(Debug, Clone, Copy)]
enum Op {
    Grant,
    Renew,
    ExtendExpiry,
    Disable,
    Enable,
    Expire,
    Delete,
}

/// Builds an account `acme` in the given state, owning lease 1. An
/// expired account expired at T0+10s; the others expire in an hour.
fn account_in(state: AccountState) -> State {
    let mut s = State::default();
    let expiry = if state == AccountState::Expired {
        T0 + 10 * SEC
    } else {
        T0 + 3600 * SEC
    };
    s.apply(&at(T0, create_account("acme", Some(expiry), None)))
        .unwrap();
    s.apply(&at(T0, grant(1, 60 * SEC, 600 * SEC, Some("acme"))))
        .unwrap();
    match state {
        AccountState::Active => {}
        AccountState::Expired => {
            s.apply(&at(
                T0 + 10 * SEC,
                Command::ExpireAccount {
                    name: "acme".into(),
                },
            ))
            .unwrap();
        }
        AccountState::Disabled => {
            s.apply(&at(
                T0 + SEC,
                Command::SetAccountDisabled {
                    name: "acme".into(),
                    disabled: true,
                },
            ))
            .unwrap();
        }
    }
    s
}

/// (initial state, operation, succeeds, account state after, lease 1 state after)
type MatrixRow = (
    AccountState,
    Op,
    bool,
    Option<AccountState>,
    Option<LeaseState>,
);

#[test]
fn account_transition_matrix() {
    let now = T0 + 20 * SEC;
    let active = Some(AccountState::Active);
    let expired = Some(AccountState::Expired);
    let disabled = Some(AccountState::Disabled);
    let table: Vec<MatrixRow> = vec![
        (
            AccountState::Active,
            Op::Grant,
            true,
            active,
            Some(LeaseState::Active),
        ),
        (
            AccountState::Active,
            Op::Renew,
            true,
            active,
            Some(LeaseState::Active),
        ),
        (
            AccountState::Active,
            Op::ExtendExpiry,
            true,
            active,
            Some(LeaseState::Active),
        ),
        (
            AccountState::Active,
            Op::Disable,
            true,
            disabled,
            Some(LeaseState::Suspended),
        ),
        (
            AccountState::Active,
            Op::Enable,
            true,
            active,
            Some(LeaseState::Active),
        ),
        (
            AccountState::Active,
            Op::Expire,
            true,
            active,
            Some(LeaseState::Active),
        ),
        (AccountState::Active, Op::Delete, true, None, None),
        (
            AccountState::Expired,
            Op::Grant,
            false,
            expired,
            Some(LeaseState::Suspended),
        ),
        (
            AccountState::Expired,
            Op::Renew,
            false,
            expired,
            Some(LeaseState::Suspended),
        ),
        (
            AccountState::Expired,
            Op::ExtendExpiry,
            true,
            active,
            Some(LeaseState::Active),
        ),
        (
            AccountState::Expired,
            Op::Disable,
            true,
            disabled,
            Some(LeaseState::Suspended),
        ),
        (
            AccountState::Expired,
            Op::Enable,
            true,
            expired,
            Some(LeaseState::Suspended),
        ),
        (
            AccountState::Expired,
            Op::Expire,
            true,
            expired,
            Some(LeaseState::Suspended),
        ),
        (AccountState::Expired, Op::Delete, true, None, None),
        (
            AccountState::Disabled,
            Op::Grant,
            false,
            disabled,
            Some(LeaseState::Suspended),
        ),
        (
            AccountState::Disabled,
            Op::Renew,
            false,
            disabled,
            Some(LeaseState::Suspended),
        ),
        (
            AccountState::Disabled,
            Op::ExtendExpiry,
            true,
            disabled,
            Some(LeaseState::Suspended),
        ),
        (
            AccountState::Disabled,
            Op::Disable,
            true,
            disabled,
            Some(LeaseState::Suspended),
        ),
        (
            AccountState::Disabled,
            Op::Enable,
            true,
            active,
            Some(LeaseState::Active),
        ),
        (
            AccountState::Disabled,
            Op::Expire,
            true,
            disabled,
            Some(LeaseState::Suspended),
        ),
        (AccountState::Disabled, Op::Delete, true, None, None),
    ];
    for (initial, op, ok, account_after, lease_after) in table {
        let mut s = account_in(initial);
        let cmd = match op {
            Op::Grant => grant(2, 60 * SEC, 600 * SEC, Some("acme")),
            Op::Renew => Command::RenewLease {
                id: 1,
                increment_ms: None,
            },
            Op::ExtendExpiry => Command::UpdateAccount {
                name: "acme".into(),
                expires_at: Some(Some(now + 3600 * SEC)),
                limits: LimitsPatch::default(),
            },
            Op::Disable => Command::SetAccountDisabled {
                name: "acme".into(),
                disabled: true,
            },
            Op::Enable => Command::SetAccountDisabled {
                name: "acme".into(),
                disabled: false,
            },
            Op::Expire => Command::ExpireAccount {
                name: "acme".into(),
            },
            Op::Delete => Command::DeleteAccount {
                name: "acme".into(),
            },
        };
        let before = s.clone();
        let result = s.apply(&at(now, cmd));
        assert_eq!(result.is_ok(), ok, "{initial:?} x {op:?}: {result:?}");
        if !ok {
            assert_eq!(s, before, "{initial:?} x {op:?} changed state on refusal");
        }
        assert_eq!(
            s.account_state("acme", now),
            account_after,
            "{initial:?} x {op:?}"
        );
        assert_eq!(lease_state(&s, 1, now), lease_after, "{initial:?} x {op:?}");
    }
}

#[test]
fn renewing_an_account_reactivates_what_it_owns_in_the_same_apply() {
    let mut s = account_in(AccountState::Expired);
    let now = T0 + 20 * SEC;
    assert_eq!(
        s.apply(&at(
            now,
            Command::RenewLease {
                id: 1,
                increment_ms: None
            }
        )),
        Err(DomainError::LeaseSuspended("0000000000000001".into()))
    );
    for cycle in 0..100u64 {
        let t = now + cycle * 2 * SEC;
        s.apply(&at(
            t,
            Command::UpdateAccount {
                name: "acme".into(),
                expires_at: Some(Some(t + SEC)),
                limits: LimitsPatch::default(),
            },
        ))
        .unwrap();
        assert_eq!(lease_state(&s, 1, t), Some(LeaseState::Active));
        assert!(
            s.apply(&at(
                t,
                Command::RenewLease {
                    id: 1,
                    increment_ms: None
                }
            ))
            .is_ok()
        );
        s.apply(&at(
            t + SEC,
            Command::ExpireAccount {
                name: "acme".into(),
            },
        ))
        .unwrap();
        assert_eq!(lease_state(&s, 1, t + SEC), Some(LeaseState::Suspended));
    }
}

#[test]
fn limits_are_enforced_at_apply_and_can_be_raised() {
    let mut s = State::default();
    s.apply(&at(T0, create_account("acme", None, Some(2))))
        .unwrap();
    s.apply(&at(T0, grant(1, 60 * SEC, 60 * SEC, Some("acme"))))
        .unwrap();
    s.apply(&at(T0, grant(2, 60 * SEC, 60 * SEC, Some("acme"))))
        .unwrap();
    assert!(matches!(
        s.apply(&at(T0, grant(3, 60 * SEC, 60 * SEC, Some("acme")))),
        Err(DomainError::LimitExceeded { limit: 2, .. })
    ));
    s.apply(&at(
        T0,
        Command::UpdateAccount {
            name: "acme".into(),
            expires_at: None,
            limits: LimitsPatch {
                max_leases: Some(Some(3)),
                max_certificates: None,
            },
        },
    ))
    .unwrap();
    assert!(
        s.apply(&at(T0, grant(3, 60 * SEC, 60 * SEC, Some("acme"))))
            .is_ok()
    );
    // Expiry and revocation give the slots back.
    s.apply(&at(
        T0 + 60 * SEC,
        Command::ExpireLeases { ids: vec![1, 2] },
    ))
    .unwrap();
    assert_eq!(s.accounts.find("acme").unwrap().lease_count, 1);
}

#[test]
fn invalid_account_names_are_refused() {
    let mut s = State::default();
    for name in ["", "Acme", "-x", ".x", "a b", "a/b", &"a".repeat(64)] {
        assert!(
            s.apply(&at(T0, create_account(name, None, None))).is_err(),
            "{name:?}"
        );
    }
    assert!(
        s.apply(&at(T0, create_account(&"a".repeat(63), None, None)))
            .is_ok()
    );
    assert!(matches!(
        s.apply(&at(T0, create_account(&"a".repeat(63), None, None))),
        Err(DomainError::AlreadyExists(_))
    ));
}

#[test]
fn idempotency_key_returns_first_result() {
    let mut s = State::default();
    let stamp = IdempotencyStamp {
        key: "k1".into(),
        fingerprint: [7; 16],
    };
    let first = Proposal {
        now: T0,
        command: grant(1, 10 * SEC, 10 * SEC, None),
        idempotency: Some(stamp.clone()),
    };
    let r1 = s.apply(&first);
    // A retry (re-stamped with another id) returns the first lease.
    let retry = Proposal {
        now: T0 + 1,
        command: grant(2, 10 * SEC, 10 * SEC, None),
        idempotency: Some(stamp.clone()),
    };
    assert_eq!(s.apply(&retry), r1);
    assert_eq!(s.leases.len(), 1);
    let other = Proposal {
        idempotency: Some(IdempotencyStamp {
            fingerprint: [8; 16],
            ..stamp
        }),
        ..retry
    };
    assert_eq!(s.apply(&other), Err(DomainError::IdempotencyConflict));
}

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
                expires_at: Some(Some(now + u64::from(by_s) * SEC)),
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
        let mut c = crate::store::decode_state(&encode_state(&c).unwrap()).unwrap();
        for p in &log[mid..] {
            let _ = c.apply(p);
        }
        prop_assert_eq!(encode_state(&a).unwrap(), encode_state(&c).unwrap());
    }
}

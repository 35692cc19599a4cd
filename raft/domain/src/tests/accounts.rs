//! Accounts in the pure domain: the transition matrix of every state
//! against every operation, reactivation in the same apply, limits, names.

use super::*;

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
                expires_at: Patch::Set(now + 3600 * SEC),
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
                expires_at: Patch::Set(t + SEC),
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
            expires_at: Patch::Keep,
            limits: LimitsPatch {
                max_leases: Patch::Set(3),
                max_certificates: Patch::Keep,
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

/// Every limit admits exactly that many leases: 0 none, 1 one (an
/// account limited to one lease could hold none until this was fixed).
#[test]
fn a_limit_of_n_admits_exactly_n_leases() {
    for limit in 0..4u64 {
        let mut s = State::default();
        s.apply(&at(T0, create_account("acme", None, Some(limit))))
            .unwrap();
        let granted = (1..=6)
            .filter(|id| {
                s.apply(&at(T0, grant(*id, 60 * SEC, 60 * SEC, Some("acme"))))
                    .is_ok()
            })
            .count() as u64;
        assert_eq!(granted, limit, "max_leases {limit}");
        assert_eq!(s.accounts.find("acme").unwrap().lease_count, limit);
    }
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

//! Lease lifecycle edges of the pure domain, and the idempotency table.

use std::collections::BTreeMap;

use super::*;

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
fn count_due_is_exact_whichever_side_is_smaller() {
    let mut s = State::default();
    // Leases 1..=9 due at T0 + id seconds.
    for id in 1..=9 {
        s.apply(&at(T0, grant(id, id * SEC, 60 * SEC, None)))
            .unwrap();
    }
    for now in [
        T0,
        T0 + SEC,
        T0 + 2 * SEC,
        T0 + 5 * SEC,
        T0 + 8 * SEC,
        T0 + 9 * SEC,
        T0 + 99 * SEC,
    ] {
        let walked = s.leases.due_iter(now).count();
        assert_eq!(s.leases.count_due(now), walked, "at {}", now - T0);
    }
    assert_eq!(s.leases.count_due(T0 + 5 * SEC), 5);
    assert_eq!(State::default().leases.count_due(T0), 0);
}

#[test]
fn due_after_a_position_skips_what_was_already_proposed() {
    let mut s = State::default();
    for id in 1..=5 {
        s.apply(&at(T0, grant(id, id * SEC, 60 * SEC, None)))
            .unwrap();
    }
    let now = T0 + 4 * SEC;
    let all = s.leases.due(now, 10);
    assert_eq!(
        all.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    // Two batches of two: the second starts after the first's last lease.
    let first = s.leases.due_after(now, None, 2);
    let last = first.last().map(|(id, t)| (*t, *id));
    let second = s.leases.due_after(now, last, 2);
    assert_eq!(first.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(second.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [3, 4]);
    let end = second.last().map(|(id, t)| (*t, *id));
    assert!(s.leases.due_after(now, end, 2).is_empty());
    // A position beyond `now` (the clock stepped back) is simply empty.
    assert!(s.leases.due_after(T0, end, 2).is_empty());
    assert!(
        s.leases
            .due_after(T0 + 4 * SEC, Some((T0 + 4 * SEC, 4)), 2)
            .is_empty()
    );
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

#[test]
fn prefix_lists_follow_the_name_index_in_id_order_through_every_change() {
    let mut s = State::default();
    let names = [
        (9, Some("svc/a/9")),
        (2, Some("svc/a/2")),
        (5, Some("svc/ab")),
        (7, Some("svc/a/7")),
        (3, None),
        (4, Some("other")),
    ];
    for (id, name) in names {
        let cmd = Command::GrantLease {
            id,
            ttl_ms: 10 * SEC,
            max_ttl_ms: 60 * SEC,
            name: name.map(str::to_string),
            account: None,
            metadata: BTreeMap::new(),
        };
        s.apply(&at(T0, cmd)).unwrap();
    }
    let ids = |s: &State, prefix: &str, after: Option<u64>| -> Vec<u64> {
        s.leases
            .with_prefix(prefix, after)
            .iter()
            .map(|l| l.id)
            .collect()
    };
    assert_eq!(ids(&s, "svc/a/", None), vec![2, 7, 9]);
    assert_eq!(ids(&s, "svc/a/", Some(2)), vec![7, 9]);
    assert_eq!(ids(&s, "svc/a", None), vec![2, 5, 7, 9]);
    assert_eq!(ids(&s, "svc/b", None), Vec::<u64>::new());
    assert_eq!(ids(&s, "o", None), vec![4]);
    // A renewal keeps the lease in the index; a revoke and an expiry
    // take it out.
    s.apply(&at(
        T0 + SEC,
        Command::RenewLease {
            id: 7,
            increment_ms: Some(30 * SEC),
        },
    ))
    .unwrap();
    assert_eq!(ids(&s, "svc/a/", None), vec![2, 7, 9]);
    s.apply(&at(T0 + SEC, Command::RevokeLease { id: 2 }))
        .unwrap();
    s.apply(&at(
        T0 + 20 * SEC,
        Command::ExpireLeases { ids: vec![9, 5] },
    ))
    .unwrap();
    assert_eq!(ids(&s, "svc/", None), vec![7]);
    s.leases.check_invariants().unwrap();
    // Rebuilt from an encoded state, the index is the same.
    let mut decoded = decode_state(&encode_state(&s).unwrap()).unwrap();
    decoded.rebuild_indexes();
    assert_eq!(ids(&decoded, "svc/", None), vec![7]);
    decoded.leases.check_invariants().unwrap();
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
        quotas: Default::default(),
        scope: None,
        idempotency: Some(stamp.clone()),
    };
    let r1 = s.apply(&first);
    // A retry (re-stamped with another id) returns the first lease.
    let retry = Proposal {
        now: T0 + 1,
        command: grant(2, 10 * SEC, 10 * SEC, None),
        quotas: Default::default(),
        scope: None,
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

/// An entry whose idempotency key was already applied changes nothing and
/// is marked as a replay, so the proposer drops whatever it generated for
/// that attempt (a key pair, a lease id).
#[test]
fn a_replayed_idempotency_key_is_marked_and_changes_nothing() {
    let mut s = State::default();
    let stamp = IdempotencyStamp {
        key: "k".into(),
        fingerprint: [7; 16],
    };
    let first = Proposal {
        idempotency: Some(stamp.clone()),
        ..at(T0, grant(1, 60 * SEC, 600 * SEC, None))
    };
    let applied = s.apply_traced(&first);
    assert!(!applied.replayed);
    // The retry was stamped separately: another generated id.
    let retry = Proposal {
        idempotency: Some(stamp.clone()),
        ..at(T0 + SEC, grant(2, 60 * SEC, 600 * SEC, None))
    };
    let before = encode_state(&s).unwrap();
    let replay = s.apply_traced(&retry);
    assert!(replay.replayed);
    assert_eq!(replay.response, applied.response);
    assert!(
        s.leases.get(2).is_none(),
        "the retry granted a second lease"
    );
    assert_eq!(s.remembered(&stamp), Some(applied.response));
    assert_eq!(
        before,
        encode_state(&s).unwrap(),
        "a replay changed the state"
    );
}

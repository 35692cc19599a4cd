//! Lease batches: each item applies on its own, in order, with its own
//! result, and a batch leaves exactly the state and results the same items
//! would leave as single commands, one entry each.

use super::*;
use crate::lease::Grant;
use crate::lease_batch::{BatchRenewal, BatchResults, LeaseBatch};
use crate::quota::Quotas;

fn batch_grant(id: u64, ttl: u64, account: Option<&str>) -> Grant {
    Grant {
        id,
        ttl_ms: ttl,
        max_ttl_ms: 60 * SEC,
        name: Some(format!("svc/{id}")),
        account: account.map(str::to_string),
        metadata: BTreeMap::new(),
    }
}

fn apply_batch(s: &mut State, now: Millis, batch: LeaseBatch, quotas: Quotas) -> BatchResults {
    let proposal = Proposal {
        now,
        command: Command::ApplyLeaseBatch { batch },
        idempotency: None,
        quotas,
        scope: None,
    };
    match s.apply(&proposal) {
        Ok(Outcome::LeaseBatch(results)) => *results,
        other => panic!("a batch answers per-item results, not {other:?}"),
    }
}

#[test]
fn items_apply_in_order_and_a_refused_item_changes_nothing() {
    let mut s = State::default();
    s.apply(&at(T0, create_account("acme", None, Some(1))))
        .unwrap();
    s.apply(&at(T0, grant(1, 10 * SEC, 60 * SEC, None)))
        .unwrap();
    s.apply(&at(T0, grant(2, SEC, 60 * SEC, None))).unwrap();

    let batch = LeaseBatch {
        grant: vec![
            batch_grant(10, 10 * SEC, Some("acme")),
            // acme's limit of one lease is now reached.
            batch_grant(11, 10 * SEC, Some("acme")),
            batch_grant(12, 10 * SEC, Some("nobody")),
            // Already in the table: a collision is refused.
            batch_grant(1, 10 * SEC, None),
        ],
        renew: vec![
            BatchRenewal {
                id: 1,
                increment_ms: Some(30 * SEC),
            },
            // Past its deadline at the batch's time.
            BatchRenewal {
                id: 2,
                increment_ms: None,
            },
            // Granted earlier in the same batch.
            BatchRenewal {
                id: 10,
                increment_ms: None,
            },
            BatchRenewal {
                id: 99,
                increment_ms: None,
            },
        ],
        revoke: vec![10, 99, 10],
    };
    let r = apply_batch(&mut s, T0 + 5 * SEC, batch, Quotas::default());

    assert!(r.grant[0].is_ok(), "{:?}", r.grant[0]);
    assert!(
        matches!(r.grant[1], Err(DomainError::LimitExceeded { limit: 1, .. })),
        "{:?}",
        r.grant[1]
    );
    assert!(matches!(r.grant[2], Err(DomainError::AccountNotFound(_))));
    assert!(r.grant[3].is_err(), "an id collision is refused");
    let renewed = r.renew[0].as_ref().expect("lease 1 renews");
    assert_eq!(renewed.lease.expires_at, T0 + 35 * SEC);
    assert!(matches!(r.renew[1], Err(DomainError::LeaseNotFound(_))));
    assert!(r.renew[2].is_ok());
    assert!(matches!(r.renew[3], Err(DomainError::LeaseNotFound(_))));
    assert_eq!(r.revoke[0], Ok(()));
    assert!(matches!(r.revoke[1], Err(DomainError::LeaseNotFound(_))));
    assert!(matches!(r.revoke[2], Err(DomainError::LeaseNotFound(_))));
    assert_eq!(r.succeeded(), 4);

    // Lease 10 came and went inside the batch: acme holds what it held.
    assert!(s.leases.get(10).is_none() && s.leases.get(11).is_none());
    assert_eq!(s.accounts.get("acme").unwrap().lease_count, 0);
    assert_eq!(s.leases.get(1).unwrap().expires_at, T0 + 35 * SEC);
}

#[test]
fn the_cluster_quota_is_checked_before_each_grant() {
    let mut s = State::default();
    let quotas = Quotas {
        max_leases: Some(2),
        ..Quotas::default()
    };
    let batch = LeaseBatch {
        grant: (1..=4).map(|id| batch_grant(id, 10 * SEC, None)).collect(),
        renew: vec![],
        revoke: vec![1],
    };
    let r = apply_batch(&mut s, T0, batch, quotas);
    assert!(r.grant[0].is_ok() && r.grant[1].is_ok());
    for refused in &r.grant[2..] {
        assert!(
            matches!(refused, Err(DomainError::QuotaExceeded { limit: 2, .. })),
            "{refused:?}"
        );
    }
    assert_eq!(r.revoke, vec![Ok(())]);
    assert_eq!(s.leases.len(), 1);
}

#[derive(Debug, Clone)]
enum Item {
    Grant { id: u8, ttl_s: u8, owned: bool },
    Renew { id: u8, inc_s: Option<u8> },
    Revoke { id: u8 },
}

fn random_item() -> impl Strategy<Value = Item> {
    prop_oneof![
        (any::<u8>(), 1u8..20, any::<bool>()).prop_map(|(id, ttl_s, owned)| Item::Grant {
            id: id % 12,
            ttl_s,
            owned
        }),
        (any::<u8>(), proptest::option::of(1u8..30))
            .prop_map(|(id, inc_s)| Item::Renew { id: id % 12, inc_s }),
        any::<u8>().prop_map(|id| Item::Revoke { id: id % 12 }),
    ]
}

proptest! {
    /// A batch is the same items applied as single commands, grants first,
    /// then renewals, then revokes: the same state, the same results.
    #[test]
    fn a_batch_equals_its_items_applied_one_by_one(
        setup in proptest::collection::vec(random_item(), 0..12),
        items in proptest::collection::vec(random_item(), 0..24),
        step_s in 0u64..15,
    ) {
        // A common starting state, with an account limited to three leases.
        let mut base = State::default();
        base.apply(&at(T0, create_account("acme", None, Some(3)))).unwrap();
        let owner = |owned: bool| owned.then_some("acme");
        for item in &setup {
            if let Item::Grant { id, ttl_s, owned } = item {
                let _ = base.apply(&at(T0, grant(u64::from(*id), u64::from(*ttl_s) * SEC, 60 * SEC, owner(*owned))));
            }
        }
        let now = T0 + step_s * SEC;
        let mut batch = LeaseBatch::default();
        for item in &items {
            match *item {
                Item::Grant { id, ttl_s, owned } => batch.grant.push(Grant {
                    account: owner(owned).map(str::to_string),
                    ..batch_grant(u64::from(id) + 100, u64::from(ttl_s) * SEC, None)
                }),
                Item::Renew { id, inc_s } => batch.renew.push(BatchRenewal {
                    id: u64::from(id) + if id % 2 == 0 { 100 } else { 0 },
                    increment_ms: inc_s.map(|s| u64::from(s) * SEC),
                }),
                Item::Revoke { id } => batch.revoke.push(u64::from(id) + if id % 3 == 0 { 100 } else { 0 }),
            }
        }

        let mut single = base.clone();
        let mut expected = BatchResults::default();
        for g in &batch.grant {
            let cmd = Command::GrantLease {
                id: g.id,
                ttl_ms: g.ttl_ms,
                max_ttl_ms: g.max_ttl_ms,
                name: g.name.clone(),
                account: g.account.clone(),
                metadata: g.metadata.clone(),
            };
            expected.grant.push(single.apply(&at(now, cmd)).map(|o| match o {
                Outcome::Lease(v) => v,
                other => panic!("{other:?}"),
            }));
        }
        for r in &batch.renew {
            let cmd = Command::RenewLease { id: r.id, increment_ms: r.increment_ms };
            expected.renew.push(single.apply(&at(now, cmd)).map(|o| match o {
                Outcome::Lease(v) => v,
                other => panic!("{other:?}"),
            }));
        }
        for id in &batch.revoke {
            expected.revoke.push(single.apply(&at(now, Command::RevokeLease { id: *id })).map(|_| ()));
        }

        let mut batched = base.clone();
        let got = apply_batch(&mut batched, now, batch, Quotas::default());
        prop_assert_eq!(got, expected);
        prop_assert_eq!(encode_state(&batched).unwrap(), encode_state(&single).unwrap());
    }
}

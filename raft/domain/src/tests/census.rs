//! The census counts each lease and account in its derived state at the
//! given time, and the expiry debt is exactly the leases past their
//! deadline that no expiry has removed yet.

use super::*;

#[test]
fn census_counts_states_and_expiry_debt() {
    let mut s = State::default();
    assert!(
        s.apply(&at(T0, create_account("acme", Some(T0 + 100 * SEC), None)))
            .is_ok()
    );
    assert!(s.apply(&at(T0, create_account("gone", None, None))).is_ok());
    let disable = Command::SetAccountDisabled {
        name: "gone".into(),
        disabled: true,
    };
    assert!(s.apply(&at(T0, disable)).is_ok());
    for (id, ttl, account) in [
        (1, 10 * SEC, None),
        (2, 60 * SEC, None),
        (3, 300 * SEC, Some("acme")),
        (4, 20 * SEC, Some("acme")),
    ] {
        assert!(
            s.apply(&at(T0, grant(id, ttl, 3600 * SEC, account)))
                .is_ok()
        );
    }
    let c = s.census(T0 + SEC);
    assert_eq!(
        (c.leases.active, c.leases.suspended, c.leases.expired),
        (4, 0, 0)
    );
    assert_eq!((c.accounts.active, c.accounts.disabled), (1, 1));
    assert_eq!(c.expiry_debt.leases, 0);

    // At T0 + 30 s leases 1 and 4 are past their deadlines, unexpired.
    let c = s.census(T0 + 30 * SEC);
    assert_eq!((c.leases.active, c.leases.expired), (2, 2));
    assert_eq!(c.expiry_debt.leases, 2);
    assert_eq!(c.expiry_debt.oldest_overdue_ms, 20 * SEC);

    // Once acme expires, its live lease is suspended; expiring the two
    // overdue leases pays the debt.
    let c = s.census(T0 + 101 * SEC);
    assert_eq!(c.accounts.expired, 1);
    assert_eq!((c.leases.suspended, c.leases.expired), (1, 3));
    let expire = Command::ExpireLeases { ids: vec![1, 4] };
    assert!(s.apply(&at(T0 + 30 * SEC, expire)).is_ok());
    let c = s.census(T0 + 30 * SEC);
    assert_eq!(
        (c.leases.active, c.leases.expired, c.expiry_debt.leases),
        (2, 0, 0)
    );
    assert_eq!(c.crl.number, s.pki.crl_version().number);
}

#[test]
fn a_frozen_copy_counts_alike_given_the_live_lease_census() {
    let mut s = State::default();
    assert!(
        s.apply(&at(T0, create_account("acme", Some(T0 + 5 * SEC), None)))
            .is_ok()
    );
    for (id, ttl, account) in [
        (1, 2 * SEC, None),
        (2, 60 * SEC, Some("acme")),
        (3, SEC, Some("acme")),
    ] {
        assert!(
            s.apply(&at(T0, grant(id, ttl, 3600 * SEC, account)))
                .is_ok()
        );
    }
    let now = T0 + 10 * SEC;
    let live = s.census(now);
    assert_eq!((live.leases.expired, live.leases.suspended), (2, 1));
    // The frozen copy has no deadline index: its own lease counts would
    // miss the overdue leases, so the refresher passes the live ones.
    let frozen = s.frozen();
    assert_eq!(frozen.census_with(now, s.lease_census(now)), live);
}

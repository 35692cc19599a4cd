//! Time in the replicated state: stamps never go backwards across
//! proposals (and so across leaders), a renewal never shortens a lease,
//! and the last applied stamp survives snapshots, including ones written
//! before it was recorded.

use super::*;
use crate::encoding::decode_state;
use crate::lease::renewed_deadline;

fn renew(id: u64, increment_ms: Option<u64>) -> Command {
    Command::RenewLease { id, increment_ms }
}

fn expires_at(s: &State, id: u64) -> Millis {
    s.leases.get(id).expect("lease held").expires_at
}

/// One renewal case; times in seconds after the grant.
struct RenewCase {
    case: &'static str,
    ttl: u64,
    max_ttl: u64,
    renew_at: u64,
    increment: Option<u64>,
    want: u64,
}

const fn case(
    case: &'static str,
    ttl: u64,
    max_ttl: u64,
    renew_at: u64,
    increment: Option<u64>,
    want: u64,
) -> RenewCase {
    RenewCase {
        case,
        ttl,
        max_ttl,
        renew_at,
        increment,
        want,
    }
}

#[test]
fn renewal_never_shortens_a_lease() {
    let cases = [
        case("default increment extends", 10, 60, 5, None, 15),
        case("longer increment extends", 10, 60, 5, Some(30), 35),
        case(
            "shorter increment keeps the deadline",
            30,
            60,
            1,
            Some(5),
            30,
        ),
        case(
            "increment ending at the deadline keeps it",
            10,
            60,
            5,
            Some(5),
            10,
        ),
        case("capped by the hard deadline", 10, 20, 9, Some(30), 20),
        case(
            "hard cap never pulls the deadline in",
            20,
            20,
            1,
            Some(5),
            20,
        ),
        case(
            "renewal just before the deadline extends",
            10,
            60,
            9,
            Some(2),
            11,
        ),
    ];
    for c in cases {
        let mut s = State::default();
        s.apply(&at(T0, grant(1, c.ttl * SEC, c.max_ttl * SEC, None)))
            .unwrap_or_else(|e| panic!("{}: grant: {e}", c.case));
        let before = expires_at(&s, 1);
        let r = s.apply(&at(
            T0 + c.renew_at * SEC,
            renew(1, c.increment.map(|i| i * SEC)),
        ));
        assert!(r.is_ok(), "{}: renew refused: {r:?}", c.case);
        let after = expires_at(&s, 1);
        assert_eq!(after, T0 + c.want * SEC, "{}", c.case);
        assert!(after >= before, "{}: renewal shortened the lease", c.case);
        s.leases.check_invariants().unwrap();
    }
}

#[test]
fn renewed_deadline_is_monotonic_and_capped() {
    let mut s = State::default();
    s.apply(&at(T0, grant(1, 10 * SEC, 40 * SEC, None)))
        .unwrap();
    let lease = s.leases.get(1).unwrap().clone();
    for now in (0..40).map(|i| T0 + i * SEC) {
        for inc in [SEC, 3 * SEC, 10 * SEC, 60 * SEC] {
            let d = renewed_deadline(&lease, now, inc);
            assert!(d >= lease.expires_at);
            assert!(d <= lease.hard_expires_at);
        }
    }
}

#[test]
fn a_proposal_stamped_earlier_applies_at_the_latest_time() {
    // A leader whose clock is behind its predecessor's stamps an earlier
    // time: apply raises it, so nothing moves back.
    let mut s = State::default();
    s.apply(&at(T0, grant(1, 10 * SEC, 60 * SEC, None)))
        .unwrap();
    assert_eq!(s.last_stamp, T0);
    s.apply(&at(T0 + 8 * SEC, renew(1, Some(5 * SEC)))).unwrap();
    assert_eq!(expires_at(&s, 1), T0 + 13 * SEC);
    assert_eq!(s.last_stamp, T0 + 8 * SEC);

    // Stamped 6 s in the past: applied at T0 + 8 s, and the deadline holds.
    s.apply(&at(T0 + 2 * SEC, renew(1, Some(5 * SEC)))).unwrap();
    assert_eq!(expires_at(&s, 1), T0 + 13 * SEC);
    assert_eq!(s.last_stamp, T0 + 8 * SEC);

    // A grant stamped in the past starts at the latest applied time.
    let Ok(Outcome::Lease(v)) = s.apply(&at(T0, grant(2, 10 * SEC, 60 * SEC, None))) else {
        panic!("grant failed")
    };
    assert_eq!(v.lease.issued_at, T0 + 8 * SEC);
    assert_eq!(v.lease.expires_at, T0 + 18 * SEC);
}

#[test]
fn stamps_never_go_backwards() {
    let mut s = State::default();
    let clocks = [5, 3, 9, 9, 1, 12, 0, 11].map(|c| T0 + c * SEC);
    let mut last = 0;
    for clock in clocks {
        let stamp = s.stamp_time(clock);
        assert!(stamp >= clock && stamp >= last);
        s.apply(&at(clock, Command::RefreshCrl)).unwrap();
        assert_eq!(s.last_stamp, stamp);
        last = stamp;
    }
    assert_eq!(last, T0 + 12 * SEC);
}

#[test]
fn an_expiry_stamped_early_does_not_expire_a_renewed_lease() {
    let mut s = State::default();
    s.apply(&at(T0, grant(1, 10 * SEC, 60 * SEC, None)))
        .unwrap();
    s.apply(&at(T0 + 9 * SEC, renew(1, Some(10 * SEC))))
        .unwrap();
    // Stamped after the old deadline, before the renewed one.
    s.apply(&at(T0 + 11 * SEC, Command::ExpireLeases { ids: vec![1] }))
        .unwrap();
    assert!(s.leases.get(1).is_some());
    s.apply(&at(T0 + 19 * SEC, Command::ExpireLeases { ids: vec![1] }))
        .unwrap();
    assert!(s.leases.get(1).is_none());
}

#[test]
fn the_last_stamp_survives_snapshots() {
    let mut s = State::default();
    s.apply(&at(T0 + 7 * SEC, grant(1, 10 * SEC, 60 * SEC, None)))
        .unwrap();
    let restored = decode_state(&encode_state(&s).unwrap()).unwrap();
    assert_eq!(restored.last_stamp, T0 + 7 * SEC);
    assert_eq!(restored, s);
}

#[test]
fn a_snapshot_written_before_the_last_stamp_existed_still_decodes() {
    let mut s = State::default();
    s.apply(&at(T0, grant(1, 10 * SEC, 60 * SEC, None)))
        .unwrap();
    // The previous layout: the same fields, positionally, without the stamp.
    let current = encode_state(&s).unwrap();
    let mut old = current[..6].to_vec();
    crate::codec::encode_compact_into(
        &mut old,
        &(&s.cluster, &s.idempotency, &s.accounts, &s.leases, &s.pki),
    )
    .unwrap();
    let restored = decode_state(&old).unwrap();
    assert_eq!(restored.last_stamp, 0);
    assert_eq!(restored.leases, s.leases);
    assert_eq!(restored.leases.get(1), s.leases.get(1));
}

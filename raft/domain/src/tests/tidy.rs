//! Tidying and quotas: expired certificates leave the CRL at `not_after`
//! and their records go after the retention; idempotency keys are
//! forgotten after theirs; quotas refuse the object beyond them. All of it
//! is decided by stamped time and replicated counts, so replicas agree.

use super::*;
use crate::cert::{CaRecord, CertRecord, RevocationReason};
use crate::pki::SecretPem;
use crate::quota::Quotas;
use crate::tidy::Retention;

const RETAIN: Retention = Retention {
    pki_ms: 10 * SEC,
    idempotency_ms: 5 * SEC,
};

fn cert(serial: &str, not_after: Millis) -> Command {
    Command::RecordCertificate {
        cert: CertRecord {
            serial: serial.into(),
            common_name: serial.into(),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            account: None,
            not_before: T0,
            not_after,
            certificate_pem: String::new(),
            replaces: None,
            replaced_by: None,
            revocation: None,
        },
    }
}

fn with_ca() -> State {
    let mut s = State::default();
    let ca = CaRecord {
        certificate_pem: "ca".into(),
        key_pem: SecretPem::new("key".into()),
        not_after: T0 + 1_000 * SEC,
    };
    s.apply(&at(T0, Command::InitCa { ca })).unwrap();
    s
}

fn listed(s: &State) -> Vec<String> {
    s.pki.crl_entries().into_iter().map(|e| e.serial).collect()
}

fn tidy(now: Millis) -> Proposal {
    at(now, Command::TidyRecords { retention: RETAIN })
}

#[test]
fn expired_certificates_leave_the_crl_then_their_records_go() {
    let mut s = with_ca();
    s.apply(&at(T0, cert("0a", T0 + 20 * SEC))).unwrap();
    s.apply(&at(T0, cert("0b", T0 + 100 * SEC))).unwrap();
    s.apply(&at(T0, cert("0c", T0 + 20 * SEC))).unwrap();
    for serial in ["0a", "0b"] {
        let revoke = Command::RevokeCertificate {
            serial: serial.into(),
            reason: RevocationReason::KeyCompromise,
        };
        s.apply(&at(T0 + SEC, revoke)).unwrap();
    }
    assert_eq!(listed(&s), ["0a", "0b"]);
    assert!(!s.tidy_due(T0 + 20 * SEC - 1, &RETAIN));

    // At 0a's not_after it leaves the CRL (a new CRL number); records stay.
    let number = s.pki.crl_version().number;
    assert!(s.tidy_due(T0 + 20 * SEC, &RETAIN));
    s.apply(&tidy(T0 + 20 * SEC)).unwrap();
    assert_eq!(listed(&s), ["0b"]);
    assert_eq!(s.pki.crl_version().number, number + 1);
    assert_eq!(s.pki.len(), 3);
    assert!(!s.tidy_due(T0 + 25 * SEC, &RETAIN));

    // After the retention the expired records go, revoked or not.
    assert!(s.tidy_due(T0 + 30 * SEC, &RETAIN));
    assert_eq!(s.apply(&tidy(T0 + 30 * SEC)), Ok(Outcome::Count(2)));
    assert!(s.pki.get("0a").is_none() && s.pki.get("0c").is_none());
    assert!(s.pki.get("0b").is_some());
    assert_eq!(listed(&s), ["0b"]);
    // A repeated or stale tidy changes nothing.
    let before = encode_state(&s).unwrap();
    assert_eq!(s.apply(&tidy(T0 + 30 * SEC)), Ok(Outcome::Count(0)));
    assert_eq!(encode_state(&s).unwrap(), before);
    assert!(!s.tidy_due(T0 + 30 * SEC, &RETAIN));
}

#[test]
fn idempotency_keys_are_forgotten_after_their_retention() {
    let mut s = State::default();
    let keyed = |now, id, key: &str| Proposal {
        idempotency: Some(IdempotencyStamp {
            key: key.into(),
            fingerprint: [1; 16],
        }),
        ..at(now, grant(id, 60 * SEC, 600 * SEC, None))
    };
    s.apply(&keyed(T0, 1, "k")).unwrap();
    assert!(s.apply_traced(&keyed(T0 + SEC, 2, "k")).replayed);
    assert!(!s.tidy_due(T0 + 5 * SEC, &RETAIN));
    assert!(s.tidy_due(T0 + 5 * SEC + 1, &RETAIN));
    assert_eq!(s.apply(&tidy(T0 + 5 * SEC + 1)), Ok(Outcome::Count(1)));
    let again = s.apply_traced(&keyed(T0 + 6 * SEC, 2, "k"));
    assert!(!again.replayed, "the key is still remembered");
    assert_eq!(s.leases.len(), 2);
}

#[test]
fn quotas_refuse_the_object_beyond_them_on_every_replica() {
    let quotas = Quotas {
        max_accounts: Some(1),
        max_leases: Some(2),
        max_certificates: Some(1),
    };
    let q = |now, command| Proposal {
        quotas,
        scope: None,
        ..at(now, command)
    };
    let log = [
        q(T0, create_account("a", None, None)),
        q(T0, create_account("b", None, None)),
        q(T0, grant(1, 60 * SEC, 60 * SEC, None)),
        q(T0, grant(2, 60 * SEC, 60 * SEC, None)),
        q(T0, grant(3, 60 * SEC, 60 * SEC, None)),
        q(T0, Command::RevokeLease { id: 1 }),
        q(T0, grant(4, 60 * SEC, 60 * SEC, None)),
    ];
    let mut replicas = [State::default(), State::default()];
    for s in &mut replicas {
        let results: Vec<bool> = log.iter().map(|p| s.apply(p).is_ok()).collect();
        assert_eq!(results, [true, false, true, true, false, true, true]);
        assert!(matches!(
            s.apply(&q(T0, create_account("c", None, None))),
            Err(DomainError::QuotaExceeded { limit: 1, .. })
        ));
    }
    assert_eq!(
        encode_state(&replicas[0]).unwrap(),
        encode_state(&replicas[1]).unwrap()
    );
    // Certificates count records.
    let mut s = with_ca();
    let c = |serial| Proposal {
        quotas,
        scope: None,
        ..at(T0, cert(serial, T0 + 100 * SEC))
    };
    s.apply(&c("01")).unwrap();
    assert!(matches!(
        s.apply(&c("02")),
        Err(DomainError::QuotaExceeded { limit: 1, .. })
    ));
    assert_eq!(s.pki.len(), 1);
}

#[test]
fn reasons_parse_in_both_spellings() {
    for (name, reason) in [
        ("keyCompromise", RevocationReason::KeyCompromise),
        ("key_compromise", RevocationReason::KeyCompromise),
        (
            "cessationOfOperation",
            RevocationReason::CessationOfOperation,
        ),
        ("affiliationChanged", RevocationReason::AffiliationChanged),
        ("superseded", RevocationReason::Superseded),
        ("unspecified", RevocationReason::Unspecified),
    ] {
        assert_eq!(RevocationReason::parse(name), Some(reason), "{name}");
    }
    for bad in ["KeyCompromise", "key-compromise", "", "caCompromise"] {
        assert_eq!(RevocationReason::parse(bad), None, "{bad}");
    }
}

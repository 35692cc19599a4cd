//! Tokens (create, renew within the max TTL, revoke, derived expiry, tidy)
//! and tenant scope: under a scope, apply refuses every command that would
//! touch another account, and lets through only the account's own.

use crate::lease_batch::{BatchRenewal, LeaseBatch};
use crate::tidy::Retention;
use crate::token::token_digest;
use crate::token::{Role, Token};

use super::*;

fn token(accessor: &str, role: Role, account: Option<&str>, now: Millis) -> Token {
    Token {
        accessor: accessor.into(),
        secret_sha256: token_digest(accessor),
        role,
        account: account.map(str::to_string),
        name: None,
        created_by: "root".into(),
        ttl_ms: 10 * SEC,
        issued_at: now,
        expires_at: now + 10 * SEC,
        hard_expires_at: now + 25 * SEC,
    }
}

fn create(s: &mut State, t: Token) -> Response {
    s.apply(&at(t.issued_at, Command::CreateToken { token: t }))
}

#[test]
fn a_token_lives_until_its_deadline_renews_within_its_max_and_goes_when_revoked() {
    let mut s = State::default();
    s.apply(&at(T0, create_account("acme", None, None)))
        .unwrap();
    create(&mut s, token("00000000000000a1", Role::Reader, None, T0)).unwrap();
    let found = s
        .tokens
        .by_secret(&token_digest("00000000000000a1"))
        .unwrap();
    assert_eq!(found.accessor, "00000000000000a1");
    assert!(s.tokens.by_secret(&token_digest("guess")).is_none());

    // Renewal extends from now, never past the hard deadline.
    let renew = |now, inc| {
        at(
            now,
            Command::RenewToken {
                accessor: "00000000000000a1".into(),
                increment_ms: inc,
            },
        )
    };
    let Ok(Outcome::Token(t)) = s.apply(&renew(T0 + 5 * SEC, None)) else {
        panic!("renewal refused")
    };
    assert_eq!(t.expires_at, T0 + 15 * SEC);
    let Ok(Outcome::Token(t)) = s.apply(&renew(T0 + 14 * SEC, Some(60 * SEC))) else {
        panic!("renewal refused")
    };
    assert_eq!(t.expires_at, T0 + 25 * SEC);
    // Past its deadline it is gone, whatever was applied.
    assert!(
        !s.tokens
            .get("00000000000000a1")
            .unwrap()
            .live_at(T0 + 25 * SEC)
    );
    assert!(matches!(
        s.apply(&renew(T0 + 25 * SEC, None)),
        Err(DomainError::TokenNotFound(_))
    ));
    let retention = Retention::default();
    assert!(s.tidy_due(T0 + 25 * SEC, &retention));
    s.apply(&at(T0 + 25 * SEC, Command::TidyRecords { retention }))
        .unwrap();
    assert!(s.tokens.is_empty());
    assert!(
        s.tokens
            .by_secret(&token_digest("00000000000000a1"))
            .is_none()
    );

    // Revoke removes it at once; a second revoke finds nothing.
    create(
        &mut s,
        token(
            "00000000000000a2",
            Role::Tenant,
            Some("acme"),
            T0 + 30 * SEC,
        ),
    )
    .unwrap();
    let revoke = at(
        T0 + 31 * SEC,
        Command::RevokeToken {
            accessor: "00000000000000a2".into(),
        },
    );
    assert!(s.apply(&revoke).is_ok());
    assert!(
        s.tokens
            .by_secret(&token_digest("00000000000000a2"))
            .is_none()
    );
    assert!(matches!(
        s.apply(&revoke),
        Err(DomainError::TokenNotFound(_))
    ));
}

#[test]
fn only_tenant_tokens_name_an_account_and_it_must_exist() {
    let mut s = State::default();
    s.apply(&at(T0, create_account("acme", None, None)))
        .unwrap();
    assert!(matches!(
        create(&mut s, token("00000000000000b1", Role::Tenant, None, T0)),
        Err(DomainError::Invalid(_))
    ));
    assert!(matches!(
        create(
            &mut s,
            token("00000000000000b2", Role::Tenant, Some("ghost"), T0)
        ),
        Err(DomainError::AccountNotFound(_))
    ));
    assert!(matches!(
        create(
            &mut s,
            token("00000000000000b3", Role::Reader, Some("acme"), T0)
        ),
        Err(DomainError::Invalid(_))
    ));
    create(
        &mut s,
        token("00000000000000b4", Role::Tenant, Some("acme"), T0),
    )
    .unwrap();
    // The same accessor or secret twice is refused.
    assert!(matches!(
        create(&mut s, token("00000000000000b4", Role::Admin, None, T0)),
        Err(DomainError::Conflict(_))
    ));
    assert_eq!(s.tokens.len(), 1);
}

fn scoped(scope: &str, now: Millis, command: Command) -> Proposal {
    Proposal {
        scope: Some(scope.into()),
        ..at(now, command)
    }
}

#[test]
fn a_tenant_scope_touches_only_its_own_account() {
    let mut s = State::default();
    for name in ["acme", "other"] {
        s.apply(&at(T0, create_account(name, None, None))).unwrap();
    }
    s.apply(&at(T0, grant(1, 60 * SEC, 600 * SEC, Some("acme"))))
        .unwrap();
    s.apply(&at(T0, grant(2, 60 * SEC, 600 * SEC, Some("other"))))
        .unwrap();
    s.apply(&at(T0, grant(3, 60 * SEC, 600 * SEC, None)))
        .unwrap();
    let before = crate::encoding::encode_state(&s).unwrap();

    // Refused: everything of another account, of no account, and every
    // command that is not about leases or certificates.
    let refused = [
        grant(10, 60 * SEC, 600 * SEC, Some("other")),
        grant(11, 60 * SEC, 600 * SEC, None),
        Command::RenewLease {
            id: 2,
            increment_ms: None,
        },
        Command::RevokeLease { id: 3 },
        create_account("mine", None, None),
        Command::DeleteAccount {
            name: "other".into(),
        },
        Command::SetAccountDisabled {
            name: "acme".into(),
            disabled: false,
        },
        Command::CreateToken {
            token: token("00000000000000c1", Role::Admin, None, T0),
        },
        Command::RefreshCrl,
    ];
    for command in refused {
        let verb = command.verb();
        assert!(
            matches!(
                s.apply(&scoped("acme", T0 + SEC, command)),
                Err(DomainError::Forbidden(_))
            ),
            "{verb} under scope acme"
        );
    }
    assert_eq!(
        crate::encoding::encode_state(&s).unwrap(),
        before,
        "a refusal changed the state"
    );

    // A prefix revoke takes only the account's leases; a batch refuses
    // the other account's items one by one.
    assert_eq!(
        s.apply(&scoped(
            "acme",
            T0 + SEC,
            Command::RevokeLeasePrefix {
                prefix: "svc/".into()
            }
        )),
        Ok(Outcome::Count(1))
    );
    assert!(s.leases.get(1).is_none() && s.leases.get(2).is_some() && s.leases.get(3).is_some());
    let batch = LeaseBatch {
        grant: vec![],
        renew: vec![
            BatchRenewal {
                id: 2,
                increment_ms: None,
            },
            BatchRenewal {
                id: 3,
                increment_ms: None,
            },
        ],
        revoke: vec![2, 3],
    };
    let Ok(Outcome::LeaseBatch(r)) = s.apply(&scoped(
        "acme",
        T0 + SEC,
        Command::ApplyLeaseBatch { batch },
    )) else {
        panic!("a batch answers per item")
    };
    assert!(
        r.renew
            .iter()
            .all(|x| matches!(x, Err(DomainError::Forbidden(_))))
    );
    assert!(
        r.revoke
            .iter()
            .all(|x| matches!(x, Err(DomainError::Forbidden(_))))
    );
    assert_eq!(s.leases.len(), 2);

    // Allowed: the account's own.
    assert!(
        s.apply(&scoped(
            "acme",
            T0 + SEC,
            grant(12, 60 * SEC, 600 * SEC, Some("acme"))
        ))
        .is_ok()
    );
    assert!(
        s.apply(&scoped(
            "acme",
            T0 + 2 * SEC,
            Command::RenewLease {
                id: 12,
                increment_ms: None
            }
        ))
        .is_ok()
    );
    assert!(
        s.apply(&scoped(
            "acme",
            T0 + 2 * SEC,
            Command::RevokeLease { id: 12 }
        ))
        .is_ok()
    );
}

//! The durability checker: no acknowledged write lost, no duplicate from
//! an idempotent retry, no refused write applied.
//!
//! - Every acknowledged grant is still held at the end, unless a
//!   revocation of it was invoked or its latest acknowledged deadline
//!   (plus the clock bound) has passed by the final read.
//! - No two leases share a name and no two certificates a common name:
//!   each logical grant or issue (however many retries with its key) uses
//!   a unique one.
//! - A grant or issue definitely refused (4xx) left nothing behind.
//! - Every acknowledged certificate exists at the end, and every
//!   acknowledged revocation is in force.
//! - Each account's final `expires_at` is one a write could have left: the
//!   latest acknowledged one or one written concurrently with or after it.

use std::collections::{BTreeMap, BTreeSet};

use super::super::history::{Call, Op, Outcome};
use super::final_state::NodeState;

/// What the checker found.
#[derive(Debug, Default, Clone)]
pub struct WritesReport {
    /// Acknowledged writes missing at the end.
    pub lost: Vec<String>,
    /// Names or common names held twice.
    pub duplicated: Vec<String>,
    /// Refused writes that applied anyway.
    pub lies: Vec<String>,
    /// Acknowledged lease grants checked.
    pub grants_checked: usize,
}

impl WritesReport {
    /// Whether nothing was wrong.
    pub fn ok(&self) -> bool {
        self.lost.is_empty() && self.duplicated.is_empty() && self.lies.is_empty()
    }
}

/// Checks `ops` against `end` (one node's final state; the derived
/// checker makes sure every node agrees with it).
pub fn check(ops: &[Op], end: &NodeState, bound_ms: i64) -> WritesReport {
    let mut r = WritesReport::default();
    let leases: BTreeMap<&str, &str> = end
        .leases
        .iter()
        .map(|l| (l.id.as_str(), l.name.as_str()))
        .collect();
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for l in &end.leases {
        *names.entry(l.name.as_str()).or_default() += 1;
    }
    r.duplicated.extend(
        names
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, n)| format!("lease name {k} held {n} times")),
    );
    let mut cns: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &end.certs {
        *cns.entry(c.common_name.as_str()).or_default() += 1;
    }
    r.duplicated.extend(
        cns.iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, n)| format!("certificate {k} issued {n} times")),
    );

    let mut deadline: BTreeMap<&str, i64> = BTreeMap::new();
    let mut revoked: BTreeSet<&str> = BTreeSet::new();
    for op in ops {
        match (&op.call, &op.outcome) {
            (Call::Grant { .. }, Outcome::Ok(Some(s)))
            | (Call::Renew { .. }, Outcome::Ok(Some(s))) => {
                let d = deadline.entry(s.id.as_str()).or_insert(s.expires_at_ms);
                *d = (*d).max(s.expires_at_ms);
            }
            (Call::Revoke { lease }, _) => {
                revoked.insert(lease);
            }
            _ => {}
        }
    }
    let by_name: BTreeSet<&str> = end.leases.iter().map(|l| l.name.as_str()).collect();
    let certs: BTreeMap<&str, &str> = end
        .certs
        .iter()
        .map(|c| (c.serial.as_str(), c.state.as_str()))
        .collect();
    let cert_cns: BTreeSet<&str> = end.certs.iter().map(|c| c.common_name.as_str()).collect();
    for op in ops {
        match (&op.call, &op.outcome) {
            (Call::Grant { name, .. }, Outcome::Ok(Some(s))) => {
                r.grants_checked += 1;
                let d = deadline[s.id.as_str()];
                let alive_by_time = end.read_wall_ms < d - bound_ms;
                if alive_by_time && !revoked.contains(s.id.as_str()) {
                    match leases.get(s.id.as_str()) {
                        None => r.lost.push(format!(
                            "lease {} ({name}, op {}) acknowledged with deadline {d}, gone at {}",
                            s.id, op.index, end.read_wall_ms
                        )),
                        Some(n) if n != name => r.lost.push(format!(
                            "lease {} acknowledged as {name} is held as {n}",
                            s.id
                        )),
                        Some(_) => {}
                    }
                }
            }
            (Call::Grant { name, .. }, Outcome::Fail { status, code })
                if by_name.contains(name.as_str()) =>
            {
                r.lies.push(format!(
                    "grant {name} (op {}) refused with {status} {code} but applied",
                    op.index
                ));
            }
            (Call::CertIssue { common_name, .. }, Outcome::Ok(seen)) => {
                let present = match seen {
                    Some(s) => certs.contains_key(s.id.as_str()),
                    None => cert_cns.contains(common_name.as_str()),
                };
                if !present {
                    r.lost.push(format!(
                        "certificate {common_name} (op {}) acknowledged but missing",
                        op.index
                    ));
                }
            }
            (Call::CertIssue { common_name, .. }, Outcome::Fail { status, code })
                if cert_cns.contains(common_name.as_str()) =>
            {
                r.lies.push(format!(
                    "issue {common_name} (op {}) refused with {status} {code} but applied",
                    op.index
                ));
            }
            (Call::CertRevoke { serial }, Outcome::Ok(_)) => match certs.get(serial.as_str()) {
                Some(&"revoked") => {}
                other => r.lost.push(format!(
                    "revocation of {serial} (op {}) acknowledged, certificate is {other:?}",
                    op.index
                )),
            },
            _ => {}
        }
    }
    check_accounts(ops, end, &mut r);
    r
}

fn check_accounts(ops: &[Op], end: &NodeState, r: &mut WritesReport) {
    for a in &end.accounts {
        let writes: Vec<&Op> = ops
            .iter()
            .filter(
                |op| matches!(&op.call, Call::AccountExpiry { account, .. } if *account == a.name),
            )
            .filter(|op| !matches!(op.outcome, Outcome::Fail { .. }))
            .collect();
        let value = |op: &Op| match &op.call {
            Call::AccountExpiry { expires_at_ms, .. } => *expires_at_ms,
            _ => unreachable!("filtered to account writes"),
        };
        // The acknowledged write that completed last.
        let Some(last) = writes
            .iter()
            .filter(|op| matches!(op.outcome, Outcome::Ok(_)))
            .max_by_key(|op| op.complete_ns)
        else {
            continue;
        };
        let allowed: BTreeSet<i64> = writes
            .iter()
            .filter(|op| op.index == last.index || op.complete_ns > last.invoke_ns)
            .map(|op| value(op))
            .collect();
        if !a.expires_at_ms.is_some_and(|v| allowed.contains(&v)) {
            r.lost.push(format!(
                "account {} ends with expires_at {:?}; the writes allow {allowed:?}",
                a.name, a.expires_at_ms
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::history::Seen;
    use super::super::final_state::{AccountRecord, LeaseRecord};
    use super::*;

    fn op(index: usize, call: Call, outcome: Outcome, at: u64) -> Op {
        Op {
            index,
            process: 0,
            node: 1,
            call,
            invoke_ns: at * 1_000_000,
            complete_ns: (at + 5) * 1_000_000,
            invoke_wall_ms: at as i64,
            complete_wall_ms: at as i64 + 5,
            outcome,
            attempts: 1,
        }
    }
    fn grant(index: usize, name: &str, id: &str, deadline: i64) -> Op {
        op(
            index,
            Call::Grant {
                name: name.into(),
                ttl_s: 600,
                account: None,
            },
            Outcome::Ok(Some(Seen {
                id: id.into(),
                state: "active".into(),
                expires_at_ms: deadline,
            })),
            0,
        )
    }
    fn held(id: &str, name: &str) -> LeaseRecord {
        LeaseRecord {
            id: id.into(),
            name: name.into(),
            account: None,
            expires_at_ms: 600_000,
            state: "active".into(),
        }
    }
    fn end(leases: Vec<LeaseRecord>) -> NodeState {
        NodeState {
            node: 1,
            read_wall_ms: 10_000,
            leases,
            ..NodeState::default()
        }
    }

    #[test]
    fn an_acknowledged_grant_still_held_passes() {
        let r = check(
            &[grant(0, "j/0/1", "A", 600_000)],
            &end(vec![held("A", "j/0/1")]),
            500,
        );
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.grants_checked, 1);
    }

    #[test]
    fn a_lost_grant_is_rejected_unless_revoked_or_expired() {
        let r = check(&[grant(0, "j/0/1", "A", 600_000)], &end(vec![]), 500);
        assert_eq!(r.lost.len(), 1, "{r:?}");
        // Its deadline passed before the final read: expiry, not loss.
        assert!(check(&[grant(0, "j/0/1", "A", 5_000)], &end(vec![]), 500).ok());
        let revoke = op(
            1,
            Call::Revoke { lease: "A".into() },
            Outcome::Unknown("timeout".into()),
            10,
        );
        assert!(
            check(
                &[grant(0, "j/0/1", "A", 600_000), revoke],
                &end(vec![]),
                500
            )
            .ok()
        );
    }

    #[test]
    fn a_retry_that_made_a_second_lease_is_rejected() {
        let r = check(
            &[grant(0, "j/0/1", "A", 600_000)],
            &end(vec![held("A", "j/0/1"), held("B", "j/0/1")]),
            500,
        );
        assert_eq!(r.duplicated.len(), 1, "{r:?}");
    }

    #[test]
    fn a_refused_grant_that_applied_is_rejected() {
        let refused = op(
            0,
            Call::Grant {
                name: "j/0/1".into(),
                ttl_s: 600,
                account: None,
            },
            Outcome::Fail {
                status: 409,
                code: "limit_exceeded".into(),
            },
            0,
        );
        let r = check(&[refused], &end(vec![held("A", "j/0/1")]), 500);
        assert_eq!(r.lies.len(), 1, "{r:?}");
    }

    #[test]
    fn an_account_must_end_with_a_value_some_write_could_leave() {
        let write = |index, v, at| {
            op(
                index,
                Call::AccountExpiry {
                    account: "a".into(),
                    expires_at_ms: v,
                },
                Outcome::Ok(None),
                at,
            )
        };
        let ops = [write(0, 1_000, 0), write(1, 2_000, 100)];
        let mut e = end(vec![]);
        e.accounts = vec![AccountRecord {
            name: "a".into(),
            expires_at_ms: Some(2_000),
            state: "active".into(),
        }];
        assert!(check(&ops, &e, 500).ok());
        // The older value came back after the newer write was acknowledged.
        e.accounts[0].expires_at_ms = Some(1_000);
        assert_eq!(check(&ops, &e, 500).lost.len(), 1);
    }
}

//! The agreement checker: after heal, every node holds the same leases,
//! accounts and certificates, and on every node what an account owns
//! derives its state from the account (the NATS lesson: suspended while
//! the account is expired or disabled, active again at once when it is
//! renewed; derived, never copied).

use super::final_state::NodeState;

/// Differences and derivation errors (must be empty).
pub fn check(nodes: &[NodeState]) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(first) = nodes.first() else {
        return problems;
    };
    let key = |n: &NodeState| {
        let leases: Vec<_> = n
            .leases
            .iter()
            .map(|l| {
                (
                    l.id.clone(),
                    l.name.clone(),
                    l.account.clone(),
                    l.expires_at_ms,
                )
            })
            .collect();
        let accounts: Vec<_> = n
            .accounts
            .iter()
            .map(|a| (a.name.clone(), a.expires_at_ms))
            .collect();
        let certs: Vec<_> = n
            .certs
            .iter()
            .map(|c| {
                (
                    c.serial.clone(),
                    c.common_name.clone(),
                    c.account.clone(),
                    c.state == "revoked",
                )
            })
            .collect();
        (leases, accounts, certs)
    };
    let want = key(first);
    for n in &nodes[1..] {
        let got = key(n);
        if got.0 != want.0 {
            problems.push(format!(
                "node {} holds other leases than node {} ({} vs {})",
                n.node,
                first.node,
                got.0.len(),
                want.0.len()
            ));
        }
        if got.1 != want.1 {
            problems.push(format!(
                "node {} accounts {:?} != node {} {:?}",
                n.node, got.1, first.node, want.1
            ));
        }
        if got.2 != want.2 {
            problems.push(format!(
                "node {} holds other certificates than node {} ({} vs {})",
                n.node,
                first.node,
                got.2.len(),
                want.2.len()
            ));
        }
    }
    for n in nodes {
        let inactive = |account: &Option<String>| {
            account
                .as_ref()
                .and_then(|a| n.accounts.iter().find(|x| &x.name == a))
                .is_some_and(|a| a.state != "active")
        };
        for l in &n.leases {
            let expect = if l.expires_at_ms <= n.read_wall_ms {
                None // expired by time: either reading is fine at the boundary
            } else if inactive(&l.account) {
                Some("suspended")
            } else {
                Some("active")
            };
            if let Some(e) = expect
                && l.state != e
                && l.state != "expired"
            {
                problems.push(format!(
                    "node {}: lease {} of {:?} is {}, its account says {e}",
                    n.node, l.id, l.account, l.state
                ));
            }
        }
        for c in &n.certs {
            if c.state == "revoked" || c.state == "superseded" || c.state == "expired" {
                continue;
            }
            let e = if inactive(&c.account) {
                "suspended"
            } else {
                "active"
            };
            if c.state != e {
                problems.push(format!(
                    "node {}: certificate {} of {:?} is {}, its account says {e}",
                    n.node, c.serial, c.account, c.state
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::super::final_state::{AccountRecord, LeaseRecord, NodeState};
    use super::*;

    fn node(n: usize, account_state: &str, lease_state: &str) -> NodeState {
        NodeState {
            node: n,
            read_wall_ms: 1_000,
            leases: vec![LeaseRecord {
                id: "L".into(),
                name: "j/0/1".into(),
                account: Some("a".into()),
                expires_at_ms: 100_000,
                state: lease_state.into(),
            }],
            accounts: vec![AccountRecord {
                name: "a".into(),
                expires_at_ms: Some(500),
                state: account_state.into(),
            }],
            certs: vec![],
        }
    }

    #[test]
    fn agreeing_nodes_with_derived_states_pass() {
        assert!(
            check(&[
                node(1, "expired", "suspended"),
                node(2, "expired", "suspended")
            ])
            .is_empty()
        );
    }

    #[test]
    fn a_lease_still_active_under_an_expired_account_is_reported() {
        let p = check(&[
            node(1, "expired", "suspended"),
            node(2, "expired", "active"),
        ]);
        assert_eq!(p.len(), 1, "{p:?}");
    }

    #[test]
    fn nodes_holding_different_leases_are_reported() {
        let mut b = node(2, "active", "active");
        b.leases[0].expires_at_ms = 200_000;
        let p = check(&[node(1, "active", "active"), b]);
        assert!(p.iter().any(|m| m.contains("other leases")), "{p:?}");
    }
}

//! A three-node cluster in one process (see `support`), under faults drawn
//! from a seed: lost requests, lost answers, delays that reorder messages,
//! and a node cut off (leader or not) while clients write through every
//! node. What clients were told is recorded and checked against what the
//! nodes hold once the net heals:
//! - every acknowledged grant is on every node, under its name, once;
//! - a write retried with its idempotency key applies once, however many
//!   of its attempts were lost (a renewal acknowledged counts exactly 1);
//! - every node ends with the same state, byte for byte;
//! - a node cut off while the others move on (past a snapshot and a log
//!   purge) catches up by snapshot over the same transport.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use keel_raft::domain::lease_batch::GrantRequest;
use keel_raft::transport::Faults;
use keel_raft::{Caller, Error};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{MemCluster, seed};
use tokio::time::Instant;

const HOUR_MS: u64 = 3_600_000;

fn grant(name: &str) -> GrantRequest {
    GrantRequest {
        ttl_ms: HOUR_MS,
        max_ttl_ms: Some(24 * HOUR_MS),
        name: Some(name.to_string()),
        account: None,
        metadata: BTreeMap::new(),
    }
}

/// Whether a client may send the same request again (with its key).
fn retryable(e: &Error) -> bool {
    e.is_transient()
}

/// Grants and renews `count` leases through random nodes, each retried with
/// its idempotency key until acknowledged (or the deadline). Returns the
/// acknowledged `(name, id, renewed)`.
async fn client(
    cluster: Arc<MemCluster>,
    who: usize,
    count: usize,
    seed: u64,
    deadline: Instant,
) -> Vec<(String, u64, bool)> {
    let mut rng = StdRng::seed_from_u64(seed ^ (who as u64 + 1));
    let mut acked = Vec::new();
    for i in 0..count {
        let name = format!("c{who}/{i}");
        let caller = Caller::unscoped(Some(format!("grant-{name}")));
        let granted = loop {
            let node = &cluster.nodes[rng.random_range(0..cluster.nodes.len())];
            match node.cp.grant_lease(grant(&name), &caller).await {
                Ok(view) => break Some(view.lease.id),
                Err(e) if retryable(&e) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) if retryable(&e) => break None,
                Err(e) => panic!("grant {name} refused for good: {e}"),
            }
        };
        let Some(id) = granted else { continue };
        let caller = Caller::unscoped(Some(format!("renew-{name}")));
        let renewed = loop {
            let node = &cluster.nodes[rng.random_range(0..cluster.nodes.len())];
            match node.cp.renew_lease(id, None, &caller).await {
                Ok(_) => break true,
                Err(e) if retryable(&e) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) if retryable(&e) => break false,
                Err(e) => panic!("renew {name} refused for good: {e}"),
            }
        };
        acked.push((name, id, renewed));
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_lost_messages_and_a_cut_off_node() {
    let seed = seed();
    let faults = Faults {
        drop_request: 0.03,
        drop_answer: 0.03,
        max_delay: Duration::from_millis(4),
    };
    let cluster = Arc::new(MemCluster::start(3, seed, faults, |_| {}).await);
    let deadline = Instant::now() + Duration::from_secs(60);

    // The nemesis: cut one node off (drawn from the seed, the leader half
    // the time), let the others go on, heal; four times.
    let nemesis = {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(rng.random_range(200..600))).await;
                let victim = if rng.random_bool(0.5) {
                    cluster
                        .nodes
                        .iter()
                        .position(|n| n.cp.is_leader())
                        .unwrap_or(0)
                } else {
                    rng.random_range(0..cluster.nodes.len())
                };
                cluster.net.isolate(&cluster.nodes[victim].addr);
                tokio::time::sleep(Duration::from_millis(rng.random_range(500..1500))).await;
                cluster.net.heal();
            }
        })
    };
    let clients: Vec<_> = (0..4)
        .map(|who| tokio::spawn(client(cluster.clone(), who, 30, seed, deadline)))
        .collect();
    let mut acked = Vec::new();
    for c in clients {
        acked.extend(c.await.expect("client"));
    }
    nemesis.await.expect("nemesis");
    cluster.net.heal();
    cluster.net.set_faults(Faults::default());
    cluster.converge(Duration::from_secs(30)).await;
    let stats = cluster.net.stats();
    eprintln!(
        "seed {seed}: {} acknowledged grants; net {stats:?}",
        acked.len()
    );
    assert!(
        stats.requests_dropped > 0 && stats.answers_dropped > 0 && stats.refused > 0,
        "the faults never fired: {stats:?}"
    );
    assert!(
        acked.len() >= 100,
        "only {} of 120 grants were acknowledged in 60 s",
        acked.len()
    );

    for i in 0..cluster.nodes.len() {
        let node = &cluster.nodes[i];
        node.cp.local(|state| {
            let mut by_name: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
            for lease in state.leases.iter() {
                if let Some(name) = &lease.name {
                    by_name.entry(name).or_default().push(lease.id);
                }
            }
            for (name, ids) in &by_name {
                assert_eq!(
                    ids.len(),
                    1,
                    "node {}: {name} granted {} times: {ids:?}",
                    node.name,
                    ids.len()
                );
            }
            for (name, id, renewed) in &acked {
                let lease = state.leases.get(*id).unwrap_or_else(|| {
                    panic!(
                        "node {}: acknowledged lease {name} ({id:016x}) is missing",
                        node.name
                    )
                });
                assert_eq!(lease.name.as_deref(), Some(name.as_str()));
                if *renewed {
                    assert_eq!(
                        lease.renewals, 1,
                        "node {}: {name}'s acknowledged renewal applied {} times",
                        node.name, lease.renewals
                    );
                } else {
                    assert!(
                        lease.renewals <= 1,
                        "node {}: {name} renewed {} times",
                        node.name,
                        lease.renewals
                    );
                }
            }
        });
    }
    let first = cluster.state_bytes(0);
    for i in 1..cluster.nodes.len() {
        assert!(
            cluster.state_bytes(i) == first,
            "node {} holds another state than node 1",
            i + 1
        );
    }
    Arc::into_inner(cluster).expect("one owner").stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_leader_steps_aside_and_catches_up_by_snapshot() {
    let seed = seed();
    let cluster = MemCluster::start(3, seed, Faults::default(), |s| {
        s.snapshot_threshold = 20;
        s.logs_kept_after_snapshot = 2;
    })
    .await;
    let old = cluster.leader(Duration::from_secs(10)).await;
    cluster.net.isolate(&cluster.nodes[old].addr);

    // The cut-off leader takes no write: it may not know yet, but it
    // cannot commit. The client gives up on it and retries elsewhere.
    let stranded = Caller::unscoped(Some("stranded".into()));
    let attempt = tokio::time::timeout(
        Duration::from_secs(3),
        cluster.nodes[old]
            .cp
            .grant_lease(grant("stranded"), &stranded),
    )
    .await;
    assert!(
        !matches!(attempt, Ok(Ok(_))),
        "a leader cut off from both followers acknowledged a write"
    );

    let new = cluster.leader_without(old, Duration::from_secs(10)).await;
    for i in 0..60 {
        let name = format!("after/{i}");
        cluster.nodes[new]
            .cp
            .grant_lease(grant(&name), &Caller::unscoped(Some(name.clone())))
            .await
            .expect("the majority writes");
    }
    // The same request, retried on the majority with its key.
    let id = cluster.nodes[new]
        .cp
        .grant_lease(grant("stranded"), &stranded)
        .await
        .expect("retried on the majority")
        .lease
        .id;
    // The cut-off node's log now ends where the new leader purged: it can
    // only catch up from a snapshot.
    let behind = cluster.nodes[old].cp.status().last_log_index.unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let purged = cluster.nodes[new].cp.status().purged;
        if purged.is_some_and(|p| p > behind) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the leader purged only to {purged:?}, not past the cut-off node's {behind}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    cluster.net.heal();
    cluster.converge(Duration::from_secs(30)).await;
    let stats = cluster.net.stats();
    eprintln!("seed {seed}: net {stats:?}");
    assert!(
        stats.snapshots > 0,
        "the cut-off node caught up without a snapshot"
    );
    let first = cluster.state_bytes(0);
    for i in 0..cluster.nodes.len() {
        assert!(cluster.state_bytes(i) == first, "node {} differs", i + 1);
        let named: Vec<u64> = cluster.nodes[i].cp.local(|s| {
            s.leases
                .iter()
                .filter(|l| l.name.as_deref() == Some("stranded"))
                .map(|l| l.id)
                .collect()
        });
        assert_eq!(
            named,
            vec![id],
            "node {}: the stranded write applied once",
            i + 1
        );
    }
    cluster.stop().await;
}

//! Leader failure: `kill -9` of the leader of a three-node cluster.
//!
//! What must hold, and why it matters for a control plane:
//! - the two survivors elect a new leader within a few election timeouts
//!   (measured and printed; bounded generously, since sibling clusters may
//!   share the two cores);
//! - the cluster keeps acknowledging writes without the old leader;
//! - the killed node restarts from its own data directory (it resumes, it
//!   does not re-join) and catches up;
//! - no acknowledged write is lost: every lease acknowledged with 201
//!   before or after the kill is read back from every node, locally after
//!   catch-up and linearizably, and all nodes hold the same lease set.
//!
//! Writes carry idempotency keys, so a write retried after an ambiguous
//! failure cannot apply twice and the acknowledged set is exact.
//!
//! A second test holds a restarted follower to API.md's `/readyz`
//! contract: it may not answer 200 ("caught up") while it still holds only
//! what it had before it went down.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use keel_tests::workload::{grant_acked, lease_names};
use keel_tests::{Cluster, eventually};

/// Bound on electing a new leader: many election timeouts (500-1000 ms
/// each by default), because other clusters may be running on the machine.
const ELECTION_BOUND: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill9_elects_a_new_leader_and_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(3).await;
    let old_leader = cluster.leader().await;
    let term_before = cluster.api(old_leader).get_ok("/v1/cluster").await["term"]
        .as_u64()
        .unwrap();

    // Acknowledged writes before the failure, through every node (followers
    // forward to the leader).
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    let apis = cluster.apis();
    for n in 0..30 {
        let name = format!("w-{n}");
        let (id, _) = grant_acked(
            &apis[n % apis.len()..][..1],
            &name,
            None,
            Duration::from_secs(20),
        )
        .await;
        acked.insert(id, name);
    }

    // kill -9 the leader.
    cluster.kill9(old_leader);
    let killed_at = Instant::now();
    let survivors: Vec<u64> = cluster.running();
    assert_eq!(survivors.len(), 2);

    let survivor_apis: Vec<_> = survivors.iter().map(|id| cluster.api(*id)).collect();
    let new_leader = eventually(ELECTION_BOUND, "a new leader among the survivors", || {
        let apis = survivor_apis.clone();
        async move {
            let mut seen = Vec::new();
            for api in &apis {
                let v = api.get("/v1/cluster").await?.body;
                seen.push((v["leader"].as_u64(), v["term"].as_u64()));
            }
            match seen[0] {
                (Some(l), Some(term)) if l != old_leader && seen.iter().all(|s| s.0 == Some(l)) => {
                    Ok((l, term))
                }
                _ => Err(format!("leader/term seen: {seen:?}")),
            }
        }
    })
    .await;
    let elected_after = killed_at.elapsed();
    assert!(
        new_leader.1 > term_before,
        "a new leader needs a new term: {new_leader:?} vs {term_before}"
    );

    // Writes acknowledged without the old leader.
    let mut first_write_after = None;
    for n in 30..60 {
        let name = format!("w-{n}");
        let (id, _) = grant_acked(&survivor_apis, &name, None, Duration::from_secs(30)).await;
        first_write_after.get_or_insert_with(|| killed_at.elapsed());
        acked.insert(id, name);
    }
    println!(
        "failover: new leader {} (term {}) {:?} after kill -9 of {old_leader}; first acknowledged write after {:?}",
        new_leader.0,
        new_leader.1,
        elected_after,
        first_write_after.unwrap()
    );

    // The killed node restarts from its data and catches up.
    cluster.restart(old_leader);
    cluster
        .wait_ready(old_leader, Duration::from_secs(60))
        .await;
    assert!(
        cluster
            .node(old_leader)
            .log()
            .contains("resuming from disk"),
        "node {old_leader} did not resume from its data:\n{}",
        cluster.node(old_leader).log_tail(40)
    );
    for n in 60..70 {
        let name = format!("w-{n}");
        let (id, _) = grant_acked(&cluster.apis(), &name, None, Duration::from_secs(30)).await;
        acked.insert(id, name);
    }
    cluster.wait_caught_up(Duration::from_secs(30)).await;

    // Every node holds exactly the acknowledged leases, locally and
    // linearizably.
    for id in 1..=3 {
        let api = cluster.api(id);
        let local = lease_names(&api, "local").await.unwrap();
        assert_eq!(
            local, acked,
            "node {id}: local lease set differs from the acknowledged writes"
        );
        let linearizable = lease_names(&api, "linearizable").await.unwrap();
        assert_eq!(
            linearizable, acked,
            "node {id}: linearizable lease set differs"
        );
    }
    // Point reads too, on the restarted node, linearizably.
    let restarted = cluster.api(old_leader);
    for (lease, name) in &acked {
        let body = restarted.get_ok(&format!("/v1/leases/{lease}")).await;
        assert_eq!(body["name"].as_str(), Some(name.as_str()));
        assert_eq!(body["state"], "active");
    }
    let names: BTreeSet<&String> = acked.values().collect();
    assert_eq!(names.len(), 70, "every write acknowledged exactly once");
}

/// API.md: `/readyz` is 200 only when the node is "caught up". A follower
/// restarted after missing writes must not claim readiness while it still
/// serves the state it had before (a load balancer would send it reads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_follower_is_not_ready_before_it_caught_up() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    cluster.kill9(follower);
    let apis: Vec<_> = (1..=3)
        .filter(|id| *id != follower)
        .map(|id| cluster.api(id))
        .collect();
    for n in 0..200 {
        grant_acked(&apis, &format!("missed-{n}"), None, Duration::from_secs(20)).await;
    }
    let committed = cluster.api(leader).get_ok("/v1/cluster").await["commit_index"]
        .as_u64()
        .unwrap();

    cluster.restart(follower);
    let api = cluster.api(follower);
    // At the first 200 from /readyz, the follower must have applied what
    // the leader had committed before it restarted.
    let applied = eventually(
        Duration::from_secs(60),
        "the restarted follower ready",
        || {
            let api = api.clone();
            async move {
                match api.get("/readyz").await {
                    Ok(r) if r.status == 200 => {
                        let v = api.get("/v1/cluster").await?.body;
                        Ok(v["applied_index"].as_u64().unwrap_or(0))
                    }
                    Ok(r) => Err(format!("/readyz {}", r.status)),
                    Err(e) => Err(e),
                }
            }
        },
    )
    .await;
    assert!(
        applied >= committed,
        "node {follower} answered /readyz 200 having applied index {applied}, \
         while the cluster had committed {committed} before it restarted"
    );
    let held = lease_names(&api, "local").await.unwrap();
    assert_eq!(held.len(), 200);
}

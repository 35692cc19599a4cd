//! Long waits on the cluster's shape (role, leader, term, membership, a
//! stopped Raft) look again only when that shape changes, not on every
//! write: a node's lifecycle, manager supervisor and observer wait like
//! that all the time, and once woke on each of Raft's metrics updates.
//! openraft publishes role, leader, term and membership a moment before
//! the rest of its metrics: a waiter woken by them must judge them, not
//! the rest (under load it read the old leader there and slept through
//! the change it waited for).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keel_raft::Role;
use keel_raft::transport::Faults;
use support::{MemCluster, seed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_for_a_change_hears_a_new_leader_but_not_each_write() {
    let cluster = MemCluster::start(3, seed(), Faults::default(), |_| {}).await;
    let leader = cluster.leader(Duration::from_secs(20)).await;
    let old = cluster.nodes[leader].cp.node_id();
    let follower = cluster.nodes[(leader + 1) % 3].cp.clone();

    let (change_looks, write_looks) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let waiter = {
        let (cp, looks) = (follower.clone(), change_looks.clone());
        tokio::spawn(async move {
            cp.wait_for_change(Duration::from_secs(60), move |s| {
                looks.fetch_add(1, Ordering::Relaxed);
                s.leader.is_some_and(|l| l != old)
            })
            .await
        })
    };
    // The same condition, waited for on every metrics update: the
    // measure of how often the writes below would have woken a waiter.
    let eager = {
        let (cp, looks) = (follower.clone(), write_looks.clone());
        tokio::spawn(async move {
            cp.wait_for(Duration::from_secs(60), move |s| {
                looks.fetch_add(1, Ordering::Relaxed);
                s.leader.is_some_and(|l| l != old)
            })
            .await
        })
    };

    let writes = 100;
    for i in 0..writes {
        cluster
            .name_cluster(leader)
            .await
            .unwrap_or_else(|e| panic!("write {i}: {e}"));
    }
    cluster.converge(Duration::from_secs(20)).await;
    let (during_change, during_eager) = (
        change_looks.load(Ordering::Relaxed),
        write_looks.load(Ordering::Relaxed),
    );
    assert!(
        during_eager >= writes / 2,
        "a waiter on every update looked {during_eager} times over {writes} writes"
    );
    assert!(
        during_change <= 5,
        "a wait for a change looked {during_change} times over {writes} writes \
         (a waiter on every update: {during_eager})"
    );
    assert!(!waiter.is_finished(), "the leader has not changed");

    // The leader goes: both waits hear of its successor.
    cluster.net.detach(&cluster.nodes[leader].addr);
    cluster.nodes[leader]
        .cp
        .shutdown()
        .await
        .expect("shuts down");
    let status = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("the wait ends once another node leads")
        .expect("joins")
        .expect("a new leader");
    assert!(
        status.leader.is_some_and(|l| l != old),
        "{:?}",
        status.leader
    );
    eager
        .await
        .expect("joins")
        .expect("the eager wait sees it too");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_for_a_change_answers_from_the_last_status_once_raft_stops() {
    let cluster = MemCluster::start(3, seed(), Faults::default(), |_| {}).await;
    let cp = cluster.nodes[0].cp.clone();
    let waiter = {
        let cp = cp.clone();
        tokio::spawn(async move {
            cp.wait_for_change(Duration::from_secs(60), |s| s.role == Role::Shutdown)
                .await
        })
    };
    cluster.net.detach(&cluster.nodes[0].addr);
    cp.shutdown().await.expect("shuts down");
    let status = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the wait ends with Raft")
        .expect("joins")
        .expect("the stopped status satisfies the condition");
    assert_eq!(status.role, Role::Shutdown);
    cluster.stop().await;
}

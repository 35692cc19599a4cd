//! A node that resumes asks its peers whether the cluster replaced its
//! incarnation (its data directory is then an old copy, and it retires).
//! Only a peer whose membership is newer than the node's own may say so:
//! the fault suite saw a peer restored from an old disk image, whose stale
//! membership still listed an earlier incarnation of a healthy node, make
//! that node retire too; two retirements at once left no quorum.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use keel_raft::transport::Faults;
use keel_raft::types::{incarnation_of, name_of, raft_id};
use keel_raft::wire::{Hello, MembershipAt};
use support::{MemCluster, seed};

/// `hello` as a peer would send it if its membership listed `replaced`'s
/// name at another incarnation instead, decided at `at`.
fn listing_another_incarnation(hello: &Hello, replaced: u64, at: Option<MembershipAt>) -> Hello {
    let other = raft_id(name_of(replaced), incarnation_of(replaced) + 7);
    let mut stale = hello.clone();
    stale.members = hello
        .members
        .iter()
        .map(|id| if *id == replaced { other } else { *id })
        .collect();
    stale.membership_at = at;
    stale
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_newer_membership_retires_a_node_as_replaced() {
    let cluster = MemCluster::start(3, seed(), Faults::default(), |_| {}).await;
    let leader = cluster.leader(Duration::from_secs(20)).await;
    // Move the membership on from the one the cluster was formed with (a
    // change to the same voters), so that an older one exists.
    let lead = &cluster.nodes[leader].cp;
    let voters: BTreeSet<_> = cluster.nodes.iter().map(|n| n.cp.node_id()).collect();
    lead.propose_joint_membership(voters).await.expect("joint");
    assert!(lead.finish_joint_membership().await.expect("finished"));
    let node = &cluster.nodes[(leader + 1) % 3].cp;
    let peer_cp = &cluster.nodes[(leader + 2) % 3].cp;
    let target = lead.membership_at();
    for cp in [node, peer_cp] {
        cp.wait_for(Duration::from_secs(10), |s| {
            !s.joint && cp.membership_at() == target
        })
        .await
        .expect("the change reaches every node");
    }
    let peer = peer_cp.hello().await;
    let ours = node.hello().await.membership_at.expect("a membership");
    assert!(ours.index > 0, "{ours:?}");
    assert_eq!(peer.membership_at, Some(ours));
    assert!(peer.leader.is_some(), "the peer knows a leader: {peer:?}");

    // A peer restored from an old image: its membership predates ours.
    let older = MembershipAt {
        term: ours.term,
        index: ours.index.saturating_sub(1),
    };
    for at in [Some(older), None] {
        let stale = listing_another_incarnation(&peer, node.node_id(), at);
        assert!(
            !node.check_superseded(&stale),
            "a peer whose membership ({at:?}) is not newer than ours ({ours:?}) retired this node"
        );
    }
    // The same claim, as old as ours: not newer, so not believed either.
    let same = listing_another_incarnation(&peer, node.node_id(), Some(ours));
    assert!(!node.check_superseded(&same));
    let quiet = tokio::time::timeout(Duration::from_millis(200), node.retired()).await;
    assert!(quiet.is_err(), "retired: {quiet:?}");

    // A peer whose membership is newer and lists another incarnation: the
    // cluster replaced this one, and it retires.
    let newer = MembershipAt {
        term: ours.term + 1,
        index: ours.index + 1,
    };
    let replaced = listing_another_incarnation(&peer, node.node_id(), Some(newer));
    assert!(node.check_superseded(&replaced));
    let reason = tokio::time::timeout(Duration::from_secs(5), node.retired())
        .await
        .expect("it retires");
    assert!(reason.contains("replaced this incarnation"), "{reason}");
    cluster.stop().await;
}

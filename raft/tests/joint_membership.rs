//! A joint membership left behind: the leader that proposed a voter change
//! lost leadership between openraft's two steps (joint configuration, then
//! the new one), as the fault suite saw when a leader whose clock fell out
//! of trust handed leadership away mid-promotion. The next leader finishes
//! the change; until then every commit needed a majority of the old voter
//! set too, and losing one voter of a two-voter old set stopped the
//! cluster for good.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use keel_raft::transport::Faults;
use support::{MemCluster, seed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joint_membership_left_by_a_former_leader_is_finished_by_the_next() {
    let cluster = MemCluster::start(3, seed(), Faults::default(), |_| {}).await;
    let leader = cluster.leader(Duration::from_secs(20)).await;
    let ids: Vec<_> = cluster.nodes.iter().map(|n| n.cp.node_id()).collect();
    let leaving = ids[(leader + 1) % 3];
    let target: BTreeSet<_> = ids.iter().copied().filter(|id| *id != leaving).collect();

    // The first step only: joint {all three} & {two}.
    cluster.nodes[leader]
        .cp
        .propose_joint_membership(target.clone())
        .await
        .expect("the joint configuration commits");
    let status = cluster.nodes[leader].cp.status();
    assert!(status.joint, "joint after the first step: {status:?}");

    // Leadership moves to the other node that stays; it finds the joint
    // configuration and finishes it.
    let next = (0..3)
        .find(|i| *i != leader && ids[*i] != leaving)
        .expect("a third node");
    cluster.nodes[leader]
        .cp
        .transfer_leader(Some(keel_raft::types::name_of(ids[next])))
        .await
        .expect("leadership moves");
    let new_leader = cluster.leader(Duration::from_secs(20)).await;
    assert!(cluster.nodes[new_leader].cp.status().joint);
    // A leader just elected may refuse until a quorum of both sets has
    // answered it (its lease); the manager retries, and so does this test.
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match cluster.nodes[new_leader].cp.finish_joint_membership().await {
            Ok(proposed) => {
                assert!(proposed, "the new leader should have proposed");
                break;
            }
            Err(e) if tokio::time::Instant::now() < until => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the new configuration never committed: {e}"),
        }
    }
    let done = cluster.nodes[new_leader]
        .cp
        .wait_for(Duration::from_secs(10), |s| !s.joint)
        .await
        .expect("the joint configuration ends");
    assert_eq!(done.voters, target, "the voters are the set it moved to");
    // Nothing left to finish: a second call proposes nothing.
    assert!(
        !cluster.nodes[new_leader]
            .cp
            .finish_joint_membership()
            .await
            .unwrap()
    );
    cluster.stop().await;
}

//! Crash at any step loses nothing and bricks nothing (issue 9, item 3).
//!
//! - A follower that fell behind by more than the peer message limit
//!   catches up from the log: replication sends it bounded batches instead
//!   of one message the follower refuses forever. A stop afterwards really
//!   closes its database.
//! - A node killed with `kill -9` right after installing a snapshot (and
//!   a leader killed right after compacting its log) restarts and serves
//!   every acknowledged write.
//! - A follower installs a snapshot streamed to disk with memory bounded
//!   by its state, not by the snapshot's bytes (the full-size figure comes
//!   from the `snapshot_memory` program).

use std::collections::BTreeMap;
use std::time::Duration;

use keel_tests::snapshot_memory::measure_install;
use keel_tests::workload::{heavy_metadata, lease_names, write_leases};
use keel_tests::{Api, Cluster, eventually};

fn apis_of(cluster: &mut Cluster) -> Vec<Api> {
    cluster
        .running()
        .into_iter()
        .map(|id| cluster.api(id))
        .collect()
}

/// Every node holds exactly the acknowledged leases, read locally.
async fn everyone_holds(cluster: &mut Cluster, acked: &BTreeMap<String, String>) {
    cluster.wait_caught_up(Duration::from_secs(120)).await;
    for id in cluster.running() {
        let held = lease_names(&cluster.api(id), "local").await.unwrap();
        assert_eq!(held.len(), acked.len(), "node {id}: lease count");
        assert_eq!(
            &held, acked,
            "node {id} differs from the acknowledged writes"
        );
    }
}

/// Waits until `id`'s log contains `needle` (as of now, or later).
async fn log_shows(cluster: &Cluster, id: u64, needle: &str, deadline: Duration) {
    let path = cluster.node(id).log_path.clone();
    let needle = needle.to_string();
    eventually(deadline, &format!("node {id} logging {needle:?}"), || {
        let (path, needle) = (path.clone(), needle.clone());
        async move {
            let log = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            if log.contains(&needle) {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_by_more_than_a_peer_message_catches_up_and_stop_closes_storage() {
    // A 2 MiB peer message limit (and an API body limit that fits it) keeps
    // the backlog small enough to write quickly.
    let mut cluster = Cluster::builder(3)
        .arg("--peer-max-message-bytes")
        .arg("2097152")
        .arg("--max-body-bytes")
        .arg("262144")
        .start()
        .await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let mut acked = write_leases(&apis_of(&mut cluster), "before", 5, 1, None).await;
    cluster.wait_caught_up(Duration::from_secs(30)).await;

    cluster.kill9(follower);
    // About 32 KB per lease: 200 of them are three times the peer limit,
    // and the leader (no snapshot before 50,000 entries) keeps them all.
    let metadata = heavy_metadata("lag", 32, 1000);
    acked.extend(write_leases(&apis_of(&mut cluster), "lag", 200, 4, Some(&metadata)).await);

    cluster.restart(follower);
    cluster.wait_ready(follower, Duration::from_secs(120)).await;
    everyone_holds(&mut cluster, &acked).await;
    let log = cluster.node(follower).log();
    assert!(
        !log.contains("installing snapshot"),
        "caught up from the log, not a snapshot"
    );
    let sample = acked.iter().find(|(_, n)| n.starts_with("lag")).unwrap().0;
    let lease = cluster
        .api(follower)
        .get_ok(&format!("/v1/leases/{sample}?consistency=local"))
        .await;
    assert_eq!(lease["metadata"], metadata);

    // An orderly stop closes the database for real: the storage handle is
    // the last one when it is dropped.
    cluster.node(follower).signal(libc::SIGTERM);
    let code = cluster
        .node_mut(follower)
        .wait_exit(Duration::from_secs(30))
        .await;
    assert_eq!(code, Some(0), "{}", cluster.node(follower).log_tail(20));
    let log = cluster.node(follower).log();
    let closed = log
        .lines()
        .find(|l| l.contains("storage flushed and closed"))
        .unwrap_or_else(|| panic!("no close line:\n{}", cluster.node(follower).log_tail(20)));
    assert!(closed.contains("handles=1"), "{closed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_killed_right_after_a_snapshot_install_or_a_compaction_restart_whole() {
    let mut cluster = Cluster::builder(3)
        .arg("--snapshot-threshold")
        .arg("50")
        .start()
        .await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let mut acked = write_leases(&apis_of(&mut cluster), "before", 20, 2, None).await;
    cluster.wait_caught_up(Duration::from_secs(30)).await;

    // The follower misses enough that the leader must send it a snapshot.
    cluster.kill9(follower);
    let wanted = format!("sending snapshot target={follower}");
    let mut round = 0;
    while !cluster.node(leader).log().contains(&wanted) {
        assert!(
            round < 40,
            "the leader never compacted past node {follower}"
        );
        let apis = apis_of(&mut cluster);
        acked.extend(write_leases(&apis, &format!("down-{round}"), 50, 4, None).await);
        round += 1;
    }

    // Killed the moment the install is reported: the snapshot is current,
    // the log purge may or may not have happened.
    cluster.restart(follower);
    log_shows(
        &cluster,
        follower,
        "snapshot installed",
        Duration::from_secs(120),
    )
    .await;
    cluster.kill9(follower);
    cluster.restart(follower);
    cluster.wait_ready(follower, Duration::from_secs(120)).await;
    everyone_holds(&mut cluster, &acked).await;

    // The leader killed right after it built a snapshot (the purge of its
    // log follows the build).
    let built = cluster.node(leader).log().matches("snapshot built").count();
    let mut round = 0;
    while cluster.node(leader).log().matches("snapshot built").count() == built {
        assert!(round < 20, "the leader built no new snapshot");
        let apis = apis_of(&mut cluster);
        acked.extend(write_leases(&apis, &format!("more-{round}"), 10, 2, None).await);
        round += 1;
    }
    cluster.kill9(leader);
    cluster.restart(leader);
    cluster.wait_ready(leader, Duration::from_secs(120)).await;
    acked.extend(write_leases(&apis_of(&mut cluster), "after", 5, 1, None).await);
    everyone_holds(&mut cluster, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_installs_with_memory_bounded_by_the_state() {
    // A 16 MiB snapshot here; the 330 MB run is the `snapshot_memory`
    // program. Collecting the snapshot in memory (as keel once did) costs
    // the follower several copies of it on top of the state; streamed to
    // disk, its peak stays within the leader's footprint for the same
    // state plus one copy's worth of slack.
    let f = measure_install(16 << 20, 50).await;
    println!("{f:?}");
    assert!(f.snapshot_bytes >= 16 << 20, "{f:?}");
    assert!(
        f.follower_peak_rss < f.leader_rss + f.snapshot_bytes,
        "follower peak {} vs leader {} + snapshot {}",
        f.follower_peak_rss,
        f.leader_rss,
        f.snapshot_bytes
    );
}

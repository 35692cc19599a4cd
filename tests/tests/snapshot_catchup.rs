//! Catch-up through a snapshot: a follower that was down while the leader
//! compacted its log cannot be sent the entries it missed (they are gone),
//! so the leader must stream it a snapshot, which it installs before
//! following the log again.
//!
//! The cluster runs with `--snapshot-threshold 50` (a snapshot every 50
//! applied entries, at most 50 entries kept behind it), so a few hundred
//! writes while the follower is down purge everything it lacks. The
//! follower's log must show a snapshot install, and afterwards every node
//! must hold the same lease set, read locally.
//!
//! The second test makes the state, and so the snapshot, several megabytes
//! (leases carrying 32 KiB of metadata each), to prove a large snapshot
//! streams over the peer link and installs, not just a toy one.

use std::time::{Duration, Instant};

use keel_tests::workload::{heavy_metadata, lease_names, write_leases};
use keel_tests::{Cluster, eventually};
use serde_json::Value;

/// The `bytes=` of the first "installing snapshot from leader" line of a
/// node's log, if any.
fn installed_snapshot_bytes(log: &str) -> Option<u64> {
    log.lines()
        .find(|l| l.contains("installing snapshot from leader"))
        .and_then(|l| l.split_whitespace().find_map(|f| f.strip_prefix("bytes=")))
        .and_then(|b| b.parse().ok())
}

/// The largest `last_log_index` among the "snapshot built" lines of a log.
fn last_snapshot_index(log: &str) -> Option<u64> {
    log.lines()
        .filter(|l| l.contains("snapshot built"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("last_log_index="))
                .map(|v| {
                    v.trim_start_matches("Some(")
                        .trim_end_matches(')')
                        .to_string()
                })
        })
        .filter_map(|v| v.parse().ok())
        .max()
}

/// Kills a follower, writes `count` leases, restarts it, and checks that it
/// caught up through a snapshot to the same lease set as the others.
/// Returns the size of the snapshot it installed.
async fn catch_up_through_snapshot(count: usize, parallel: usize, metadata: Option<Value>) -> u64 {
    let mut cluster = Cluster::builder(3)
        .arg("--snapshot-threshold")
        .arg("50")
        .start()
        .await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let mut acked = write_leases(&cluster.apis(), "before", 20, 2, metadata.as_ref()).await;
    cluster.wait_caught_up(Duration::from_secs(30)).await;
    let follower_applied = cluster.api(follower).get_ok("/v1/cluster").await["applied_index"]
        .as_u64()
        .unwrap();

    cluster.kill9(follower);
    let started = Instant::now();
    acked.extend(
        write_leases(
            &cluster.apis(),
            "while-down",
            count,
            parallel,
            metadata.as_ref(),
        )
        .await,
    );
    println!(
        "wrote {count} leases in {:?} with node {follower} down",
        started.elapsed()
    );

    // The leader must have compacted past what the follower holds. It
    // purges only entries no replication stream still has in flight, so
    // the proof is the leader itself trying to send the dead follower a
    // snapshot: it does that only once the entries the follower needs are
    // gone. Keep writing (bounded) until it does.
    let wanted = format!("sending snapshot target={follower}");
    let mut extra = 0;
    while !cluster.node(leader).log().contains(&wanted) {
        assert!(
            extra < 40 && started.elapsed() < Duration::from_secs(120),
            "the leader never compacted past node {follower} (applied {follower_applied}); last snapshot at {:?}\n{}",
            last_snapshot_index(&cluster.node(leader).log()),
            cluster.node(leader).log_tail(30)
        );
        acked.extend(
            write_leases(
                &cluster.apis(),
                &format!("more-{extra}"),
                25,
                parallel,
                metadata.as_ref(),
            )
            .await,
        );
        extra += 1;
    }
    let snapshot_at = last_snapshot_index(&cluster.node(leader).log()).unwrap_or(0);
    println!(
        "leader {leader} compacted up to index {snapshot_at} and tried to send node {follower} a snapshot \
         ({extra} extra batches of writes needed)"
    );
    assert!(
        snapshot_at > follower_applied + 50,
        "snapshot at {snapshot_at}, follower applied {follower_applied}"
    );

    cluster.restart(follower);
    let restarted = Instant::now();
    cluster.wait_ready(follower, Duration::from_secs(120)).await;
    let follower_api = cluster.api(follower);
    let log_handle = cluster.node(follower).log_path.clone();
    let bytes = eventually(
        Duration::from_secs(60),
        "the follower installing a snapshot",
        || {
            let path = log_handle.clone();
            async move {
                let log = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
                let bytes =
                    installed_snapshot_bytes(&log).ok_or("no snapshot install in its log yet")?;
                if log.contains("snapshot installed") {
                    Ok(bytes)
                } else {
                    Err(format!("a {bytes}-byte snapshot is being installed"))
                }
            }
        },
    )
    .await;

    // Converged: the same leases everywhere, read locally after catch-up.
    acked.extend(write_leases(&cluster.apis(), "after", 5, 1, None).await);
    cluster.wait_caught_up(Duration::from_secs(60)).await;
    println!(
        "node {follower} installed a {bytes}-byte snapshot and caught up {:?} after restart",
        restarted.elapsed()
    );
    for id in 1..=3 {
        let held = lease_names(&cluster.api(id), "local").await.unwrap();
        assert_eq!(
            held.len(),
            acked.len(),
            "node {id} holds {} leases, {} acknowledged",
            held.len(),
            acked.len()
        );
        assert_eq!(
            held, acked,
            "node {id} differs from the acknowledged writes"
        );
    }
    // The restarted follower serves what it got through the snapshot.
    let sample = acked.keys().next().unwrap();
    let lease = follower_api
        .get_ok(&format!("/v1/leases/{sample}?consistency=local"))
        .await;
    assert_eq!(
        lease["name"].as_str(),
        acked.get(sample).map(String::as_str)
    );
    if let Some(m) = &metadata {
        let heavy = acked
            .iter()
            .find(|(_, n)| n.starts_with("while-down"))
            .unwrap()
            .0;
        let lease = follower_api
            .get_ok(&format!("/v1/leases/{heavy}?consistency=local"))
            .await;
        assert_eq!(
            &lease["metadata"], m,
            "metadata did not survive the snapshot"
        );
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_down_during_compaction_catches_up_through_a_snapshot() {
    let bytes = catch_up_through_snapshot(300, 4, None).await;
    assert!(bytes > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_megabyte_snapshot_streams_and_installs() {
    // 32 entries of 1000 bytes: about 32 KB of state per lease, so 250
    // leases make a snapshot of about 8 MB.
    let metadata = heavy_metadata("snap", 32, 1000);
    let bytes = catch_up_through_snapshot(250, 4, Some(metadata)).await;
    assert!(
        bytes >= 5 * 1024 * 1024,
        "the snapshot was only {bytes} bytes; the test wants several MB"
    );
}

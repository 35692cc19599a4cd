//! Installing a large snapshot with bounded memory: a follower is killed,
//! the leader grows its state (leases with heavy metadata) until its
//! snapshot passes a size, the follower restarts with no state and catches
//! up through that snapshot, and its peak resident memory (`VmHWM`) is
//! read from `/proc` once the install is done.
//!
//! Shared by the CI test (`storage_faults`, a small snapshot) and the
//! `snapshot_memory` program (the full-size run that prints the figures).

use std::time::{Duration, Instant};

use crate::workload::heavy_metadata;
use crate::{Api, Cluster, eventually};
use serde_json::{Value, json};

/// What one run measured.
#[derive(Debug, Clone)]
pub struct InstallFigures {
    /// Bytes of the snapshot the follower installed.
    pub snapshot_bytes: u64,
    /// Leases in the state.
    pub leases: usize,
    /// The follower's peak resident memory, from start to installed.
    pub follower_peak_rss: u64,
    /// The follower's resident memory right after the install.
    pub follower_rss: u64,
    /// The leader's resident memory (it holds the same state).
    pub leader_rss: u64,
    /// How long the follower took from restart to "snapshot installed".
    pub install_time: Duration,
}

/// A field of `/proc/<pid>/status` in bytes (`VmHWM`, `VmRSS`).
pub fn proc_status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The `bytes=` of the last "snapshot built" line of a log.
fn built_snapshot_bytes(log: &str) -> Option<u64> {
    log.lines()
        .rev()
        .find(|l| l.contains("snapshot built"))
        .and_then(|l| l.split_whitespace().find_map(|f| f.strip_prefix("bytes=")))
        .and_then(|b| b.parse().ok())
}

async fn grant_batch(apis: &[Api], from: usize, count: usize, parallel: usize, metadata: &Value) {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..parallel {
        let api = apis[worker % apis.len()].clone();
        let metadata = metadata.clone();
        tasks.spawn(async move {
            for n in (from + worker..from + count).step_by(parallel) {
                let body = json!({"ttl": "24h", "name": format!("big-{n}"), "metadata": metadata});
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let r = api.post("/v1/leases", &body).await;
                    match r {
                        Ok(r) if r.status == 201 => break,
                        other if Instant::now() > deadline => {
                            panic!("grant big-{n}: {other:?}")
                        }
                        _ => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("grant worker");
    }
}

/// Runs the scenario until the leader's snapshot holds at least
/// `min_snapshot_bytes`, with a snapshot every `threshold` entries.
pub async fn measure_install(min_snapshot_bytes: u64, threshold: u64) -> InstallFigures {
    let mut cluster = Cluster::builder(3)
        .arg("--snapshot-threshold")
        .arg(&threshold.to_string())
        .start()
        .await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    cluster.kill9(follower);
    let apis: Vec<Api> = cluster
        .running()
        .into_iter()
        .map(|id| cluster.api(id))
        .collect();
    // About 32 KB of state per lease.
    let metadata = heavy_metadata("mem", 32, 1000);
    let mut leases = 0;
    let step = threshold as usize;
    let started = Instant::now();
    loop {
        grant_batch(&apis, leases, step, 8, &metadata).await;
        leases += step;
        let built = built_snapshot_bytes(&cluster.node(leader).log()).unwrap_or(0);
        if built >= min_snapshot_bytes && cluster.node(leader).log().contains("sending snapshot") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "the state did not grow to {min_snapshot_bytes} bytes in time (snapshot {built} bytes)"
        );
    }
    println!(
        "wrote {leases} leases in {:?}; node {follower} down",
        started.elapsed()
    );

    cluster.restart(follower);
    let restarted = Instant::now();
    let log_path = cluster.node(follower).log_path.clone();
    let snapshot_bytes = eventually(
        Duration::from_secs(900),
        "the follower installing the snapshot",
        || {
            let path = log_path.clone();
            async move {
                let log = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
                if !log.contains("snapshot installed") {
                    return Err("no snapshot installed yet".to_string());
                }
                log.lines()
                    .find(|l| l.contains("installing snapshot from leader"))
                    .and_then(|l| l.split_whitespace().find_map(|f| f.strip_prefix("bytes=")))
                    .and_then(|b| b.parse::<u64>().ok())
                    .ok_or_else(|| "no install line".to_string())
            }
        },
    )
    .await;
    let install_time = restarted.elapsed();
    let pid = cluster.node(follower).pid().expect("follower running");
    let follower_peak_rss = proc_status_bytes(pid, "VmHWM").expect("VmHWM");
    let follower_rss = proc_status_bytes(pid, "VmRSS").expect("VmRSS");
    let leader_pid = cluster.node(leader).pid().expect("leader running");
    let leader_rss = proc_status_bytes(leader_pid, "VmRSS").expect("VmRSS");
    cluster.wait_caught_up(Duration::from_secs(300)).await;
    let held = crate::workload::lease_names(&cluster.api(follower), "local")
        .await
        .expect("follower leases");
    assert_eq!(held.len(), leases, "the follower holds every lease");
    InstallFigures {
        snapshot_bytes,
        leases,
        follower_peak_rss,
        follower_rss,
        leader_rss,
        install_time,
    }
}

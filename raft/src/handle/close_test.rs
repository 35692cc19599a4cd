//! Regression test: a control plane that is shut down and dropped lets go
//! of the database, so the data directory can be opened again in the same
//! process (RocksDB's LOCK proves the close), with its snapshot intact.

use std::collections::BTreeMap;
use std::time::Duration;

use tempfile::TempDir;

use super::ControlPlane;
use crate::settings::RaftSettings;
use crate::store::Storage;
use crate::transport::{ClusterSecret, OneClient, PeerClient};
use crate::types::Member;

async fn start(storage: &Storage) -> ControlPlane {
    // reqwest is built without a TLS provider of its own; the node installs
    // this one at start.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let peers = PeerClient::new(
        std::sync::Arc::new(OneClient {
            http: reqwest::Client::new(),
            scheme: "http",
        }),
        ClusterSecret::new("secret"),
        storage.identity().clone(),
        1,
    );
    let member = Member {
        api_addr: "127.0.0.1:1".into(),
        peer_addr: "127.0.0.1:2".into(),
    };
    let clock = crate::skew::ClockMonitor::new(std::time::Duration::from_millis(500));
    ControlPlane::start(RaftSettings::for_node(1), storage, peers, member, clock)
        .await
        .expect("start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_control_plane_closes_the_database() {
    let dir = TempDir::new().unwrap();
    let storage = crate::store::open_unsealed(dir.path());
    let cp = start(&storage).await;
    cp.initialize(BTreeMap::from([(1, cp.advertise().clone())]))
        .await
        .unwrap();
    // A snapshot needs something applied: the leader's first entry.
    cp.wait_for(Duration::from_secs(10), |s| {
        s.leader == Some(1) && s.applied.is_some() && s.applied == s.last_log_index
    })
    .await
    .unwrap();
    cp.trigger_snapshot().await.unwrap();
    let snapshot = cp
        .wait_for(Duration::from_secs(10), |s| s.snapshot.is_some())
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", cp.status()))
        .snapshot;
    assert!(
        storage.handles() > 1,
        "raft holds the database while running"
    );

    cp.shutdown().await.unwrap();
    drop(cp);
    assert_eq!(storage.wait_sole_handle(Duration::from_secs(5)).await, 1);
    drop(storage);

    // Reopening in the same process fails on RocksDB's LOCK unless the
    // first instance really closed.
    let storage = crate::store::open_unsealed(dir.path());
    let cp = start(&storage).await;
    let status = cp
        .wait_for(Duration::from_secs(10), |s| s.applied >= snapshot)
        .await
        .unwrap();
    assert_eq!(
        status.snapshot, snapshot,
        "the snapshot survived the restart"
    );
    cp.shutdown().await.unwrap();
}

/// A restarted node must know its own log from the first peer call on:
/// before openraft publishes its first metrics they say the log is empty,
/// and a leader's (true) claim that this node acknowledged index N would
/// then look like a lost log, and retire a healthy data directory.
#[tokio::test(flavor = "current_thread")]
async fn a_restarted_node_knows_its_log_before_raft_reports_it() {
    let dir = TempDir::new().unwrap();
    let last = {
        let storage = crate::store::open_unsealed(dir.path());
        let cp = start(&storage).await;
        cp.initialize(BTreeMap::from([(1, cp.advertise().clone())]))
            .await
            .unwrap();
        let st = cp
            .wait_for(Duration::from_secs(10), |s| {
                s.leader == Some(1) && s.applied.is_some() && s.applied == s.last_log_index
            })
            .await
            .unwrap();
        cp.shutdown().await.unwrap();
        drop(cp);
        storage.wait_sole_handle(Duration::from_secs(5)).await;
        st.last_log_index.unwrap()
    };
    assert!(last > 0);
    let storage = crate::store::open_unsealed(dir.path());
    // On a current-thread runtime Raft's core has not run yet when start
    // returns: nothing has been reported.
    let cp = start(&storage).await;
    assert_eq!(
        cp.check_acknowledged(last).map_err(|e| e.to_string()),
        Ok(())
    );
    assert!(
        cp.check_acknowledged(last + 1).is_err(),
        "a real reversion is still caught"
    );
}

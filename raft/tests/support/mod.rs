//! An in-process cluster: real control planes on RocksDB in temporary
//! directories, joined by a [`MemoryNet`] instead of sockets, so a whole
//! cluster (elections, replication, forwarding, snapshots) runs inside one
//! test, with faults drawn from a seed.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use keel_raft::command::Command;
use keel_raft::settings::RaftSettings;
use keel_raft::skew::ClockMonitor;
use keel_raft::transport::{Faults, MemoryNet, PeerClient};
use keel_raft::types::raft_id;
use keel_raft::{Caller, ControlPlane, Member, Storage, Written};
use tempfile::TempDir;
use tokio::time::Instant;

/// One node of the in-process cluster.
pub struct MemNode {
    /// Its name (`--node-id`).
    pub name: u64,
    /// Its peer address on the net.
    pub addr: String,
    /// Its control plane.
    pub cp: ControlPlane,
    _storage: Storage,
}

/// A cluster of [`MemNode`]s on one [`MemoryNet`].
pub struct MemCluster {
    /// The links between the nodes.
    pub net: MemoryNet,
    /// The nodes, named 1..=n.
    pub nodes: Vec<MemNode>,
    _dir: TempDir,
}

/// The seed of this run: `KEEL_SEED` if set, else a fresh one. Printed, so
/// a failing run names the seed to replay it with.
pub fn seed() -> u64 {
    let seed = std::env::var("KEEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("in-process cluster seed: {seed} (replay with KEEL_SEED={seed})");
    seed
}

impl MemCluster {
    /// Forms an `n`-node cluster (without faults), then turns `faults` on.
    /// `tune` adjusts each node's Raft settings.
    pub async fn start(
        n: u64,
        seed: u64,
        faults: Faults,
        tune: impl Fn(&mut RaftSettings),
    ) -> MemCluster {
        let dir = TempDir::new().expect("temp dir");
        let net = MemoryNet::new(seed, Faults::default());
        let mut nodes = Vec::new();
        for name in 1..=n {
            let addr = format!("node-{name}:7001");
            let storage = Storage::open(&dir.path().join(name.to_string())).expect("storage");
            storage
                .keeper()
                .unseal_with_file(b"in-process test clusters share this key file")
                .expect("unseals");
            let peers = PeerClient::over(net.transport(&addr), storage.identity().clone());
            let clock = ClockMonitor::new(Duration::from_millis(500));
            // Every node runs on this process's clock: it agrees with
            // itself, which is what the prober would find.
            clock.assess(&[], true);
            let mut settings = RaftSettings::for_node(raft_id(name, 1));
            tune(&mut settings);
            let member = Member {
                api_addr: format!("node-{name}:7000"),
                peer_addr: addr.clone(),
            };
            let cp = ControlPlane::start(settings, &storage, peers, member, clock)
                .await
                .expect("raft starts");
            net.attach(&addr, cp.clone());
            nodes.push(MemNode {
                name,
                addr,
                cp,
                _storage: storage,
            });
        }
        let members: BTreeMap<_, _> = nodes
            .iter()
            .map(|n| (n.cp.node_id(), n.cp.advertise().clone()))
            .collect();
        nodes[0].cp.initialize(members).await.expect("initialize");
        let cluster = MemCluster {
            net,
            nodes,
            _dir: dir,
        };
        let leader = cluster.leader(Duration::from_secs(20)).await;
        cluster.name_cluster(leader).await.expect("cluster id");
        cluster.converge(Duration::from_secs(20)).await;
        cluster.net.set_faults(faults);
        cluster
    }

    /// Writes the cluster's id through node `i` (the first write sets it;
    /// any later one changes nothing, so it also serves as a no-op write).
    pub async fn name_cluster(&self, i: usize) -> Result<String, keel_raft::Error> {
        let written: Written<String> = self.nodes[i]
            .cp
            .apply(
                Command::InitCluster {
                    cluster_id: "in-memory".into(),
                },
                &Caller::system(),
            )
            .await?;
        Ok(written.value)
    }

    /// The index of the node every node agrees leads, waiting up to
    /// `within`.
    pub async fn leader(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let leaders: Vec<_> = self.nodes.iter().map(|n| n.cp.status().leader).collect();
            if let Some(Some(id)) = leaders.first()
                && leaders.iter().all(|l| *l == Some(*id))
                && let Some(i) = self.nodes.iter().position(|n| n.cp.node_id() == *id)
                && self.nodes[i].cp.is_leader()
            {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader within {within:?}: {leaders:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A node other than `not` that leads, as the nodes other than `not`
    /// see it, waiting up to `within`.
    pub async fn leader_without(&self, not: usize, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            if let Some(i) =
                (0..self.nodes.len()).find(|i| *i != not && self.nodes[*i].cp.is_leader())
            {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "no leader besides node {} within {within:?}",
                self.nodes[not].name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every node applied everything the leader holds.
    pub async fn converge(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let status: Vec<_> = self.nodes.iter().map(|n| n.cp.status()).collect();
            let leader = status.iter().find(|s| s.leader == Some(s.node_id));
            if let Some(leader) = leader
                && status
                    .iter()
                    .all(|s| s.applied.is_some() && s.applied == leader.last_log_index)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nodes did not converge within {within:?}: {:?}",
                status
                    .iter()
                    .map(|s| (s.node_id, s.leader, s.last_log_index, s.applied))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A node's whole state, encoded as a snapshot encodes it.
    pub fn state_bytes(&self, i: usize) -> Vec<u8> {
        let state = self.nodes[i].cp.local(|s| s.clone());
        keel_raft::store::encode_state(&state).expect("encodes")
    }

    /// Stops every node.
    pub async fn stop(self) {
        for node in &self.nodes {
            self.net.detach(&node.addr);
            let _ = node.cp.shutdown().await;
        }
    }
}

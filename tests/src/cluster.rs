//! A cluster of real `keel` processes on loopback.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::api::Api;
use crate::process::Node;
use crate::{eventually, free_port};

/// The admin token every test cluster uses.
pub const TOKEN: &str = "test-admin-token-0123456789";
/// The cluster secret every test cluster uses (peers present it on
/// `/raft/*`; tests use it to speak to the peer listener directly).
pub const CLUSTER_SECRET: &str = "test-cluster-secret-0123456789";
/// The auto-unseal key every test cluster's nodes share (a file, as a
/// mounted Kubernetes or compose secret would be).
pub const UNSEAL_KEY: &str = "test-unseal-key-0123456789abcdef0123456789";
const SECRET: &str = CLUSTER_SECRET;

/// Options of a test cluster.
pub struct ClusterBuilder {
    size: u64,
    extra: Vec<String>,
    env: Vec<(String, String)>,
    wait_ready: bool,
    spawn: bool,
    auto_unseal: bool,
}

impl ClusterBuilder {
    /// Nodes without an auto-unseal key file: they start sealed and wait
    /// for `init` and key shares (combine with [`ClusterBuilder::no_wait`]).
    pub fn key_shares(mut self) -> Self {
        self.auto_unseal = false;
        self
    }

    /// Extra `keel server` arguments for every node.
    pub fn arg(mut self, arg: &str) -> Self {
        self.extra.push(arg.to_string());
        self
    }

    /// An environment variable for every node.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Do not wait for readiness in `start`.
    pub fn no_wait(mut self) -> Self {
        self.wait_ready = false;
        self
    }

    /// Only describe the nodes (ports, data dirs, arguments); start none.
    /// The test starts each with [`Cluster::spawn`], after preparing
    /// whatever must watch the process from its first instant.
    pub fn no_spawn(mut self) -> Self {
        self.spawn = false;
        self.wait_ready = false;
        self
    }

    /// Describes, spawns and (unless `no_wait`) waits for every node.
    pub async fn start(self) -> Cluster {
        let dir = TempDir::new().expect("temp dir");
        let token_file = dir.path().join("admin-token");
        let secret_file = dir.path().join("cluster-secret");
        std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token file");
        std::fs::write(&secret_file, SECRET).expect("secret file");
        std::fs::write(dir.path().join("unseal-key"), UNSEAL_KEY).expect("unseal key file");
        let ports: BTreeMap<u64, (u16, u16)> = (1..=self.size)
            .map(|id| (id, (free_port(), free_port())))
            .collect();
        let peers = ports
            .iter()
            .map(|(id, (_, p))| format!("{id}=127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            token_file,
            secret_file,
            nodes: Vec::new(),
            extra: self.extra.clone(),
            auto_unseal: self.auto_unseal,
            dir,
        };
        for (id, (api, peer)) in &ports {
            let mut args = cluster.base_args(*id, *api, *peer);
            args.extend(["--peers".to_string(), peers.clone()]);
            let mut node = cluster.describe(*id, *api, *peer, args);
            node.env = self.env.clone();
            cluster.nodes.push(node);
        }
        if self.spawn {
            for node in &mut cluster.nodes {
                node.spawn();
            }
        }
        if self.wait_ready {
            let ids: Vec<u64> = cluster.nodes.iter().map(|n| n.id).collect();
            for id in ids {
                cluster.wait_ready(id, Duration::from_secs(60)).await;
            }
        }
        cluster
    }
}

/// Running nodes plus what is needed to add and restart nodes.
pub struct Cluster {
    /// Node processes, in id order.
    pub nodes: Vec<Node>,
    /// File holding the admin token.
    pub token_file: PathBuf,
    /// File holding the cluster secret.
    pub secret_file: PathBuf,
    extra: Vec<String>,
    auto_unseal: bool,
    dir: TempDir,
}

impl Cluster {
    /// A builder for `size` nodes with ids 1..=size.
    pub fn builder(size: u64) -> ClusterBuilder {
        ClusterBuilder {
            size,
            extra: Vec::new(),
            env: Vec::new(),
            wait_ready: true,
            spawn: true,
            auto_unseal: true,
        }
    }

    /// Starts `size` nodes and waits until every one is ready.
    pub async fn start(size: u64) -> Cluster {
        Self::builder(size).start().await
    }

    /// The benchmarks' cluster: three nodes that hold a million leases of
    /// up to 48 h between snapshots of 200,000 entries.
    pub async fn for_benchmarks() -> Cluster {
        Self::builder(3)
            .arg("--snapshot-threshold")
            .arg("200000")
            .arg("--lease-max-ttl")
            .arg("48h")
            .start()
            .await
    }

    /// The temp directory holding data dirs and logs.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The common arguments of a node.
    pub fn base_args(&self, id: u64, api: u16, peer: u16) -> Vec<String> {
        let data = self.dir.path().join(format!("node-{id}"));
        let mut args: Vec<String> = vec![
            "server".into(),
            "--node-id".into(),
            id.to_string(),
            "--data-dir".into(),
            data.display().to_string(),
            "--api-listen".into(),
            format!("127.0.0.1:{api}"),
            "--peer-listen".into(),
            format!("127.0.0.1:{peer}"),
            "--admin-token-file".into(),
            self.token_file.display().to_string(),
            "--cluster-secret-file".into(),
            self.secret_file.display().to_string(),
            "--log-level".into(),
            "info,openraft=warn".into(),
        ];
        if self.auto_unseal {
            args.extend([
                "--unseal-key-file".into(),
                self.dir.path().join("unseal-key").display().to_string(),
            ]);
        }
        args.extend(self.extra.iter().cloned());
        args
    }

    /// Describes a node with these arguments (not started).
    pub fn describe(&self, id: u64, api: u16, peer: u16, args: Vec<String>) -> Node {
        Node::new(
            id,
            format!("127.0.0.1:{api}"),
            format!("127.0.0.1:{peer}"),
            self.dir.path().join(format!("node-{id}")),
            self.dir.path().join(format!("node-{id}.log")),
            args,
            TOKEN.to_string(),
        )
    }

    /// Adds (and starts) a node that joins through the current leader.
    pub async fn join_node(&mut self, id: u64) -> &mut Node {
        let leader = self.leader().await;
        let via = self.node(leader).peer_addr.clone();
        let (api, peer) = (free_port(), free_port());
        let mut args = self.base_args(id, api, peer);
        args.extend(["--join".to_string(), via]);
        let mut node = self.describe(id, api, peer, args);
        node.spawn();
        self.nodes.push(node);
        self.nodes.last_mut().expect("just pushed")
    }

    /// A node by id.
    pub fn node(&self, id: u64) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .expect("no such node")
    }

    /// A node by id, mutably.
    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .expect("no such node")
    }

    /// A client of a node with the admin token.
    pub fn api(&self, id: u64) -> Api {
        self.node(id).api()
    }

    /// A client of a node's peer listener carrying the cluster secret: as
    /// another node would with `--peer-auth secret`; under mutual TLS (the
    /// default) as a caller without a node certificate.
    pub fn peer_api(&self, id: u64) -> Api {
        let addr = &self.node(id).peer_addr;
        if self.peer_auth_secret() {
            Api::new(addr, Some(CLUSTER_SECRET))
        } else {
            Api::tls_stranger(addr, Some(CLUSTER_SECRET))
        }
    }

    /// Whether the nodes authenticate peers by the cluster secret (over
    /// plain HTTP) rather than by node certificates.
    pub fn peer_auth_secret(&self) -> bool {
        self.extra
            .windows(2)
            .any(|w| w[0] == "--peer-auth" && w[1] == "secret")
    }

    /// Clients of every running node.
    pub fn apis(&mut self) -> Vec<Api> {
        self.running().into_iter().map(|id| self.api(id)).collect()
    }

    /// Ids of the nodes whose process runs.
    pub fn running(&mut self) -> Vec<u64> {
        self.nodes
            .iter_mut()
            .filter_map(|n| n.is_running().then_some(n.id))
            .collect()
    }

    /// Waits until a node answers `/readyz` 200.
    pub async fn wait_ready(&self, id: u64, deadline: Duration) {
        let api = self.api(id);
        let node = self.node(id);
        let until = tokio::time::Instant::now() + deadline;
        loop {
            if let Ok(r) = api.get("/readyz?verbose").await
                && r.status == 200
            {
                return;
            }
            if tokio::time::Instant::now() >= until {
                panic!(
                    "node {id} not ready within {deadline:?}\n{}",
                    node.log_tail(60)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The leader every running node agrees on.
    pub async fn leader(&mut self) -> u64 {
        let apis: Vec<Api> = self.running().into_iter().map(|id| self.api(id)).collect();
        eventually(Duration::from_secs(30), "an agreed leader", || {
            let apis = apis.clone();
            async move {
                let mut seen = Vec::new();
                for api in &apis {
                    let r = api.get("/v1/cluster?consistency=local").await?;
                    seen.push(r.body["leader"].clone());
                }
                match seen.first() {
                    Some(Value::Number(n)) if seen.iter().all(|s| s == &seen[0]) => {
                        Ok(n.as_u64().unwrap_or(0))
                    }
                    _ => Err(format!("leaders seen: {seen:?}")),
                }
            }
        })
        .await
    }

    /// Kills a node with SIGKILL.
    pub fn kill9(&mut self, id: u64) {
        self.node_mut(id).kill9();
    }

    /// Restarts a stopped node with its original arguments.
    pub fn restart(&mut self, id: u64) {
        self.node_mut(id).spawn();
    }

    /// Starts a described node for the first time (see
    /// [`ClusterBuilder::no_spawn`]).
    pub fn spawn(&mut self, id: u64) {
        self.node_mut(id).spawn();
    }

    /// Waits until every running node has applied everything the leader
    /// had committed when this was called.
    pub async fn wait_caught_up(&mut self, deadline: Duration) {
        let leader = self.leader().await;
        let target = self.api(leader).get_ok("/v1/cluster").await["commit_index"]
            .as_u64()
            .expect("leader's commit_index");
        for id in self.running() {
            let api = self.api(id);
            eventually(
                deadline,
                &format!("node {id} applying index {target}"),
                || {
                    let api = api.clone();
                    async move {
                        let v = api.get("/v1/cluster?consistency=local").await?.body;
                        match v["applied_index"].as_u64() {
                            Some(applied) if applied >= target => Ok(()),
                            other => Err(format!("applied {other:?}")),
                        }
                    }
                },
            )
            .await;
        }
    }

    /// Every node's log tail.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.log_tail(80))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for node in &mut self.nodes {
            node.kill9();
        }
        // Debugging aid: KEEL_TEST_KEEP=1 keeps data dirs and logs.
        if std::env::var_os("KEEL_TEST_KEEP").is_some() {
            let dir = std::mem::replace(&mut self.dir, TempDir::new().expect("temp dir"));
            eprintln!("kept the cluster's files in {}", dir.keep().display());
        }
    }
}

//! A cluster whose nodes are configured by a TOML file alone
//! (`keel server --config FILE`), for the reload tests: the file, and the
//! token file it names by a *relative* path, can then be edited and
//! re-read with `POST /v1/sys/reload` or SIGHUP.
//!
//! [`crate::Cluster`] passes `--admin-token-file` as a flag, and flags win
//! over the file, so it cannot exercise reloading the file's own settings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;

use crate::api::Api;
use crate::cluster::UNSEAL_KEY;
use crate::free_port;
use crate::process::Node;

/// The admin token the nodes start with.
pub const FIRST_TOKEN: &str = "reload-first-token-0123456789";

/// Nodes started from config files in one temp directory.
pub struct ConfigCluster {
    /// The processes, in id order.
    pub nodes: Vec<Node>,
    /// The token file every config names as `admin_token_file = "admin-tokens"`.
    pub token_file: PathBuf,
    dir: TempDir,
}

impl ConfigCluster {
    /// Writes one config file per node and starts `size` nodes; waits until
    /// every one is ready.
    pub async fn start(size: u64) -> ConfigCluster {
        let dir = TempDir::new().expect("temp dir");
        let token_file = dir.path().join("admin-tokens");
        std::fs::write(&token_file, format!("{FIRST_TOKEN}\n")).expect("token file");
        std::fs::write(
            dir.path().join("cluster-secret"),
            "reload-cluster-secret-0123456789",
        )
        .expect("secret");
        std::fs::write(dir.path().join("unseal-key"), UNSEAL_KEY).expect("unseal key");
        let ports: BTreeMap<u64, (u16, u16)> = (1..=size)
            .map(|id| (id, (free_port(), free_port())))
            .collect();
        let peers = ports
            .iter()
            .map(|(id, (_, p))| format!("{id}=127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = ConfigCluster {
            nodes: Vec::new(),
            token_file,
            dir,
        };
        for (id, (api, peer)) in &ports {
            let config = cluster.config_path(*id);
            let text = format!(
                "# keel node {id}; paths are relative to this file\n\
                 node_id = {id}\n\
                 data_dir = \"node-{id}\"\n\
                 api_listen = \"127.0.0.1:{api}\"\n\
                 peer_listen = \"127.0.0.1:{peer}\"\n\
                 peers = \"{peers}\"\n\
                 admin_token_file = \"admin-tokens\"\n\
                 cluster_secret_file = \"cluster-secret\"\n\
                 unseal_key_file = \"unseal-key\"\n\
                 log_level = \"info,openraft=warn\"\n"
            );
            std::fs::write(&config, text).expect("config file");
            let node = Node::new(
                *id,
                format!("127.0.0.1:{api}"),
                format!("127.0.0.1:{peer}"),
                cluster.dir.path().join(format!("node-{id}")),
                cluster.dir.path().join(format!("node-{id}.log")),
                vec![
                    "server".into(),
                    "--config".into(),
                    config.display().to_string(),
                ],
                FIRST_TOKEN.to_string(),
            );
            cluster.nodes.push(node);
        }
        for node in &mut cluster.nodes {
            node.spawn();
        }
        for id in 1..=size {
            cluster.wait_ready(id, Duration::from_secs(60)).await;
        }
        cluster
    }

    /// The config file of a node.
    pub fn config_path(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("node-{id}.toml"))
    }

    /// A node.
    pub fn node(&self, id: u64) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .expect("no such node")
    }

    /// A client of a node carrying `token`.
    pub fn api_with(&self, id: u64, token: &str) -> Api {
        Api::new(&self.node(id).api_addr, Some(token))
    }

    /// Waits until a node answers `/readyz` 200.
    pub async fn wait_ready(&self, id: u64, deadline: Duration) {
        let api = self.node(id).api();
        let until = tokio::time::Instant::now() + deadline;
        loop {
            if api.get("/readyz").await.is_ok_and(|r| r.status == 200) {
                return;
            }
            if tokio::time::Instant::now() >= until {
                panic!(
                    "node {id} not ready within {deadline:?}\n{}",
                    self.node(id).log_tail(60)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ConfigCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for node in &self.nodes {
                eprintln!("{}", node.log_tail(80));
            }
        }
        for node in &mut self.nodes {
            node.kill9();
        }
    }
}

//! The seal in the node's lifecycle: which keys a node starts with, the
//! gate that holds Raft back until the node is unsealed, and the teardown
//! that seals a running node in the order lesson 1 asks for.
//!
//! - At start the node's [`Keeper`] is sealed. A node with an auto-unseal
//!   key file (or `--dev`, whose key file lives in its data directory)
//!   unseals itself, unless an operator sealed it (that is persisted);
//!   otherwise it waits for key shares (`POST /v1/sys/unseal`).
//! - Raft starts only once the keys are loaded: a sealed node neither
//!   votes nor replicates nor applies, and has nothing to decrypt with.
//! - Sealing a running node: the managers are stopped and awaited and
//!   leadership handed away (the supervisor's seal), then Raft's watchers
//!   and Raft itself stop, the control plane is withdrawn, and only then
//!   are the keys dropped. Each step is an event at `/v1/sys/events`.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use keel_raft::seal::{Keeper, SealConfig};
use keel_raft::transport::PeerClient;
use keel_raft::wire::PeerRpc;
use keel_raft::{ControlPlane, Storage};
use keel_web::events::{EventKind, Source};
use keel_web::{Component, ComponentState, Shared};
use tokio_util::sync::CancellationToken;

use tokio::sync::mpsc::UnboundedReceiver;

use super::stop::Parts;
use crate::config::{Config, UnsealKey};
use crate::control::SealReply;

/// Name of `--dev`'s auto-unseal key file in its data directory.
const DEV_KEY_FILE: &str = "dev-unseal.key";

/// The key a node unseals itself with, if any: the configured key file,
/// or `--dev`'s own (made on first start, readable by the node's user only).
pub fn auto_key(config: &Config) -> anyhow::Result<Option<UnsealKey>> {
    if let Some(key) = &config.unseal_key {
        return Ok(Some(key.clone()));
    }
    if !config.dev {
        return Ok(None);
    }
    let path = config.data_dir.join(DEV_KEY_FILE);
    if !path.exists() {
        let key = keel_raft::seal::keys::Key::random().context("making the dev unseal key")?;
        let hex: String = key.expose().iter().map(|b| format!("{b:02x}")).collect();
        write_private(&path, hex.as_bytes())?;
    }
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
    );
    Ok(Some(UnsealKey(zeroize::Zeroizing::new(
        text.trim().as_bytes().to_vec(),
    ))))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Phase 2's part: hands the keeper to the web state and unseals with the
/// auto-unseal key unless an operator sealed this node.
pub fn open_keys(config: &Config, storage: &Storage, shared: &Shared) -> anyhow::Result<()> {
    let keeper = storage.keeper().clone();
    shared.install_keeper(keeper.clone());
    let operator_sealed = storage.node_meta().sealed()?;
    match auto_key(config)? {
        Some(_) if operator_sealed => {
            tracing::warn!(
                "sealed by an operator before the last stop: staying sealed until `keel operator unseal`"
            );
        }
        Some(key) => {
            keeper
                .unseal_with_file(&key.0)
                .map_err(|e| anyhow::anyhow!("auto-unseal: {e}"))?;
        }
        None => tracing::warn!(
            initialized = keeper.config().is_some(),
            "sealed: waiting for key shares (keel operator init / keel operator unseal)"
        ),
    }
    // Domain requests answer `sealed` (not `not_ready`) while no keys are
    // loaded; a node that unsealed itself is merely starting.
    shared.set_sealed(keeper.is_sealed());
    Ok(())
}

/// Waits until the keys are loaded. `false` if a stop came first. A seal
/// asked meanwhile (one that raced the last seal) is answered at once: the
/// node is sealed, and the request must not linger to seal it again right
/// after the next unseal.
pub async fn wait_for_keys(
    keeper: &Keeper,
    stop: &CancellationToken,
    seal_rx: &mut UnboundedReceiver<SealReply>,
) -> bool {
    let mut sealed = keeper.watch();
    loop {
        if !*sealed.borrow_and_update() {
            return true;
        }
        tokio::select! {
            _ = stop.cancelled() => return false,
            changed = sealed.changed() => if changed.is_err() { return false },
            Some(reply) = seal_rx.recv() => { let _ = reply.send(()); }
        }
    }
}

/// Asks the configured peers for the cluster's seal configuration (a node
/// that was not the one initialized has none). The first answer wins.
pub async fn config_from_peers(config: &Config, peers: &PeerClient) -> Option<SealConfig> {
    let addrs = config
        .peers
        .iter()
        .filter(|(id, _)| **id != config.node_id)
        .map(|(_, addr)| addr.clone())
        .chain(config.join.clone());
    for addr in addrs {
        let reply: Result<Option<SealConfig>, _> = peers
            .call(&addr, PeerRpc::SealConfig, &(), Duration::from_secs(3))
            .await;
        match reply {
            Ok(Some(found)) => return Some(found),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(peer = %addr, error = %e, "no seal configuration from this peer")
            }
        }
    }
    None
}

/// Stops everything that runs on Raft, then Raft, then drops the keys:
/// the second half of a seal (the supervisor already stopped the managers
/// and handed leadership away).
pub async fn unwind_raft(
    parts: &mut Parts,
    keeper: &Keeper,
    peer_tls: Option<&crate::peer_tls::PeerTls>,
) {
    let shared = parts.shared.clone();
    let board = &shared.lifecycle;
    if let Some((supervisor, stop, task)) = parts.supervisor.take() {
        stop.cancel();
        if let Err(e) = task.await {
            tracing::error!(error = %e, "manager supervisor failed while sealing");
        }
        drop(supervisor);
    }
    if let Some(watcher) = parts.tls_watcher.take() {
        watcher.stop().await;
    }
    if let Some(observer) = parts.observer.take() {
        observer.stop().await;
    }
    if let Some(census) = parts.census.take() {
        census.stop().await;
    }
    record(&shared, "seal: managers and watchers stopped");
    if let Some(cp) = parts.cp.take() {
        stop_raft(&shared, cp).await;
    }
    board.set_component(Component::Cluster, ComponentState::Stopped);
    // The node key is stored sealed: it goes with the other keys.
    if let Some(tls) = peer_tls {
        tls.forget();
    }
    keeper.drop_keys();
    record(&shared, "seal: keys dropped from memory");
}

async fn stop_raft(shared: &Shared, cp: ControlPlane) {
    let board = &shared.lifecycle;
    board.set_component(Component::Raft, ComponentState::Stopping);
    shared.withdraw_control_plane();
    match tokio::time::timeout(Duration::from_secs(10), cp.shutdown()).await {
        Ok(Ok(())) => board.set_component(Component::Raft, ComponentState::Stopped),
        Ok(Err(e)) => {
            board.set_component(Component::Raft, ComponentState::Failed);
            tracing::error!(error = %e, "raft shutdown failed while sealing");
        }
        Err(_) => {
            board.set_component(Component::Raft, ComponentState::Failed);
            tracing::error!("raft did not shut down within 10s while sealing");
        }
    }
    record(shared, "seal: raft stopped");
}

fn record(shared: &Shared, what: &str) {
    tracing::info!("{what}");
    shared.events.record(EventKind::Seal, Source::Node, what);
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_dev_key_file_is_made_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(super::DEV_KEY_FILE);
        super::write_private(&path, b"abc").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(super::write_private(&path, b"again").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
    }
}

//! The node's answers to `/v1/sys/seal`, `/unseal`, `/init`,
//! `/rotate-key` and `/reload` (and to SIGHUP): the [`NodeControl`] hooks
//! the API calls.

use std::sync::{Arc, RwLock};

use futures::future::BoxFuture;
use keel_raft::seal::{Keeper, SealError, SealState};
use keel_raft::store::NodeMeta;
use keel_raft::transport::PeerClient;
use keel_web::error::ApiError;
use keel_web::events::{EventKind, Source};
use keel_web::{DrainDeadline, NodeControl, Shared, TlsSlot};
use tokio::sync::{mpsc, oneshot};

use crate::cli::ServerArgs;
use crate::config::Config;
use crate::logging::FilterHandle;
use crate::managers::Supervisor;

/// What reload and seal act on.
pub struct NodeRuntime {
    /// The configuration in force.
    pub config: RwLock<Arc<Config>>,
    /// The flags the node was started with (reload re-reads the file they name).
    pub args: ServerArgs,
    /// Shared web state.
    pub shared: Arc<Shared>,
    /// The manager supervisor, while Raft runs unsealed.
    pub supervisor: RwLock<Option<Arc<Supervisor>>>,
    /// The listeners' TLS configuration, if any.
    pub tls: Option<TlsSlot>,
    /// The log filter.
    pub filter: FilterHandle,
    /// The API listener's drain deadline (the shutdown timeout).
    pub drain: DrainDeadline,
    /// The node's keys.
    pub keeper: Arc<Keeper>,
    /// Node-local facts (the persisted operator seal).
    pub node_meta: NodeMeta,
    /// The peer client (to fetch the seal configuration from peers).
    pub peers: PeerClient,
    /// Mutual TLS between nodes, when keel runs its peer CA.
    pub peer_tls: Option<Arc<crate::peer_tls::PeerTls>>,
    /// Asks the lifecycle to stop Raft and drop the keys.
    pub seal_tx: mpsc::UnboundedSender<SealReply>,
}

/// Told once a seal has dropped the keys.
pub type SealReply = oneshot::Sender<()>;

impl NodeRuntime {
    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn supervisor(&self) -> Option<Arc<Supervisor>> {
        self.supervisor
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Seals: managers stopped and awaited and leadership handed away
    /// (the supervisor), then Raft stopped and the keys dropped (the
    /// lifecycle, which answers once they are gone).
    async fn seal(&self) -> Result<(), ApiError> {
        if self.keeper.is_sealed() {
            return Ok(());
        }
        let Some(supervisor) = self.supervisor() else {
            return Err(ApiError::NotReady(
                "the node is still starting; retry shortly".into(),
            ));
        };
        supervisor.seal().await.map_err(ApiError::Internal)?;
        self.shared.events.record(
            EventKind::Seal,
            Source::Api,
            "seal: managers stopped and joined",
        );
        let (done_tx, done_rx) = oneshot::channel();
        self.seal_tx
            .send(done_tx)
            .map_err(|_| ApiError::ShuttingDown)?;
        done_rx.await.map_err(|_| ApiError::ShuttingDown)?;
        self.shared
            .events
            .record(EventKind::Seal, Source::Api, "sealed by an operator");
        Ok(())
    }

    /// One key share, or the auto-unseal key; clears the operator's seal
    /// once the keys are loaded.
    async fn unseal(&self, share: Option<String>) -> Result<SealState, ApiError> {
        let config = self.config();
        let result = match share {
            Some(share) => {
                if self.keeper.config().is_none()
                    && let Some(found) =
                        crate::lifecycle::seal::config_from_peers(&config, &self.peers).await
                {
                    self.keeper.adopt(found).map_err(seal_error)?;
                }
                self.keeper.submit(&share).map(|_| ())
            }
            None => match crate::lifecycle::seal::auto_key(&config)
                .map_err(|e| ApiError::Internal(format!("{e:#}")))?
            {
                Some(key) => self.keeper.unseal_with_file(&key.0),
                None => {
                    return Err(ApiError::BadRequest(
                        "this node has no auto-unseal key file: give a key share, {\"share\": \"...\"}".into(),
                    ));
                }
            },
        };
        result.map_err(seal_error)?;
        if !self.keeper.is_sealed() {
            self.node_meta
                .set_sealed(false)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            self.shared
                .events
                .record(EventKind::Unseal, Source::Api, "unsealed: keys loaded");
        }
        Ok(self.keeper.state())
    }

    /// Initializes key-share sealing, once per cluster.
    async fn init(&self, shares: u8, threshold: u8) -> Result<Vec<String>, ApiError> {
        let config = self.config();
        if crate::lifecycle::seal::auto_key(&config)
            .map_err(|e| ApiError::Internal(format!("{e:#}")))?
            .is_some()
        {
            return Err(conflict(
                "this node unseals with an auto-unseal key file; there are no key shares to make",
            ));
        }
        if self.keeper.config().is_none()
            && let Some(found) =
                crate::lifecycle::seal::config_from_peers(&config, &self.peers).await
        {
            self.keeper.adopt(found).map_err(seal_error)?;
        }
        let texts = self.keeper.init(shares, threshold).map_err(seal_error)?;
        self.shared.events.record(
            EventKind::Seal,
            Source::Api,
            format!("seal initialized: {shares} key shares, {threshold} to unseal"),
        );
        Ok(texts.iter().map(|t| t.as_str().to_string()).collect())
    }

    /// Re-reads the configuration and applies what may change at runtime.
    /// Either everything applies or nothing does.
    pub fn reload(&self) -> Result<Vec<String>, String> {
        let old = self.config();
        let new = Config::load(&self.args, Some(&old)).map_err(|e| e.to_string())?;
        let fixed = [
            ("node id", old.node_id == new.node_id),
            ("data dir", old.data_dir == new.data_dir),
            ("api listen address", old.api_listen == new.api_listen),
            ("peer listen address", old.peer_listen == new.peer_listen),
            (
                "advertised addresses",
                old.advertise_api == new.advertise_api && old.advertise_peer == new.advertise_peer,
            ),
            ("TLS on/off", old.tls.is_some() == new.tls.is_some()),
            (
                "raft timing",
                old.raft.heartbeat_interval == new.raft.heartbeat_interval
                    && old.raft.election_timeout_min == new.raft.election_timeout_min
                    && old.raft.snapshot_threshold == new.raft.snapshot_threshold,
            ),
            (
                "max clock offset",
                old.max_clock_offset == new.max_clock_offset,
            ),
        ];
        if let Some((what, _)) = fixed.iter().find(|(_, same)| !same) {
            return Err(format!("the {what} cannot change without a restart"));
        }
        // Everything that can fail is done before anything takes effect:
        // a reload applies whole or not at all. The log filter is built
        // here and swapped first; every step after it cannot fail.
        let filter = (old.log_level != new.log_level)
            .then(|| tracing_subscriber::EnvFilter::try_new(&new.log_level))
            .transpose()
            .map_err(|e| format!("--log-level: {e}"))?;
        let mut changes = Vec::new();
        if let Some(filter) = filter {
            self.filter.reload(filter).map_err(|e| e.to_string())?;
            changes.push(format!("log level {}", new.log_level));
        }
        if old.admin_tokens != new.admin_tokens {
            self.shared.auth.set_admin_tokens(new.admin_tokens.clone());
            changes.push(format!("admin tokens ({} valid)", new.admin_tokens.len()));
        }
        if old.cluster_secret != new.cluster_secret {
            self.shared.auth.cluster_secret.set(&new.cluster_secret);
            changes.push("cluster secret".to_string());
        }
        if let (Some(slot), Some(tls)) = (&self.tls, &new.tls) {
            slot.set(tls.server.clone());
            changes.push("TLS certificate".to_string());
        }
        if old.raft.policy != new.raft.policy {
            if let Some(cp) = self.shared.control_plane() {
                cp.set_policy(new.raft.policy.clone());
            }
            changes.push(
                "lease and certificate policy (max TTLs, allowed domains, quotas, retention)"
                    .to_string(),
            );
        }
        if old.shutdown_timeout != new.shutdown_timeout {
            self.drain.set(new.shutdown_timeout);
            changes.push(format!("shutdown timeout {:?}", new.shutdown_timeout));
        }
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
        tracing::info!(?changes, "configuration reloaded");
        Ok(changes)
    }
}

/// The [`NodeControl`] the API calls.
pub struct Control(pub Arc<NodeRuntime>);

impl NodeControl for Control {
    fn seal(&self) -> BoxFuture<'static, Result<(), ApiError>> {
        let rt = self.0.clone();
        Box::pin(async move { rt.seal().await })
    }

    fn unseal(&self, share: Option<String>) -> BoxFuture<'static, Result<SealState, ApiError>> {
        let rt = self.0.clone();
        Box::pin(async move { rt.unseal(share).await })
    }

    fn init(&self, shares: u8, threshold: u8) -> BoxFuture<'static, Result<Vec<String>, ApiError>> {
        let rt = self.0.clone();
        Box::pin(async move { rt.init(shares, threshold).await })
    }

    fn rotate_key(&self) -> BoxFuture<'static, Result<(u32, usize), ApiError>> {
        let rt = self.0.clone();
        Box::pin(async move {
            let rotated = rt.keeper.rotate().map_err(seal_error)?;
            rt.shared.events.record(
                EventKind::Seal,
                Source::Api,
                format!("keyring rotated: new writes use key {}", rotated.0),
            );
            Ok(rotated)
        })
    }

    fn reload(&self) -> BoxFuture<'static, Result<Vec<String>, String>> {
        let rt = self.0.clone();
        Box::pin(async move {
            let result = rt.reload();
            if let Err(e) = &result {
                tracing::error!(error = %e, "reload rejected; the previous configuration stays in force");
            }
            record_reload(&rt.shared, "API", &result);
            result
        })
    }
}

/// Records a reload's outcome in the node's recent events.
pub fn record_reload(shared: &Shared, via: &str, result: &Result<Vec<String>, String>) {
    let message = match result {
        Ok(changes) if changes.is_empty() => format!("reload ({via}): nothing changed"),
        Ok(changes) => format!("reload ({via}): {}", changes.join(", ")),
        Err(e) => format!("reload ({via}) rejected: {e}"),
    };
    let source = if via == "API" {
        Source::Api
    } else {
        Source::Signal
    };
    shared.events.record(EventKind::Reload, source, message);
}

fn conflict(message: &str) -> ApiError {
    ApiError::Conflict {
        code: "seal_conflict",
        message: message.to_string(),
    }
}

/// The API's answer to a refused seal operation.
fn seal_error(e: SealError) -> ApiError {
    match e {
        SealError::AlreadyInitialized => conflict("the cluster's seal is already initialized"),
        SealError::NotInitialized => ApiError::Conflict {
            code: "not_initialized",
            message: e.to_string(),
        },
        SealError::WrongKind(m) => conflict(&m),
        SealError::UnknownShare | SealError::RepeatedShare | SealError::Share(_) => {
            ApiError::BadRequest(e.to_string())
        }
        SealError::WrongKeyFile => ApiError::BadRequest(e.to_string()),
        SealError::Sealed => ApiError::Sealed,
        SealError::Key(_) | SealError::Storage(_) => {
            tracing::error!(error = %e, "seal operation failed");
            ApiError::Internal(e.to_string())
        }
    }
}

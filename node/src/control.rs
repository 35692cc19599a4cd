//! The node's answers to `/v1/sys/seal`, `/unseal` and `/reload` (and to
//! SIGHUP): the [`NodeControl`] hooks the API calls.

use std::sync::{Arc, OnceLock, RwLock};

use futures::future::BoxFuture;
use keel_web::events::{EventKind, Source};
use keel_web::{DrainDeadline, NodeControl, Shared, TlsSlot};

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
    /// The manager supervisor, once started.
    pub supervisor: OnceLock<Arc<Supervisor>>,
    /// The listeners' TLS configuration, if any.
    pub tls: Option<TlsSlot>,
    /// The log filter.
    pub filter: FilterHandle,
    /// The API listener's drain deadline (the shutdown timeout).
    pub drain: DrainDeadline,
}

impl NodeRuntime {
    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn supervisor(&self) -> Result<Arc<Supervisor>, String> {
        self.supervisor
            .get()
            .cloned()
            .ok_or_else(|| "the node is still starting; retry shortly".to_string())
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
    fn seal(&self) -> BoxFuture<'static, Result<(), String>> {
        let rt = self.0.clone();
        Box::pin(async move {
            let result = rt.supervisor()?.seal().await;
            if result.is_ok() {
                rt.shared
                    .events
                    .record(EventKind::Seal, Source::Api, "sealed by an operator");
            }
            result
        })
    }

    fn unseal(&self) -> BoxFuture<'static, Result<(), String>> {
        let rt = self.0.clone();
        Box::pin(async move {
            let result = rt.supervisor()?.unseal().await;
            if result.is_ok() {
                rt.shared
                    .events
                    .record(EventKind::Unseal, Source::Api, "unsealed by an operator");
            }
            result
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

//! State shared by every handler of both listeners, and the hooks through
//! which the API asks the node to seal, unseal and reload.
//!
//! The [`ControlPlane`] is installed only after the readiness barrier; until
//! then admin routes answer 503 `not_ready` and peer routes 503
//! `raft_not_ready`, so nothing reaches Raft before it exists. On stop it is
//! withdrawn again ([`Shared::retire`]) once the listeners have drained, so
//! the web state (which outlives stop) holds no handle to Raft or storage
//! and the database really closes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures::future::BoxFuture;
use keel_raft::seal::{Keeper, SealState};
use keel_raft::{ControlPlane, NodeId};

use crate::audit::Audit;
use crate::auth::Auth;
use crate::crl_cache::CrlCache;
use crate::error::ApiError;
use crate::events::EventLog;
use crate::lifecycle::LifecycleBoard;
use crate::metrics::Metrics;
use crate::rate_limit::{RateLimit, RateLimits};

/// What the node does when the API asks it to change its own state.
pub trait NodeControl: Send + Sync + 'static {
    /// Stops this node's managers (awaited), hands leadership away if
    /// leading, stops Raft, then drops the keys from memory. Persisted.
    fn seal(&self) -> BoxFuture<'static, Result<(), ApiError>>;
    /// Takes one key share (`Some`) or unseals with the auto-unseal key
    /// file (`None`); Raft starts again once the keys are loaded.
    fn unseal(&self, share: Option<String>) -> BoxFuture<'static, Result<SealState, ApiError>>;
    /// Initializes key-share sealing for the cluster; returns the shares.
    fn init(&self, shares: u8, threshold: u8) -> BoxFuture<'static, Result<Vec<String>, ApiError>>;
    /// Adds a new data key to this node's keyring.
    fn rotate_key(&self) -> BoxFuture<'static, Result<(u32, usize), ApiError>>;
    /// Re-reads configuration files and rebuilds what derives from them.
    /// A bad configuration is rejected whole; the old one stays.
    fn reload(&self) -> BoxFuture<'static, Result<Vec<String>, String>>;
}

/// Limits applied to API requests.
#[derive(Debug, Clone, Copy)]
pub struct ApiLimits {
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Requests per second per admin token (0: no limit).
    pub rate_limit: RateLimit,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            max_body_bytes: 1 << 20,
            rate_limit: RateLimit::default(),
        }
    }
}

/// Everything the routers share.
pub struct Shared {
    /// This node's id.
    pub node_id: NodeId,
    /// Credentials.
    pub auth: Auth,
    /// Lifecycle board.
    pub lifecycle: LifecycleBoard,
    /// Metrics.
    pub metrics: Metrics,
    /// Request limits.
    pub limits: ApiLimits,
    /// Per-token request rates.
    pub rate_limits: RateLimits,
    /// The last signed CRL.
    pub crl_cache: CrlCache,
    /// Recent cluster events this node saw (also audited).
    pub events: EventLog,
    /// The audit log.
    pub audit: Arc<Audit>,
    control_plane: RwLock<Option<ControlPlane>>,
    control: RwLock<Option<Arc<dyn NodeControl>>>,
    keeper: RwLock<Option<Arc<Keeper>>>,
    peer_trust: RwLock<Option<Arc<dyn crate::enrol::PeerTrustHooks>>>,
    barrier_passed: AtomicBool,
    draining: AtomicBool,
    sealed: AtomicBool,
}

impl Shared {
    /// State for a node that has not started Raft yet.
    pub fn new(node_id: NodeId, auth: Auth, limits: ApiLimits) -> Self {
        Shared {
            node_id,
            auth,
            lifecycle: LifecycleBoard::default(),
            metrics: Metrics::new(),
            rate_limits: RateLimits::new(limits.rate_limit),
            limits,
            crl_cache: CrlCache::default(),
            events: EventLog::default(),
            audit: Arc::new(Audit::disabled()),
            control_plane: RwLock::new(None),
            control: RwLock::new(None),
            keeper: RwLock::new(None),
            peer_trust: RwLock::new(None),
            barrier_passed: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            sealed: AtomicBool::new(false),
        }
    }

    /// This state with `audit` as its audit log (before it is shared).
    pub fn with_audit(mut self, audit: Audit) -> Self {
        let audit = Arc::new(audit);
        self.events = EventLog::new(audit.clone());
        self.audit = audit;
        self
    }

    /// Installs the control plane (once, after the barrier).
    pub fn install_control_plane(&self, cp: ControlPlane) {
        let mut slot = self
            .control_plane
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            tracing::warn!("control plane installed twice; keeping the first");
        } else {
            *slot = Some(cp);
        }
    }

    /// Installs the node's seal/unseal/reload hooks.
    pub fn install_node_control(&self, control: Arc<dyn NodeControl>) {
        let mut slot = self.control.write().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(control);
        }
    }

    /// Withdraws the control plane and the node's hooks (stop, after the
    /// listeners drained): the node's hooks hold this state and the
    /// managers, so keeping them here would keep Raft and the database
    /// alive for as long as this state lives. Afterwards routes answer as
    /// before Raft started.
    pub fn retire(&self) -> (Option<ControlPlane>, Option<Arc<dyn NodeControl>>) {
        let cp = self
            .control_plane
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let control = self
            .control
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        (cp, control)
    }

    /// The control plane, if Raft has started (and not stopped).
    pub fn control_plane(&self) -> Option<ControlPlane> {
        self.control_plane
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The control plane, or 503 `not_ready`.
    pub fn cp(&self) -> Result<ControlPlane, ApiError> {
        match self.control_plane() {
            Some(cp) => Ok(cp),
            // Raft does not run on a sealed node.
            None if self.sealed() && self.barrier_passed() => Err(ApiError::Sealed),
            None => Err(ApiError::NotReady(
                "raft has not started on this node yet".into(),
            )),
        }
    }

    /// The node's hooks, or 503 `not_ready`.
    pub fn node_control(&self) -> Result<Arc<dyn NodeControl>, ApiError> {
        self.control
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| ApiError::NotReady("this node is still starting".into()))
    }

    /// Marks the readiness barrier as passed.
    pub fn pass_barrier(&self) {
        self.barrier_passed.store(true, Ordering::Release);
    }

    /// Whether the readiness barrier has passed.
    pub fn barrier_passed(&self) -> bool {
        self.barrier_passed.load(Ordering::Acquire)
    }

    /// Starts draining: `/readyz` fails and new API requests are refused.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether the node is draining.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// The node's key keeper, once storage is open.
    pub fn install_keeper(&self, keeper: Arc<Keeper>) {
        *self.keeper.write().unwrap_or_else(|e| e.into_inner()) = Some(keeper);
    }

    /// Turns on keel-run mutual TLS on the peer listener (before it
    /// serves): peer routes then take node certificates, not the secret.
    pub fn install_peer_trust(&self, hooks: Arc<dyn crate::enrol::PeerTrustHooks>) {
        *self.peer_trust.write().unwrap_or_else(|e| e.into_inner()) = Some(hooks);
    }

    /// The peer trust hooks, with keel-run mutual TLS.
    pub fn peer_trust(&self) -> Option<Arc<dyn crate::enrol::PeerTrustHooks>> {
        self.peer_trust
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The cluster's seal configuration, if this node has one.
    pub fn seal_config(&self) -> Option<keel_raft::seal::SealConfig> {
        self.keeper
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|k| k.config())
    }

    /// Withdraws the control plane when Raft stops for a seal; a new one
    /// is installed when it starts again.
    pub fn withdraw_control_plane(&self) -> Option<ControlPlane> {
        self.control_plane
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// The seal as `/v1/sys/seal-status` shows it.
    pub fn seal_state(&self) -> SealState {
        match &*self.keeper.read().unwrap_or_else(|e| e.into_inner()) {
            Some(keeper) => {
                let mut state = keeper.state();
                // Sealed until Raft runs again, not only until keys load.
                state.sealed |= self.sealed();
                state
            }
            None => SealState {
                sealed: true,
                initialized: false,
                kind: None,
                threshold: 0,
                shares: 0,
                progress: 0,
            },
        }
    }

    /// Records whether domain requests are refused as sealed: from start
    /// until Raft runs unsealed, and from a seal's first step on.
    pub fn set_sealed(&self, sealed: bool) {
        self.sealed.store(sealed, Ordering::Release);
    }

    /// Whether this node is sealed.
    pub fn sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    /// The control plane for a domain request: refuses while sealed.
    pub fn domain_cp(&self) -> Result<ControlPlane, ApiError> {
        if self.sealed() {
            return Err(ApiError::Sealed);
        }
        self.cp()
    }
}

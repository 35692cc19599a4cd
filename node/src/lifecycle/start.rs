//! Starting a node: one function, the phases in order, each logged and
//! shown at `/v1/sys/lifecycle`.
//!
//! 1. Load and validate all configuration (nothing touches disk before).
//! 2. Open storage (retiring it first if it was marked retired); check the
//!    stored node id and cluster id; learn or allocate this data
//!    directory's incarnation (its Raft id).
//! 3. Bind the peer and API listeners and serve (Raft routes answer 503);
//!    start measuring clock offsets to the peers.
//! 4. Readiness barrier: both listeners serve, checked over the network.
//!    Then the seal gate: Raft waits until the node's keys are loaded
//!    (at once with an auto-unseal key file, else from key shares).
//! 5. Start Raft and install the handle.
//! 6. Bootstrap, join, or resume.
//! 7. Wait for a leader and local catch-up; start the manager supervisor.
//! 8. Ready.
//!
//! A seal stops the managers, Raft and its watchers and drops the keys
//! (see [`seal`]); the node then waits at the gate again, and phases 5 to
//! 8 run anew once it is unsealed.
//!
//! Whatever fails, what was started is stopped in order before returning.
//! If the node learns that its log ends below what it acknowledged, it
//! stops the same way, marks the data directory retired and returns
//! [`Retired`]; `main` then starts it again as a new incarnation.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use keel_raft::skew::ClockMonitor;
use keel_raft::transport::{ClusterSecret, PeerClient};
use keel_raft::{ControlPlane, Member, Storage};
use keel_web::audit::Audit;
use keel_web::auth::Auth;
use keel_web::events::EventKind;
use keel_web::{ApiLimits, Component, ComponentState, Phase, Shared};
use tokio_util::sync::CancellationToken;

use super::bootstrap::{self, BootstrapError};
use super::census::CensusRefresher;
use super::observe::RaftObserver;
use super::open::open_storage;
use super::retire::{self, Decommissioned, Retired};
use super::settle::{wait_for_cluster_id, wait_for_peer_ca, wait_until_settled};
use super::stop::{self, Parts};
use super::transport::{clock_phase, listeners_phase, peer_tls_phase};
use super::{TlsWatcher, barrier, seal};
use crate::cli::ServerArgs;
use crate::config::Config;
use crate::control::{Control, NodeRuntime, SealReply};
use crate::logging;
use crate::managers::{ManagerContext, Supervisor};
use crate::signals::Signals;

/// Runs a node until a stop signal; returns once everything has stopped.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    // Phase 1: configuration.
    let config = Config::load(&args, None)?;
    let filter = logging::init(config.log_format, &config.log_level);
    tracing::info!(phase = "config", node_id = config.node_id, config = ?config, "configuration loaded and validated");
    if config.dev {
        print_dev_banner(&config);
    }
    let signals = Signals::install().context("installing signal handlers")?;
    let auth = Auth::new(
        config.admin_tokens.clone(),
        ClusterSecret::new(&config.cluster_secret),
    );
    let limits = ApiLimits {
        max_body_bytes: config.max_body_bytes,
        rate_limit: config.rate_limit,
    };
    let audit = Audit::new(
        keel_raft::name_of(config.node_id).to_string(),
        config.audit.clone(),
        config.cluster_secret.as_bytes(),
    );
    let shared = Arc::new(Shared::new(config.node_id, auth, limits).with_audit(audit));
    let board = &shared.lifecycle;
    board.set_component(Component::Config, ComponentState::Running);

    let mut parts = Parts::new(shared.clone());
    let data_dir = config.data_dir.clone();
    let result = start(&args, config, filter, &signals, &mut parts).await;
    let retired = result
        .as_ref()
        .err()
        .and_then(|e| e.downcast_ref::<Retired>())
        .map(|r| r.0.clone());
    let decommissioned = result
        .as_ref()
        .err()
        .is_some_and(|e| e.downcast_ref::<Decommissioned>().is_some());
    match (&result, &retired) {
        _ if decommissioned => {
            tracing::warn!(
                "decommissioned by the cluster: stopping, and this data directory stays retired"
            )
        }
        (_, Some(reason)) => {
            tracing::error!(reason = %reason, "this data directory can no longer speak for its Raft identity; stopping to retire it")
        }
        (Err(e), None) => {
            tracing::error!(error = %format!("{e:#}"), "start failed; stopping what was started")
        }
        (Ok(()), None) => tracing::info!("stopping"),
    }
    stop::run(parts).await;
    signals.close().await;
    if let Some(reason) = retired {
        retire::mark(&data_dir, &reason)?;
    }
    result
}

/// How phases 6 to 8 ended.
enum Ended {
    /// A stop signal: the node stops.
    Stopped,
    /// An operator sealed the node: Raft stops, the keys go, and the node
    /// waits to be unsealed. The sender learns when the keys are gone.
    Sealed(SealReply),
}

/// Phases 2 to 8, then serving until a stop signal. Phases 5 to 8 run
/// again after each seal, once the node is unsealed.
async fn start(
    args: &ServerArgs,
    config: Config,
    filter: logging::FilterHandle,
    signals: &Signals,
    parts: &mut Parts,
) -> anyhow::Result<()> {
    let shared = parts.shared.clone();
    let (storage, raft_id) = storage_phase(&config, parts)?;
    let peer_tls = peer_tls_phase(&config, &storage, &shared)?;
    let listening = listeners_phase(&config, peer_tls.as_deref(), parts).await?;
    let (peers, clock) = clock_phase(&config, &storage, peer_tls.clone(), parts)?;

    // Phase 4: readiness barrier.
    barrier::pass(&config, listening.api_addr, listening.peer_addr)
        .await
        .map_err(|e| anyhow!("readiness barrier: {e}"))?;
    shared.pass_barrier();
    tracing::info!(
        phase = "barrier",
        "readiness barrier passed: configured and serving"
    );

    let data_dir = config.data_dir.clone();
    let (seal_tx, mut seal_rx) = tokio::sync::mpsc::unbounded_channel();
    let runtime = Arc::new(NodeRuntime {
        config: RwLock::new(Arc::new(config)),
        args: args.clone(),
        shared: shared.clone(),
        supervisor: RwLock::new(None),
        tls: listening.tls,
        filter,
        drain: listening.drain,
        keeper: storage.keeper().clone(),
        node_meta: storage.node_meta(),
        peers: peers.clone(),
        peer_tls: peer_tls.clone(),
        seal_tx,
    });
    shared.install_node_control(Arc::new(Control(runtime.clone())));
    loop {
        // Phase 4b: the seal gate. Raft starts only with the keys loaded.
        if runtime.keeper.is_sealed() {
            shared.lifecycle.set_phase(Phase::Sealed);
            tracing::info!(phase = "sealed", "sealed: raft waits for the keys");
        }
        if !seal::wait_for_keys(&runtime.keeper, &signals.stop, &mut seal_rx).await {
            return Ok(());
        }
        let config = runtime.config();
        // Phase 4c: this node's certificate for mutual TLS with its peers.
        if let Some(tls) = &peer_tls {
            let stored_cluster = storage.node_meta().cluster_id().ok().flatten();
            match crate::peer_tls::obtain::ensure(tls, &config, stored_cluster, &signals.stop).await
            {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) => bail!("node certificate: {e}"),
            }
        }
        let cp = raft_phase(
            &config,
            &storage,
            raft_id,
            peers.clone(),
            clock.clone(),
            parts,
        )
        .await?;
        shared.set_sealed(false);
        // From here on, a leader may tell this node that its log ends
        // below what it acknowledged, or that the cluster decommissioned
        // it: then nothing else matters but retiring.
        let rest = member_phase(&runtime, &cp, signals, &mut seal_rx, parts);
        let ended = tokio::select! {
            result = rest => result?,
            reason = cp.retired() => return Err(anyhow::Error::new(Retired(reason))),
            reason = cp.decommissioned() => {
                // Marked before the leader is told and before anything stops,
                // so this directory can never come back, whatever happens next.
                let marked = retire::mark_decommissioned(&data_dir, &reason);
                cp.confirm_decommission_marked(marked.as_ref().map(|_| ()).map_err(|e| format!("{e:#}")));
                marked?;
                tracing::warn!(reason = %reason, "data directory marked decommissioned; stopping for good");
                return Err(anyhow::Error::new(Decommissioned(reason)));
            }
        };
        match ended {
            Ended::Stopped => return Ok(()),
            Ended::Sealed(reply) => {
                drop(cp);
                *runtime
                    .supervisor
                    .write()
                    .unwrap_or_else(|e| e.into_inner()) = None;
                seal::unwind_raft(parts, &runtime.keeper, peer_tls.as_deref()).await;
                let _ = reply.send(());
            }
        }
    }
}

/// Phase 2: the data directory (retired first if it was marked), its
/// incarnation, and its keys (loaded now if the node unseals itself).
fn storage_phase(
    config: &Config,
    parts: &mut Parts,
) -> anyhow::Result<(Storage, keel_raft::NodeId)> {
    let shared = &parts.shared;
    let board = &shared.lifecycle;
    board.set_component(Component::Storage, ComponentState::Starting);
    if let Some(reason) = retire::retire_if_marked(&config.data_dir)? {
        tracing::warn!(reason = %reason, "starting as a new incarnation: the previous data directory was retired");
    }
    let (storage, raft_id) = open_storage(config)?;
    seal::open_keys(config, &storage, shared)?;
    let sealed = storage.keeper().is_sealed();
    board.set_component(Component::Storage, ComponentState::Running);
    // The data directory is this node's: the audit log may write now.
    if shared.audit.open().is_err() {
        tracing::error!(
            required = config.audit.required,
            "the audit log cannot be written; with --audit-required, requests will be refused until it can"
        );
    }
    tracing::info!(
        phase = "storage",
        path = %storage.path().display(),
        sealed,
        raft_id,
        incarnation = %format!("{:08x}", keel_raft::types::incarnation_of(raft_id)),
        "storage open"
    );
    parts.storage = Some(storage.clone());
    Ok((storage, raft_id))
}

/// Phase 5: Raft, and the tasks that watch it.
async fn raft_phase(
    config: &Config,
    storage: &Storage,
    raft_id: keel_raft::NodeId,
    peers: PeerClient,
    clock: ClockMonitor,
    parts: &mut Parts,
) -> anyhow::Result<ControlPlane> {
    let shared = parts.shared.clone();
    let board = &shared.lifecycle;
    board.set_component(Component::Raft, ComponentState::Starting);
    let advertise = Member {
        api_addr: config.advertise_api.clone(),
        peer_addr: config.advertise_peer.clone(),
    };
    let mut settings = config.raft.clone();
    settings.node_id = raft_id;
    let cp = ControlPlane::start(settings, storage, peers, advertise, clock).await?;
    shared.install_control_plane(cp.clone());
    parts.cp = Some(cp.clone());
    parts.observer = Some(RaftObserver::start(cp.clone(), shared.clone()));
    parts.census = Some(CensusRefresher::start(cp.clone(), shared.clone()));
    board.set_component(Component::Raft, ComponentState::Running);
    tracing::info!(phase = "raft", "raft started");
    Ok(cp)
}

/// Phases 6 to 8: bootstrap, join or resume; the managers once a leader
/// is known and this node caught up; ready; then serving until stopped.
async fn member_phase(
    runtime: &Arc<NodeRuntime>,
    cp: &ControlPlane,
    signals: &Signals,
    seal_rx: &mut tokio::sync::mpsc::UnboundedReceiver<SealReply>,
    parts: &mut Parts,
) -> anyhow::Result<Ended> {
    let shared = parts.shared.clone();
    let board = &shared.lifecycle;
    let config = runtime.config();

    // Phase 6: bootstrap, join or resume.
    board.set_component(Component::Cluster, ComponentState::Starting);
    let how = match bootstrap::run(&config, cp, &signals.stop).await {
        Ok(how) => how,
        Err(BootstrapError::Stopped) => return Ok(Ended::Stopped),
        Err(e) => {
            board.set_component(Component::Cluster, ComponentState::Failed);
            return Err(e.into());
        }
    };
    tracing::info!(phase = "cluster", how = ?how, "member of a cluster");

    // Phase 7: leader known and caught up; managers (the leader's records
    // the cluster id); the cluster id applied here.
    if !wait_until_settled(cp, &signals.stop).await {
        return Ok(Ended::Stopped);
    }
    let supervisor = Supervisor::new(ManagerContext {
        cp: cp.clone(),
        shared: shared.clone(),
        config: config.clone(),
        peer_tls: runtime.peer_tls.clone(),
    });
    let supervisor_stop = CancellationToken::new();
    let supervisor_task = supervisor.spawn(supervisor_stop.clone());
    *runtime
        .supervisor
        .write()
        .unwrap_or_else(|e| e.into_inner()) = Some(supervisor.clone());
    parts.supervisor = Some((supervisor, supervisor_stop, supervisor_task));
    if let (Some(material), Some(slot)) = (&config.tls, &runtime.tls) {
        parts.tls_watcher = Some(TlsWatcher::start(material, slot.clone()));
    }
    let Some(applied_id) = wait_for_cluster_id(cp, &signals.stop).await else {
        return Ok(Ended::Stopped);
    };
    if runtime.peer_tls.is_some() && !wait_for_peer_ca(cp, &signals.stop).await {
        return Ok(Ended::Stopped);
    }
    if let Some(want) = &config.cluster_id
        && *want != applied_id
    {
        board.set_component(Component::Cluster, ComponentState::Failed);
        bail!(
            "this node is configured for cluster {want}, but the cluster it is part of is {applied_id}"
        );
    }
    board.set_component(Component::Cluster, ComponentState::Running);

    // Phase 8: ready.
    board.set_phase(Phase::Ready);
    tracing::info!(phase = "ready", cluster_id = %applied_id, "ready");
    shared.events.record(
        EventKind::Lifecycle,
        keel_web::events::Source::Node,
        format!("node ready ({})", format!("{how:?}").to_lowercase()),
    );
    serve_until_stopped(runtime, cp, signals, seal_rx).await
}

/// Serves until the first stop signal, reloading on SIGHUP. If the Raft
/// core dies, the node stops with an error so its supervisor restarts it.
async fn serve_until_stopped(
    runtime: &NodeRuntime,
    cp: &ControlPlane,
    signals: &Signals,
    seal_rx: &mut tokio::sync::mpsc::UnboundedReceiver<SealReply>,
) -> anyhow::Result<Ended> {
    // Looks again when Raft stops or its role or leader changes, and every
    // 10 s in case a failure changed nothing else.
    let raft_died = async {
        loop {
            match cp
                .wait_for_change(Duration::from_secs(10), |s| s.failed.is_some())
                .await
            {
                Ok(status) => return status.failed.unwrap_or_default(),
                Err(_) if cp.is_stopping() => std::future::pending::<()>().await,
                Err(keel_raft::Error::Timeout(_)) => {}
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    };
    tokio::pin!(raft_died);
    loop {
        tokio::select! {
            _ = signals.stop.cancelled() => return Ok(Ended::Stopped),
            Some(reply) = seal_rx.recv() => return Ok(Ended::Sealed(reply)),
            reason = &mut raft_died => bail!("the raft core stopped: {reason}"),
            _ = signals.reload.notified() => {
                let result = runtime.reload();
                match &result {
                    Ok(changes) => tracing::info!(?changes, "SIGHUP: configuration reloaded"),
                    Err(e) => tracing::error!(error = %e, "SIGHUP: reload rejected; the previous configuration stays in force"),
                }
                crate::control::record_reload(&runtime.shared, "SIGHUP", &result);
            }
        }
    }
}

fn print_dev_banner(config: &Config) {
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let addr = format!("{scheme}://{}", config.advertise_api);
    let token = &config.admin_tokens[0];
    println!(
        "keel dev server (single node, data in {})",
        config.data_dir.display()
    );
    println!();
    println!("  API:    {addr}");
    println!("  Token:  {token}");
    println!();
    println!("  export KEEL_ADDR={addr}");
    println!("  export KEEL_TOKEN={token}");
    println!();
    println!(
        "Development only: the token changes on every start; the auto-unseal key is kept in {}. Ctrl-C stops.",
        config.data_dir.join("dev-unseal.key").display()
    );
}

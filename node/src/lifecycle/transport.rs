//! Start phase 3, the transport before consensus (lesson 5): mutual TLS
//! with keel's peer CA (a provisional certificate until the node has its
//! own), the peer listener, then the API listener, then the peer client
//! and the clock prober, so offsets are known before Raft could make this
//! node lead.

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use keel_raft::Storage;
use keel_raft::skew::ClockMonitor;
use keel_raft::transport::{OneClient, PeerClient, PeerHttp};
use keel_web::{Component, ComponentState, DrainDeadline, Shared, TlsSlot};

use super::RunningListener;
use super::stop::Parts;
use crate::config::Config;
use crate::managers::clock::{ClockProber, ConfiguredPeers};
use crate::tls;

/// Longest drain of the peer listener: peers retry, so it need not wait long.
const PEER_DRAIN: Duration = Duration::from_secs(5);

/// Mutual TLS with keel's own peer CA (unless `--dev` or `--tls-*`): the
/// node's TLS state, a provisional certificate until it has its own, and
/// the peer router's hooks, all before the peer listener serves.
pub(super) fn peer_tls_phase(
    config: &Config,
    storage: &Storage,
    shared: &Arc<Shared>,
) -> anyhow::Result<Option<Arc<crate::peer_tls::PeerTls>>> {
    if !config.peer_mtls {
        return Ok(None);
    }
    let host = |addr: &str| {
        addr.rsplit_once(':')
            .map_or(addr, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string()
    };
    let mut hosts = vec![host(&config.advertise_peer)];
    if config.api_tls && !hosts.contains(&host(&config.advertise_api)) {
        hosts.push(host(&config.advertise_api));
    }
    let tls = crate::peer_tls::PeerTls::new(
        config.node_id,
        crate::peer_tls::files::dir(&config.data_dir),
        hosts,
        config.node_cert_ttl.as_millis() as u64,
        storage.keeper().clone(),
        shared.auth.cluster_secret.clone(),
    )
    .map_err(|e| anyhow!(e))?;
    shared.install_peer_trust(Arc::new(crate::peer_tls::issue::Issuer {
        tls: tls.clone(),
        shared: Arc::downgrade(shared),
    }));
    tracing::info!(
        phase = "listeners",
        "mutual TLS between nodes with keel's peer CA"
    );
    Ok(Some(tls))
}

/// What phase 3 leaves serving.
pub(super) struct Listening {
    pub tls: Option<TlsSlot>,
    pub drain: DrainDeadline,
    pub api_addr: std::net::SocketAddr,
    pub peer_addr: std::net::SocketAddr,
}

/// Phase 3: the peer listener, then the API listener (lesson 5: the
/// transport serves before consensus starts).
pub(super) async fn listeners_phase(
    config: &Config,
    peer_tls: Option<&crate::peer_tls::PeerTls>,
    parts: &mut Parts,
) -> anyhow::Result<Listening> {
    let shared = parts.shared.clone();
    let board = &shared.lifecycle;
    let tls = config.tls.as_ref().map(|t| TlsSlot::new(t.server.clone()));
    let api_tls = match peer_tls {
        Some(p) if config.api_tls => Some(p.api_slot()),
        _ => tls.clone(),
    };
    let drain = DrainDeadline::new(config.shutdown_timeout);
    board.set_component(Component::PeerListener, ComponentState::Starting);
    let peer = RunningListener::start(
        Component::PeerListener,
        config.peer_listen,
        keel_web::peer::router(shared.clone()),
        peer_tls.map(|t| t.slot()).or_else(|| tls.clone()),
        DrainDeadline::new(PEER_DRAIN.min(config.shutdown_timeout)),
    )
    .await
    .map_err(|e| anyhow!(e))?;
    let peer_addr = peer.local_addr;
    parts.peer = Some(peer);
    board.set_component(Component::PeerListener, ComponentState::Running);
    board.set_component(Component::ApiListener, ComponentState::Starting);
    let api = RunningListener::start(
        Component::ApiListener,
        config.api_listen,
        keel_web::api_router(shared.clone()),
        api_tls,
        drain.clone(),
    )
    .await
    .map_err(|e| anyhow!(e))?;
    let api_addr = api.local_addr;
    parts.api = Some(api);
    board.set_component(Component::ApiListener, ComponentState::Running);
    tracing::info!(phase = "listeners", api = %api_addr, peer = %peer_addr, "listeners serving");
    Ok(Listening {
        tls,
        drain,
        api_addr,
        peer_addr,
    })
}

/// The peer client and the clock prober: offsets are measured from now
/// on, so the verdict on this node's clock is known before Raft could
/// make it lead.
pub(super) fn clock_phase(
    config: &Config,
    storage: &Storage,
    peer_tls: Option<Arc<crate::peer_tls::PeerTls>>,
    parts: &mut Parts,
) -> anyhow::Result<(PeerClient, ClockMonitor)> {
    let shared = parts.shared.clone();
    let http: Arc<dyn PeerHttp> = match peer_tls {
        Some(tls) => tls,
        None => Arc::new(OneClient {
            http: tls::http_client(config.tls.as_ref()).map_err(|e| anyhow!(e))?,
            scheme: if config.tls.is_some() {
                "https"
            } else {
                "http"
            },
        }),
    };
    let peers = PeerClient::new(
        http,
        shared.auth.cluster_secret.clone(),
        storage.identity().clone(),
        config.node_id,
    );
    let clock = ClockMonitor::new(config.max_clock_offset);
    parts.clock_prober = Some(ClockProber::start(
        clock.clone(),
        peers.clone(),
        shared.clone(),
        ConfiguredPeers {
            node_id: config.node_id,
            peers: config.peers.clone(),
            join: config.join.clone(),
        },
    ));
    shared
        .lifecycle
        .set_component(Component::Clock, ComponentState::Running);
    tracing::info!(phase = "listeners", max_clock_offset = ?config.max_clock_offset, "measuring clock offsets to peers");
    Ok((peers, clock))
}

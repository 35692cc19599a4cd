//! The readiness barrier (start phase 4): the node is fully configured and
//! its listeners really serve, checked over the network, before Raft may
//! start. Nothing later phases depend on is cached before this passes.

use std::net::SocketAddr;
use std::time::Duration;

use keel_raft::wire;

use crate::config::Config;

/// How long the self-check may take.
const BARRIER_TIMEOUT: Duration = Duration::from_secs(10);

/// The address a local client reaches a listener bound to `bound` at.
fn local_target(bound: SocketAddr) -> SocketAddr {
    if bound.ip().is_unspecified() {
        let ip = if bound.is_ipv4() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
        };
        SocketAddr::new(ip, bound.port())
    } else {
        bound
    }
}

/// Passes when both listeners answer over the network as they should
/// before Raft exists: `/livez` 200 on the API, and `503 raft_not_ready`
/// from the peer router to an authenticated request (with keel-run mutual
/// TLS, where this node has no certificate to present yet, `401` from the
/// peer listener's TLS to a request without one).
pub async fn pass(
    config: &Config,
    api_bound: SocketAddr,
    peer_bound: SocketAddr,
) -> Result<(), String> {
    if config.admin_tokens.is_empty() || config.cluster_secret.is_empty() {
        return Err("credentials are missing".into());
    }
    if config.advertise_api.is_empty() || config.advertise_peer.is_empty() {
        return Err("advertised addresses are missing".into());
    }
    let scheme = if config.tls.is_some() || config.api_tls {
        "https"
    } else {
        "http"
    };
    let peer_scheme = if config.peer_mtls || config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    // The self-check proves the listener serves; certificate names are
    // checked by real clients, not here.
    let client = reqwest::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let api_url = format!("{scheme}://{}/livez", local_target(api_bound));
    let peer_url = format!(
        "{peer_scheme}://{}{}",
        local_target(peer_bound),
        wire::PATH_HELLO
    );
    let deadline = tokio::time::Instant::now() + BARRIER_TIMEOUT;
    let mut last_error;
    loop {
        let api = client.get(&api_url).send().await;
        let peer = client
            .post(&peer_url)
            .bearer_auth(&config.cluster_secret)
            .header(reqwest::header::CONTENT_TYPE, wire::CONTENT_TYPE)
            .send()
            .await;
        match (api, peer) {
            (Ok(a), Ok(p)) if a.status() == 200 && config.peer_mtls && p.status() == 401 => {
                return Ok(());
            }
            (Ok(a), Ok(p)) if a.status() == 200 && p.status() == 503 => {
                let body = p.text().await.unwrap_or_default();
                if body.contains("raft_not_ready") {
                    return Ok(());
                }
                last_error = format!("peer listener answered unexpectedly: {body}");
            }
            (Ok(a), Ok(p)) => {
                last_error = format!("api answered {}, peer answered {}", a.status(), p.status());
            }
            (Err(e), _) | (_, Err(e)) => last_error = e.to_string(),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "listeners did not pass the self-check: {last_error}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

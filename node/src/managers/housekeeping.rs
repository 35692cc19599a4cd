//! Cluster housekeeping (leader only): records the cluster id once, creates
//! (or imports) the cluster CA once, and re-publishes the CRL before its
//! nextUpdate passes.

use std::time::Duration;

use keel_raft::clock::now_ms;
use keel_raft::command::{Command, Request};
use keel_raft::pki;
use rand::RngCore;
use tokio_util::sync::CancellationToken;

use super::ManagerContext;

const PERIOD: Duration = Duration::from_secs(5);

fn new_cluster_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One pass: what is missing or stale gets proposed.
async fn tend(ctx: &ManagerContext) -> Result<(), keel_raft::Error> {
    let (cluster_id, has_ca, crl) = ctx.cp.local(|s| {
        (
            s.cluster.cluster_id.clone(),
            s.pki.ca().is_some(),
            s.pki.crl_version(),
        )
    });
    if cluster_id.is_none() {
        // With mutual TLS the peer CA already names the cluster.
        let id = ctx
            .config
            .cluster_id
            .clone()
            .or_else(|| ctx.peer_tls.as_ref().and_then(|t| t.cluster()))
            .unwrap_or_else(new_cluster_id);
        tracing::info!(manager = "housekeeping", cluster_id = %id, "recording the cluster id");
        ctx.cp
            .write_on_leader(Request::Apply(Command::InitCluster { cluster_id: id }))
            .await?;
    }
    if !has_ca {
        let policy = ctx.cp.policy();
        let settings = &policy.pki;
        let ca = match &settings.import {
            Some((cert, key)) => pki::import_ca(cert, key),
            None => pki::create_ca(settings, now_ms()),
        }
        .map_err(|e| keel_raft::Error::Internal(format!("CA: {e}")))?;
        tracing::info!(
            manager = "housekeeping",
            imported = settings.import.is_some(),
            "installing the cluster CA"
        );
        match ctx
            .cp
            .write_on_leader(Request::Apply(Command::InitCa { ca }))
            .await
        {
            Ok(_) | Err(keel_raft::Error::Domain(keel_raft::DomainError::Conflict(_))) => {}
            Err(e) => return Err(e),
        }
    }
    let validity = ctx.cp.policy().pki.crl_validity_ms;
    if has_ca && now_ms().saturating_sub(crl.this_update) > validity / 2 {
        tracing::info!(
            manager = "housekeeping",
            number = crl.number,
            "re-publishing the CRL"
        );
        ctx.cp
            .write_on_leader(Request::Apply(Command::RefreshCrl))
            .await?;
    }
    Ok(())
}

/// Runs until `cancel`.
pub async fn run(ctx: ManagerContext, cancel: CancellationToken) {
    tracing::info!(manager = "housekeeping", "started");
    loop {
        let pass = tend(&ctx);
        let result = tokio::select! {
            _ = cancel.cancelled() => break,
            r = pass => r,
        };
        let wait = match result {
            Ok(()) => PERIOD,
            Err(e) => {
                tracing::warn!(manager = "housekeeping", error = %e, "housekeeping failed; will retry");
                Duration::from_millis(500)
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    tracing::info!(manager = "housekeeping", "stopping");
}

//! Keeping a node's certificate and trust current, on every node while
//! Raft runs:
//!
//! - the bootstrap node proposes the peer CA it created into the
//!   replicated state (then forgets its own sealed copy);
//! - the trusted CAs follow the replicated list (a peer-CA rotation adds
//!   one, makes it the signer, then drops the old);
//! - the certificate is renewed at two thirds of its life, or at once when
//!   the signer changed: a new key and certificate are stored and read
//!   back before they replace the old pair, which open connections keep
//!   using until they close.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use keel_raft::ControlPlane;
use keel_raft::clock::now_ms;
use keel_raft::command::{Command, Request};
use keel_raft::pki::peer::{NodeIdentity, sign_node_csr};
use keel_web::Shared;
use keel_web::events::{EventKind, Source};
use tokio_util::sync::CancellationToken;

use super::PeerTls;
use super::files::{self, BOOTSTRAP_CA, Identity};
use super::issue::{bootstrap_ca, bundle};
use super::obtain::new_key_and_csr;

const PERIOD: Duration = Duration::from_secs(2);

/// Whether a certificate issued over `[not_before, not_after]` is due at
/// `now`: past two thirds of its life.
pub fn due(not_before: u64, not_after: u64, now: u64) -> bool {
    let life = not_after.saturating_sub(not_before);
    now >= not_before.saturating_add(life / 3 * 2)
}

fn first_der(pem: &str) -> Option<Vec<u8>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .and_then(Result::ok)
        .map(|c| c.as_ref().to_vec())
}

/// Whether the certificate `cert_der` was signed by the CA in `ca_pem`.
pub fn signed_by_der(cert_der: &[u8], ca_pem: &str) -> bool {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let Some(ca) = first_der(ca_pem) else {
        return false;
    };
    let (Ok((_, cert)), Ok((_, ca))) = (
        X509Certificate::from_der(cert_der),
        X509Certificate::from_der(&ca),
    ) else {
        return false;
    };
    cert.verify_signature(Some(ca.public_key())).is_ok()
}

fn signed_by(cert_pem: &str, ca_pem: &str) -> bool {
    first_der(cert_pem).is_some_and(|der| signed_by_der(&der, ca_pem))
}

/// One pass.
async fn pass(tls: &PeerTls, cp: &ControlPlane, shared: &Shared) -> Result<(), String> {
    let cas = cp.local(|s| s.peer.cas.clone());
    if cas.is_empty() {
        if let Some(ca) = bootstrap_ca(tls) {
            tracing::info!("publishing the peer CA to the cluster");
            match cp
                .write(Request::Apply(Command::InitPeerCa { ca }), None)
                .await
            {
                Ok(_) | Err(keel_raft::Error::Domain(keel_raft::DomainError::Conflict(_))) => {}
                Err(e) => return Err(format!("publishing the peer CA: {e}")),
            }
        }
        return Ok(());
    }
    if let Some(local) = bootstrap_ca(tls)
        && cas
            .iter()
            .any(|c| c.certificate_pem == local.certificate_pem)
    {
        let _ = std::fs::remove_file(tls.dir.join(BOOTSTRAP_CA));
        tracing::info!("the peer CA is replicated; dropped this node's own copy");
    }
    let Some(mut stored) = files::load(&tls.dir, &tls.keeper)? else {
        return Ok(());
    };
    let trust = bundle(&cas);
    if stored.trust_pem != trust {
        files::store_trust(&tls.dir, &trust)?;
        stored.trust_pem = trust.clone();
        tls.install(&stored.parse()?)?;
        tracing::info!(cas = cas.len(), "trusted peer CAs updated");
        shared.events.record(
            EventKind::Lifecycle,
            Source::Node,
            format!("trusted peer CAs updated ({} trusted)", cas.len()),
        );
    }
    let info = stored.parse()?.info;
    let now = now_ms();
    let signer = &cas[0];
    let rotated = !signed_by(&stored.cert_pem, &signer.certificate_pem);
    if !due(info.not_before, info.not_after, now) && !rotated {
        return Ok(());
    }
    let (key, csr) = new_key_and_csr()?;
    let identity = NodeIdentity {
        cluster: info.identity.cluster.clone(),
        node: tls.node,
    };
    let cert_pem = sign_node_csr(signer, &csr, &identity, &tls.hosts, now, tls.ttl_ms)
        .map_err(|e| e.to_string())?;
    let renewed = Identity {
        key_pem: key,
        cert_pem,
        trust_pem: trust,
    };
    let parsed = files::store(&tls.dir, &tls.keeper, &renewed)?;
    tls.install(&parsed)?;
    tracing::info!(
        old = %info.serial,
        new = %parsed.info.serial,
        not_after = %keel_raft::clock::to_rfc3339(parsed.info.not_after),
        signer_changed = rotated,
        "node certificate renewed"
    );
    shared.events.record(
        EventKind::Lifecycle,
        Source::Node,
        format!(
            "node certificate renewed (serial {} replaces {})",
            parsed.info.serial, info.serial
        ),
    );
    Ok(())
}

/// Runs until `stop`.
pub async fn run(
    tls: Arc<PeerTls>,
    cp: ControlPlane,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    loop {
        if let Err(e) = pass(&tls, &cp, &shared).await {
            tracing::warn!(error = %e, "peer certificate upkeep failed; retrying");
        }
        let left = tls.not_after_ms.load(Ordering::Acquire) as i64 - now_ms() as i64;
        shared.metrics.node_cert_expiry_seconds.set(left / 1000);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(PERIOD) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::due;

    #[test]
    fn a_certificate_is_due_at_two_thirds_of_its_life() {
        assert!(!due(0, 30, 19));
        assert!(due(0, 30, 20));
        assert!(due(0, 30, 40));
    }
}

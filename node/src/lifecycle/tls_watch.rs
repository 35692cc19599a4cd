//! Certificate rotation on every node: watches the listeners' TLS
//! certificate and key files and swaps the new pair in when they change
//! (for example after `keel cert renew` rotated them), with no restart.
//! A pair that does not load (a rotation half done, a bad file) is logged
//! and the pair in force stays; the next change is picked up.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use keel_web::TlsSlot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::tls::TlsMaterial;

const POLL: Duration = Duration::from_secs(2);

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// A running watcher.
pub struct TlsWatcher {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl TlsWatcher {
    /// Starts watching the files `material` was loaded from.
    pub fn start(material: &TlsMaterial, slot: TlsSlot) -> Self {
        let stop = CancellationToken::new();
        let files: Vec<PathBuf> = [
            Some(material.cert_path.clone()),
            Some(material.key_path.clone()),
        ]
        .into_iter()
        .flatten()
        .collect();
        let (cert, key, ca) = (
            material.cert_path.clone(),
            material.key_path.clone(),
            material.ca_path.clone(),
        );
        let cancel = stop.clone();
        let task = tokio::spawn(async move {
            let mut seen: Vec<_> = files.iter().map(|f| stamp(f)).collect();
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(POLL) => {}
                }
                let now: Vec<_> = files.iter().map(|f| stamp(f)).collect();
                if now == seen {
                    continue;
                }
                match TlsMaterial::load(Some(&cert), Some(&key), ca.as_deref()) {
                    Ok(Some(m)) => {
                        slot.set(m.server);
                        seen = now;
                        tracing::info!(cert = %cert.display(), "TLS certificate files changed; new connections use them");
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "changed TLS files do not load yet; keeping the pair in force")
                    }
                }
            }
        });
        TlsWatcher { stop, task }
    }

    /// Stops the watcher and waits for it.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

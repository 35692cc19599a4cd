//! The audit log: every authenticated request, every refusal and every
//! membership, seal, unseal, reload and token-expiry event, as hash-chained
//! JSON lines in a size-rotated file ([`file`], [`chain`]), checked by
//! `keel audit verify` ([`verify`]).
//!
//! Secrets never reach it: bodies are not recorded, tokens appear by
//! accessor, and a presented token that matched nothing appears as an HMAC
//! under a per-cluster key derived from the cluster secret (so every node
//! writes the same HMAC for the same value, and an operator holding a
//! suspect value can compute it with `POST /v1/sys/audit/hash`).
//!
//! Nothing is written before the node has validated its data directory
//! ([`Audit::open`]): a start refused for a wrong or foreign data directory
//! must leave it untouched (lesson 5), so events until then are held in
//! memory, written on open and dropped if the start fails.
//!
//! With `required`, a request whose request line cannot be written does not
//! run (503 `audit_unavailable`), and a refusal or answer whose line cannot
//! be written is answered 503 instead: nothing goes unaudited. Without it,
//! a failing audit file is logged (once per failure streak) and requests
//! are served.

pub mod chain;
pub mod entry;
pub mod file;
pub mod trail;
pub mod verify;

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use keel_raft::clock::{now_ms, to_rfc3339};
use ring::hmac;

use entry::{Entry, EntryKind, Happened};
use file::Appender;

/// Where and how the audit log is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// The audit file (`None`: audit off).
    pub path: Option<PathBuf>,
    /// Size past which the file is rotated.
    pub max_bytes: u64,
    /// Rotated files kept.
    pub keep: usize,
    /// Refuse requests (503) rather than serve them unaudited.
    pub required: bool,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            path: None,
            max_bytes: 64 << 20,
            keep: 5,
            required: false,
        }
    }
}

/// The audit log could not be written.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the audit log cannot be written")]
pub struct AuditUnavailable;

/// The node's audit log.
pub struct Audit {
    node: String,
    settings: AuditSettings,
    key: hmac::Key,
    appender: Option<Mutex<Appender>>,
    failing: AtomicBool,
    failures: AtomicU64,
    /// Entries recorded before [`Audit::open`]; `None` once open.
    held: Mutex<Option<Vec<String>>>,
}

/// Most entries held before open (events of a start; never requests).
const HELD_MAX: usize = 1024;

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("node", &self.node)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Audit {
    /// The audit log of node `node`, writing per `settings`, with HMACs
    /// keyed from `cluster_secret`.
    pub fn new(node: impl Into<String>, settings: AuditSettings, cluster_secret: &[u8]) -> Self {
        let derive = hmac::Key::new(hmac::HMAC_SHA256, cluster_secret);
        let key_bytes = hmac::sign(&derive, b"keel audit hmac key v1");
        let appender = settings
            .path
            .clone()
            .map(|p| Mutex::new(Appender::new(p, settings.max_bytes, settings.keep)));
        Audit {
            node: node.into(),
            key: hmac::Key::new(hmac::HMAC_SHA256, key_bytes.as_ref()),
            settings,
            appender,
            failing: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            held: Mutex::new(Some(Vec::new())),
        }
    }

    /// Starts writing (once the data directory is validated): entries
    /// held until now are written first, in order.
    pub fn open(&self) -> Result<(), AuditUnavailable> {
        let held = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default();
        let mut result = Ok(());
        for json in &held {
            if self.append(json).is_err() {
                result = Err(AuditUnavailable);
            }
        }
        result
    }

    /// No audit log (in-process tests of other parts).
    pub fn disabled() -> Self {
        Audit::new("", AuditSettings::default(), b"")
    }

    /// Whether requests must be refused rather than served unaudited.
    pub fn required(&self) -> bool {
        self.settings.required && self.appender.is_some()
    }

    /// Whether an audit file is configured.
    pub fn enabled(&self) -> bool {
        self.appender.is_some()
    }

    /// Whether the last write failed.
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Lines that could not be written since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// `hmac-sha256:<hex>` of `value` under the cluster's audit key.
    pub fn hmac(&self, value: &str) -> String {
        let tag = hmac::sign(&self.key, value.as_bytes());
        format!("hmac-sha256:{}", chain::hex(tag.as_ref()))
    }

    /// A new entry of `kind`, stamped now by this node.
    pub fn entry(&self, kind: EntryKind) -> Entry {
        Entry {
            kind,
            time: to_rfc3339(now_ms()),
            node: self.node.clone(),
            request_id: None,
            auth: None,
            request: None,
            response: None,
            event: None,
        }
    }

    /// Writes `entry`. Off: always Ok.
    pub fn write(&self, entry: &Entry) -> Result<(), AuditUnavailable> {
        if self.appender.is_none() {
            return Ok(());
        }
        let json = serde_json::to_string(entry).map_err(|_| AuditUnavailable)?;
        {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(held) = held.as_mut() {
                if held.len() < HELD_MAX {
                    held.push(json);
                }
                return Ok(());
            }
        }
        self.append(&json)
    }

    fn append(&self, json: &str) -> Result<(), AuditUnavailable> {
        let Some(appender) = &self.appender else {
            return Ok(());
        };
        let result = appender
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(json);
        match result {
            Ok(_) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("the audit log is written again");
                }
                Ok(())
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        error = %e,
                        required = self.settings.required,
                        "the audit log cannot be written"
                    );
                }
                Err(AuditUnavailable)
            }
        }
    }

    /// Records a node-side event (best effort: a failure is counted and
    /// logged; the event has already happened).
    pub fn event(&self, kind: &str, source: &str, message: &str) {
        let mut entry = self.entry(EntryKind::Event);
        entry.event = Some(Happened {
            kind: kind.to_string(),
            source: source.to_string(),
            message: message.to_string(),
        });
        let _ = self.write(&entry);
    }

    /// Flushes written lines to disk (on stop).
    pub fn sync(&self) {
        if let Some(appender) = &self.appender
            && let Err(e) = appender.lock().unwrap_or_else(|e| e.into_inner()).sync()
        {
            tracing::warn!(error = %e, "syncing the audit log failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmacs_depend_on_the_cluster_secret_and_never_show_the_value() {
        let a = Audit::new("n1", AuditSettings::default(), b"secret-a");
        let b = Audit::new("n2", AuditSettings::default(), b"secret-a");
        let c = Audit::new("n1", AuditSettings::default(), b"secret-b");
        let value = "keel.0123456789abcdef";
        assert_eq!(a.hmac(value), b.hmac(value));
        assert_ne!(a.hmac(value), c.hmac(value));
        assert!(a.hmac(value).starts_with("hmac-sha256:"));
        assert!(!a.hmac(value).contains(value));
    }

    #[test]
    fn required_audit_refuses_when_the_file_cannot_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::os::unix::fs::symlink("/dev/full", &path).unwrap();
        let audit = Audit::new(
            "n1",
            AuditSettings {
                path: Some(path),
                required: true,
                ..AuditSettings::default()
            },
            b"s",
        );
        assert!(audit.required());
        // Held (and so not failing) until the node opens it.
        assert!(audit.write(&audit.entry(EntryKind::Event)).is_ok());
        assert!(audit.open().is_err());
        assert!(audit.write(&audit.entry(EntryKind::Event)).is_err());
        assert!(audit.failing());
        assert_eq!(audit.failures(), 2);
    }
}

//! The optional TOML configuration file. Its keys are the flag names with
//! underscores (`node_id`, `data_dir`, `peers`, ...); unknown keys are an
//! error, so a typo is caught at start rather than silently ignored.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, err};
use crate::cli::ServerArgs;

/// The file's contents.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    dev: Option<bool>,
    node_id: Option<u64>,
    data_dir: Option<PathBuf>,
    api_listen: Option<String>,
    peer_listen: Option<String>,
    advertise_api: Option<String>,
    advertise_peer: Option<String>,
    peers: Option<String>,
    bootstrap_expect: Option<usize>,
    join: Option<String>,
    cluster_id: Option<String>,
    admin_token_file: Option<PathBuf>,
    cluster_secret_file: Option<PathBuf>,
    shutdown_timeout: Option<String>,
    log_format: Option<String>,
    log_level: Option<String>,
    heartbeat_interval: Option<String>,
    election_timeout: Option<String>,
    snapshot_threshold: Option<u64>,
    max_clock_offset: Option<String>,
    lease_max_ttl: Option<String>,
    pki_max_ttl: Option<String>,
    pki_retention: Option<String>,
    idempotency_retention: Option<String>,
    max_accounts: Option<u64>,
    max_leases: Option<u64>,
    max_certificates: Option<u64>,
    pki_ca_cert_file: Option<PathBuf>,
    pki_ca_key_file: Option<PathBuf>,
    pki_allowed_domains: Option<String>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    tls_ca_file: Option<PathBuf>,
    max_body_bytes: Option<usize>,
    rate_limit: Option<u32>,
    rate_limit_burst: Option<u32>,
    audit_file: Option<PathBuf>,
    audit_max_bytes: Option<u64>,
    audit_keep: Option<usize>,
    audit_required: Option<bool>,
}

impl FileConfig {
    /// Reads and parses a TOML file. Relative paths inside it are taken
    /// relative to the file's directory.
    pub fn read(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(format!("--config {}: {e}", path.display())))?;
        let mut cfg: FileConfig =
            toml::from_str(&text).map_err(|e| err(format!("--config {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut cfg.data_dir,
            &mut cfg.admin_token_file,
            &mut cfg.cluster_secret_file,
            &mut cfg.pki_ca_cert_file,
            &mut cfg.pki_ca_key_file,
            &mut cfg.tls_cert_file,
            &mut cfg.tls_key_file,
            &mut cfg.tls_ca_file,
            &mut cfg.audit_file,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(cfg)
    }

    /// Fills every value the flags and variables left unset.
    pub fn merged_under(self, mut a: ServerArgs) -> ServerArgs {
        a.dev = a.dev || self.dev.unwrap_or(false);
        a.audit_required = a.audit_required || self.audit_required.unwrap_or(false);
        macro_rules! fill {
            ($($field:ident),*) => { $( if a.$field.is_none() { a.$field = self.$field; } )* };
        }
        fill!(
            node_id,
            data_dir,
            api_listen,
            peer_listen,
            advertise_api,
            advertise_peer,
            peers,
            bootstrap_expect,
            join,
            cluster_id,
            admin_token_file,
            cluster_secret_file,
            shutdown_timeout,
            log_format,
            log_level,
            heartbeat_interval,
            election_timeout,
            snapshot_threshold,
            max_clock_offset,
            lease_max_ttl,
            pki_max_ttl,
            pki_retention,
            idempotency_retention,
            max_accounts,
            max_leases,
            max_certificates,
            pki_ca_cert_file,
            pki_ca_key_file,
            pki_allowed_domains,
            tls_cert_file,
            tls_key_file,
            tls_ca_file,
            max_body_bytes,
            rate_limit,
            rate_limit_burst,
            audit_file,
            audit_max_bytes,
            audit_keep
        );
        a
    }
}

//! Configuration: flags, `KEEL_*` variables and an optional TOML file,
//! merged (flags and variables win over the file, the file over defaults)
//! and validated whole before anything touches disk.
//!
//! [`Config::load`] reads every file the configuration names (tokens, the
//! cluster secret, TLS material, an imported CA) so that a node never
//! starts, and a reload never applies, with a value missing or unreadable.

mod file;
mod peers;
mod secrets;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use keel_raft::RaftSettings;
use keel_raft::clock::parse_duration_ms;
use keel_raft::domain::quota::Quotas;
use keel_raft::domain::tidy::Retention;
use keel_raft::pki::{PkiSettings, SecretPem};
use keel_web::audit::AuditSettings;
use keel_web::rate_limit::RateLimit;

use crate::cli::ServerArgs;
use crate::tls::TlsMaterial;
pub use peers::{hostname, ordinal_of, parse_peers};
pub use secrets::UnsealKey;
use secrets::{random_secret, read_cluster_secret, read_tokens, read_unseal_key};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A validated node configuration.
#[derive(Clone)]
pub struct Config {
    /// Development mode.
    pub dev: bool,
    /// This node's id.
    pub node_id: u64,
    /// Data directory.
    pub data_dir: PathBuf,
    /// API listen address.
    pub api_listen: SocketAddr,
    /// Peer listen address.
    pub peer_listen: SocketAddr,
    /// Advertised API address (host:port).
    pub advertise_api: String,
    /// Advertised peer address (host:port).
    pub advertise_peer: String,
    /// Bootstrap peers: id to peer address (this node included).
    pub peers: BTreeMap<u64, String>,
    /// Nodes that must answer before bootstrap.
    pub bootstrap_expect: usize,
    /// Peer address of a cluster member to join through.
    pub join: Option<String>,
    /// Cluster id to bootstrap with and to insist on.
    pub cluster_id: Option<String>,
    /// Admin tokens (secret).
    pub admin_tokens: Vec<String>,
    /// Cluster secret (secret).
    pub cluster_secret: String,
    /// The auto-unseal key, if a key file is configured (`--dev` makes
    /// one in its data directory instead).
    pub unseal_key: Option<UnsealKey>,
    /// Drain deadline at shutdown.
    pub shutdown_timeout: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_level: String,
    /// Replicated-core settings.
    pub raft: RaftSettings,
    /// TLS for both listeners, if configured.
    pub tls: Option<TlsMaterial>,
    /// Mutual TLS between nodes with certificates from keel's own peer
    /// CA: on unless `--dev` or the operator brings certificates
    /// (`--tls-*`).
    pub peer_mtls: bool,
    /// Serve the API with the node certificate.
    pub api_tls: bool,
    /// A join token to enrol with (secret).
    pub join_token: Option<JoinToken>,
    /// Life of the node certificates keel issues.
    pub node_cert_ttl: Duration,
    /// Largest API request body.
    pub max_body_bytes: usize,
    /// Requests per second per admin token (0: no limit).
    pub rate_limit: RateLimit,
    /// Largest wall-clock offset tolerated from a majority of the voters.
    pub max_clock_offset: Duration,
    /// The audit log.
    pub audit: AuditSettings,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("dev", &self.dev)
            .field("node_id", &self.node_id)
            .field("data_dir", &self.data_dir)
            .field("api_listen", &self.api_listen)
            .field("peer_listen", &self.peer_listen)
            .field("advertise_api", &self.advertise_api)
            .field("advertise_peer", &self.advertise_peer)
            .field("peers", &self.peers)
            .field("bootstrap_expect", &self.bootstrap_expect)
            .field("join", &self.join)
            .field("cluster_id", &self.cluster_id)
            .field(
                "admin_tokens",
                &format_args!("<{} redacted>", self.admin_tokens.len()),
            )
            .field("cluster_secret", &"<redacted>")
            .field(
                "unseal_key",
                &self.unseal_key.as_ref().map(|_| "<redacted>"),
            )
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("max_clock_offset", &self.max_clock_offset)
            .field("tls", &self.tls.is_some())
            .field("peer_mtls", &self.peer_mtls)
            .field("api_tls", &self.api_tls)
            .field(
                "join_token",
                &self.join_token.as_ref().map(|_| "<redacted>"),
            )
            .field("node_cert_ttl", &self.node_cert_ttl)
            .field("audit", &self.audit)
            .finish()
    }
}

/// A join token: the fingerprint of the peer CA it pins, and its secret.
#[derive(Clone)]
pub struct JoinToken {
    /// SHA-256 of the peer CA certificate, hex.
    pub ca_fingerprint: String,
    /// The secret the cluster knows by its digest.
    pub secret: String,
}

impl JoinToken {
    /// Parses `keel1:<ca fingerprint>:<secret>` (64 hex digits each).
    pub fn parse(s: &str) -> Result<JoinToken, ConfigError> {
        let hex64 = |p: &str| p.len() == 64 && p.bytes().all(|b| b.is_ascii_hexdigit());
        match s.trim().split(':').collect::<Vec<_>>().as_slice() {
            ["keel1", fp, secret] if hex64(fp) && hex64(secret) => Ok(JoinToken {
                ca_fingerprint: fp.to_ascii_lowercase(),
                secret: secret.to_ascii_lowercase(),
            }),
            _ => Err(err(
                "--join-token must be a token as `keel operator join-token create` prints it (keel1:<fingerprint>:<secret>)",
            )),
        }
    }

    /// The token as printed.
    pub fn render(&self) -> String {
        format!("keel1:{}:{}", self.ca_fingerprint, self.secret)
    }
}

/// A configuration error: what is wrong and where.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

fn err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

fn duration(what: &str, value: Option<String>, default_ms: u64) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(Duration::from_millis(default_ms)),
        Some(v) => parse_duration_ms(&v)
            .map(Duration::from_millis)
            .map_err(|e| err(format!("{what}: {e}"))),
    }
}

fn socket(what: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|_| err(format!("{what} must be ip:port (got `{value}`)")))
}

fn host_port(what: &str, value: &str) -> Result<String, ConfigError> {
    match value.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(value.to_string())
        }
        _ => Err(err(format!("{what} must be host:port (got `{value}`)"))),
    }
}

/// The address others should use for a listener bound to `listen`.
fn advertised(listen: SocketAddr) -> String {
    if listen.ip().is_unspecified() {
        format!("{}:{}", hostname(), listen.port())
    } else {
        listen.to_string()
    }
}

/// Where a node is and whom it forms a cluster with.
struct Placement {
    node_id: u64,
    data_dir: PathBuf,
    api_listen: SocketAddr,
    peer_listen: SocketAddr,
    advertise_api: String,
    advertise_peer: String,
    peers: BTreeMap<u64, String>,
    bootstrap_expect: usize,
    join: Option<String>,
}

impl Config {
    /// Loads and validates the configuration from flags/env, the TOML file
    /// they name, and every file the result names. `previous` (on reload)
    /// keeps dev-mode generated secrets stable.
    pub fn load(args: &ServerArgs, previous: Option<&Config>) -> Result<Config, ConfigError> {
        let a = match &args.config {
            Some(path) => file::layered(file::read(path)?, args.clone())?,
            None => args.clone(),
        };
        let dev = a.dev;
        // The files an imported CA comes from are read and judged first:
        // their errors are the ones an operator most needs to see.
        let policy = (pki_settings(&a)?, retention(&a)?, quotas(&a)?);
        let at = placement(&a)?;
        if let Some(id) = &a.cluster_id
            && (id.is_empty()
                || id.len() > 64
                || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err(err(
                "--cluster-id must be 1 to 64 letters, digits or hyphens",
            ));
        }
        let (admin_tokens, cluster_secret) = secrets(&a, &at, previous)?;
        let shutdown_timeout = duration("--shutdown-timeout", a.shutdown_timeout.clone(), 30_000)?;
        let (log_format, log_level) = logging(&a)?;
        let mut raft = raft_settings(&a, at.node_id, policy)?;
        let max_clock_offset = duration("--max-clock-offset", a.max_clock_offset.clone(), 500)?;
        if max_clock_offset.is_zero() {
            return Err(err("--max-clock-offset must be above zero"));
        }
        let tls = TlsMaterial::load(
            a.tls_cert_file.as_deref(),
            a.tls_key_file.as_deref(),
            a.tls_ca_file.as_deref(),
        )
        .map_err(err)?;
        let max_body_bytes = a.max_body_bytes.unwrap_or(1 << 20);
        raft.max_peer_message_bytes = a
            .peer_max_message_bytes
            .unwrap_or(keel_raft::settings::DEFAULT_MAX_PEER_MESSAGE_BYTES);
        check_body_limits(max_body_bytes, raft.max_peer_message_bytes)?;
        let per_second = a.rate_limit.unwrap_or(0);
        let rate_limit = RateLimit {
            per_second,
            burst: a.rate_limit_burst.unwrap_or(per_second),
        };
        if per_second > 0 && rate_limit.burst == 0 {
            return Err(err("--rate-limit-burst must be at least 1"));
        }
        let audit = audit_settings(&a, &at.data_dir)?;
        let node_cert_ttl = duration("--node-cert-ttl", a.node_cert_ttl.clone(), 30 * 86_400_000)?;
        if node_cert_ttl < Duration::from_secs(10) {
            return Err(err("--node-cert-ttl must be at least 10s"));
        }
        let join_token = a.join_token.as_deref().map(JoinToken::parse).transpose()?;
        let peer_mtls = match a.peer_auth.as_deref() {
            None => !dev && tls.is_none(),
            Some("mtls") if tls.is_some() => {
                return Err(err(
                    "--peer-auth mtls uses keel's own peer CA and cannot be combined with --tls-* files",
                ));
            }
            Some("mtls") => true,
            Some("secret") => false,
            Some(other) => {
                return Err(err(format!(
                    "--peer-auth must be `mtls` or `secret` (got `{other}`)"
                )));
            }
        };
        if a.api_tls && !peer_mtls {
            return Err(err(
                "--api-tls serves the node certificate from keel's peer CA: it needs --peer-auth mtls (with --tls-* files the API already serves TLS)",
            ));
        }
        if join_token.is_some() && !peer_mtls {
            return Err(err("--join-token needs --peer-auth mtls"));
        }
        let unseal_key = a
            .unseal_key_file
            .as_deref()
            .map(read_unseal_key)
            .transpose()?;
        Ok(Config {
            dev,
            node_id: at.node_id,
            data_dir: at.data_dir,
            api_listen: at.api_listen,
            peer_listen: at.peer_listen,
            advertise_api: at.advertise_api,
            advertise_peer: at.advertise_peer,
            peers: at.peers,
            bootstrap_expect: at.bootstrap_expect,
            join: at.join,
            cluster_id: a.cluster_id,
            admin_tokens,
            cluster_secret,
            unseal_key,
            shutdown_timeout,
            log_format,
            log_level,
            raft,
            peer_mtls,
            api_tls: a.api_tls,
            tls,
            join_token,
            node_cert_ttl,
            max_body_bytes,
            rate_limit,
            max_clock_offset,
            audit,
        })
    }
}

/// The node's id, data directory, addresses and peers.
fn placement(a: &ServerArgs) -> Result<Placement, ConfigError> {
    let dev = a.dev;
    let node_id = match a.node_id {
        Some(id) => id,
        None if dev => 1,
        None => ordinal_of(&hostname()).ok_or_else(|| {
            err("--node-id is required (or a hostname ending in -<ordinal>, as in a StatefulSet)")
        })?,
    };
    if node_id > keel_raft::types::MAX_NODE_NAME {
        return Err(err(format!(
            "--node-id must be between 0 and {} (got {node_id})",
            keel_raft::types::MAX_NODE_NAME
        )));
    }
    let data_dir = match &a.data_dir {
        Some(d) => d.clone(),
        None if dev => PathBuf::from("keel-data"),
        None => return Err(err("--data-dir is required")),
    };
    let default_host = if dev { "127.0.0.1" } else { "0.0.0.0" };
    let api_listen = socket(
        "--api-listen",
        &a.api_listen
            .clone()
            .unwrap_or_else(|| format!("{default_host}:7400")),
    )?;
    let peer_listen = socket(
        "--peer-listen",
        &a.peer_listen
            .clone()
            .unwrap_or_else(|| format!("{default_host}:7401")),
    )?;
    let mut peers = match &a.peers {
        Some(p) => parse_peers(p).map_err(err)?,
        None => BTreeMap::new(),
    };
    let advertise_api = host_port(
        "--advertise-api",
        &a.advertise_api
            .clone()
            .unwrap_or_else(|| advertised(api_listen)),
    )?;
    let advertise_peer = match &a.advertise_peer {
        Some(p) => host_port("--advertise-peer", p)?,
        None => peers
            .get(&node_id)
            .cloned()
            .unwrap_or_else(|| advertised(peer_listen)),
    };
    if dev && peers.is_empty() {
        peers.insert(node_id, advertise_peer.clone());
    }
    // A node missing from its own peer list never bootstraps: it joins
    // the cluster those peers form (how a StatefulSet scales out).
    let bootstrap_expect = a.bootstrap_expect.unwrap_or(peers.len());
    if !peers.is_empty() && (bootstrap_expect == 0 || bootstrap_expect > peers.len()) {
        return Err(err(format!(
            "--bootstrap-expect must be between 1 and the number of peers ({})",
            peers.len()
        )));
    }
    let join = a
        .join
        .as_ref()
        .map(|j| host_port("--join", j))
        .transpose()?;
    if peers.is_empty() && join.is_none() {
        return Err(err(
            "give --peers (to bootstrap or resume a cluster) or --join (to join one)",
        ));
    }
    Ok(Placement {
        node_id,
        data_dir,
        api_listen,
        peer_listen,
        advertise_api,
        advertise_peer,
        peers,
        bootstrap_expect,
        join,
    })
}

/// The admin tokens and the cluster secret: read from their files, or
/// generated (and kept across reloads) where a node may do without.
fn secrets(
    a: &ServerArgs,
    at: &Placement,
    previous: Option<&Config>,
) -> Result<(Vec<String>, String), ConfigError> {
    let admin_tokens = match &a.admin_token_file {
        Some(path) => read_tokens(path)?,
        None if a.dev => previous
            .map(|p| p.admin_tokens.clone())
            .unwrap_or_else(|| vec![random_secret()]),
        None => return Err(err("--admin-token-file is required (outside --dev)")),
    };
    let cluster_secret = match &a.cluster_secret_file {
        Some(path) => read_cluster_secret(path)?,
        None if a.dev || at.peers.len() == 1 && at.join.is_none() => previous
            .map(|p| p.cluster_secret.clone())
            .unwrap_or_else(random_secret),
        None => {
            return Err(err(
                "--cluster-secret-file is required for a multi-node cluster",
            ));
        }
    };
    Ok((admin_tokens, cluster_secret))
}

/// The log format and filter.
fn logging(a: &ServerArgs) -> Result<(LogFormat, String), ConfigError> {
    let log_format = match a.log_format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(err(format!(
                "--log-format must be text or json (got `{other}`)"
            )));
        }
    };
    let log_level = a
        .log_level
        .clone()
        .unwrap_or_else(|| "info,openraft=warn".into());
    tracing_subscriber::EnvFilter::try_new(&log_level)
        .map_err(|e| err(format!("--log-level `{log_level}`: {e}")))?;
    Ok((log_format, log_level))
}

/// Raft timing, snapshots and the replicated policy (its PKI, retention
/// and quota parts read first, by [`Config::load`]).
fn raft_settings(
    a: &ServerArgs,
    node_id: u64,
    (pki, retention, quotas): (PkiSettings, Retention, Quotas),
) -> Result<RaftSettings, ConfigError> {
    let heartbeat = duration("--heartbeat-interval", a.heartbeat_interval.clone(), 100)?;
    let election = duration("--election-timeout", a.election_timeout.clone(), 300)?;
    if heartbeat.is_zero() || election < heartbeat * 3 {
        return Err(err(
            "--election-timeout must be at least three heartbeat intervals",
        ));
    }
    let mut raft = RaftSettings::for_node(node_id);
    raft.heartbeat_interval = heartbeat;
    raft.election_timeout_min = election;
    raft.election_timeout_max = election * 2;
    if let Some(n) = a.snapshot_threshold {
        if n < 10 {
            return Err(err("--snapshot-threshold must be at least 10"));
        }
        raft.snapshot_threshold = n;
        raft.logs_kept_after_snapshot = raft.logs_kept_after_snapshot.min(n);
    }
    raft.policy.lease_default_max_ttl_ms =
        duration("--lease-max-ttl", a.lease_max_ttl.clone(), 24 * 3_600_000)?.as_millis() as u64;
    raft.policy.pki = pki;
    raft.policy.retention = retention;
    raft.policy.quotas = quotas;
    Ok(raft)
}

/// Where the audit log goes and how it rotates.
fn audit_settings(
    a: &ServerArgs,
    data_dir: &std::path::Path,
) -> Result<AuditSettings, ConfigError> {
    let audit = AuditSettings {
        path: match &a.audit_file {
            None => Some(data_dir.join("audit").join("audit.log")),
            Some(p) if p.as_os_str() == "none" => None,
            Some(p) if p.as_os_str().is_empty() => {
                return Err(err("--audit-file must be a path or `none`"));
            }
            Some(p) => Some(p.clone()),
        },
        max_bytes: a.audit_max_bytes.unwrap_or(64 << 20),
        keep: a.audit_keep.unwrap_or(5),
        required: a.audit_required,
    };
    if audit.max_bytes < 4096 {
        return Err(err("--audit-max-bytes must be at least 4096"));
    }
    if audit.required && audit.path.is_none() {
        return Err(err("--audit-required needs an audit file (not `none`)"));
    }
    Ok(audit)
}

/// Smallest peer message limit: room for a 1 KiB API body.
const MIN_PEER_MESSAGE_BYTES: usize = 2 << 20;

/// The largest API body a peer message limit allows: one accepted request
/// becomes one log entry, which must fit in one peer message with its
/// stamps (ids, times, signatures; at most ~1 MiB for a 1000-item batch)
/// and a MessagePack encoding no more than twice its JSON.
pub fn max_body_for(peer_max_message_bytes: usize) -> usize {
    peer_max_message_bytes.saturating_sub(1 << 20) / 2
}

fn check_body_limits(
    max_body_bytes: usize,
    peer_max_message_bytes: usize,
) -> Result<(), ConfigError> {
    if peer_max_message_bytes < MIN_PEER_MESSAGE_BYTES {
        return Err(err(format!(
            "the peer message limit must be at least {MIN_PEER_MESSAGE_BYTES} bytes"
        )));
    }
    if max_body_bytes < 1024 {
        return Err(err("--max-body-bytes must be at least 1024"));
    }
    let most = max_body_for(peer_max_message_bytes);
    if max_body_bytes > most {
        return Err(err(format!(
            "--max-body-bytes {max_body_bytes} is too large: at most {most} (half the peer \
             message limit of {peer_max_message_bytes} bytes, less 1 MiB), so that every accepted \
             request fits in one replication message"
        )));
    }
    Ok(())
}

/// `--pki-retention` and `--idempotency-retention`.
fn retention(a: &ServerArgs) -> Result<Retention, ConfigError> {
    let defaults = Retention::default();
    let pki_ms = duration("--pki-retention", a.pki_retention.clone(), defaults.pki_ms)?;
    let idempotency_ms = duration(
        "--idempotency-retention",
        a.idempotency_retention.clone(),
        defaults.idempotency_ms,
    )?;
    if idempotency_ms < Duration::from_secs(1) {
        return Err(err("--idempotency-retention must be at least 1s"));
    }
    Ok(Retention {
        pki_ms: pki_ms.as_millis() as u64,
        idempotency_ms: idempotency_ms.as_millis() as u64,
    })
}

/// `--max-accounts`, `--max-leases`, `--max-certificates`.
fn quotas(a: &ServerArgs) -> Result<Quotas, ConfigError> {
    for (flag, value) in [
        ("--max-accounts", a.max_accounts),
        ("--max-leases", a.max_leases),
        ("--max-certificates", a.max_certificates),
    ] {
        if value == Some(0) {
            return Err(err(format!(
                "{flag} must be at least 1 (leave it unset for no quota)"
            )));
        }
    }
    Ok(Quotas {
        max_accounts: a.max_accounts,
        max_leases: a.max_leases,
        max_certificates: a.max_certificates,
    })
}

fn pki_settings(a: &ServerArgs) -> Result<PkiSettings, ConfigError> {
    let mut pki = PkiSettings {
        max_ttl_ms: duration("--pki-max-ttl", a.pki_max_ttl.clone(), 90 * 24 * 3_600_000)?
            .as_millis() as u64,
        ..PkiSettings::default()
    };
    match (&a.pki_ca_cert_file, &a.pki_ca_key_file) {
        (None, None) => {}
        (Some(cert), Some(key)) => {
            let cert_pem = std::fs::read_to_string(cert)
                .map_err(|e| err(format!("--pki-ca-cert-file {}: {e}", cert.display())))?;
            let key_pem = std::fs::read_to_string(key)
                .map_err(|e| err(format!("--pki-ca-key-file {}: {e}", key.display())))?;
            let key_pem = SecretPem::new(key_pem);
            keel_raft::pki::import_ca(&cert_pem, &key_pem)
                .map_err(|e| err(format!("CA import: {e}")))?;
            pki.import = Some((cert_pem, key_pem));
        }
        _ => return Err(err("--pki-ca-cert-file and --pki-ca-key-file go together")),
    }
    if let Some(domains) = &a.pki_allowed_domains {
        pki.allowed_domains = domains
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .collect();
    }
    Ok(pki)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_body_limit_stays_below_the_peer_message_limit() {
        let peer = keel_raft::settings::DEFAULT_MAX_PEER_MESSAGE_BYTES;
        assert!(check_body_limits(1 << 20, peer).is_ok());
        assert!(check_body_limits(max_body_for(peer), peer).is_ok());
        let e = check_body_limits(max_body_for(peer) + 1, peer).unwrap_err();
        assert!(e.to_string().contains("--max-body-bytes"), "{e}");
        assert!(check_body_limits(1 << 20, 1 << 20).is_err());
        assert!(check_body_limits(1 << 20, 2 << 20).is_err());
        assert!(check_body_limits(1 << 20, 3 << 20).is_ok());
    }
}

//! The command line: `keel server` runs a node; every other subcommand is a
//! client of a node's admin API (`KEEL_ADDR`, `KEEL_TOKEN`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

/// keel: a Raft-backed control plane for leases, accounts and certificates.
#[derive(Debug, Parser)]
#[command(name = "keel", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node.
    Server(Box<ServerArgs>),
    /// Probe a node's /readyz (exit 0 when ready); needs no token.
    Health(HealthArgs),
    /// Show the cluster as the addressed node sees it.
    Status(ClientArgs),
    /// Cluster membership.
    Cluster {
        /// Connection.
        #[command(flatten)]
        client: ClientArgs,
        /// The operation.
        #[command(subcommand)]
        op: ClusterOp,
    },
    /// Leases.
    Lease {
        /// Connection.
        #[command(flatten)]
        client: ClientArgs,
        /// The operation.
        #[command(subcommand)]
        op: LeaseOp,
    },
    /// Accounts.
    Account {
        /// Connection.
        #[command(flatten)]
        client: ClientArgs,
        /// The operation.
        #[command(subcommand)]
        op: AccountOp,
    },
    /// API tokens: create, list, look up, renew, revoke.
    Token {
        /// Connection.
        #[command(flatten)]
        client: ClientArgs,
        /// The operation.
        #[command(subcommand)]
        op: TokenOp,
    },
    /// The cluster CA and its certificates.
    Cert {
        /// Connection.
        #[command(flatten)]
        client: ClientArgs,
        /// The operation.
        #[command(subcommand)]
        op: CertOp,
    },
    /// The audit log (read locally; no node is contacted).
    Audit {
        /// The operation.
        #[command(subcommand)]
        op: AuditOp,
    },
    /// Node operations: seal, unseal, reload.
    Operator {
        /// Connection.
        #[command(flatten)]
        client: ClientArgs,
        /// The operation.
        #[command(subcommand)]
        op: OperatorOp,
    },
}

/// `keel audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditOp {
    /// Checks the hash chain through audit files (rotated files in any
    /// order, e.g. `audit.log*`) and reports the first broken or missing
    /// link; exit 1 if there is one.
    Verify {
        /// The audit files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// How a client reaches a node.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// API address of any node.
    #[arg(
        long,
        env = "KEEL_ADDR",
        default_value = "http://127.0.0.1:7400",
        global = true
    )]
    pub addr: String,
    /// Admin token.
    #[arg(long, env = "KEEL_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// CA certificate to trust for an https address.
    #[arg(long, env = "KEEL_CACERT", global = true)]
    pub cacert: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `keel health`.
#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// API address.
    #[arg(long, env = "KEEL_ADDR", default_value = "http://127.0.0.1:7400")]
    pub addr: String,
    /// Probe /livez instead of /readyz.
    #[arg(long)]
    pub live: bool,
    /// CA certificate to trust for an https address.
    #[arg(long, env = "KEEL_CACERT")]
    pub cacert: Option<PathBuf>,
}

/// `keel cluster ...`.
#[derive(Debug, Subcommand)]
pub enum ClusterOp {
    /// List members.
    Members,
    /// Add a member (learner, then voter once caught up).
    Add {
        /// Node id.
        id: u64,
        /// Its API address (host:port).
        #[arg(long)]
        api_addr: String,
        /// Its peer address (host:port).
        #[arg(long)]
        peer_addr: String,
        /// Keep it a learner.
        #[arg(long)]
        learner: bool,
    },
    /// Remove a member.
    Remove {
        /// Node id.
        id: u64,
    },
    /// Decommission a member for good: refused if the voters left could
    /// not tolerate a failure; leadership handed away if it leads; demoted,
    /// removed once the cluster commits without it; it stops and its data
    /// directory can never rejoin.
    Decommission {
        /// Node id.
        id: u64,
        /// Proceed even if the voters left could not tolerate a failure.
        #[arg(long)]
        force: bool,
    },
    /// Hand leadership to another voter.
    TransferLeader {
        /// The voter to lead; the most caught-up one if absent.
        #[arg(long)]
        to: Option<u64>,
    },
}

/// `keel lease ...`.
#[derive(Debug, Subcommand)]
pub enum LeaseOp {
    /// Grant a lease.
    Grant {
        /// TTL (seconds or 30s, 5m, 1h).
        #[arg(long)]
        ttl: String,
        /// Max TTL.
        #[arg(long)]
        max_ttl: Option<String>,
        /// Name.
        #[arg(long)]
        name: Option<String>,
        /// Owning account.
        #[arg(long)]
        account: Option<String>,
        /// Metadata entries `key=value`.
        #[arg(long = "meta", value_name = "KEY=VALUE")]
        metadata: Vec<String>,
        /// Grant this many alike leases, through `/v1/leases/batch` (one
        /// request and one log entry per 1000).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        count: u32,
    },
    /// Show a lease.
    Get {
        /// Lease id.
        id: String,
    },
    /// List leases.
    List {
        /// Name prefix.
        #[arg(long)]
        prefix: Option<String>,
        /// Owning account.
        #[arg(long)]
        account: Option<String>,
        /// State filter.
        #[arg(long)]
        state: Option<String>,
        /// Page size.
        #[arg(long)]
        limit: Option<usize>,
        /// Cursor.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Renew leases (several ids go through `/v1/leases/batch`).
    Renew {
        /// Lease ids.
        #[arg(required = true)]
        ids: Vec<String>,
        /// Increment (defaults to the lease's ttl).
        #[arg(long)]
        increment: Option<String>,
    },
    /// Revoke leases (several ids go through `/v1/leases/batch`).
    Revoke {
        /// Lease ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Revoke every lease whose name starts with a prefix.
    RevokePrefix {
        /// The prefix.
        prefix: String,
    },
}

/// `keel token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenOp {
    /// Create a token; its secret is printed once.
    Create {
        /// admin, operator, reader or tenant.
        #[arg(long)]
        role: String,
        /// The account of a tenant token.
        #[arg(long)]
        account: Option<String>,
        /// Time to live (seconds or 30s, 5m, 24h).
        #[arg(long)]
        ttl: String,
        /// Bound on its whole life (default: the ttl).
        #[arg(long)]
        max_ttl: Option<String>,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// List tokens (accessors only).
    List,
    /// Show a token by accessor, or the one in use with `self`.
    Lookup {
        /// Accessor, or `self`.
        accessor: String,
    },
    /// Renew the token in use.
    Renew {
        /// Increment (defaults to the token's ttl).
        #[arg(long)]
        increment: Option<String>,
    },
    /// Revoke a token by accessor.
    Revoke {
        /// Accessor.
        accessor: String,
    },
}

/// `keel account ...`.
#[derive(Debug, Subcommand)]
pub enum AccountOp {
    /// Create an account.
    Create {
        /// Name.
        name: String,
        /// Expiry (RFC 3339).
        #[arg(long)]
        expires_at: Option<String>,
        /// Lease limit.
        #[arg(long)]
        max_leases: Option<u64>,
        /// Certificate limit.
        #[arg(long)]
        max_certificates: Option<u64>,
    },
    /// Show an account.
    Get {
        /// Name.
        name: String,
    },
    /// List accounts.
    List {
        /// State filter.
        #[arg(long)]
        state: Option<String>,
    },
    /// Change expiry or limits.
    Update {
        /// Name.
        name: String,
        /// New expiry (RFC 3339), or `none`.
        #[arg(long)]
        expires_at: Option<String>,
        /// New lease limit, or `none`.
        #[arg(long)]
        max_leases: Option<String>,
        /// New certificate limit, or `none`.
        #[arg(long)]
        max_certificates: Option<String>,
    },
    /// Disable an account.
    Disable {
        /// Name.
        name: String,
    },
    /// Enable an account.
    Enable {
        /// Name.
        name: String,
    },
    /// Revoke everything an account owns and delete it.
    Delete {
        /// Name.
        name: String,
    },
}

/// `keel cert ...`.
#[derive(Debug, Subcommand)]
pub enum CertOp {
    /// Print the CA certificate (with `--peer`: the peer CAs nodes and
    /// an API served with `--api-tls` are trusted by; pin them with
    /// `KEEL_CACERT`).
    Ca {
        /// The peer CAs instead of the tenant-facing cluster CA.
        #[arg(long)]
        peer: bool,
    },
    /// Issue a certificate (keel generates the key).
    Issue {
        /// Common name.
        common_name: String,
        /// DNS names.
        #[arg(long = "dns")]
        dns_names: Vec<String>,
        /// IP addresses.
        #[arg(long = "ip")]
        ip_addresses: Vec<String>,
        /// Validity.
        #[arg(long)]
        ttl: String,
        /// Owning account.
        #[arg(long)]
        account: Option<String>,
        /// Write certificate, key and CA to this directory instead of stdout.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Sign a CSR.
    Sign {
        /// PEM CSR file.
        csr: PathBuf,
        /// Validity.
        #[arg(long)]
        ttl: String,
        /// Owning account.
        #[arg(long)]
        account: Option<String>,
    },
    /// Show a certificate.
    Get {
        /// Serial.
        serial: String,
    },
    /// List certificates.
    List {
        /// Owning account.
        #[arg(long)]
        account: Option<String>,
        /// State filter.
        #[arg(long)]
        state: Option<String>,
    },
    /// Rotate a certificate held in local files, make before break.
    Renew {
        /// Certificate file (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// Private key file (PEM).
        #[arg(long)]
        key: PathBuf,
        /// CA file to check the chain against (fetched from the node if absent).
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Validity of the new certificate.
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Revoke a certificate.
    Revoke {
        /// Serial.
        serial: String,
        /// Reason.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Print the CRL.
    Crl {
        /// `pem` or `der`.
        #[arg(long, default_value = "pem")]
        format: String,
    },
}

/// `keel operator ...`.
#[derive(Debug, Subcommand)]
pub enum OperatorOp {
    /// Seal this node: stop its managers (awaited), hand leadership away,
    /// stop Raft, then drop its keys from memory.
    Seal,
    /// Give one key share (`-` reads it from stdin), or, with no share,
    /// unseal with the node's auto-unseal key file. Prints the progress.
    Unseal {
        /// One key share as `init` printed it, or `-` for stdin.
        share: Option<String>,
    },
    /// Initialize the cluster's seal with key shares (once per cluster);
    /// prints the shares, which keel keeps nowhere.
    Init {
        /// How many key shares to make.
        #[arg(long, default_value_t = 5)]
        key_shares: u8,
        /// How many shares unseal a node.
        #[arg(long, default_value_t = 3)]
        key_threshold: u8,
    },
    /// Add a data key to this node's keyring: new writes use it, older
    /// entries stay readable.
    RotateKey,
    /// Join tokens: what a new node shows to get its node certificate.
    JoinToken {
        /// The operation.
        #[command(subcommand)]
        op: JoinTokenOp,
    },
    /// The peer CA nodes authenticate each other with.
    PeerCa {
        /// The operation.
        #[command(subcommand)]
        op: PeerCaOp,
    },
    /// Re-read configuration files without a restart.
    Reload,
    /// Online snapshots of the replicated state: save, inspect, restore.
    Snapshot {
        /// The operation.
        #[command(subcommand)]
        op: SnapshotOp,
    },
}

/// `keel operator peer-ca ...`.
#[derive(Debug, Subcommand)]
pub enum PeerCaOp {
    /// One step of a rotation: `add`, then `activate`, then `drop`.
    Rotate {
        /// `add`, `activate` or `drop`.
        #[arg(value_parser = ["add", "activate", "drop"])]
        step: String,
    },
}

/// `keel operator join-token ...`.
#[derive(Debug, Subcommand)]
pub enum JoinTokenOp {
    /// Make a token good for one node certificate, once, until it expires;
    /// printed with the fingerprint of the peer CA it pins.
    Create {
        /// How long it may be used (`30m`, `1h`, at most `168h`).
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
}

/// `keel operator snapshot ...`.
#[derive(Debug, Subcommand)]
pub enum SnapshotOp {
    /// Stream a consistent snapshot of the cluster into FILE (written to a
    /// temporary file, verified, fsynced, then renamed).
    Save {
        /// Where to write it.
        file: PathBuf,
    },
    /// Print a snapshot file's header and verify its checksum (no server).
    Inspect {
        /// The snapshot file.
        file: PathBuf,
    },
    /// Replace the cluster's state with a snapshot, on every node, through
    /// Raft. A corrupt or truncated file is refused before anything changes.
    Restore {
        /// The snapshot file.
        file: PathBuf,
        /// Restore a snapshot taken from another cluster.
        #[arg(long)]
        force: bool,
    },
}

/// `keel server`: every setting, declared once. Each field is a flag, a
/// `KEEL_*` variable (clap) and a key of the TOML file (serde, same name
/// with underscores); see `config::file` for how they are layered.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerArgs {
    /// TOML configuration file (flags and KEEL_* variables override it).
    #[arg(long, env = "KEEL_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Single-node development server: data in ./keel-data, self-bootstrap,
    /// a fresh admin token printed at start.
    #[arg(long)]
    pub dev: bool,
    /// This node's id (or taken from a hostname ending in -<ordinal>).
    #[arg(long, env = "KEEL_NODE_ID")]
    pub node_id: Option<u64>,
    /// Data directory.
    #[arg(long, env = "KEEL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// API listen address.
    #[arg(long, env = "KEEL_API_LISTEN")]
    pub api_listen: Option<String>,
    /// Peer listen address.
    #[arg(long, env = "KEEL_PEER_LISTEN")]
    pub peer_listen: Option<String>,
    /// API address other nodes and clients use (host:port).
    #[arg(long, env = "KEEL_ADVERTISE_API")]
    pub advertise_api: Option<String>,
    /// Peer address other nodes use (host:port).
    #[arg(long, env = "KEEL_ADVERTISE_PEER")]
    pub advertise_peer: Option<String>,
    /// Peers for bootstrap: `1=host:port,2=host:port,...` (peer addresses).
    #[arg(long, env = "KEEL_PEERS")]
    pub peers: Option<String>,
    /// How many peers (this node included) must answer before the lowest id
    /// bootstraps the cluster; defaults to the number of peers.
    #[arg(long, env = "KEEL_BOOTSTRAP_EXPECT")]
    pub bootstrap_expect: Option<usize>,
    /// Join an existing cluster through this peer address.
    #[arg(long, env = "KEEL_JOIN")]
    pub join: Option<String>,
    /// Cluster id to bootstrap with and to insist on.
    #[arg(long, env = "KEEL_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    /// File with admin tokens, one per line.
    #[arg(long, env = "KEEL_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// File with the cluster secret peers authenticate with.
    #[arg(long, env = "KEEL_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// Auto-unseal key file (at least 32 characters, the same on every
    /// node, e.g. a mounted Kubernetes or compose secret). Without it a
    /// node starts sealed and is unsealed with key shares.
    #[arg(long, env = "KEEL_UNSEAL_KEY_FILE")]
    pub unseal_key_file: Option<PathBuf>,
    /// How nodes authenticate each other: `mtls` (the default outside
    /// `--dev`: node certificates from keel's own peer CA) or `secret`
    /// (the cluster secret as a bearer token; plaintext unless `--tls-*`
    /// files are given; for `--dev`, or a mesh that provides mTLS).
    #[arg(long, env = "KEEL_PEER_AUTH")]
    pub peer_auth: Option<String>,
    /// Serve the API over TLS with the node certificate from keel's peer
    /// CA (with `--peer-auth mtls`); clients pin the CA `keel cert ca
    /// --peer` prints (`KEEL_CACERT`).
    #[arg(long, env = "KEEL_API_TLS")]
    pub api_tls: bool,
    /// A join token (`keel operator join-token create`): a new node shows
    /// it, once, to get its node certificate from a cluster whose peer CA
    /// the token pins. Without one, a node enrols with the cluster secret.
    #[arg(long, env = "KEEL_JOIN_TOKEN")]
    pub join_token: Option<String>,
    /// Life of the node certificates keel issues for mutual TLS between
    /// nodes (default 30d); each node renews its own at two thirds of it.
    #[arg(long, env = "KEEL_NODE_CERT_TTL")]
    pub node_cert_ttl: Option<String>,
    /// How long in-flight requests may take to finish at shutdown.
    #[arg(long, env = "KEEL_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Option<String>,
    /// `text` or `json`.
    #[arg(long, env = "KEEL_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Log filter (e.g. `info`, `keel=debug`).
    #[arg(long, env = "KEEL_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Raft heartbeat interval.
    #[arg(long, env = "KEEL_HEARTBEAT_INTERVAL")]
    pub heartbeat_interval: Option<String>,
    /// Minimum election timeout (the maximum is twice it).
    #[arg(long, env = "KEEL_ELECTION_TIMEOUT")]
    pub election_timeout: Option<String>,
    /// Applied entries between snapshots.
    #[arg(long, env = "KEEL_SNAPSHOT_THRESHOLD")]
    pub snapshot_threshold: Option<u64>,
    /// Largest wall-clock offset tolerated from a majority of the voters;
    /// beyond it a node does not lead, propose or serve clock-derived reads.
    #[arg(long, env = "KEEL_MAX_CLOCK_OFFSET")]
    pub max_clock_offset: Option<String>,
    /// Max TTL of a lease granted without one.
    #[arg(long, env = "KEEL_LEASE_MAX_TTL")]
    pub lease_max_ttl: Option<String>,
    /// Longest certificate validity.
    #[arg(long, env = "KEEL_PKI_MAX_TTL")]
    pub pki_max_ttl: Option<String>,
    /// How long a certificate's record is kept after its `not_after`
    /// (it leaves the CRL at `not_after`), default 72h.
    #[arg(long, env = "KEEL_PKI_RETENTION")]
    pub pki_retention: Option<String>,
    /// How long an `Idempotency-Key` is remembered, default 1h.
    #[arg(long, env = "KEEL_IDEMPOTENCY_RETENTION")]
    pub idempotency_retention: Option<String>,
    /// Most accounts the cluster holds (unlimited if unset).
    #[arg(long, env = "KEEL_MAX_ACCOUNTS")]
    pub max_accounts: Option<u64>,
    /// Most leases the cluster holds (unlimited if unset).
    #[arg(long, env = "KEEL_MAX_LEASES")]
    pub max_leases: Option<u64>,
    /// Most certificate records the cluster holds (unlimited if unset).
    #[arg(long, env = "KEEL_MAX_CERTIFICATES")]
    pub max_certificates: Option<u64>,
    /// Import the CA from this PEM certificate (with --pki-ca-key-file).
    #[arg(long, env = "KEEL_PKI_CA_CERT_FILE")]
    pub pki_ca_cert_file: Option<PathBuf>,
    /// Import the CA's PEM private key.
    #[arg(long, env = "KEEL_PKI_CA_KEY_FILE")]
    pub pki_ca_key_file: Option<PathBuf>,
    /// Comma-separated DNS domains certificates may name (empty: any).
    #[arg(long, env = "KEEL_PKI_ALLOWED_DOMAINS")]
    pub pki_allowed_domains: Option<String>,
    /// TLS certificate (PEM chain) for both listeners.
    #[arg(long, env = "KEEL_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "KEEL_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// CA to trust for peers' TLS certificates.
    #[arg(long, env = "KEEL_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// Largest API request body (at most half the peer message limit less
    /// 1 MiB, so any accepted request fits in one peer message).
    #[arg(long, env = "KEEL_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Requests per second each admin token may send on average; beyond
    /// it the API answers 429 with Retry-After. 0 (the default) is no limit.
    #[arg(long, env = "KEEL_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// Requests a token may send at once after being idle (default: the
    /// rate limit).
    #[arg(long, env = "KEEL_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,
    /// The audit log: every authenticated request and refusal, and every
    /// membership, seal, reload and token-expiry event, as hash-chained
    /// JSON lines (default: <data-dir>/audit/audit.log; `none`: off).
    #[arg(long, env = "KEEL_AUDIT_FILE")]
    pub audit_file: Option<PathBuf>,
    /// Size in bytes past which the audit file is rotated (default 64 MiB).
    #[arg(long, env = "KEEL_AUDIT_MAX_BYTES")]
    pub audit_max_bytes: Option<u64>,
    /// Rotated audit files kept (default 5).
    #[arg(long, env = "KEEL_AUDIT_KEEP")]
    pub audit_keep: Option<usize>,
    /// Refuse requests (503 audit_unavailable) rather than serve them
    /// unaudited when the audit file cannot be written.
    #[arg(long, env = "KEEL_AUDIT_REQUIRED")]
    pub audit_required: bool,
    /// Largest peer message (one batch of log entries), default 64 MiB.
    /// Hidden: for tests that need a small limit to stay fast.
    #[arg(long, env = "KEEL_PEER_MAX_MESSAGE_BYTES", hide = true)]
    #[serde(skip)]
    pub peer_max_message_bytes: Option<usize>,
}

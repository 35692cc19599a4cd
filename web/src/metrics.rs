//! Prometheus metrics: HTTP request counts and latencies (recorded by the
//! middleware), Raft progress (read from the control plane's status at
//! scrape time, O(1)), state gauges (set by the node's census refresher,
//! never computed by a scrape), and counters the node's managers feed.

use std::time::Duration;

use keel_raft::clock::Millis;
use keel_raft::domain::census::Census;
use keel_raft::{ControlPlane, Role};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

fn lag_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

/// Every metric the node exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<RouteLabels>,
    raft_term: Gauge,
    raft_leader: Gauge,
    raft_is_leader: Gauge,
    raft_commit_index: Gauge,
    raft_applied_index: Gauge,
    raft_last_log_index: Gauge,
    raft_snapshot_index: Gauge,
    raft_purged_index: Gauge,
    raft_replication_lag: Family<PeerLabels, Gauge>,
    leases: Family<StateLabels, Gauge>,
    lease_expiry_debt: Gauge,
    accounts: Family<StateLabels, Gauge>,
    certificates: Family<StateLabels, Gauge>,
    suspended: Family<KindLabels, Gauge>,
    ca_expiry_seconds: Gauge,
    /// Seconds until this node's peer (mutual TLS) certificate expires;
    /// set by the node when it installs or renews one.
    pub node_cert_expiry_seconds: Gauge,
    clock_offset: Family<PeerLabels, Gauge>,
    clock_offset_from_majority: Gauge,
    clock_healthy: Gauge,
    clock_max_offset: Gauge,
    /// Leases expired by the expiration manager's applied batches.
    pub lease_expirations: Counter,
    /// Seconds between a lease's deadline and the apply of its expiry.
    pub lease_expiry_lag: Histogram,
    /// Expiry proposals that failed (retried with backoff).
    pub lease_revoke_failures: Counter,
    /// Account expiries applied by the reconciler.
    pub account_expirations: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("keel");
        let m = Metrics {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_histogram),
            raft_term: Gauge::default(),
            raft_leader: Gauge::default(),
            raft_is_leader: Gauge::default(),
            raft_commit_index: Gauge::default(),
            raft_applied_index: Gauge::default(),
            raft_last_log_index: Gauge::default(),
            raft_snapshot_index: Gauge::default(),
            raft_purged_index: Gauge::default(),
            raft_replication_lag: Family::default(),
            leases: Family::default(),
            lease_expiry_debt: Gauge::default(),
            accounts: Family::default(),
            certificates: Family::default(),
            suspended: Family::default(),
            ca_expiry_seconds: Gauge::default(),
            node_cert_expiry_seconds: Gauge::default(),
            clock_offset: Family::default(),
            clock_offset_from_majority: Gauge::default(),
            clock_healthy: Gauge::default(),
            clock_max_offset: Gauge::default(),
            lease_expirations: Counter::default(),
            lease_expiry_lag: lag_histogram(),
            lease_revoke_failures: Counter::default(),
            account_expirations: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests served",
            m.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            m.http_duration.clone(),
        );
        registry.register("raft_term", "Current Raft term", m.raft_term.clone());
        registry.register(
            "raft_leader",
            "Id of the known leader, -1 if none",
            m.raft_leader.clone(),
        );
        registry.register(
            "raft_is_leader",
            "1 if this node leads",
            m.raft_is_leader.clone(),
        );
        registry.register(
            "raft_commit_index",
            "Committed log index known locally",
            m.raft_commit_index.clone(),
        );
        registry.register(
            "raft_applied_index",
            "Applied log index",
            m.raft_applied_index.clone(),
        );
        registry.register(
            "raft_last_log_index",
            "Last log index held",
            m.raft_last_log_index.clone(),
        );
        registry.register(
            "raft_snapshot_index",
            "Last log index covered by this node's snapshot",
            m.raft_snapshot_index.clone(),
        );
        registry.register(
            "raft_purged_index",
            "Last log index purged from this node's log",
            m.raft_purged_index.clone(),
        );
        registry.register(
            "raft_replication_lag",
            "Entries each follower is behind (leader only)",
            m.raft_replication_lag.clone(),
        );
        registry.register("leases", "Leases by state", m.leases.clone());
        registry.register(
            "lease_expiry_debt",
            "Leases past their deadline whose expiry is not yet applied",
            m.lease_expiry_debt.clone(),
        );
        registry.register("accounts", "Accounts by state", m.accounts.clone());
        registry.register(
            "certificates",
            "Certificates by state",
            m.certificates.clone(),
        );
        registry.register(
            "suspended_resources",
            "Resources suspended because their account is not active",
            m.suspended.clone(),
        );
        registry.register(
            "ca_expiry_seconds",
            "Seconds until the cluster CA expires",
            m.ca_expiry_seconds.clone(),
        );
        registry.register(
            "node_certificate_expiry_seconds",
            "Seconds until this node's peer certificate (mutual TLS between nodes) expires; renewed at two thirds of its life",
            m.node_cert_expiry_seconds.clone(),
        );
        registry.register(
            "clock_offset_ms",
            "Each peer's wall clock minus this node's (label: its peer address), from fresh round-trip corrected samples",
            m.clock_offset.clone(),
        );
        registry.register(
            "clock_offset_from_majority_ms",
            "This node's wall clock minus the majority's",
            m.clock_offset_from_majority.clone(),
        );
        registry.register(
            "clock_healthy",
            "1 if this node's clock is within the max offset of a majority of the voters",
            m.clock_healthy.clone(),
        );
        registry.register(
            "clock_max_offset_ms",
            "The max clock offset in force",
            m.clock_max_offset.clone(),
        );
        registry.register(
            "lease_expirations",
            "Leases expired by this node's expiration manager",
            m.lease_expirations.clone(),
        );
        registry.register(
            "lease_expiry_lag_seconds",
            "Apply time of an expiry minus the lease deadline",
            m.lease_expiry_lag.clone(),
        );
        registry.register(
            "lease_revoke_failures",
            "Expiry proposals that failed and were retried",
            m.lease_revoke_failures.clone(),
        );
        registry.register(
            "account_expirations",
            "Account expiries applied by this node's reconciler",
            m.account_expirations.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Records one served request. The method label is bounded: a method
    /// the API does not use counts as `other` (any client can send any
    /// token as a method, and every label value is a new series).
    pub fn observe_http(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let method = metric_method(method);
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_string(),
                route: route.to_string(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                method: method.to_string(),
                route: route.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Refreshes the scrape-time gauges and renders the text format.
    pub fn render(&self, control_plane: Option<&ControlPlane>) -> String {
        if let Some(cp) = control_plane {
            self.refresh(cp);
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        out
    }

    fn refresh(&self, cp: &ControlPlane) {
        let status = cp.status();
        self.raft_term.set(status.term as i64);
        self.raft_leader
            .set(status.leader.map_or(-1, |l| keel_raft::name_of(l) as i64));
        self.raft_is_leader
            .set(i64::from(status.role == Role::Leader));
        self.raft_commit_index
            .set(status.committed.unwrap_or(0) as i64);
        self.raft_applied_index
            .set(status.applied.unwrap_or(0) as i64);
        self.raft_last_log_index
            .set(status.last_log_index.unwrap_or(0) as i64);
        self.raft_snapshot_index
            .set(status.snapshot.map_or(-1, |i| i as i64));
        self.raft_purged_index
            .set(status.purged.map_or(-1, |i| i as i64));
        self.raft_replication_lag.clear();
        if status.role == Role::Leader {
            let last = status.last_log_index.unwrap_or(0);
            for (peer, matched) in &status.matched {
                if *peer != status.node_id {
                    let lag = last.saturating_sub(matched.unwrap_or(0));
                    self.raft_replication_lag
                        .get_or_create(&PeerLabels {
                            peer: keel_raft::name_of(*peer).to_string(),
                        })
                        .set(lag as i64);
                }
            }
        }
        self.refresh_clock(cp);
    }

    /// Sets the state gauges (leases, accounts and certificates by state,
    /// the CA's remaining life) from a census taken at `now`. Called by the
    /// node's census refresher off the scrape path, so a scrape costs the
    /// same however large the state is.
    pub fn set_census(&self, census: &Census, ca_not_after: Option<Millis>, now: Millis) {
        let leases = census.leases;
        for (name, n) in [
            ("active", leases.active),
            ("suspended", leases.suspended),
            ("expired", leases.expired),
        ] {
            self.leases.get_or_create(&state_label(name)).set(n as i64);
        }
        self.lease_expiry_debt.set(census.expiry_debt.leases as i64);
        let accounts = census.accounts;
        for (name, n) in [
            ("active", accounts.active),
            ("expired", accounts.expired),
            ("disabled", accounts.disabled),
        ] {
            self.accounts
                .get_or_create(&state_label(name))
                .set(n as i64);
        }
        let certs = census.certificates;
        for (name, n) in [
            ("active", certs.active),
            ("suspended", certs.suspended),
            ("superseded", certs.superseded),
            ("revoked", certs.revoked),
            ("expired", certs.expired),
        ] {
            self.certificates
                .get_or_create(&state_label(name))
                .set(n as i64);
        }
        self.suspended
            .get_or_create(&kind_label("lease"))
            .set(leases.suspended as i64);
        self.suspended
            .get_or_create(&kind_label("certificate"))
            .set(certs.suspended as i64);
        let ca_left = ca_not_after.map_or(0, |at| (at as i64 - now as i64) / 1000);
        self.ca_expiry_seconds.set(ca_left);
    }
}

impl Metrics {
    fn refresh_clock(&self, cp: &ControlPlane) {
        let clock = cp.clock();
        let health = clock.health();
        self.clock_healthy.set(i64::from(health.healthy));
        self.clock_max_offset.set(health.max_offset_ms as i64);
        self.clock_offset_from_majority
            .set(health.offset_from_majority_ms.unwrap_or(0));
        self.clock_offset.clear();
        for peer in clock.peers() {
            if let Some(offset) = peer.offset_ms {
                self.clock_offset
                    .get_or_create(&PeerLabels { peer: peer.addr })
                    .set(offset);
            }
        }
    }
}

fn state_label(state: &str) -> StateLabels {
    StateLabels {
        state: state.to_string(),
    }
}

fn kind_label(kind: &str) -> KindLabels {
    KindLabels {
        kind: kind.to_string(),
    }
}

/// The method label for request metrics: the methods HTTP defines, or
/// `other`.
fn metric_method(method: &str) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or("other")
}

#[cfg(test)]
mod tests {
    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(super::metric_method("GET"), "GET");
        assert_eq!(super::metric_method("FROBNICATE"), "other");
        assert_eq!(super::metric_method("get"), "other");
    }
}

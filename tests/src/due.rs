//! Leases planned to fall due at chosen instants, and a watcher that judges
//! from outside, with linearizable reads and the wall clock the servers
//! share, whether each expired exactly when it should: never before its
//! deadline, never reported live after it, never resurrected, its deadline
//! never moved. The expiration-manager tests (failover, seal, shutdown)
//! build on these.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use crate::api::Api;
use crate::leases::{format_time, grant_many, list_all, now_ms, parse_time, time_of};

/// How far ahead to plan the first deadline so that `count` grants through
/// `apis` surely finish before it, on this machine as loaded right now:
/// 48 probe grants are timed (and revoked at once), the time for `count`
/// is extrapolated, doubled, and 2 s added; never less than `min_ms`.
pub async fn plan_lead(apis: &[Api], count: usize, min_ms: u64) -> u64 {
    const PROBES: usize = 48;
    let started = std::time::Instant::now();
    grant_many(
        apis,
        PROBES,
        12,
        |i| serde_json::json!({"ttl": "1h", "name": format!("lead-probe/{i}")}),
    )
    .await;
    let elapsed = started.elapsed().as_millis() as u64;
    apis[0]
        .post_expect(
            "/v1/leases/revoke-prefix",
            &serde_json::json!({"prefix": "lead-probe/"}),
            200,
        )
        .await;
    (elapsed * count as u64 / PROBES as u64 * 2 + 2_000).max(min_ms)
}

/// Grants `n` leases named `{prefix}{i:05}` (optionally owned by
/// `account`) whose deadlines are spread evenly over `spread_ms` from the
/// epoch millisecond `first`. See [`grant_due_at`].
pub async fn grant_due(
    apis: &[Api],
    n: usize,
    prefix: &str,
    account: Option<&str>,
    first: u64,
    spread_ms: u64,
    min_ttl_ms: u64,
) -> Vec<Value> {
    let plan = move |i: usize| first + i as u64 * spread_ms / n.max(1) as u64;
    grant_due_at(apis, n, prefix, account, min_ttl_ms, plan).await
}

/// Grants `n` leases named `{prefix}{i:05}` (optionally owned by
/// `account`); lease `i` is planned to fall due at the epoch millisecond
/// `deadline(i)`. Each ttl is computed when its grant is sent, so deadlines
/// land where planned (give or take the commit latency) however long
/// granting takes; a grant that would get less than `min_ttl_ms` panics
/// (granting too slow for the plan). Returns the leases as granted, in
/// index order.
pub async fn grant_due_at(
    apis: &[Api],
    n: usize,
    prefix: &str,
    account: Option<&str>,
    min_ttl_ms: u64,
    deadline: impl Fn(usize) -> u64 + Send + Sync + 'static,
) -> Vec<Value> {
    let deadline = Arc::new(deadline);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..12 {
        let api = apis[w % apis.len()].clone();
        let (next, deadline) = (next.clone(), deadline.clone());
        let prefix = prefix.to_string();
        let account = account.map(str::to_string);
        workers.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    return out;
                }
                let ttl = deadline(i).saturating_sub(now_ms());
                assert!(
                    ttl >= min_ttl_ms,
                    "granting is too slow for the plan: lease {i} would get a ttl of {ttl} ms"
                );
                let mut body = serde_json::json!({"ttl": format!("{ttl}ms"), "max_ttl": "1h", "name": format!("{prefix}{i:05}")});
                if let Some(a) = &account {
                    body["account"] = Value::String(a.clone());
                }
                let l = api.post_expect("/v1/leases", &body, 201).await;
                out.push((i, l));
            }
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(done) = workers.join_next().await {
        all.extend(done.expect("grant worker"));
    }
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, l)| l).collect()
}

/// Watches a set of leases from outside while they fall due, with
/// linearizable list reads. Each sample is taken between `t0` and `t1` on
/// the wall clock the servers share, so it can judge every lease:
/// - a lease whose deadline is after `t1` must be listed, and `active` or
///   `suspended` (never `expired`): nothing is removed or reported expired
///   early;
/// - a lease listed although its deadline was before `t0` must say
///   `expired` (a lease is never reported live past its deadline);
/// - a lease seen gone is never listed again by a later sample (nothing
///   resurrected: it was removed once);
/// - a lease's `expires_at` never changes (no leader resets a deadline).
#[derive(Debug)]
pub struct DueWatch {
    /// `/v1/leases?...` selecting the watched leases (and maybe others).
    path: String,
    /// Deadline of each watched lease.
    deadlines: std::collections::BTreeMap<String, u64>,
    /// Successful samples.
    pub ok: usize,
    /// Samples that got no answer or an error (e.g. during an election).
    pub failed: usize,
    /// Every broken rule, described.
    pub violations: Vec<String>,
    /// When (the `t1` of the sample) each lease was first seen gone.
    pub gone_since: std::collections::BTreeMap<String, u64>,
}

impl DueWatch {
    /// Watches `leases` (as granted), listing them with `path`, which must
    /// carry a `?` and should filter (e.g. `/v1/leases?prefix=due/`).
    pub fn new(path: &str, leases: &[Value]) -> Self {
        DueWatch {
            path: format!("{path}&limit=1000"),
            deadlines: leases
                .iter()
                .map(|l| {
                    (
                        l["id"].as_str().expect("id").to_string(),
                        time_of(l, "expires_at"),
                    )
                })
                .collect(),
            ok: 0,
            failed: 0,
            violations: Vec::new(),
            gone_since: Default::default(),
        }
    }

    /// The earliest and latest deadline watched.
    pub fn window(&self) -> (u64, u64) {
        let min = self.deadlines.values().min().copied().unwrap_or(0);
        let max = self.deadlines.values().max().copied().unwrap_or(0);
        (min, max)
    }

    /// Takes one sample through `api`; returns how many watched leases
    /// are still listed, or `None` if the read failed.
    pub async fn sample(&mut self, api: &Api) -> Option<usize> {
        let t0 = now_ms();
        let Ok(items) = list_all(api, &self.path).await else {
            self.failed += 1;
            return None;
        };
        let t1 = now_ms();
        self.ok += 1;
        let listed: std::collections::BTreeMap<&str, &Value> = items
            .iter()
            .filter_map(|l| Some((l["id"].as_str()?, l)))
            .collect();
        let mut left = 0;
        for (id, deadline) in &self.deadlines {
            let Some(l) = listed.get(id.as_str()) else {
                if *deadline > t1 {
                    self.violations.push(format!(
                        "{id} gone at {} before its deadline {}",
                        format_time(t1),
                        format_time(*deadline)
                    ));
                }
                self.gone_since.entry(id.clone()).or_insert(t1);
                continue;
            };
            left += 1;
            if let Some(gone) = self.gone_since.get(id)
                && *gone < t0
            {
                self.violations.push(format!(
                    "{id} resurrected: gone at {}, listed again at {}",
                    format_time(*gone),
                    format_time(t0)
                ));
            }
            if parse_time(l["expires_at"].as_str().unwrap_or("")) != Ok(*deadline) {
                self.violations.push(format!("{id} deadline moved: {l}"));
            }
            let state = l["state"].as_str().unwrap_or("");
            if *deadline > t1 && state == "expired" {
                self.violations
                    .push(format!("{id} `expired` before its deadline: {l}"));
            }
            if *deadline <= t0 && state != "expired" {
                self.violations
                    .push(format!("{id} `{state}` past its deadline: {l}"));
            }
        }
        Some(left)
    }

    /// Panics with every broken rule, if any.
    pub fn assert_clean(&self) {
        assert!(
            self.violations.is_empty(),
            "{} violations, first ones:\n{}",
            self.violations.len(),
            self.violations
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

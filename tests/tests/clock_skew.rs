//! Clock skew: one node of three runs 30 s fast (then, in a second
//! scenario, 30 s slow) under libfaketime; its monotonic clock is left
//! alone, as after a wall-clock step.
//!
//! What must hold, seen from outside:
//! - the skewed node reports not ready, with a `clock` check saying why,
//!   and the healthy nodes see its offset in `GET /v1/cluster`;
//! - it never leads: not by election, and not by a transfer an operator
//!   asks for (refused);
//! - it serves no lease read and takes no write (503 `clock_offset` with
//!   `Retry-After`);
//! - a lease granted through the healthy leader is never seen expired, on
//!   any node, before `deadline - max offset`, and is gone everywhere by
//!   `deadline + max offset + 2 election timeouts` (plus a little for the
//!   expiry manager's polling); the earliest and latest observations are
//!   printed relative to the deadline;
//! - restarted without faketime ("clock corrected"), it becomes ready by
//!   itself.
//!
//! Needs libfaketime (`apt-get install faketime`).

use std::time::Duration;

use keel_tests::leases::{metric, now_ms, time_of};
use keel_tests::{Api, Cluster, eventually};
use serde_json::{Value, json};

const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const SKEWED: u64 = 3;
/// `--max-clock-offset` (the default).
const MAX_OFFSET_MS: i64 = 500;
/// The largest election timeout (`--election-timeout` defaults to 300 ms;
/// the maximum is twice it).
const ELECTION_TIMEOUT_MS: i64 = 600;
/// The expiration manager's idle poll (100 ms) plus one commit and one
/// round of this test's polling.
const EXPIRY_SLACK_MS: i64 = 400;
const TTL_MS: i64 = 8_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_thirty_seconds_fast_neither_leads_nor_serves() {
    skewed_node_scenario("+30s", 30_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_thirty_seconds_slow_neither_leads_nor_serves() {
    skewed_node_scenario("-30s", -30_000).await;
}

fn faketime_env(offset: &str) -> Vec<(String, String)> {
    assert!(
        std::path::Path::new(FAKETIME_LIB).is_file(),
        "{FAKETIME_LIB} is missing: install libfaketime (apt-get install faketime)"
    );
    [
        ("LD_PRELOAD", FAKETIME_LIB),
        ("FAKETIME", offset),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The `clock` check of a node's `/readyz?verbose`, with the status.
async fn clock_check(api: &Api) -> Result<(u16, Value), String> {
    let r = api.get("/readyz?verbose").await?;
    let check = r.body["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "clock"))
        .cloned()
        .ok_or_else(|| format!("no clock check in {}", r.body))?;
    Ok((r.status, check))
}

/// The leader node 1 knows of (its local view).
async fn leader_seen_by(api: &Api) -> Option<u64> {
    let r = api.get("/v1/cluster?consistency=local").await.ok()?;
    r.body["leader"].as_u64()
}

async fn skewed_node_scenario(offset: &str, skew_ms: i64) {
    let mut cluster = Cluster::builder(3).no_spawn().start().await;
    cluster.node_mut(SKEWED).env = faketime_env(offset);
    for id in 1..=3 {
        cluster.spawn(id);
    }
    cluster.wait_ready(1, Duration::from_secs(60)).await;
    cluster.wait_ready(2, Duration::from_secs(60)).await;
    let skewed = cluster.api(SKEWED);
    let healthy = [cluster.api(1), cluster.api(2)];

    // Not ready, and the reason is its clock.
    let detail = eventually(
        Duration::from_secs(30),
        "the skewed node not ready because of its clock",
        || {
            let skewed = skewed.clone();
            async move {
                match clock_check(&skewed).await? {
                    (503, check) if check["ok"] == false => Ok(check["detail"].clone()),
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await;
    eprintln!("skewed node ({offset}) readyz clock check: {detail}");
    assert_eq!(metric(&skewed, "keel_clock_healthy").await, Ok(0.0));
    for api in &healthy {
        let (status, check) = clock_check(api).await.expect("healthy readyz");
        assert_eq!((status, &check["ok"]), (200, &json!(true)), "{check}");
        assert_eq!(metric(api, "keel_clock_healthy").await, Ok(1.0));
    }

    // The healthy nodes measure its offset.
    let measured = eventually(
        Duration::from_secs(10),
        "node 1 measuring the skewed node's offset",
        || {
            let api = healthy[0].clone();
            async move {
                let view = api.get("/v1/cluster").await?.body;
                let member = view["members"]
                    .as_array()
                    .and_then(|m| m.iter().find(|m| m["id"] == SKEWED))
                    .cloned()
                    .ok_or_else(|| format!("no member {SKEWED} in {view}"))?;
                match member["clock_offset_ms"].as_i64() {
                    Some(off) if (off - skew_ms).abs() < 2_000 => Ok(member),
                    _ => Err(format!("{member}")),
                }
            }
        },
    )
    .await;
    eprintln!("node 1 sees node {SKEWED} as {measured}");

    // It does not lead, and leadership handed to it is refused.
    let leader = cluster.leader().await;
    assert_ne!(leader, SKEWED, "the skewed node leads");
    let transfer = cluster
        .api(leader)
        .post("/v1/cluster/transfer-leader", &json!({"to": SKEWED}))
        .await
        .expect("transfer request");
    eprintln!(
        "transfer to the skewed node: {} {}",
        transfer.status, transfer.body
    );
    assert_eq!(transfer.status, 409, "{}", transfer.body);
    assert_eq!(transfer.code(), "conflict");

    // It takes no write and serves no lease read.
    let refused = skewed
        .post("/v1/leases", &json!({"ttl": "8s"}))
        .await
        .expect("write to skewed node");
    assert_eq!((refused.status, refused.code()), (503, "clock_offset"));
    assert!(refused.retry_after.is_some());

    // A lease through the leader, watched on every node until it is gone.
    let granted = cluster
        .api(leader)
        .post_expect("/v1/leases", &json!({"ttl": "8s", "name": "skew/1"}), 201)
        .await;
    let id = granted["id"].as_str().expect("lease id").to_string();
    let deadline = time_of(&granted, "expires_at") as i64;
    assert!((deadline - now_ms() as i64 - TTL_MS).abs() < 1_000);
    let watch = watch_expiry(&cluster, &id, deadline).await;
    watch.report(offset);
    watch.check();

    // The clock is corrected: restarted without faketime, it becomes
    // ready by itself.
    let node = cluster.node_mut(SKEWED);
    node.signal(libc::SIGTERM);
    node.wait_exit(Duration::from_secs(30)).await;
    node.env.clear();
    let restarted = tokio::time::Instant::now();
    cluster.restart(SKEWED);
    cluster.wait_ready(SKEWED, Duration::from_secs(30)).await;
    eprintln!(
        "node {SKEWED} ready {} ms after a restart with a correct clock",
        restarted.elapsed().as_millis()
    );
    let (status, check) = clock_check(&skewed).await.expect("readyz");
    assert_eq!((status, &check["ok"]), (200, &json!(true)), "{check}");
    let r = skewed.get(&format!("/v1/leases/{id}")).await.expect("read");
    assert_eq!((r.status, r.code()), (404, "lease_not_found"));
}

/// What the nodes said about one lease over its life, in test wall-clock
/// ms relative to its deadline.
#[derive(Debug, Default)]
struct ExpiryWatch {
    /// Per healthy node (1, 2): the first answer saying expired or gone,
    /// as (request sent, answer received).
    first_expired: [Option<(i64, i64)>; 2],
    /// Per healthy node: the first answer saying gone (404).
    gone: [Option<i64>; 2],
    /// Per healthy node: the last answer saying active, received.
    last_active: [Option<i64>; 2],
    /// Reads the skewed node refused with `clock_offset`.
    refused_by_skewed: usize,
}

async fn watch_expiry(cluster: &Cluster, id: &str, deadline: i64) -> ExpiryWatch {
    let apis: Vec<Api> = (1..=3).map(|n| cluster.api(n)).collect();
    let path = format!("/v1/leases/{id}");
    let give_up = deadline + 10_000;
    let mut w = ExpiryWatch::default();
    loop {
        for (i, api) in apis.iter().enumerate() {
            let node = i as u64 + 1;
            let sent = now_ms() as i64 - deadline;
            let Ok(r) = api.get(&path).await else {
                continue;
            };
            let got = now_ms() as i64 - deadline;
            if node == SKEWED {
                assert_eq!(
                    (r.status, r.code()),
                    (503, "clock_offset"),
                    "the skewed node answered a lease read: {}",
                    r.body
                );
                w.refused_by_skewed += 1;
                continue;
            }
            let state = r.body["state"].as_str().unwrap_or("");
            match (r.status, state) {
                (200, "active") => {
                    assert!(
                        w.first_expired[i].is_none(),
                        "node {node} saw the lease active again at {got} ms"
                    );
                    w.last_active[i] = Some(got);
                }
                (200, "expired") => {
                    w.first_expired[i].get_or_insert((sent, got));
                }
                (404, _) if r.code() == "lease_not_found" => {
                    w.first_expired[i].get_or_insert((sent, got));
                    w.gone[i].get_or_insert(got);
                }
                _ => eprintln!("node {node} at {got} ms: {} {}", r.status, r.body),
            }
        }
        assert_ne!(
            leader_seen_by(&apis[0]).await,
            Some(SKEWED),
            "the skewed node became leader"
        );
        if w.gone.iter().all(Option::is_some) {
            return w;
        }
        assert!(
            (now_ms() as i64) < give_up,
            "lease {id} not gone everywhere 10 s after its deadline: {w:?}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl ExpiryWatch {
    fn earliest_expired(&self) -> (i64, i64) {
        self.first_expired
            .iter()
            .flatten()
            .copied()
            .min_by_key(|(_, got)| *got)
            .expect("expiry observed")
    }

    fn latest_gone(&self) -> i64 {
        self.gone.iter().flatten().copied().max().expect("gone")
    }

    fn report(&self, offset: &str) {
        let (sent, got) = self.earliest_expired();
        let latest_first = self
            .first_expired
            .iter()
            .flatten()
            .map(|(_, got)| *got)
            .max()
            .unwrap_or(0);
        eprintln!(
            "skew {offset}: relative to the deadline, first seen expired in [{sent:+}, {got:+}] ms; \
             every healthy node saw it expired by {latest_first:+} ms and gone by {:+} ms; \
             last seen active at {:?} ms; {} reads refused by the skewed node \
             (bounds: not before {:+} ms, gone by {:+} ms)",
            self.latest_gone(),
            self.last_active,
            self.refused_by_skewed,
            -MAX_OFFSET_MS,
            MAX_OFFSET_MS + 2 * ELECTION_TIMEOUT_MS + EXPIRY_SLACK_MS,
        );
    }

    fn check(&self) {
        let (_, got) = self.earliest_expired();
        assert!(
            got >= -MAX_OFFSET_MS,
            "a node saw the lease expired {got} ms before its deadline: {self:?}"
        );
        let gone = self.latest_gone();
        assert!(
            gone <= MAX_OFFSET_MS + 2 * ELECTION_TIMEOUT_MS + EXPIRY_SLACK_MS,
            "the lease outlived its deadline by {gone} ms: {self:?}"
        );
        assert!(self.refused_by_skewed > 0, "the skewed node was never read");
        assert!(
            self.last_active.iter().all(Option::is_some),
            "a healthy node never saw the lease active: {self:?}"
        );
    }
}

//! The leader is killed (SIGKILL) while 1,000 leases fall due; the next
//! leader's expiration manager must expire each of them exactly once, none
//! before its deadline, and lose or resurrect nothing.
//!
//! How "exactly once" and "never early" are seen from outside:
//! - the leader is killed just before the first deadline, so it expired
//!   none of them, and the survivors' `keel_lease_expirations_total`
//!   counters (leases their manager's proposals removed) must sum to
//!   exactly 1,000: no lease removed twice, none removed by anything else;
//! - a sampler keeps listing the leases with linearizable reads through
//!   the survivors. For each answer, taken between `t0` and `t1` on the
//!   shared wall clock: a lease whose deadline is after `t1` must be listed
//!   and not `expired`; one listed past its deadline must say `expired`,
//!   never `active`; a lease seen gone never comes back; deadlines never
//!   move (a leader change must not reset them, unlike etcd #9395);
//! - the owning account's `usage.leases` counts what is left: 20 long
//!   leases kept as anchors. A double removal would push it below 20;
//! - the killed node, restarted, converges to the same state.

use std::collections::BTreeSet;
use std::time::Duration;

use keel_tests::due::{DueWatch, grant_due, plan_lead};
use keel_tests::leases::{format_time, metric, now_ms, same_everywhere, wait_until};
use keel_tests::{Api, Cluster, eventually};
use serde_json::json;

const DUE: usize = 1_000;
const ANCHORS: usize = 20;
/// The deadlines are spread evenly over this window.
const SPREAD_MS: u64 = 4_000;
const EXPIRED: &str = "keel_lease_expirations_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_while_a_thousand_leases_fall_due() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let survivors: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let survivor_apis: Vec<Api> = survivors.iter().map(|id| cluster.api(*id)).collect();
    let all_apis: Vec<Api> = (1..=3).map(|id| cluster.api(id)).collect();
    survivor_apis[0]
        .post_expect("/v1/accounts", &json!({"name": "fo"}), 201)
        .await;

    // Anchors: long leases of the same account that must survive untouched.
    for i in 0..ANCHORS {
        let body = json!({"ttl": "1h", "name": format!("anchor/{i:02}"), "account": "fo"});
        all_apis[i % 3].post_expect("/v1/leases", &body, 201).await;
    }

    // The due leases: deadlines spread evenly over SPREAD_MS from `first`,
    // planned far enough ahead for granting to finish first (about 2 s for
    // 1,000 on an idle 2-core machine).
    let first = now_ms() + plan_lead(&all_apis, DUE, 5_000).await;
    let granted = grant_due(&all_apis, DUE, "due/", Some("fo"), first, SPREAD_MS, 2_000).await;
    let mut watch = DueWatch::new("/v1/leases?prefix=due/", &granted);
    let (min_deadline, max_deadline) = watch.window();
    eprintln!(
        "granted {DUE} leases; {} ms left before the first deadline; deadlines span {} ms",
        min_deadline.saturating_sub(now_ms()),
        max_deadline - min_deadline
    );
    assert_eq!(
        same_everywhere(&all_apis, "/v1/accounts/fo").await["usage"]["leases"],
        (DUE + ANCHORS) as u64
    );

    // Sample while waiting for the moment to kill: 400 ms before the first deadline.
    let kill_at = min_deadline - 400;
    let mut turn = 0usize;
    // A sample takes some tens of milliseconds; none may delay the kill.
    while now_ms() + 300 < kill_at {
        watch.sample(&all_apis[turn % 3]).await;
        turn += 1;
        let pause = kill_at.saturating_sub(now_ms()).min(150);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    wait_until(kill_at).await;
    cluster.kill9(leader);
    let killed_at = now_ms();
    assert!(
        killed_at < min_deadline,
        "the leader must die before any lease falls due (killed at {}, first deadline {})",
        format_time(killed_at),
        format_time(min_deadline)
    );

    // Until every due lease is gone, keep sampling through the survivors.
    let give_up = max_deadline + 30_000;
    loop {
        let left = watch.sample(&survivor_apis[turn % 2]).await;
        turn += 1;
        if left == Some(0) && now_ms() > max_deadline {
            break;
        }
        assert!(
            now_ms() < give_up,
            "due leases still listed 30 s after the last deadline: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watch.assert_clean();
    let late = watch
        .gone_since
        .values()
        .filter(|t| **t > max_deadline + 1_000)
        .count();
    eprintln!(
        "{} good samples, {} failed (failover); {late} leases first seen gone more than 1 s after the last deadline",
        watch.ok, watch.failed
    );
    assert!(
        watch.ok >= 10,
        "too few successful samples: {} ok, {} failed",
        watch.ok,
        watch.failed
    );
    assert_eq!(watch.gone_since.len(), DUE);

    // Exactly once: the survivors' managers removed 1,000 leases between them.
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, leader);
    let mut total = 0.0;
    for api in &survivor_apis {
        total += metric(api, EXPIRED).await.unwrap();
    }
    assert_eq!(total, DUE as f64, "{EXPIRED} summed over the survivors");
    let account = same_everywhere(&survivor_apis, "/v1/accounts/fo").await;
    assert_eq!(account["usage"]["leases"], ANCHORS as u64, "{account}");
    let anchors = same_everywhere(&survivor_apis, "/v1/leases?prefix=anchor/").await;
    let anchors = anchors["items"].as_array().unwrap();
    assert_eq!(anchors.len(), ANCHORS);
    assert!(
        anchors.iter().all(|l| l["state"] == "active"),
        "{anchors:?}"
    );
    let due_left = same_everywhere(&survivor_apis, "/v1/leases?prefix=due/").await;
    assert_eq!(due_left["items"], json!([]));

    // The killed node comes back and converges.
    cluster.restart(leader);
    cluster.wait_ready(leader, Duration::from_secs(60)).await;
    let restarted = cluster.api(leader);
    eventually(
        Duration::from_secs(20),
        "the restarted node applying the expiries",
        || {
            let api = restarted.clone();
            async move {
                let local = api.get("/v1/leases?prefix=due/&consistency=local").await?;
                match local.body["items"].as_array().map(Vec::len) {
                    Some(0) => Ok(()),
                    other => Err(format!("{other:?} due leases still held locally")),
                }
            }
        },
    )
    .await;
    let everywhere = same_everywhere(&all_apis, "/v1/leases").await;
    let left: BTreeSet<&str> = everywhere["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(left.len(), ANCHORS);
    assert!(left.iter().all(|n| n.starts_with("anchor/")), "{left:?}");
    assert_eq!(
        same_everywhere(&all_apis, "/v1/accounts/fo").await["usage"]["leases"],
        ANCHORS as u64
    );
    let mut total = 0.0;
    for api in &all_apis {
        total += metric(api, EXPIRED).await.unwrap();
    }
    assert_eq!(
        total, DUE as f64,
        "{EXPIRED} summed over all three nodes after the restart"
    );
}

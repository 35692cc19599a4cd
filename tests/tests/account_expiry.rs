//! Lesson 4, "reconcile in both directions" (NATS #6806): when an account
//! expires, what it owns is suspended; when the account is renewed (its
//! `expires_at` moved into the future), everything it owns is active again
//! *at once*, on every node, with no restart.
//!
//! "At once" is checked strictly: right after the PATCH answers, a
//! linearizable read on each of the three nodes must already show the
//! account and all its leases active (no waiting). Covered: one cycle in
//! detail (suspended leases are still listed, refuse renewal with 409
//! `lease_suspended`, and keep counting down to their expiry), 100 cycles
//! in a row, renewal after a leader change (transfer and kill -9), and
//! renewal after the nodes were restarted while the account was expired.

use std::time::Duration;

use keel_tests::leases::{
    format_time, leader_other_than, metric, now_ms, same_everywhere, time_of,
};
use keel_tests::{Api, Cluster, eventually};
use serde_json::{Value, json};

const ACCOUNT_EXPIRIES: &str = "keel_account_expirations_total";

fn apis(cluster: &Cluster) -> Vec<Api> {
    (1..=3).map(|id| cluster.api(id)).collect()
}

/// On each node, right now: the account is in `state` and every one of its
/// `n` leases is in `lease_state`.
async fn assert_everywhere(apis: &[Api], account: &str, state: &str, lease_state: &str, n: usize) {
    for api in apis {
        let a = api.get_ok(&format!("/v1/accounts/{account}")).await;
        assert_eq!(a["state"], state, "account on {}: {a}", api.base);
        let page = api.get_ok(&format!("/v1/leases?account={account}")).await;
        let items = page["items"].as_array().unwrap();
        assert_eq!(
            items.len(),
            n,
            "leases of {account} on {}: {page}",
            api.base
        );
        for l in items {
            assert_eq!(l["state"], lease_state, "lease on {}: {l}", api.base);
        }
    }
}

/// Waits until `api` shows the account expired and its leases suspended.
async fn wait_suspended(api: &Api, account: &str, n: usize) {
    let (api, account) = (api.clone(), account.to_string());
    eventually(
        Duration::from_secs(15),
        "the account expired and its leases suspended",
        || {
            let (api, account) = (api.clone(), account.clone());
            async move {
                let a = api.get(&format!("/v1/accounts/{account}")).await?.body;
                let page = api
                    .get(&format!("/v1/leases?account={account}&state=suspended"))
                    .await?
                    .body;
                let suspended = page["items"].as_array().map_or(0, Vec::len);
                if a["state"] == "expired" && suspended == n {
                    Ok(())
                } else {
                    Err(format!(
                        "account {}, {suspended} of {n} suspended",
                        a["state"]
                    ))
                }
            }
        },
    )
    .await;
}

/// Sum of the nodes' account-expiry counters (the reconciler's work).
async fn account_expiries(apis: &[Api]) -> f64 {
    let mut total = 0.0;
    for api in apis {
        total += metric(api, ACCOUNT_EXPIRIES).await.unwrap_or(0.0);
    }
    total
}

/// Waits until the reconciler has processed one more expiry than `before`.
async fn wait_reconciled(apis: &[Api], before: f64) -> f64 {
    let apis = apis.to_vec();
    eventually(
        Duration::from_secs(15),
        "the reconciler processing the expiry",
        || {
            let apis = apis.clone();
            async move {
                let now = account_expiries(&apis).await;
                if now > before {
                    Ok(now)
                } else {
                    Err(format!("{ACCOUNT_EXPIRIES} still {now}"))
                }
            }
        },
    )
    .await
}

/// PATCHes the account's `expires_at` to `at` through `api`.
async fn set_expiry(api: &Api, account: &str, at: u64) -> Value {
    let r = api
        .patch(
            &format!("/v1/accounts/{account}"),
            &json!({"expires_at": format_time(at)}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "PATCH {account}: {:?}", r.body);
    r.body
}

async fn grant_owned(api: &Api, account: &str, n: usize, ttl: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for i in 0..n {
        let body = json!({"ttl": ttl, "name": format!("{account}/{i}"), "account": account});
        out.push(api.post_expect("/v1/leases", &body, 201).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewing_an_expired_account_reactivates_its_leases_at_once_everywhere() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = cluster.api(if leader == 1 { 2 } else { 1 });
    let apis = apis(&cluster);

    let expiry = now_ms() + 2_000;
    let a = follower
        .post_expect(
            "/v1/accounts",
            &json!({"name": "lesson4", "expires_at": format_time(expiry)}),
            201,
        )
        .await;
    assert_eq!(a["state"], "active");
    let long = grant_owned(&follower, "lesson4", 4, "1h").await;
    // One lease that falls due while the account is expired.
    let short = follower
        .post_expect(
            "/v1/leases",
            &json!({"ttl": "5s", "name": "lesson4/short", "account": "lesson4"}),
            201,
        )
        .await;
    let short_id = short["id"].as_str().unwrap().to_string();
    let short_deadline = time_of(&short, "expires_at");
    assert_everywhere(&apis, "lesson4", "active", "active", 5).await;
    let before = account_expiries(&apis).await;

    // Expiry: the account expires, the reconciler records it, the leases
    // are suspended on every node, still listed, and refuse renewal.
    wait_suspended(&follower, "lesson4", 5).await;
    wait_reconciled(&apis, before).await;
    assert!(now_ms() >= expiry);
    assert_everywhere(&apis, "lesson4", "expired", "suspended", 5).await;
    for api in &apis {
        let r = api
            .post(
                &format!("/v1/leases/{}/renew", long[0]["id"].as_str().unwrap()),
                &json!({}),
            )
            .await
            .unwrap();
        assert_eq!(
            (r.status, r.code()),
            (409, "lease_suspended"),
            "{:?}",
            r.body
        );
    }
    let r = follower
        .post("/v1/leases", &json!({"ttl": 60, "account": "lesson4"}))
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.code()),
        (409, "account_inactive"),
        "{:?}",
        r.body
    );
    let listed = same_everywhere(&apis, "/v1/leases?state=suspended").await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(5));
    // Suspended leases keep their deadlines and keep counting down: the
    // short one expires while suspended.
    let seen = same_everywhere(
        &apis,
        &format!("/v1/leases/{}", long[1]["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(seen["expires_at"], long[1]["expires_at"]);
    let remaining = follower
        .get_ok(&format!("/v1/leases/{}", long[1]["id"].as_str().unwrap()))
        .await["remaining_ttl"]
        .as_u64()
        .unwrap();
    assert!(
        remaining < 3600,
        "remaining_ttl {remaining} still counts down while suspended"
    );
    eventually(
        Duration::from_secs(15),
        "the suspended short lease expiring",
        || {
            let api = follower.clone();
            let path = format!("/v1/leases/{short_id}");
            async move {
                let r = api.get(&path).await?;
                match (r.status, r.code()) {
                    (404, "lease_not_found") => Ok(()),
                    (200, _) => Err(format!("still there: {}", r.body["state"])),
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await;
    assert!(now_ms() >= short_deadline);
    assert_everywhere(&apis, "lesson4", "expired", "suspended", 4).await;

    // Renewal: active at once on every node, no restart.
    let renewed = set_expiry(&follower, "lesson4", now_ms() + 3_600_000).await;
    assert_eq!(renewed["state"], "active");
    assert_everywhere(&apis, "lesson4", "active", "active", 4).await;
    for l in &long {
        let r = apis[2]
            .post_expect(
                &format!("/v1/leases/{}/renew", l["id"].as_str().unwrap()),
                &json!({}),
                200,
            )
            .await;
        assert_eq!(r["state"], "active");
    }
    follower
        .post_expect("/v1/leases", &json!({"ttl": 60, "account": "lesson4"}), 201)
        .await;
    assert_everywhere(&apis, "lesson4", "active", "active", 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_expire_and_renew_cycles_in_a_row() {
    const CYCLES: usize = 100;
    let cluster = Cluster::start(3).await;
    let apis = apis(&cluster);
    apis[0]
        .post_expect("/v1/accounts", &json!({"name": "cycler"}), 201)
        .await;
    grant_owned(&apis[1], "cycler", 3, "1h").await;
    let mut processed = account_expiries(&apis).await;
    let started = std::time::Instant::now();
    for cycle in 0..CYCLES {
        let via = &apis[cycle % 3];
        // Expire shortly: the reconciler must process it (its counter on
        // the leader moves) and the leases read as suspended.
        set_expiry(via, "cycler", now_ms() + 300).await;
        processed = wait_reconciled(&apis, processed).await;
        let page = apis[(cycle + 1) % 3]
            .get_ok("/v1/leases?account=cycler")
            .await;
        let states: Vec<&str> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["suspended"; 3], "cycle {cycle}");
        // Renew: active at once, everywhere.
        let renewed = set_expiry(&apis[(cycle + 2) % 3], "cycler", now_ms() + 3_600_000).await;
        assert_eq!(renewed["state"], "active", "cycle {cycle}");
        for api in &apis {
            let page = api.get_ok("/v1/leases?account=cycler").await;
            let states: Vec<&str> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["state"].as_str().unwrap())
                .collect();
            assert_eq!(states, ["active"; 3], "cycle {cycle} on {}", api.base);
        }
        if cycle % 10 == 0 {
            assert_everywhere(&apis, "cycler", "active", "active", 3).await;
        }
    }
    eprintln!("{CYCLES} cycles in {:?}", started.elapsed());
    assert_eq!(account_expiries(&apis).await, processed);
    let usage = same_everywhere(&apis, "/v1/accounts/cycler").await;
    assert_eq!(usage["usage"]["leases"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_after_a_leader_change_reactivates_everywhere() {
    let mut cluster = Cluster::start(3).await;
    let apis = apis(&cluster);
    apis[0]
        .post_expect("/v1/accounts", &json!({"name": "moving"}), 201)
        .await;
    grant_owned(&apis[1], "moving", 5, "1h").await;

    // Expired under one leader, renewed under another (transfer).
    let leader = cluster.leader().await;
    let before = account_expiries(&apis).await;
    set_expiry(&apis[0], "moving", now_ms() + 500).await;
    wait_suspended(&apis[2], "moving", 5).await;
    wait_reconciled(&apis, before).await;
    let to = if leader == 3 { 1 } else { leader + 1 };
    let r = apis[0]
        .post("/v1/cluster/transfer-leader", &json!({"to": to}))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let now_leading = leader_other_than(&apis, leader).await;
    assert_everywhere(&apis, "moving", "expired", "suspended", 5).await;
    let renewed = set_expiry(&cluster.api(leader), "moving", now_ms() + 3_600_000).await;
    assert_eq!(renewed["state"], "active");
    assert_everywhere(&apis, "moving", "active", "active", 5).await;

    // Expired again, then the leader is killed; renewed under the next one.
    let leader = now_leading;
    let before = account_expiries(&apis).await;
    set_expiry(&apis[0], "moving", now_ms() + 500).await;
    wait_suspended(&apis[1], "moving", 5).await;
    wait_reconciled(&apis, before).await;
    cluster.kill9(leader);
    let survivors: Vec<Api> = (1..=3)
        .filter(|id| *id != leader)
        .map(|id| cluster.api(id))
        .collect();
    leader_other_than(&survivors, leader).await;
    assert_everywhere(&survivors, "moving", "expired", "suspended", 5).await;
    let renewed = set_expiry(&survivors[0], "moving", now_ms() + 3_600_000).await;
    assert_eq!(renewed["state"], "active");
    assert_everywhere(&survivors, "moving", "active", "active", 5).await;
    // The killed node comes back already reconciled.
    cluster.restart(leader);
    cluster.wait_ready(leader, Duration::from_secs(60)).await;
    assert_everywhere(&apis, "moving", "active", "active", 5).await;
    let back = cluster.api(leader);
    for l in back.get_ok("/v1/leases?account=moving").await["items"]
        .as_array()
        .unwrap()
    {
        back.post_expect(
            &format!("/v1/leases/{}/renew", l["id"].as_str().unwrap()),
            &json!({}),
            200,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_reactivates_on_nodes_restarted_while_the_account_was_expired() {
    let mut cluster = Cluster::start(3).await;
    let apis = apis(&cluster);
    apis[0]
        .post_expect("/v1/accounts", &json!({"name": "sleeper"}), 201)
        .await;
    grant_owned(&apis[1], "sleeper", 5, "1h").await;
    let before = account_expiries(&apis).await;
    set_expiry(&apis[2], "sleeper", now_ms() + 500).await;
    wait_suspended(&apis[0], "sleeper", 5).await;
    wait_reconciled(&apis, before).await;

    // Every node restarts, one at a time, while the account is expired:
    // each comes back showing the leases suspended.
    for id in 1..=3 {
        cluster.node_mut(id).signal(libc::SIGTERM);
        let code = cluster
            .node_mut(id)
            .wait_exit(Duration::from_secs(40))
            .await;
        assert_eq!(
            code,
            Some(0),
            "node {id}\n{}",
            cluster.node(id).log_tail(30)
        );
        cluster.restart(id);
        cluster.wait_ready(id, Duration::from_secs(60)).await;
        let api = cluster.api(id);
        let local = api
            .get_ok("/v1/leases?account=sleeper&consistency=local")
            .await;
        assert!(
            local["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|l| l["state"] == "suspended"),
            "node {id} after restart: {local}"
        );
        assert_everywhere(&apis, "sleeper", "expired", "suspended", 5).await;
    }

    // Renewal through a restarted node re-activates everything, on every
    // node, at once; the local (no barrier) view catches up too.
    let renewed = set_expiry(&apis[0], "sleeper", now_ms() + 3_600_000).await;
    assert_eq!(renewed["state"], "active");
    assert_everywhere(&apis, "sleeper", "active", "active", 5).await;
    for api in &apis {
        let api = api.clone();
        eventually(Duration::from_secs(10), "the local view active", || {
            let api = api.clone();
            async move {
                let local = api
                    .get("/v1/leases?account=sleeper&consistency=local")
                    .await?
                    .body;
                let items = local["items"].as_array().cloned().unwrap_or_default();
                if items.len() == 5 && items.iter().all(|l| l["state"] == "active") {
                    Ok(())
                } else {
                    Err(format!("{local}"))
                }
            }
        })
        .await;
    }
    for l in apis[1].get_ok("/v1/leases?account=sleeper").await["items"]
        .as_array()
        .unwrap()
    {
        apis[2]
            .post_expect(
                &format!("/v1/leases/{}/renew", l["id"].as_str().unwrap()),
                &json!({}),
                200,
            )
            .await;
    }
}

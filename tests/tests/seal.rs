//! Seal and unseal: a sealed node says so (`/v1/sys/seal-status`), fails
//! `/readyz`, refuses domain routes with 503 `sealed` and `Retry-After`,
//! hands leadership to an unsealed voter and stops Raft (it neither votes
//! nor replicates, so it cannot be made leader). Unseal restores it and it
//! catches up; the seal survives a restart, even with an auto-unseal key.
//! Sealing mid-expiry (lesson 1) is in `seal_mid_expiry.rs`; key shares and
//! what is on disk in `at_rest.rs`.

use std::time::Duration;

use keel_tests::leases::{leader_other_than, metric, same_everywhere};
use keel_tests::{Api, Cluster, eventually};
use serde_json::{Value, json};

/// Waits until every running node agrees on a leader other than `not`.
async fn leader_other(cluster: &mut Cluster, not: u64) -> u64 {
    let apis: Vec<Api> = cluster
        .running()
        .into_iter()
        .map(|id| cluster.api(id))
        .collect();
    leader_other_than(&apis, not).await
}

async fn seal_status(api: &Api) -> Result<bool, String> {
    let r = api.anonymous().get("/v1/sys/seal-status").await?;
    if r.status != 200 {
        return Err(format!("seal-status {} {}", r.status, r.body));
    }
    r.body["sealed"]
        .as_bool()
        .ok_or_else(|| format!("seal-status {}", r.body))
}

/// Checks that a sealed node refuses every domain route the right way.
async fn assert_sealed(api: &Api, lease_id: &str) {
    assert_eq!(seal_status(api).await, Ok(true));
    let ready = api.anonymous().get("/readyz?verbose").await.unwrap();
    assert_eq!(ready.status, 503, "{:?}", ready.body);
    let unsealed = ready.body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "unsealed")
        .cloned();
    assert_eq!(
        unsealed.map(|c| c["ok"].clone()),
        Some(json!(false)),
        "{:?}",
        ready.body
    );
    let probes: [(&str, String, Option<Value>); 9] = [
        ("GET", "/v1/leases".into(), None),
        ("GET", format!("/v1/leases/{lease_id}"), None),
        ("POST", "/v1/leases".into(), Some(json!({"ttl": 60}))),
        (
            "POST",
            format!("/v1/leases/{lease_id}/renew"),
            Some(json!({})),
        ),
        ("DELETE", format!("/v1/leases/{lease_id}"), None),
        ("GET", "/v1/accounts".into(), None),
        (
            "POST",
            "/v1/accounts".into(),
            Some(json!({"name": "while-sealed"})),
        ),
        ("POST", "/v1/accounts/acct/disable".into(), None),
        ("GET", "/v1/pki/ca".into(), None),
    ];
    for (method, path, body) in probes {
        let r = api.send(method, &path, body.as_ref()).await.unwrap();
        assert_eq!(
            (r.status, r.code()),
            (503, "sealed"),
            "{method} {path} on a sealed node: {:?}",
            r.body
        );
        assert!(
            r.retry_after.is_some(),
            "{method} {path}: 503 without Retry-After"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_node_refuses_work_gives_up_leadership_and_stays_sealed_across_restart() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let sealed = cluster.api(leader);
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let other = cluster.api(others[0]);
    other
        .post_expect("/v1/accounts", &json!({"name": "acct"}), 201)
        .await;
    let lease = other
        .post_expect(
            "/v1/leases",
            &json!({"ttl": "1h", "name": "kept", "account": "acct"}),
            201,
        )
        .await;
    let lease_id = lease["id"].as_str().unwrap().to_string();

    // Seal the leader: it answers only after its managers were stopped.
    let r = sealed.post_expect("/v1/sys/seal", &json!({}), 200).await;
    assert_eq!(r["sealed"], json!(true), "{r}");
    assert_sealed(&sealed, &lease_id).await;
    for id in &others {
        assert_eq!(seal_status(&cluster.api(*id)).await, Ok(false));
    }
    // Sealing twice is harmless.
    sealed.post_expect("/v1/sys/seal", &json!({}), 200).await;
    // It handed leadership to an unsealed voter; the cluster keeps working.
    let new_leader = leader_other(&mut cluster, leader).await;
    assert!(others.contains(&new_leader));
    let l2 = other
        .post_expect(
            "/v1/leases",
            &json!({"ttl": "1h", "name": "while-sealed"}),
            201,
        )
        .await;
    // Unauthenticated routes still answer; Raft does not run on it, so
    // even its cluster view is refused, and the lifecycle says why.
    assert_eq!(sealed.anonymous().get("/livez").await.unwrap().status, 200);
    assert!(metric(&sealed, "keel_raft_is_leader").await.is_ok());
    let view = sealed.get("/v1/cluster").await.unwrap();
    assert_eq!(view.status, 503, "{:?}", view.body);
    let lifecycle = sealed.get_ok("/v1/sys/lifecycle").await;
    assert_eq!(lifecycle["phase"], "sealed", "{lifecycle}");

    // Asked to take leadership, it cannot: its Raft is stopped.
    let r = other
        .post("/v1/cluster/transfer-leader", &json!({"to": leader}))
        .await
        .unwrap();
    assert!(
        r.status != 200 || r.body["leader"] != json!(leader),
        "transfer-leader: {r:?}"
    );
    let back = leader_other(&mut cluster, leader).await;
    assert_ne!(back, leader);
    assert_sealed(&sealed, &lease_id).await;

    // Unseal: it serves again, and has everything written meanwhile.
    let r = sealed.post_expect("/v1/sys/unseal", &json!({}), 200).await;
    assert_eq!(r["sealed"], json!(false), "{r}");
    cluster.wait_ready(leader, Duration::from_secs(30)).await;
    let apis: Vec<Api> = (1..=3).map(|id| cluster.api(id)).collect();
    let seen = same_everywhere(&apis, &format!("/v1/leases/{}", l2["id"].as_str().unwrap())).await;
    assert_eq!(seen["name"], "while-sealed");
    sealed
        .post_expect(&format!("/v1/leases/{lease_id}/renew"), &json!({}), 200)
        .await;

    // The seal is persisted: seal, restart, still sealed.
    sealed.post_expect("/v1/sys/seal", &json!({}), 200).await;
    leader_other(&mut cluster, leader).await;
    cluster.node_mut(leader).signal(libc::SIGTERM);
    let code = cluster
        .node_mut(leader)
        .wait_exit(Duration::from_secs(40))
        .await;
    assert_eq!(code, Some(0), "{}", cluster.node(leader).log_tail(30));
    cluster.restart(leader);
    eventually(
        Duration::from_secs(30),
        "the restarted node answering seal-status",
        || {
            let api = sealed.clone();
            async move { seal_status(&api).await }
        },
    )
    .await;
    assert_eq!(
        seal_status(&sealed).await,
        Ok(true),
        "the seal survives a restart"
    );
    // It stays sealed: the auto-unseal key file does not undo an
    // operator's seal, and the cluster goes on without it.
    let state = sealed.anonymous().get("/v1/sys/seal-status").await.unwrap();
    assert_eq!(state.body["kind"], "key_file", "{:?}", state.body);
    let still = leader_other(&mut cluster, leader).await;
    assert_ne!(still, leader);
    assert_sealed(&sealed, &lease_id).await;
    sealed.post_expect("/v1/sys/unseal", &json!({}), 200).await;
    cluster.wait_ready(leader, Duration::from_secs(30)).await;
    let seen = same_everywhere(&apis, &format!("/v1/leases/{lease_id}")).await;
    assert_eq!(
        (seen["renewals"].as_u64(), seen["state"].as_str()),
        (Some(1), Some("active"))
    );

    // Seal and unseal need the admin token.
    let r = sealed
        .anonymous()
        .post("/v1/sys/seal", &json!({}))
        .await
        .unwrap();
    assert_eq!((r.status, r.code()), (401, "unauthorized"));
    assert_eq!(seal_status(&sealed).await, Ok(false));
}

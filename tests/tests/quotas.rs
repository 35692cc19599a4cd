//! Cluster-wide quotas (`--max-accounts`, `--max-leases`,
//! `--max-certificates`): a request that would create an object beyond one
//! answers 409 `quota_exceeded` and creates nothing; removing an object
//! makes room again. The quota is checked when the entry applies, so it
//! holds on every node whichever one took the request.

use keel_tests::Cluster;
use keel_tests::pki::wait_for_ca;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_answer_409_and_create_nothing_until_room_is_made() {
    let mut cluster = Cluster::builder(3)
        .arg("--max-accounts")
        .arg("2")
        .arg("--max-leases")
        .arg("3")
        .arg("--max-certificates")
        .arg("2")
        .start()
        .await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let (api, via_follower) = (cluster.api(leader), cluster.api(follower));
    wait_for_ca(&api).await;

    let refused = |r: keel_tests::Reply, what: &str| {
        assert_eq!(
            (r.status, r.code()),
            (409, "quota_exceeded"),
            "{what}: {}",
            r.text
        );
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("quota")
        );
    };

    // Accounts.
    for name in ["a1", "a2"] {
        api.post_expect("/v1/accounts", &json!({"name": name}), 201)
            .await;
    }
    refused(
        via_follower
            .post("/v1/accounts", &json!({"name": "a3"}))
            .await
            .unwrap(),
        "third account",
    );
    assert_eq!(api.get("/v1/accounts/a3").await.unwrap().status, 404);
    assert_eq!(
        api.get_ok("/v1/accounts").await["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Leases: the fourth is refused; revoking one makes room.
    let mut ids = Vec::new();
    for i in 0..3 {
        let lease = api
            .post_expect(
                "/v1/leases",
                &json!({"ttl": "1h", "name": format!("q/{i}")}),
                201,
            )
            .await;
        ids.push(lease["id"].as_str().unwrap().to_string());
    }
    refused(
        via_follower
            .post("/v1/leases", &json!({"ttl": "1h", "name": "q/3"}))
            .await
            .unwrap(),
        "fourth lease",
    );
    assert_eq!(
        api.get_ok("/v1/leases?prefix=q/").await["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let r = api.delete(&format!("/v1/leases/{}", ids[0])).await.unwrap();
    assert_eq!(r.status, 204, "{}", r.text);
    api.post_expect("/v1/leases", &json!({"ttl": "1h", "name": "q/3"}), 201)
        .await;

    // Certificates: issue, sign and renew all create records.
    let cert = api
        .post_expect(
            "/v1/pki/issue",
            &json!({"common_name": "c1", "ttl": "1h"}),
            201,
        )
        .await;
    api.post_expect(
        "/v1/pki/issue",
        &json!({"common_name": "c2", "ttl": "1h"}),
        201,
    )
    .await;
    refused(
        api.post("/v1/pki/issue", &json!({"common_name": "c3", "ttl": "1h"}))
            .await
            .unwrap(),
        "third certificate",
    );
    let serial = cert["serial"].as_str().unwrap();
    refused(
        api.post(&format!("/v1/pki/certs/{serial}/renew"), &json!({}))
            .await
            .unwrap(),
        "renewal beyond the quota",
    );
    assert_eq!(
        api.get_ok("/v1/pki/certs").await["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

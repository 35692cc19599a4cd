//! Account lease limits: a grant beyond `max_leases` answers 409
//! `limit_exceeded`; raising the limit (PATCH) admits more; lowering it
//! below usage keeps what is held. Under 200 concurrent grants through all
//! three nodes the limit is never overshot: exactly `max_leases` succeed
//! and the account's usage says so on every node.

use std::collections::BTreeMap;

use keel_tests::leases::{node_apis, same_everywhere};
use keel_tests::{Api, Cluster};
use serde_json::json;

fn apis(cluster: &Cluster) -> Vec<Api> {
    node_apis(cluster, 3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_limit_is_enforced_and_can_be_raised() {
    let cluster = Cluster::start(3).await;
    let apis = apis(&cluster);
    let a = apis[0]
        .post_expect(
            "/v1/accounts",
            &json!({"name": "small", "limits": {"max_leases": 3}}),
            201,
        )
        .await;
    assert_eq!(
        a["limits"],
        json!({"max_leases": 3, "max_certificates": null})
    );
    assert_eq!(a["usage"], json!({"leases": 0, "certificates": 0}));
    for api in &apis {
        api.post_expect("/v1/leases", &json!({"ttl": "1h", "account": "small"}), 201)
            .await;
    }
    for api in &apis {
        let r = api
            .post("/v1/leases", &json!({"ttl": "1h", "account": "small"}))
            .await
            .unwrap();
        assert_eq!(
            (r.status, r.code()),
            (409, "limit_exceeded"),
            "{:?}",
            r.body
        );
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("small"),
            "{:?}",
            r.body
        );
    }
    assert_eq!(
        same_everywhere(&apis, "/v1/accounts/small").await["usage"]["leases"],
        3
    );

    // Raising the limit admits more, up to the new limit.
    let r = apis[1]
        .patch("/v1/accounts/small", &json!({"limits": {"max_leases": 4}}))
        .await
        .unwrap();
    assert_eq!(
        (r.status, &r.body["limits"]["max_leases"]),
        (200, &json!(4)),
        "{:?}",
        r.body
    );
    let extra = apis[2]
        .post_expect("/v1/leases", &json!({"ttl": "1h", "account": "small"}), 201)
        .await;
    let r = apis[0]
        .post("/v1/leases", &json!({"ttl": "1h", "account": "small"}))
        .await
        .unwrap();
    assert_eq!((r.status, r.code()), (409, "limit_exceeded"));
    // Revoking frees a slot; lowering the limit below usage keeps what is
    // held but admits nothing new.
    let r = apis[0]
        .delete(&format!("/v1/leases/{}", extra["id"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    apis[1]
        .post_expect("/v1/leases", &json!({"ttl": "1h", "account": "small"}), 201)
        .await;
    let r = apis[2]
        .patch("/v1/accounts/small", &json!({"limits": {"max_leases": 1}}))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let small = same_everywhere(&apis, "/v1/accounts/small").await;
    assert_eq!(
        (
            small["usage"]["leases"].as_u64(),
            small["limits"]["max_leases"].as_u64()
        ),
        (Some(4), Some(1))
    );
    let r = apis[0]
        .post("/v1/leases", &json!({"ttl": "1h", "account": "small"}))
        .await
        .unwrap();
    assert_eq!((r.status, r.code()), (409, "limit_exceeded"));
    assert_eq!(
        same_everywhere(&apis, "/v1/leases?account=small").await["items"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_grants_never_exceed_the_limit() {
    const LIMIT: u64 = 50;
    const GRANTS: usize = 200;
    let cluster = Cluster::start(3).await;
    let apis = apis(&cluster);
    apis[0]
        .post_expect(
            "/v1/accounts",
            &json!({"name": "crowd", "limits": {"max_leases": LIMIT}}),
            201,
        )
        .await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..GRANTS {
        let api = apis[i % 3].clone();
        tasks.spawn(async move {
            let body = json!({"ttl": "1h", "name": format!("crowd/{i:03}"), "account": "crowd"});
            let r = api.post("/v1/leases", &body).await;
            (i, r)
        });
    }
    let mut outcomes: BTreeMap<(u16, String), usize> = BTreeMap::new();
    let mut granted = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (i, r) = done.expect("grant task");
        let r = r.unwrap_or_else(|e| panic!("grant {i}: {e}"));
        *outcomes
            .entry((r.status, r.code().to_string()))
            .or_default() += 1;
        if r.status == 201 {
            granted.push(r.body["id"].as_str().unwrap().to_string());
        }
    }
    let expected: BTreeMap<(u16, String), usize> = [
        ((201, String::new()), LIMIT as usize),
        ((409, "limit_exceeded".to_string()), GRANTS - LIMIT as usize),
    ]
    .into_iter()
    .collect();
    assert_eq!(outcomes, expected);
    let account = same_everywhere(&apis, "/v1/accounts/crowd").await;
    assert_eq!(account["usage"]["leases"], LIMIT, "{account}");
    let listed = same_everywhere(&apis, "/v1/leases?account=crowd").await;
    let mut listed: Vec<String> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    granted.sort();
    assert_eq!(listed, granted, "exactly the leases answered 201 exist");
}

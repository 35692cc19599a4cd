//! Bad account input gets a 4xx with keel's JSON error body and changes
//! nothing: invalid names (create and every path route), unparseable or
//! out-of-range times, malformed limits and unknown fields, unknown
//! accounts (404 `account_not_found` for every verb, and for a lease naming
//! one), duplicates (409).

use keel_tests::leases::{node_apis, same_everywhere, without_clock};
use keel_tests::{Api, Cluster};
use serde_json::json;

fn apis(cluster: &Cluster) -> Vec<Api> {
    node_apis(cluster, 3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_account_input_is_refused_and_changes_nothing() {
    let cluster = Cluster::start(3).await;
    let apis = apis(&cluster);
    let api = &apis[1];
    let existing = apis[0]
        .post_expect(
            "/v1/accounts",
            &json!({"name": "exists", "limits": {"max_leases": 2}}),
            201,
        )
        .await;
    let snapshot = same_everywhere(&apis, "/v1/accounts").await;
    let check = |r: keel_tests::Reply, status: u16, code: &str, what: &str| {
        assert_eq!((r.status, r.code()), (status, code), "{what}: {:?}", r.body);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: {:?}",
            r.body
        );
    };

    let long = "a".repeat(64);
    let bad_names = [
        "",
        "Upper",
        "-lead",
        ".dot",
        "_under",
        long.as_str(),
        "with space",
        "slash/x",
        "ünï",
        "a:b",
        "a@b",
    ];
    for name in bad_names {
        check(
            api.post("/v1/accounts", &json!({"name": name}))
                .await
                .unwrap(),
            400,
            "bad_request",
            &format!("create `{name}`"),
        );
    }
    for name in ["Upper", "-lead", "a%40b", "ABC"] {
        check(
            api.get(&format!("/v1/accounts/{name}")).await.unwrap(),
            400,
            "bad_request",
            &format!("GET {name}"),
        );
        check(
            api.patch(&format!("/v1/accounts/{name}"), &json!({}))
                .await
                .unwrap(),
            400,
            "bad_request",
            &format!("PATCH {name}"),
        );
        check(
            api.delete(&format!("/v1/accounts/{name}")).await.unwrap(),
            400,
            "bad_request",
            &format!("DELETE {name}"),
        );
        check(
            api.post(&format!("/v1/accounts/{name}/disable"), &json!({}))
                .await
                .unwrap(),
            400,
            "bad_request",
            &format!("disable {name}"),
        );
    }
    let bad_times = [
        json!("tomorrow"),
        json!("2026-13-01T00:00:00Z"),
        json!("2026-11-21"),
        json!("2026-11-21T10:00:00"),
        json!("1960-01-01T00:00:00Z"),
        json!(1_800_000_000),
        json!(true),
        json!(""),
    ];
    for t in &bad_times {
        check(
            api.post("/v1/accounts", &json!({"name": "timely", "expires_at": t}))
                .await
                .unwrap(),
            400,
            "bad_request",
            &format!("create expires_at {t}"),
        );
        check(
            api.patch("/v1/accounts/exists", &json!({"expires_at": t}))
                .await
                .unwrap(),
            400,
            "bad_request",
            &format!("PATCH expires_at {t}"),
        );
    }
    for body in [
        json!({"name": "limited", "limits": {"max_leases": -1}}),
        json!({"name": "limited", "limits": {"max_leases": "ten"}}),
        json!({"name": "limited", "limits": {"max_leases": 1.5}}),
        json!({"name": "limited", "limits": {"max_widgets": 1}}),
        json!({"name": "limited", "colour": "red"}),
        json!({"limits": {}}),
    ] {
        check(
            api.post("/v1/accounts", &body).await.unwrap(),
            400,
            "bad_request",
            &format!("create {body}"),
        );
    }
    for body in [
        json!({"limits": {"max_leases": -1}}),
        json!({"limits": {"max_widgets": 1}}),
        json!({"name": "renamed"}),
    ] {
        check(
            api.patch("/v1/accounts/exists", &body).await.unwrap(),
            400,
            "bad_request",
            &format!("PATCH {body}"),
        );
    }
    let r = api
        .send_raw("POST", "/v1/accounts", Some(b"name=x".to_vec()), &[])
        .await
        .unwrap();
    check(r, 400, "bad_request", "form body");
    check(
        api.get("/v1/accounts?state=bogus").await.unwrap(),
        400,
        "bad_request",
        "list ?state=bogus",
    );

    // Unknown accounts: 404 for every verb, and for a lease naming one.
    for (method, path) in [
        ("GET", "/v1/accounts/nobody"),
        ("PATCH", "/v1/accounts/nobody"),
        ("DELETE", "/v1/accounts/nobody"),
        ("POST", "/v1/accounts/nobody/disable"),
        ("POST", "/v1/accounts/nobody/enable"),
    ] {
        for a in &apis {
            check(
                a.send(method, path, Some(&json!({}))).await.unwrap(),
                404,
                "account_not_found",
                &format!("{method} {path}"),
            );
        }
    }
    check(
        api.post("/v1/leases", &json!({"ttl": 60, "account": "nobody"}))
            .await
            .unwrap(),
        404,
        "account_not_found",
        "lease for nobody",
    );
    // A duplicate is a conflict.
    check(
        api.post("/v1/accounts", &json!({"name": "exists"}))
            .await
            .unwrap(),
        409,
        "conflict",
        "duplicate",
    );

    // Nothing changed.
    assert_eq!(same_everywhere(&apis, "/v1/accounts").await, snapshot);
    assert_eq!(
        same_everywhere(&apis, "/v1/accounts/exists").await,
        without_clock(&existing)
    );
    assert_eq!(
        same_everywhere(&apis, "/v1/leases").await["items"],
        json!([])
    );
}

//! Accounts and what they own, through the API of a real three-node
//! cluster: deleting an account revokes its leases first; the operator's
//! disable/enable switch suspends and restores what the account owns at
//! once, on every node; PATCH's `null` clears the expiry or removes a
//! limit. Lesson 4 (expiry and renewal) is in `account_expiry.rs`, limits
//! in `account_limits.rs`, bad input in `web/tests/account_input.rs` (in
//! process), the CLI in
//! `account_cli.rs`.

use keel_tests::leases::{format_time, node_apis, now_ms, same_everywhere, without_clock};
use keel_tests::{Api, Cluster};
use serde_json::json;

fn apis(cluster: &Cluster) -> Vec<Api> {
    node_apis(cluster, 3)
}

/// Every node shows the account in `state` and its leases in `lease_state`.
async fn states_everywhere(apis: &[Api], account: &str, state: &str, lease_state: &str, n: usize) {
    for api in apis {
        let a = api.get_ok(&format!("/v1/accounts/{account}")).await;
        assert_eq!(a["state"], state, "{account} on {}: {a}", api.base);
        let items = api.get_ok(&format!("/v1/leases?account={account}")).await["items"].clone();
        let states: Vec<&str> = items
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["state"].as_str().unwrap())
            .collect();
        assert_eq!(
            states,
            vec![lease_state; n],
            "leases of {account} on {}",
            api.base
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_account_revokes_its_leases_then_the_account() {
    let cluster = Cluster::start(3).await;
    let apis = apis(&cluster);
    apis[0]
        .post_expect("/v1/accounts", &json!({"name": "doomed"}), 201)
        .await;
    apis[1]
        .post_expect("/v1/accounts", &json!({"name": "bystander"}), 201)
        .await;
    let mut doomed = Vec::new();
    for i in 0..5 {
        let l = apis[i % 3]
            .post_expect(
                "/v1/leases",
                &json!({"ttl": "1h", "account": "doomed", "name": format!("d/{i}")}),
                201,
            )
            .await;
        doomed.push(l["id"].as_str().unwrap().to_string());
    }
    let kept = apis[2]
        .post_expect(
            "/v1/leases",
            &json!({"ttl": "1h", "account": "bystander", "name": "d/kept"}),
            201,
        )
        .await;
    let unowned = apis[2]
        .post_expect(
            "/v1/leases",
            &json!({"ttl": "1h", "name": "d/unowned"}),
            201,
        )
        .await;

    let r = apis[1].delete("/v1/accounts/doomed").await.unwrap();
    assert_eq!(
        (r.status, &r.body),
        (200, &json!({"deleted": "doomed", "revoked": 5})),
        "{:?}",
        r.body
    );
    for api in &apis {
        for id in &doomed {
            let r = api.get(&format!("/v1/leases/{id}")).await.unwrap();
            assert_eq!(
                (r.status, r.code()),
                (404, "lease_not_found"),
                "{id} on {}",
                api.base
            );
        }
        let r = api.get("/v1/accounts/doomed").await.unwrap();
        assert_eq!(
            (r.status, r.code()),
            (404, "account_not_found"),
            "{:?}",
            r.body
        );
    }
    let left = same_everywhere(&apis, "/v1/leases?prefix=d/").await;
    let names: Vec<&str> = left["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(
        names.contains(&"d/kept") && names.contains(&"d/unowned"),
        "{names:?}"
    );
    assert_eq!(
        same_everywhere(
            &apis,
            &format!("/v1/leases/{}", kept["id"].as_str().unwrap())
        )
        .await,
        without_clock(&kept)
    );
    assert_eq!(
        same_everywhere(
            &apis,
            &format!("/v1/leases/{}", unowned["id"].as_str().unwrap())
        )
        .await,
        without_clock(&unowned)
    );
    let r = apis[0].delete("/v1/accounts/doomed").await.unwrap();
    assert_eq!((r.status, r.code()), (404, "account_not_found"));
    // A new account of the same name starts empty; the old leases stay gone.
    let again = apis[0]
        .post_expect("/v1/accounts", &json!({"name": "doomed"}), 201)
        .await;
    assert_eq!(again["usage"]["leases"], 0);
    assert_eq!(
        same_everywhere(&apis, "/v1/leases?account=doomed").await["items"],
        json!([])
    );
    // Leases granted to a deleted account's name are refused while it is gone.
    apis[1].delete("/v1/accounts/doomed").await.unwrap();
    let r = apis[2]
        .post("/v1/leases", &json!({"ttl": 60, "account": "doomed"}))
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.code()),
        (404, "account_not_found"),
        "{:?}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_suspends_what_the_account_owns_and_enable_restores_it_at_once() {
    let cluster = Cluster::start(3).await;
    let apis = apis(&cluster);
    apis[0]
        .post_expect("/v1/accounts", &json!({"name": "switch"}), 201)
        .await;
    let mut ids = Vec::new();
    for api in &apis {
        let l = api
            .post_expect(
                "/v1/leases",
                &json!({"ttl": "1h", "account": "switch"}),
                201,
            )
            .await;
        ids.push(l["id"].as_str().unwrap().to_string());
    }
    let before = same_everywhere(&apis, "/v1/leases?account=switch").await;

    let a = apis[1]
        .post_expect("/v1/accounts/switch/disable", &json!({}), 200)
        .await;
    assert_eq!(a["state"], "disabled");
    states_everywhere(&apis, "switch", "disabled", "suspended", 3).await;
    for api in &apis {
        let r = api
            .post(&format!("/v1/leases/{}/renew", ids[0]), &json!({}))
            .await
            .unwrap();
        assert_eq!(
            (r.status, r.code()),
            (409, "lease_suspended"),
            "{:?}",
            r.body
        );
        let r = api
            .post("/v1/leases", &json!({"ttl": 60, "account": "switch"}))
            .await
            .unwrap();
        assert_eq!(
            (r.status, r.code()),
            (409, "account_inactive"),
            "{:?}",
            r.body
        );
    }
    // Disabling twice changes nothing; a future expiry does not override
    // the operator's switch.
    apis[2]
        .post_expect("/v1/accounts/switch/disable", &json!({}), 200)
        .await;
    let r = apis[0]
        .patch(
            "/v1/accounts/switch",
            &json!({"expires_at": format_time(now_ms() + 3_600_000)}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status, &r.body["state"]),
        (200, &json!("disabled")),
        "{:?}",
        r.body
    );
    states_everywhere(&apis, "switch", "disabled", "suspended", 3).await;

    let a = apis[2]
        .post_expect("/v1/accounts/switch/enable", &json!({}), 200)
        .await;
    assert_eq!(a["state"], "active");
    states_everywhere(&apis, "switch", "active", "active", 3).await;
    let after = same_everywhere(&apis, "/v1/leases?account=switch").await;
    assert_eq!(after, before, "the leases are untouched by the round trip");
    apis[0]
        .post_expect(&format!("/v1/leases/{}/renew", ids[0]), &json!({}), 200)
        .await;

    // Disabled and expired: enabling leaves it expired (still suspended);
    // renewing the expiry then restores everything.
    apis[0]
        .post_expect("/v1/accounts/switch/disable", &json!({}), 200)
        .await;
    let r = apis[1]
        .patch(
            "/v1/accounts/switch",
            &json!({"expires_at": format_time(now_ms().saturating_sub(1_000))}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let a = apis[2]
        .post_expect("/v1/accounts/switch/enable", &json!({}), 200)
        .await;
    assert_eq!(a["state"], "expired");
    states_everywhere(&apis, "switch", "expired", "suspended", 3).await;
    let r = apis[0]
        .patch(
            "/v1/accounts/switch",
            &json!({"expires_at": format_time(now_ms() + 3_600_000)}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status, &r.body["state"]),
        (200, &json!("active")),
        "{:?}",
        r.body
    );
    states_everywhere(&apis, "switch", "active", "active", 3).await;
}

/// PATCH distinguishes an absent field (keep) from `null` (clear): `null`
/// `expires_at` removes the expiry and `null` `max_leases` removes the
/// limit, as the handlers document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_null_clears_the_expiry_and_removes_a_limit() {
    let cluster = Cluster::start(3).await;
    let apis = apis(&cluster);
    let at = format_time(now_ms() + 3_600_000);
    apis[0]
        .post_expect(
            "/v1/accounts",
            &json!({"name": "nulls", "expires_at": at, "limits": {"max_leases": 1}}),
            201,
        )
        .await;
    // Absent fields keep their values.
    let r = apis[1]
        .patch("/v1/accounts/nulls", &json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        (
            r.body["expires_at"].as_str(),
            r.body["limits"]["max_leases"].as_u64()
        ),
        (Some(at.as_str()), Some(1))
    );
    let mut wrong = Vec::new();
    let r = apis[1]
        .patch("/v1/accounts/nulls", &json!({"expires_at": null}))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let seen = same_everywhere(&apis, "/v1/accounts/nulls").await;
    if !seen["expires_at"].is_null() {
        wrong.push(format!(
            "`\"expires_at\": null` answered 200 but kept the expiry: {seen}"
        ));
    }
    let r = apis[2]
        .patch(
            "/v1/accounts/nulls",
            &json!({"limits": {"max_leases": null}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let seen = same_everywhere(&apis, "/v1/accounts/nulls").await;
    if !seen["limits"]["max_leases"].is_null() {
        wrong.push(format!(
            "`\"max_leases\": null` answered 200 but kept the limit: {seen}"
        ));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    for _ in 0..3 {
        apis[0]
            .post_expect("/v1/leases", &json!({"ttl": 60, "account": "nulls"}), 201)
            .await;
    }
}

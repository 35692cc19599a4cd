//! Accounts through the API and the CLI of a real three-node cluster:
//! lease limits (also under 200 concurrent grants through all three nodes,
//! which must never overshoot), delete cascading to the account's leases,
//! the operator's disable/enable switch (reversible at once), bad input
//! (invalid names, unparseable times, unknown accounts: a 4xx and no
//! change), PATCH's `null` (clear the expiry, remove a limit), and
//! `keel account create|get|list|update|disable|enable|delete`.

use std::collections::BTreeMap;

use keel_tests::leases::{format_time, keel_cli, now_ms, same_everywhere, without_clock};
use keel_tests::{Api, Cluster, TOKEN};
use serde_json::json;

fn apis(cluster: &Cluster) -> Vec<Api> {
    (1..=3).map(|id| cluster.api(id)).collect()
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

/// The `key  value` row of the CLI's record output.
fn row(stdout: &str, field: &str) -> String {
    stdout
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(char::is_whitespace)?;
            (k == field).then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no `{field}` row in:\n{stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_cli_drives_the_cluster() {
    let cluster = Cluster::start(3).await;
    let addr = cluster.node(2).api_addr.clone();
    let api = cluster.api(3);
    let run = |args: Vec<String>| {
        let addr = addr.clone();
        async move {
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            keel_cli(&addr, TOKEN, &argv).await
        }
    };
    let v = |args: &[&str]| args.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    let at = format_time(now_ms() + 86_400_000);

    // create, as JSON and as a record.
    let created = run(v(&[
        "account",
        "create",
        "cli-one",
        "--expires-at",
        &at,
        "--max-leases",
        "5",
        "--json",
    ]))
    .await
    .ok()
    .json();
    assert_eq!(
        (created["name"].as_str(), created["state"].as_str()),
        (Some("cli-one"), Some("active"))
    );
    assert_eq!(created["limits"]["max_leases"], 5);
    assert_eq!(
        created["expires_at"]
            .as_str()
            .map(keel_tests::leases::parse_time),
        Some(keel_tests::leases::parse_time(&at))
    );
    let out = run(v(&["account", "create", "cli-two"])).await.ok();
    assert_eq!(row(&out.stdout, "name"), "cli-two");
    assert_eq!(row(&out.stdout, "state"), "active");
    assert_eq!(row(&out.stdout, "expires_at"), "-");
    assert_eq!(api.get_ok("/v1/accounts/cli-two").await["state"], "active");

    // get and list.
    let out = run(v(&["account", "get", "cli-one"])).await.ok();
    assert_eq!(row(&out.stdout, "name"), "cli-one");
    assert!(out.stdout.contains("leases 5"), "{}", out.stdout);
    let got = run(v(&["account", "get", "cli-one", "--json"]))
        .await
        .ok()
        .json();
    assert_eq!(got["limits"]["max_leases"], 5);
    let list = run(v(&["account", "list", "--json"])).await.ok().json();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cli-one", "cli-two"]);
    let out = run(v(&["account", "list"])).await.ok();
    assert!(
        out.stdout.starts_with("NAME")
            && out.stdout.contains("cli-one")
            && out.stdout.contains("cli-two"),
        "{}",
        out.stdout
    );

    // update: limits and expiry.
    let updated = run(v(&[
        "account",
        "update",
        "cli-two",
        "--max-leases",
        "7",
        "--json",
    ]))
    .await
    .ok()
    .json();
    assert_eq!(updated["limits"]["max_leases"], 7);
    let past = format_time(now_ms().saturating_sub(60_000));
    let out = run(v(&["account", "update", "cli-two", "--expires-at", &past]))
        .await
        .ok();
    assert_eq!(row(&out.stdout, "state"), "expired");
    let out = run(v(&["account", "update", "cli-two", "--expires-at", &at]))
        .await
        .ok();
    assert_eq!(row(&out.stdout, "state"), "active");

    // disable and enable.
    api.post_expect(
        "/v1/leases",
        &json!({"ttl": 600, "account": "cli-one"}),
        201,
    )
    .await;
    let out = run(v(&["account", "disable", "cli-one"])).await.ok();
    assert_eq!(row(&out.stdout, "state"), "disabled");
    let leases = api.get_ok("/v1/leases?account=cli-one").await;
    assert_eq!(leases["items"][0]["state"], "suspended");
    let enabled = run(v(&["account", "enable", "cli-one", "--json"]))
        .await
        .ok()
        .json();
    assert_eq!(enabled["state"], "active");
    assert_eq!(
        api.get_ok("/v1/leases?account=cli-one").await["items"][0]["state"],
        "active"
    );

    // delete.
    let out = run(v(&["account", "delete", "cli-one"])).await.ok();
    assert_eq!(out.stdout.trim(), "deleted cli-one; revoked 1");
    let out = run(v(&["account", "delete", "cli-two", "--json"]))
        .await
        .ok();
    assert_eq!(out.json(), json!({"deleted": "cli-two", "revoked": 0}));
    assert_eq!(api.get_ok("/v1/accounts").await["items"], json!([]));
    assert_eq!(api.get_ok("/v1/leases").await["items"], json!([]));

    // Errors: message on stderr, exit code 1, nothing on stdout.
    for (args, code) in [
        (v(&["account", "get", "cli-one"]), "account_not_found"),
        (v(&["account", "create", "Bad Name"]), "bad_request"),
        (
            v(&["account", "create", "later", "--expires-at", "tomorrow"]),
            "bad_request",
        ),
        (v(&["account", "enable", "nobody"]), "account_not_found"),
    ] {
        let out = run(args.clone()).await;
        assert_eq!(out.code, Some(1), "{args:?}: {out:?}");
        assert!(out.stderr.contains(code), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
    let out = run(v(&["account", "update", "x", "--max-leases", "lots"])).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(api.get_ok("/v1/accounts").await["items"], json!([]));
}

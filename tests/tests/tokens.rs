//! Scoped tokens on a real three-node cluster: the authorization matrix
//! generated from `/openapi.json` (every `/v1` operation x every role:
//! refused with 403 and nothing changed where the role lacks the
//! permission, never refused where it has it), tenant tokens confined to
//! their account, token lookup/renew/revoke, a revoked or expired token
//! refused on every node, a tenant's tokens suspended with its account and
//! restored with it at once, and secrets that reach no list and no log.
//! Every request of the matrix is in the audit log, whose chain holds.

use std::time::Duration;

use keel_tests::leases::{node_apis, now_ms};
use keel_tests::{Api, Cluster, TOKEN, eventually};
use serde_json::{Value, json};

/// The roles and what the issue asks each to be able to do, written
/// independently of keel's permission table.
fn expected_allowed(role: &str, method: &str, path: &str) -> bool {
    let read = method == "get";
    let own_token = path.starts_with("/v1/auth/tokens/self");
    let write_of = |prefixes: &[&str]| !read && prefixes.iter().any(|p| path.starts_with(p));
    match role {
        "admin" => true,
        // Everything but changes to leases, accounts and certificates.
        "operator" => !write_of(&["/v1/leases", "/v1/accounts", "/v1/pki"]),
        // Reads, but no snapshot (it holds the CA key) and no token list.
        "reader" => {
            own_token
                || (read && path != "/v1/sys/snapshot" && !path.starts_with("/v1/auth/tokens"))
        }
        // Its own leases, account and certificates.
        "tenant" => {
            own_token
                || path.starts_with("/v1/leases")
                || path.starts_with("/v1/pki")
                || (read && path.starts_with("/v1/accounts"))
        }
        other => panic!("unknown role {other}"),
    }
}

async fn create_token(api: &Api, role: &str, account: Option<&str>, ttl: &str) -> Value {
    let mut body = json!({"role": role, "ttl": ttl, "name": format!("test {role}")});
    if let Some(a) = account {
        body["account"] = json!(a);
    }
    let created = api.post_expect("/v1/auth/tokens", &body, 201).await;
    assert!(
        created["secret"].as_str().is_some_and(|s| s.len() > 32),
        "{created}"
    );
    created
}

/// Everything a denied request must leave unchanged.
async fn state(api: &Api) -> Value {
    let mut s = json!({});
    for path in [
        "/v1/leases?limit=1000",
        "/v1/accounts",
        "/v1/pki/certs",
        "/v1/auth/tokens",
        "/v1/cluster",
    ] {
        let mut v = api.get_ok(path).await;
        if path == "/v1/cluster" {
            // Indexes and lag move with the managers' own writes.
            v = json!(v["members"].as_array().map(|m| {
                m.iter()
                    .map(|x| (x["id"].clone(), x["role"].clone()))
                    .collect::<Vec<_>>()
            }));
        }
        if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
            for item in items {
                if let Some(o) = item.as_object_mut() {
                    o.remove("remaining_ttl");
                }
            }
        }
        s[path] = v;
    }
    s
}

/// Waits until `GET /v1/leases` with `api`'s token answers `status`.
async fn wait_status(api: &Api, status: u16, deadline: Duration, what: &str) {
    eventually(deadline, what, || {
        let api = api.clone();
        async move {
            let r = api.get("/v1/leases").await?;
            if r.status == status {
                Ok(())
            } else {
                Err(format!("{} {}", r.status, r.body))
            }
        }
    })
    .await;
}

fn fill(path: &str, values: &[(&str, &str)]) -> String {
    let mut p = path.to_string();
    for (k, v) in values {
        p = p.replace(&format!("{{{k}}}"), v);
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_matrix_holds_on_every_route() {
    let cluster = Cluster::start(3).await;
    let root = cluster.api(1);
    for name in ["acme", "other"] {
        root.post_expect("/v1/accounts", &json!({"name": name}), 201)
            .await;
    }
    let other_lease = root
        .post_expect(
            "/v1/leases",
            &json!({"ttl": "1h", "account": "other", "name": "o/1"}),
            201,
        )
        .await;
    let mut tokens = Vec::new();
    for (role, account) in [
        ("admin", None),
        ("operator", None),
        ("reader", None),
        ("tenant", Some("acme")),
    ] {
        let t = create_token(&root, role, account, "1h").await;
        tokens.push((role, t));
    }
    let victim = create_token(&root, "reader", None, "1h").await;
    let doc = root.get_ok("/openapi.json").await;
    let values = [
        ("id", other_lease["id"].as_str().unwrap()),
        ("name", "other"),
        ("serial", "0a"),
        ("accessor", victim["accessor"].as_str().unwrap()),
    ];

    let before = state(&root).await;
    let mut wrong = Vec::new();
    let mut checked = 0;
    let mut sent = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") || path == "/v1/sys/seal-status" {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["x-keel-permission"].is_string(),
                "{method} {path} declares no permission"
            );
            let url = fill(path, &values).replace("/members/{id}", "/members/99");
            let url = fill(&url, &[("id", "99")]);
            for (role, t) in &tokens {
                let api = root.with_token(t["secret"].as_str().unwrap());
                let allowed = expected_allowed(role, method, path);
                // Allowed requests are only sent when they change nothing
                // (reads); denied ones are all sent, and must change nothing.
                if allowed && method != "get" {
                    continue;
                }
                let body = (method != "get" && method != "delete").then(|| json!({}));
                let r = api
                    .send(&method.to_uppercase(), &url, body.as_ref())
                    .await
                    .unwrap();
                checked += 1;
                sent.insert((method.to_uppercase(), path.clone(), role.to_string()));
                let denied = r.status == 403 && r.code() == "forbidden";
                let tenant_other = *role == "tenant"
                    && (path.contains("{id}")
                        || path.contains("{name}")
                        || path.contains("{serial}"));
                match (allowed, denied) {
                    (false, true) => {}
                    (true, false) if r.status != 401 => {}
                    // A tenant reading another account's object is refused
                    // by the handler, not the route.
                    (true, true) if tenant_other => {}
                    _ => wrong.push(format!(
                        "{role} {method} {url}: expected {}, got {} {}",
                        if allowed { "allowed" } else { "403" },
                        r.status,
                        r.body
                    )),
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} requests checked");
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    assert_eq!(
        state(&root).await,
        before,
        "a denied request changed the state"
    );

    // The tenant over its own account's objects and another's, with its
    // account active, then expired (every request refused, nothing
    // changed), then renewed (served again at once).
    let tenant_secret = tokens[3].1["secret"].as_str().unwrap().to_string();
    let tenant = root.with_token(&tenant_secret);
    let own_lease = root
        .post_expect(
            "/v1/leases",
            &json!({"ttl": "1h", "account": "acme", "name": "a/1"}),
            201,
        )
        .await;
    let own = [
        ("id", own_lease["id"].as_str().unwrap()),
        ("name", "acme"),
        ("serial", "0a"),
        ("accessor", victim["accessor"].as_str().unwrap()),
    ];
    for (whose, values) in [("own", &own), ("other", &values)] {
        for path in ["/v1/leases/{id}", "/v1/accounts/{name}"] {
            let r = tenant.get(&fill(path, values)).await.unwrap();
            let expected = if whose == "own" { 200 } else { 403 };
            if r.status != expected {
                wrong.push(format!(
                    "tenant GET {path} ({whose}): {} {}",
                    r.status, r.body
                ));
            }
            sent.insert(("GET".into(), path.to_string(), "tenant".into()));
        }
    }
    root.patch(
        "/v1/accounts/acme",
        &json!({"expires_at": keel_tests::rfc3339_in(-60)}),
    )
    .await
    .unwrap();
    wait_status(
        &tenant,
        403,
        Duration::from_secs(10),
        "the tenant suspended",
    )
    .await;
    // The leader's reconciler records the expiry (a write of its own that
    // touches the account); the state is compared from after it.
    let nodes: Vec<Api> = (1..=3).map(|id| cluster.api(id)).collect();
    eventually(Duration::from_secs(10), "the expiry recorded", || {
        let nodes = nodes.clone();
        async move {
            let mut total = 0.0;
            for api in &nodes {
                total += keel_tests::leases::metric(api, "keel_account_expirations_total")
                    .await
                    .unwrap_or(0.0);
            }
            if total >= 1.0 {
                Ok(())
            } else {
                Err("no account expiry recorded yet".to_string())
            }
        }
    })
    .await;
    let before_expired = state(&root).await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") || path == "/v1/sys/seal-status" {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            for (whose, values) in [("own", &own), ("other", &values)] {
                let url = fill(path, values).replace("/members/{id}", "/members/99");
                let body = (method != "get" && method != "delete").then(|| json!({}));
                let r = tenant
                    .send(&method.to_uppercase(), &url, body.as_ref())
                    .await
                    .unwrap();
                checked += 1;
                sent.insert((method.to_uppercase(), path.clone(), "tenant".into()));
                if (r.status, r.code()) != (403, "forbidden") {
                    wrong.push(format!(
                        "expired tenant {method} {url} ({whose}): {} {}",
                        r.status, r.body
                    ));
                }
            }
        }
    }
    assert!(checked > 200, "only {checked} requests checked");
    assert_eq!(
        state(&root).await,
        before_expired,
        "an expired tenant's request changed the state"
    );
    root.patch("/v1/accounts/acme", &json!({"expires_at": null}))
        .await
        .unwrap();
    wait_status(&tenant, 200, Duration::from_secs(10), "the tenant restored").await;
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));

    // Every request of the matrix, allowed or refused, is in node 1's
    // audit log with the route it named and the role that sent it, and
    // the chain holds.
    let dir = cluster.node(1).data_dir.join("audit");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let audited: std::collections::BTreeSet<(String, String, String)> = files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .filter(|l| l["type"] == "response")
                .map(|l| {
                    (
                        l["request"]["method"].as_str().unwrap_or("").to_string(),
                        l["request"]["route"].as_str().unwrap_or("").to_string(),
                        l["auth"]["role"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let unaudited: Vec<_> = sent.difference(&audited).collect();
    assert!(unaudited.is_empty(), "not in the audit log: {unaudited:?}");
    let mut args = vec!["audit".to_string(), "verify".to_string()];
    args.extend(files.iter().map(|p| p.display().to_string()));
    let verified = keel_tests::run_keel(&args, Duration::from_secs(30)).await;
    assert_eq!(
        verified.code,
        Some(0),
        "{}{}",
        verified.stdout,
        verified.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_tokens_are_confined_and_follow_their_account() {
    let mut cluster = Cluster::start(3).await;
    let apis = node_apis(&cluster, 3);
    let root = &apis[0];
    for name in ["acme", "other"] {
        root.post_expect("/v1/accounts", &json!({"name": name}), 201)
            .await;
    }
    let theirs = root
        .post_expect("/v1/leases", &json!({"ttl": "1h", "account": "other"}), 201)
        .await;
    let theirs = theirs["id"].as_str().unwrap().to_string();
    let t = create_token(root, "tenant", Some("acme"), "1h").await;
    let secret = t["secret"].as_str().unwrap().to_string();
    let tenant = apis[1].with_token(&secret);

    // Its own: a grant with no account is the tenant's.
    let mine = tenant
        .post_expect("/v1/leases", &json!({"ttl": "1h", "name": "t/1"}), 201)
        .await;
    assert_eq!(mine["account"], "acme");
    let mine = mine["id"].as_str().unwrap().to_string();
    tenant
        .post_expect(&format!("/v1/leases/{mine}/renew"), &json!({}), 200)
        .await;
    let listed = tenant.get_ok("/v1/leases").await;
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    assert_eq!(
        tenant.get_ok("/v1/accounts").await["items"][0]["name"],
        "acme"
    );
    tenant.get_ok("/v1/accounts/acme").await;

    // Not its own: refused, nothing changed.
    let before = root.get_ok(&format!("/v1/leases/{theirs}")).await;
    for (method, path, body) in [
        (
            "POST",
            "/v1/leases".to_string(),
            Some(json!({"ttl": "1h", "account": "other"})),
        ),
        ("GET", format!("/v1/leases/{theirs}"), None),
        (
            "POST",
            format!("/v1/leases/{theirs}/renew"),
            Some(json!({})),
        ),
        ("DELETE", format!("/v1/leases/{theirs}"), None),
        ("GET", "/v1/leases?account=other".to_string(), None),
        ("GET", "/v1/accounts/other".to_string(), None),
        ("GET", "/v1/pki/certs?account=other".to_string(), None),
        (
            "POST",
            "/v1/accounts".to_string(),
            Some(json!({"name": "mine"})),
        ),
        ("GET", "/v1/cluster".to_string(), None),
        (
            "POST",
            "/v1/auth/tokens".to_string(),
            Some(json!({"role": "tenant", "account": "acme", "ttl": 60})),
        ),
    ] {
        let r = tenant.send(method, &path, body.as_ref()).await.unwrap();
        assert_eq!(
            (r.status, r.code()),
            (403, "forbidden"),
            "{method} {path}: {}",
            r.body
        );
    }
    let batch = tenant
        .post_expect(
            "/v1/leases/batch",
            &json!({"renew": [{"id": theirs}, {"id": mine}], "revoke": [theirs]}),
            200,
        )
        .await;
    let statuses: Vec<u64> = ["renew", "revoke"]
        .iter()
        .flat_map(|l| {
            batch[*l]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["status"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(statuses, vec![403, 200, 403]);
    let revoked = tenant
        .post_expect("/v1/leases/revoke-prefix", &json!({"prefix": "t"}), 200)
        .await;
    assert_eq!(revoked["revoked"], 1, "only the tenant's own lease goes");
    let after = root.get_ok(&format!("/v1/leases/{theirs}")).await;
    assert_eq!(after["expires_at"], before["expires_at"]);
    assert_eq!(after["renewals"], before["renewals"]);

    // Self lookup and renewal; the secret is in no answer but the create.
    let me = tenant
        .post_expect("/v1/auth/tokens/self", &json!({}), 200)
        .await;
    assert_eq!(
        (me["role"].as_str(), me["account"].as_str()),
        (Some("tenant"), Some("acme"))
    );
    assert!(me.get("secret").is_none());
    tenant
        .post_expect(
            "/v1/auth/tokens/self/renew",
            &json!({"increment": "30m"}),
            200,
        )
        .await;
    let all = root.get_ok("/v1/auth/tokens").await.to_string();
    assert!(!all.contains(&secret), "a list shows a secret");

    // The account expires: its tokens stop; renewed: they work at once.
    let soon = keel_tests::leases::format_time(now_ms() + 1500);
    root.patch("/v1/accounts/acme", &json!({"expires_at": soon}))
        .await
        .unwrap();
    wait_status(
        &tenant,
        403,
        Duration::from_secs(10),
        "the tenant's token is suspended",
    )
    .await;
    let r = root
        .patch("/v1/accounts/acme", &json!({"expires_at": null}))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    wait_status(
        &tenant,
        200,
        Duration::from_secs(5),
        "the renewal restores the token",
    )
    .await;

    // An operator manages readers and tenants, not its peers or admins.
    let op = create_token(root, "operator", None, "1h").await;
    let operator = apis[2].with_token(op["secret"].as_str().unwrap());
    create_token(&operator, "reader", None, "1h").await;
    for role in ["operator", "admin"] {
        let r = operator
            .post("/v1/auth/tokens", &json!({"role": role, "ttl": "1h"}))
            .await
            .unwrap();
        assert_eq!(r.status, 403, "an operator created a {role} token");
    }

    // Revoked: refused on every node as soon as the revoke applies there.
    let accessor = t["accessor"].as_str().unwrap();
    root.send("DELETE", &format!("/v1/auth/tokens/{accessor}"), None)
        .await
        .unwrap();
    for api in &apis {
        let api = api.with_token(&secret);
        wait_status(
            &api,
            401,
            Duration::from_secs(2),
            "the revoked token is refused",
        )
        .await;
    }

    // Expiry is derived, so it holds across a leader change.
    let short = create_token(root, "reader", None, "3s").await;
    let short_secret = short["secret"].as_str().unwrap().to_string();
    apis[0].with_token(&short_secret).get_ok("/v1/leases").await;
    let leader = cluster.leader().await;
    let to = (1..=3).find(|id| *id != leader).unwrap();
    root.post("/v1/cluster/transfer-leader", &json!({"to": to}))
        .await
        .unwrap();
    for api in &apis {
        let api = api.with_token(&short_secret);
        wait_status(
            &api,
            401,
            Duration::from_secs(10),
            "the expired token is refused",
        )
        .await;
    }

    // No secret reached a log line.
    let logs = cluster.logs();
    for s in [&secret, &short_secret, &TOKEN.to_string()] {
        assert!(
            !logs.contains(s.as_str()),
            "a token secret is in the node logs"
        );
    }
}

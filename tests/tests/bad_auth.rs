//! Missing or wrong tokens on every `/v1` route family answer 401
//! `unauthorized` with the JSON error body (a token in the query string is
//! ignored), and change nothing.

use keel_tests::TOKEN;
use keel_tests::guard::{check, guarded_node, state};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_v1_route_family_requires_the_admin_token() {
    let (cluster, api, lease, serial) = guarded_node().await;
    let before = state(&api).await;
    let node = cluster.node(1);
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/v1/sys/lifecycle".into(), None),
        ("POST", "/v1/sys/seal".into(), None),
        ("POST", "/v1/sys/unseal".into(), None),
        ("POST", "/v1/sys/reload".into(), None),
        ("GET", "/v1/sys/snapshot".into(), None),
        ("POST", "/v1/sys/snapshot/restore".into(), None),
        ("GET", "/v1/sys/warnings".into(), None),
        ("GET", "/v1/sys/census".into(), None),
        ("GET", "/v1/sys/events".into(), None),
        ("GET", "/v1/cluster".into(), None),
        (
            "POST",
            "/v1/cluster/members/1/decommission?force=true".into(),
            None,
        ),
        (
            "POST",
            "/v1/cluster/members".into(),
            Some(json!({"id": 5, "api_addr": "127.0.0.1:1", "peer_addr": "127.0.0.1:2"})),
        ),
        ("DELETE", "/v1/cluster/members/1".into(), None),
        (
            "POST",
            "/v1/cluster/transfer-leader".into(),
            Some(json!({})),
        ),
        (
            "POST",
            "/v1/leases".into(),
            Some(json!({"ttl": "1h", "name": "sneaky"})),
        ),
        ("GET", "/v1/leases".into(), None),
        ("GET", format!("/v1/leases/{lease}"), None),
        ("POST", format!("/v1/leases/{lease}/renew"), Some(json!({}))),
        ("DELETE", format!("/v1/leases/{lease}"), None),
        (
            "POST",
            "/v1/leases/revoke-prefix".into(),
            Some(json!({"prefix": "keep"})),
        ),
        (
            "POST",
            "/v1/leases/batch".into(),
            Some(json!({"grant": [{"ttl": "1h", "name": "sneaky"}], "revoke": [lease]})),
        ),
        (
            "POST",
            "/v1/accounts".into(),
            Some(json!({"name": "sneaky"})),
        ),
        ("GET", "/v1/accounts".into(), None),
        ("GET", "/v1/accounts/acme".into(), None),
        (
            "PATCH",
            "/v1/accounts/acme".into(),
            Some(json!({"limits": {"max_leases": 0}})),
        ),
        ("POST", "/v1/accounts/acme/disable".into(), None),
        ("POST", "/v1/accounts/acme/enable".into(), None),
        ("DELETE", "/v1/accounts/acme".into(), None),
        ("GET", "/v1/pki/ca".into(), None),
        (
            "POST",
            "/v1/pki/issue".into(),
            Some(json!({"common_name": "x.example.test", "ttl": "1h"})),
        ),
        (
            "POST",
            "/v1/pki/sign".into(),
            Some(json!({"csr": "x", "ttl": "1h"})),
        ),
        ("GET", "/v1/pki/certs".into(), None),
        ("GET", format!("/v1/pki/certs/{serial}"), None),
        (
            "POST",
            format!("/v1/pki/certs/{serial}/renew"),
            Some(json!({})),
        ),
        ("POST", format!("/v1/pki/certs/{serial}/activate"), None),
        (
            "POST",
            format!("/v1/pki/certs/{serial}/revoke"),
            Some(json!({})),
        ),
        ("GET", "/v1/pki/crl".into(), None),
    ];
    let anonymous = api.anonymous();
    let wrong_token = api.with_token("not-the-admin-token");
    let empty_token = api.with_token("");
    let mut wrong = Vec::new();
    for (method, path, body) in &routes {
        let body = body.as_ref().map(Value::to_string);
        for (who, client) in [
            ("no token", &anonymous),
            ("wrong token", &wrong_token),
            ("empty token", &empty_token),
        ] {
            let before_len = wrong.len();
            check(
                &mut wrong,
                client,
                method,
                path,
                body.as_deref(),
                401,
                "unauthorized",
            )
            .await;
            if wrong.len() > before_len {
                let last = wrong.pop().unwrap();
                wrong.push(format!("[{who}] {last}"));
            }
        }
        // The right token in another scheme, or in the query string, is not
        // accepted either.
        let basic = anonymous
            .send_raw(
                method,
                path,
                body.as_ref().map(|b| b.as_bytes().to_vec()),
                &[("authorization", &format!("Basic {TOKEN}"))],
            )
            .await
            .unwrap();
        if basic.status != 401 {
            wrong.push(format!(
                "[Basic scheme] {method} {path}: {} {}",
                basic.status, basic.text
            ));
        }
        let sep = if path.contains('?') { '&' } else { '?' };
        for param in ["token", "access_token"] {
            let in_query = format!("{path}{sep}{param}={TOKEN}");
            let r = anonymous
                .send_raw(
                    method,
                    &in_query,
                    body.as_ref().map(|b| b.as_bytes().to_vec()),
                    &[],
                )
                .await
                .unwrap();
            if r.status != 401 {
                wrong.push(format!(
                    "[?{param}=] {method} {path}: {} {}",
                    r.status, r.text
                ));
            }
        }
    }
    // Exempt: health, metrics, the OpenAPI document and seal status.
    for path in [
        "/livez",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/v1/sys/seal-status",
        "/ui/",
        "/ui/app.js",
    ] {
        let r = anonymous.get(path).await.unwrap();
        if r.status != 200 {
            wrong.push(format!(
                "[exempt] GET {path} without a token: {} {}",
                r.status, r.text
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "routes not refusing bad credentials with 401:\n{}",
        wrong.join("\n")
    );
    // Tokens are never logged.
    assert!(
        !node.log().contains(TOKEN),
        "the admin token appears in the log"
    );
    let after = state(&api).await;
    assert_eq!(before, after, "unauthorized requests changed the state");
}

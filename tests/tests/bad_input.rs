//! Bad input at the admin API: every malformed or unauthorized request
//! gets the right 4xx with keel's JSON error body
//! (`{"error": {"code", "message"}}`) and changes nothing.
//!
//! Covered: malformed JSON, unknown fields, oversized bodies (declared and
//! streamed, > 1 MiB -> 413 `payload_too_large`), missing or wrong tokens
//! on every `/v1` route family (401 `unauthorized`, tokens in the query
//! string ignored), unknown member ids (404), bad lease ids (400), bad
//! durations (400), `max_ttl` below `ttl` (400), bad and unknown query
//! parameters on the lists (400), unknown methods (405). The cluster's
//! state (leases, accounts, certificates, membership, seal status) is
//! compared before and after. Finally `/openapi.json` is served without a
//! token and lists every path of API.md with its methods.

use std::time::Duration;

use keel_tests::raw::RawConn;
use keel_tests::workload::lease_names;
use keel_tests::{Api, Cluster, TOKEN, eventually};
use serde_json::{Value, json};
use tokio::time::Instant;

/// The body limit (the default, 1 MiB).
const LIMIT: usize = 1 << 20;

/// What must not change, as seen through the API.
async fn state(api: &Api) -> Value {
    let cluster = api.get_ok("/v1/cluster").await;
    let members: Vec<Value> = cluster["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| json!([m["id"], m["role"], m["api_addr"], m["peer_addr"]]))
        .collect();
    let accounts: Vec<Value> = api.get_ok("/v1/accounts?limit=1000").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| json!([a["name"], a["state"], a["expires_at"], a["limits"]]))
        .collect();
    let certs: Vec<Value> = api.get_ok("/v1/pki/certs?limit=1000").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!([c["serial"], c["state"]]))
        .collect();
    let leases = lease_names(api, "linearizable").await.unwrap();
    let lease_details: Vec<Value> = {
        let mut out = Vec::new();
        for id in leases.keys() {
            let l = api.get_ok(&format!("/v1/leases/{id}")).await;
            out.push(json!([
                l["id"],
                l["name"],
                l["state"],
                l["expires_at"],
                l["renewals"],
                l["metadata"]
            ]));
        }
        out
    };
    json!({
        "leader": cluster["leader"],
        "members": members,
        "accounts": accounts,
        "certificates": certs,
        "leases": lease_details,
        "sealed": api.get_ok("/v1/sys/seal-status").await["sealed"],
    })
}

/// Sends a request and checks status, error body and code; a mismatch is
/// collected rather than failing at once, so one run reports every wrong
/// answer.
async fn check(
    wrong: &mut Vec<String>,
    api: &Api,
    method: &str,
    path: &str,
    body: Option<&str>,
    status: u16,
    code: &str,
) {
    match api
        .send_raw(method, path, body.map(|b| b.as_bytes().to_vec()), &[])
        .await
    {
        Err(e) => wrong.push(format!("{method} {path} {body:?}: no answer: {e}")),
        Ok(r) if r.status != status || !r.is_error_body() || r.code() != code => {
            wrong.push(format!(
                "{method} {path} {body:?}: expected {status} {code}, got {} {:?} {}",
                r.status, r.content_type, r.text
            ))
        }
        Ok(_) => {}
    }
}

/// A cluster of one with a lease, an account and a certificate to guard.
async fn guarded_node() -> (Cluster, Api, String, String) {
    let cluster = Cluster::start(1).await;
    let api = cluster.api(1);
    let lease = api
        .post_expect(
            "/v1/leases",
            &json!({"ttl": "1h", "name": "keep/me", "metadata": {"a": "b"}}),
            201,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.post_expect("/v1/accounts", &json!({"name": "acme"}), 201)
        .await;
    // The CA is installed by the leader shortly after start.
    let serial = eventually(Duration::from_secs(20), "a certificate issued", || {
        let api = api.clone();
        async move {
            let r = api
                .post(
                    "/v1/pki/issue",
                    &json!({"common_name": "svc.example.test", "ttl": "24h"}),
                )
                .await?;
            match r.body["serial"].as_str() {
                Some(s) if r.status == 201 => Ok(s.to_string()),
                _ => Err(format!("{} {}", r.status, r.text)),
            }
        }
    })
    .await;
    (cluster, api, lease, serial)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_and_values_are_refused_with_400_and_change_nothing() {
    let (_cluster, api, lease, _) = guarded_node().await;
    let before = state(&api).await;
    let mut wrong = Vec::new();
    let w = &mut wrong;

    // Malformed JSON and wrong shapes.
    for body in [
        "{\"ttl\":",
        "not json",
        "",
        "   ",
        "[]",
        "null",
        "\"1h\"",
        "{\"ttl\":\"1h\",}",
    ] {
        check(
            w,
            &api,
            "POST",
            "/v1/leases",
            Some(body),
            400,
            "bad_request",
        )
        .await;
    }
    // Unknown fields, on every body type.
    let unknown = [
        (
            "POST",
            "/v1/leases".to_string(),
            r#"{"ttl":"1h","bogus":1}"#,
        ),
        (
            "POST",
            "/v1/leases".to_string(),
            r#"{"ttl":"1h","Name":"x"}"#,
        ),
        (
            "POST",
            format!("/v1/leases/{lease}/renew"),
            r#"{"increment":"1h","bogus":1}"#,
        ),
        (
            "POST",
            "/v1/leases/revoke-prefix".to_string(),
            r#"{"prefix":"keep","bogus":1}"#,
        ),
        (
            "POST",
            "/v1/accounts".to_string(),
            r#"{"name":"other","bogus":1}"#,
        ),
        (
            "POST",
            "/v1/accounts".to_string(),
            r#"{"name":"other","limits":{"max_lease":1}}"#,
        ),
        ("PATCH", "/v1/accounts/acme".to_string(), r#"{"bogus":1}"#),
        (
            "POST",
            "/v1/cluster/members".to_string(),
            r#"{"id":5,"api_addr":"127.0.0.1:1","peer_addr":"127.0.0.1:2","bogus":1}"#,
        ),
        (
            "POST",
            "/v1/cluster/transfer-leader".to_string(),
            r#"{"to":1,"bogus":1}"#,
        ),
        (
            "POST",
            "/v1/pki/issue".to_string(),
            r#"{"common_name":"a.example.test","ttl":"1h","bogus":1}"#,
        ),
    ];
    for (method, path, body) in &unknown {
        check(w, &api, method, path, Some(body), 400, "bad_request").await;
    }
    // Wrong types and missing fields.
    for body in [
        r#"{"name":"no-ttl"}"#,
        r#"{"ttl":"1h","metadata":{"k":1}}"#,
        r#"{"ttl":"1h","metadata":["k"]}"#,
        r#"{"ttl":"1h","name":7}"#,
    ] {
        check(
            w,
            &api,
            "POST",
            "/v1/leases",
            Some(body),
            400,
            "bad_request",
        )
        .await;
    }
    // Out-of-bounds lease fields.
    let long_name = "n".repeat(257);
    let too_many: serde_json::Map<String, Value> =
        (0..33).map(|i| (format!("k{i}"), json!("v"))).collect();
    let too_long_value = json!({"k": "v".repeat(1025)});
    for body in [
        json!({"ttl": "1h", "name": long_name}),
        json!({"ttl": "1h", "name": ""}),
        json!({"ttl": "1h", "metadata": too_many}),
        json!({"ttl": "1h", "metadata": too_long_value}),
    ] {
        check(
            w,
            &api,
            "POST",
            "/v1/leases",
            Some(&body.to_string()),
            400,
            "bad_request",
        )
        .await;
    }
    // Bad durations: zero, negative, not a duration, fractional, null, over a year.
    for ttl in [
        json!(0),
        json!(-5),
        json!("abc"),
        json!(1.5),
        json!(null),
        json!(""),
        json!("0s"),
        json!("500ms"),
    ] {
        let body = json!({"ttl": ttl}).to_string();
        check(
            w,
            &api,
            "POST",
            "/v1/leases",
            Some(&body),
            400,
            "bad_request",
        )
        .await;
    }
    for ttl in [
        json!("8761h"),
        json!("366d"),
        json!(31_536_001),
        json!("99999999999999999999h"),
    ] {
        let body = json!({"ttl": "1h", "max_ttl": ttl}).to_string();
        check(
            w,
            &api,
            "POST",
            "/v1/leases",
            Some(&body),
            400,
            "bad_request",
        )
        .await;
        let body = json!({"ttl": ttl, "max_ttl": ttl}).to_string();
        check(
            w,
            &api,
            "POST",
            "/v1/leases",
            Some(&body),
            400,
            "bad_request",
        )
        .await;
    }
    // max_ttl below ttl.
    for (ttl, max) in [("2h", "1h"), ("61s", "1m"), ("10m", "599s")] {
        let body = json!({"ttl": ttl, "max_ttl": max}).to_string();
        check(
            w,
            &api,
            "POST",
            "/v1/leases",
            Some(&body),
            400,
            "bad_request",
        )
        .await;
    }
    // Bad renew increments.
    for inc in [json!(0), json!(-1), json!("abc"), json!("8761h")] {
        let body = json!({"increment": inc}).to_string();
        check(
            w,
            &api,
            "POST",
            &format!("/v1/leases/{lease}/renew"),
            Some(&body),
            400,
            "bad_request",
        )
        .await;
    }
    // Bad values elsewhere.
    for body in [
        r#"{"id":5,"api_addr":"nowhere","peer_addr":"127.0.0.1:2"}"#,
        r#"{"id":5,"api_addr":"127.0.0.1:1","peer_addr":"127.0.0.1:0"}"#,
        r#"{"id":"five","api_addr":"127.0.0.1:1","peer_addr":"127.0.0.1:2"}"#,
    ] {
        check(
            w,
            &api,
            "POST",
            "/v1/cluster/members",
            Some(body),
            400,
            "bad_request",
        )
        .await;
    }
    for body in [
        r#"{"name":"Not Valid"}"#,
        r#"{"name":""}"#,
        r#"{"name":"ok","expires_at":"tomorrow"}"#,
    ] {
        check(
            w,
            &api,
            "POST",
            "/v1/accounts",
            Some(body),
            400,
            "bad_request",
        )
        .await;
    }
    check(
        w,
        &api,
        "POST",
        "/v1/leases/revoke-prefix",
        Some(r#"{"prefix":""}"#),
        400,
        "bad_request",
    )
    .await;

    let after = state(&api).await;
    assert!(
        wrong.is_empty(),
        "wrong answers to bad input:\n{}",
        wrong.join("\n")
    );
    assert_eq!(before, after, "bad input changed the state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413() {
    let (cluster, api, _, _) = guarded_node().await;
    let addr = cluster.node(1).api_addr.clone();
    let before = state(&api).await;
    let auth = format!("Bearer {TOKEN}");

    // Declared too large: refused on the head alone.
    let mut conn = RawConn::connect(&addr).await.unwrap();
    let len = (LIMIT + 1).to_string();
    conn.send_head(
        "POST",
        "/v1/leases",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
            ("content-length", &len),
        ],
    )
    .await
    .unwrap();
    let r = conn
        .read_response(Instant::now() + Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        r.status,
        413,
        "declared {len} bytes: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.code(), "payload_too_large");

    // Streamed without a length (chunked): refused once past the limit.
    let mut conn = RawConn::connect(&addr).await.unwrap();
    conn.send_head(
        "POST",
        "/v1/leases",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
            ("transfer-encoding", "chunked"),
        ],
    )
    .await
    .unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
    // Bounded: 17 chunks of 64 KiB is just over 1 MiB; stop early if the
    // server has already answered and closed.
    for _ in 0..17 {
        if conn.send(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let r = conn
        .read_response(Instant::now() + Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        r.status,
        413,
        "streamed > 1 MiB: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.code(), "payload_too_large");

    // The same through a normal client, on other routes.
    let big = format!("{{\"name\":\"big\",\"pad\":\"{}\"}}", "x".repeat(LIMIT));
    for (method, path) in [
        ("POST", "/v1/accounts"),
        ("PATCH", "/v1/accounts/acme"),
        ("POST", "/v1/pki/issue"),
    ] {
        match Api::new(&addr, Some(TOKEN))
            .send_raw(method, path, Some(big.clone().into_bytes()), &[])
            .await
        {
            // The server may answer before reading the body and close the
            // connection while the client still sends: also a refusal.
            Err(e) => println!(
                "{method} {path} with {} bytes: connection closed ({e})",
                big.len()
            ),
            Ok(r) => {
                assert_eq!(r.status, 413, "{method} {path}: {}", r.text);
                assert_eq!(r.code(), "payload_too_large");
            }
        }
    }

    // Just under the limit is accepted (whitespace pads valid JSON).
    let mut body = r#"{"ttl":"1h","name":"just-under"}"#.to_string();
    let pad = LIMIT - body.len() - 1;
    body.insert_str(body.len() - 1, &" ".repeat(pad));
    assert_eq!(body.len(), LIMIT - 1);
    // (A fresh client: the server closes a connection whose oversized body
    // it did not read, and a pooled one may be that connection.)
    let r = Api::new(&addr, Some(TOKEN))
        .send_raw("POST", "/v1/leases", Some(body.into_bytes()), &[])
        .await
        .unwrap();
    assert_eq!(r.status, 201, "a body just under the limit: {}", r.text);
    api.delete(&format!("/v1/leases/{}", r.body["id"].as_str().unwrap()))
        .await
        .unwrap();

    let after = state(&api).await;
    assert_eq!(before, after, "oversized bodies changed the state");
}

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
        ("GET", "/v1/cluster".into(), None),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_bad_ids_and_bad_query_parameters_are_refused() {
    let (_cluster, api, lease, _) = guarded_node().await;
    let before = state(&api).await;
    let mut wrong = Vec::new();
    let w = &mut wrong;

    // Unknown member ids: 404; malformed: 400.
    check(
        w,
        &api,
        "DELETE",
        "/v1/cluster/members/42",
        None,
        404,
        "member_not_found",
    )
    .await;
    check(
        w,
        &api,
        "POST",
        "/v1/cluster/transfer-leader",
        Some(r#"{"to":42}"#),
        404,
        "member_not_found",
    )
    .await;
    check(
        w,
        &api,
        "DELETE",
        "/v1/cluster/members/node-two",
        None,
        400,
        "bad_request",
    )
    .await;
    check(
        w,
        &api,
        "DELETE",
        "/v1/cluster/members/-1",
        None,
        400,
        "bad_request",
    )
    .await;

    // Lease ids: exactly 16 hex digits, else 400; well-formed but absent: 404.
    let absent = if lease == "00000000000000ff" {
        "00000000000000fe"
    } else {
        "00000000000000ff"
    };
    for bad in [
        "xyz",
        "0123",
        "00000000000000000",
        "zzzzzzzzzzzzzzzz",
        "0x00000000000001",
        "%20",
    ] {
        check(
            w,
            &api,
            "GET",
            &format!("/v1/leases/{bad}"),
            None,
            400,
            "bad_request",
        )
        .await;
        check(
            w,
            &api,
            "DELETE",
            &format!("/v1/leases/{bad}"),
            None,
            400,
            "bad_request",
        )
        .await;
        check(
            w,
            &api,
            "POST",
            &format!("/v1/leases/{bad}/renew"),
            Some("{}"),
            400,
            "bad_request",
        )
        .await;
    }
    check(
        w,
        &api,
        "GET",
        &format!("/v1/leases/{absent}"),
        None,
        404,
        "lease_not_found",
    )
    .await;
    check(
        w,
        &api,
        "DELETE",
        &format!("/v1/leases/{absent}"),
        None,
        404,
        "lease_not_found",
    )
    .await;
    check(
        w,
        &api,
        "POST",
        &format!("/v1/leases/{absent}/renew"),
        Some("{}"),
        404,
        "lease_not_found",
    )
    .await;
    check(
        w,
        &api,
        "GET",
        "/v1/accounts/nobody",
        None,
        404,
        "account_not_found",
    )
    .await;

    // List parameters: unknown or malformed ones are refused, with the
    // JSON error body like every other 400.
    for query in [
        "bogus=1",
        "limit=0",
        "limit=1001",
        "limit=abc",
        "limit=-1",
        "consistency=sometimes",
        "state=bogus",
        "cursor=not-a-lease-id",
        "prefix=keep&bogus=1",
    ] {
        check(
            w,
            &api,
            "GET",
            &format!("/v1/leases?{query}"),
            None,
            400,
            "bad_request",
        )
        .await;
    }
    for query in [
        "bogus=1",
        "limit=0",
        "limit=abc",
        "state=bogus",
        "consistency=sometimes",
    ] {
        check(
            w,
            &api,
            "GET",
            &format!("/v1/accounts?{query}"),
            None,
            400,
            "bad_request",
        )
        .await;
        check(
            w,
            &api,
            "GET",
            &format!("/v1/pki/certs?{query}"),
            None,
            400,
            "bad_request",
        )
        .await;
    }
    check(
        w,
        &api,
        "GET",
        "/v1/pki/crl?format=xml",
        None,
        400,
        "bad_request",
    )
    .await;
    check(
        w,
        &api,
        "GET",
        &format!("/v1/leases/{lease}?consistency=sometimes"),
        None,
        400,
        "bad_request",
    )
    .await;

    // Unknown routes and methods.
    check(w, &api, "GET", "/v1/nothing-here", None, 404, "not_found").await;
    check(
        w,
        &api,
        "PUT",
        "/v1/leases",
        Some("{}"),
        405,
        "method_not_allowed",
    )
    .await;
    check(
        w,
        &api,
        "DELETE",
        "/v1/cluster",
        None,
        405,
        "method_not_allowed",
    )
    .await;

    let after = state(&api).await;
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    assert_eq!(before, after, "refused requests changed the state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_lists_the_api() {
    let cluster = Cluster::start(1).await;
    let doc = cluster.api(1).anonymous().get_ok("/openapi.json").await;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')),
        "not OpenAPI 3: {}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    // Every path and method of API.md.
    let contract: &[(&str, &[&str])] = &[
        ("/livez", &["get"]),
        ("/readyz", &["get"]),
        ("/metrics", &["get"]),
        ("/openapi.json", &["get"]),
        ("/v1/sys/lifecycle", &["get"]),
        ("/v1/sys/seal-status", &["get"]),
        ("/v1/sys/seal", &["post"]),
        ("/v1/sys/unseal", &["post"]),
        ("/v1/sys/reload", &["post"]),
        ("/v1/cluster", &["get"]),
        ("/v1/cluster/members", &["post"]),
        ("/v1/cluster/members/{id}", &["delete"]),
        ("/v1/cluster/transfer-leader", &["post"]),
        ("/v1/leases", &["get", "post"]),
        ("/v1/leases/{id}", &["get", "delete"]),
        ("/v1/leases/{id}/renew", &["post"]),
        ("/v1/leases/revoke-prefix", &["post"]),
        ("/v1/accounts", &["get", "post"]),
        ("/v1/accounts/{name}", &["get", "patch", "delete"]),
        ("/v1/accounts/{name}/disable", &["post"]),
        ("/v1/accounts/{name}/enable", &["post"]),
        ("/v1/pki/ca", &["get"]),
        ("/v1/pki/issue", &["post"]),
        ("/v1/pki/sign", &["post"]),
        ("/v1/pki/certs", &["get"]),
        ("/v1/pki/certs/{serial}", &["get"]),
        ("/v1/pki/certs/{serial}/renew", &["post"]),
        ("/v1/pki/certs/{serial}/activate", &["post"]),
        ("/v1/pki/certs/{serial}/revoke", &["post"]),
        ("/v1/pki/crl", &["get"]),
    ];
    let mut missing = Vec::new();
    for (path, methods) in contract {
        match paths.get(*path) {
            None => missing.push(format!("{path} (all methods)")),
            Some(ops) => {
                for m in *methods {
                    if ops.get(*m).is_none() {
                        missing.push(format!("{} {path}", m.to_uppercase()));
                    }
                }
            }
        }
    }
    assert!(missing.is_empty(), "/openapi.json lacks: {missing:?}");
    // Protected routes declare the bearer scheme.
    let schemes = &doc["components"]["securitySchemes"];
    assert!(
        schemes.get("bearer").is_some(),
        "no bearer security scheme: {schemes}"
    );
    assert!(
        paths["/v1/leases"]["post"]["security"].is_array(),
        "POST /v1/leases without security"
    );
}

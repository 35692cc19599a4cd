//! Bad bodies at the admin API: malformed JSON, unknown fields, bad
//! durations, and bodies over the limit (declared
//! and streamed, > 1 MiB -> 413 `payload_too_large`) get the right 4xx with
//! keel's JSON error body (`{"error": {"code", "message"}}`), and the
//! cluster's state (leases, accounts, certificates, membership, seal
//! status) is the same before and after.

use std::time::Duration;

use keel_tests::guard::{LIMIT, check, guarded_node, state};
use keel_tests::raw::RawConn;
use keel_tests::{Api, TOKEN};
use serde_json::{Value, json};
use tokio::time::Instant;

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
            "/v1/leases/batch".to_string(),
            r#"{"grant":[{"ttl":"1h","bogus":1}]}"#,
        ),
        (
            "POST",
            "/v1/leases/batch".to_string(),
            r#"{"renew":[{"id":"0000000000000001","bogus":1}]}"#,
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

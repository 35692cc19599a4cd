//! Free text in requests — lease names and prefixes, metadata, account
//! references, certificate names, CSRs, filters — is checked for length
//! and characters before anything reaches the Raft log: overlong text or
//! control characters get 400 `bad_request` with keel's error body, and
//! the state is the same before and after. Limits count characters, so
//! text at the limit in multi-byte characters is accepted.

use keel_tests::guard::{check, guarded_node, state};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_or_invalid_free_text_is_refused_and_changes_nothing() {
    let (_cluster, api, _lease, serial) = guarded_node().await;
    let before = state(&api).await;
    let long = |n: usize| "x".repeat(n);
    let big_csr = format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        "A".repeat(17 * 1024)
    );
    let bodies: Vec<(&str, String, Value)> = vec![
        (
            "POST",
            "/v1/leases".into(),
            json!({"ttl": "1h", "name": long(257)}),
        ),
        (
            "POST",
            "/v1/leases".into(),
            json!({"ttl": "1h", "name": "bell\u{7}"}),
        ),
        (
            "POST",
            "/v1/leases".into(),
            json!({"ttl": "1h", "name": "next\u{85}line"}),
        ),
        (
            "POST",
            "/v1/leases".into(),
            json!({"ttl": "1h", "account": long(64)}),
        ),
        (
            "POST",
            "/v1/leases".into(),
            json!({"ttl": "1h", "account": "Acme"}),
        ),
        (
            "POST",
            "/v1/leases".into(),
            json!({"ttl": "1h", "account": "acme\n"}),
        ),
        (
            "POST",
            "/v1/leases".into(),
            json!({"ttl": "1h", "metadata": {"k\u{1}": "v"}}),
        ),
        (
            "POST",
            "/v1/leases".into(),
            json!({"ttl": "1h", "metadata": {"k": long(1025)}}),
        ),
        (
            "POST",
            "/v1/leases".into(),
            json!({"ttl": "1h", "metadata": {"k": "tab\tbed"}}),
        ),
        (
            "POST",
            "/v1/leases/revoke-prefix".into(),
            json!({"prefix": long(257)}),
        ),
        (
            "POST",
            "/v1/leases/revoke-prefix".into(),
            json!({"prefix": "keep\u{0}"}),
        ),
        (
            "POST",
            "/v1/pki/issue".into(),
            json!({"common_name": long(65), "ttl": "1h"}),
        ),
        (
            "POST",
            "/v1/pki/issue".into(),
            json!({"common_name": "a\u{1b}[31m", "ttl": "1h"}),
        ),
        (
            "POST",
            "/v1/pki/issue".into(),
            json!({"common_name": "ok", "ttl": "1h", "account": "ACME"}),
        ),
        (
            "POST",
            "/v1/pki/issue".into(),
            json!({"common_name": "ok", "ttl": "1h",
            "dns_names": (0..101).map(|i| format!("h{i}.example.test")).collect::<Vec<_>>()}),
        ),
        (
            "POST",
            "/v1/pki/sign".into(),
            json!({"csr": big_csr, "ttl": "1h"}),
        ),
        (
            "POST",
            "/v1/pki/sign".into(),
            json!({"csr": "not a csr é", "ttl": "1h"}),
        ),
        (
            "POST",
            format!("/v1/pki/certs/{serial}/renew"),
            json!({"csr": "x".repeat(20_000)}),
        ),
        (
            "POST",
            "/v1/cluster/members".into(),
            json!({"id": 9, "api_addr": "bad host:1", "peer_addr": "h:2"}),
        ),
        (
            "POST",
            "/v1/cluster/members".into(),
            json!({"id": 9, "api_addr": "h:01", "peer_addr": "h:2"}),
        ),
    ];
    let mut wrong = Vec::new();
    for (method, path, body) in &bodies {
        let text = body.to_string();
        check(
            &mut wrong,
            &api,
            method,
            path,
            Some(&text),
            400,
            "bad_request",
        )
        .await;
    }
    for path in [
        "/v1/leases?account=Acme",
        "/v1/leases?account=%0a",
        "/v1/leases?prefix=%07",
        "/v1/pki/certs?account=no%20spaces",
        "/v1/accounts?cursor=UPPER",
        "/v1/cluster/members/+1",
    ] {
        let method = if path.starts_with("/v1/cluster") {
            "DELETE"
        } else {
            "GET"
        };
        check(&mut wrong, &api, method, path, None, 400, "bad_request").await;
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    assert_eq!(state(&api).await, before, "bad input changed the state");

    // At the limit in characters, not bytes: 256 two-byte characters.
    let name = "é".repeat(256);
    let r = api
        .post(
            "/v1/leases",
            &json!({"ttl": "1h", "name": name, "metadata": {"ключ": "значение"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["name"], json!(name));
}

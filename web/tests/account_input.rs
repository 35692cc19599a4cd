//! Bad account input, in process: invalid names (on create and on the
//! path routes), unparseable or out-of-range expiry times, malformed limits
//! and unknown fields inside them, a rename by PATCH, a create without a
//! name — each 400 `bad_request`; unknown accounts are 404
//! `account_not_found` for every verb and for a lease naming one; a
//! duplicate is 409 `conflict`. Every refusal has keel's JSON error body
//! and leaves the replicated state byte for byte what it was (the existing
//! account keeps its limit).
//!
//! Malformed JSON, an unknown top-level field, a bad `?state=` and the
//! malformed names `route_matrix.rs` tries on every path route are not
//! repeated here. The checks run against each node of an in-process
//! three-node cluster (`Node::cluster`: followers forward writes to the
//! leader over the in-memory transport); the process test they replace
//! sent them to one node and the unknown accounts to every node.

mod support;

use serde_json::json;
use support::{Node, TOKEN, check};

/// The account the refused requests aim at; it holds a lease limit.
const EXISTS: &str = "exists";

/// Names, times, limits and fields no node may accept.
async fn bad_account_input_is_refused(node: &Node, wrong: &mut Vec<String>) {
    let mut requests: Vec<(&str, String, String)> = Vec::new();
    let long = "a".repeat(64);
    for name in [
        "",
        "Upper",
        "-lead",
        ".dot",
        "_under",
        long.as_str(),
        "with space",
        "Not Valid",
        "slash/x",
        "ünï",
        "a:b",
        "a@b",
    ] {
        let body = json!({"name": name}).to_string();
        requests.push(("POST", "/v1/accounts".into(), body));
    }
    // Upper case and `@` in a path (`route_matrix.rs` tries other shapes).
    for name in ["Upper", "ABC", "a%40b"] {
        let uri = format!("/v1/accounts/{name}");
        requests.push(("GET", uri.clone(), String::new()));
        requests.push(("PATCH", uri.clone(), "{}".into()));
        requests.push(("DELETE", uri.clone(), String::new()));
        requests.push(("POST", format!("{uri}/disable"), "{}".into()));
    }
    for t in [
        json!("tomorrow"),
        json!("2026-13-01T00:00:00Z"),
        json!("2026-11-21"),
        json!("2026-11-21T10:00:00"),
        json!("1960-01-01T00:00:00Z"),
        json!(1_800_000_000),
        json!(true),
        json!(""),
    ] {
        let create = json!({"name": "timely", "expires_at": t}).to_string();
        requests.push(("POST", "/v1/accounts".into(), create));
        let patch = json!({"expires_at": t}).to_string();
        requests.push(("PATCH", format!("/v1/accounts/{EXISTS}"), patch));
    }
    for body in [
        json!({"name": "limited", "limits": {"max_leases": -1}}),
        json!({"name": "limited", "limits": {"max_leases": "ten"}}),
        json!({"name": "limited", "limits": {"max_leases": 1.5}}),
        json!({"name": "limited", "limits": {"max_widgets": 1}}),
        json!({"name": "limited", "limits": {"max_lease": 1}}),
        json!({"limits": {}}),
    ] {
        requests.push(("POST", "/v1/accounts".into(), body.to_string()));
    }
    for body in [
        json!({"limits": {"max_leases": -1}}),
        json!({"limits": {"max_widgets": 1}}),
        json!({"name": "renamed"}),
    ] {
        let uri = format!("/v1/accounts/{EXISTS}");
        requests.push(("PATCH", uri, body.to_string()));
    }
    for (method, uri, body) in &requests {
        let body = (!body.is_empty()).then_some(body.as_str());
        let answer = node.send(method, uri, Some(TOKEN), body).await;
        let what = format!("{method} {uri} {}", body.unwrap_or(""));
        check(wrong, &what, &answer, 400, "bad_request");
    }
}

/// An account that does not exist is 404 `account_not_found` for every
/// verb and for a lease naming it; creating one that exists is 409.
async fn unknown_and_duplicate_accounts_are_refused(node: &Node, wrong: &mut Vec<String>) {
    for (method, uri) in [
        ("GET", "/v1/accounts/nobody"),
        ("PATCH", "/v1/accounts/nobody"),
        ("DELETE", "/v1/accounts/nobody"),
        ("POST", "/v1/accounts/nobody/disable"),
        ("POST", "/v1/accounts/nobody/enable"),
    ] {
        let answer = node.send(method, uri, Some(TOKEN), Some("{}")).await;
        let what = format!("{method} {uri}");
        check(wrong, &what, &answer, 404, "account_not_found");
    }
    let body = r#"{"ttl": 60, "account": "nobody"}"#;
    let answer = node
        .send("POST", "/v1/leases", Some(TOKEN), Some(body))
        .await;
    check(wrong, "lease for nobody", &answer, 404, "account_not_found");
    let body = json!({"name": EXISTS}).to_string();
    let answer = node
        .send("POST", "/v1/accounts", Some(TOKEN), Some(&body))
        .await;
    check(wrong, "a duplicate", &answer, 409, "conflict");
}

/// On the leader and on each follower (which forwards writes to it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_account_input_is_refused_and_changes_nothing() {
    let nodes = Node::cluster(3).await;
    nodes[0].create_account(EXISTS, Some(2)).await;
    support::settled(&nodes).await;
    let before = nodes[0].state();
    let mut wrong = Vec::new();
    for node in &nodes {
        bad_account_input_is_refused(node, &mut wrong).await;
        unknown_and_duplicate_accounts_are_refused(node, &mut wrong).await;
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    support::settled(&nodes).await;
    for (i, node) in nodes.iter().enumerate() {
        assert!(
            node.state() == before,
            "bad account input changed node {}'s state",
            i + 1
        );
    }
    for node in nodes {
        node.stop().await;
    }
}

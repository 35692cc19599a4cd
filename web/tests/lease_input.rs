//! Bad lease input, in process: TTLs and `max_ttl`s that are zero,
//! negative, over a year or unparseable; bad names and metadata; missing,
//! empty or wrongly typed fields and field names in the wrong case; unknown
//! fields inside batch items; bad renewal increments and prefixes; list
//! queries with values `route_matrix.rs` does not try; unknown lease ids
//! (404 `lease_not_found` on every verb) and malformed ones (400 on renew
//! and revoke). Each gets its 4xx with keel's JSON error body and the
//! replicated state stays byte for byte what it was. A `ttl` above
//! `max_ttl` is capped to it, not refused.
//!
//! Malformed JSON, an unknown top-level field, the declared query
//! parameters' bad values and malformed ids on `GET` are checked for every
//! operation in `route_matrix.rs` and not repeated here. The checks take a
//! `&Node` and run against each node of an in-process three-node cluster
//! (`Node::cluster`: followers forward writes to the leader over the
//! in-memory transport), as the process test they replace did.

mod support;

use serde_json::{Value, json};
use support::{Node, TOKEN, check};

/// POSTs `body` to `/v1/leases` and expects 400 `bad_request`.
async fn refused_grant(node: &Node, wrong: &mut Vec<String>, body: &str) {
    let answer = node
        .send("POST", "/v1/leases", Some(TOKEN), Some(body))
        .await;
    check(
        wrong,
        &format!("grant {body:.80}"),
        &answer,
        400,
        "bad_request",
    );
}

/// Grants no node may accept.
async fn bad_grants_are_refused(node: &Node, wrong: &mut Vec<String>) {
    let over_a_year = [
        json!(31_536_001),
        json!("8761h"),
        json!("366d"),
        json!("400d"),
        json!("99999999999999999999h"),
    ];
    let mut bodies = vec![
        // Zero, below a second, negative.
        json!({"ttl": 0}),
        json!({"ttl": "0s"}),
        json!({"ttl": "500ms"}),
        json!({"ttl": -5}),
        json!({"ttl": "-5s"}),
        // Beyond any integer, not a duration, the wrong type, missing.
        json!({"ttl": 18_446_744_073_709_551_615u64}),
        json!({"ttl": "99999999999999999999"}),
        json!({"ttl": "soon"}),
        json!({"ttl": "5x"}),
        json!({"ttl": ""}),
        json!({"ttl": 1.5}),
        json!({"ttl": null}),
        json!({"ttl": true}),
        json!({}),
        json!({"name": "no-ttl"}),
        // A max_ttl of zero.
        json!({"ttl": 60, "max_ttl": 0}),
        // Names: empty, a control character, too long, not a string; a
        // field name in the wrong case.
        json!({"ttl": 60, "name": ""}),
        json!({"ttl": 60, "name": "a\u{7}b"}),
        json!({"ttl": "1h", "name": "n".repeat(257)}),
        json!({"ttl": "1h", "name": 7}),
        json!({"ttl": "1h", "Name": "x"}),
    ];
    for ttl in over_a_year {
        bodies.push(json!({"ttl": ttl}));
        bodies.push(json!({"ttl": "1h", "max_ttl": ttl}));
        bodies.push(json!({"ttl": ttl, "max_ttl": ttl}));
    }
    bodies.push(json!({"ttl": 60, "max_ttl": "9000h"}));
    // Metadata beyond its bounds or of the wrong shape.
    let many: serde_json::Map<String, Value> =
        (0..33).map(|i| (format!("k{i}"), json!("v"))).collect();
    for metadata in [
        json!(many),
        json!({"": "v"}),
        json!({"k": "v".repeat(1025)}),
        json!({"k": 5}),
        json!(["k"]),
    ] {
        bodies.push(json!({"ttl": 60, "metadata": metadata}));
    }
    for body in &bodies {
        refused_grant(node, wrong, &body.to_string()).await;
    }
    // A grant's body is required: empty or blank is not `{}`.
    for body in ["", "   "] {
        refused_grant(node, wrong, body).await;
    }
}

/// Bad renewals, prefixes, batch items, list queries and malformed ids.
async fn bad_lease_requests_are_refused(node: &Node, wrong: &mut Vec<String>) {
    let mut requests: Vec<(&str, String, Option<String>)> = Vec::new();
    let renew = format!("/v1/leases/{}/renew", node.lease);
    for increment in [
        json!(0),
        json!(-1),
        json!("x"),
        json!("8761h"),
        json!("9000h"),
    ] {
        let body = json!({"increment": increment}).to_string();
        requests.push(("POST", renew.clone(), Some(body)));
    }
    for body in [json!({"prefix": ""}), json!({}), json!({"prefix": 5})] {
        let uri = "/v1/leases/revoke-prefix".to_string();
        requests.push(("POST", uri, Some(body.to_string())));
    }
    // Unknown fields inside the items of a batch.
    for body in [
        r#"{"grant":[{"ttl":"1h","bogus":1}]}"#,
        r#"{"renew":[{"id":"0000000000000001","bogus":1}]}"#,
    ] {
        let uri = "/v1/leases/batch".to_string();
        requests.push(("POST", uri, Some(body.to_string())));
    }
    // A cursor that is no cursor, a consistency keel does not offer.
    for query in ["cursor=zz", "consistency=eventual"] {
        requests.push(("GET", format!("/v1/leases?{query}"), None));
    }
    // Malformed ids on the verbs that change a lease.
    for bad in [
        "xyz",
        "123",
        "deadbeef",
        "0123456789abcdef0",
        "ghijklmnopqrstuv",
        "0x23456789abcdef",
        "%20%20",
    ] {
        let renew = format!("/v1/leases/{bad}/renew");
        requests.push(("POST", renew, Some("{}".to_string())));
        requests.push(("DELETE", format!("/v1/leases/{bad}"), None));
    }
    for (method, uri, body) in &requests {
        let answer = node.send(method, uri, Some(TOKEN), body.as_deref()).await;
        let what = format!("{method} {uri} {}", body.as_deref().unwrap_or(""));
        check(wrong, &what, &answer, 400, "bad_request");
    }
}

/// A well-formed id naming no lease is 404 `lease_not_found` for every
/// verb.
async fn unknown_leases_are_not_found(node: &Node, wrong: &mut Vec<String>) {
    let unknown = if node.lease == "00000000deadbeef" {
        "00000000deadbeee"
    } else {
        "00000000deadbeef"
    };
    let uri = format!("/v1/leases/{unknown}");
    let renew = format!("{uri}/renew");
    for (method, uri, body) in [
        ("GET", &uri, None),
        ("POST", &renew, Some("{}")),
        ("DELETE", &uri, None),
    ] {
        let answer = node.send(method, uri, Some(TOKEN), body).await;
        let what = format!("{method} {uri}");
        check(wrong, &what, &answer, 404, "lease_not_found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lease_input_is_refused_and_changes_nothing() {
    // On the leader and on each follower (which forwards writes to it).
    let nodes = Node::cluster(3).await;
    let before = nodes[0].state();
    let mut wrong = Vec::new();
    for node in &nodes {
        bad_grants_are_refused(node, &mut wrong).await;
        bad_lease_requests_are_refused(node, &mut wrong).await;
        unknown_leases_are_not_found(node, &mut wrong).await;
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    support::settled(&nodes).await;
    for (i, node) in nodes.iter().enumerate() {
        assert!(
            node.state() == before,
            "bad lease input changed node {}'s state",
            i + 1
        );
    }
    for node in nodes {
        node.stop().await;
    }
}

/// A `ttl` above the lease's `max_ttl` is capped to it (as Vault does):
/// the contract cannot state "max_ttl >= ttl", so the request is valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_above_max_ttl_is_capped_to_it() {
    let node = Node::start().await;
    for (ttl, max, secs) in [(json!(60), json!(30), 30), (json!("2h"), json!("1h"), 3600)] {
        let body = json!({"ttl": ttl, "max_ttl": max}).to_string();
        let lease = node
            .send("POST", "/v1/leases", Some(TOKEN), Some(&body))
            .await;
        assert_eq!(lease.status, 201, "{body}: {}", lease.text);
        let lease = lease.json;
        assert_eq!(
            (lease["ttl"].as_u64(), lease["max_ttl"].as_u64()),
            (Some(secs), Some(secs)),
            "{lease}"
        );
        assert_eq!(lease["expires_at"], lease["hard_expires_at"], "{lease}");
    }
    node.stop().await;
}

//! Bad credentials, bad bodies and bad ids on every `/v1` operation, in
//! process. The operations come from the OpenAPI document the node serves
//! (which is built from the handlers' own annotations), so a new route is
//! in the matrix the moment it exists. Every refusal must be a 4xx with
//! keel's JSON error body, and the replicated state must be byte for byte
//! what it was.

mod support;

use support::{Node, TOKEN};

/// One operation of the document, with its path parameters filled in.
struct Operation {
    method: String,
    template: String,
    uri: String,
    json_body: bool,
}

/// A value for each path parameter, naming what the node holds.
fn fill(node: &Node, template: &str) -> String {
    let member = template.starts_with("/v1/cluster/members/");
    template
        .replace("{id}", if member { "1" } else { &node.lease })
        .replace("{name}", &node.account)
        .replace("{serial}", &node.serial)
        .replace("{accessor}", &node.accessor)
}

/// Every `/v1` operation behind a bearer token.
fn operations(node: &Node) -> Vec<Operation> {
    let doc = keel_web::openapi::document(&Default::default());
    let mut out = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        if !template.starts_with("/v1/") {
            continue;
        }
        for (method, op) in item.as_object().expect("a path item") {
            let secured = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            if !secured {
                continue;
            }
            let content = &op["requestBody"]["content"];
            out.push(Operation {
                method: method.to_uppercase(),
                template: template.clone(),
                uri: fill(node, template),
                json_body: content.get("application/json").is_some(),
            });
        }
    }
    assert!(
        out.len() > 40,
        "the document lists every /v1 operation ({} found)",
        out.len()
    );
    out
}

/// Collects a wrong answer instead of stopping at the first.
fn expect(wrong: &mut Vec<String>, what: &str, answer: &support::Answer, status: u16, code: &str) {
    if answer.status != status || answer.error_code() != Some(code) {
        wrong.push(format!(
            "{what}: expected {status} {code}, got {} {}",
            answer.status, answer.text
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_refuses_missing_and_wrong_tokens_and_changes_nothing() {
    let node = Node::start().await;
    let before = node.state();
    let mut wrong = Vec::new();
    for op in operations(&node) {
        let body = op.json_body.then_some("{}");
        // A token in the query string is not a credential.
        let sep = if op.uri.contains('?') { '&' } else { '?' };
        let with_query = format!("{}{sep}token={TOKEN}&access_token={TOKEN}", op.uri);
        for (who, token, uri) in [
            ("no token", None, op.uri.as_str()),
            ("wrong token", Some("not-the-admin-token"), op.uri.as_str()),
            ("empty token", Some(""), op.uri.as_str()),
            ("token in the query", None, with_query.as_str()),
            (
                "admin token with a suffix",
                Some(&format!("{TOKEN}x")),
                op.uri.as_str(),
            ),
        ] {
            let answer = node.send(&op.method, uri, token, body).await;
            let what = format!("{} {} ({who})", op.method, op.template);
            expect(&mut wrong, &what, &answer, 401, "unauthorized");
        }
    }
    // What the document serves without a token, and the status page,
    // answer without one.
    let doc = keel_web::openapi::document(&Default::default());
    let mut open: Vec<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .filter(|(_, item)| item["get"].is_object() && item["get"]["security"].is_null())
        .map(|(path, _)| path.clone())
        .collect();
    open.extend(["/ui/".to_string(), "/ui/app.js".to_string()]);
    assert!(open.iter().any(|p| p == "/v1/sys/seal-status"), "{open:?}");
    for path in &open {
        let answer = node.send("GET", path, None, None).await;
        if answer.status == 401 || answer.status == 404 {
            wrong.push(format!(
                "GET {path} without a token: {} {}",
                answer.status, answer.text
            ));
        }
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    assert_eq!(node.state(), before, "a refused request changed the state");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_json_body_refuses_malformed_input_and_changes_nothing() {
    let node = Node::start().await;
    let before = node.state();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for op in operations(&node).into_iter().filter(|o| o.json_body) {
        for body in [
            "{",
            "not json",
            "[]",
            "null",
            "\"text\"",
            "{\"a\":1,}",
            "{\"bogus-field\":1}",
        ] {
            // An optional body may be empty, but never malformed; an
            // unknown field is refused everywhere.
            let answer = node
                .send(&op.method, &op.uri, Some(TOKEN), Some(body))
                .await;
            let what = format!("{} {} body {body}", op.method, op.template);
            expect(&mut wrong, &what, &answer, 400, "bad_request");
            checked += 1;
        }
    }
    assert!(checked > 80, "only {checked} bodies checked");
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    assert_eq!(node.state(), before, "a refused body changed the state");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_parameter_refuses_malformed_ids_and_changes_nothing() {
    let node = Node::start().await;
    let before = node.state();
    let mut wrong = Vec::new();
    let mut checked = 0;
    let long = "a".repeat(300);
    for op in operations(&node) {
        for param in ["{id}", "{name}", "{serial}", "{accessor}"] {
            if !op.template.contains(param) {
                continue;
            }
            for bad in ["zz%20top", "%00", long.as_str(), "-1", "UPPER.Case!"] {
                let uri = op.template.replace(param, bad);
                let uri = fill(&node, &uri);
                let body = op.json_body.then_some("{}");
                let answer = node.send(&op.method, &uri, Some(TOKEN), body).await;
                let what = format!("{} {} with {param} = {bad:.20}", op.method, op.template);
                // Malformed ids are 400; nothing malformed can name an
                // existing object, so nothing else is acceptable.
                expect(&mut wrong, &what, &answer, 400, "bad_request");
                checked += 1;
            }
        }
    }
    assert!(checked > 60, "only {checked} ids checked");
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    assert_eq!(node.state(), before, "a refused id changed the state");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_parameter_naming_nothing_answers_404_and_changes_nothing() {
    let node = Node::start().await;
    let before = node.state();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for op in operations(&node) {
        let member = op.template.starts_with("/v1/cluster/members/");
        let missing = [
            ("{id}", if member { "9" } else { "00000000000000ff" }),
            ("{name}", "ghost"),
            ("{serial}", "0fedcba987654321"),
            ("{accessor}", "00000000000000ff"),
        ];
        for (param, absent) in missing {
            if !op.template.contains(param) {
                continue;
            }
            let uri = fill(&node, &op.template.replace(param, absent));
            let body = op.json_body.then_some("{}");
            let answer = node.send(&op.method, &uri, Some(TOKEN), body).await;
            if answer.status != 404 || answer.error_code().is_none() {
                wrong.push(format!(
                    "{} {} with {param} = {absent}: expected 404, got {} {}",
                    op.method, op.template, answer.status, answer.text
                ));
            }
            checked += 1;
        }
    }
    assert!(checked > 15, "only {checked} missing ids checked");
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    assert_eq!(
        node.state(),
        before,
        "a request for nothing changed the state"
    );
    node.stop().await;
}

/// Malformed values for each query parameter the document declares.
fn bad_values(param: &str) -> &'static [&'static str] {
    match param {
        "limit" => &["0", "1001", "abc", "-1"],
        "consistency" => &["sometimes"],
        "state" => &["bogus"],
        "cursor" => &["not%20a%20cursor!"],
        "format" => &["xml"],
        "force" => &["maybe"],
        _ => &[],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_query_parameters_unknown_routes_and_methods_are_refused_and_change_nothing() {
    let node = Node::start().await;
    let before = node.state();
    let doc = keel_web::openapi::document(&Default::default());
    let mut wrong = Vec::new();
    let mut checked = 0;
    for op in operations(&node) {
        let declared: Vec<String> =
            doc["paths"][&op.template][op.method.to_lowercase()]["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .filter_map(|p| p["name"].as_str().map(str::to_string))
                .collect();
        let mut queries: Vec<String> = declared
            .iter()
            .flat_map(|p| bad_values(p).iter().map(move |v| format!("{p}={v}")))
            .collect();
        if op.method == "GET" && !declared.is_empty() {
            queries.push("bogus=1".into());
        }
        for query in queries {
            let uri = format!("{}?{query}", op.uri);
            let body = op.json_body.then_some("{}");
            let answer = node.send(&op.method, &uri, Some(TOKEN), body).await;
            let what = format!("{} {}?{query}", op.method, op.template);
            expect(&mut wrong, &what, &answer, 400, "bad_request");
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} queries checked");
    // Lease ids and accessors are exactly 16 hex digits.
    for bad in [
        "0123",
        "00000000000000000",
        "zzzzzzzzzzzzzzzz",
        "0x00000000000001",
    ] {
        for uri in [
            format!("/v1/leases/{bad}"),
            format!("/v1/auth/tokens/{bad}"),
        ] {
            let answer = node.send("GET", &uri, Some(TOKEN), None).await;
            expect(
                &mut wrong,
                &format!("GET {uri}"),
                &answer,
                400,
                "bad_request",
            );
        }
    }
    let answer = node
        .send(
            "POST",
            "/v1/cluster/transfer-leader",
            Some(TOKEN),
            Some(r#"{"to": 42}"#),
        )
        .await;
    if answer.status != 404 || answer.error_code().is_none() {
        wrong.push(format!(
            "transfer to an unknown member: {} {}",
            answer.status, answer.text
        ));
    }
    let answer = node
        .send("GET", "/v1/nothing-here", Some(TOKEN), None)
        .await;
    expect(
        &mut wrong,
        "GET /v1/nothing-here",
        &answer,
        404,
        "not_found",
    );
    for (method, uri) in [("PUT", "/v1/leases"), ("DELETE", "/v1/cluster")] {
        let answer = node.send(method, uri, Some(TOKEN), None).await;
        if answer.status != 405 || answer.error_code().is_none() {
            wrong.push(format!("{method} {uri}: {} {}", answer.status, answer.text));
        }
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    assert_eq!(node.state(), before, "a refused request changed the state");
    node.stop().await;
}

/// Each handler that reads a typed answer off a write gets the type its
/// command answers with: a mismatch would be a 500 after the write
/// applied (schemathesis found one: revoking a token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_on_an_existing_object_answers_with_its_success_status() {
    let node = Node::start().await;
    let (lease, account, serial, accessor) = (
        node.lease.clone(),
        node.account.clone(),
        node.serial.clone(),
        node.accessor.clone(),
    );
    let steps: Vec<(&str, String, Option<&str>, u16)> = vec![
        (
            "POST",
            "/v1/leases".into(),
            Some(r#"{"ttl":"1h","name":"x/1"}"#),
            201,
        ),
        ("POST", format!("/v1/leases/{lease}/renew"), Some("{}"), 200),
        (
            "POST",
            "/v1/leases/batch".into(),
            Some(r#"{"grant":[{"ttl":"1h"}]}"#),
            200,
        ),
        (
            "POST",
            "/v1/leases/revoke-prefix".into(),
            Some(r#"{"prefix":"x/"}"#),
            200,
        ),
        (
            "POST",
            "/v1/accounts".into(),
            Some(r#"{"name":"other"}"#),
            201,
        ),
        (
            "PATCH",
            format!("/v1/accounts/{account}"),
            Some(r#"{"limits":{"max_leases":5}}"#),
            200,
        ),
        ("POST", format!("/v1/accounts/{account}/disable"), None, 200),
        ("POST", format!("/v1/accounts/{account}/enable"), None, 200),
        (
            "POST",
            "/v1/pki/issue".into(),
            Some(r#"{"common_name":"a.example.test","ttl":"1h"}"#),
            201,
        ),
        (
            "POST",
            format!("/v1/pki/certs/{serial}/renew"),
            Some("{}"),
            201,
        ),
        (
            "POST",
            format!("/v1/pki/certs/{serial}/revoke"),
            Some("{}"),
            200,
        ),
        (
            "POST",
            "/v1/auth/tokens".into(),
            Some(r#"{"role":"reader","ttl":"1h"}"#),
            201,
        ),
        ("DELETE", format!("/v1/auth/tokens/{accessor}"), None, 204),
        ("DELETE", format!("/v1/leases/{lease}"), None, 204),
        ("DELETE", "/v1/accounts/other".into(), None, 200),
    ];
    let mut wrong = Vec::new();
    for (method, uri, body, status) in steps {
        let answer = node.send(method, &uri, Some(TOKEN), body).await;
        if answer.status != status {
            wrong.push(format!(
                "{method} {uri}: expected {status}, got {} {}",
                answer.status, answer.text
            ));
        }
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    node.stop().await;
}

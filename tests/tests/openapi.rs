//! `/openapi.json` is served without a token and lists every path of
//! API.md with its methods.

use keel_tests::Cluster;

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
        ("/v1/sys/snapshot", &["get"]),
        ("/v1/sys/snapshot/restore", &["post"]),
        ("/v1/sys/warnings", &["get"]),
        ("/v1/sys/census", &["get"]),
        ("/v1/sys/events", &["get"]),
        ("/ui/", &["get"]),
        ("/v1/cluster", &["get"]),
        ("/v1/cluster/members", &["post"]),
        ("/v1/cluster/members/{id}", &["delete"]),
        ("/v1/cluster/transfer-leader", &["post"]),
        ("/v1/cluster/members/{id}/decommission", &["post"]),
        ("/v1/leases", &["get", "post"]),
        ("/v1/leases/{id}", &["get", "delete"]),
        ("/v1/leases/{id}/renew", &["post"]),
        ("/v1/leases/revoke-prefix", &["post"]),
        ("/v1/leases/batch", &["post"]),
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

/// The document is the exact contract: every `/v1/*` operation lists the
/// statuses the router and extractors can answer (401 behind a token, 503
/// with `Retry-After`, 400 and 413 when it reads a body, 404 when it names
/// an object), and fields carry the handlers' constraints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_states_every_status_and_constraint() {
    let cluster = Cluster::builder(1)
        .arg("--pki-max-ttl")
        .arg("48h")
        .start()
        .await;
    let doc = cluster.api(1).anonymous().get_ok("/openapi.json").await;
    let mut missing = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let mut want: Vec<&str> = Vec::new();
            if path.starts_with("/v1/") {
                want.push("503");
                if path != "/v1/sys/seal-status" {
                    want.push("401");
                }
            }
            if op.get("requestBody").is_some() {
                want.extend(["400", "413"]);
            }
            if path.contains('{') {
                want.extend(["400", "404"]);
            }
            for status in want {
                match responses.get(status) {
                    None => missing.push(format!("{method} {path}: {status}")),
                    Some(r) if status == "503" && r["headers"]["Retry-After"].is_null() => {
                        missing.push(format!("{method} {path}: 503 without Retry-After"))
                    }
                    Some(r) if r["content"]["application/json"].is_null() => {
                        missing.push(format!("{method} {path}: {status} without a body"))
                    }
                    Some(_) => {}
                }
            }
        }
    }
    assert!(missing.is_empty(), "undocumented statuses: {missing:#?}");

    let schemas = &doc["components"]["schemas"];
    let reasons = schemas["RevokeBody"]["properties"]["reason"].to_string();
    for r in ["keyCompromise", "key_compromise", "cessationOfOperation"] {
        assert!(reasons.contains(r), "reason enum lacks {r}: {reasons}");
    }
    let name = &schemas["CreateBody"]["properties"]["name"];
    assert_eq!(name["pattern"], "^[a-z0-9][a-z0-9._-]{0,62}$", "{name}");
    let lease_id = doc["paths"]["/v1/leases/{id}"]["get"]["parameters"][0]["schema"].clone();
    assert_eq!(lease_id["pattern"], "^[0-9a-fA-F]{16}$", "{lease_id}");
    // The certificate TTL bounds are this node's: 60 s to 48 h.
    let ttl = schemas["IssueBody"]["properties"]["ttl"]["oneOf"][0].clone();
    assert_eq!(
        (ttl["minimum"].as_u64(), ttl["maximum"].as_u64()),
        (Some(60), Some(172_800)),
        "{ttl}"
    );
    // Lease and certificate renewals no longer share one schema.
    assert!(schemas["LeaseRenewBody"]["properties"]["increment"].is_object());
    assert!(schemas["CertRenewBody"]["properties"]["csr"].is_object());
}

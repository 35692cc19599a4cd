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

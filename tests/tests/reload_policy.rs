//! Reload rebuilds what derives from configuration without a restart: a
//! changed certificate TTL bound in the config file applies to the next
//! request once reloaded, and a rejected reload keeps the old bound.

use keel_tests::config_cluster::{ConfigCluster, FIRST_TOKEN};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_a_new_certificate_ttl_bound() {
    let cluster = ConfigCluster::start(1).await;
    let api = cluster.api_with(1, FIRST_TOKEN);
    let path = cluster.config_path(1);
    let original = std::fs::read_to_string(&path).unwrap();
    keel_tests::pki::wait_for_ca(&api).await;
    let issue = json!({"common_name": "svc", "ttl": "2000h"});
    // The default bound is 2160h; lower it to 24h.
    std::fs::write(&path, format!("{original}pki_max_ttl = \"24h\"\n")).unwrap();
    let r = api.post("/v1/sys/reload", &json!({})).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        r.body["changes"].to_string().contains("policy"),
        "{:?}",
        r.body
    );
    let r = api.post("/v1/pki/issue", &issue).await.unwrap();
    assert_eq!(
        r.status, 400,
        "the lowered bound was not applied: {:?}",
        r.body
    );
    // A broken file is rejected whole; the 24h bound stays.
    std::fs::write(&path, format!("{original}pki_max_ttl = \"forever\"\n")).unwrap();
    let r = api.post("/v1/sys/reload", &json!({})).await.unwrap();
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(api.post("/v1/pki/issue", &issue).await.unwrap().status, 400);
    // Back to the original file: the default bound again.
    std::fs::write(&path, &original).unwrap();
    assert_eq!(
        api.post("/v1/sys/reload", &json!({})).await.unwrap().status,
        200
    );
    let r = api.post("/v1/pki/issue", &issue).await.unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
}

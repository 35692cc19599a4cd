//! A reload applies whole or not at all. New admin tokens and a new
//! cluster secret in the same reload as a part that fails (a setting that
//! needs a restart, an invalid quota) take no effect: the old token still
//! works and the new one is refused, and the nodes still authenticate each
//! other with the old secret (writes through every node, forwarded or not,
//! are acknowledged).

use std::time::Duration;

use keel_tests::config_cluster::{ConfigCluster, FIRST_TOKEN};
use keel_tests::{Api, eventually};
use serde_json::json;

const NEW_TOKEN: &str = "reload-whole-new-token-0123456789";

/// A write through every node is acknowledged (so the peers still accept
/// each other's secret), with `token`.
async fn writes_everywhere(cluster: &ConfigCluster, token: &str) {
    for id in 1..=3 {
        let api = cluster.api_with(id, token);
        eventually(Duration::from_secs(15), "a write through the node", || {
            let api: Api = api.clone();
            async move {
                let r = api
                    .post(
                        "/v1/leases",
                        &json!({"ttl": 60, "name": format!("whole/{id}")}),
                    )
                    .await?;
                if r.status == 201 {
                    Ok(())
                } else {
                    Err(format!("node {id}: {} {}", r.status, r.text))
                }
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_fails_late_leaves_tokens_and_secret_untouched() {
    let cluster = ConfigCluster::start(3).await;
    let dir = cluster.token_file.parent().unwrap().to_path_buf();
    let config = cluster.config_path(1);
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(dir.join("new-tokens"), format!("{NEW_TOKEN}\n")).unwrap();
    std::fs::write(dir.join("new-secret"), "reload-whole-new-secret-0123456789").unwrap();
    let with_new_credentials = good
        .replace(
            "admin_token_file = \"admin-tokens\"",
            "admin_token_file = \"new-tokens\"",
        )
        .replace(
            "cluster_secret_file = \"cluster-secret\"",
            "cluster_secret_file = \"new-secret\"",
        );
    assert_ne!(with_new_credentials, good);

    for (what, tail, reason) in [
        (
            "a setting that needs a restart",
            "max_clock_offset = \"900ms\"\n",
            "max clock offset",
        ),
        ("an invalid quota", "max_leases = 0\n", "--max-leases"),
        (
            "an invalid retention",
            "pki_retention = \"soon\"\n",
            "--pki-retention",
        ),
    ] {
        std::fs::write(&config, format!("{with_new_credentials}{tail}")).unwrap();
        let old = cluster.api_with(1, FIRST_TOKEN);
        let r = old.post("/v1/sys/reload", &json!({})).await.unwrap();
        assert_eq!(
            (r.status, r.code()),
            (400, "bad_request"),
            "{what}: {}",
            r.text
        );
        let message = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(reason),
            "{what}: `{reason}` not in `{message}`"
        );
        // Nothing of it took effect.
        let refused = cluster
            .api_with(1, NEW_TOKEN)
            .get("/v1/leases")
            .await
            .unwrap();
        assert_eq!(
            (refused.status, refused.code()),
            (401, "unauthorized"),
            "{what}"
        );
        writes_everywhere(&cluster, FIRST_TOKEN).await;
    }

    // The same credentials with nothing failing apply at once.
    std::fs::write(&config, &with_new_credentials).unwrap();
    let r = cluster
        .api_with(1, FIRST_TOKEN)
        .post("/v1/sys/reload", &json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    let changes = r.body["changes"].to_string();
    assert!(
        changes.contains("admin tokens") && changes.contains("cluster secret"),
        "{changes}"
    );
    let old = cluster
        .api_with(1, FIRST_TOKEN)
        .get("/v1/leases")
        .await
        .unwrap();
    assert_eq!(old.status, 401, "{}", old.text);
    let new = cluster
        .api_with(1, NEW_TOKEN)
        .get("/v1/leases?consistency=local")
        .await
        .unwrap();
    assert_eq!(new.status, 200, "{}", new.text);
}

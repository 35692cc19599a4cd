//! Bounded growth: what is past its time leaves the replicated state.
//!
//! - An expired certificate leaves the CRL once its `not_after` has passed
//!   (a revoked one that has not expired stays listed), and its record is
//!   removed after `--pki-retention`.
//! - A revoked or expired lease is gone from the table (404, not listed).
//! - An `Idempotency-Key` is forgotten after `--idempotency-retention`:
//!   the same key then makes a new object instead of returning the old one.
//!
//! Pruning is a replicated command the leader proposes; apply re-checks
//! the stamped time, so every node removes the same records.

use std::time::Duration;

use keel_tests::pki::{crl_text, openssl_serial, wait_for_ca};
use keel_tests::{Api, Cluster, eventually};
use serde_json::json;

async fn issue(api: &Api, cn: &str, ttl: &str) -> String {
    api.post_expect(
        "/v1/pki/issue",
        &json!({"common_name": cn, "ttl": ttl}),
        201,
    )
    .await["serial"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits until `path` answers 404 on `api`.
async fn wait_gone(api: &Api, path: String, what: &str) {
    eventually(Duration::from_secs(30), what, || {
        let (api, path) = (api.clone(), path.clone());
        async move {
            match api.get(&path).await?.status {
                404 => Ok(()),
                s => Err(format!("{path}: {s}")),
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_certificates_leave_the_crl_and_their_records_go_after_retention() {
    let cluster = Cluster::builder(3)
        .arg("--pki-retention")
        .arg("3s")
        .start()
        .await;
    let api = cluster.api(1);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, wait_for_ca(&api).await).unwrap();

    // Two revoked certificates: one expires in a minute (the shortest
    // validity keel issues), one in an hour.
    let short = issue(&api, "short.example.test", "1m").await;
    let long = issue(&api, "long.example.test", "1h").await;
    let kept = issue(&api, "kept.example.test", "1h").await;
    for serial in [&short, &long] {
        api.post_expect(
            &format!("/v1/pki/certs/{serial}/revoke"),
            &json!({"reason": "keyCompromise"}),
            200,
        )
        .await;
    }
    let listed = |text: &str, serial: &str| text.contains(&openssl_serial(serial));
    let text = crl_text(&api, dir.path(), &ca).await;
    assert!(listed(&text, &short) && listed(&text, &long), "{text}");

    // Once `short` has expired, it leaves the CRL (re-published), and its
    // record goes after the retention; `long` stays listed and recorded.
    let crl_dir = dir.path().to_path_buf();
    eventually(
        Duration::from_secs(90),
        "the expired certificate off the CRL",
        || {
            let (api, ca, dir) = (api.clone(), ca.clone(), crl_dir.clone());
            let (short, long) = (short.clone(), long.clone());
            async move {
                let text = crl_text(&api, &dir, &ca).await;
                if listed(&text, &short) {
                    return Err(format!("{short} still listed"));
                }
                assert!(listed(&text, &long), "{long} left the CRL: {text}");
                Ok(())
            }
        },
    )
    .await;
    for id in 1..=3 {
        let node = cluster.api(id);
        let path = format!("/v1/pki/certs/{short}?consistency=local");
        wait_gone(&node, path, "the expired record pruned on every node").await;
        for serial in [&long, &kept] {
            let r = node
                .get(&format!("/v1/pki/certs/{serial}?consistency=local"))
                .await
                .unwrap();
            assert_eq!(r.status, 200, "node {id} lost {serial}: {}", r.text);
        }
    }
    let listed_serials: Vec<String> = api.get_ok("/v1/pki/certs").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["serial"].as_str().unwrap().to_string())
        .collect();
    assert!(!listed_serials.contains(&short), "{listed_serials:?}");
    assert!(listed_serials.contains(&long) && listed_serials.contains(&kept));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_expired_leases_and_old_idempotency_keys_are_removed() {
    let cluster = Cluster::builder(1)
        .arg("--idempotency-retention")
        .arg("2s")
        .start()
        .await;
    let api = cluster.api(1);

    // A grant with a key, retried: the same lease.
    let grant = |key: &'static str| {
        let api = api.clone();
        async move {
            let body = json!({"ttl": "1h", "name": "keyed"}).to_string();
            api.send_raw(
                "POST",
                "/v1/leases",
                Some(body.into_bytes()),
                &[("Idempotency-Key", key)],
            )
            .await
            .unwrap()
        }
    };
    let first = grant("grant-once").await;
    assert_eq!(first.status, 201, "{}", first.text);
    let again = grant("grant-once").await;
    assert_eq!(
        again.body["id"], first.body["id"],
        "a retry made a new lease"
    );

    // A revoked lease and an expired one are gone.
    let revoked = api
        .post_expect(
            "/v1/leases",
            &json!({"ttl": "1h", "name": "gone/revoked"}),
            201,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let expiring = api
        .post_expect(
            "/v1/leases",
            &json!({"ttl": "1s", "name": "gone/expired"}),
            201,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = api.delete(&format!("/v1/leases/{revoked}")).await.unwrap();
    assert_eq!(r.status, 204, "{}", r.text);
    for id in [&revoked, &expiring] {
        wait_gone(&api, format!("/v1/leases/{id}"), "the lease removed").await;
    }
    let names = api.get_ok("/v1/leases?prefix=gone/").await;
    assert_eq!(names["items"], json!([]), "{names}");

    // After the retention the key is forgotten: the same key grants anew.
    let first_id = first.body["id"].clone();
    eventually(Duration::from_secs(20), "the key forgotten", || {
        let grant = grant("grant-once");
        let first_id = first_id.clone();
        async move {
            let r = grant.await;
            match r.status {
                201 if r.body["id"] != first_id => Ok(()),
                201 => Err("still remembered".to_string()),
                s => Err(format!("{s} {}", r.text)),
            }
        }
    })
    .await;
}

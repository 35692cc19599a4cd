//! Idempotent retries are exact: a retry with the same `Idempotency-Key`
//! never generates anything new.
//!
//! A certificate issue (or a renewal without a CSR) whose first attempt
//! applied cannot be answered with its private key again: keel returned it
//! once and never stored it. The retry, through any node, gets 409
//! `private_key_unavailable` naming the certificate, never a fresh key
//! beside the old certificate, and no second certificate exists. A CSR
//! renewal (no key made by keel) replays its certificate as usual. Every
//! key keel does return matches its certificate (checked with openssl).

use keel_tests::pki::{make_csr, openssl, wait_for_ca};
use keel_tests::{Api, Cluster};
use serde_json::{Value, json};

async fn post_with_key(api: &Api, path: &str, body: &Value, key: &str) -> keel_tests::Reply {
    api.send_raw(
        "POST",
        path,
        Some(body.to_string().into_bytes()),
        &[("idempotency-key", key)],
    )
    .await
    .expect("request")
}

/// The public key of a PEM certificate and of a PEM private key, compared
/// by openssl.
fn key_matches(dir: &std::path::Path, cert_pem: &str, key_pem: &str) -> bool {
    let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
    std::fs::write(&cert, cert_pem).unwrap();
    std::fs::write(&key, key_pem).unwrap();
    let (ok1, from_cert) = openssl(&["x509", "-noout", "-pubkey", "-in", cert.to_str().unwrap()]);
    let (ok2, from_key) = openssl(&["pkey", "-pubout", "-in", key.to_str().unwrap()]);
    ok1 && ok2 && from_cert == from_key
}

fn certs_named(list: &Value, cn: &str) -> usize {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["common_name"] == cn)
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_issue_never_returns_a_key_that_does_not_match() {
    let cluster = Cluster::start(3).await;
    let dir = tempfile::tempdir().unwrap();
    let apis: Vec<Api> = (1..=3).map(|id| cluster.api(id)).collect();
    wait_for_ca(&apis[0]).await;

    // Issue: the first answer carries the key, and it matches.
    let body = json!({"common_name": "retry.example", "ttl": "1h"});
    let first = post_with_key(&apis[0], "/v1/pki/issue", &body, "issue-1").await;
    assert_eq!(first.status, 201, "{}", first.body);
    let serial = first.body["serial"].as_str().unwrap().to_string();
    assert!(key_matches(
        dir.path(),
        first.body["certificate"].as_str().unwrap(),
        first.body["private_key"].as_str().unwrap()
    ));
    // Retries through every node: 409 naming that certificate, no key.
    for api in &apis {
        let r = post_with_key(api, "/v1/pki/issue", &body, "issue-1").await;
        assert_eq!(
            (r.status, r.code()),
            (409, "private_key_unavailable"),
            "{}",
            r.body
        );
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&serial), "{message}");
        assert!(!r.body.to_string().contains("PRIVATE KEY"));
    }
    let list = apis[1]
        .get_ok("/v1/pki/certs?limit=1000&consistency=linearizable")
        .await;
    assert_eq!(certs_named(&list, "retry.example"), 1, "{list}");

    // Renew without a CSR: the same rule.
    let path = format!("/v1/pki/certs/{serial}/renew");
    let renewed = post_with_key(&apis[1], &path, &json!({}), "renew-1").await;
    assert_eq!(renewed.status, 201, "{}", renewed.body);
    assert!(key_matches(
        dir.path(),
        renewed.body["certificate"].as_str().unwrap(),
        renewed.body["private_key"].as_str().unwrap()
    ));
    let again = post_with_key(&apis[2], &path, &json!({}), "renew-1").await;
    assert_eq!(
        (again.status, again.code()),
        (409, "private_key_unavailable"),
        "{}",
        again.body
    );
    let list = apis[0]
        .get_ok("/v1/pki/certs?limit=1000&consistency=linearizable")
        .await;
    assert_eq!(certs_named(&list, "retry.example"), 2, "{list}");

    // A CSR renewal replays its certificate: nothing secret is involved.
    let (_, csr) = make_csr(dir.path(), "retry.example");
    let csr_body = json!({"csr": csr});
    let a = post_with_key(&apis[0], &path, &csr_body, "renew-csr").await;
    let b = post_with_key(&apis[2], &path, &csr_body, "renew-csr").await;
    assert_eq!((a.status, b.status), (201, 201), "{} / {}", a.body, b.body);
    assert_eq!(a.body["serial"], b.body["serial"]);
}

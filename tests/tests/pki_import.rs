//! A cluster CA imported from PEM files named in the configuration: the
//! node serves that CA and issues certificates that chain to it; a key that
//! does not match the certificate, or a certificate that is no CA, stops
//! the node at start with a clear configuration error.

use std::process::Command;

use keel_tests::pki::{make_ca, openssl_verify, wait_for_ca};
use keel_tests::{Cluster, keel_bin};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_ca_signs_and_bad_imports_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path(), "ca", true);
    let f = |n: &str| dir.path().join(n).display().to_string();
    let cluster = Cluster::builder(1)
        .arg("--pki-ca-cert-file")
        .arg(&f("ca.pem"))
        .arg("--pki-ca-key-file")
        .arg(&f("ca.key"))
        .start()
        .await;
    let api = cluster.api(1);
    let served = wait_for_ca(&api).await;
    assert_eq!(
        served.trim(),
        std::fs::read_to_string(dir.path().join("ca.pem"))
            .unwrap()
            .trim()
    );
    let issued = api
        .post_expect(
            "/v1/pki/issue",
            &json!({"common_name": "svc", "ttl": "24h"}),
            201,
        )
        .await;
    let cert = dir.path().join("issued.pem");
    std::fs::write(&cert, issued["certificate"].as_str().unwrap()).unwrap();
    let (ok, text) = openssl_verify(&dir.path().join("ca.pem"), &cert);
    assert!(ok, "{text}");
    // The CA key is never served.
    let ca = api.get_ok("/v1/pki/ca").await;
    assert!(!ca.to_string().contains("PRIVATE KEY"));
    drop(cluster);

    // A key of another CA, and a certificate that is no CA, are refused.
    make_ca(dir.path(), "other", true);
    make_ca(dir.path(), "leaf", false);
    for (cert, key, why) in [
        ("ca.pem", "other.key", "does not match"),
        ("leaf.pem", "leaf.key", "not a CA"),
    ] {
        let data = dir.path().join(format!("data-{key}"));
        let out = Command::new(keel_bin())
            .args([
                "server",
                "--dev",
                "--api-listen",
                "127.0.0.1:0",
                "--peer-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(&data)
            .args(["--pki-ca-cert-file", &f(cert), "--pki-ca-key-file", &f(key)])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{cert} + {key} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("invalid configuration") && err.contains(why),
            "{cert} + {key}: {err}"
        );
        assert!(
            !data.exists(),
            "a refused configuration touched the data directory"
        );
    }
}

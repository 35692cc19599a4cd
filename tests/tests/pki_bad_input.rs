//! Bad input to the PKI routes — malformed CSRs, a CSR whose signature
//! does not verify, disallowed names, absurd TTLs, unknown or malformed
//! serials — gets a 4xx with the JSON error body and records nothing.

use keel_tests::pki::{make_csr_with, openssl, wait_for_ca};
use keel_tests::{Api, Cluster};
use serde_json::{Value, json};

async fn cert_count(api: &Api) -> usize {
    api.get_ok("/v1/pki/certs?limit=1000").await["items"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pki_input_is_refused_and_changes_nothing() {
    let cluster = Cluster::builder(1)
        .arg("--pki-allowed-domains")
        .arg("keel.internal")
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let api = cluster.api(1);
    wait_for_ca(&api).await;
    let good = api
        .post_expect(
            "/v1/pki/issue",
            &json!({"common_name": "ok", "dns_names": ["a.keel.internal"], "ttl": "1h"}),
            201,
        )
        .await;
    let before = cert_count(&api).await;

    // A CSR whose signature does not verify: flip a byte of its signature.
    let (_, csr) = make_csr_with(dir.path(), "x", &["-outform", "DER"]);
    let mut der = std::fs::read(&csr).unwrap();
    let last = der.len() - 3;
    der[last] ^= 0x55;
    let bad_der = dir.path().join("bad.der");
    std::fs::write(&bad_der, &der).unwrap();
    let bad_pem = dir.path().join("bad.pem");
    let (ok, text) = openssl(&[
        "req",
        "-inform",
        "DER",
        "-in",
        &bad_der.display().to_string(),
        "-out",
        &bad_pem.display().to_string(),
    ]);
    assert!(ok, "{text}");
    let tampered = std::fs::read_to_string(&bad_pem).unwrap();

    let serial = good["serial"].as_str().unwrap();
    let revoke_good = format!("/v1/pki/certs/{serial}/revoke");
    let renew_good = format!("/v1/pki/certs/{serial}/renew");
    let cases: Vec<(&str, &str, Value, u16)> = vec![
        (
            "POST",
            "/v1/pki/sign",
            json!({"csr": "-----BEGIN CERTIFICATE REQUEST-----\nnope\n-----END CERTIFICATE REQUEST-----\n", "ttl": 60}),
            400,
        ),
        (
            "POST",
            "/v1/pki/sign",
            json!({"csr": tampered, "ttl": 3600}),
            400,
        ),
        (
            "POST",
            "/v1/pki/sign",
            json!({"csr": "not pem", "ttl": 3600}),
            400,
        ),
        (
            "POST",
            "/v1/pki/issue",
            json!({"common_name": "x", "dns_names": ["*.keel.internal"], "ttl": "1h"}),
            400,
        ),
        (
            "POST",
            "/v1/pki/issue",
            json!({"common_name": "x", "dns_names": ["evil.example.com"], "ttl": "1h"}),
            400,
        ),
        (
            "POST",
            "/v1/pki/issue",
            json!({"common_name": "x", "dns_names": ["bad_name.keel.internal"], "ttl": "1h"}),
            400,
        ),
        (
            "POST",
            "/v1/pki/issue",
            json!({"common_name": "x", "ip_addresses": ["999.1.1.1"], "ttl": "1h"}),
            400,
        ),
        (
            "POST",
            "/v1/pki/issue",
            json!({"common_name": "", "ttl": "1h"}),
            400,
        ),
        (
            "POST",
            "/v1/pki/issue",
            json!({"common_name": "x", "ttl": 0}),
            400,
        ),
        (
            "POST",
            "/v1/pki/issue",
            json!({"common_name": "x", "ttl": "100000h"}),
            400,
        ),
        (
            "POST",
            "/v1/pki/issue",
            json!({"common_name": "x", "ttl": -1}),
            400,
        ),
        (
            "POST",
            "/v1/pki/issue",
            json!({"common_name": "x", "ttl": "1h", "account": "nobody"}),
            404,
        ),
        (
            "POST",
            "/v1/pki/issue",
            json!({"common_name": "x", "ttl": "1h", "extra": true}),
            400,
        ),
        (
            "GET",
            "/v1/pki/certs/00112233445566778899aabbccddeeff",
            Value::Null,
            404,
        ),
        ("GET", "/v1/pki/certs/not-a-serial", Value::Null, 400),
        (
            "POST",
            "/v1/pki/certs/00112233445566778899aabbccddeeff/renew",
            json!({}),
            404,
        ),
        (
            "POST",
            "/v1/pki/certs/00112233445566778899aabbccddeeff/activate",
            json!({}),
            404,
        ),
        (
            "POST",
            "/v1/pki/certs/00112233445566778899aabbccddeeff/revoke",
            json!({}),
            404,
        ),
        ("POST", &revoke_good, json!({"reason": "because"}), 400),
        ("POST", &renew_good, json!({"ttl": "100000h"}), 400),
        ("GET", "/v1/pki/crl?format=xml", Value::Null, 400),
    ];
    for (method, path, body, status) in cases {
        let body = (!body.is_null()).then_some(&body);
        let r = api.send(method, path, body).await.unwrap();
        assert_eq!(r.status, status, "{method} {path}: {:?}", r.body);
        assert!(
            r.body["error"]["code"].is_string() && r.body["error"]["message"].is_string(),
            "{:?}",
            r.body
        );
    }
    assert_eq!(
        cert_count(&api).await,
        before,
        "a refused request recorded a certificate"
    );
    assert_eq!(
        api.get_ok(&format!("/v1/pki/certs/{serial}")).await["state"],
        "active"
    );
}

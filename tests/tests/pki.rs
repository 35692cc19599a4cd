//! The cluster CA through the API, checked with an independent X.509
//! implementation (openssl): issued and signed certificates verify and carry
//! the requested names and validity; the CRL parses, is signed by the CA and
//! lists revoked, superseded and (while their account is not active) held
//! certificates.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use keel_tests::pki::{
    crl_text, make_csr_with, openssl, openssl_serial, openssl_verify, wait_for_ca,
};
use keel_tests::{Cluster, eventually};
use serde_json::json;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_and_signed_certificates_verify_with_openssl() {
    let cluster = Cluster::start(3).await;
    let dir = tempfile::tempdir().unwrap();
    // Through a follower too: signing happens on the leader.
    let api = cluster.api(2);
    let ca_pem = wait_for_ca(&api).await;
    let ca = write(dir.path(), "ca.pem", &ca_pem);

    let issued = api
        .post_expect(
            "/v1/pki/issue",
            &json!({"common_name": "node-1", "dns_names": ["node-1.keel.internal"], "ip_addresses": ["10.1.2.3"], "ttl": "72h"}),
            201,
        )
        .await;
    assert_eq!(issued["state"], "active");
    assert_eq!(issued["ca_certificate"].as_str(), Some(ca_pem.as_str()));
    let cert = write(
        dir.path(),
        "cert.pem",
        issued["certificate"].as_str().unwrap(),
    );
    let key = write(
        dir.path(),
        "key.pem",
        issued["private_key"].as_str().unwrap(),
    );
    let (ok, text) = openssl_verify(&ca, &cert);
    assert!(ok, "{text}");
    let (_, text) = openssl(&[
        "x509",
        "-in",
        &cert.display().to_string(),
        "-noout",
        "-subject",
        "-ext",
        "subjectAltName",
        "-serial",
    ]);
    assert!(
        text.contains("CN = node-1") || text.contains("CN=node-1"),
        "{text}"
    );
    assert!(text.contains("DNS:node-1.keel.internal"), "{text}");
    assert!(text.contains("IP Address:10.1.2.3"), "{text}");
    assert!(
        text.to_lowercase()
            .contains(&format!("serial={}", issued["serial"].as_str().unwrap())),
        "{text}"
    );
    // Valid now, expired in 73 hours, not before 71: the 72h TTL.
    let c = cert.display().to_string();
    assert!(
        openssl(&[
            "x509",
            "-in",
            &c,
            "-noout",
            "-checkend",
            &(71 * 3600).to_string()
        ])
        .0
    );
    assert!(
        !openssl(&[
            "x509",
            "-in",
            &c,
            "-noout",
            "-checkend",
            &(73 * 3600).to_string()
        ])
        .0
    );
    // The private key matches the certificate.
    let (_, cert_pub) = openssl(&["x509", "-in", &c, "-noout", "-pubkey"]);
    let (_, key_pub) = openssl(&["pkey", "-in", &key.display().to_string(), "-pubout"]);
    assert_eq!(cert_pub, key_pub);

    // Sign a CSR made by openssl: the key never leaves its holder.
    let (holder_key, csr) = make_csr_with(
        dir.path(),
        "svc-a",
        &["-addext", "subjectAltName=DNS:svc-a.keel.internal"],
    );
    let signed = api
        .post_expect(
            "/v1/pki/sign",
            &json!({"csr": std::fs::read_to_string(&csr).unwrap(), "ttl": 3600}),
            201,
        )
        .await;
    assert!(
        signed.get("private_key").is_none(),
        "a signed CSR must not come with a key"
    );
    let signed_cert = write(
        dir.path(),
        "signed.pem",
        signed["certificate"].as_str().unwrap(),
    );
    let (ok, text) = openssl_verify(&ca, &signed_cert);
    assert!(ok, "{text}");
    let (_, text) = openssl(&[
        "x509",
        "-in",
        &signed_cert.display().to_string(),
        "-noout",
        "-ext",
        "subjectAltName",
    ]);
    assert!(text.contains("DNS:svc-a.keel.internal"), "{text}");
    let (_, cert_pub) = openssl(&[
        "x509",
        "-in",
        &signed_cert.display().to_string(),
        "-noout",
        "-pubkey",
    ]);
    let (_, holder_pub) = openssl(&["pkey", "-in", &holder_key.display().to_string(), "-pubout"]);
    assert_eq!(cert_pub, holder_pub);

    // Every node lists both, identically.
    for id in 1..=3 {
        let list = cluster.api(id).get_ok("/v1/pki/certs").await;
        let serials: BTreeSet<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["serial"].as_str().unwrap())
            .collect();
        assert!(serials.contains(issued["serial"].as_str().unwrap()));
        assert!(serials.contains(signed["serial"].as_str().unwrap()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crl_lists_revoked_superseded_and_held_certificates() {
    let cluster = Cluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let api = cluster.api(1);
    let ca = write(dir.path(), "ca.pem", &wait_for_ca(&api).await);
    let issue = |cn: &str, account: Option<&str>| {
        let api = api.clone();
        let body = json!({"common_name": cn, "ttl": "24h", "account": account});
        async move { api.post_expect("/v1/pki/issue", &body, 201).await }
    };
    let number = |text: &str| -> u64 {
        let after = text.split("X509v3 CRL Number:").nth(1).expect("CRL number");
        after
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .expect("number")
    };

    let revoked = issue("revoked", None).await;
    let serial = revoked["serial"].as_str().unwrap();
    let r = api
        .post_expect(
            &format!("/v1/pki/certs/{serial}/revoke"),
            &json!({"reason": "key_compromise"}),
            200,
        )
        .await;
    assert_eq!(r["state"], "revoked");

    // Make before break: the renewed certificate replaces the old, which
    // stays valid (and off the CRL) until the new one is activated.
    let old = issue("rotating", None).await;
    let old_serial = old["serial"].as_str().unwrap();
    let new = api
        .post_expect(
            &format!("/v1/pki/certs/{old_serial}/renew"),
            &json!({}),
            201,
        )
        .await;
    let new_serial = new["serial"].as_str().unwrap();
    assert_eq!(new["replaces"].as_str(), Some(old_serial));
    assert!(new["private_key"].is_string());
    let text = crl_text(&api, dir.path(), &ca).await;
    assert!(
        text.contains(&openssl_serial(serial)) && text.contains("Key Compromise"),
        "{text}"
    );
    assert!(
        !text.contains(&openssl_serial(old_serial)),
        "old certificate listed before activation: {text}"
    );
    assert_eq!(
        api.get_ok(&format!("/v1/pki/certs/{old_serial}")).await["state"],
        "active"
    );
    let n1 = number(&text);
    let activated = api
        .post_expect(
            &format!("/v1/pki/certs/{new_serial}/activate"),
            &json!({}),
            200,
        )
        .await;
    assert_eq!(activated["state"], "active");
    assert_eq!(
        api.get_ok(&format!("/v1/pki/certs/{old_serial}")).await["state"],
        "superseded"
    );
    let text = crl_text(&api, dir.path(), &ca).await;
    assert!(
        text.contains(&openssl_serial(old_serial)) && text.contains("Superseded"),
        "{text}"
    );
    let n2 = number(&text);
    assert!(n2 > n1, "CRL number did not increase: {n1} -> {n2}");

    // Account expiry puts its certificates on hold; renewal takes them off.
    let soon = keel_tests::rfc3339_in(2);
    api.post_expect(
        "/v1/accounts",
        &json!({"name": "tenant", "expires_at": soon}),
        201,
    )
    .await;
    let held = issue("tenant-svc", Some("tenant")).await;
    let held_serial = openssl_serial(held["serial"].as_str().unwrap());
    let (api2, ca2, dir2, hs) = (
        api.clone(),
        ca.clone(),
        dir.path().to_path_buf(),
        held_serial.clone(),
    );
    let text = eventually(
        Duration::from_secs(15),
        "a certificateHold entry after account expiry",
        || {
            let (api, ca, dir, hs) = (api2.clone(), ca2.clone(), dir2.clone(), hs.clone());
            async move {
                let text = crl_text(&api, &dir, &ca).await;
                if text.contains(&hs) && text.contains("Certificate Hold") {
                    Ok(text)
                } else {
                    Err("not held yet".into())
                }
            }
        },
    )
    .await;
    let n3 = number(&text);
    assert_eq!(
        api.get_ok(&format!(
            "/v1/pki/certs/{}",
            held["serial"].as_str().unwrap()
        ))
        .await["state"],
        "suspended"
    );
    api.patch(
        "/v1/accounts/tenant",
        &json!({"expires_at": keel_tests::rfc3339_in(3600)}),
    )
    .await
    .unwrap();
    let text = crl_text(&api, dir.path(), &ca).await;
    assert!(
        !text.contains(&held_serial),
        "held certificate still listed after renewal: {text}"
    );
    assert!(number(&text) > n3);
    assert_eq!(
        api.get_ok(&format!(
            "/v1/pki/certs/{}",
            held["serial"].as_str().unwrap()
        ))
        .await["state"],
        "active"
    );

    // DER works too.
    let der = reqwest::Client::new()
        .get(format!("{}/v1/pki/crl?format=der", api.base))
        .bearer_auth(keel_tests::TOKEN)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let der_path = dir.path().join("crl.der");
    std::fs::write(&der_path, &der).unwrap();
    let (ok, text) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        &der_path.display().to_string(),
        "-noout",
        "-text",
    ]);
    assert!(ok, "{text}");
}

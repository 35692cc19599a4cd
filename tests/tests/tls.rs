//! TLS on both listeners: a three-node cluster whose API and peer links are
//! HTTPS (certificates made with openssl, an independent implementation)
//! forms, forwards writes between nodes, refuses plain HTTP, and picks up a
//! rotated certificate from its files with no restart.

use std::path::Path;
use std::time::Duration;

use keel_tests::pki::{issue_leaf, make_ca, openssl};
use keel_tests::{Cluster, TOKEN, eventually};
use serde_json::{Value, json};

/// Makes a CA and a certificate for 127.0.0.1 signed by it, in `dir`.
fn make_pki(dir: &Path, name: &str) {
    if !dir.join("ca.key").exists() {
        make_ca(dir, "ca", true);
    }
    issue_leaf(dir, name, "IP:127.0.0.1,DNS:localhost");
}

fn https_client(ca: &Path) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = std::fs::read(ca).unwrap();
    reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The serial of the certificate a listener presents.
fn presented_serial(addr: &str) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {addr} </dev/null 2>/dev/null | openssl x509 -noout -serial"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_cluster_forms_forwards_and_rotates_its_certificate() {
    let pki = tempfile::tempdir().unwrap();
    make_pki(pki.path(), "node");
    let f = |n: &str| pki.path().join(n).display().to_string();
    let cluster = Cluster::builder(3)
        .arg("--tls-cert-file")
        .arg(&f("node.pem"))
        .arg("--tls-key-file")
        .arg(&f("node.key"))
        .arg("--tls-ca-file")
        .arg(&f("ca.pem"))
        .no_wait()
        .start()
        .await;
    let client = https_client(&pki.path().join("ca.pem"));
    for id in 1..=3 {
        let url = format!("https://{}/readyz", cluster.node(id).api_addr);
        let client = client.clone();
        eventually(Duration::from_secs(60), "node ready over https", || {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let r = client.get(&url).send().await.map_err(|e| e.to_string())?;
                if r.status() == 200 {
                    Ok(())
                } else {
                    Err(format!("{}", r.status()))
                }
            }
        })
        .await;
    }
    let view: Value = client
        .get(format!("https://{}/v1/cluster", cluster.node(1).api_addr))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let leader = view["leader"].as_u64().expect("a leader");
    let follower = (1..=3).find(|id| *id != leader).unwrap();

    // A write through a follower travels the TLS peer link to the leader.
    let r = client
        .post(format!(
            "https://{}/v1/leases",
            cluster.node(follower).api_addr
        ))
        .bearer_auth(TOKEN)
        .json(&json!({"ttl": "1h", "name": "tls/1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // Plain HTTP gets no answer.
    let plain = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = plain
        .get(format!("http://{}/livez", cluster.node(1).api_addr))
        .send()
        .await;
    assert!(
        r.is_err() || r.unwrap().status() != 200,
        "plain HTTP was served"
    );

    // Rotate the certificate files in place; new connections use them.
    let addr = cluster.node(1).api_addr.clone();
    let before = presented_serial(&addr);
    assert!(before.starts_with("serial="), "{before}");
    make_pki(pki.path(), "next");
    std::fs::copy(pki.path().join("next.key"), pki.path().join("node.key.tmp")).unwrap();
    std::fs::copy(pki.path().join("next.pem"), pki.path().join("node.pem.tmp")).unwrap();
    std::fs::rename(pki.path().join("node.key.tmp"), pki.path().join("node.key")).unwrap();
    std::fs::rename(pki.path().join("node.pem.tmp"), pki.path().join("node.pem")).unwrap();
    let expected = {
        let (_, t) = openssl(&["x509", "-in", &f("next.pem"), "-noout", "-serial"]);
        t.trim().to_string()
    };
    eventually(
        Duration::from_secs(20),
        "the rotated certificate in use",
        || {
            let (addr, expected) = (addr.clone(), expected.clone());
            async move {
                let now = presented_serial(&addr);
                if now == expected { Ok(()) } else { Err(now) }
            }
        },
    )
    .await;
    let r = client
        .get(format!("https://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

//! Mutual TLS between nodes with keel's own peer CA (issue 11, part 1),
//! on real processes started as operators start them: no certificate
//! made by hand, the cluster secret used only to enrol.
//!
//! - The peer listener speaks only TLS; a caller without a node
//!   certificate gets 401 on Raft routes, one whose certificate comes from
//!   another CA fails the handshake, and node 2's certificate used to
//!   claim node 3 gets 403.
//! - A join token admits one node, once, and not after its expiry.
//! - Node certificates renew themselves at two thirds of their life while
//!   writes run, and not one write fails.

use std::path::Path;
use std::time::Duration;

use keel_tests::pki::{issue_leaf, make_ca, make_csr, openssl};
use keel_tests::{CLUSTER_SECRET, Cluster, TOKEN, eventually, free_port};
use serde_json::{Value, json};

/// A client that trusts `ca_pem` and presents `identity_pem` (key and
/// certificate), if given.
fn client(ca_pem: &[u8], identity_pem: Option<Vec<u8>>) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .tls_built_in_root_certs(false);
    for c in reqwest::Certificate::from_pem_bundle(ca_pem).unwrap() {
        b = b.add_root_certificate(c);
    }
    if let Some(id) = identity_pem {
        b = b.identity(reqwest::Identity::from_pem(&id).unwrap());
    }
    b.build().unwrap()
}

/// Gets a genuine certificate for node `node` from the cluster, for a key
/// the test holds: a join token spent at `peer_addr`'s enrolment route.
/// Returns key and certificate, PEM, as one identity.
async fn enrol_with_token(
    api: &keel_tests::Api,
    peer_addr: &str,
    ca_pem: &[u8],
    node: u64,
    dir: &Path,
) -> Vec<u8> {
    let token = join_token(api, json!("10m")).await;
    let secret = token.rsplit(':').next().unwrap().to_string();
    let (key, csr) = make_csr(dir, "stolen");
    let r = client(ca_pem, None)
        .post(format!("https://{peer_addr}/raft/enrol"))
        .json(&json!({
            "node": node,
            "csr_pem": csr,
            "hosts": ["127.0.0.1"],
            "proof": {"join_token": {"secret": secret}},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    let cert = answer["issued"]["cert_pem"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    let mut pem = std::fs::read(key).unwrap();
    pem.extend(cert.as_bytes());
    pem
}

/// POSTs an empty hello to a peer listener as node `from`.
async fn hello(
    http: &reqwest::Client,
    peer_addr: &str,
    from: u64,
) -> Result<(u16, String), String> {
    let r = http
        .post(format!("https://{peer_addr}/raft/hello"))
        .bearer_auth(CLUSTER_SECRET)
        .header("x-keel-from", from.to_string())
        .header("content-type", "application/x-keel")
        .body(vec![1u8, 0xc0])
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = r.status().as_u16();
    Ok((status, r.text().await.unwrap_or_default()))
}

fn code(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_refuse_plaintext_foreign_and_impersonating_callers() {
    let cluster = Cluster::start(3).await;
    let api = cluster.api(1);
    let lease = api
        .post_expect("/v1/leases", &json!({"ttl": 60}), 201)
        .await;
    assert!(lease["id"].is_string(), "{lease}");
    let cluster_id = api.get_ok("/v1/cluster").await["cluster_id"]
        .as_str()
        .unwrap()
        .to_string();
    let d1 = &cluster.node(1).data_dir;
    let ca = std::fs::read(d1.join("peer/ca.pem")).unwrap();
    for id in 1..=3 {
        let dir = &cluster.node(id).data_dir;
        let key = dir.join("peer/node.key.sealed");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&key).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "node {id}'s key file");
        let raw = std::fs::read(&key).unwrap();
        assert!(
            !raw.windows(11).any(|w| w == b"PRIVATE KEY"),
            "node {id}'s key is stored in clear"
        );
        let (ok, text) = openssl(&[
            "verify",
            "-CAfile",
            &d1.join("peer/ca.pem").display().to_string(),
            &dir.join("peer/node.pem").display().to_string(),
        ]);
        assert!(
            ok,
            "node {id}'s certificate does not chain to the peer CA: {text}"
        );
        let (_, text) = openssl(&[
            "x509",
            "-noout",
            "-ext",
            "subjectAltName",
            "-in",
            &dir.join("peer/node.pem").display().to_string(),
        ]);
        assert!(
            text.contains(&format!("URI:keel://{cluster_id}/node/{id}")),
            "node {id}'s certificate names {text}"
        );
    }
    let peer1 = cluster.node(1).peer_addr.clone();

    // Plaintext with the cluster secret: the listener speaks only TLS.
    let plain = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = plain
        .post(format!("http://{peer1}/raft/hello"))
        .bearer_auth(CLUSTER_SECRET)
        .send()
        .await;
    assert!(
        r.is_err(),
        "plaintext peer call answered {:?}",
        r.map(|r| r.status())
    );

    // TLS, the cluster secret, no certificate: 401.
    let anonymous = client(&ca, None);
    let (status, body) = hello(&anonymous, &peer1, 2).await.unwrap();
    assert_eq!(
        (status, code(&body).as_str()),
        (401, "unauthorized"),
        "{body}"
    );

    // A certificate from another CA, naming node 2 of this cluster: the
    // handshake fails.
    let foreign = tempfile::tempdir().unwrap();
    make_ca(foreign.path(), "ca", true);
    issue_leaf(
        foreign.path(),
        "impostor",
        &format!("URI:keel://{cluster_id}/node/2,IP:127.0.0.1"),
    );
    let mut impostor = std::fs::read(foreign.path().join("impostor.key")).unwrap();
    impostor.extend(std::fs::read(foreign.path().join("impostor.pem")).unwrap());
    let r = hello(&client(&ca, Some(impostor)), &peer1, 2).await;
    assert!(r.is_err(), "a foreign CA's certificate was taken: {r:?}");

    // A genuine certificate for node 2 works as node 2, and is refused as
    // node 3 (a node presenting another's certificate).
    let keys = tempfile::tempdir().unwrap();
    let node2 = enrol_with_token(&api, &peer1, &ca, 2, keys.path()).await;
    let as_node2 = client(&ca, Some(node2));
    let (status, body) = hello(&as_node2, &peer1, 2).await.unwrap();
    assert_eq!(status, 200, "node 2's certificate as node 2: {body}");
    let (status, body) = hello(&as_node2, &peer1, 3).await.unwrap();
    assert_eq!((status, code(&body).as_str()), (403, "forbidden"), "{body}");

    // The certificate is a metric and a readiness detail.
    let ready = api.get("/readyz?verbose").await.unwrap();
    let check = ready.body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "peer_certificate")
        .cloned()
        .unwrap_or_else(|| panic!("no peer_certificate check: {}", ready.body));
    assert_eq!(check["ok"], true, "{check}");
    assert!(
        check["detail"].as_str().unwrap().contains("in 29 days"),
        "{check}"
    );
    let metrics = reqwest::get(format!("http://{}/metrics", cluster.node(1).api_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let secs: i64 = eventually(
        Duration::from_secs(10),
        "the certificate expiry metric",
        || {
            let m = metrics.clone();
            async move {
                m.lines()
                    .find(|l| l.starts_with("keel_node_certificate_expiry_seconds "))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                    .filter(|s: &i64| *s > 0)
                    .ok_or_else(|| "not set".to_string())
            }
        },
    )
    .await;
    assert!(secs > 29 * 86_400 && secs <= 30 * 86_400, "{secs}");
}

/// Starts a node that joins through `via` with `extra` arguments.
fn spawn_joiner(cluster: &mut Cluster, id: u64, via: &str, extra: &[&str]) {
    let (api, peer) = (free_port(), free_port());
    let mut args = cluster.base_args(id, api, peer);
    args.extend(["--join".to_string(), via.to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut node = cluster.describe(id, api, peer, args);
    node.spawn();
    cluster.nodes.push(node);
}

async fn join_token(api: &keel_tests::Api, ttl: Value) -> String {
    let r = api
        .post_expect("/v1/sys/join-token", &json!({"ttl": ttl}), 200)
        .await;
    let token = r["token"].as_str().unwrap().to_string();
    let fp = r["ca_fingerprint"].as_str().unwrap();
    assert!(token.starts_with(&format!("keel1:{fp}:")), "{r}");
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_token_admits_one_node_once_and_not_after_it_expires() {
    let mut cluster = Cluster::start(3).await;
    let api = cluster.api(1);
    let via = cluster.node(1).peer_addr.clone();
    let token = join_token(&api, json!("1h")).await;

    spawn_joiner(&mut cluster, 4, &via, &["--join-token", &token]);
    cluster.wait_ready(4, Duration::from_secs(90)).await;
    let members = |v: &Value| v["members"].as_array().unwrap().len();
    assert_eq!(members(&api.get_ok("/v1/cluster").await), 4);
    assert!(
        cluster
            .node(4)
            .log()
            .contains("enrolled: node certificate issued by the cluster")
    );

    // The same token again: refused, and the node stops saying why.
    spawn_joiner(&mut cluster, 5, &via, &["--join-token", &token]);
    let code = cluster.node_mut(5).wait_exit(Duration::from_secs(60)).await;
    assert_ne!(code, Some(0), "a reused token must stop the node");
    let log = cluster.node(5).log();
    assert!(
        log.contains("already used"),
        "{}",
        cluster.node(5).log_tail(20)
    );

    // A token past its expiry: used once the clock has passed the expiry
    // the cluster answered.
    let r = api
        .post_expect("/v1/sys/join-token", &json!({"ttl": 1}), 200)
        .await;
    let short = r["token"].as_str().unwrap().to_string();
    let expires_at = time::OffsetDateTime::parse(
        r["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    eventually(
        Duration::from_secs(10),
        "the join token's expiry",
        || async move {
            (time::OffsetDateTime::now_utc() > expires_at + time::Duration::milliseconds(100))
                .then_some(())
                .ok_or_else(|| "not yet".to_string())
        },
    )
    .await;
    spawn_joiner(&mut cluster, 6, &via, &["--join-token", &short]);
    let code = cluster.node_mut(6).wait_exit(Duration::from_secs(60)).await;
    assert_ne!(code, Some(0));
    assert!(
        cluster.node(6).log().contains("expired"),
        "{}",
        cluster.node(6).log_tail(20)
    );

    // A token for another CA: the pinned handshake fails, the node stops
    // saying so, nothing is issued.
    let wrong_ca = format!("keel1:{}:{}", "ab".repeat(32), "cd".repeat(32));
    spawn_joiner(&mut cluster, 7, &via, &["--join-token", &wrong_ca]);
    let code = cluster.node_mut(7).wait_exit(Duration::from_secs(60)).await;
    assert_ne!(code, Some(0));
    assert!(
        cluster.node(7).log().contains("the join token pins"),
        "{}",
        cluster.node(7).log_tail(20)
    );
    assert!(!cluster.node(7).data_dir.join("peer/node.pem").exists());
    assert_eq!(members(&api.get_ok("/v1/cluster").await), 4);
    let _ = TOKEN;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_certificates_renew_while_writes_run_and_no_write_fails() {
    let cluster = Cluster::builder(3)
        .arg("--node-cert-ttl")
        .arg("15s")
        .start()
        .await;
    let serial = |id: u64| {
        let (_, text) = openssl(&[
            "x509",
            "-noout",
            "-serial",
            "-in",
            &cluster
                .node(id)
                .data_dir
                .join("peer/node.pem")
                .display()
                .to_string(),
        ]);
        text.trim().to_string()
    };
    let before: Vec<String> = (1..=3).map(serial).collect();
    let apis: Vec<_> = (1..=3).map(|id| cluster.api(id)).collect();
    let until = tokio::time::Instant::now() + Duration::from_secs(25);
    let (mut ok, mut failed) = (0u32, Vec::new());
    let mut i = 0usize;
    while tokio::time::Instant::now() < until {
        let api = &apis[i % 3];
        i += 1;
        match api.post("/v1/leases", &json!({"ttl": 60})).await {
            Ok(r) if r.status == 201 => ok += 1,
            other => failed.push(format!("{other:?}")),
        }
    }
    let after: Vec<String> = (1..=3).map(serial).collect();
    for id in 0..3 {
        assert_ne!(before[id], after[id], "node {} did not renew", id + 1);
    }
    let renewals = cluster.logs().matches("node certificate renewed").count();
    println!(
        "{ok} writes acknowledged, {} failed, {renewals} renewals",
        failed.len()
    );
    assert!(renewals >= 3, "{renewals}");
    assert!(
        failed.is_empty(),
        "{} of {} writes failed: {:?}",
        failed.len(),
        ok as usize + failed.len(),
        &failed[..failed.len().min(5)]
    );
}

/// The peer CAs as `/v1/sys/peer-ca` lists them: (fingerprint, signing).
async fn peer_cas(api: &keel_tests::Api) -> Vec<(String, bool)> {
    api.get_ok("/v1/sys/peer-ca").await["cas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["fingerprint"].as_str().unwrap().to_string(),
                c["signing"] == true,
            )
        })
        .collect()
}

/// Runs a rotation step until it is accepted (a step waits for every
/// node: trust of the new CA, or a certificate from it).
async fn rotate(api: &keel_tests::Api, step: &str) -> Value {
    let api = api.clone();
    eventually(
        Duration::from_secs(60),
        &format!("peer CA rotation step {step}"),
        || {
            let api = api.clone();
            async move {
                let r = api
                    .post("/v1/sys/peer-ca/rotate", &json!({"step": step}))
                    .await?;
                if r.status == 200 {
                    Ok(r.body)
                } else {
                    Err(format!("{} {}", r.status, r.body))
                }
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_ca_rotates_old_and_new_side_by_side_then_the_old_is_dropped() {
    let cluster = Cluster::start(3).await;
    let api = cluster.api(1);
    let before = peer_cas(&api).await;
    assert_eq!(before.len(), 1);
    let old = before[0].0.clone();
    // Too early: nothing to activate or drop.
    let r = api
        .post("/v1/sys/peer-ca/rotate", &json!({"step": "drop"}))
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);

    let writes = {
        let apis: Vec<_> = (1..=3).map(|id| cluster.api(id)).collect();
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            let until = tokio::time::Instant::now() + Duration::from_secs(30);
            let mut i = 0;
            while tokio::time::Instant::now() < until {
                match apis[i % 3].post("/v1/leases", &json!({"ttl": 60})).await {
                    Ok(r) if r.status == 201 => ok += 1,
                    other => failed.push(format!("{other:?}")),
                }
                i += 1;
            }
            (ok, failed)
        })
    };
    rotate(&api, "add").await;
    let both = peer_cas(&api).await;
    assert_eq!(both.len(), 2);
    assert_eq!(both[0], (old.clone(), true), "the old CA still signs");
    let new = both[1].0.clone();
    rotate(&api, "activate").await;
    assert_eq!(peer_cas(&api).await[0], (new.clone(), true));
    rotate(&api, "drop").await;
    assert_eq!(peer_cas(&api).await, vec![(new.clone(), true)]);

    // Every node's certificate now chains to the new CA only, and the
    // cluster still replicates.
    let (ok, failed) = writes.await.unwrap();
    println!(
        "{ok} writes acknowledged during the rotation, {} failed",
        failed.len()
    );
    assert!(failed.is_empty(), "{:?}", &failed[..failed.len().min(5)]);
    eventually(
        Duration::from_secs(20),
        "every node trusts only the new CA",
        || {
            let dirs: Vec<_> = (1..=3)
                .map(|id| cluster.node(id).data_dir.clone())
                .collect();
            let new = new.clone();
            async move {
                for d in &dirs {
                    let trust = std::fs::read_to_string(d.join("peer/ca.pem"))
                        .map_err(|e| e.to_string())?;
                    if trust.matches("BEGIN CERTIFICATE").count() != 1 {
                        return Err(format!(
                            "{} trusts {} CAs",
                            d.display(),
                            trust.matches("BEGIN CERTIFICATE").count()
                        ));
                    }
                    let (ok, text) = openssl(&[
                        "verify",
                        "-CAfile",
                        &d.join("peer/ca.pem").display().to_string(),
                        &d.join("peer/node.pem").display().to_string(),
                    ]);
                    if !ok {
                        return Err(text);
                    }
                }
                let _ = new;
                Ok(())
            }
        },
    )
    .await;
    let lease = api
        .post_expect("/v1/leases", &json!({"ttl": 60}), 201)
        .await;
    let id = lease["id"].as_str().unwrap();
    for n in 2..=3 {
        cluster.api(n).get_ok(&format!("/v1/leases/{id}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_the_node_certificate_and_the_cli_pins_the_peer_ca() {
    let cluster = Cluster::builder(1).arg("--api-tls").no_wait().start().await;
    let node = cluster.node(1);
    let ca_path = node.data_dir.join("peer/ca.pem");
    eventually(Duration::from_secs(60), "the node certificate", || {
        let p = ca_path.clone();
        async move {
            p.exists()
                .then_some(())
                .ok_or_else(|| "not yet".to_string())
        }
    })
    .await;
    let ca = std::fs::read(&ca_path).unwrap();
    let https = client(&ca, None);
    let url = format!("https://{}/readyz", node.api_addr);
    eventually(Duration::from_secs(60), "ready over https", || {
        let (https, url) = (https.clone(), url.clone());
        async move {
            let r = https.get(&url).send().await.map_err(|e| e.to_string())?;
            (r.status() == 200)
                .then_some(())
                .ok_or_else(|| r.status().to_string())
        }
    })
    .await;
    // The CLI with KEEL_CACERT pointing at what `keel cert ca --peer`
    // prints.
    let run = |args: &[&str], cacert: Option<&Path>| {
        let mut cmd = std::process::Command::new(keel_tests::keel_bin());
        cmd.args(args)
            .env("KEEL_ADDR", format!("https://{}", node.api_addr))
            .env("KEEL_TOKEN", TOKEN)
            .env_remove("KEEL_CACERT");
        if let Some(c) = cacert {
            cmd.env("KEEL_CACERT", c);
        }
        cmd.output().unwrap()
    };
    let out = run(&["cert", "ca", "--peer"], Some(&ca_path));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(printed.contains("# signing, sha256 "), "{printed}");
    let pinned = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pinned.path(), &printed).unwrap();
    let out = run(&["status"], Some(pinned.path()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the pin the CLI refuses the server.
    let out = run(&["status"], None);
    assert!(!out.status.success(), "the CLI trusted an unpinned server");
    let (_, text) = openssl(&[
        "s_client",
        "-connect",
        &node.api_addr,
        "-CAfile",
        &ca_path.display().to_string(),
        "-verify_return_error",
    ]);
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_down_longer_than_its_certificate_lives_enrols_again() {
    let mut cluster = Cluster::builder(3)
        .arg("--node-cert-ttl")
        .arg("12s")
        .start()
        .await;
    let leader = cluster.leader().await;
    let down = (1..=3).find(|id| *id != leader).unwrap();
    cluster.node_mut(down).signal(libc::SIGTERM);
    let code = cluster
        .node_mut(down)
        .wait_exit(Duration::from_secs(40))
        .await;
    assert_eq!(code, Some(0));
    let pem = cluster.node(down).data_dir.join("peer/node.pem");
    let (_, end) = openssl(&[
        "x509",
        "-noout",
        "-enddate",
        "-in",
        &pem.display().to_string(),
    ]);
    let lease = cluster
        .api(leader)
        .post_expect(
            "/v1/leases",
            &json!({"ttl": 600, "name": "while-down"}),
            201,
        )
        .await;
    // Restart only once the certificate it stopped with has expired
    // (`openssl x509 -checkend 0` fails from then on).
    eventually(
        Duration::from_secs(30),
        "the stopped node's certificate expiring",
        || {
            let pem = pem.display().to_string();
            async move {
                let (valid, _) = openssl(&["x509", "-noout", "-checkend", "0", "-in", &pem]);
                (!valid)
                    .then_some(())
                    .ok_or_else(|| "still valid".to_string())
            }
        },
    )
    .await;
    cluster.restart(down);
    cluster.wait_ready(down, Duration::from_secs(60)).await;
    assert!(
        cluster
            .node(down)
            .log()
            .contains("the stored node certificate has expired; enrolling again"),
        "{end}: {}",
        cluster.node(down).log_tail(30)
    );
    let id = lease["id"].as_str().unwrap();
    let seen = cluster
        .api(down)
        .get_ok(&format!("/v1/leases/{id}?consistency=local"))
        .await;
    assert_eq!(seen["name"], "while-down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_ran_without_mutual_tls_switches_to_it_with_a_full_restart() {
    let mut cluster = Cluster::builder(3)
        .arg("--peer-auth")
        .arg("secret")
        .start()
        .await;
    let leader = cluster.leader().await;
    let lease = cluster
        .api(leader)
        .post_expect(
            "/v1/leases",
            &json!({"ttl": 600, "name": "before-mtls"}),
            201,
        )
        .await;
    let cluster_id = cluster.api(1).get_ok("/v1/cluster").await["cluster_id"].clone();
    for id in 1..=3 {
        cluster.node_mut(id).signal(libc::SIGTERM);
    }
    for id in 1..=3 {
        let code = cluster
            .node_mut(id)
            .wait_exit(Duration::from_secs(40))
            .await;
        assert_eq!(code, Some(0));
        let node = cluster.node_mut(id);
        let at = node.args.iter().position(|a| a == "--peer-auth").unwrap();
        node.args.drain(at..at + 2);
    }
    for id in 1..=3 {
        cluster.spawn(id);
    }
    for id in 1..=3 {
        cluster.wait_ready(id, Duration::from_secs(60)).await;
        assert!(cluster.node(id).data_dir.join("peer/node.pem").exists());
    }
    let view = cluster.api(2).get_ok("/v1/cluster").await;
    assert_eq!(view["cluster_id"], cluster_id, "the cluster keeps its id");
    let id = lease["id"].as_str().unwrap();
    for n in 1..=3 {
        let seen = cluster
            .api(n)
            .get_ok(&format!("/v1/leases/{id}?consistency=local"))
            .await;
        assert_eq!(seen["name"], "before-mtls");
    }
    let leader = cluster.leader().await;
    cluster
        .api(leader)
        .post_expect("/v1/leases", &json!({"ttl": 60}), 201)
        .await;
}

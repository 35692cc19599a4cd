//! Encryption at rest and the key-share seal, on real processes.
//!
//! - A cluster without an auto-unseal key starts sealed: no Raft, not
//!   ready. `init` on one node makes the key shares; every node (the
//!   others fetch the seal configuration from a peer) is unsealed with any
//!   three of five, one share a call, and a wrong or repeated share is
//!   refused without losing the progress. A restarted node comes up sealed
//!   while the others serve, and catches up once unsealed. Sealing a node
//!   records its steps in order: managers joined, Raft stopped, keys
//!   dropped.
//! - Nothing a client wrote can be read from a data directory or a saved
//!   snapshot: no lease name, no account name and no byte of the CA's
//!   private key (imported from files, so the test knows it) in any file:
//!   RocksDB's WAL and tables, snapshot files, the audit log.

use std::path::Path;
use std::time::Duration;

use keel_tests::leases::keel_cli;
use keel_tests::pki::make_ca;
use keel_tests::snapshots::snapshot_cli;
use keel_tests::{Api, Cluster, TOKEN, eventually};
use serde_json::{Value, json};

async fn seal_state(api: &Api) -> Result<Value, String> {
    let r = api.anonymous().get("/v1/sys/seal-status").await?;
    if r.status != 200 {
        return Err(format!("seal-status {} {}", r.status, r.body));
    }
    Ok(r.body)
}

/// Gives `shares` one at a time, checking the progress (from `given`
/// shares already in) after each.
async fn unseal(api: &Api, given: usize, shares: &[&str]) {
    for (i, share) in shares.iter().enumerate() {
        let r = api
            .post_expect("/v1/sys/unseal", &json!({"share": share}), 200)
            .await;
        let last = i + 1 == shares.len();
        assert_eq!(r["sealed"], json!(!last), "{r}");
        if !last {
            assert_eq!(r["progress"], json!(given + i + 1), "{r}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_shares_unseal_every_node_and_a_restarted_node_comes_up_sealed() {
    let mut cluster = Cluster::builder(3).key_shares().no_wait().start().await;
    let apis: Vec<Api> = (1..=3).map(|id| cluster.api(id)).collect();
    for api in &apis {
        let state = eventually(Duration::from_secs(30), "seal-status answering", || {
            let api = api.clone();
            async move { seal_state(&api).await }
        })
        .await;
        assert_eq!(
            (&state["sealed"], &state["initialized"]),
            (&json!(true), &json!(false)),
            "{state}"
        );
        assert_eq!(api.anonymous().get("/readyz").await.unwrap().status, 503);
        let r = api.get("/v1/leases").await.unwrap();
        assert_eq!((r.status, r.code()), (503, "sealed"), "{:?}", r.body);
    }
    // No Raft runs on a sealed node, and a sealed node has no node
    // certificate yet (it gets one once unsealed): its Raft routes refuse a
    // caller without one, while the seal configuration a peer may ask for
    // is served.
    for id in 1..=3 {
        let peer = cluster.peer_api(id);
        let r = peer
            .send_raw("POST", "/raft/vote", Some(Vec::new()), &[])
            .await
            .unwrap();
        assert_eq!((r.status, r.code()), (401, "unauthorized"), "{:?}", r.body);
        assert!(
            !cluster.node(id).data_dir.join("peer/node.pem").exists(),
            "a sealed node holds no node certificate"
        );
        let r = peer
            .send_raw("POST", "/raft/seal-config", Some(Vec::new()), &[])
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let r = apis[0]
        .post("/v1/sys/unseal", &json!({"share": "ab".repeat(33)}))
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.code()),
        (409, "not_initialized"),
        "{:?}",
        r.body
    );

    let init = apis[0]
        .post_expect(
            "/v1/sys/init",
            &json!({"key_shares": 5, "key_threshold": 3}),
            200,
        )
        .await;
    let shares: Vec<String> = init["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(shares.len(), 5);
    // Once per cluster: a second init, on another node, is refused.
    let again = apis[1]
        .post(
            "/v1/sys/init",
            &json!({"key_shares": 1, "key_threshold": 1}),
        )
        .await
        .unwrap();
    assert_eq!(again.status, 409, "{:?}", again.body);

    // A wrong share and a repeated share keep the progress.
    apis[0]
        .post_expect("/v1/sys/unseal", &json!({"share": shares[0]}), 200)
        .await;
    for bad in [shares[0].clone(), "cd".repeat(33), "not a share".into()] {
        let r = apis[0]
            .post("/v1/sys/unseal", &json!({"share": bad}))
            .await
            .unwrap();
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert_eq!(seal_state(&apis[0]).await.unwrap()["progress"], json!(1));
    }
    unseal(&apis[0], 1, &[&shares[2], &shares[4]]).await;
    unseal(&apis[1], 0, &[&shares[1], &shares[2], &shares[3]]).await;
    unseal(&apis[2], 0, &[&shares[4], &shares[0], &shares[3]]).await;
    for id in 1..=3 {
        cluster.wait_ready(id, Duration::from_secs(60)).await;
    }
    let leader = cluster.leader().await;
    let lease = cluster
        .api(leader)
        .post_expect("/v1/leases", &json!({"ttl": "1h", "name": "before"}), 201)
        .await;
    assert!(lease["id"].is_string());

    // Seal a follower: its steps are recorded in order.
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let api = cluster.api(follower);
    let r = api.post_expect("/v1/sys/seal", &json!({}), 200).await;
    assert_eq!(r["sealed"], json!(true), "{r}");
    let events = api.get_ok("/v1/sys/events").await;
    let messages: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| m.starts_with("seal") || m.contains("sealed"))
        .collect();
    let order = [
        "seal: managers stopped and joined",
        "seal: managers and watchers stopped",
        "seal: raft stopped",
        "seal: keys dropped from memory",
        "sealed by an operator",
    ];
    let positions: Vec<Option<usize>> = order
        .iter()
        .map(|want| messages.iter().position(|m| m == want))
        .collect();
    assert!(
        positions.iter().all(Option::is_some) && positions.windows(2).all(|w| w[0] < w[1]),
        "seal steps out of order or missing: {messages:?}"
    );
    // Its node key went with the other keys: its peer listener now shows
    // a provisional certificate, not one from the peer CA.
    let peer_ca = cluster.node(leader).data_dir.join("peer/ca.pem");
    let (_, shown) = keel_tests::pki::openssl(&[
        "s_client",
        "-connect",
        &cluster.node(follower).peer_addr,
        "-CAfile",
        &peer_ca.display().to_string(),
    ]);
    assert!(
        shown.contains("provisional") && !shown.contains("Verify return code: 0 (ok)"),
        "{shown}"
    );

    // A restart comes up sealed (no key file), the others keep serving.
    cluster.node_mut(follower).signal(libc::SIGTERM);
    let code = cluster
        .node_mut(follower)
        .wait_exit(Duration::from_secs(40))
        .await;
    assert_eq!(code, Some(0), "{}", cluster.node(follower).log_tail(30));
    cluster.restart(follower);
    let state = eventually(
        Duration::from_secs(30),
        "the restarted node answering",
        || {
            let api = api.clone();
            async move { seal_state(&api).await }
        },
    )
    .await;
    assert_eq!(
        (&state["sealed"], &state["initialized"], &state["progress"]),
        (&json!(true), &json!(true), &json!(0)),
        "{state}"
    );
    let written = cluster
        .api(leader)
        .post_expect(
            "/v1/leases",
            &json!({"ttl": "1h", "name": "while-sealed"}),
            201,
        )
        .await;
    unseal(&api, 0, &[&shares[3], &shares[1], &shares[0]]).await;
    cluster.wait_ready(follower, Duration::from_secs(60)).await;
    let id = written["id"].as_str().unwrap();
    let seen = eventually(
        Duration::from_secs(30),
        "the lease on the unsealed node",
        || {
            let api = api.clone();
            let path = format!("/v1/leases/{id}?consistency=local");
            async move {
                let r = api.get(&path).await?;
                if r.status == 200 {
                    Ok(r.body)
                } else {
                    Err(format!("{} {}", r.status, r.body))
                }
            }
        },
    )
    .await;
    assert_eq!(seen["name"], "while-sealed");
}

/// Every file under `dir`, recursively.
fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_name_and_no_byte_of_the_ca_key_is_readable_in_a_data_directory() {
    let pki = tempfile::tempdir().unwrap();
    let p = |n: &str| pki.path().join(n).display().to_string();
    make_ca(pki.path(), "ca", true);
    let (ok, der) = {
        let out = std::process::Command::new("openssl")
            .args(["pkey", "-in", &p("ca.key"), "-outform", "DER"])
            .output()
            .unwrap();
        (out.status.success(), out.stdout)
    };
    assert!(ok && der.len() > 60);
    let key_pem = std::fs::read_to_string(pki.path().join("ca.key")).unwrap();
    let pem_line = key_pem.lines().nth(1).unwrap().to_string();
    let mut cluster = Cluster::builder(3)
        .arg("--pki-ca-cert-file")
        .arg(&p("ca.pem"))
        .arg("--pki-ca-key-file")
        .arg(&p("ca.key"))
        .arg("--snapshot-threshold")
        .arg("20")
        .start()
        .await;
    let leader = cluster.leader().await;
    let api = cluster.api(leader);
    api.post_expect(
        "/v1/accounts",
        &json!({"name": "acct-plaintext-probe"}),
        201,
    )
    .await;
    for i in 0..60 {
        api.post_expect(
            "/v1/leases",
            &json!({"ttl": "1h", "name": format!("lease-plaintext-probe-{i}"), "account": "acct-plaintext-probe"}),
            201,
        )
        .await;
    }
    api.post_expect(
        "/v1/pki/issue",
        &json!({"common_name": "svc", "ttl": "24h"}),
        201,
    )
    .await;
    // A saved snapshot, as an operator would keep it outside the cluster.
    let saved = pki.path().join("saved.snap");
    snapshot_cli(
        &cluster.node(leader).api_addr,
        TOKEN,
        &["save", &saved.display().to_string()],
    )
    .await
    .ok();
    for id in 1..=3 {
        cluster.node_mut(id).signal(libc::SIGTERM);
    }
    for id in 1..=3 {
        let code = cluster
            .node_mut(id)
            .wait_exit(Duration::from_secs(40))
            .await;
        assert_eq!(code, Some(0), "{}", cluster.node(id).log_tail(20));
    }
    let needles: [(&str, &[u8]); 5] = [
        ("a lease name", b"lease-plaintext-probe"),
        ("an account name", b"acct-plaintext-probe"),
        ("the CA key (PEM)", pem_line.as_bytes()),
        ("the CA key (DER)", &der[der.len() - 40..]),
        ("a PEM private key header", b"PRIVATE KEY"),
    ];
    let mut scanned = (0usize, 0usize);
    let mut snapshots = 0;
    for id in 0..=3 {
        let mut all = Vec::new();
        if id == 0 {
            all.push(saved.clone());
        } else {
            files(&cluster.dir().join(format!("node-{id}")), &mut all);
        }
        for path in all {
            let bytes = std::fs::read(&path).unwrap();
            scanned = (scanned.0 + 1, scanned.1 + bytes.len());
            if path.extension().is_some_and(|e| e == "ksnp") {
                snapshots += 1;
            }
            for (what, needle) in &needles {
                assert!(
                    !contains(&bytes, needle),
                    "{what} is readable in {}",
                    path.display()
                );
            }
        }
    }
    eprintln!(
        "scanned {} files, {} bytes, {snapshots} snapshot files",
        scanned.0, scanned.1
    );
    assert!(
        snapshots >= 1,
        "no snapshot was built; the scan would miss them"
    );
}

/// The operator's commands: `keel operator init` prints the shares once,
/// `keel operator unseal SHARE` takes one a call and reports the progress,
/// `keel status` on the sealed node says so, and `rotate-key` answers once
/// the node is unsealed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_initializes_unseals_and_rotates() {
    let cluster = Cluster::builder(1).key_shares().no_wait().start().await;
    let api = cluster.api(1);
    eventually(Duration::from_secs(30), "seal-status answering", || {
        let api = api.clone();
        async move { seal_state(&api).await }
    })
    .await;
    let addr = cluster.node(1).api_addr.clone();
    let status = keel_cli(&addr, TOKEN, &["status"]).await.ok();
    assert!(status.stdout.contains("sealed   true"), "{}", status.stdout);
    let init = keel_cli(
        &addr,
        TOKEN,
        &[
            "operator",
            "init",
            "--key-shares",
            "3",
            "--key-threshold",
            "2",
        ],
    )
    .await
    .ok();
    let shares: Vec<String> = init
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("key share "))
        .filter_map(|l| l.split_once(": ").map(|(_, s)| s.trim().to_string()))
        .collect();
    assert_eq!(shares.len(), 3, "{}", init.stdout);
    let first = keel_cli(&addr, TOKEN, &["operator", "unseal", &shares[2]])
        .await
        .ok();
    assert!(
        first.stdout.contains("sealed: true  progress: 1/2"),
        "{}",
        first.stdout
    );
    let wrong = keel_cli(&addr, TOKEN, &["operator", "unseal", &"ef".repeat(33)]).await;
    assert_eq!(wrong.code, Some(1), "{wrong:?}");
    let second = keel_cli(&addr, TOKEN, &["operator", "unseal", &shares[0]])
        .await
        .ok();
    assert!(second.stdout.contains("sealed: false"), "{}", second.stdout);
    cluster.wait_ready(1, Duration::from_secs(60)).await;
    let rotated = keel_cli(&addr, TOKEN, &["operator", "rotate-key"])
        .await
        .ok();
    assert!(
        rotated.stdout.contains("new writes use key 2 (2 keys)"),
        "{}",
        rotated.stdout
    );
    api.post_expect(
        "/v1/leases",
        &json!({"ttl": "1h", "name": "after-rotation"}),
        201,
    )
    .await;
}

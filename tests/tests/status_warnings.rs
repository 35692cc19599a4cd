//! `keel status` ends with what an operator must act on: a member whose
//! clock is off (libfaketime, as in `clock_skew`), a sealed member (asked
//! of each member), leases past their deadline that nobody expires
//! (expiry debt, with both followers sealed), and certificates about to
//! expire. And it says `warnings none` when all is well.
//!
//! Needs libfaketime (`apt-get install faketime`).

use std::time::Duration;

use keel_tests::leases::{keel_cli, now_ms, wait_until};
use keel_tests::{Cluster, TOKEN, eventually};
use serde_json::{Value, json};

const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The codes and messages of `keel status --json`'s warnings.
async fn warnings(addr: &str) -> Result<Vec<(String, String)>, String> {
    let run = keel_cli(addr, TOKEN, &["status", "--json"]).await;
    if run.code != Some(0) {
        return Err(format!("keel status failed: {run:?}"));
    }
    let view: Value = serde_json::from_str(&run.stdout).map_err(|e| e.to_string())?;
    Ok(view["warnings"]
        .as_array()
        .ok_or("no warnings array")?
        .iter()
        .map(|w| {
            (
                w["code"].as_str().unwrap_or("").to_string(),
                w["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect())
}

fn has(ws: &[(String, String)], code: &str, mentions: &str) -> bool {
    ws.iter().any(|(c, m)| c == code && m.contains(mentions))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_warns_of_a_skewed_clock_and_a_sealed_member() {
    assert!(
        std::path::Path::new(FAKETIME_LIB).is_file(),
        "{FAKETIME_LIB} is missing: install libfaketime (apt-get install faketime)"
    );
    let mut cluster = Cluster::builder(3).no_spawn().start().await;
    cluster.node_mut(3).env = [
        ("LD_PRELOAD", FAKETIME_LIB),
        ("FAKETIME", "+30s"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for id in 1..=3 {
        cluster.spawn(id);
    }
    cluster.wait_ready(1, Duration::from_secs(60)).await;
    cluster.wait_ready(2, Duration::from_secs(60)).await;
    let addr = cluster.node(1).api_addr.clone();
    let sealed = cluster
        .api(2)
        .post("/v1/sys/seal", &json!({}))
        .await
        .unwrap();
    assert_eq!(sealed.status, 200, "{sealed:?}");

    let seen = eventually(Duration::from_secs(30), "both warnings", || async {
        let ws = warnings(&addr).await?;
        if has(&ws, "clock_offset", "member 3") && has(&ws, "sealed", "member 2") {
            Ok(ws)
        } else {
            Err(format!("{ws:?}"))
        }
    })
    .await;
    assert!(!has(&seen, "sealed", "member 1"), "{seen:?}");
    let table = keel_cli(&addr, TOKEN, &["status"]).await.ok();
    assert!(
        table.stdout.contains("! sealed: member 2") && table.stdout.contains("! clock_offset"),
        "{}",
        table.stdout
    );

    // Unsealed, it stops being reported.
    let unsealed = cluster
        .api(2)
        .post("/v1/sys/unseal", &json!({}))
        .await
        .unwrap();
    assert_eq!(unsealed.status, 200, "{unsealed:?}");
    let ws = warnings(&addr).await.unwrap();
    assert!(!ws.iter().any(|(c, _)| c == "sealed"), "{ws:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_warns_of_expiry_debt_and_expiring_certificates() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let api = cluster.api(leader);
    let addr = cluster.node(leader).api_addr.clone();
    let quiet = keel_cli(&addr, TOKEN, &["status"]).await.ok();
    assert!(quiet.stdout.contains("warnings none"), "{}", quiet.stdout);

    api.post_expect(
        "/v1/pki/issue",
        &json!({"common_name": "soon.example.test", "ttl": "1h"}),
        201,
    )
    .await;
    let lease = api
        .post_expect("/v1/leases", &json!({"ttl": "1s", "name": "due"}), 201)
        .await;
    // Both followers sealed: the leader's expirations cannot commit, so the
    // lease stays past its deadline.
    let followers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    for id in &followers {
        let sealed = cluster
            .api(*id)
            .post("/v1/sys/seal", &json!({}))
            .await
            .unwrap();
        assert_eq!(sealed.status, 200, "{sealed:?}");
    }
    // A sealed node's own status says so and how to unseal it.
    let own = keel_cli(&cluster.node(followers[0]).api_addr, TOKEN, &["status"])
        .await
        .ok();
    assert!(own.stdout.contains("sealed   true"), "{}", own.stdout);
    wait_until(now_ms() + 6_500).await;
    let ws = warnings(&addr).await.unwrap();
    assert!(has(&ws, "expiry_debt", "1 leases"), "{ws:?} ({lease})");
    assert!(has(&ws, "certificates_expiring", "1 active"), "{ws:?}");
    for id in &followers {
        assert!(has(&ws, "sealed", &format!("member {id}")), "{ws:?}");
    }

    // Unsealed, the manager expires it and the debt is gone.
    for id in &followers {
        let unsealed = cluster
            .api(*id)
            .post("/v1/sys/unseal", &json!({}))
            .await
            .unwrap();
        assert_eq!(unsealed.status, 200, "{unsealed:?}");
    }
    eventually(Duration::from_secs(30), "the debt paid", || async {
        let ws = warnings(&addr).await?;
        if ws.iter().any(|(c, _)| c == "expiry_debt" || c == "sealed") {
            Err(format!("{ws:?}"))
        } else {
            Ok(())
        }
    })
    .await;
}

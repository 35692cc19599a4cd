//! A leader failover while certificates are issued and renewed: retried
//! writes carry idempotency keys, and no serial appears twice nor any
//! certificate is recorded twice, on any node.

use std::collections::BTreeSet;
use std::time::Duration;

use keel_tests::pki::wait_for_ca;
use keel_tests::{Cluster, eventually};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_during_issue_and_renew_records_nothing_twice() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let survivor = (1..=3).find(|id| *id != leader).unwrap();
    let api = cluster.api(survivor);
    wait_for_ca(&api).await;
    let base = api
        .post_expect(
            "/v1/pki/issue",
            &json!({"common_name": "base", "ttl": "1h"}),
            201,
        )
        .await;
    let base_serial = base["serial"].as_str().unwrap().to_string();

    // Writers keep issuing and renewing with idempotency keys, retrying each
    // key until it is acknowledged, while the leader is killed.
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let api = api.clone();
        let base_serial = base_serial.clone();
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..40 {
                let (path, body) = if i % 2 == 0 {
                    (
                        "/v1/pki/issue".to_string(),
                        json!({"common_name": format!("c{i}"), "ttl": "1h"}),
                    )
                } else {
                    (format!("/v1/pki/certs/{base_serial}/renew"), json!({}))
                };
                let key = format!("failover-{i}");
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                loop {
                    let r = api
                        .send_raw(
                            "POST",
                            &path,
                            Some(body.to_string().into_bytes()),
                            &[("idempotency-key", &key)],
                        )
                        .await;
                    match r {
                        Ok(r) if r.status == 201 => {
                            acked.push(r.body["serial"].as_str().unwrap().to_string());
                            progress.store(acked.len(), std::sync::atomic::Ordering::SeqCst);
                            break;
                        }
                        // The first attempt applied but its answer was
                        // lost: the certificate exists, its key was made
                        // for that attempt only and is never re-sent.
                        Ok(r) if r.status == 409 && r.code() == "private_key_unavailable" => {
                            let message = r.body["error"]["message"].as_str().unwrap_or("");
                            let serial = message.split_whitespace().nth(1).unwrap_or("");
                            acked.push(serial.to_string());
                            progress.store(acked.len(), std::sync::atomic::Ordering::SeqCst);
                            break;
                        }
                        Ok(r) => assert!(
                            r.status == 503,
                            "unexpected answer {} {:?}",
                            r.status,
                            r.body
                        ),
                        Err(_) => {}
                    }
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "key {key} never acknowledged"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            acked
        })
    };
    let seen = progress.clone();
    eventually(
        Duration::from_secs(20),
        "a few writes acknowledged before the kill",
        || {
            let seen = seen.clone();
            async move {
                let n = seen.load(std::sync::atomic::Ordering::SeqCst);
                if n >= 5 {
                    Ok(())
                } else {
                    Err(format!("{n} acknowledged"))
                }
            }
        },
    )
    .await;
    cluster.kill9(leader);
    let acked = writer.await.expect("writer");
    assert_eq!(acked.len(), 40);
    let unique: BTreeSet<&String> = acked.iter().collect();
    assert_eq!(
        unique.len(),
        40,
        "an idempotency key produced two certificates: {acked:?}"
    );
    cluster.restart(leader);
    cluster.wait_ready(leader, Duration::from_secs(60)).await;
    for id in 1..=3 {
        let list = cluster
            .api(id)
            .get_ok("/v1/pki/certs?limit=1000&consistency=linearizable")
            .await;
        let serials: Vec<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["serial"].as_str().unwrap())
            .collect();
        let distinct: BTreeSet<&&str> = serials.iter().collect();
        assert_eq!(
            distinct.len(),
            serials.len(),
            "duplicate serial on node {id}"
        );
        // Exactly the base certificate plus one per acknowledged key.
        assert_eq!(
            serials.len(),
            41,
            "node {id} holds {} certificates",
            serials.len()
        );
        for s in &acked {
            assert!(
                serials.contains(&s.as_str()),
                "acknowledged {s} missing on node {id}"
            );
        }
    }
}

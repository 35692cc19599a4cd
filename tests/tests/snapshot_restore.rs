//! `keel operator snapshot restore` on running clusters of real processes:
//! every node ends with the restored state (each node's own view is read),
//! writes acknowledged after the restore survive a restart, leases whose
//! deadline passed while the snapshot sat on disk expire promptly, and an
//! account that expired meanwhile is expired (its lease suspended) once
//! restored.

use std::time::{Duration, Instant};

use keel_tests::leases::{format_time, node_apis, now_ms, wait_until};
use keel_tests::snapshots::{local_lease_names, local_leases, snapshot_cli};
use keel_tests::{Api, Cluster, TOKEN, eventually};
use serde_json::{Value, json};

async fn grant(api: &Api, body: Value) -> String {
    api.post_expect("/v1/leases", &body, 201).await["id"]
        .as_str()
        .expect("lease id")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_reaches_every_node_and_later_writes_survive() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = if leader == 1 { 2 } else { 1 };
    let apis = node_apis(&cluster, 3);
    let mut saved_ids = Vec::new();
    for i in 0..10 {
        saved_ids.push(
            grant(
                &apis[i % 3],
                json!({"ttl": 600, "name": format!("x/{i:02}")}),
            )
            .await,
        );
    }
    let file = cluster.dir().join("three.snap").display().to_string();
    let addr = cluster.node(follower).api_addr.clone();
    snapshot_cli(&addr, TOKEN, &["save", &file]).await.ok();
    // After the snapshot: more leases, and some of the saved ones revoked.
    for i in 0..5 {
        grant(
            &apis[i % 3],
            json!({"ttl": 600, "name": format!("y/{i:02}")}),
        )
        .await;
    }
    for id in &saved_ids[..3] {
        let r = apis[0].delete(&format!("/v1/leases/{id}")).await.unwrap();
        assert_eq!(r.status, 204, "{r:?}");
    }

    let restored = snapshot_cli(&addr, TOKEN, &["restore", &file]).await.ok();
    assert!(
        restored.stderr.contains("uploading") && restored.stderr.contains("restored"),
        "{}",
        restored.stderr
    );
    let expected: Vec<String> = (0..10).map(|i| format!("x/{i:02}")).collect();
    let mut views = Vec::new();
    for api in &apis {
        let names = eventually(Duration::from_secs(20), "the restored leases", || async {
            let names = local_lease_names(api).await?;
            if names == expected {
                Ok(names)
            } else {
                Err(format!("{} holds {names:?}", api.base))
            }
        })
        .await;
        assert_eq!(names, expected);
        views.push(local_leases(api).await.unwrap());
    }
    assert!(views.iter().all(|v| *v == views[0]), "{views:#?}");

    // A write acknowledged after the restore survives a follower's crash
    // and restart (it replays the restore and the write from its log).
    let z = grant(
        &apis[leader as usize - 1],
        json!({"ttl": 600, "name": "z/after"}),
    )
    .await;
    cluster.kill9(follower);
    cluster.restart(follower);
    cluster.wait_ready(follower, Duration::from_secs(60)).await;
    let mut with_z = expected.clone();
    with_z.push("z/after".into());
    let api = &apis[follower as usize - 1];
    eventually(
        Duration::from_secs(20),
        "the write after the restore",
        || async {
            let names = local_lease_names(api).await?;
            if names == with_z {
                Ok(())
            } else {
                Err(format!("{names:?}"))
            }
        },
    )
    .await;
    assert_eq!(
        api.get_ok(&format!("/v1/leases/{z}?consistency=local"))
            .await["name"],
        "z/after"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_fell_due_while_the_snapshot_sat_on_disk_is_processed_after_restore() {
    let cluster = Cluster::start(1).await;
    let api = cluster.api(1);
    let addr = cluster.node(1).api_addr.clone();
    let expiry = now_ms() + 3_000;
    api.post_expect(
        "/v1/accounts",
        &json!({"name": "acme", "expires_at": format_time(expiry)}),
        201,
    )
    .await;
    let owned = grant(
        &api,
        json!({"ttl": 600, "name": "acme/long", "account": "acme"}),
    )
    .await;
    let mut short = Vec::new();
    for i in 0..5 {
        short.push(grant(&api, json!({"ttl": "2s", "name": format!("short/{i}")})).await);
    }
    let kept = grant(&api, json!({"ttl": 600, "name": "kept"})).await;
    let file = cluster.dir().join("due.snap").display().to_string();
    snapshot_cli(&addr, TOKEN, &["save", &file]).await.ok();
    let inspected = snapshot_cli(&addr, TOKEN, &["inspect", &file, "--json"])
        .await
        .ok()
        .json();
    assert_eq!(inspected["leases"], 7);
    assert_eq!(inspected["accounts"], 1);

    // The snapshot sits on disk past every deadline in it.
    wait_until(expiry + 500).await;
    let restore_started = Instant::now();
    snapshot_cli(&addr, TOKEN, &["restore", &file]).await.ok();
    let restored_in = restore_started.elapsed();
    for id in &short {
        eventually(Duration::from_secs(5), "a due lease to expire", || async {
            let r = api.get(&format!("/v1/leases/{id}")).await?;
            if r.status == 404 {
                Ok(())
            } else {
                Err(format!("{} {}", r.status, r.body))
            }
        })
        .await;
    }
    let expired_in = restore_started.elapsed() - restored_in;
    assert!(
        expired_in < Duration::from_secs(3),
        "due leases took {expired_in:?} to expire after the restore"
    );
    let account = api.get_ok("/v1/accounts/acme").await;
    assert_eq!(account["state"], "expired", "{account}");
    assert_eq!(
        api.get_ok(&format!("/v1/leases/{owned}")).await["state"],
        "suspended"
    );
    assert_eq!(
        api.get_ok(&format!("/v1/leases/{kept}")).await["state"],
        "active"
    );
    // Renewing the account brings its lease back (lesson 4), restore or not.
    let renewed = api
        .patch(
            "/v1/accounts/acme",
            &json!({"expires_at": format_time(now_ms() + 600_000)}),
        )
        .await
        .unwrap();
    assert_eq!(renewed.status, 200, "{renewed:?}");
    assert_eq!(
        api.get_ok(&format!("/v1/leases/{owned}")).await["state"],
        "active"
    );
}

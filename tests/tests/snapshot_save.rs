//! Online snapshots with the real binary: `keel operator snapshot save`
//! while clients keep writing, `inspect` with no server, and the files a
//! restore must refuse (truncated, corrupt, from another cluster without
//! `--force`) changing nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_tests::leases::{cli_field, node_apis};
use keel_tests::snapshots::{corrupt_copy, local_lease_names, snapshot_cli, truncated_copy};
use keel_tests::{Api, Cluster, TOKEN, eventually};
use serde_json::json;

async fn grant_named(api: &Api, prefix: &str, n: usize) {
    for i in 0..n {
        api.post_expect(
            "/v1/leases",
            &json!({"ttl": 600, "name": format!("{prefix}/{i:03}")}),
            201,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_saved_under_write_load_verifies_and_counts_what_was_acknowledged() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let apis = node_apis(&cluster, 3);
    let acked = Arc::new(Mutex::new(0usize));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = tokio::task::JoinSet::new();
    for (w, api) in apis.iter().enumerate() {
        let (api, acked, stop) = (api.clone(), acked.clone(), stop.clone());
        writers.spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let body = json!({"ttl": 600, "name": format!("load/{w}/{i}")});
                let r = api.post("/v1/leases", &body).await.expect("grant answered");
                assert_eq!(r.status, 201, "{r:?}");
                *acked.lock().unwrap() += 1;
                i += 1;
            }
        });
    }
    eventually(Duration::from_secs(30), "writes flowing", || {
        let n = *acked.lock().unwrap();
        async move {
            if n >= 60 {
                Ok(())
            } else {
                Err(format!("{n} acked"))
            }
        }
    })
    .await;
    let file = cluster.dir().join("under-load.snap");
    let file_arg = file.display().to_string();
    let before = *acked.lock().unwrap();
    let follower = if leader == 1 { 2 } else { 1 };
    let saved = snapshot_cli(
        &cluster.node(follower).api_addr,
        TOKEN,
        &["save", &file_arg],
    )
    .await
    .ok();
    let after = *acked.lock().unwrap();
    // The writers kept going through the save and after it, every grant
    // acknowledged (a writer panics on any other answer).
    eventually(Duration::from_secs(30), "writes after the save", || {
        let n = *acked.lock().unwrap();
        async move {
            if n >= after + 30 {
                Ok(())
            } else {
                Err(format!("{n} acked"))
            }
        }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    while let Some(w) = writers.join_next().await {
        w.expect("writer");
    }
    // Not a terminal: plain progress lines, on stderr; the header on stdout.
    assert!(
        saved.stderr.contains("downloading") && saved.stderr.contains("saved"),
        "{}",
        saved.stderr
    );
    assert!(saved.stdout.contains("ok (sha-256)"), "{}", saved.stdout);

    // Inspect needs no server: point it at nothing at all.
    let inspected = snapshot_cli("127.0.0.1:9", TOKEN, &["inspect", &file_arg, "--json"])
        .await
        .ok()
        .json();
    let leases = inspected["leases"].as_u64().unwrap() as usize;
    assert!(
        (before..=after).contains(&leases),
        "{before} acknowledged before the save, {after} when it ended, {leases} in it"
    );
    assert_eq!(inspected["checksum"], "ok (sha-256)");
    assert_eq!(inspected["encryption"], "cluster_key");
    let cluster_view = apis[0].get_ok("/v1/cluster").await;
    assert_eq!(inspected["cluster_id"], cluster_view["cluster_id"]);
    let index = inspected["index"].as_u64().unwrap();
    assert!(index > leases as u64, "index {index}");
    assert!(index <= cluster_view["commit_index"].as_u64().unwrap());
    assert_eq!(cli_field(&saved.stdout, "index"), index.to_string());
    assert_eq!(cli_field(&saved.stdout, "leases"), leases.to_string());
    // No temporary file is left beside the snapshot.
    let leftovers: Vec<_> = std::fs::read_dir(cluster.dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".keel-snapshot-")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_or_corrupt_files_are_refused_and_change_nothing() {
    let cluster = Cluster::start(1).await;
    let api = cluster.api(1);
    let addr = cluster.node(1).api_addr.clone();
    grant_named(&api, "kept", 10).await;
    let file = cluster.dir().join("good.snap");
    snapshot_cli(&addr, TOKEN, &["save", &file.display().to_string()])
        .await
        .ok();
    grant_named(&api, "after", 5).await;
    let before = local_lease_names(&api).await.unwrap();
    assert_eq!(before.len(), 15);

    let len = std::fs::metadata(&file).unwrap().len() as usize;
    let truncated = cluster.dir().join("truncated.snap");
    truncated_copy(&file, &truncated, len / 2);
    let corrupt = cluster.dir().join("corrupt.snap");
    corrupt_copy(&file, &corrupt, len - 100);
    for (bad, why) in [(&truncated, "truncated"), (&corrupt, "checksum mismatch")] {
        let path = bad.display().to_string();
        let inspect = snapshot_cli(&addr, TOKEN, &["inspect", &path]).await;
        assert_eq!(inspect.code, Some(1), "{inspect:?}");
        assert!(inspect.stderr.contains(why), "{inspect:?}");
        let restore = snapshot_cli(&addr, TOKEN, &["restore", &path, "--force"]).await;
        assert_eq!(restore.code, Some(1), "{restore:?}");
        assert!(restore.stderr.contains(why), "{restore:?}");
        // The server refuses it too, when a client skips the local check.
        let raw = api
            .send_raw(
                "POST",
                "/v1/sys/snapshot/restore?force=true",
                Some(std::fs::read(bad).unwrap()),
                &[("content-type", "application/octet-stream")],
            )
            .await
            .unwrap();
        assert_eq!((raw.status, raw.code()), (400, "bad_request"), "{raw:?}");
        assert!(raw.text.contains(why), "{raw:?}");
    }
    assert_eq!(local_lease_names(&api).await.unwrap(), before);
    // The node still takes writes.
    grant_named(&api, "later", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_clusters_snapshot_needs_force_and_the_cluster_keeps_its_id() {
    let source = Cluster::start(1).await;
    let target = Cluster::start(1).await;
    grant_named(&source.api(1), "source", 8).await;
    let file = source.dir().join("source.snap");
    let path = file.display().to_string();
    snapshot_cli(&source.node(1).api_addr, TOKEN, &["save", &path])
        .await
        .ok();
    let target_api = target.api(1);
    let target_addr = target.node(1).api_addr.clone();
    grant_named(&target_api, "target", 3).await;
    let target_id = target_api.get_ok("/v1/cluster").await["cluster_id"].clone();
    assert_ne!(
        target_id,
        source.api(1).get_ok("/v1/cluster").await["cluster_id"]
    );

    let refused = snapshot_cli(&target_addr, TOKEN, &["restore", &path]).await;
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(refused.stderr.contains("cluster_mismatch"), "{refused:?}");
    let names = local_lease_names(&target_api).await.unwrap();
    assert_eq!(names, ["target/000", "target/001", "target/002"]);

    let restored = snapshot_cli(
        &target_addr,
        TOKEN,
        &["restore", &path, "--force", "--json"],
    )
    .await
    .ok()
    .json();
    assert_eq!(restored["restored"], true);
    assert_eq!(restored["counts"]["leases"], 8);
    let names = local_lease_names(&target_api).await.unwrap();
    let expected: Vec<String> = (0..8).map(|i| format!("source/{i:03}")).collect();
    assert_eq!(names, expected);
    assert_eq!(
        target_api.get_ok("/v1/cluster").await["cluster_id"],
        target_id
    );
    // Restoring a file of its own cluster needs no force: save the target
    // now and restore that.
    let own = target.dir().join("own.snap").display().to_string();
    snapshot_cli(&target_addr, TOKEN, &["save", &own])
        .await
        .ok();
    snapshot_cli(&target_addr, TOKEN, &["restore", &own])
        .await
        .ok();
    assert_eq!(local_lease_names(&target_api).await.unwrap(), expected);
}

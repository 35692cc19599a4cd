//! A three-node cluster forms from nothing on loopback: every node ready,
//! one leader, the same membership everywhere.

use std::time::Duration;

use keel_tests::{Cluster, eventually};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_form_a_cluster_from_nothing() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    assert!((1..=3).contains(&leader));

    let mut views = Vec::new();
    for id in 1..=3 {
        let ready = cluster.api(id).get("/readyz").await.unwrap();
        assert_eq!(ready.status, 200, "node {id} /readyz");
        views.push(cluster.api(id).get_ok("/v1/cluster").await);
    }
    let members = |v: &Value| -> Vec<(u64, String)> {
        v["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["id"].as_u64().unwrap(),
                    m["role"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let expected: Vec<(u64, String)> = (1..=3).map(|id| (id, "voter".to_string())).collect();
    for v in &views {
        assert_eq!(members(v), expected);
        assert_eq!(v["leader"].as_u64(), Some(leader));
        assert_eq!(v["cluster_id"], views[0]["cluster_id"]);
        assert!(v["cluster_id"].is_string());
    }
    // Exactly one node says it leads.
    let leaders = views
        .iter()
        .flat_map(|v| v["members"].as_array().unwrap().iter())
        .filter(|m| m["state"] == "leader")
        .map(|m| m["id"].as_u64().unwrap())
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(leaders.len(), 1);

    // The leader sees every follower replicating.
    let leader_api = cluster.api(leader);
    eventually(Duration::from_secs(10), "followers replicating", || {
        let api = leader_api.clone();
        async move {
            let v = api.get("/v1/cluster").await?.body;
            let lagging: Vec<_> = v["members"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["lag"].as_u64() != Some(0))
                .cloned()
                .collect();
            if lagging.is_empty() {
                Ok(())
            } else {
                Err(format!("{lagging:?}"))
            }
        }
    })
    .await;
}

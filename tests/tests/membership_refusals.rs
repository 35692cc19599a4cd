//! Adding a member at an address where the wrong node answers is refused
//! with a clear 409 and leaves the membership as it was: the node's own
//! address under another id, another member's address, a node of another
//! cluster. Re-adding a member exactly as it is changes nothing.

use keel_tests::{Api, Cluster};
use serde_json::{Value, json};

fn members(view: &Value) -> Vec<Value> {
    view["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| json!([m["id"], m["role"], m["api_addr"], m["peer_addr"]]))
        .collect()
}

async fn refused(api: &Api, body: Value, reason: &str) {
    let r = api.post("/v1/cluster/members", &body).await.unwrap();
    assert_eq!(
        (r.status, r.code()),
        (409, "conflict"),
        "{body}: {}",
        r.text
    );
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(reason),
        "{body}: `{reason}` not in `{message}`"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adds_at_a_wrong_address_are_refused_and_change_nothing() {
    let mut cluster = Cluster::start(3).await;
    let other = Cluster::start(1).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let before = members(&cluster.api(leader).get_ok("/v1/cluster").await);
    let node = |id: u64| {
        let n = cluster.node(id);
        (n.api_addr.clone(), n.peer_addr.clone())
    };

    for via in [leader, follower] {
        let api = cluster.api(via);
        // The leader's own address, under a new id.
        let (api_addr, peer_addr) = node(leader);
        refused(
            &api,
            json!({"id": 7, "api_addr": api_addr, "peer_addr": peer_addr}),
            &format!("is node {leader}, not node 7"),
        )
        .await;
        // Another member's address, under a member's id.
        let (api_addr, peer_addr) = node(follower);
        refused(
            &api,
            json!({"id": leader, "api_addr": api_addr, "peer_addr": peer_addr}),
            &format!("is node {follower}, not node {leader}"),
        )
        .await;
        // A node of another cluster, under its own id.
        let o = other.node(1);
        refused(
            &api,
            json!({"id": 1, "api_addr": o.api_addr, "peer_addr": o.peer_addr}),
            "another cluster",
        )
        .await;
    }
    // Re-adding a voter exactly as it is: nothing to do.
    let (api_addr, peer_addr) = node(follower);
    let r = cluster
        .api(leader)
        .post(
            "/v1/cluster/members",
            &json!({"id": follower, "api_addr": api_addr, "peer_addr": peer_addr}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    for id in 1..=3 {
        let seen = members(&cluster.api(id).get_ok("/v1/cluster").await);
        assert_eq!(seen, before, "node {id}: the membership changed");
    }
    let o = members(&other.api(1).get_ok("/v1/cluster").await);
    assert_eq!(o.len(), 1, "the other cluster changed: {o:?}");
}

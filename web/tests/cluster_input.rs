//! Bad values for a new cluster member, in process: an address that is no
//! `host:port`, a peer port of 0, an id that is not a number. Each is 400
//! `bad_request` with keel's JSON error body, and neither the replicated
//! state nor the membership, the leader or the seal status changes.
//!
//! Malformed JSON and unknown fields on the cluster routes, and a transfer
//! to an unknown member, are checked in `route_matrix.rs`.

mod support;

use support::{Node, TOKEN, check};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_member_values_are_refused_and_change_nothing() {
    let node = Node::start().await;
    let (state, cluster) = (node.state(), node.cluster_view());
    let mut wrong = Vec::new();
    for body in [
        r#"{"id":5,"api_addr":"nowhere","peer_addr":"127.0.0.1:2"}"#,
        r#"{"id":5,"api_addr":"127.0.0.1:1","peer_addr":"127.0.0.1:0"}"#,
        r#"{"id":"five","api_addr":"127.0.0.1:1","peer_addr":"127.0.0.1:2"}"#,
    ] {
        let answer = node
            .send("POST", "/v1/cluster/members", Some(TOKEN), Some(body))
            .await;
        let what = format!("POST /v1/cluster/members {body}");
        check(&mut wrong, &what, &answer, 400, "bad_request");
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    assert_eq!(node.state(), state, "a refused member changed the state");
    assert_eq!(
        node.cluster_view(),
        cluster,
        "a refused member changed the cluster"
    );
    node.stop().await;
}
